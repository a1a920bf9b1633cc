"""Golden prompts: greedy tokens of the deployed artifact (TensorRT-LLM's LLM API) against the
merged Hugging Face model (transformers), on a few prompts.

Library for verify.py:
  read_prompts(path) -> list[str]        .txt one per line, or .jsonl with "prompt"/"text"
  golden_check(artifact, doc, facts, args, earlier) -> (check, report)
Where it cannot run (an earlier check failed, no TensorRT-LLM or GPU, the merged model gone) it
says skip and why; a prompt passes when its first --min-match tokens agree.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import manifest
from errors import ExportError, check

PROG = "verify"
DEFAULT_PROMPTS = [
    "The capital of France is",
    "Write a haiku about the sea.",
    "Explain what a hash table is in one sentence.",
    "1, 2, 3, 4,",
]


def read_prompts(path: Path | None) -> list[str]:
    if path is None:
        return list(DEFAULT_PROMPTS)
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise ExportError(f"cannot read prompts {path}: {exc}") from exc
    if path.suffix == ".jsonl":
        prompts = []
        for n, line in enumerate(lines, 1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ExportError(f"{path}:{n}: not JSON") from exc
            text = obj.get("prompt") or obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise ExportError(f'{path}:{n}: no "prompt" or "text"')
            prompts.append(text)
        lines = prompts
    if not lines:
        raise ExportError(f"{path}: no prompts")
    return lines


def reference_tokens(model_dir: Path, prompts: list[str], max_new: int) -> list[list[int]]:
    """Greedy new tokens of the merged HF model (transformers), per prompt."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype="auto").to(device).eval()
    out = []
    with torch.no_grad():
        for prompt in prompts:
            ids = tok(prompt, return_tensors="pt").input_ids.to(device)
            gen = model.generate(
                ids,
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=tok.pad_token_id or tok.eos_token_id,
            )
            out.append(gen[0, ids.shape[1] :].tolist())
    del model
    if device == "cuda":
        torch.cuda.empty_cache()  # the artifact sizes its KV cache from free memory
    return out


def _open_llm(artifact: Path, doc: dict):
    """The deployed artifact in TensorRT-LLM's LLM API (a bundle's lora_dir made absolute)."""
    import tensorrt_llm

    if doc.get("backend") == "pytorch":
        import yaml

        options = yaml.safe_load((artifact / "llm_api_options.yaml").read_text()) or {}
        if options.get("lora_config"):  # relative to the artifact, where serve.sh runs
            lora = options["lora_config"]
            lora["lora_dir"] = [str(artifact / d) for d in lora.get("lora_dir") or []]
        return tensorrt_llm.LLM(model=str(artifact / "checkpoint"), **options)
    engine = ((doc.get("artifact") or {}).get("engine") or {}).get("dir", "engine")
    tokenizer = ((doc.get("artifact") or {}).get("tokenizer") or {}).get("dir", "tokenizer")
    try:  # from 1.0, tensorrt_llm.LLM is the PyTorch backend; engines load through this one
        from tensorrt_llm._tensorrt_engine import LLM as EngineLLM
    except ImportError:
        EngineLLM = tensorrt_llm.LLM
    return EngineLLM(model=str(artifact / engine), tokenizer=str(artifact / tokenizer))


def artifact_tokens(
    artifact: Path, doc: dict, prompts: list[str], max_new: int, adapters: dict | None = None
) -> dict:
    """Greedy new tokens of the deployed artifact through TensorRT-LLM's LLM API, per prompt:
    {None: the base's, name: with that adapter's lora_request} for each of `adapters`
    ({name: {"lora_int_id", "path"}})."""
    import tensorrt_llm

    llm = _open_llm(artifact, doc)
    params = tensorrt_llm.SamplingParams(max_tokens=max_new, temperature=0.0, top_k=1)
    try:
        out = {None: [list(r.outputs[0].token_ids) for r in llm.generate(prompts, params)]}
        if adapters:
            from tensorrt_llm.executor import LoRARequest
        for name, a in (adapters or {}).items():
            request = LoRARequest(name, int(a["lora_int_id"]), str(a["path"]))
            results = llm.generate(prompts, params, lora_request=[request] * len(prompts))
            out[name] = [list(r.outputs[0].token_ids) for r in results]
        return out
    finally:
        shutdown = getattr(llm, "shutdown", None)
        if callable(shutdown):
            shutdown()


def compare(ref: list[list[int]], got: list[list[int]], prompts: list[str], min_match: int) -> dict:
    rows = []
    for prompt, a, b in zip(prompts, ref, got, strict=False):
        same = 0
        for x, y in zip(a, b, strict=False):
            if x != y:
                break
            same += 1
        need = min(min_match, len(a))
        rows.append(
            {
                "prompt": prompt,
                "reference": a,
                "artifact": b,
                "matching_prefix": same,
                "ok": same >= need,
            }
        )
    return {
        "prompts": len(rows),
        "passed": sum(r["ok"] for r in rows),
        "min_match": min_match,
        "results": rows,
    }


def _skip_reason(doc: dict, facts: dict, args: argparse.Namespace, earlier: list) -> str | None:
    if args.no_golden:
        return "--no-golden"
    if any(c["status"] == "fail" for c in earlier):
        return "an earlier check failed; the artifact cannot run here"
    if not (facts.get("packages") or {}).get("tensorrt_llm"):
        return "TensorRT-LLM is not installed"
    if not (facts.get("gpu") or {}).get("devices"):
        return "no GPU visible"
    model_dir = Path((doc.get("inputs") or {}).get("model_dir") or "")
    if not (model_dir / "config.json").is_file():
        return f"the merged HF model is not here ({model_dir}); nothing to compare with"
    return None


def _verdict(report: dict, doc: dict, min_match: int, label: str = "") -> dict:
    ok = report["passed"] == report["prompts"]
    quantized = (manifest.quant_mode(doc) or "none") != "none"
    cid = "lora_golden" if label else "golden"
    msg = (
        f"{label}{report['passed']}/{report['prompts']} prompts agree on the first "
        f"{min_match} greedy tokens"
    )
    if ok:
        return check(cid, "pass", msg)
    if quantized:
        return check(cid, "warn", msg + " (quantized artifact: some divergence is expected)")
    return check(cid, "fail", msg, "compare the merge and the build inputs; rebuild")


def golden_check(
    artifact: Path,
    doc: dict,
    facts: dict,
    args: argparse.Namespace,
    earlier: list[dict],
    lora_refs: dict | None = None,
    base_tokens: list | None = None,
) -> tuple[list[dict], dict | None]:
    """The golden check, and one lora_golden per entry of lora_refs ({name: {"lora_int_id",
    "path", "tokens"}}: PeftModel's greedy tokens, lora_verify.py) against the artifact run
    with that adapter's lora_request. base_tokens: the HF reference already generated from the
    model dir (lora_verify's pass), else it is generated here. Returns (checks, report)."""
    names = list(lora_refs or {})
    why = _skip_reason(doc, facts, args, earlier)
    if why:
        return [check("golden", "skip", why)] + [
            check("lora_golden", "skip", f"{n}: {why}") for n in names
        ], None
    prompts = read_prompts(args.prompts)
    print(
        f"{PROG}: golden: {len(prompts)} prompts, {args.max_new_tokens} greedy tokens, "
        "HF reference first",
        file=sys.stderr,
    )
    model_dir = Path(doc["inputs"]["model_dir"])
    try:
        ref = base_tokens or reference_tokens(model_dir, prompts, args.max_new_tokens)
        print(f"{PROG}: golden: running the artifact", file=sys.stderr)
        got = artifact_tokens(artifact, doc, prompts, args.max_new_tokens, lora_refs)
    except Exception as exc:
        failed = check(
            "golden",
            "fail",
            f"could not run: {type(exc).__name__}: {exc}",
            "see the error; try trtllm-serve via serve.sh",
        )
        return [failed] + [
            check("lora_golden", "skip", f"{n}: the artifact did not run") for n in names
        ], None
    report = compare(ref, got[None], prompts, args.min_match)
    report["max_new_tokens"] = args.max_new_tokens
    checks = [_verdict(report, doc, args.min_match)]
    if names:
        report["lora"] = {}
    for name in names:
        one = compare(lora_refs[name]["tokens"], got[name], prompts, args.min_match)
        report["lora"][name] = one
        checks.append(_verdict(one, doc, args.min_match, f"{name}: "))
    return checks, report

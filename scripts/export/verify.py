#!/usr/bin/env python3
"""Check a built artifact against this machine, then compare its greedy output with the HF model.

Usage:
  verify.py --artifact DIR [--json] [--facts-json FILE] [--prompts FILE] [--max-new-tokens N]
            [--min-match N] [--no-golden]

Reads DIR/build.json (either backend) and checks, one verdict line each (pass/warn/fail/skip):
  manifest        build.json readable, schema_version 1
  artifact        the files the backend needs (engines per rank, or checkpoint/, options, serve.sh)
  trtllm_version  installed TensorRT-LLM vs the manifest (engines: exact; pytorch: same line, and
                  the options YAML valid for the installed version's LLM-API record)
  tensorrt        installed TensorRT vs the manifest (engines only; pytorch: skip, not used)
  gpu_arch        this GPU's compute capability (engines: the one built for; pytorch: what the
                  checkpoint's quantization needs)
  gpu_count       visible GPUs >= tp*pp
  driver          CUDA this driver supports vs the build's CUDA runtime, else driver vs driver
  golden          where TensorRT-LLM and a GPU are present and nothing above failed: greedy tokens
                  of the artifact (tensorrt_llm.LLM) vs the merged HF model (transformers) on
                  prompts from --prompts (.txt one per line, or .jsonl with "prompt"/"text";
                  default: four built-in prompts); a prompt passes when its first --min-match
                  tokens agree
Where a check cannot run it says "skip" and why; it never passes what it did not check.
The report is written into build.json under "verification" (atomically).

Facts come from --facts-json (probe.py's JSON) or from probe.py's functions: package versions from
this interpreter's importlib.metadata, GPUs from `nvidia-smi` on PATH.
Exit codes: 0 no check failed, 1 a check failed, 2 bad input (no or unreadable build.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))

SCHEMA_VERSION = 1
PROG = "verify"
DEFAULT_PROMPTS = [
    "The capital of France is",
    "Write a haiku about the sea.",
    "Explain what a hash table is in one sentence.",
    "1, 2, 3, 4,",
]
QUANT_MIN_CC = {"fp8": (8, 9), "nvfp4": (10, 0), "int4_awq": (8, 0), "w4a8_awq": (8, 9)}


class VerifyError(Exception):
    """Bad input (exit 2)."""

    code = 2


def _vkey(version: str | None) -> tuple[int, ...]:
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", str(version or ""))
    return tuple(int(p) for p in match.group(1).split(".")) if match else ()


def check(cid: str, status: str, message: str, fix: str = "") -> dict:
    return {"id": cid, "status": status, "message": message, "fix": fix}


# --- facts -------------------------------------------------------------------------------------


def read_facts() -> dict:
    """The facts verify needs, read by probe.py (GPUs via nvidia-smi, packages via metadata)."""
    import probe

    return {
        "schema_version": SCHEMA_VERSION,
        "packages": probe.probe_packages(),
        "gpu": probe.probe_gpu(),
    }


# --- checks ------------------------------------------------------------------------------------


def check_artifact(artifact: Path, doc: dict) -> dict:
    backend = doc.get("backend", "engine")
    world = int((doc.get("parallel") or {}).get("world_size", 1))
    if backend == "pytorch":
        need = ["checkpoint/config.json", "llm_api_options.yaml", "serve.sh"]
    else:
        engine = (doc.get("artifact") or {}).get("engine") or {}
        engine_dir = engine.get("dir", "engine")
        need = [f"{engine_dir}/config.json"] + [
            f"{engine_dir}/rank{r}.engine" for r in range(world)
        ]
    missing = [n for n in need if not (artifact / n).is_file()]
    if missing:
        return check("artifact", "fail", f"missing: {', '.join(missing)}", "rebuild with --force")
    return check("artifact", "pass", f"{backend} artifact complete ({len(need)} required files)")


def check_trtllm(doc: dict, facts: dict, artifact: Path) -> dict:
    built = (doc.get("environment") or {}).get("trtllm_version")
    have = (facts.get("packages") or {}).get("tensorrt_llm")
    if not have:
        return check(
            "trtllm_version",
            "fail",
            f"TensorRT-LLM is not installed here (built for {built})",
            f"run inside the TensorRT-LLM {built} release container",
        )
    if not built:
        return check(
            "trtllm_version",
            "skip",
            f"the manifest records no TensorRT-LLM version (installed {have})",
        )
    if doc.get("backend") == "pytorch":
        if _vkey(have)[:2] != _vkey(built)[:2]:
            return check(
                "trtllm_version",
                "fail",
                f"installed {have}, bundle made for the {built} line",
                f"use TensorRT-LLM {'.'.join(map(str, _vkey(built)[:2]))}.x or rebuild the bundle",
            )
        problems = _options_problems(artifact, have)
        if problems:
            return check(
                "trtllm_version",
                "fail",
                f"llm_api_options.yaml for {have}: {problems[0]}",
                "rebuild the bundle",
            )
        status = "pass" if have == built else "warn"
        return check("trtllm_version", status, f"installed {have}, bundle made for {built}")
    if have != built:
        return check(
            "trtllm_version",
            "fail",
            f"installed {have}, engine built with {built} (engines only load in the same version)",
            f"run inside the TensorRT-LLM {built} container or rebuild",
        )
    return check("trtllm_version", "pass", f"installed {have} = built {built}")


def _options_problems(artifact: Path, version: str) -> list[str]:
    import llm_api_options
    import yaml

    try:
        options = yaml.safe_load((artifact / "llm_api_options.yaml").read_text()) or {}
        return llm_api_options.check_options(options, llm_api_options.load_record(version))
    except (OSError, yaml.YAMLError, llm_api_options.OptionsError) as exc:
        return [str(exc)]


def check_tensorrt(doc: dict, facts: dict) -> dict:
    if doc.get("backend") == "pytorch":
        return check("tensorrt", "skip", "the PyTorch backend does not use TensorRT")
    built = (doc.get("environment") or {}).get("tensorrt")
    have = (facts.get("packages") or {}).get("tensorrt")
    if not have:
        return check(
            "tensorrt",
            "fail",
            f"TensorRT is not installed here (engine built with {built})",
            "use the matching release container",
        )
    if not built:
        return check(
            "tensorrt", "skip", f"the manifest records no TensorRT version (installed {have})"
        )
    if _vkey(have)[:3] != _vkey(built)[:3]:
        return check(
            "tensorrt",
            "fail",
            f"installed TensorRT {have}, engine built with {built}",
            "use the container the engine was built in",
        )
    return check("tensorrt", "pass", f"installed TensorRT {have} = built {built}")


def _devices(facts: dict) -> list[dict]:
    return list((facts.get("gpu") or {}).get("devices") or [])


def check_gpu_arch(doc: dict, facts: dict) -> dict:
    gpu = facts.get("gpu") or {}
    devices = _devices(facts)
    if gpu.get("status") == "error":
        return check("gpu_arch", "skip", gpu.get("detail", "nvidia-smi failed"))
    if not devices:
        return check(
            "gpu_arch",
            "fail",
            f"no NVIDIA GPU visible ({gpu.get('detail', 'nvidia-smi lists none')})",
            "run on the serving GPU machine",
        )
    ccs = sorted({d.get("compute_capability") for d in devices})
    here = ", ".join(f"{d['name']} (SM {d['compute_capability']})" for d in devices[:1])
    if doc.get("backend") == "pytorch":
        mode = (
            ((doc.get("inputs") or {}).get("config") or {})
            .get("quantization", {})
            .get("mode", "none")
        )
        need = QUANT_MIN_CC.get(mode)
        if need and any(_vkey(cc)[:2] < need for cc in ccs):
            return check(
                "gpu_arch",
                "fail",
                f"{mode} checkpoint needs SM {need[0]}.{need[1]}+, "
                f"this machine has {', '.join(ccs)}",
                "serve on a newer GPU or rebuild with quantization.mode: none",
            )
        what = "an unquantized" if mode == "none" else f"a {mode}"
        return check("gpu_arch", "pass", f"{here}: runs {what} checkpoint")
    built = ((doc.get("environment") or {}).get("gpu") or {}).get("compute_capability")
    if not built:
        return check("gpu_arch", "skip", "the manifest records no target compute capability")
    if ccs != [built]:
        return check(
            "gpu_arch",
            "fail",
            f"engine built for SM {built}, this machine has SM {', '.join(ccs)}",
            "rebuild on (or for) this GPU: engines are tied to the compute capability",
        )
    return check("gpu_arch", "pass", f"{here} = built for SM {built}")


def check_gpu_count(doc: dict, facts: dict) -> dict:
    world = int((doc.get("parallel") or {}).get("world_size", 1))
    devices = _devices(facts)
    if (facts.get("gpu") or {}).get("status") == "error":
        return check("gpu_count", "skip", "nvidia-smi failed; GPU count unknown")
    if len(devices) < world:
        return check(
            "gpu_count",
            "fail",
            f"world size {world} needs {world} GPUs, {len(devices)} visible",
            "serve on a machine with enough GPUs, or rebuild with smaller parallel.tp_size/pp_size",
        )
    return check("gpu_count", "pass", f"{len(devices)} GPU(s) visible for world size {world}")


def check_driver(doc: dict, facts: dict) -> dict:
    env = doc.get("environment") or {}
    gpu = facts.get("gpu") or {}
    runtime, supported = env.get("cuda_runtime"), gpu.get("cuda_driver_version")
    if runtime and supported:
        if _vkey(supported)[:2] < _vkey(runtime)[:2]:
            return check(
                "driver",
                "fail",
                f"driver supports CUDA {supported}, the build used CUDA {runtime}",
                "upgrade the NVIDIA driver",
            )
        return check("driver", "pass", f"driver supports CUDA {supported} >= build CUDA {runtime}")
    built, have = env.get("driver"), gpu.get("driver_version")
    if not have:
        return check("driver", "skip", "no driver version readable on this machine")
    if not built:
        return check(
            "driver", "skip", f"the manifest records no driver or CUDA version (driver here {have})"
        )
    if _vkey(have)[:1] < _vkey(built)[:1]:
        return check(
            "driver",
            "warn",
            f"driver {have} is older than the build machine's {built}",
            "upgrade the NVIDIA driver",
        )
    return check("driver", "pass", f"driver {have} (build machine {built})")


# --- golden prompts ----------------------------------------------------------------------------


def read_prompts(path: Path | None) -> list[str]:
    if path is None:
        return list(DEFAULT_PROMPTS)
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    except OSError as exc:
        raise VerifyError(f"cannot read prompts {path}: {exc}") from exc
    if path.suffix == ".jsonl":
        prompts = []
        for n, line in enumerate(lines, 1):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise VerifyError(f"{path}:{n}: not JSON") from exc
            text = obj.get("prompt") or obj.get("text") if isinstance(obj, dict) else None
            if not isinstance(text, str):
                raise VerifyError(f'{path}:{n}: no "prompt" or "text"')
            prompts.append(text)
        lines = prompts
    if not lines:
        raise VerifyError(f"{path}: no prompts")
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


def artifact_tokens(artifact: Path, doc: dict, prompts: list[str], max_new: int) -> list[list[int]]:
    """Greedy new tokens of the deployed artifact through TensorRT-LLM's LLM API, per prompt."""
    import tensorrt_llm

    if doc.get("backend") == "pytorch":
        import yaml

        options = yaml.safe_load((artifact / "llm_api_options.yaml").read_text()) or {}
        llm = tensorrt_llm.LLM(model=str(artifact / "checkpoint"), **options)
    else:
        engine = ((doc.get("artifact") or {}).get("engine") or {}).get("dir", "engine")
        tokenizer = ((doc.get("artifact") or {}).get("tokenizer") or {}).get("dir", "tokenizer")
        try:  # from 1.0, tensorrt_llm.LLM is the PyTorch backend; engines load through this one
            from tensorrt_llm._tensorrt_engine import LLM as EngineLLM
        except ImportError:
            EngineLLM = tensorrt_llm.LLM
        llm = EngineLLM(model=str(artifact / engine), tokenizer=str(artifact / tokenizer))
    params = tensorrt_llm.SamplingParams(max_tokens=max_new, temperature=0.0, top_k=1)
    try:
        results = llm.generate(prompts, params)
        return [list(r.outputs[0].token_ids) for r in results]
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


def check_golden(
    artifact: Path, doc: dict, facts: dict, args: argparse.Namespace, earlier: list[dict]
) -> tuple[dict, dict | None]:
    if args.no_golden:
        return check("golden", "skip", "--no-golden"), None
    if any(c["status"] == "fail" for c in earlier):
        return check(
            "golden", "skip", "an earlier check failed; the artifact cannot run here"
        ), None
    if not (facts.get("packages") or {}).get("tensorrt_llm"):
        return check("golden", "skip", "TensorRT-LLM is not installed"), None
    if not _devices(facts):
        return check("golden", "skip", "no GPU visible"), None
    model_dir = Path((doc.get("inputs") or {}).get("model_dir") or "")
    if not (model_dir / "config.json").is_file():
        return check(
            "golden",
            "skip",
            f"the merged HF model is not here ({model_dir}); nothing to compare with",
        ), None
    prompts = read_prompts(args.prompts)
    print(
        f"{PROG}: golden: {len(prompts)} prompts, {args.max_new_tokens} greedy tokens, "
        "HF reference first",
        file=sys.stderr,
    )
    try:
        ref = reference_tokens(model_dir, prompts, args.max_new_tokens)
        print(f"{PROG}: golden: running the artifact", file=sys.stderr)
        got = artifact_tokens(artifact, doc, prompts, args.max_new_tokens)
    except Exception as exc:
        return check(
            "golden",
            "fail",
            f"could not run: {type(exc).__name__}: {exc}",
            "see the error; try trtllm-serve via serve.sh",
        ), None
    report = compare(ref, got, prompts, args.min_match)
    report["max_new_tokens"] = args.max_new_tokens
    ok = report["passed"] == report["prompts"]
    quantized = ((doc.get("inputs") or {}).get("config") or {}).get("quantization", {}).get(
        "mode", "none"
    ) != "none"
    msg = (
        f"{report['passed']}/{report['prompts']} prompts agree on the first "
        f"{args.min_match} greedy tokens"
    )
    if ok:
        return check("golden", "pass", msg), report
    if quantized:
        return check(
            "golden", "warn", msg + " (quantized artifact: some divergence is expected)"
        ), report
    return check("golden", "fail", msg, "compare the merge and the build inputs; rebuild"), report


# --- main --------------------------------------------------------------------------------------


def load_manifest(artifact: Path) -> dict:
    path = artifact / "build.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise VerifyError(f"no build.json in {artifact}: not a built artifact") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise VerifyError(f"cannot read {path}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        raise VerifyError(
            f"{path}: schema_version "
            f"{doc.get('schema_version') if isinstance(doc, dict) else None!r}, expected 1"
        )
    return doc


def write_report(artifact: Path, doc: dict, report: dict) -> None:
    doc["verification"] = report
    path = artifact / "build.json"
    tmp = path.with_name(f".build.json.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def run(args: argparse.Namespace) -> tuple[dict, int]:
    artifact: Path = args.artifact
    doc = load_manifest(artifact)
    if args.facts_json:
        try:
            facts = json.loads(args.facts_json.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise VerifyError(f"cannot read facts {args.facts_json}: {exc}") from exc
    else:
        facts = read_facts()
    checks = [
        check(
            "manifest",
            "pass",
            f"build.json {doc.get('build_id', '?')[:19]} backend {doc.get('backend', 'engine')}",
        )
    ]
    checks.append(check_artifact(artifact, doc))
    checks.append(check_trtllm(doc, facts, artifact))
    checks.append(check_tensorrt(doc, facts))
    checks.append(check_gpu_arch(doc, facts))
    checks.append(check_gpu_count(doc, facts))
    checks.append(check_driver(doc, facts))
    golden, golden_report = check_golden(artifact, doc, facts, args, checks)
    checks.append(golden)
    failed = [c for c in checks if c["status"] == "fail"]
    report = {
        "schema_version": SCHEMA_VERSION,
        "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "ok": not failed,
        "checks": checks,
        "golden": golden_report,
        "machine": {
            "trtllm": (facts.get("packages") or {}).get("tensorrt_llm"),
            "tensorrt": (facts.get("packages") or {}).get("tensorrt"),
            "gpus": [d.get("name") for d in _devices(facts)],
            "driver": (facts.get("gpu") or {}).get("driver_version"),
        },
    }
    write_report(artifact, doc, report)
    return report, 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--facts-json", type=Path, help="probe.py output instead of reading this machine"
    )
    parser.add_argument(
        "--prompts", type=Path, help="golden prompts: .txt (one per line) or .jsonl"
    )
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--min-match", type=int, default=8)
    parser.add_argument("--no-golden", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.max_new_tokens < 1 or args.min_match < 1:
            raise VerifyError("--max-new-tokens and --min-match must be at least 1")
        if args.prompts is not None:
            read_prompts(args.prompts)
        report, code = run(args)
    except VerifyError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.code
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for c in report["checks"]:
            line = f"{c['status']:<5} {c['id']:<15} {c['message']}"
            print(line + (f"  -> {c['fix']}" if c["status"] == "fail" and c["fix"] else ""))
        print(
            f"{'verified' if report['ok'] else 'NOT verified'}: "
            f"report written to {args.artifact / 'build.json'}",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main())

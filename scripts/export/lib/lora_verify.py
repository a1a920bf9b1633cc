"""The runtime-LoRA adapters of an artifact against PEFT, for verify.py. Imported only when
build.json has "lora"; torch, transformers and peft are imported inside peft_pass.

Library: peft_pass(artifact, doc, args) -> (checks, references, base_tokens)
  lora_effect  one per adapter, on any machine: the packaged adapter (lora/<name>/) loads onto
               the base with PEFT and changes its output (last-position logits on the golden
               prompts); an adapter that changes nothing (lora_B all zero: saved before training)
               fails. skip when torch/transformers/peft are missing or the base is not here.
  references   {name: {"lora_int_id", "path", "tokens"}}: PeftModel's greedy tokens per prompt,
               what golden.py compares the artifact's output with that adapter's lora_request to
               (lora_golden, with TensorRT-LLM on a GPU).
  base_tokens  the base model's own greedy tokens when it ran on a GPU from the build's model dir
               (golden.py's HF reference, so that it is not loaded and generated twice); else None.
The base is the build's model dir (build.json inputs.model_dir), or the bundle's own checkpoint
when that is unquantized.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import golden
import manifest
from errors import Check, check

NO_EFFECT_RTOL = 1e-6  # max |delta logit| <= this * max(1, max |base logit|): no effect
MERGE_HINT = "an untrained adapter (lora_B all zero) or the wrong one: check what training saved"


def base_dir(artifact: Path, doc: dict) -> Path | None:
    model_dir = Path((doc.get("inputs") or {}).get("model_dir") or "")
    if (model_dir / "config.json").is_file():
        return model_dir
    mode = manifest.quant_mode(doc)
    bundled = artifact / "checkpoint"
    if doc.get("backend") == "pytorch" and mode == "none" and (bundled / "config.json").is_file():
        return bundled
    return None


def _outputs(model, inputs: list, max_new: int, pad: int) -> list[tuple]:
    """(last-position logits as float32 on the CPU, greedy new tokens) per prompt."""
    import torch

    out = []
    with torch.no_grad():
        for ids in inputs:
            logits = model(input_ids=ids).logits[0, -1].float().cpu()
            gen = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new,
                do_sample=False,
                pad_token_id=pad,
            )
            out.append((logits, gen[0, ids.shape[1] :].tolist()))
    return out


def _effect(name: str, base: list[tuple], got: list[tuple]) -> Check:
    scale = max(1.0, max(float(b[0].abs().max()) for b in base))
    delta = max(float((g[0] - b[0]).abs().max()) for b, g in zip(base, got, strict=True))
    moved = sum(1 for b, g in zip(base, got, strict=True) if b[1] != g[1])
    if delta <= NO_EFFECT_RTOL * scale:
        msg = f"{name}: adapter has no effect: logits equal the base's on {len(base)} prompts"
        return check("lora_effect", "fail", msg, MERGE_HINT)
    msg = (
        f"{name}: loads onto the base with PEFT and changes its output (max |delta logit| "
        f"{delta:.3g}; greedy tokens differ on {moved}/{len(base)} prompts)"
    )
    return check("lora_effect", "pass", msg)


def _load(base: Path):
    """The base model, its tokenizer and the device (float32 on a CPU, its dtype on a GPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = torch.float32 if device == "cpu" else "auto"
    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype).to(device).eval()
    return model, AutoTokenizer.from_pretrained(base), device


def _run(base: Path, artifact: Path, adapters: list[dict], args) -> tuple[list[Check], dict, list]:
    import torch
    from peft import PeftModel

    model, tok, device = _load(base)
    prompts = golden.read_prompts(args.prompts)
    inputs = [tok(p, return_tensors="pt").input_ids.to(device) for p in prompts]
    pad = tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)
    reference = _outputs(model, inputs, args.max_new_tokens, pad)
    checks, refs, peft_model = [], {}, None
    for a in adapters:
        path = artifact / a["path"]
        try:
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(model, str(path), adapter_name=a["name"])
            else:
                peft_model.load_adapter(str(path), adapter_name=a["name"])
            peft_model.set_adapter(a["name"])
        except Exception as exc:  # PEFT raises several types for an adapter of another base
            why = f"{type(exc).__name__}: {exc}"
            msg = f"{a['name']}: does not load onto the base with PEFT: {why}"
            checks.append(check("lora_effect", "fail", msg.splitlines()[0][:400], "rebuild"))
            continue
        got = _outputs(peft_model.eval(), inputs, args.max_new_tokens, pad)
        checks.append(_effect(a["name"], reference, got))
        tokens = [g[1] for g in got]
        refs[a["name"]] = {"lora_int_id": a["lora_int_id"], "path": str(path), "tokens": tokens}
    del model, peft_model
    if device == "cuda":
        torch.cuda.empty_cache()  # the artifact sizes its KV cache from free memory
    base_tokens = [r[1] for r in reference] if device == "cuda" else None
    return checks, refs, base_tokens


def peft_pass(
    artifact: Path, doc: dict, args: argparse.Namespace
) -> tuple[list[Check], dict, list | None]:
    adapters = doc["lora"]["adapters"]
    try:
        import peft  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError as exc:
        why = f"{exc.name or 'torch/transformers/peft'} is not installed here"
        return [check("lora_effect", "skip", f"{a['name']}: {why}") for a in adapters], {}, None
    base = base_dir(artifact, doc)
    if base is None:
        where = (doc.get("inputs") or {}).get("model_dir")
        why = f"the base model is not here ({where}): nothing to load the adapter onto"
        return [check("lora_effect", "skip", f"{a['name']}: {why}") for a in adapters], {}, None
    print(f"verify: lora: {len(adapters)} adapter(s) onto {base} with PEFT", file=sys.stderr)
    checks, refs, base_tokens = _run(base, artifact, adapters, args)
    own = base == Path((doc.get("inputs") or {}).get("model_dir") or "")
    return checks, refs, base_tokens if own else None

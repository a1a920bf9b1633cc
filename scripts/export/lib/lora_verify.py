#!/usr/bin/env python3
"""Check each packaged adapter on any machine: it loads onto the base with PEFT and changes
the base's output (an adapter that changes nothing, such as an untrained one with lora_B all
zero, is a failure: "adapter has no effect").

Usage:
  lora_verify.py --artifact DIR [--model-dir BASE] [--prompts FILE] [--device cpu|cuda] [--json]
  lora_verify.py --model-dir BASE --adapter NAME=PATH [--adapter ...] [...]

--artifact reads DIR/lora/adapters.json (lora_package.py), checks every packaged file against
its recorded sha256, then the effect; BASE defaults to DIR/checkpoint (a PyTorch bundle). The
base is loaded once (float32 on the CPU, its own dtype on a GPU); per prompt the last-position
logits and a few greedy tokens are compared with the base's. Prompts: verify.py's built-ins or
--prompts (.txt, one per line; .jsonl with "prompt"/"text").
Exit 0 every check passed, 1 a check failed, 2 bad input. --json prints
{"schema_version", "ok", "checks"}; checks are {"id", "status", "message", "fix", "adapter"}.
Library: verify_adapters(model_dir, [(name, path)], prompts, device=None) -> list[check];
file_checks(artifact) -> list[check].
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import lora_package
from verify import VerifyError, read_prompts

SCHEMA_VERSION = 1
MAX_NEW_TOKENS = 8
NO_EFFECT_RTOL = 1e-6  # |delta logit| <= this * max(1, max |base logit|): no effect


def _check(cid: str, status: str, adapter: str | None, message: str, fix: str = "") -> dict:
    where = f"{adapter}: " if adapter else ""
    return {"id": cid, "status": status, "message": where + message, "fix": fix, "adapter": adapter}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def file_checks(artifact: Path) -> tuple[list[tuple[str, Path]], list[dict]]:
    """The packaged adapters of an artifact, and one check per adapter that its files are the
    ones adapters.json recorded."""
    try:
        doc = lora_package.manifest_part(artifact)
    except (OSError, ValueError, lora_package.PackageError) as err:
        raise VerifyError(f"{artifact}: unreadable lora/adapters.json: {err}") from err
    if doc is None:
        raise VerifyError(f"{artifact}: no lora/adapters.json (built without a lora: section)")
    adapters, checks = [], []
    for entry in doc["adapters"]:
        folder = artifact / entry["path"]
        changed = [
            name
            for name, rec in entry["files"].items()
            if not (folder / name).is_file() or _sha256(folder / name) != rec["sha256"]
        ]
        status = "fail" if changed else "pass"
        msg = f"changed or missing: {', '.join(changed)}" if changed else "files as packaged"
        checks.append(_check("lora_files", status, entry["name"], msg, "rebuild the artifact"))
        adapters.append((entry["name"], folder))
    return adapters, checks


def _inputs(model_dir: Path, prompts: list[str]) -> list:
    """Token ids per prompt: the base's tokenizer, or fixed ids when it has none."""
    import torch

    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        return [tok(p, return_tensors="pt").input_ids for p in prompts]
    except (OSError, ValueError):
        return [torch.tensor([[1, 5 + i, 7 + i, 11 + i]]) for i in range(len(prompts))]


def _outputs(model, inputs: list, device: str) -> list[tuple]:
    """(last-position logits as float32 on the CPU, greedy new tokens) per prompt."""
    import torch

    out = []
    with torch.no_grad():
        for ids in inputs:
            ids = ids.to(device)
            logits = model(input_ids=ids).logits[0, -1].float().cpu()
            gen = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                pad_token_id=0,
            )
            out.append((logits, gen[0, ids.shape[1] :].tolist()))
    return out


def _effect(name: str, base: list[tuple], got: list[tuple]) -> dict:
    scale = max(1.0, max(float(b[0].abs().max()) for b in base))
    delta = max(float((g[0] - b[0]).abs().max()) for b, g in zip(base, got, strict=True))
    moved = sum(1 for b, g in zip(base, got, strict=True) if b[1] != g[1])
    if delta <= NO_EFFECT_RTOL * scale:
        return _check(
            "lora_effect",
            "fail",
            name,
            f"adapter has no effect: logits equal the base's on {len(base)} prompts "
            f"(max |delta| {delta:.3g})",
            "an untrained adapter (lora_B all zero) or the wrong one: check what training saved",
        )
    msg = (
        f"changes the output: max |delta logit| {delta:.3g}, greedy tokens differ on "
        f"{moved}/{len(base)} prompts"
    )
    return _check("lora_effect", "pass", name, msg)


def _attach(peft_model, model, name: str, path: Path):
    """The PeftModel with adapter `name` loaded (the first call wraps the base)."""
    from peft import PeftModel

    if peft_model is None:
        return PeftModel.from_pretrained(model, str(path), adapter_name=name)
    peft_model.load_adapter(str(path), adapter_name=name)
    return peft_model


def verify_adapters(model_dir, adapters: list, prompts: list[str], device=None) -> list[dict]:
    """Load the base once, then every adapter with PEFT: one lora_load / lora_effect per adapter."""
    import torch
    from transformers import AutoModelForCausalLM

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float32 if device == "cpu" else "auto"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    inputs = _inputs(Path(model_dir), prompts)
    base = _outputs(model, inputs, device)
    checks, peft_model = [], None
    for name, path in adapters:
        try:
            peft_model = _attach(peft_model, model, name, Path(path))
        except Exception as err:  # PEFT raises several types for a foreign adapter
            msg = f"does not load onto the base with PEFT: {type(err).__name__}: {err}"
            checks.append(_check("lora_load", "fail", name, msg.splitlines()[0][:400]))
            continue
        peft_model.set_adapter(name)
        peft_model.eval()
        checks.append(_effect(name, base, _outputs(peft_model, inputs, device)))
    return checks


def _pair(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, Path(path)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="lora_verify.py", description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--artifact", type=Path, help="built artifact with lora/adapters.json")
    source.add_argument("--adapter", action="append", type=_pair, help="NAME=PATH (repeatable)")
    parser.add_argument("--model-dir", type=Path, help="the base (default: ARTIFACT/checkpoint)")
    parser.add_argument("--prompts", type=Path, help=".txt or .jsonl prompts")
    parser.add_argument("--device", choices=["cpu", "cuda"], help="default: cuda when available")
    parser.add_argument("--json", action="store_true", help="check records as JSON on stdout")
    return parser.parse_args(argv)


def _run(args: argparse.Namespace) -> list[dict]:
    checks: list[dict] = []
    adapters = args.adapter or []
    if args.artifact is not None:
        adapters, checks = file_checks(args.artifact)
    model_dir = args.model_dir or (args.artifact / "checkpoint" if args.artifact else None)
    if model_dir is None or not (model_dir / "config.json").is_file():
        raise VerifyError(f"--model-dir {model_dir}: no config.json (give the base model dir)")
    return checks + verify_adapters(model_dir, adapters, read_prompts(args.prompts), args.device)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        checks = _run(args)
    except VerifyError as err:
        print(f"lora_verify: {err}", file=sys.stderr)
        return err.code
    for rec in checks:
        fix = f" (fix: {rec['fix']})" if rec["status"] == "fail" and rec["fix"] else ""
        print(f"lora_verify: [{rec['status']}] {rec['message']}{fix}", file=sys.stderr)
    ok = all(rec["status"] != "fail" for rec in checks)
    if args.json:
        print(json.dumps({"schema_version": SCHEMA_VERSION, "ok": ok, "checks": checks}, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

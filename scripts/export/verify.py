#!/usr/bin/env python3
"""Check a built artifact against this machine, then compare its greedy output with the HF model.

Usage:
  verify.py --artifact DIR [--json] [--full] [--allow-skip] [--facts-json FILE]
            [--prompts FILE] [--max-new-tokens N] [--min-match N] [--no-golden]

Reads DIR/build.json (either backend) and prints one line per check (lib/verify_checks.py: the
artifact's files, TensorRT-LLM and TensorRT versions, GPU compute capability and count, driver;
lib/golden.py: golden prompts, where TensorRT-LLM and a GPU are present; lib/quality_report.py:
the quality a quantized build measured, a line that never fails, and its table after the checks).
--full hashes every file (sha256) instead of checking sizes and sampled content.

The verdict is "verified" only when every check ran and none failed, golden prompts included.
A check that could not run here says skip and why, and the verdict is then "NOT verified: <n>
checks could not run here"; --allow-skip accepts such a partial verification and records that
it did. The report is written into build.json under "verification" (atomically).

Exit codes: 0 verified (or partial with --allow-skip), 1 a check failed, 2 bad input (no or
unreadable build.json, bad prompts), 3 not verified: some checks could not run here.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import golden
import manifest
import quality_report
import verify_checks
from errors import ExportError, check, counts, render_checks, report

SCHEMA_VERSION = 1
PROG = "verify"
EXIT_NOT_VERIFIED = 3
reference_tokens = golden.reference_tokens  # tests stand in for the LLM API with it


def read_facts() -> dict:
    """The facts verify needs, read by probe.py (GPUs via nvidia-smi, packages via metadata)."""
    import probe

    return {
        "schema_version": SCHEMA_VERSION,
        "packages": probe.probe_packages(),
        "gpu": probe.probe_gpu(),
    }


def load_manifest(artifact: Path) -> dict:
    path = artifact / "build.json"
    if not path.is_file():
        raise ExportError(f"no build.json in {artifact}: not a built artifact")
    doc = manifest.load_json(path, "build.json")
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise ExportError(f"{path}: no schema_version {SCHEMA_VERSION}")
    return doc


def write_report(artifact: Path, doc: dict, result: dict) -> None:
    doc["verification"] = result
    manifest.write_json_atomic(artifact / "build.json", doc)


def verdict(checks: list[dict], allow_skip: bool) -> tuple[str, int]:
    n = counts(checks)
    if n["fail"]:
        return f"NOT verified: {n['fail']} check(s) failed", 1
    if n["skip"]:
        why = "; ".join(f"{c['id']}: {c['message']}" for c in checks if c["status"] == "skip")
        text = f"NOT verified: {n['skip']} check(s) could not run here ({why})"
        if allow_skip:
            return f"partially verified (--allow-skip): {text[len('NOT verified: ') :]}", 0
        return text, EXIT_NOT_VERIFIED
    return "verified", 0


def run(args: argparse.Namespace) -> tuple[dict, int, dict | None]:
    artifact: Path = args.artifact
    doc = load_manifest(artifact)
    facts = manifest.load_json(args.facts_json, "facts") if args.facts_json else read_facts()
    build_id = str(doc.get("build_id", "?"))[:19]
    checks = [check("manifest", "pass", f"build.json {build_id}, backend {doc.get('backend')}")]
    checks += [c for c in [quality_report.verify_check(doc)] if c]  # what the build measured
    checks += verify_checks.machine_checks(artifact, doc, facts, full=args.full)
    lora_refs = base_tokens = None
    if doc.get("lora"):  # torch, transformers and peft are imported only then
        import lora_verify

        found, lora_refs, base_tokens = lora_verify.peft_pass(artifact, doc, args)
        checks += found
    golden_checks, golden_report = golden.golden_check(
        artifact, doc, facts, args, checks, lora_refs, base_tokens
    )
    checks += golden_checks
    text, code = verdict(checks, args.allow_skip)
    result = {
        "schema_version": SCHEMA_VERSION,
        "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "ok": code == 0,
        "verdict": text,
        "allow_skip": args.allow_skip,
        "full": args.full,
        "checks": checks,
        "golden": golden_report,
        "machine": {
            "trtllm": (facts.get("packages") or {}).get("tensorrt_llm"),
            "tensorrt": (facts.get("packages") or {}).get("tensorrt"),
            "gpus": [d.get("name") for d in (facts.get("gpu") or {}).get("devices") or []],
            "driver": (facts.get("gpu") or {}).get("driver_version"),
        },
    }
    write_report(artifact, doc, result)
    return result, code, doc.get("quality")


def _print_quality(quality: dict | None) -> None:
    """The quality table the build measured (build.json "quality"), after the check lines."""
    if quality:
        sys.stdout.write("\n" + quality_report.table(quality))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify.py", description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--full", action="store_true", help="sha256 of every file")
    parser.add_argument("--allow-skip", action="store_true", help="accept checks that cannot run")
    parser.add_argument("--facts-json", type=Path, help="probe.py output instead of this machine")
    parser.add_argument("--prompts", type=Path, help="golden prompts: .txt or .jsonl")
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--min-match", type=int, default=8)
    parser.add_argument("--no-golden", action="store_true")
    args = parser.parse_args(argv)
    try:
        if args.max_new_tokens < 1 or args.min_match < 1:
            raise ExportError("--max-new-tokens and --min-match must be at least 1")
        if args.prompts is not None:
            golden.read_prompts(args.prompts)
        result, code, quality = run(args)
    except ExportError as err:
        return report(PROG, err)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print("\n".join(render_checks(result["checks"], indent="")))
        _print_quality(quality)
        print(
            f"{PROG}: {result['verdict']}; report in {args.artifact / 'build.json'}",
            file=sys.stderr,
        )
    return code


if __name__ == "__main__":
    raise SystemExit(main())

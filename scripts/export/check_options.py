#!/usr/bin/env python3
"""Check a trtllm-serve options YAML against the LLM-API arguments of a TensorRT-LLM version.

Usage:
  check_options.py FILE --trtllm-version V

`trtllm-serve ... --extra_llm_api_options FILE` stops at start-up on any key its TorchLlmArgs
does not know; this checks every key (nested ones too) against the argument set recorded for
that version (lib/data/llm_api/), the same check a PyTorch-backend build runs on the YAML it writes.
Exit 0 valid, 2 a key the version rejects or a file that is not a YAML mapping (one line each).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import llm_api_options
import yaml
from errors import ExportError, report

PROG = "check_options"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="the options YAML")
    parser.add_argument("--trtllm-version", required=True, help="e.g. 1.2.0")
    args = parser.parse_args(argv)
    try:
        record = llm_api_options.load_record(args.trtllm_version)
        try:
            options = yaml.safe_load(args.file.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ExportError(f"cannot read {args.file}: {exc}") from None
        if not isinstance(options, dict):
            raise ExportError(f"{args.file}: not a YAML mapping")
    except ExportError as err:
        return report(PROG, err)
    errors = llm_api_options.check_options(options, record)
    for line in errors:
        print(f"{PROG}: error: {args.file}: {line}", file=sys.stderr)
    if errors:
        return 2
    print(
        f"{PROG}: {args.file}: {len(options)} keys valid for TensorRT-LLM {record['record_line']}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

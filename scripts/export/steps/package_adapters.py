#!/usr/bin/env python3
"""Copy the runtime-LoRA adapters of a build into its staging dir as lora/<name>/ (step "lora").

Usage:
  package_adapters.py --output DIR --adapter NAME PATH FINGERPRINT [--adapter ...]

Each adapter's adapter_config.json and adapter_model.safetensors are copied and hashed in one
pass and must match the FINGERPRINT the plan recorded (an adapter that changed after its checks
ran stops the build). DIR/adapters.json lists them (lib/lora_package.py) and is printed on
stdout. DIR must not exist. Exit 0 ok, 1 an adapter changed or an I/O failure, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import lora_package
from errors import ExportError, report

PROG = "package_adapters"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG}.py", description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path, help="new dir: <staging>/lora")
    parser.add_argument(
        "--adapter",
        required=True,
        action="append",
        nargs=3,
        metavar=("NAME", "PATH", "FINGERPRINT"),
    )
    args = parser.parse_args(argv)
    try:
        doc = lora_package.package([tuple(a) for a in args.adapter], args.output)
    except ExportError as err:
        return report(PROG, err)
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

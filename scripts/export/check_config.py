#!/usr/bin/env python3
"""Check a TensorRT-LLM build config and print the settings a build would use.

Usage:
  check_config.py --config FILE [--profile P]        the resolved config as JSON on stdout
  check_config.py --config FILE [--profile P] --get build.max_seq_len   one value
  check_config.py --config FILE --list-profiles      one profile per line: name<TAB>description
  check_config.py --schema                           the JSON Schema (configs/export/*.schema.json)

The whole file is checked, every profile included; each problem is one stderr line
`config error: FILE:LINE: key.path: message` (a profile that is not selected: `config warning:`).
Exit 0 valid, 2 any problem of the defaults or of the selected profile (nothing on stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import build_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="check_config.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", help="build config YAML")
    parser.add_argument("--profile", help="named profile to apply")
    parser.add_argument(
        "--get", metavar="KEY", help="print one resolved value, e.g. build.max_seq_len"
    )
    parser.add_argument("--list-profiles", action="store_true", help="name<TAB>description lines")
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors (its line printed)
        return int(exc.code or 0)
    if args.schema:
        print(json.dumps(build_config.json_schema(), indent=2))
        return 0
    if not args.config:
        parser.print_usage(sys.stderr)
        print("check_config.py: --config FILE is required", file=sys.stderr)
        return 2
    try:
        checked = build_config.check(args.config, args.profile)
    except build_config.ConfigError as exc:
        build_config.print_issues(exc.source, exc.issues, exc.warnings)
        return exc.code
    build_config.print_issues(args.config, [], checked.warnings)
    if args.list_profiles:
        for name, desc in checked.descriptions.items():
            print(f"{name}\t{desc}")
        return 0
    doc = build_config.document(checked.chosen, args.config, args.profile)
    if args.get:
        try:
            value = build_config._get(doc, args.get)
        except KeyError:
            print(f"check_config.py: no scalar key {args.get!r} in the config", file=sys.stderr)
            return 2
        print(json.dumps(value) if not isinstance(value, str) else value)
        return 0
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

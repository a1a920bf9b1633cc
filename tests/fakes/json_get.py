#!/usr/bin/env python3
"""Tests only: print one value of a JSON file by dotted key (a.b.0.c); exit 1 when absent.

Usage: json_get.py FILE KEY    (strings plain, anything else as JSON)
"""

import json
import sys


def main(argv: list[str]) -> int:
    path, key = argv
    with open(path, encoding="utf-8") as fh:
        node = json.load(fh)
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            print(f"json_get: no key {key!r} in {path}", file=sys.stderr)
            return 1
    print(node if isinstance(node, str) else json.dumps(node))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

#!/usr/bin/env python3
"""Write a synthetic trtllm-bench dataset locally (nothing downloaded), sized for one artifact.

Usage:
  bench_dataset.py --config-json FILE --output FILE [--num-requests N] [--input-len N]
                   [--output-len N] [--seed S]

FILE (--config-json) is the config.json of the served checkpoint or engine (its vocab_size, or
pretrained_config.vocab_size, bounds the token ids). Writes one JSON object per line, the
format trtllm-bench's --dataset reads:
{"task_id": i, "input_ids": [...], "output_tokens": N}; token ids are drawn uniformly from the
vocabulary above the first 100 ids (special tokens) with a fixed seed, so runs are comparable.
Prints {"schema_version": 1, "requests", "input_len", "output_len", "vocab_size", "sha256"} on
stdout. Exit 2 on bad input, with nothing written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

SCHEMA_VERSION = 1
RESERVED_IDS = 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-json", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    parser.add_argument("--num-requests", type=int, default=256)
    parser.add_argument("--input-len", type=int, default=1024)
    parser.add_argument("--output-len", type=int, default=256)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config_json.read_text())
        nested = config.get("text_config") or config.get("pretrained_config") or {}
        vocab = int(config.get("vocab_size") or nested["vocab_size"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"bench_dataset: error: no vocab_size in {args.config_json}: {exc}", file=sys.stderr)
        return 2
    for name in ("num_requests", "input_len", "output_len"):
        if getattr(args, name) < 1:
            print(
                f"bench_dataset: error: --{name.replace('_', '-')} must be at least 1",
                file=sys.stderr,
            )
            return 2
    low = RESERVED_IDS if vocab > 2 * RESERVED_IDS else 0
    rng = random.Random(args.seed)
    lines = []
    for i in range(args.num_requests):
        ids = [rng.randrange(low, vocab) for _ in range(args.input_len)]
        lines.append(json.dumps({"task_id": i, "input_ids": ids, "output_tokens": args.output_len}))
    text = "\n".join(lines) + "\n"
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(args.output)
    summary = {
        "schema_version": SCHEMA_VERSION,
        "requests": args.num_requests,
        "input_len": args.input_len,
        "output_len": args.output_len,
        "vocab_size": vocab,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

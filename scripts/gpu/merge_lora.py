#!/usr/bin/env python3
"""Merge PEFT adapters into their base model, streaming, exactly, with an optional check.

Usage:
  merge_lora.py --adapter DIR [--adapter DIR ...] --output DIR [--base DIR]
                [--dtype auto|bfloat16|float16|float32] [--device cpu|cuda]
                [--max-shard-size 5GB] [--overwrite] [--verify] [--quiet]

The base is --base, else the adapter's base_model_name_or_path when it is a local directory,
else that id in the local Hugging Face cache (never downloaded). Tensors stream one at a time
from the base's safetensors into new shards; merged values are computed in float32 and
rounded once. Several --adapter are applied in order, each to the result of the previous.
Writes a Hugging Face model dir (shards + index, config, generation config, tokenizer from
the adapter when it has one) plus merge_info.json, through a staging dir renamed at the end.

Exit status: 0 merged; 1 a step failed at run time (I/O, --verify mismatch);
2 bad input (adapter, base, options, existing output), nothing written.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lora_merge.errors import MergeError

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(text: str) -> int:
    m = _SIZE.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 5GB, 500MB, 2GiB)")
    value = float(m.group(1)) * _UNITS[(m.group(2) or "B").upper()]
    if value < 1:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return int(value)


def _help_parts() -> tuple[str, str]:
    """The header comment as (usage block, the rest): help prints each part once."""
    head, _, rest = (__doc__ or "").partition("\nUsage:\n")
    usage, _, after = rest.partition("\n\n")
    usage = "\n".join(line[2:] for line in usage.splitlines())
    return usage, f"{head.strip()}\n\n{after.strip()}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    usage, description = _help_parts()
    parser = argparse.ArgumentParser(
        prog="merge_lora.py",
        usage=usage,
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--adapter",
        action="append",
        required=True,
        type=Path,
        metavar="DIR",
        help="PEFT adapter dir (repeat to apply several, in order)",
    )
    parser.add_argument(
        "--output", required=True, type=Path, metavar="DIR", help="merged model dir to write"
    )
    parser.add_argument(
        "--base", metavar="DIR", help="base model dir (default: from adapter_config.json)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float16", "float32"],
        help="output dtype of float tensors (auto: keep the base's)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda"],
        help="where the merge math runs (default cpu)",
    )
    parser.add_argument(
        "--max-shard-size",
        default="5GB",
        type=parse_size,
        metavar="SIZE",
        help="largest output shard (default 5GB)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --output")
    parser.add_argument(
        "--verify",
        action="store_true",
        help="check every tensor, then logits vs the unmerged adapter model",
    )
    parser.add_argument("--workers", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    from lora_merge.run import Options, log, merge

    opts = Options(
        adapters=args.adapter,
        output=args.output,
        base=args.base,
        dtype=args.dtype,
        device=args.device,
        max_shard=args.max_shard_size,
        overwrite=args.overwrite,
        verify=args.verify,
        workers=args.workers,
        quiet=args.quiet,
    )
    try:
        info = merge(opts)
    except MergeError as err:
        print(f"merge_lora: error: {err}", file=sys.stderr)
        return err.exit_status
    except KeyboardInterrupt:
        print("merge_lora: interrupted; nothing published", file=sys.stderr)
        return 130
    counts = info.get("counts") or {}
    log(
        f"done in {info['duration_s']:.1f}s: {counts.get('merged', '?')} tensors merged, "
        f"{counts.get('replaced', '?')} replaced, {counts.get('copied', '?')} copied -> "
        f"{args.output}"
    )
    print(args.output)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

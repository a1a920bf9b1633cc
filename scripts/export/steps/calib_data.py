#!/usr/bin/env python3
"""Turn a local calibration file into the local-dataset dir TensorRT-LLM's tools read offline.

Usage:
  calib_data.py --input FILE --output-dir DIR [--num-samples N]

FILE: .jsonl, .json or .txt, read by lib/text_samples.py (the one reader of sample text; its
docstring has the formats). DIR gets train.jsonl and validation.jsonl, each with the first N
samples as {"text": ...} lines: quantize.py reads a local dataset dir's train split, the convert
scripts (SmoothQuant, int8 KV cache) its validation split when the dir's path contains "lambada"
(plan.py names it so), both the text column; nothing is downloaded (upstream issue #5247). A
.parquet file is copied unread as DIR/train.parquet and DIR/validation.parquet (it must have a
"text" column). Prints {"schema_version": 1, "samples": N or null, "sha256": ...} on stdout.
Exit 2 on bad input, nothing written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
from errors import ExportError
from text_samples import read_samples

SCHEMA_VERSION = 1
SUFFIXES = (".jsonl", ".json", ".txt", ".parquet")


def _write_splits(out_dir: Path, suffix: str, data: bytes) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation"):
        partial = out_dir / f"{split}.{suffix}.partial"
        partial.write_bytes(data)
        os.replace(partial, out_dir / f"{split}.{suffix}")


def _copy_parquet(src: Path, out_dir: Path) -> int:
    data = src.read_bytes()
    _write_splits(out_dir, "parquet", data)
    digest = hashlib.sha256(data).hexdigest()
    print(json.dumps({"schema_version": SCHEMA_VERSION, "samples": None, "sha256": digest}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="calib_data.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--num-samples", type=int, default=512)
    args = parser.parse_args(argv)
    try:
        if args.input.suffix not in SUFFIXES or not args.input.is_file():
            raise ExportError(f"{args.input}: expected an existing {'/'.join(SUFFIXES)} file")
        if args.num_samples < 1:
            raise ExportError("--num-samples must be at least 1")
        if args.input.suffix == ".parquet":
            return _copy_parquet(args.input, args.output_dir)
        texts = read_samples(args.input, args.num_samples)
    except OSError as err:
        print(f"calib_data.py: {args.input}: {err}", file=sys.stderr)
        return 2
    except ExportError as err:
        print(f"calib_data.py: {err}", file=sys.stderr)
        return err.code
    body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    _write_splits(args.output_dir, "jsonl", body.encode("utf-8"))
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    print(json.dumps({"schema_version": SCHEMA_VERSION, "samples": len(texts), "sha256": digest}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

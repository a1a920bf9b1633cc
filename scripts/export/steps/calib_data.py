#!/usr/bin/env python3
"""Turn a local calibration file into the local-dataset dir TensorRT-LLM's tools read offline.

Usage:
  calib_data.py --input FILE --output-dir DIR [--num-samples N]

FILE: .jsonl (one JSON object a line with "text", "prompt" (+ "completion") or "messages"
[{"role", "content"}]), .json (a list of such objects or of strings) or .txt (one sample per
non-empty line). DIR gets train.jsonl and validation.jsonl, each with the first N samples as
{"text": ...} lines: quantize.py reads a local dataset dir's train split, the convert scripts
(SmoothQuant, int8 KV cache) its validation split when the dir's path contains "lambada"
(plan.py names it so), both the text column; nothing is downloaded (upstream issue #5247). A
.parquet file is copied unread as DIR/train.parquet and DIR/validation.parquet (it must have a
"text" column). Prints {"schema_version": 1,
"samples": N or null, "sha256": ...} on stdout. Exit 2 on bad input, nothing written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

SCHEMA_VERSION = 1
SUFFIXES = (".jsonl", ".json", ".txt", ".parquet")


class CalibError(Exception):
    code = 2


def _text(obj, where: str) -> str:
    if not isinstance(obj, dict):
        raise CalibError(f"{where}: expected a JSON object")
    if isinstance(obj.get("text"), str):
        return obj["text"]
    if isinstance(obj.get("prompt"), str):
        return obj["prompt"] + str(obj.get("completion") or "")
    if isinstance(obj.get("messages"), list):
        return "\n".join(str(m.get("content", "")) for m in obj["messages"] if isinstance(m, dict))
    raise CalibError(f'{where}: no "text", "prompt" or "messages"')


def samples(path: Path, limit: int) -> list[str]:
    if path.suffix == ".json":
        try:
            items = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise CalibError(f"{path}: not JSON ({err})") from None
        if not isinstance(items, list):
            raise CalibError(f"{path}: expected a JSON list of samples")
        texts = [i if isinstance(i, str) else _text(i, f"{path}[{n}]") for n, i in enumerate(items)]
        texts = [t for t in texts if t.strip()][:limit]
        if not texts:
            raise CalibError(f"{path}: no calibration samples")
        return texts
    out: list[str] = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if len(out) >= limit:
                break
            line = line.strip()
            if not line:
                continue
            if path.suffix == ".jsonl":
                try:
                    obj = json.loads(line)
                except ValueError as err:
                    raise CalibError(f"{path}:{number}: not JSON ({err.msg})") from None
                line = _text(obj, f"{path}:{number}")
            if line.strip():
                out.append(line)
    if not out:
        raise CalibError(f"{path}: no calibration samples")
    return out


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
            raise CalibError(f"{args.input}: expected an existing {'/'.join(SUFFIXES)} file")
        if args.num_samples < 1:
            raise CalibError("--num-samples must be at least 1")
        if args.input.suffix == ".parquet":
            return _copy_parquet(args.input, args.output_dir)
        texts = samples(args.input, args.num_samples)
    except (OSError, UnicodeDecodeError) as err:
        print(f"calib_data.py: {args.input}: {err}", file=sys.stderr)
        return 2
    except CalibError as err:
        print(f"calib_data.py: {err}", file=sys.stderr)
        return err.code
    body = "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts)
    _write_splits(args.output_dir, "jsonl", body.encode("utf-8"))
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    print(json.dumps({"schema_version": SCHEMA_VERSION, "samples": len(texts), "sha256": digest}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

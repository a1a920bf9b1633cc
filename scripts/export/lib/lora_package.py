#!/usr/bin/env python3
"""Copy runtime-LoRA adapters into an artifact as lora/<name>/, with their fingerprints.

Usage:
  lora_package.py --output DIR --adapter NAME=PATH [--adapter NAME=PATH ...]

Each adapter dir gives adapter_config.json and adapter_model.safetensors (nothing else: the
base's tokenizer serves every adapter). DIR/<name>/ gets both files, copied and hashed in one
pass; DIR/adapters.json lists them (the build.json "lora" part) and is printed on stdout:

  {"schema_version": 1, "adapters": [{"name", "lora_int_id", "path": "lora/<name>", "source",
    "peft_type", "r", "max_rank", "lora_alpha", "use_rslora", "target_modules",
    "files": {"adapter_config.json": {"bytes", "sha256"}, "adapter_model.safetensors": {...}},
    "fingerprint": "sha256:<config sha + weights sha>"}]}

lora_int_id is the adapter's 1-based position: what a request sends with its lora_name.
DIR must not exist; it is written under DIR.partial and renamed, so it is complete or absent.
Exit 0 ok, 1 I/O failure, 2 bad input (a NAME=PATH that is not a readable PEFT adapter).
Library: package(adapters: [(name, path)], output) -> dict; manifest_part(artifact) -> dict|None.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

import lora_checks
from lora_plan import NAME

SCHEMA_VERSION = 1
FILES = ("adapter_config.json", "adapter_model.safetensors")
NAME_FILE = "adapters.json"


class PackageError(Exception):
    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def _copy_hashed(src: Path, dst: Path) -> dict:
    digest = hashlib.sha256()
    size = 0
    with src.open("rb") as fin, dst.open("wb") as fout:
        for block in iter(lambda: fin.read(1 << 24), b""):
            digest.update(block)
            fout.write(block)
            size += len(block)
    shutil.copystat(src, dst)
    return {"bytes": size, "sha256": "sha256:" + digest.hexdigest()}


def _entry(index: int, name: str, src: Path, dest: Path) -> dict:
    info, failed = lora_checks.inspect_adapter(name, src, f"--adapter {name}")
    if info is None:
        raise PackageError(failed[0]["message"])
    dest.mkdir(parents=True)
    files = {f: _copy_hashed(src / f, dest / f) for f in FILES}
    both = (files[FILES[0]]["sha256"] + files[FILES[1]]["sha256"]).encode()
    cfg = info.config
    return {
        "name": name,
        "lora_int_id": index + 1,
        "path": f"lora/{name}",
        "source": str(src.resolve()),
        "peft_type": cfg["peft_type"],
        "r": cfg.get("r"),
        "max_rank": info.max_rank,
        "lora_alpha": cfg.get("lora_alpha"),
        "use_rslora": bool(cfg.get("use_rslora")),
        "target_modules": sorted({m.rsplit(".", 1)[-1] for m in info.ranks}),
        "base_model_name_or_path": cfg.get("base_model_name_or_path"),
        "files": files,
        "fingerprint": "sha256:" + hashlib.sha256(both).hexdigest(),
    }


def package(adapters: list[tuple[str, str | Path]], output: str | Path) -> dict:
    """Copy every adapter into output/<name>/ and write output/adapters.json; returns that doc."""
    output = Path(output)
    if output.exists():
        raise PackageError(f"{output} already exists; packaging writes a new directory")
    names = [name for name, _ in adapters]
    bad = [n for n in names if not NAME.match(n)]
    if bad:
        raise PackageError(f"adapter names use a-z, 0-9, '.', '_', '-': {bad}")
    if len(set(names)) != len(names):
        raise PackageError(f"adapter names repeat: {names}")
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        entries = [_entry(i, n, Path(p), partial / n) for i, (n, p) in enumerate(adapters)]
        doc = {"schema_version": SCHEMA_VERSION, "adapters": entries}
        (partial / NAME_FILE).write_text(json.dumps(doc, indent=2) + "\n")
        partial.rename(output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return doc


def manifest_part(artifact: str | Path) -> dict | None:
    """build.json's "lora" part: the artifact's lora/adapters.json, or None without LoRA."""
    path = Path(artifact) / "lora" / NAME_FILE
    if not path.is_file():
        return None
    doc = json.loads(path.read_text())
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise PackageError(f"{path}: schema_version {doc.get('schema_version')!r}, expected 1")
    return doc


def _pair(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise argparse.ArgumentTypeError(f"expected NAME=PATH, got {text!r}")
    return name, path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lora_package.py", description=__doc__.splitlines()[0])
    parser.add_argument("--output", required=True, type=Path, help="new dir: <artifact>/lora")
    parser.add_argument("--adapter", required=True, action="append", type=_pair, help="NAME=PATH")
    args = parser.parse_args(argv)
    try:
        doc = package(args.adapter, args.output)
    except PackageError as err:
        print(f"lora_package.py: {err}", file=sys.stderr)
        return err.code
    except OSError as err:
        print(f"lora_package.py: {err}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Runtime-LoRA adapters in an artifact: their fingerprints, and the copy into lora/<name>/.

Library (stdlib only: the package step runs it, prepare.py fingerprints with it):
  fingerprint(adapter_dir, known=None) -> {"files": {name: {"bytes", "sha256"}},
                                          "fingerprint": "sha256:..."}
  package(adapters, output) -> dict     adapters: [(name, path, expected fingerprint)]; copies
                                        FILES of each into output/<name>/, checks each against
                                        the fingerprint the plan recorded, writes
                                        output/adapters.json and returns it
  read_packaged(artifact) -> dict | None    the artifact's lora/adapters.json

adapters.json: {"schema_version": 1, "adapters": [{"name", "lora_int_id", "path": "lora/<name>",
"files", "fingerprint"}]}; lora_int_id is the adapter's 1-based position, what a request sends
with its lora_name. The fingerprint is the sha256 of the two files' sha256s: the adapter's
identity in the build_id. Output is written as output.partial and renamed: complete or absent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from errors import ExportError, failed

SCHEMA_VERSION = 1
FILES = ("adapter_config.json", "adapter_model.safetensors")
LORA_DIR = "lora"
INDEX = "adapters.json"
BLOCK = 1 << 24


def _combined(files: dict) -> str:
    text = "".join(f"{name}\0{files[name]['sha256']}\0" for name in FILES)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _hash_file(src: Path, dst: Path | None = None) -> dict:
    """sha256 and size of src; with dst, copied there in the same pass."""
    digest, size = hashlib.sha256(), 0
    with src.open("rb") as fin:
        fout = dst.open("wb") if dst else None
        try:
            for block in iter(lambda: fin.read(BLOCK), b""):
                digest.update(block)
                size += len(block)
                if fout:
                    fout.write(block)
        finally:
            if fout:
                fout.close()
    return {"bytes": size, "sha256": "sha256:" + digest.hexdigest()}


def fingerprint(adapter_dir: Path | str, known: dict[str, str] | None = None) -> dict:
    """The adapter's files with bytes and sha256, and their combined fingerprint. known: file
    name -> a sha256 already computed (the merge's adapter loader hashes the weights)."""
    files = {}
    for name in FILES:
        path = Path(adapter_dir) / name
        if known and name in known:
            files[name] = {"bytes": path.stat().st_size, "sha256": known[name]}
        else:
            files[name] = _hash_file(path)
    return {"files": files, "fingerprint": _combined(files)}


def _copy_one(index: int, name: str, src: Path, expected: str, dest: Path) -> dict:
    try:
        dest.mkdir(parents=True)
        files = {f: _hash_file(src / f, dest / f) for f in FILES}
    except OSError as exc:
        raise failed(f"adapter {name}: {exc.filename}: {exc.strerror or exc}") from None
    got = _combined(files)
    if got != expected:
        raise failed(
            f"adapter {name} ({src}) changed after the build was planned ({got[:19]}, planned "
            f"{expected[:19]})",
            id="lora_changed",
            fix="run the build again: its checks and build_id must see this adapter",
        )
    return {
        "name": name,
        "lora_int_id": index + 1,
        "path": f"{LORA_DIR}/{name}",
        "files": files,
        "fingerprint": got,
    }


def package(adapters: list[tuple[str, str, str]], output: Path | str) -> dict:
    """Copy every adapter into output/<name>/ and write output/adapters.json; returns that doc."""
    output = Path(output)
    if output.exists():
        raise ExportError(f"{output} already exists; packaging writes a new directory")
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        entries = [
            _copy_one(i, name, Path(path), expected, partial / name)
            for i, (name, path, expected) in enumerate(adapters)
        ]
        doc = {"schema_version": SCHEMA_VERSION, "adapters": entries}
        (partial / INDEX).write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        partial.rename(output)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return doc


def read_packaged(artifact: Path | str) -> dict | None:
    """The artifact's (or staging dir's) lora/adapters.json, or None without runtime LoRA."""
    path = Path(artifact) / LORA_DIR / INDEX
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise failed(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        raise failed(f"{path}: no schema_version {SCHEMA_VERSION}")
    return doc

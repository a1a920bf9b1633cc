"""The build's identity (build_id) and its manifest (build.json), for build_tensorrt_llm.sh.

Usage:
  manifest.py inputs --config-json F --facts-json F --plan-json F --model-dir D
                     --staging D --cache-dir D --out F      # prints the build_id
  manifest.py status --output DIR --build-id ID   # prints absent|same|different|incomplete
  manifest.py get --file build.json --key KEY[.KEY...]      # prints one value
  manifest.py fingerprint --model-dir D                     # prints the model fingerprint JSON
  manifest.py steps --plan F                                # prints the plan's step names

build_id = sha256 over a canonical JSON of what decides the artifact's bytes and where it runs:
  - the model fingerprint (below): what the weights, tokenizer and config are;
  - the resolved config's hash (config_hash from build_config.py) and the backend;
  - the TensorRT-LLM and TensorRT versions the plan targets, the target GPU's name and compute
    capability, and the world size (engines are tied to all of these);
  - the planned commands, with the staging, model, cache and examples dirs and the interpreter
    replaced by placeholders (a toolkit change that changes a flag changes the id; a new pid, a
    moved repo or another examples dir does not).
Paths, times, hostnames, driver and torch versions are deliberately left out.

The model fingerprint is cheap by design (about a second for a 16 GB model) and exact where it
can be: sha256 of every small file (config.json, generation_config.json, tokenizer files, chat
template, *.index.json, merge_info.json: anything under 4 MiB) plus, for each large file, its
size, its safetensors header (names, dtypes, shapes, offsets) and a sample of its data: nine
64 KiB windows spread evenly over the file. A fine-tune changes nearly every weight, so a sample
catches it; merge_info.json (written by merge_lora.py) pins the adapter exactly. `--force` is the
escape hatch when weights were edited in a way no sample sees.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import struct
import sys
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
SMALL_FILE_BYTES = 4 * 1024 * 1024
SAMPLE_WINDOWS = 9
SAMPLE_BYTES = 64 * 1024
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024
IGNORED_NAMES = {".DS_Store"}


class ManifestError(Exception):
    """A domain error: main() prints it as one line and exits with its code."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


# --------------------------------------------------------------------------- fingerprint


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _safetensors_header(fh, size: int) -> bytes | None:
    if size < 8:
        return None
    fh.seek(0)
    (n,) = struct.unpack("<Q", fh.read(8))
    if n <= 0 or n > MAX_SAFETENSORS_HEADER or 8 + n > size:
        return None
    return fh.read(n)


def _large_file_digest(path: Path, size: int) -> dict[str, Any]:
    h = hashlib.sha256()
    entry: dict[str, Any] = {"size": size}
    with path.open("rb") as fh:
        header = _safetensors_header(fh, size) if path.suffix == ".safetensors" else None
        if header is not None:
            h.update(header)
            entry["safetensors_header_sha256"] = hashlib.sha256(header).hexdigest()
        span = max(size - SAMPLE_BYTES, 0)
        for i in range(SAMPLE_WINDOWS):
            fh.seek(span * i // (SAMPLE_WINDOWS - 1))
            h.update(fh.read(SAMPLE_BYTES))
    entry["sampled_sha256"] = h.hexdigest()
    return entry


def model_fingerprint(model_dir: Path) -> dict[str, Any]:
    """Per-file digests of a model dir and their combined sha256 (see the module docstring)."""
    if not model_dir.is_dir():
        raise ManifestError(f"model dir not found: {model_dir}")
    files: dict[str, Any] = {}
    for path in sorted(model_dir.rglob("*")):
        if not path.is_file() or path.name in IGNORED_NAMES:
            continue
        rel = path.relative_to(model_dir).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # .cache/ and other hidden tool state
        size = path.stat().st_size
        if size <= SMALL_FILE_BYTES:
            files[rel] = {"size": size, "sha256": _sha256_file(path)}
        else:
            files[rel] = _large_file_digest(path, size)
    if "config.json" not in files:
        raise ManifestError(f"{model_dir} has no config.json: not a Hugging Face model dir")
    digest = hashlib.sha256(_canonical(files).encode()).hexdigest()
    return {"sha256": digest, "method": "small-files-sha256+large-files-sampled", "files": files}


# --------------------------------------------------------------------------- build_id


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ManifestError(f"{what} not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{what} is not valid JSON: {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ManifestError(f"{what} is not a JSON object: {path}")
    version = doc.get("schema_version")
    if version is not None and version != SCHEMA_VERSION:
        raise ManifestError(f"{what} has schema_version {version}, expected {SCHEMA_VERSION}")
    return doc


def normalize_argv(argv: list[str], replacements: dict[str, str]) -> list[str]:
    """argv with machine-specific paths replaced by placeholders (longest path first)."""
    ordered = sorted(((k, v) for k, v in replacements.items() if k), key=lambda kv: -len(kv[0]))
    # whole path components only: /c must not match inside /ex/c.py
    patterns = [
        (re.compile(r"(?<![\w.-])" + re.escape(path.rstrip("/")) + r"(?=/|$|[=:,])"), ph)
        for path, ph in ordered
    ]
    out = []
    for arg in argv:
        for pattern, placeholder in patterns:
            arg = pattern.sub(placeholder, arg)
        out.append(arg)
    return out


def build_inputs(
    config_doc: dict[str, Any],
    facts: dict[str, Any],
    plan: dict[str, Any],
    model_dir: Path,
    staging: Path,
    cache_dir: Path,
) -> dict[str, Any]:
    """What build_id hashes, plus the provenance build.json records beside it."""
    fingerprint = model_fingerprint(model_dir)
    config = config_doc.get("config", {})
    config_hash = config_doc.get("config_hash") or (
        "sha256:" + hashlib.sha256(_canonical(config).encode()).hexdigest()
    )
    packages = facts.get("packages") or {}
    gpu = plan.get("gpu") or {}
    replacements = {
        str(staging): "<staging>",
        str(model_dir): "<model>",
        str(model_dir.resolve()): "<model>",
        str(cache_dir): "<cache>",
        os.environ.get("PYTHON", ""): "<python>",
        str((facts.get("python") or {}).get("executable") or ""): "<python>",
        str(plan.get("examples_dir") or ""): "<examples>",
    }
    commands = [
        {"name": s.get("name"), "argv": normalize_argv(list(s.get("argv", [])), replacements)}
        for s in plan.get("steps", [])
    ]
    identity = {
        "model_sha256": fingerprint["sha256"],
        "config_hash": config_hash,
        "backend": plan.get("backend") or config.get("backend", "engine"),
        "trtllm_version": plan.get("trtllm_version"),
        "tensorrt_version": packages.get("tensorrt"),
        "gpu_name": gpu.get("name"),
        "gpu_compute_capability": gpu.get("compute_capability"),
        "world_size": plan.get("world_size", 1),
        "commands": commands,
    }
    build_id = "sha256:" + hashlib.sha256(_canonical(identity).encode()).hexdigest()
    merge_info = model_dir / "merge_info.json"
    adapter = None
    if merge_info.is_file():
        try:
            adapter = json.loads(merge_info.read_text())
        except json.JSONDecodeError:
            adapter = {"error": "merge_info.json is not valid JSON"}
    return {
        "schema_version": SCHEMA_VERSION,
        "build_id": build_id,
        "identity": identity,
        "model": {"dir": str(model_dir.resolve()), "fingerprint": fingerprint},
        "adapter": adapter,
    }


# --------------------------------------------------------------------------- status / get


def output_status(output: Path, build_id: str) -> str:
    """absent | incomplete (a dir without a readable build.json) | same | different."""
    if not output.exists():
        return "absent"
    manifest = output / "build.json"
    try:
        doc = json.loads(manifest.read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError):
        return "incomplete"
    return "same" if doc.get("build_id") == build_id else "different"


def get_key(doc: dict[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise ManifestError(f"no key {dotted!r}", code=1)
    return cur


def step_names(plan: dict[str, Any]) -> list[str]:
    """The plan's step names in order; each must be a plain word (it names files)."""
    names = []
    for step in plan.get("steps") or []:
        name = step.get("name") if isinstance(step, dict) else None
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            raise ManifestError(f"plan step has no usable name: {step!r}", code=1)
        names.append(name)
    return names


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)


# --------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build identity and manifest")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_in = sub.add_parser("inputs", help="hash the inputs; print build_id")
    for flag in ("--config-json", "--facts-json", "--plan-json", "--model-dir", "--staging"):
        p_in.add_argument(flag, type=Path, required=True)
    p_in.add_argument("--cache-dir", type=Path, default=Path(""))
    p_in.add_argument("--out", type=Path, required=True)
    p_st = sub.add_parser("status", help="compare an output dir's build.json with a build_id")
    p_st.add_argument("--output", type=Path, required=True)
    p_st.add_argument("--build-id", required=True)
    p_get = sub.add_parser("get", help="print one value of a JSON file")
    p_get.add_argument("--file", type=Path, required=True)
    p_get.add_argument("--key", required=True)
    p_steps = sub.add_parser("steps", help="print the plan's step names, one a line")
    p_steps.add_argument("--plan", type=Path, required=True)
    p_fp = sub.add_parser("fingerprint", help="print the model fingerprint")
    p_fp.add_argument("--model-dir", type=Path, required=True)
    args = parser.parse_args(argv)

    try:
        if args.cmd == "inputs":
            doc = build_inputs(
                _load_json(args.config_json, "resolved config"),
                _load_json(args.facts_json, "facts"),
                _load_json(args.plan_json, "plan"),
                args.model_dir,
                args.staging,
                args.cache_dir,
            )
            write_json_atomic(args.out, doc)
            print(doc["build_id"])
        elif args.cmd == "status":
            print(output_status(args.output, args.build_id))
        elif args.cmd == "steps":
            for name in step_names(_load_json(args.plan, "plan")):
                print(name)
        elif args.cmd == "get":
            value = get_key(_load_json(args.file, "JSON file"), args.key)
            print(value if isinstance(value, str) else json.dumps(value))
        else:
            json.dump(model_fingerprint(args.model_dir), sys.stdout, indent=2)
            sys.stdout.write("\n")
    except ManifestError as exc:
        print(f"manifest: error: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

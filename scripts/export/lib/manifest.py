"""The build's identity (build_id) and the model fingerprint it is made of.

Library:
  model_fingerprint(model_dir) -> dict
  build_inputs(config_hash, facts, plan, model_dir, staging, cache_dir) -> dict   build_id & co
  output_status(output, build_id) -> (absent|incomplete|same|damaged|different, details)
  load_json(path, what) / write_json_atomic(path, doc)

build_id = sha256 over a canonical JSON of what decides the artifact's bytes and where it runs:
  - the model fingerprint (below): what the weights, tokenizer and config are;
  - the resolved config's hash and the backend;
  - the TensorRT-LLM and TensorRT versions the plan targets, the target GPU's name and compute
    capability, and the world size (engines are tied to all of these);
  - the planned commands, with the staging, model, cache and examples dirs, the interpreter,
    the toolkit's own location and each runtime-LoRA adapter's dir replaced by placeholders (a
    toolkit change that changes a flag changes the id; a new pid, a moved checkout or another
    examples dir does not); the lora step's argv carries each adapter's fingerprint, so a
    changed adapter changes the id.
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

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import artifact_files
import model_files
from errors import ExportError

SCHEMA_VERSION = 1
SMALL_FILE_BYTES = 4 * 1024 * 1024
TOOLKIT_DIR = Path(__file__).resolve().parents[2]  # scripts/
IGNORED_NAMES = {".DS_Store"}


# --------------------------------------------------------------------------- fingerprint


def _large_file_digest(path: Path, size: int) -> dict[str, Any]:
    h = hashlib.sha256()
    entry: dict[str, Any] = {"size": size}
    with path.open("rb") as fh:
        header = model_files.header_bytes(fh, size) if path.suffix == ".safetensors" else None
        if header is not None:
            h.update(header)
            entry["safetensors_header_sha256"] = hashlib.sha256(header).hexdigest()
        artifact_files.update_with_windows(h, fh, size)
    entry["sampled_sha256"] = h.hexdigest()
    return entry


def model_fingerprint(model_dir: Path) -> dict[str, Any]:
    """Per-file digests of a model dir and their combined sha256 (see the module docstring)."""
    if not model_dir.is_dir():
        raise ExportError(f"model dir not found: {model_dir}")
    files: dict[str, Any] = {}
    for path in sorted(model_dir.rglob("*")):
        if not path.is_file() or path.name in IGNORED_NAMES:
            continue
        rel = path.relative_to(model_dir).as_posix()
        if any(part.startswith(".") for part in Path(rel).parts):
            continue  # .cache/ and other hidden tool state
        size = path.stat().st_size
        if size <= SMALL_FILE_BYTES:
            files[rel] = {"size": size, "sha256": artifact_files.sha256(path)}
        else:
            files[rel] = _large_file_digest(path, size)
    if "config.json" not in files:
        raise ExportError(f"{model_dir} has no config.json: not a Hugging Face model dir")
    digest = hashlib.sha256(_canonical(files).encode()).hexdigest()
    return {"sha256": digest, "method": "small-files-sha256+large-files-sampled", "files": files}


# --------------------------------------------------------------------------- build_id


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def load_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object of this schema version; ExportError (exit 2) naming the file otherwise."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ExportError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ExportError(f"{what} is not readable JSON: {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise ExportError(f"{what} is not a JSON object: {path}")
    version = doc.get("schema_version")
    if version is not None and version != SCHEMA_VERSION:
        raise ExportError(f"{what} has schema_version {version}, expected {SCHEMA_VERSION}")
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
    config_hash: str,
    facts: dict[str, Any],
    plan: dict[str, Any],
    model_dir: Path,
    staging: Path,
    cache_dir: Path | None,
) -> dict[str, Any]:
    """What build_id hashes, plus the provenance build.json records beside it."""
    fingerprint = model_fingerprint(model_dir)
    packages = facts.get("packages") or {}
    gpu = plan.get("gpu") or {}
    replacements = {
        str(staging): "<staging>",
        str(model_dir): "<model>",
        str(model_dir.resolve()): "<model>",
        str(cache_dir or ""): "<cache>",
        str(TOOLKIT_DIR): "<toolkit>",
        os.environ.get("PYTHON", ""): "<python>",
        str((facts.get("python") or {}).get("executable") or ""): "<python>",
        str(plan.get("examples_dir") or ""): "<examples>",
    }
    for adapter in (plan.get("lora") or {}).get("adapters") or []:  # its fingerprint stays
        replacements[adapter["source"]] = f"<lora:{adapter['name']}>"
    commands = [
        {"name": s["name"], "argv": normalize_argv(list(s["argv"]), replacements)}
        for s in plan["steps"]
    ]
    identity = {
        "model_sha256": fingerprint["sha256"],
        "config_hash": config_hash,
        "backend": plan["backend"],
        "trtllm_version": plan["trtllm_version"],
        "tensorrt_version": packages.get("tensorrt"),
        "gpu_name": gpu.get("name"),
        "gpu_compute_capability": gpu.get("compute_capability"),
        "world_size": plan["world_size"],
        "commands": commands,
    }
    build_id = "sha256:" + hashlib.sha256(_canonical(identity).encode()).hexdigest()
    return {
        "build_id": build_id,
        "identity": identity,
        "model": {"dir": str(model_dir.resolve()), "fingerprint": fingerprint},
        "adapter": _merge_info(model_dir),
    }


def _merge_info(model_dir: Path) -> dict | None:
    merge_info = model_dir / "merge_info.json"
    if not merge_info.is_file():
        return None
    try:
        return json.loads(merge_info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {"error": "merge_info.json is not valid JSON"}


# --------------------------------------------------------------------------- status / get


def output_status(output: Path, build_id: str) -> tuple[str, dict]:
    """(status, details): absent | incomplete (a dir without a readable build.json) | same |
    damaged (this build, with files missing or changed since it was published: details names
    them) | different."""
    if not output.exists():
        return "absent", {}
    try:
        doc = json.loads((output / "build.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "incomplete", {}
    if not isinstance(doc, dict) or doc.get("build_id") != build_id:
        return "different", {}
    files = (doc.get("artifact") or {}).get("files")
    if not isinstance(files, dict):
        return "damaged", {"missing": [], "changed": [], "why": "build.json lists no files"}
    missing, changed = artifact_files.damage(output, files)
    if missing or changed:
        return "damaged", {"missing": missing, "changed": changed}
    return "same", {}


def quant_mode(doc: dict[str, Any]) -> str | None:
    """build.json's quantization.mode (of inputs.config), None when it records none."""
    return (((doc.get("inputs") or {}).get("config") or {}).get("quantization") or {}).get("mode")


def write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    """doc as JSON at path, readable by others (0644), replaced in one rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)

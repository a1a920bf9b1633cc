"""The base model: where it is (never downloaded), its config, and its tensor index."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lora_merge.errors import bad_input
from lora_merge.safetensors_io import TensorInfo, read_header

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"


@dataclass
class BaseModel:
    path: Path
    config: dict
    tensors: dict[str, TensorInfo]  # in checkpoint order
    files: list[Path]
    header_digest: str = field(default="")  # sha256 over the index and every file's header


def hf_cache_dirs() -> list[Path]:
    """The Hugging Face hub cache, where huggingface_hub would look (offline)."""
    if os.environ.get("HF_HUB_CACHE"):
        return [Path(os.environ["HF_HUB_CACHE"])]
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return [Path(hf_home) / "hub"]


def _from_hub_cache(model_id: str) -> tuple[Path | None, list[str]]:
    looked: list[str] = []
    if model_id.count("/") > 1 or model_id.startswith((".", "/")):
        return None, looked
    for cache in hf_cache_dirs():
        repo = cache / ("models--" + model_id.replace("/", "--"))
        looked.append(str(repo))
        snapshots = repo / "snapshots"
        ref = repo / "refs" / "main"
        candidates = []
        if ref.is_file():
            candidates.append(snapshots / ref.read_text().strip())
        if snapshots.is_dir():
            candidates += sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True)
        for snap in candidates:
            if (snap / "config.json").is_file():
                return snap, looked
    return None, looked


def locate(base_arg: str | None, adapter_base: str | None) -> Path:
    """--base, else the adapter's base_model_name_or_path as a local dir, else the HF cache."""
    looked: list[str] = []
    if base_arg:
        path = Path(base_arg)
        if (path / "config.json").is_file():
            return path
        raise bad_input("base_not_found", f"--base {base_arg}: no config.json there")
    if not adapter_base:
        raise bad_input(
            "base_not_found",
            "the adapter names no base_model_name_or_path; pass --base DIR",
        )
    path = Path(adapter_base).expanduser()
    looked.append(str(path))
    if (path / "config.json").is_file():
        return path
    snap, cache_looked = _from_hub_cache(adapter_base)
    looked += cache_looked
    if snap is not None:
        return snap
    raise bad_input(
        "base_not_found",
        f"base model {adapter_base!r} not found (looked in: {', '.join(looked)}); "
        "pass --base DIR (merge_lora.py never downloads)",
    )


def _weight_files(path: Path) -> list[Path]:
    index = path / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise bad_input("corrupt_index", f"{index}: not a safetensors index ({err})") from err
        names = list(dict.fromkeys(weight_map.values()))
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise bad_input("missing_shard", f"{index}: shard(s) missing: {', '.join(missing)}")
        return [path / n for n in names]
    if (path / SINGLE_NAME).is_file():
        return [path / SINGLE_NAME]
    if any(path.glob("*.bin")):
        raise bad_input(
            "no_safetensors",
            f"{path}: only PyTorch .bin weights; convert the base to safetensors first",
        )
    raise bad_input("no_weights", f"{path}: no model.safetensors or {INDEX_NAME}")


def read_config(path: Path) -> dict:
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise bad_input("corrupt_config", f"{path / 'config.json'}: {err}") from err
    if not isinstance(config, dict):
        raise bad_input("corrupt_config", f"{path / 'config.json'}: not a JSON object")
    return config


def load(path: Path) -> BaseModel:
    config = read_config(path)
    quant = config.get("quantization_config") or (config.get("text_config") or {}).get(
        "quantization_config"
    )
    if quant:
        method = quant.get("quant_method", "unknown") if isinstance(quant, dict) else "unknown"
        raise bad_input(
            "quantized_base",
            f"{path}: base is quantized ({method}); merge into the original 16-bit base "
            "(for a QLoRA adapter: the model it was quantized from)",
        )
    files = _weight_files(path)
    digest = hashlib.sha256()
    index = path / INDEX_NAME
    if index.is_file():
        digest.update(index.read_bytes())
    tensors: dict[str, TensorInfo] = {}
    for f in files:
        found, _meta, raw = read_header(f)
        digest.update(f.name.encode() + b"\0" + raw)
        for name, info in found.items():
            if name in tensors:
                raise bad_input("corrupt_index", f"{path}: tensor {name} appears in two shards")
            tensors[name] = info
    return BaseModel(path, config, tensors, files, "sha256:" + digest.hexdigest())

"""Which adapter modules TensorRT-LLM's runtime LoRA can serve, per version and route
(data/lora.json, the one home of these tables).

Library (lora_checks.py, lora_plan.py):
  hf_map(version) -> (map, source)     Hugging Face module name -> TensorRT-LLM LoRA module, the
                                       newest entry at or below version
  build_choices(version) -> list[str]  trtllm-build's --lora_target_modules choices
  supported(version, backend) -> dict  the map; for the engine route only the modules that
                                       trtllm-build accepts
  trtllm_module(path, mapping)         'model.layers.0.mlp.gate_proj' -> 'mlp_h_to_4h' (or None)
  hf_name(path, mapping)               'model.layers.0.mlp.gate_proj' -> 'gate_proj'
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import versions

DATA = Path(__file__).resolve().parent / "data" / "lora.json"


@lru_cache(maxsize=1)
def table() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def _newest(rows: list[dict], version: str) -> dict | None:
    """The row with the newest `since` at or below version (a pre-release is in its line)."""
    v = versions.parse(version)
    if v is None:
        return None
    line = versions.parse(v.base_version)
    usable = [r for r in rows if versions.parse(r["since"]) <= line]
    return max(usable, key=lambda r: versions.parse(r["since"])) if usable else None


def hf_map(version: str) -> tuple[dict[str, str], str]:
    """The HF -> TensorRT-LLM module map of the newest line at or below version, and its source."""
    row = _newest(table()["hf_to_trtllm"], version)
    if row is None:
        return {}, f"no LoRA module map at or below TensorRT-LLM {version}"
    return dict(row["map"]), row["source"]


def build_choices(version: str) -> list[str]:
    """--lora_target_modules choices of trtllm-build at version ([] before the first record)."""
    row = _newest(table()["trtllm_build_modules"], version)
    return list(row["modules"]) if row else []


def supported(version: str, backend: str) -> dict[str, str]:
    mapping, _ = hf_map(version)
    if backend != "engine":
        return mapping
    choices = set(build_choices(version))
    return {hf: trt for hf, trt in mapping.items() if trt in choices}


def _suffixes(module_path: str, mapping: dict[str, str]) -> list[str]:
    return [hf for hf in mapping if module_path == hf or module_path.endswith("." + hf)]


def trtllm_module(module_path: str, mapping: dict[str, str]) -> str | None:
    """The TensorRT-LLM module of an adapter module path, by the longest matching HF suffix."""
    found = _suffixes(module_path, mapping)
    return mapping[max(found, key=len)] if found else None


def hf_name(module_path: str, mapping: dict[str, str]) -> str:
    """The HF name a module path is known by: its longest mapped suffix, else its last part."""
    found = _suffixes(module_path, mapping)
    return max(found, key=len) if found else module_path.rsplit(".", 1)[-1]

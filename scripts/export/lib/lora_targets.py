"""Which adapter modules TensorRT-LLM's runtime LoRA can serve, per version and backend.

Library (lora_checks.py, lora_plan.py):
  hf_map(version) -> (map, source)          Hugging Face module name -> TensorRT-LLM LoRA module,
                                            the newest entry of data/lora.json at or below version
  build_choices(version) -> list[str]       trtllm-build's recorded --lora_target_modules choices
                                            (tests/contracts/trtllm-build.<v>.json, newest <= v)
  supported(version, backend) -> dict       the map, narrowed for the engine route to those choices
  trtllm_module(module_path, mapping) -> str | None
                                            'model.layers.0.mlp.gate_proj' -> 'mlp_h_to_4h'
The engine route is what trtllm-build accepts and its loader maps; the PyTorch route is what
the LLM API's loader maps (it has no choices list).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from family import version_key

LIB_DIR = Path(__file__).resolve().parent
DATA = LIB_DIR / "data" / "lora.json"
CONTRACTS = LIB_DIR.parents[2] / "tests" / "contracts"


def _line(version: str) -> tuple[int, ...]:
    return version_key(version)[:2]


@lru_cache(maxsize=1)
def _table() -> dict:
    return json.loads(DATA.read_text())


def hf_map(version: str) -> tuple[dict[str, str], str]:
    """The HF -> TensorRT-LLM module map of the newest line at or below version, and its source."""
    rows = [r for r in _table()["hf_to_trtllm"] if _line(r["since"]) <= _line(version)]
    if not rows:
        return {}, f"no LoRA module map at or below TensorRT-LLM {version}"
    best = max(rows, key=lambda r: _line(r["since"]))
    return dict(best["map"]), best["source"]


def build_choices(version: str) -> list[str]:
    """--lora_target_modules choices of the newest recorded trtllm-build at or below version."""
    found = []
    for path in CONTRACTS.glob("trtllm-build.*.json"):
        v = path.name[len("trtllm-build.") : -len(".json")]
        if version_key(v) <= version_key(version):
            found.append((version_key(v), path))
    if not found:
        return []
    record = json.loads(max(found)[1].read_text())
    for arg in record["arguments"]:
        if "--lora_target_modules" in arg["flags"]:
            return list(arg.get("choices") or [])
    return []


def supported(version: str, backend: str) -> dict[str, str]:
    mapping, _ = hf_map(version)
    if backend != "engine":
        return mapping
    choices = set(build_choices(version))
    return {hf: trt for hf, trt in mapping.items() if trt in choices}


def trtllm_module(module_path: str, mapping: dict[str, str]) -> str | None:
    """The TensorRT-LLM module of an adapter module path, by the longest matching HF suffix."""
    best = None
    for hf in mapping:
        if (module_path == hf or module_path.endswith("." + hf)) and (
            best is None or len(hf) > len(best)
        ):
            best = hf
    return mapping[best] if best else None


def hf_name(module_path: str, mapping: dict[str, str]) -> str:
    """The HF name an adapter module path is known by: its longest mapped suffix, else its leaf."""
    keys = [hf for hf in mapping if module_path == hf or module_path.endswith("." + hf)]
    return max(keys, key=len) if keys else module_path.rsplit(".", 1)[-1]

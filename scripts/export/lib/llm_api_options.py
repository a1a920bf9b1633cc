#!/usr/bin/env python3
"""The options YAML of a PyTorch-backend bundle, checked against TensorRT-LLM's recorded LLM API.

`trtllm-serve <checkpoint> --extra_llm_api_options llm_api_options.yaml` loads the YAML into
TorchLlmArgs, a pydantic model that forbids unknown keys: one misspelt or renamed key stops the
server at start-up, on the GPU box, after the model has been copied there. This module writes the
YAML from the validated build config and checks every key, nested ones included, against the
argument set recorded for that TensorRT-LLM version (data/llm_api/llm_args.<major.minor>.json),
so the mistake is caught at build time. scripts/export/check_options.py checks a hand-written one.

Library:
  build_options(cfg) -> dict                      cfg: the validated BuildConfig
  load_record(version) -> dict                    the newest record at or below version
  check_options(options, record) -> list[str]     one message per key the record rejects
  render_yaml(options, record) -> str
Errors are errors.ExportError (exit 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from build_config import BuildConfig
from errors import ExportError
from packaging.version import Version
from versions import parse

RECORD_DIR = Path(__file__).resolve().parent / "data" / "llm_api"


def _records(record_dir: Path) -> list[tuple[Version, Path]]:
    found = []
    for path in record_dir.glob("llm_args.*.json"):
        found.append((parse(path.name[len("llm_args.") : -len(".json")]), path))
    return sorted(found)


def load_record(version: str, record_dir: Path = RECORD_DIR) -> dict:
    """The record of the newest recorded line at or below `version` (1.2.1 -> llm_args.1.2; a
    pre-release belongs to its line: 1.3.0rc20 -> llm_args.1.3)."""
    parsed = parse(version)
    if parsed is None:
        raise ExportError(f"not a TensorRT-LLM version: {version!r}", key="target.trtllm_version")
    want = Version(parsed.base_version)
    if want < Version("1.0.0"):
        raise ExportError(
            f"TensorRT-LLM {version} has no PyTorch backend for trtllm-serve; backend: pytorch "
            "needs 1.0 or newer (use backend: engine)",
            key="target.trtllm_version",
        )
    records = _records(record_dir)
    usable = [(key, path) for key, path in records if key <= want]
    if not usable:
        known = ", ".join(f"{k.major}.{k.minor}" for k, _ in records) or "none"
        raise ExportError(f"no LLM-API record at or below TensorRT-LLM {version} ({known})")
    key, path = usable[-1]
    record = json.loads(path.read_text())
    record["record_file"] = path.name
    record["record_line"] = f"{key.major}.{key.minor}"
    return record


def build_options(cfg: BuildConfig) -> dict:
    """The LLM-API options of the validated build config (backend pytorch)."""
    b, r = cfg.build, cfg.runtime
    options: dict = {
        "max_batch_size": b.max_batch_size,
        "max_num_tokens": b.max_num_tokens,
        "max_seq_len": b.max_seq_len,
        "tensor_parallel_size": cfg.parallel.tp_size,
        "pipeline_parallel_size": cfg.parallel.pp_size,
        "dtype": cfg.dtype,
        "trust_remote_code": False,
        "enable_chunked_prefill": r.enable_chunked_context,
        "kv_cache_config": {
            "free_gpu_memory_fraction": r.kv_cache_free_gpu_memory_fraction,
            "enable_block_reuse": r.enable_block_reuse,
            "dtype": cfg.quantization.kv_cache_dtype,
        },
        # NVIDIA's serving guidance: pad decode batches up to a captured graph size, and
        # capture up to the scheduler's batch size so large batches stay on graphs too.
        "cuda_graph_config": (
            {"enable_padding": True, "max_batch_size": b.max_batch_size} if r.cuda_graphs else None
        ),
    }
    return options


def check_options(options: dict, record: dict) -> list[str]:
    """Every key the record does not list, as 'key: message' lines (empty when all pass)."""
    line = record.get("record_line", record.get("trtllm_version", "?"))
    fields = set(record["fields"])
    nested = record.get("nested", {})
    errors = []
    for key, value in options.items():
        if key not in fields:
            hint = ""
            if key in record.get("trt_backend_only", []):
                hint = " (a TensorRT-engine option; the PyTorch backend rejects it)"
            elif not record.get("complete", True):
                hint = " (not verified for this line: the record is partial)"
            errors.append(f"{key}: not an LLM-API argument of TensorRT-LLM {line}{hint}")
            continue
        if isinstance(value, dict):
            if key not in nested:
                errors.append(f"{key}: no recorded sub-keys for TensorRT-LLM {line}")
                continue
            for sub in value:
                if sub not in nested[key]:
                    errors.append(f"{key}.{sub}: not a field of {key} in TensorRT-LLM {line}")
    return errors


def render_yaml(options: dict, record: dict) -> str:
    """The YAML text with a header naming its generator and the record it was checked against."""
    header = (
        "# trtllm-serve --extra_llm_api_options for this bundle; written by llm_api_options.py.\n"
        f"# Keys checked against the LLM-API record {record['record_file']} "
        f"(TensorRT-LLM {record['record_line']}).\n"
    )
    return header + yaml.safe_dump(options, sort_keys=False, default_flow_style=False)

#!/usr/bin/env python3
"""The options YAML of a PyTorch-backend bundle, checked against TensorRT-LLM's recorded LLM API.

Usage:
  llm_api_options.py --config-json FILE --trtllm-version V [--output FILE] [--json]
  llm_api_options.py --check FILE --trtllm-version V

`trtllm-serve <checkpoint> --extra_llm_api_options llm_api_options.yaml` loads the YAML into
TorchLlmArgs, a pydantic model that forbids unknown keys: one misspelt or renamed key stops the
server at start-up, on the GPU box, after the model has been copied there. This helper writes the
YAML from the resolved build config (docs/internals.md) and checks every key, nested ones
included, against the argument set recorded for that TensorRT-LLM version
(lib/data/llm_api/llm_args.<major.minor>.json), so the mistake is caught at build time.

Without --output the YAML goes to stdout; --json prints {"schema_version", "options",
"record"} instead. --check validates an existing YAML file. Exit 0 ok, 2 bad input (unknown
key for that version, a config this backend cannot serve, no record for the version).

Library (used by bundle.py and the tests):
  build_options(config) -> dict                   config: the resolved config's "config" object
  load_record(version) -> dict                    the newest record at or below version
  check_options(options, record) -> list[str]     one message per key the record rejects
  render_yaml(options, record) -> str
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

SCHEMA_VERSION = 1
RECORD_DIR = Path(__file__).resolve().parent / "data" / "llm_api"
# Quantization modes a PyTorch-backend checkpoint can carry (ModelOpt's HF export);
# the others exist only as TensorRT engine build options.
PYTORCH_QUANT_MODES = ("none", "fp8", "nvfp4", "int4_awq", "w4a8_awq")
KV_CACHE_DTYPES = {"auto": "auto", "fp8": "fp8"}


class OptionsError(Exception):
    """Bad input: a config this backend cannot serve, or a key the record rejects."""

    code = 2


def version_key(version: str) -> tuple[int, ...]:
    """'1.3.0rc20' -> (1, 3, 0): the leading numeric parts."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", str(version))
    if not match:
        raise OptionsError(f"not a TensorRT-LLM version: {version!r}")
    parts = tuple(int(p) for p in match.group(1).split("."))
    return ((*parts, 0, 0, 0))[:3]


def _records(record_dir: Path) -> list[tuple[tuple[int, ...], Path]]:
    found = []
    for path in record_dir.glob("llm_args.*.json"):
        found.append((version_key(path.name[len("llm_args.") : -len(".json")]), path))
    return sorted(found)


def load_record(version: str, record_dir: Path = RECORD_DIR) -> dict:
    """The record of the newest recorded line at or below `version` (1.2.1 -> llm_args.1.2)."""
    want = version_key(version)
    records = _records(record_dir)
    if want < (1, 0, 0):
        raise OptionsError(
            f"TensorRT-LLM {version} has no PyTorch backend for trtllm-serve; "
            "backend: pytorch needs 1.0 or newer (use backend: engine)"
        )
    usable = [(key, path) for key, path in records if key <= want]
    if not usable:
        known = ", ".join(".".join(map(str, k[:2])) for k, _ in records) or "none"
        raise OptionsError(
            f"no LLM-API record at or below TensorRT-LLM {version} (recorded: {known})"
        )
    key, path = usable[-1]
    record = json.loads(path.read_text())
    record["record_file"] = path.name
    record["record_line"] = ".".join(map(str, key[:2]))
    return record


def build_options(config: dict) -> dict:
    """The LLM-API options for the resolved config (the "config" object of build_config.py)."""
    build = config.get("build", {})
    parallel = config.get("parallel", {})
    runtime = config.get("runtime", {})
    quant = config.get("quantization", {})
    mode = quant.get("mode", "none")
    if mode not in PYTORCH_QUANT_MODES:
        raise OptionsError(
            f"quantization.mode {mode!r} is an engine-only mode; backend: pytorch serves "
            f"{', '.join(PYTORCH_QUANT_MODES)} (ModelOpt checkpoints)"
        )
    kv_dtype = quant.get("kv_cache_dtype", "auto")
    if kv_dtype not in KV_CACHE_DTYPES:
        raise OptionsError(
            f"quantization.kv_cache_dtype {kv_dtype!r} is not served by the PyTorch backend; "
            "use auto or fp8"
        )
    max_batch_size = int(build.get("max_batch_size", 64))
    options: dict = {
        "max_batch_size": max_batch_size,
        "max_num_tokens": int(build.get("max_num_tokens", 8192)),
        "max_seq_len": int(build.get("max_seq_len", 8192)),
        "tensor_parallel_size": int(parallel.get("tp_size", 1)),
        "pipeline_parallel_size": int(parallel.get("pp_size", 1)),
        "dtype": config.get("dtype", "auto"),
        "trust_remote_code": False,
        "enable_chunked_prefill": bool(runtime.get("enable_chunked_context", True)),
        "kv_cache_config": {
            "free_gpu_memory_fraction": float(
                runtime.get("kv_cache_free_gpu_memory_fraction", 0.9)
            ),
            "enable_block_reuse": bool(runtime.get("enable_block_reuse", True)),
            "dtype": KV_CACHE_DTYPES[kv_dtype],
        },
        # NVIDIA's serving guidance: pad decode batches up to a captured graph size, and
        # capture up to the scheduler's batch size so large batches stay on graphs too.
        "cuda_graph_config": (
            {"enable_padding": True, "max_batch_size": max_batch_size}
            if runtime.get("cuda_graphs", True)
            else None
        ),
    }
    fraction = options["kv_cache_config"]["free_gpu_memory_fraction"]
    if not 0 < fraction <= 1:
        raise OptionsError(f"runtime.kv_cache_free_gpu_memory_fraction {fraction} is not in (0, 1]")
    if options["max_batch_size"] > options["max_num_tokens"]:
        raise OptionsError(
            f"build.max_batch_size {options['max_batch_size']} exceeds build.max_num_tokens "
            f"{options['max_num_tokens']}: every scheduled request needs at least one token"
        )
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


def _load_config(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise OptionsError(f"cannot read the resolved config {path}: {exc}") from exc
    if "config" in doc:
        if doc.get("schema_version") != SCHEMA_VERSION:
            raise OptionsError(f"{path}: schema_version {doc.get('schema_version')!r}, expected 1")
        return doc["config"]
    return doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config-json", type=Path, help="resolved config (build_config.py output)")
    source.add_argument("--check", type=Path, help="an existing options YAML to validate")
    parser.add_argument("--trtllm-version", required=True)
    parser.add_argument("--output", type=Path, help="write the YAML here (default: stdout)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--records", type=Path, default=RECORD_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    prog = "llm_api_options"
    try:
        record = load_record(args.trtllm_version, args.records)
        if args.check:
            try:
                options = yaml.safe_load(args.check.read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                raise OptionsError(f"cannot read {args.check}: {exc}") from exc
            if not isinstance(options, dict):
                raise OptionsError(f"{args.check}: not a YAML mapping")
        else:
            options = build_options(_load_config(args.config_json))
        errors = check_options(options, record)
        if errors:
            for err in errors:
                print(f"{prog}: error: {err}", file=sys.stderr)
            return 2
    except OptionsError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return exc.code
    if args.check:
        print(
            f"{prog}: {args.check}: {len(options)} keys valid for TensorRT-LLM "
            f"{record['record_line']}",
            file=sys.stderr,
        )
        return 0
    text = render_yaml(options, record)
    if args.output:
        tmp = args.output.with_name(args.output.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(args.output)
    if args.json:
        summary = {
            "record": record["record_file"],
            "line": record["record_line"],
            "complete": record.get("complete", True),
        }
        print(
            json.dumps(
                {"schema_version": SCHEMA_VERSION, "options": options, "record": summary}, indent=2
            )
        )
    elif not args.output:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Lay out a PyTorch-backend deploy bundle in the staging dir (`backend: pytorch`).

Library, called by publish.py for backend "pytorch" before the manifest and the atomic rename:

  publish_bundle(staging, checkpoint, config, trtllm_version, *, tokenizer_dir=None) -> dict

  staging/
    checkpoint/            the merged HF checkpoint: hard links to its files (a copy where the
                           staging dir is on another filesystem), or the ModelOpt checkpoint that
                           the quantize step already wrote there; tokenizer files included
    llm_api_options.yaml   trtllm-serve --extra_llm_api_options, keys checked for the version
    serve.sh               the one launch command, paths relative to the bundle (copyable)

The returned dict is what the manifest records under "bundle" (docs/internals.md). Raises
BundleError (code 2) for a config the backend cannot serve or a checkpoint without config.json;
an OSError while linking or copying propagates (a run-time failure, exit 1 at the caller).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import llm_api_options

SCHEMA_VERSION = 1
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "generation_config.json",
)
SERVE_SCRIPT = """#!/usr/bin/env bash
# Serve this bundle with trtllm-serve: TensorRT-LLM {line} PyTorch backend, world size {world}.
# Written by bundle.py. Paths are relative to this file, so the bundle can be copied as a whole.
#
# Usage: ./serve.sh [more trtllm-serve options, e.g. --host 0.0.0.0 --port 8000]
set -euo pipefail

here="$(cd "$(dirname "${{BASH_SOURCE[0]}}")" && pwd)"
readonly here
cmd=(
  trtllm-serve "${{here}}/checkpoint"
  --backend pytorch
  --extra_llm_api_options "${{here}}/llm_api_options.yaml"
  --tp_size {tp} --pp_size {pp}
  --max_batch_size {mbs} --max_num_tokens {mnt} --max_seq_len {msl}
  --kv_cache_free_gpu_memory_fraction {frac}
)
exec "${{cmd[@]}}" "$@"
"""


class BundleError(Exception):
    """Bad input for a bundle; exit code 2 at the CLI boundary."""

    code = 2


def _link_or_copy(src: Path, dst: Path) -> str:
    """Hard-link src to dst; copy when the filesystem refuses links. Returns the mode used."""
    try:
        os.link(src, dst)
        return "hardlink"
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
    shutil.copy2(src, dst)
    return "copy"


def link_tree(src: Path, dst: Path) -> dict:
    """Mirror src into dst (new dir) with hard links, falling back to copies per file."""
    modes: set[str] = set()
    count = size = 0
    dst.mkdir(parents=True)
    for root, dirs, files in os.walk(src):
        dirs.sort()
        rel = Path(root).relative_to(src)
        (dst / rel).mkdir(exist_ok=True)
        for name in sorted(files):
            path = Path(root) / name
            if not stat.S_ISREG(path.stat().st_mode):
                continue
            modes.add(_link_or_copy(path, dst / rel / name))
            count += 1
            size += path.stat().st_size
    mode = modes.pop() if len(modes) == 1 else ("mixed" if modes else "empty")
    return {"link_mode": mode, "files": count, "bytes": size}


def _copy_tokenizer(tokenizer_dir: Path, checkpoint: Path) -> list[str]:
    copied = []
    for name in TOKENIZER_FILES:
        src = tokenizer_dir / name
        if src.is_file() and not (checkpoint / name).exists():
            shutil.copy2(src, checkpoint / name)
            copied.append(name)
    return copied


def serve_argv(options: dict) -> list[str]:
    """The launch command as argv, paths relative to the bundle dir."""
    return [
        "trtllm-serve",
        "checkpoint",
        "--backend",
        "pytorch",
        "--extra_llm_api_options",
        "llm_api_options.yaml",
        "--tp_size",
        str(options["tensor_parallel_size"]),
        "--pp_size",
        str(options["pipeline_parallel_size"]),
        "--max_batch_size",
        str(options["max_batch_size"]),
        "--max_num_tokens",
        str(options["max_num_tokens"]),
        "--max_seq_len",
        str(options["max_seq_len"]),
        "--kv_cache_free_gpu_memory_fraction",
        str(options["kv_cache_config"]["free_gpu_memory_fraction"]),
    ]


def publish_bundle(
    staging: Path | str,
    checkpoint: Path | str,
    config: dict,
    trtllm_version: str,
    *,
    tokenizer_dir: Path | str | None = None,
) -> dict:
    """Write checkpoint/, llm_api_options.yaml and serve.sh into staging; return the manifest part.

    checkpoint: the merged model dir (linked in) or <staging>/checkpoint (already in place, e.g.
    written by the ModelOpt step). tokenizer_dir: where tokenizer files come from when the
    checkpoint lacks them (default: checkpoint itself; pass the merged model for a ModelOpt one).
    config: the resolved config's "config" object.
    """
    staging = Path(staging)
    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").is_file():
        raise BundleError(f"{checkpoint} is not a Hugging Face checkpoint (no config.json)")
    try:
        record = llm_api_options.load_record(trtllm_version)
        options = llm_api_options.build_options(config)
    except llm_api_options.OptionsError as exc:
        raise BundleError(str(exc)) from exc
    errors = llm_api_options.check_options(options, record)
    if errors:
        raise BundleError("; ".join(errors))

    target = staging / "checkpoint"
    if checkpoint.resolve() == target.resolve():
        files = [p for p in target.rglob("*") if p.is_file()]
        linked = {
            "link_mode": "in-place",
            "files": len(files),
            "bytes": sum(p.stat().st_size for p in files),
        }
    else:
        linked = link_tree(checkpoint, target)
    tokenizer_copied = _copy_tokenizer(Path(tokenizer_dir) if tokenizer_dir else checkpoint, target)

    options_path = staging / "llm_api_options.yaml"
    options_path.write_text(llm_api_options.render_yaml(options, record))
    serve_path = staging / "serve.sh"
    serve_path.write_text(
        SERVE_SCRIPT.format(
            line=record["record_line"],
            world=options["tensor_parallel_size"] * options["pipeline_parallel_size"],
            tp=options["tensor_parallel_size"],
            pp=options["pipeline_parallel_size"],
            mbs=options["max_batch_size"],
            mnt=options["max_num_tokens"],
            msl=options["max_seq_len"],
            frac=options["kv_cache_config"]["free_gpu_memory_fraction"],
        )
    )
    serve_path.chmod(0o755)
    return {
        "schema_version": SCHEMA_VERSION,
        "backend": "pytorch",
        "checkpoint": "checkpoint",
        "source_checkpoint": str(checkpoint),
        **linked,
        "tokenizer_copied": tokenizer_copied,
        "options_file": "llm_api_options.yaml",
        "options": options,
        "llm_api_record": record["record_file"],
        "llm_api_record_complete": record.get("complete", True),
        "serve_script": "serve.sh",
        "serve_command": serve_argv(options),
        "world_size": options["tensor_parallel_size"] * options["pipeline_parallel_size"],
    }

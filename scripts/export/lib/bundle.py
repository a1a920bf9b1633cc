"""Lay out a PyTorch-backend deploy bundle in the staging dir (`backend: pytorch`).

Library, called by publish.py for backend "pytorch" before the manifest and the atomic rename:

  publish_bundle(staging, checkpoint, cfg, trtllm_version, *, tokenizer_dir=None,
                 lora_config=None) -> dict

  staging/
    checkpoint/            the merged HF checkpoint: hard links to its files (a copy where the
                           staging dir is on another filesystem), or the ModelOpt checkpoint that
                           the quantize step already wrote there; tokenizer files included
    llm_api_options.yaml   trtllm-serve --extra_llm_api_options, keys checked for the version
(serve.sh is written by publish.py, for both backends: serve_script.py)

The returned dict is what the manifest records under "bundle" (docs/internals.md). Raises
ExportError (code 2) for options the version rejects or a checkpoint without config.json; an
OSError while linking or copying propagates (the caller names the path and the fix).
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

import llm_api_options
import model_files
from build_config import BuildConfig
from errors import ExportError

SCHEMA_VERSION = 1


def _link_or_copy(src: Path, dst: Path) -> str:
    """Hard-link src to dst; copy when the filesystem refuses links. Returns the mode used.
    A link shares its mode with the merged model's file: publishing makes both readable by
    others (0644), since a serving user must read them."""
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


def serve_argv() -> list[str]:
    """The launch command, paths relative to the bundle dir; every option is in the YAML."""
    return [
        "trtllm-serve",
        "checkpoint",
        "--backend",
        "pytorch",
        "--extra_llm_api_options",
        "llm_api_options.yaml",
    ]


def publish_bundle(
    staging: Path | str,
    checkpoint: Path | str,
    cfg: BuildConfig,
    trtllm_version: str,
    *,
    tokenizer_dir: Path | str | None = None,
    lora_config: dict | None = None,
) -> dict:
    """Write checkpoint/, llm_api_options.yaml and serve.sh into staging; return the manifest part.

    checkpoint: the merged model dir (linked in) or <staging>/checkpoint (already in place, e.g.
    written by the ModelOpt step). tokenizer_dir: where tokenizer files come from when the
    checkpoint lacks them (default: checkpoint itself; pass the merged model for a ModelOpt one).
    cfg: the validated build config. lora_config: the runtime-LoRA block (lora_plan.py), checked
    against the record with the rest.
    """
    staging = Path(staging)
    checkpoint = Path(checkpoint)
    if not (checkpoint / "config.json").is_file():
        raise ExportError(f"{checkpoint} is not a Hugging Face checkpoint (no config.json)")
    record = llm_api_options.load_record(trtllm_version)
    options = llm_api_options.build_options(cfg)
    if lora_config is not None:
        options["lora_config"] = lora_config
    errors = llm_api_options.check_options(options, record)
    if errors:
        raise ExportError("llm_api_options.yaml: " + "; ".join(errors))

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
    tokenizer_copied = model_files.copy_tokenizer(
        Path(tokenizer_dir) if tokenizer_dir else checkpoint, target, keep_existing=True
    )

    options_path = staging / "llm_api_options.yaml"
    options_path.write_text(llm_api_options.render_yaml(options, record))
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
        "serve_command": serve_argv(),
        "world_size": options["tensor_parallel_size"] * options["pipeline_parallel_size"],
    }

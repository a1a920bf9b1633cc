"""One merge from start to end: inputs, plan, staging, weights, side files, verify, publish."""

from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from lora_merge import adapter as adapter_mod
from lora_merge import base as base_mod
from lora_merge import engines, files, staging, writer
from lora_merge import plan as plan_mod
from lora_merge.adapter import DELEGATED_TYPES
from lora_merge.errors import MergeError, bad_input, failed

SCHEMA_VERSION = 1
DTYPE_ARG = {"auto": None, "bfloat16": "BF16", "float16": "F16", "float32": "F32"}
QLORA_POLICY = (
    "merged into the base's stored weights; for a QLoRA adapter these are the "
    "original 16-bit weights, not a dequantized 4-bit round trip"
)


@dataclass
class Options:
    adapters: list[Path]
    output: Path
    base: str | None = None
    dtype: str = "auto"
    device: str = "cpu"
    max_shard: int = 5 * 10**9
    overwrite: bool = False
    verify: bool = False
    workers: int = 0
    quiet: bool = False


def log(msg: str) -> None:
    print(f"merge_lora: {msg}", file=sys.stderr, flush=True)


def _free_disk(path: Path) -> int:
    while not path.exists():
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def merge(opts: Options) -> dict:
    """Runs the merge; returns merge_info. Raises MergeError (nothing published)."""
    t0 = time.monotonic()
    staging.check_output(opts.output, opts.overwrite)
    out_dtype = DTYPE_ARG[opts.dtype]
    adapters = [adapter_mod.load(p) for p in opts.adapters]
    base_dir = base_mod.locate(opts.base, adapters[0].config.get("base_model_name_or_path"))
    base = base_mod.load(base_dir)
    plan = _plan(base, adapters, out_dtype)
    if opts.verify and engines.missing("torch"):
        raise bad_input("missing_package", engines.missing_message("--verify", ["torch"]))
    if plan is None:
        engines.check_delegated(opts.device)
        engine = None
        total = sum(i.nbytes for i in base.tensors.values()) * 2
    else:
        engine = engines.pick(plan, opts.device, opts.workers)
        for w in plan.warnings:
            log(f"warning: {w}")
        total = sum(t.nbytes for t in plan.tensors)
    tok_src = files.tokenizer_source(opts.adapters, base_dir)
    if plan is not None:
        _check_tokenizer(plan, tok_src)
    free = _free_disk(opts.output.parent)
    if free < total + (64 << 20):
        raise failed(
            "disk_full",
            f"{opts.output.parent}: needs {total / 2**30:.1f} GiB free, has {free / 2**30:.1f} GiB",
        )
    stage = staging.create(opts.output)
    log(f"base {base_dir} ({len(base.tensors)} tensors); writing {stage}")
    job = _Job(opts, base, adapters, plan, out_dtype, engine, stage, tok_src, t0)
    try:
        info = _write(job)
    except MergeError as err:
        if err.code != "verify_failed":
            err.args = (f"{err}; the partial output is kept in {stage}",)
        raise
    staging.publish(stage, opts.output)
    return info


def _plan(base, adapters: list, out_dtype: str | None):
    """The streaming plan, or None when PEFT merges (a delegated tuner; one adapter only)."""
    delegated = [a for a in adapters if _delegate_reason(a)]
    plan = None
    if not delegated:
        try:
            plan = plan_mod.build(base, adapters, out_dtype)
        except MergeError as err:
            if err.code != "unsupported_layer" or len(adapters) > 1:
                raise
            adapters[0].delegate_reason = "LoRA on conv or fused-expert weights"
            delegated = adapters[:1]
    if delegated and len(adapters) > 1:
        raise bad_input(
            "delegated_stack",
            f"{delegated[0].path}: {delegated[0].peft_type} "
            "adapters are merged by PEFT one at a time; merge them in separate runs",
        )
    return plan


def _check_tokenizer(plan, tok_src: Path) -> None:
    rows = plan.embed_rows
    tok_n = files.tokenizer_size(tok_src)
    if rows is not None and tok_n is not None and tok_n > rows:
        raise bad_input(
            "tokenizer_too_big",
            f"{tok_src}: tokenizer has {tok_n} tokens but the merged embedding has {rows} rows",
        )


@dataclass
class _Job:
    """What the write phase needs, decided before anything was written."""

    opts: Options
    base: base_mod.BaseModel
    adapters: list
    plan: plan_mod.Plan | None  # None: a tuner merged by PEFT
    out_dtype: str | None
    engine: engines.Engine | None  # None: a tuner merged by PEFT
    stage: Path
    tok_src: Path
    t0: float


def _write(job: _Job) -> dict:
    """Weights, side files, merge_info.json and --verify into the staging dir."""
    opts, plan, stage = job.opts, job.plan, job.stage
    info: dict = {"schema_version": SCHEMA_VERSION, "tool": "merge_lora.py"}
    method, dtype_name, config_changes = _write_weights(job)
    info.update(method)
    copied = files.copy_side_files(job.base.path, job.tok_src, stage)
    info.update(_provenance(job, copied, dtype_name, config_changes))
    if opts.verify:
        info["verify"] = _verify(plan, job.base, opts.adapters, stage)
    info["duration_s"] = round(time.monotonic() - job.t0, 3)
    files.write_json(stage / "merge_info.json", info)
    if opts.verify and any(v.get("status") == "fail" for v in info["verify"].values()):
        raise failed(
            "verify_failed",
            f"verification failed; the merge is kept in {stage} (see merge_info.json there)",
        )
    return info


def _write_weights(job: _Job) -> tuple[dict, str, dict]:
    """The shards, index and config (or PEFT's save): (method keys, dtype, config changes)."""
    opts, plan, stage = job.opts, job.plan, job.stage
    if plan is None:
        adapter = job.adapters[0]
        log(
            f"{_delegate_reason(adapter)}: merged by PEFT's in-memory merge_and_unload "
            "(whole model in memory, float32)"
        )
        from lora_merge import delegate

        dtype_name = delegate.merge_with_peft(
            job.base, opts.adapters[0], stage, job.out_dtype, opts.max_shard
        )
        return {"method": "peft_merge_and_unload"}, dtype_name, {}
    shards = writer.layout(plan.tensors, stage, opts.max_shard)
    file_bytes = sum(len(h) + sum(p.tensor.nbytes for p in placed) for _f, h, placed in shards)
    progress = writer.Progress(file_bytes, "merge_lora: weights", opts.quiet)
    try:
        engine = job.engine
        writer.write_shards(shards, engine.workers, progress, engine.compute, engine.processes)
    finally:
        progress.close()
    files.write_json(stage / writer.INDEX_NAME, writer.index_json(shards))
    config = files.merged_config(job.base.config, plan.config_changes, job.out_dtype)
    files.write_json(stage / "config.json", config)
    return {"method": "streaming", "engine": job.engine.name}, opts.dtype, plan.config_changes


def _provenance(job: _Job, copied: list[str], dtype_name: str, config_changes: dict) -> dict:
    """Adapters, base, policy, tokenizer, counts, versions: what merge_info.json records."""
    adapters = [
        {"path": str(a.path), "peft_type": a.peft_type, "sha256": a.digest, "config": a.config}
        for a in job.adapters
    ]
    return {
        "adapters": adapters,
        "base": {"path": str(job.base.path), "header_sha256": job.base.header_digest},
        "policy": {
            "dtype": dtype_name,
            "arithmetic": "float32, rounded once to the output dtype",
            "qlora_base": QLORA_POLICY,
            "stacking": "adapters applied in the order given, each to the result of the "
            "previous one",
        },
        "tokenizer_from": str(job.tok_src),
        "config_changes": config_changes,
        "counts": job.plan.counts if job.plan else {},
        "side_files": copied,
        "versions": dict(files.versions(), python=platform.python_version()),
        "device": job.opts.device,
    }


def _delegate_reason(adapter) -> str | None:
    """Why this adapter goes to PEFT's own merge, or None when it streams."""
    if getattr(adapter, "delegate_reason", None):
        return adapter.delegate_reason
    if adapter.peft_type in DELEGATED_TYPES:
        return adapter.peft_type
    if adapter.config.get("target_parameters"):
        return "LoRA on target_parameters (MoE expert weights)"
    return None


def _verify(plan, base, adapters: list[Path], stage: Path) -> dict:
    from lora_merge import verify

    return verify.run(plan, base, adapters, stage, log)

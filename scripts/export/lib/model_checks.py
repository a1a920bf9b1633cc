"""Checks of the config against the model and the planned GPU: parallelism vs heads and layers,
sequence length vs the model's positions, memory fit (with settings that would fit), and the
installed trtllm-build's own parser. Each check is errors.check(...), with the config key at fault.

Library for plan.py; no CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import io
import os
import sys

import estimate as est
import versions
from build_config import BuildConfig
from errors import Check, check

GIB = 1024**3


def gib(n: float) -> str:
    """Bytes as GiB, with enough digits that a small model is not shown as 0.0 GiB."""
    value = n / GIB
    if value >= 10:
        return f"{value:.0f} GiB"
    if value >= 0.1:
        return f"{value:.1f} GiB"
    return f"{n / 1024**2:.0f} MiB"


def valid_tp(shape: est.Shape, limit: int = 16) -> list[int]:
    return [t for t in range(1, limit + 1) if est.tp_ok(shape, t)]


def structure_checks(
    cfg: BuildConfig, shape: est.Shape, family, gpu: dict, machine: str
) -> list[Check]:
    """tp vs heads, pp vs layers, GPUs for the world size, max_seq_len vs the model."""
    return [
        _tp_check(cfg, shape),
        _pp_check(cfg, shape, family),
        _world_check(cfg, gpu, machine),
        _seq_check(cfg, shape),
    ]


def _tp_check(cfg: BuildConfig, shape: est.Shape) -> Check:
    tp = cfg.parallel.tp_size
    if est.tp_ok(shape, tp):
        return check(
            "tp_heads",
            "pass",
            f"tp_size {tp} divides {shape.heads} heads and fits {shape.kv_heads} KV heads",
        )
    return check(
        "tp_heads",
        "fail",
        f"{tp} does not divide the model's num_attention_heads {shape.heads} / "
        f"num_key_value_heads {shape.kv_heads}",
        f"one of {', '.join(map(str, valid_tp(shape)))}",
        key="parallel.tp_size",
    )


def _pp_check(cfg: BuildConfig, shape: est.Shape, family) -> Check:
    pp, key = cfg.parallel.pp_size, "parallel.pp_size"
    if pp > shape.layers:
        return check(
            "pp_layers",
            "fail",
            f"{pp} exceeds the model's num_hidden_layers {shape.layers}",
            f"at most {shape.layers}",
            key=key,
        )
    if pp > 1 and family is not None and not family.pipeline_parallel:
        return check(
            "pp_layers",
            "fail",
            family.pipeline_parallel_why,
            "parallel.pp_size: 1 (use tp_size)",
            key=key,
        )
    if shape.layers % pp:
        return check(
            "pp_layers",
            "warn",
            f"{pp} does not divide {shape.layers} layers: the stages get unequal layer counts "
            "(older TensorRT-LLM releases split only evenly)",
            f"a divisor of {shape.layers}",
            key=key,
        )
    return check("pp_layers", "pass", f"pp_size {pp} divides {shape.layers} layers")


def _world_check(cfg: BuildConfig, gpu: dict, machine: str) -> Check:
    world = cfg.parallel.tp_size * cfg.parallel.pp_size
    if gpu["source"] == "config":
        return check(
            "world_size",
            "warn",
            f"no GPU detected: planned for the config's target GPU {gpu['name']}; building and "
            f"serving need {world} GPU(s)",
        )
    if gpu["count"] < world:
        return check(
            "world_size",
            "warn",
            f"world size {world} on {gpu['count']} visible GPU(s): the ranks build one after "
            f"another; serving needs {world} GPUs",
            "build on a machine with tp_size x pp_size GPUs to build ranks in parallel",
        )
    return check("world_size", "pass", f"world size {world} <= {gpu['count']} GPUs")


def _seq_check(cfg: BuildConfig, shape: est.Shape) -> Check:
    seq, mpe, key = cfg.build.max_seq_len, shape.max_position_embeddings, "build.max_seq_len"
    if mpe and seq > int(mpe):
        if shape.rope_scaling_factor:
            return check(
                "max_seq_len",
                "warn",
                f"{seq} above the model's max_position_embeddings {mpe}: relies on its rope "
                f"scaling (factor {shape.rope_scaling_factor})",
                key=key,
            )
        return check(
            "max_seq_len",
            "fail",
            f"{seq} above the model's max_position_embeddings {mpe}, and the model has no "
            "rope scaling",
            f"at most {mpe}",
            key=key,
        )
    if mpe and seq < int(mpe):
        return check(
            "max_seq_len",
            "warn",
            f"{seq} below the model's max_position_embeddings {mpe}: longer requests are "
            "refused at serving time",
            f"up to {mpe} (costs KV-cache memory)",
            key=key,
        )
    return check("max_seq_len", "pass", f"max_seq_len {seq}")


def estimate_checks(
    cfg: BuildConfig, model_config: dict, gpu: dict, estimate: dict, facts: dict, machine: str
) -> list[Check]:
    per_gpu = estimate["weights_bytes_per_gpu"] + estimate["activation_bytes_per_gpu"]
    mem = estimate["gpu"]["memory_bytes"]
    if not estimate["weights_fit"]:
        fp8_ok = versions.cc_at_least(gpu.get("compute_capability"), "8.9")
        fits = est.suggestions(cfg, model_config, gpu, fp8_ok=fp8_ok)
        return [
            check(
                "weights_fit",
                "fail",
                f"weights {gib(estimate['weights_bytes_per_gpu'])} + activations "
                f"{gib(estimate['activation_bytes_per_gpu'])} per GPU exceed the {gib(mem)} of "
                f"{gpu['name']}",
                ("settings that fit: " + "; ".join(fits))
                if fits
                else "no single change fits: use more GPUs (tp_size) and int4",
            )
        ]
    out = [check("weights_fit", "pass", f"weights + activations {gib(per_gpu)} of {gib(mem)}")]
    out.append(_kv_check(cfg, estimate))
    out += _host_checks(estimate, facts, machine)
    return out


def _kv_check(cfg: BuildConfig, estimate: dict) -> Check:
    tokens, seq = estimate["kv_cache_capacity_tokens"], estimate["max_seq_len"]
    kv_fix = (
        ""
        if cfg.quantization.kv_cache_dtype in ("fp8", "int8")
        else (" or quantization.kv_cache_dtype: fp8")
    )
    basis = estimate.get("kv_cache_memory_basis", "total")
    if tokens < seq:
        return check(
            "kv_capacity",
            "fail",
            f"the KV cache holds {tokens:,} tokens ({basis} GPU memory), less than one "
            f"sequence of {seq:,}",
            "lower build.max_seq_len or build.max_num_tokens, raise parallel.tp_size" + kv_fix,
            key="build.max_seq_len",
        )
    sequences = estimate["kv_cache_capacity_sequences"]
    if not estimate["max_batch_size_reachable"]:
        return check(
            "kv_capacity",
            "warn",
            f"the KV cache holds {sequences:,} full-length sequences ({basis} GPU memory), below "
            f"max_batch_size {estimate['max_batch_size']:,}",
            "fine for shorter requests; else lower build.max_batch_size" + kv_fix,
            key="build.max_batch_size",
        )
    return check(
        "kv_capacity",
        "pass",
        f"KV cache {tokens:,} tokens = {sequences:,} sequences of {seq:,} ({basis} GPU memory)",
    )


def _host_checks(estimate: dict, facts: dict, machine: str) -> list[Check]:
    out = []
    available = (facts.get("memory") or {}).get("available_bytes")
    need = estimate["host_ram_bytes_convert"]
    if available and need > available:
        out.append(
            check(
                "host_ram",
                "warn",
                f"conversion needs about {gib(need)} host RAM, {gib(available)} available",
                "build.workers: 1 (one rank at a time), or a machine with more RAM",
            )
        )
    free = (facts.get("disk") or {}).get("free_bytes")
    if free and estimate["disk_bytes"] > free:
        out.append(
            check(
                "disk",
                machine,
                f"checkpoint + engines need about {gib(estimate['disk_bytes'])}, {gib(free)} free "
                f"at {(facts.get('disk') or {}).get('path')}",
                "free disk space under outputs/, or build with --output on a larger disk",
            )
        )
    return out


@contextlib.contextmanager
def stdout_to_stderr():
    """Send fd 1 (Python and native writes alike) to stderr for the duration."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 (embedded use): Python-level redirect only
        with contextlib.redirect_stdout(sys.stderr):
            yield
        return
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def installed_parser_check(build_argv: list[str]) -> Check:
    """Parse the build argv with the installed trtllm-build's own argparse (no subprocess)."""
    if importlib.util.find_spec("tensorrt_llm") is None:
        return check("installed_cli", "skip", "tensorrt_llm is not importable here")
    try:
        with stdout_to_stderr():  # tensorrt_llm prints a banner on import; stdout is the plan
            module = importlib.import_module("tensorrt_llm.commands.build")
    except Exception as err:  # any import failure of a GPU package is reported, not raised
        return check("installed_cli", "warn", f"could not import trtllm-build's parser: {err}")
    saved, err_buf = sys.argv, io.StringIO()
    sys.argv = ["trtllm-build", *build_argv[1:]]
    try:
        with contextlib.redirect_stderr(err_buf), contextlib.redirect_stdout(io.StringIO()):
            # 0.13+ returns the parser (main() calls parse_args); older copies parse sys.argv
            parsed = module.parse_arguments()
            if isinstance(parsed, argparse.ArgumentParser):
                parsed.parse_args(build_argv[1:])
    except SystemExit as exit_:
        if exit_.code:
            lines = [ln for ln in err_buf.getvalue().splitlines() if ln.strip()]
            reason = lines[-1] if lines else f"exit {exit_.code}"
            return check(
                "installed_cli",
                "fail",
                f"the installed trtllm-build rejects the plan: {reason}",
                "report this: the recorded CLI and the installed one differ",
            )
    except Exception as err:
        return check("installed_cli", "warn", f"could not run trtllm-build's parser: {err}")
    finally:
        sys.argv = saved
    return check("installed_cli", "pass", "the installed trtllm-build parses the build command")

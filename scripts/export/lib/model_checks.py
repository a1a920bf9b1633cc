"""Preflight checks of a plan: parallelism vs heads and layers, GPUs, sequence length, precision
vs GPU, memory fit (with settings that would fit), calibration data, and the installed
trtllm-build's own parser. Each check is {"id", "status", "message", "fix"} (docs/internals.md).

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

PRECISION_MIN_CC = {"bfloat16": "8.0", "fp8": "8.9", "w4a8_awq": "8.9", "nvfp4": "10.0"}
GIB = 1024**3


def check(check_id: str, status: str, message: str, fix: str = "") -> dict:
    return {"id": check_id, "status": status, "message": message, "fix": fix}


def cc_ok(cc: str, need: str) -> bool:
    try:
        return tuple(map(int, cc.split("."))) >= tuple(map(int, need.split(".")))
    except ValueError:
        return True


def valid_tp(shape: est.Shape, limit: int = 16) -> list[int]:
    return [t for t in range(1, limit + 1) if tp_ok(shape, t)]


def tp_ok(shape: est.Shape, tp: int) -> bool:
    if shape.heads % tp:
        return False
    if shape.mla:
        return True
    return shape.kv_heads % tp == 0 or tp % shape.kv_heads == 0


def structure_checks(config: dict, shape: est.Shape, family, gpu: dict) -> list[dict]:
    par = config.get("parallel") or {}
    tp, pp = int(par.get("tp_size", 1)), int(par.get("pp_size", 1))
    checks = []
    if tp_ok(shape, tp):
        checks.append(
            check(
                "tp_heads",
                "pass",
                f"tp_size {tp} divides {shape.heads} heads and fits {shape.kv_heads} KV heads",
            )
        )
    else:
        checks.append(
            check(
                "tp_heads",
                "fail",
                f"tp_size {tp} does not divide num_attention_heads {shape.heads} / "
                f"num_key_value_heads {shape.kv_heads}",
                f"parallel.tp_size: one of {', '.join(map(str, valid_tp(shape)))}",
            )
        )
    if pp > shape.layers:
        checks.append(
            check(
                "pp_layers",
                "fail",
                f"pp_size {pp} exceeds num_hidden_layers {shape.layers}",
                f"parallel.pp_size: at most {shape.layers}",
            )
        )
    elif pp > 1 and family is not None and not family.pipeline_parallel:
        checks.append(
            check(
                "pp_layers",
                "fail",
                f"pp_size {pp}: {family.pipeline_parallel_why}",
                "parallel.pp_size: 1 (use tp_size instead)",
            )
        )
    elif shape.layers % pp:
        checks.append(
            check(
                "pp_layers",
                "warn",
                f"pp_size {pp} does not divide {shape.layers} layers: the stages get unequal "
                "layer counts (older TensorRT-LLM releases split only evenly)",
                f"parallel.pp_size: a divisor of {shape.layers}",
            )
        )
    else:
        checks.append(check("pp_layers", "pass", f"pp_size {pp} divides {shape.layers} layers"))
    world = tp * pp
    if gpu["source"] == "config":
        checks.append(
            check(
                "world_size",
                "warn",
                f"no GPU detected: planned for the config's target GPU {gpu['name']}; "
                f"building and serving need {world} GPU(s)",
            )
        )
    elif gpu["count"] < world:
        checks.append(
            check(
                "world_size",
                "warn",
                f"world size {world} on {gpu['count']} visible GPU(s): the ranks build "
                f"one after another; serving needs {world} GPUs",
                "run the build on a machine with tp_size x pp_size GPUs to build ranks in parallel",
            )
        )
    else:
        checks.append(check("world_size", "pass", f"world size {world} <= {gpu['count']} GPUs"))
    seq = int((config.get("build") or {}).get("max_seq_len", 0))
    mpe = shape.max_position_embeddings
    if mpe and seq > int(mpe):
        if shape.rope_scaling_factor:
            checks.append(
                check(
                    "max_seq_len",
                    "warn",
                    f"max_seq_len {seq} above max_position_embeddings {mpe}: relies "
                    f"on the model's rope scaling (factor {shape.rope_scaling_factor})",
                )
            )
        else:
            checks.append(
                check(
                    "max_seq_len",
                    "fail",
                    f"max_seq_len {seq} above the model's max_position_embeddings "
                    f"{mpe} and the model has no rope scaling",
                    f"build.max_seq_len: at most {mpe}",
                )
            )
    elif mpe and seq < int(mpe):
        checks.append(
            check(
                "max_seq_len",
                "warn",
                f"max_seq_len {seq} below the model's max_position_embeddings {mpe}: "
                "longer requests are refused by the engine",
                f"build.max_seq_len: up to {mpe} (costs KV-cache memory)",
            )
        )
    else:
        checks.append(check("max_seq_len", "pass", f"max_seq_len {seq}"))
    return checks


def precision_checks(config: dict, gpu: dict, dtype: str) -> list[dict]:
    quant = config.get("quantization") or {}
    cc = gpu.get("compute_capability") or ""
    wanted = [
        ("dtype", dtype),
        ("quantization.mode", quant.get("mode", "none")),
        ("quantization.kv_cache_dtype", quant.get("kv_cache_dtype", "auto")),
    ]
    out = []
    for key, value in wanted:
        need = PRECISION_MIN_CC.get(value)
        if need and not cc_ok(cc, need):
            out.append(
                check(
                    "gpu_precision",
                    "fail",
                    f"{key} {value} needs compute capability {need}+, {gpu['name']} is {cc}",
                    f"{key}: a format this GPU runs (or another GPU)",
                )
            )
    if not out:
        out.append(check("gpu_precision", "pass", f"{gpu['name']} (SM {cc}) runs the precision"))
    return out


def gib(n: float) -> str:
    return f"{n / GIB:.1f} GiB"


def estimate_checks(config, model_config, gpu, estimate: dict, facts: dict) -> list[dict]:
    out = []
    per_gpu = estimate["weights_bytes_per_gpu"] + estimate["activation_bytes_per_gpu"]
    mem = estimate["gpu"]["memory_bytes"]
    if not estimate["weights_fit"]:
        fp8_ok = cc_ok(gpu.get("compute_capability") or "", "8.9")
        fits = est.suggestions(config, model_config, gpu, fp8_ok=fp8_ok)
        out.append(
            check(
                "weights_fit",
                "fail",
                f"weights {gib(estimate['weights_bytes_per_gpu'])} + activations "
                f"{gib(estimate['activation_bytes_per_gpu'])} per GPU exceed the "
                f"{gib(mem)} of {gpu['name']}",
                ("settings that fit: " + "; ".join(fits))
                if fits
                else "no single change fits: use more GPUs (tp_size) and int4",
            )
        )
        return out
    out.append(
        check("weights_fit", "pass", f"weights + activations {gib(per_gpu)} of {gib(mem)} per GPU")
    )
    tokens, seq = estimate["kv_cache_capacity_tokens"], estimate["max_seq_len"]
    kv_is_small = (config.get("quantization") or {}).get("kv_cache_dtype") in ("fp8", "int8")
    kv_fix = "" if kv_is_small else " or quantization.kv_cache_dtype: fp8"
    if tokens < seq:
        out.append(
            check(
                "kv_capacity",
                "fail",
                f"KV cache holds {tokens} tokens, less than one max_seq_len {seq} sequence",
                "build.max_seq_len or build.max_num_tokens lower, a larger tp_size" + kv_fix,
            )
        )
    elif not estimate["max_batch_size_reachable"]:
        out.append(
            check(
                "kv_capacity",
                "warn",
                f"KV cache holds {estimate['kv_cache_capacity_sequences']} full-length "
                f"sequences, below max_batch_size {estimate['max_batch_size']}",
                "fine for shorter requests; else build.max_batch_size lower" + kv_fix,
            )
        )
    else:
        out.append(
            check(
                "kv_capacity",
                "pass",
                f"KV cache {tokens} tokens = {estimate['kv_cache_capacity_sequences']} "
                f"sequences of {seq}",
            )
        )
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
                "fail",
                f"checkpoint + engines need about {gib(estimate['disk_bytes'])}, {gib(free)} free",
                "free disk space under outputs/",
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


def installed_parser_check(build_argv: list[str]) -> dict:
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


def calibration_checks(config: dict, route: str) -> list[dict]:
    quant = config.get("quantization") or {}
    calibrates = route in ("quantize", "modelopt") or (
        quant.get("mode") == "int8_sq" or quant.get("kv_cache_dtype") == "int8"
    )
    if not calibrates:
        return []
    dataset = (quant.get("calibration") or {}).get("dataset")
    if dataset:
        return [check("calibration", "pass", f"calibrates offline on {dataset}")]
    return [
        check(
            "calibration",
            "warn",
            "calibration uses the quantizer's default dataset (cnn_dailymail), downloaded from "
            "the Hugging Face Hub: fails offline and is not your fine-tune's data",
            "quantization.calibration.dataset: a local .jsonl/.txt of your fine-tune's prompts",
        )
    ]

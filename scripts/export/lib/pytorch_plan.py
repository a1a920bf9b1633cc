"""Plan steps of the PyTorch backend (`backend: pytorch`): no engine, at most one ModelOpt step.

Library, imported by plan.py for backend "pytorch":
  plan_steps(cfg, python, model_dir, staging) -> list[step]
  checkpoint_dir(cfg, model_dir, staging) -> Path     what the bundle serves

A step has the shape of docs/internals.md ({"name", "argv", "log", "output"}). Without
quantization the list is empty: the bundle serves the merged checkpoint itself (publish hard-links
it). With quantization.mode fp8 / nvfp4 / int4_awq / w4a8_awq there is one "quantize" step:
modelopt_quantize.py with --export hf, calibrated on the config's local dataset file, writing a
ModelOpt unified HF checkpoint into <staging>/checkpoint. Pure function of its inputs; no GPU.
"""

from __future__ import annotations

from pathlib import Path

import commands
from build_config import MODELOPT_MODES, BuildConfig


def checkpoint_dir(cfg: BuildConfig, model_dir: Path | str, staging: Path | str) -> Path:
    """The checkpoint the bundle serves: the merged model, or the quantized one in staging."""
    quantized = cfg.quantization.mode in MODELOPT_MODES
    return Path(staging) / "checkpoint" if quantized else Path(model_dir)


def calibration_path(cfg: BuildConfig) -> str:
    """The calibration file as the step reads it: absolute, since the step runs in the staging
    dir and a relative path in the config is from the directory the build was started in."""
    dataset = cfg.quantization.calibration.dataset
    return (
        str(Path(dataset).expanduser().absolute())
        if dataset
        else "<quantization.calibration.dataset>"
    )


def plan_steps(
    cfg: BuildConfig, python: str, model_dir: Path | str, staging: Path | str
) -> list[dict]:
    """The heavy steps of a PyTorch-backend build, in order (empty without quantization)."""
    q = cfg.quantization
    if q.mode not in MODELOPT_MODES:
        return []
    output = Path(staging) / "checkpoint"
    conv = commands.Conversion(
        python=python,
        model_dir=str(model_dir),
        output=str(output),
        dtype=cfg.dtype,
        tp=cfg.parallel.tp_size,
        pp=cfg.parallel.pp_size,
        mode=q.mode,
        kv_dtype=q.kv_cache_dtype,
    )
    argv = commands.modelopt_argv(
        conv,
        calib_file=calibration_path(cfg),
        calib_size=q.calibration.num_samples,
        calib_max_seq_len=q.calibration.max_seq_len,
        export="hf",
    )
    return [{"name": "quantize", "argv": argv, "log": "quantize.log", "output": str(output)}]

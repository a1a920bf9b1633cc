"""Plan steps of the PyTorch backend (`backend: pytorch`): no engine, at most one ModelOpt step.

Library, imported by plan.py for backend "pytorch":
  plan_steps(config, facts, model_dir, staging) -> list[step]
  checkpoint_dir(config, model_dir, staging) -> Path     what the bundle serves

A step has the shape of docs/internals.md ({"name", "argv", "log", "output"}). Without
quantization the list is empty: the bundle serves the merged checkpoint itself (publish hard-links
it). With quantization.mode fp8 / nvfp4 / int4_awq / w4a8_awq there is one "quantize" step:
modelopt_quantize.py with --export hf, calibrated on the config's local dataset file, writing a
ModelOpt unified HF checkpoint into <staging>/checkpoint. Pure function of its inputs; no GPU.
"""

from __future__ import annotations

from pathlib import Path

QUANTIZE_SCRIPT = Path(__file__).resolve().parents[1] / "steps" / "modelopt_quantize.py"
MODELOPT_MODES = ("fp8", "nvfp4", "int4_awq", "w4a8_awq")
# The earliest GPU generation each ModelOpt format runs on (compute capability).
MIN_COMPUTE = {"fp8": (8, 9), "nvfp4": (10, 0), "int4_awq": (8, 0), "w4a8_awq": (8, 9)}


class PlanError(Exception):
    """A config this backend cannot plan; exit code 2 at the CLI boundary."""

    code = 2


def _python(facts: dict) -> str:
    return (facts.get("python") or {}).get("executable") or "python3"


def checkpoint_dir(config: dict, model_dir: Path | str, staging: Path | str) -> Path:
    """The checkpoint the bundle serves: the merged model, or the quantized one in staging."""
    mode = config.get("quantization", {}).get("mode", "none")
    return Path(staging) / "checkpoint" if mode in MODELOPT_MODES else Path(model_dir)


def plan_steps(config: dict, facts: dict, model_dir: Path | str, staging: Path | str) -> list[dict]:
    """The heavy steps of a PyTorch-backend build, in order (empty without quantization)."""
    quant = config.get("quantization", {})
    mode = quant.get("mode", "none")
    if mode == "none":
        return []
    if mode not in MODELOPT_MODES:
        raise PlanError(
            f"quantization.mode {mode!r} needs the engine backend; backend: pytorch quantizes "
            f"with ModelOpt to {', '.join(MODELOPT_MODES)}"
        )
    calib = quant.get("calibration", {})
    dataset = calib.get("dataset")
    if not dataset:
        raise PlanError(
            f"quantization.mode {mode} needs quantization.calibration.dataset: a local .jsonl or "
            ".txt file of calibration text (nothing is downloaded)"
        )
    kv = quant.get("kv_cache_dtype", "auto")
    if kv not in ("auto", "fp8"):
        raise PlanError(f"quantization.kv_cache_dtype {kv!r}: backend: pytorch takes auto or fp8")
    parallel = config.get("parallel", {})
    output = Path(staging) / "checkpoint"
    argv = [
        _python(facts),
        str(QUANTIZE_SCRIPT),
        "--model-dir",
        str(model_dir),
        "--output-dir",
        str(output),
        "--qformat",
        mode,
        "--kv-cache-dtype",
        "fp8" if kv == "fp8" else "none",
        "--calib-data",
        str(dataset),
        "--calib-size",
        str(int(calib.get("num_samples", 512))),
        "--calib-max-seq-len",
        str(int(calib.get("max_seq_len", 512))),
        "--export",
        "hf",
        "--tp-size",
        str(int(parallel.get("tp_size", 1))),
        "--pp-size",
        str(int(parallel.get("pp_size", 1))),
        "--dtype",
        config.get("dtype", "auto"),
    ]
    return [{"name": "quantize", "argv": argv, "log": "quantize.log", "output": str(output)}]


def gpu_checks(config: dict, compute_capability: str | None) -> list[dict]:
    """Checks (docs/internals.md shape) of the ModelOpt format against the GPU, if one is known."""
    mode = config.get("quantization", {}).get("mode", "none")
    if mode not in MIN_COMPUTE:
        return []
    need = MIN_COMPUTE[mode]
    if not compute_capability:
        return [
            {
                "id": "modelopt_gpu",
                "status": "skip",
                "message": f"{mode} calibration needs a GPU; none known",
                "fix": "",
            }
        ]
    have = tuple(int(p) for p in compute_capability.split(".")[:2])
    if have < need:
        return [
            {
                "id": "modelopt_gpu",
                "status": "fail",
                "message": f"{mode} needs compute capability {need[0]}.{need[1]}+, "
                f"this GPU is {compute_capability}",
                "fix": "quantization.mode: none, or a newer GPU",
            }
        ]
    return [
        {
            "id": "modelopt_gpu",
            "status": "pass",
            "message": f"{mode} runs on compute capability {compute_capability}",
            "fix": "",
        }
    ]

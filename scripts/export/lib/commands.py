"""Engine-backend commands (argv lists) of a plan, per family dialect and TensorRT-LLM version.

Library for plan.py:
  quant_route(mode, kv_dtype, family, trtllm_installed) -> "convert" | "quantize" | "modelopt"
  Conversion(python, model_dir, output, dtype, tp, pp, mode, kv_dtype): the shared inputs
  convert_step(c, ...), quantize_step(c, ...), modelopt_step(c, ...)
  calib_step(...), build_step(...)
  setting_problems(build, mode, kv_dtype, route, version) -> [(key, message)]

Every flag emitted here exists in the recorded CLI of the version it is emitted for
(tests/contracts/*.json; tests/python/test_plan.py parses every plan against them). A setting a
version cannot honour is one of setting_problems(), with its config key; the argv builders
themselves never raise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from build_config import MODELOPT_MODES, Build
from family import Family, load_data
from versions import at_least, parse

STEPS_DIR = Path(__file__).resolve().parents[1] / "steps"
MODELOPT_SCRIPT = STEPS_DIR / "modelopt_quantize.py"
CALIB_SCRIPT = STEPS_DIR / "calib_data.py"

QUANTIZE_PY_MODES = {"fp8", "int4_awq", "w4a8_awq", "nvfp4"}
MODELOPT_QFORMATS = MODELOPT_MODES
SMOOTHQUANT_ALPHA = "0.5"


@dataclass(frozen=True)
class Conversion:
    """What every HF -> TensorRT-LLM checkpoint step is given, whichever tool runs it."""

    python: str
    model_dir: str
    output: str
    dtype: str
    tp: int
    pp: int
    mode: str
    kv_dtype: str


def quant_route(mode: str, kv_dtype: str, family: Family, trtllm_installed: bool) -> str:
    """Which tool quantizes: the family's convert script, TensorRT-LLM's quantize.py, or
    ModelOpt directly (modelopt_quantize.py) when TensorRT-LLM is not installed."""
    needs_quantize = mode in QUANTIZE_PY_MODES or kv_dtype == "fp8"
    if mode in ("int8_weight_only", "int4_weight_only"):
        needs_quantize |= mode.split("_")[0] not in family.weight_only
    if mode == "int8_sq":
        needs_quantize |= not family.smoothquant
    if kv_dtype == "int8":
        needs_quantize |= not family.int8_kv_cache
    if not needs_quantize:
        return "convert"
    return "quantize" if trtllm_installed else "modelopt"


def _script(examples_dir: str, rel: str) -> str:
    return f"{examples_dir.rstrip('/')}/{rel}"


def _io_flags(c: Conversion) -> list[str]:
    """Model in, checkpoint out and dtype, as the underscore-style scripts spell them."""
    return ["--model_dir", c.model_dir, "--output_dir", c.output, "--dtype", c.dtype]


def convert_step(
    c: Conversion, *, examples_dir: str, family: Family, calib_dir: str | None
) -> dict:
    script = _script(examples_dir, family.script)
    if family.dialect == "gemma":
        argv = [
            c.python,
            script,
            "--ckpt-type",
            "hf",
            "--model-dir",
            c.model_dir,
            "--output-model-dir",
            c.output,
            "--dtype",
            c.dtype,
            "--world-size",
            str(c.tp),
        ]
    else:
        argv = [c.python, script, *_io_flags(c), "--tp_size", str(c.tp)]
        if c.pp > 1:
            argv += ["--pp_size", str(c.pp)]
        argv += family.variant_args
    if c.mode in ("int8_weight_only", "int4_weight_only"):
        precision = c.mode.split("_")[0]
        if family.dialect == "gemma":
            argv += ["--use-weight-only-with-precision", precision]
        else:
            argv += ["--use_weight_only", "--weight_only_precision", precision]
    calibrates = False
    if c.mode == "int8_sq":
        argv += ["--smoothquant", SMOOTHQUANT_ALPHA, "--per_token", "--per_channel"]
        calibrates = True
    if c.kv_dtype == "int8":
        argv += ["--int8_kv_cache"]
        calibrates = True
    if calibrates and calib_dir and family.calib_dataset_flag:
        argv += ["--calib_dataset", calib_dir]
    return {
        "name": "convert",
        "argv": argv,
        "log": "convert.log",
        "output": c.output,
        "description": f"{family.name} convert_checkpoint.py -> TensorRT-LLM checkpoint",
    }


def quantize_step(
    c: Conversion,
    *,
    examples_dir: str,
    version: str,
    calib_dir: str | None,
    calib_size: int,
    calib_max_seq_len: int,
) -> dict:
    qp = load_data()["quantize_py"]
    qformat = quantize_qformat(c.mode)
    seq_flag = next(
        r["flag"] for r in qp["calib_max_seq_length_flag"] if at_least(version, r["since"])
    )
    argv = [c.python, _script(examples_dir, qp["script"]), *_io_flags(c), "--qformat", qformat]
    if c.kv_dtype in ("fp8", "int8"):
        argv += ["--kv_cache_dtype", c.kv_dtype]
    if calib_dir:
        argv += ["--calib_dataset", calib_dir]
    argv += [
        "--calib_size",
        str(calib_size),
        seq_flag,
        str(calib_max_seq_len),
        "--tp_size",
        str(c.tp),
        "--pp_size",
        str(c.pp),
    ]
    return {
        "name": "quantize",
        "argv": argv,
        "log": "quantize.log",
        "output": c.output,
        "description": f"quantize.py ({qformat}) -> TensorRT-LLM checkpoint",
    }


def modelopt_argv(
    c: Conversion, *, calib_file: str | None, calib_size: int, calib_max_seq_len: int, export: str
) -> list[str]:
    """modelopt_quantize.py's command: export "trtllm" (engine route without TensorRT-LLM) or
    "hf" (the PyTorch backend's checkpoint)."""
    return [
        c.python,
        str(MODELOPT_SCRIPT),
        "--model-dir",
        c.model_dir,
        "--output-dir",
        c.output,
        "--qformat",
        c.mode,
        "--kv-cache-dtype",
        "fp8" if c.kv_dtype == "fp8" else "none",
        "--calib-data",
        calib_file or "<quantization.calibration.dataset>",
        "--calib-size",
        str(calib_size),
        "--calib-max-seq-len",
        str(calib_max_seq_len),
        "--export",
        export,
        "--tp-size",
        str(c.tp),
        "--pp-size",
        str(c.pp),
        "--dtype",
        c.dtype,
    ]


def modelopt_step(
    c: Conversion, *, calib_file: str | None, calib_size: int, calib_max_seq_len: int
) -> dict:
    argv = modelopt_argv(
        c,
        calib_file=calib_file,
        calib_size=calib_size,
        calib_max_seq_len=calib_max_seq_len,
        export="trtllm",
    )
    return {
        "name": "quantize",
        "argv": argv,
        "log": "quantize.log",
        "output": c.output,
        "description": f"ModelOpt {c.mode} PTQ -> TensorRT-LLM checkpoint (no TensorRT-LLM)",
    }


def calib_step(*, python: str, dataset: str, output_dir: str, num_samples: int) -> dict:
    """A local .jsonl/.txt file -> <dir>/train.jsonl ({"text"} lines), the local-dataset form
    that quantize.py and the convert scripts read (a directory with a train split)."""
    argv = [
        python,
        str(CALIB_SCRIPT),
        "--input",
        dataset,
        "--output-dir",
        output_dir,
        "--num-samples",
        str(num_samples),
    ]
    return {
        "name": "calib",
        "argv": argv,
        "log": "calib.log",
        "output": output_dir,
        "description": "calibration file -> local dataset dir (train.jsonl)",
    }


def gemm_plugin_choices(version: str) -> list[str]:
    table = load_data()["trtllm_build"]["gemm_plugin_choices"]
    best = max((v for v in table if at_least(version, v)), key=parse)
    return table[best]


def quantize_qformat(mode: str) -> str:
    return load_data()["quantize_py"]["qformat"].get(mode, "full_prec")


def setting_problems(build: Build, mode: str, kv_dtype: str, route: str, version: str) -> list:
    """(config key, message) for each setting this TensorRT-LLM version cannot honour."""
    out = []
    if build.gemm_plugin not in gemm_plugin_choices(version):
        out.append(
            (
                "build.gemm_plugin",
                f"{build.gemm_plugin} is not accepted by trtllm-build "
                f"{version} (choices: {', '.join(gemm_plugin_choices(version))})",
            )
        )
    since = load_data()["trtllm_build"]["kv_cache_type_since"]
    if build.kv_cache_type == "disabled" and not at_least(version, since):
        out.append(
            (
                "build.kv_cache_type",
                f"disabled needs trtllm-build >= {since} (--kv_cache_type); planned for {version}",
            )
        )
    if route == "quantize":
        qformat = quantize_qformat(mode)
        need = load_data()["quantize_py"]["qformat_min_version"].get(qformat)
        if need and not at_least(version, need):
            key = "quantization.mode" if mode != "none" else "quantization.kv_cache_dtype"
            out.append(
                (
                    key,
                    f"{mode if mode != 'none' else kv_dtype} needs TensorRT-LLM >= "
                    f"{need} (quantize.py --qformat {qformat}); planned for {version}",
                )
            )
    return out  # fmt: skip


def build_step(
    *,
    version: str,
    checkpoint: str,
    output: str,
    build: Build,
    mode: str,
    kv_dtype: str,
    workers: int,
    timing_cache: str | None,
) -> dict:
    argv = ["trtllm-build", "--checkpoint_dir", checkpoint, "--output_dir", output]
    for key in ("max_batch_size", "max_input_len", "max_seq_len", "max_num_tokens"):
        argv += [f"--{key}", str(getattr(build, key))]
    argv += ["--max_beam_width", str(build.max_beam_width), "--gemm_plugin", build.gemm_plugin]
    kv_type = build.kv_cache_type
    if at_least(version, load_data()["trtllm_build"]["kv_cache_type_since"]):
        argv += ["--kv_cache_type", kv_type]
    else:  # a disabled cache is refused by setting_problems before this version
        argv += ["--paged_kv_cache", "enable" if kv_type == "paged" else "disable"]
    paged_ctx = build.use_paged_context_fmha and kv_type == "paged"
    argv += ["--use_paged_context_fmha", "enable" if paged_ctx else "disable"]
    fp8_ctx = build.use_fp8_context_fmha and mode in ("fp8", "nvfp4") and kv_dtype == "fp8"
    argv += ["--use_fp8_context_fmha", "enable" if fp8_ctx else "disable"]
    argv += ["--multiple_profiles", "enable" if build.multiple_profiles else "disable"]
    argv += ["--workers", str(workers)]
    if timing_cache:  # both, always: a stable argv (the build_id hashes it); a missing input
        # file only makes trtllm-build warn "Invalid timing cache, using freshly created one"
        argv += ["--input_timing_cache", timing_cache, "--output_timing_cache", timing_cache]
    return {
        "name": "build",
        "argv": argv,
        "log": "build.log",
        "output": output,
        "description": "trtllm-build -> TensorRT engines (rank<N>.engine)",
    }

#!/usr/bin/env python3
"""Quantize a merged HF model with NVIDIA ModelOpt (PTQ) and export it; check an exported layout.

Usage:
  modelopt_quantize.py --model-dir D --output-dir D --qformat fp8|nvfp4|int4_awq|w4a8_awq
                       --kv-cache-dtype fp8|none --calib-data FILE --calib-size N
                       --calib-max-seq-len L --export trtllm|hf --tp-size N --pp-size N --dtype D
                       [--quality-report FILE --eval-size N --eval-seq-len L [--eval-data FILE]
                        --max-ppl-increase-pct X --min-token-agreement-pct Y
                        [--accept-quality-loss]]
  modelopt_quantize.py check-layout DIR --qformat fp8 [--kv-cache-dtype fp8|none] [--json]

Quantize (needs a CUDA GPU, torch, transformers and nvidia-modelopt): loads the model with
transformers, calibrates on the first N samples of a local .jsonl, .json or .txt file (read by
lib/text_samples.py, the one reader of sample text; nothing is downloaded), runs mtq.quantize
with ModelOpt's preset for the format (FP8_DEFAULT_CFG, NVFP4_DEFAULT_CFG, INT4_AWQ_CFG,
W4A8_AWQ_BETA_CFG; plus FP8_KV_CFG for an FP8 KV cache), then exports with export_hf_checkpoint
(--export hf: the unified HF checkpoint that trtllm-serve, vLLM and SGLang load, with
hf_quant_config.json) or export_tensorrt_llm_checkpoint (--export trtllm: a TensorRT-LLM
checkpoint for trtllm-build; deprecated in ModelOpt 0.48). The export is written to
OUTPUT.partial and renamed to OUTPUT when complete; OUTPUT must not exist. One status line per
stage on stderr, each starting with '==> ' (the build relays them); a JSON report (timings,
sizes, peak GPU memory, the quality report) on stdout. ModelOpt's CUDA extensions are loaded
before calibration, with a line saying that a machine's first run compiles them.

Quality gate (--quality-report; lib/quality.py, lib/quality_gate.py): before mtq.quantize the
unquantized model runs over the eval samples (--eval-data, else the --eval-size samples of
--calib-data after the --calib-size that calibration uses), after it the quantized one;
perplexity of both, greedy token agreement and KL go to FILE (written first). Over the gate
(perplexity increase above X percent, or agreement under Y percent) the step exits 1 before
exporting anything, unless --accept-quality-loss, which exports and records it.
QUANTIZE_DEVICE=cpu runs without a GPU (a stand-in quantizer in tests; ModelOpt's own
calibration needs CUDA).

check-layout (CPU, reads safetensors headers only): the exported HF checkpoint has
config.json with quantization_config (quant_method modelopt, the right quant_algo),
hf_quant_config.json, and for fp8 every FP8 E4M3 weight with its weight_scale and input_scale,
lm_head left unquantized; nvfp4 packed uint8 weights with FP8 block scales and weight_scale_2.
One line per check; exit 1 when a check fails.

Exit codes: 0 ok, 1 a step failed (or a layout check failed), 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))
import model_files
import quality  # the quality measurement and gate (--quality-report)
from errors import ExportError
from text_samples import read_samples

SCHEMA_VERSION = 1
PROG = "modelopt_quantize"
QFORMATS = {
    "fp8": ("FP8_DEFAULT_CFG", "FP8"),
    "nvfp4": ("NVFP4_DEFAULT_CFG", "NVFP4"),
    "int4_awq": ("INT4_AWQ_CFG", "W4A16_AWQ"),
    "w4a8_awq": ("W4A8_AWQ_BETA_CFG", "W4A8_AWQ"),
}
DTYPES = ("auto", "bfloat16", "float16", "float32")


class QuantizeError(ExportError):
    """The step's ExportError (2 bad input, 1 run-time failure)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message, code=code, id="quantize")


status = quality.say  # '==> ' progress lines, relayed by the build as they come


# --- quantize (GPU) ----------------------------------------------------------------------------


def _quant_config(mtq, qformat: str, kv_cache_dtype: str) -> dict:
    import copy

    cfg = copy.deepcopy(getattr(mtq, QFORMATS[qformat][0]))
    if kv_cache_dtype == "fp8":
        kv = copy.deepcopy(mtq.FP8_KV_CFG["quant_cfg"])
        if isinstance(cfg["quant_cfg"], dict):  # ModelOpt before the list form
            cfg["quant_cfg"].update(kv)
        else:
            cfg["quant_cfg"] = list(cfg["quant_cfg"]) + list(kv)
    return cfg


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _libraries() -> SimpleNamespace:
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise QuantizeError(f"needs torch and transformers: {exc}") from exc
    try:
        import modelopt
        import modelopt.torch.quantization as mtq
        from modelopt.torch.export import export_hf_checkpoint, export_tensorrt_llm_checkpoint
    except ImportError as exc:
        raise QuantizeError(f"needs nvidia-modelopt (pip install nvidia-modelopt): {exc}") from exc
    return SimpleNamespace(
        torch=torch,
        model_cls=AutoModelForCausalLM,
        tokenizer_cls=AutoTokenizer,
        modelopt=modelopt,
        mtq=mtq,
        export_hf=export_hf_checkpoint,
        export_trtllm=export_tensorrt_llm_checkpoint,
    )


def _device(torch) -> str:
    """QUANTIZE_DEVICE: cuda (default; what ModelOpt's calibration needs) or cpu (a stand-in
    quantizer in tests, small models)."""
    device = os.environ.get("QUANTIZE_DEVICE", "cuda")
    if device not in ("cuda", "cpu"):
        raise QuantizeError(f"QUANTIZE_DEVICE must be cuda or cpu, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise QuantizeError("ModelOpt calibration needs a CUDA GPU; none is visible")
    return device


def _load(lib, args, device: str, report: dict):
    t0 = time.monotonic()
    status(f"load: {args.model_dir}")
    dtype = "auto" if args.dtype == "auto" else getattr(lib.torch, args.dtype)
    tokenizer = lib.tokenizer_cls.from_pretrained(args.model_dir)
    model = lib.model_cls.from_pretrained(args.model_dir, dtype=dtype).to(device).eval()
    if device == "cuda":
        lib.torch.cuda.reset_peak_memory_stats()
    report["durations_s"]["load"] = round(time.monotonic() - t0, 3)
    report["parameters"] = sum(p.numel() for p in model.parameters())
    return model, tokenizer


def _prepare_extensions(report: dict) -> None:
    """Load ModelOpt's CUDA extensions before calibration, saying why the first run is slow."""
    try:
        from modelopt.torch.quantization import extensions
    except ImportError:
        return
    status(
        "ModelOpt CUDA extensions: loading (a machine's first run compiles them: about a minute)"
    )
    t0 = time.monotonic()
    for name in ("get_cuda_ext", "get_cuda_ext_fp8"):
        loader = getattr(extensions, name, None)
        if loader is not None:
            loader()
    report["durations_s"]["cuda_extensions"] = round(time.monotonic() - t0, 3)
    status(f"ModelOpt CUDA extensions: ready in {time.monotonic() - t0:.1f} s")


def _calibrate_quantize(lib, model, args, batches: list, device: str, report: dict):
    def forward_loop(m) -> None:
        step = max(1, len(batches) // 10)
        with lib.torch.no_grad():
            for i, ids in enumerate(batches, 1):
                m(ids.to(device))
                if i % step == 0 or i == len(batches):
                    status(f"calibrate: {i}/{len(batches)} samples")

    _prepare_extensions(report)
    t0 = time.monotonic()
    status(f"quantize: {args.qformat} (kv cache {args.kv_cache_dtype})")
    config = _quant_config(lib.mtq, args.qformat, args.kv_cache_dtype)
    model = lib.mtq.quantize(model, config, forward_loop)
    if device == "cuda":
        lib.torch.cuda.synchronize()
    report["durations_s"]["calibrate_quantize"] = round(time.monotonic() - t0, 3)
    return model


def _export(lib, model, tokenizer, args, report: dict) -> None:
    t0 = time.monotonic()
    partial = args.output_dir.with_name(args.output_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    status(f"export: {args.export} -> {args.output_dir}")
    with lib.torch.inference_mode():
        if args.export == "hf":
            lib.export_hf(model, export_dir=partial)
            tokenizer.save_pretrained(partial)
        else:
            lib.export_trtllm(
                model,
                decoder_type=model.config.model_type,
                dtype=model.dtype,
                export_dir=partial,
                inference_tensor_parallel=args.tp_size,
                inference_pipeline_parallel=args.pp_size,
            )
    partial.rename(args.output_dir)
    report["durations_s"]["export"] = round(time.monotonic() - t0, 3)


def quantize(args: argparse.Namespace) -> dict:
    """Load, calibrate, quantize, (measure and gate,) export. Returns the report."""
    report: dict = {
        "schema_version": SCHEMA_VERSION,
        "qformat": args.qformat,
        "kv_cache_dtype": args.kv_cache_dtype,
        "export": args.export,
        "model_dir": str(args.model_dir),
        "output_dir": str(args.output_dir),
        "durations_s": {},
    }
    started = time.monotonic()
    samples = read_samples(args.calib_data, args.calib_size)
    check = quality.QualityCheck.from_args(args) if args.quality_report else None
    lib = _libraries()
    device = _device(lib.torch)
    report["versions"] = {"torch": lib.torch.__version__, "modelopt": lib.modelopt.__version__}
    model, tokenizer = _load(lib, args, device, report)
    batches = [
        tokenizer(
            text, return_tensors="pt", truncation=True, max_length=args.calib_max_seq_len
        ).input_ids
        for text in samples
    ]
    report["calibration"] = {
        "file": str(args.calib_data),
        "samples": len(batches),
        "tokens": int(sum(b.shape[1] for b in batches)),
        "max_seq_len": args.calib_max_seq_len,
    }
    if check:
        check.reference(model, tokenizer, device)
    model = _calibrate_quantize(lib, model, args, batches, device, report)
    if check:
        # raises when over the gate
        report["quality"] = check.measure(model, device, dict(report["durations_s"]))
    _export(lib, model, tokenizer, args, report)
    report["durations_s"]["total"] = round(time.monotonic() - started, 3)
    if device == "cuda":
        report["peak_gpu_memory_bytes"] = int(lib.torch.cuda.max_memory_allocated())
        report["gpu"] = lib.torch.cuda.get_device_name(0)
    report["bytes"] = {"input": _dir_bytes(args.model_dir), "output": _dir_bytes(args.output_dir)}
    return report


# --- layout check (CPU) ------------------------------------------------------------------------


def safetensors_header(path: Path) -> dict:
    """The tensor table of a .safetensors file: name -> {"dtype", "shape"} (no data read)."""
    try:
        table = model_files.read_header(path)
    except model_files.HeaderError as exc:
        raise QuantizeError(str(exc), code=1) from exc
    table.pop("__metadata__", None)
    return table


def _check(checks: list, cid: str, ok: bool, message: str) -> None:
    checks.append({"id": cid, "status": "pass" if ok else "fail", "message": message})


# What ModelOpt 0.47's export_hf_checkpoint writes per quantized linear layer (seen on an H200):
# weight dtype, the scale tensors beside it, and the dtypes those scales must have.
#   fp8       F8_E4M3 weight; weight_scale, input_scale: float32 scalars
#   nvfp4     U8 weight (two 4-bit values a byte); weight_scale: FP8 E4M3 block scales;
#             weight_scale_2, input_scale: float32 scalars
#   int4_awq  U8 weight, packed [out/2, in]; weight_scale: float32 [out, in/group_size];
#             pre_quant_scale on layers whose input is not a norm output
#   w4a8_awq  as int4_awq, plus weight_scale_2 and input_scale (float32 scalars)
WEIGHT_LAYOUT = {
    "fp8": ("F8_E4M3", ("weight_scale", "input_scale")),
    "nvfp4": ("U8", ("weight_scale", "input_scale", "weight_scale_2")),
    "int4_awq": ("U8", ("weight_scale",)),
    "w4a8_awq": ("U8", ("weight_scale", "input_scale", "weight_scale_2")),
}
FLOAT_DTYPES = ("F32", "BF16", "F16")


def _check_weights(checks: list, tensors: dict, weights: dict, qformat: str, hfq: dict) -> None:
    wdtype, need = WEIGHT_LAYOUT[qformat]
    quantized = sorted(m for m, t in weights.items() if t.get("dtype") == wdtype)
    _check(
        checks,
        "quantized_weights",
        bool(quantized),
        f"{len(quantized)} linear weights stored as {wdtype}",
    )
    missing = [f"{m}.{s}" for m in quantized for s in need if f"{m}.{s}" not in tensors]
    _check(
        checks,
        "weight_scales",
        bool(quantized) and not missing,
        "every quantized weight has " + "/".join(need)
        if not missing
        else f"missing scales: {', '.join(missing[:5])}",
    )
    scale_dtypes = ("F8_E4M3",) if qformat == "nvfp4" else FLOAT_DTYPES
    bad = [
        f"{m}.weight_scale"
        for m in quantized
        if tensors.get(f"{m}.weight_scale", {}).get("dtype") not in scale_dtypes
    ]
    what = {
        "fp8": "per-tensor scales are float",
        "nvfp4": "block scales are FP8 E4M3",
    }.get(qformat, "per-group scales are float")
    _check(
        checks,
        "scale_dtype",
        not bad,
        what if not bad else f"scales of the wrong dtype: {', '.join(bad[:5])}",
    )
    if qformat in ("int4_awq", "w4a8_awq"):
        # two int4 values a byte along the output dim; one scale per group of inputs
        group = int(hfq.get("group_size") or 128)
        wrong = []
        for m in quantized:
            w_shape = weights[m].get("shape") or []
            s_shape = tensors.get(f"{m}.weight_scale", {}).get("shape") or []
            if len(w_shape) != 2 or s_shape != [2 * w_shape[0], -(-w_shape[1] // group)]:
                wrong.append(f"{m}: weight {w_shape}, weight_scale {s_shape}")
        _check(
            checks,
            "int4_packing",
            bool(quantized) and not wrong,
            f"packed int4 weights with one scale per {group} inputs"
            if not wrong
            else f"unexpected int4 packing: {'; '.join(wrong[:3])}",
        )
    head = [m for m in quantized if m.endswith("lm_head")]
    _check(
        checks,
        "lm_head_unquantized",
        not head,
        "lm_head kept in high precision" if not head else "lm_head is quantized",
    )


def check_layout(export_dir: Path, qformat: str, kv_cache_dtype: str = "none") -> list[dict]:
    """Checks of a ModelOpt unified HF checkpoint; each {"id", "status", "message"}."""
    checks: list[dict] = []
    want_algo = QFORMATS[qformat][1]
    config_path = export_dir / "config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    qc = config.get("quantization_config") or {}
    _check(
        checks,
        "config_quantization",
        qc.get("quant_method") == "modelopt" and qc.get("quant_algo") == want_algo,
        f"config.json quantization_config: quant_method={qc.get('quant_method')!r} "
        f"quant_algo={qc.get('quant_algo')!r} (want 'modelopt', {want_algo!r})",
    )
    hf_path = export_dir / "hf_quant_config.json"
    hfq = json.loads(hf_path.read_text()).get("quantization", {}) if hf_path.is_file() else {}
    _check(
        checks,
        "hf_quant_config",
        hfq.get("quant_algo") == want_algo,
        f"hf_quant_config.json quant_algo={hfq.get('quant_algo')!r} (want {want_algo!r})",
    )
    want_kv = "FP8" if kv_cache_dtype == "fp8" else None
    _check(
        checks,
        "kv_cache_quant_algo",
        hfq.get("kv_cache_quant_algo") == want_kv,
        f"hf_quant_config.json kv_cache_quant_algo={hfq.get('kv_cache_quant_algo')!r} "
        f"(want {want_kv!r})",
    )

    tensors: dict[str, dict] = {}
    files = sorted(export_dir.glob("*.safetensors"))
    for path in files:
        tensors.update(safetensors_header(path))
    _check(
        checks,
        "safetensors",
        bool(tensors),
        f"{len(files)} safetensors file(s), {len(tensors)} tensors",
    )
    weights = {n[: -len(".weight")]: t for n, t in tensors.items() if n.endswith(".weight")}
    _check_weights(checks, tensors, weights, qformat, hfq)
    if kv_cache_dtype == "fp8":
        kv = [n for n in tensors if n.endswith(("k_scale", "v_scale"))]
        _check(checks, "kv_cache_scales", bool(kv), f"{len(kv)} KV-cache scale tensors")
    return checks


# --- CLI ---------------------------------------------------------------------------------------


def _check_layout_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"{PROG} check-layout")
    parser.add_argument("dir", type=Path)
    parser.add_argument("--qformat", required=True, choices=sorted(QFORMATS))
    parser.add_argument("--kv-cache-dtype", default="none", choices=["fp8", "none"])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        print(f"{PROG}: error: not a directory: {args.dir}", file=sys.stderr)
        return 2
    try:
        checks = check_layout(args.dir, args.qformat, args.kv_cache_dtype)
    except (QuantizeError, OSError, json.JSONDecodeError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return getattr(exc, "code", 1)
    failed = [c for c in checks if c["status"] == "fail"]
    if args.json:
        print(
            json.dumps(
                {
                    "schema_version": SCHEMA_VERSION,
                    "dir": str(args.dir),
                    "qformat": args.qformat,
                    "ok": not failed,
                    "checks": checks,
                },
                indent=2,
            )
        )
    else:
        for c in checks:
            print(f"{c['status']:<5} {c['id']:<22} {c['message']}")
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    """The quantize CLI (its argv is what pytorch_plan.plan_steps writes)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--qformat", required=True, choices=sorted(QFORMATS))
    parser.add_argument("--kv-cache-dtype", required=True, choices=["fp8", "none"])
    parser.add_argument("--calib-data", type=Path, required=True)
    parser.add_argument("--calib-size", type=int, required=True)
    parser.add_argument("--calib-max-seq-len", type=int, required=True)
    parser.add_argument("--export", required=True, choices=["trtllm", "hf"])
    parser.add_argument("--tp-size", type=int, required=True)
    parser.add_argument("--pp-size", type=int, required=True)
    parser.add_argument("--dtype", required=True, choices=DTYPES)
    _quality_arguments(parser.add_argument_group("quality gate (all or none)"))
    return parser


def _quality_arguments(group) -> None:
    group.add_argument("--quality-report", type=Path, help="measure; write the report here")
    group.add_argument(
        "--eval-data", type=Path, help="eval text (default: calibration samples after --calib-size)"
    )
    group.add_argument("--eval-size", type=int, help="eval samples")
    group.add_argument("--eval-seq-len", type=int, help="tokens per eval sample (most)")
    group.add_argument("--max-ppl-increase-pct", type=float, help="gate: largest increase")
    group.add_argument("--min-token-agreement-pct", type=float, help="gate: smallest agreement")
    group.add_argument(
        "--accept-quality-loss", action="store_true", help="export even when over the gate"
    )


def _check_quality_args(args: argparse.Namespace) -> None:
    needed = ("eval_size", "eval_seq_len", "max_ppl_increase_pct", "min_token_agreement_pct")
    if args.quality_report is None:
        given = [n for n in (*needed, "eval_data") if getattr(args, n) is not None]
        if given or args.accept_quality_loss:
            raise QuantizeError("the quality gate flags need --quality-report PATH")
        return
    missing = [f"--{n.replace('_', '-')}" for n in needed if getattr(args, n) is None]
    if missing:
        raise QuantizeError(f"--quality-report needs {', '.join(missing)}")
    if args.eval_size < 1 or args.eval_seq_len < 2:
        raise QuantizeError("--eval-size must be at least 1 and --eval-seq-len at least 2")
    if args.max_ppl_increase_pct < 0 or not 0 <= args.min_token_agreement_pct <= 100:
        raise QuantizeError("gate: --max-ppl-increase-pct >= 0, --min-token-agreement-pct 0..100")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["check-layout"]:
        return _check_layout_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        if not (args.model_dir / "config.json").is_file():
            raise QuantizeError(f"not a Hugging Face model dir (no config.json): {args.model_dir}")
        if args.output_dir.exists():
            raise QuantizeError(f"output exists, refusing to overwrite: {args.output_dir}")
        for name in ("calib_size", "calib_max_seq_len", "tp_size", "pp_size"):
            if getattr(args, name) < 1:
                raise QuantizeError(f"--{name.replace('_', '-')} must be at least 1")
        _check_quality_args(args)
        if args.export == "hf" and (args.tp_size, args.pp_size) != (1, 1):
            status(
                "note: --export hf writes one unsharded checkpoint; "
                "trtllm-serve shards it at load time"
            )
        with contextlib.redirect_stdout(sys.stderr):  # ModelOpt prints progress on stdout
            report = quantize(args)
    except ExportError as exc:  # QuantizeError, the reader's and the gate's
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.code
    except (RuntimeError, OSError, ValueError) as exc:  # CUDA OOM, export failures, disk errors
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

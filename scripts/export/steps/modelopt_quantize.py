#!/usr/bin/env python3
"""Quantize a merged HF model with NVIDIA ModelOpt (PTQ) and export it; check an exported layout.

Usage:
  modelopt_quantize.py --model-dir D --output-dir D --qformat fp8|nvfp4|int4_awq|w4a8_awq
                       --kv-cache-dtype fp8|none --calib-data FILE --calib-size N
                       --calib-max-seq-len L --export trtllm|hf --tp-size N --pp-size N --dtype D
  modelopt_quantize.py check-layout DIR --qformat fp8 [--kv-cache-dtype fp8|none] [--json]

Quantize (needs a CUDA GPU, torch, transformers and nvidia-modelopt): loads the model with
transformers, calibrates on the first N samples of a local file (.jsonl: one JSON object per
line with "text", "prompt" or "messages"; .txt: one sample per non-empty line; nothing is
downloaded), runs mtq.quantize with ModelOpt's preset for the format (FP8_DEFAULT_CFG,
NVFP4_DEFAULT_CFG, INT4_AWQ_CFG, W4A8_AWQ_BETA_CFG; plus FP8_KV_CFG for an FP8 KV cache), then
exports with export_hf_checkpoint (--export hf: the unified HF checkpoint that trtllm-serve,
vLLM and SGLang load, with hf_quant_config.json) or export_tensorrt_llm_checkpoint (--export
trtllm: a TensorRT-LLM checkpoint for trtllm-build; deprecated in ModelOpt 0.48). The export is
written to OUTPUT.partial and renamed to OUTPUT when complete; OUTPUT must not exist. One status
line per stage on stderr; a JSON report (timings, sizes, peak GPU memory) on stdout.

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
import shutil
import struct
import sys
import time
from pathlib import Path

SCHEMA_VERSION = 1
PROG = "modelopt_quantize"
QFORMATS = {
    "fp8": ("FP8_DEFAULT_CFG", "FP8"),
    "nvfp4": ("NVFP4_DEFAULT_CFG", "NVFP4"),
    "int4_awq": ("INT4_AWQ_CFG", "W4A16_AWQ"),
    "w4a8_awq": ("W4A8_AWQ_BETA_CFG", "W4A8_AWQ"),
}
DTYPES = ("auto", "bfloat16", "float16", "float32")
TEXT_KEYS = ("text", "prompt", "content")


class QuantizeError(Exception):
    """A domain error with its exit code (2 bad input, 1 run-time failure)."""

    def __init__(self, message: str, code: int = 2):
        super().__init__(message)
        self.code = code


def status(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# --- calibration data --------------------------------------------------------------------------


def _sample_text(obj: object, where: str) -> str:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict):
        for key in TEXT_KEYS:
            if isinstance(obj.get(key), str):
                return obj[key]
        if isinstance(obj.get("messages"), list):
            parts = [m.get("content", "") for m in obj["messages"] if isinstance(m, dict)]
            return "\n".join(p for p in parts if isinstance(p, str))
    raise QuantizeError(
        f"{where}: no text in this sample (want one of {', '.join(TEXT_KEYS)} or messages)"
    )


def read_calibration(path: Path, limit: int) -> list[str]:
    """The first `limit` non-empty samples of a local .jsonl or .txt file."""
    if not path.is_file():
        raise QuantizeError(f"calibration file not found: {path}")
    samples: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            if path.suffix == ".jsonl":
                try:
                    text = _sample_text(json.loads(line), f"{path}:{lineno}")
                except json.JSONDecodeError as exc:
                    raise QuantizeError(f"{path}:{lineno}: not JSON: {exc.msg}") from exc
            elif path.suffix == ".txt":
                text = line
            else:
                raise QuantizeError(f"{path}: calibration data must be .jsonl or .txt")
            if text.strip():
                samples.append(text)
            if len(samples) >= limit:
                break
    if not samples:
        raise QuantizeError(f"{path}: no calibration samples")
    return samples


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


def quantize(args: argparse.Namespace) -> dict:
    """Load, calibrate, quantize, export. Returns the report."""
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
    samples = read_calibration(args.calib_data, args.calib_size)
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
    if not torch.cuda.is_available():
        raise QuantizeError("ModelOpt calibration needs a CUDA GPU; none is visible")
    report["versions"] = {"torch": torch.__version__, "modelopt": modelopt.__version__}

    t0 = time.monotonic()
    status(f"load: {args.model_dir}")
    dtype = "auto" if args.dtype == "auto" else getattr(torch, args.dtype)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=dtype).cuda().eval()
    torch.cuda.reset_peak_memory_stats()
    report["durations_s"]["load"] = round(time.monotonic() - t0, 3)
    report["parameters"] = sum(p.numel() for p in model.parameters())

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

    def forward_loop(m) -> None:
        step = max(1, len(batches) // 10)
        with torch.no_grad():
            for i, ids in enumerate(batches, 1):
                m(ids.cuda())
                if i % step == 0 or i == len(batches):
                    status(f"calibrate: {i}/{len(batches)} samples")

    t0 = time.monotonic()
    status(f"quantize: {args.qformat} (kv cache {args.kv_cache_dtype})")
    model = mtq.quantize(model, _quant_config(mtq, args.qformat, args.kv_cache_dtype), forward_loop)
    torch.cuda.synchronize()
    report["durations_s"]["calibrate_quantize"] = round(time.monotonic() - t0, 3)

    t0 = time.monotonic()
    partial = args.output_dir.with_name(args.output_dir.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    status(f"export: {args.export} -> {args.output_dir}")
    with torch.inference_mode():
        if args.export == "hf":
            export_hf_checkpoint(model, export_dir=partial)
            tokenizer.save_pretrained(partial)
        else:
            export_tensorrt_llm_checkpoint(
                model,
                decoder_type=model.config.model_type,
                dtype=model.dtype,
                export_dir=partial,
                inference_tensor_parallel=args.tp_size,
                inference_pipeline_parallel=args.pp_size,
            )
    partial.rename(args.output_dir)
    report["durations_s"]["export"] = round(time.monotonic() - t0, 3)
    report["durations_s"]["total"] = round(time.monotonic() - started, 3)
    report["peak_gpu_memory_bytes"] = int(torch.cuda.max_memory_allocated())
    report["gpu"] = torch.cuda.get_device_name(0)
    report["bytes"] = {"input": _dir_bytes(args.model_dir), "output": _dir_bytes(args.output_dir)}
    return report


# --- layout check (CPU) ------------------------------------------------------------------------


def safetensors_header(path: Path) -> dict:
    """The tensor table of a .safetensors file: name -> {"dtype", "shape"} (no data read)."""
    with path.open("rb") as handle:
        raw = handle.read(8)
        if len(raw) != 8:
            raise QuantizeError(f"{path}: not a safetensors file", code=1)
        (size,) = struct.unpack("<Q", raw)
        try:
            table = json.loads(handle.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise QuantizeError(f"{path}: unreadable safetensors header", code=1) from exc
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
    return parser


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
        if args.export == "hf" and (args.tp_size, args.pp_size) != (1, 1):
            status(
                "note: --export hf writes one unsharded checkpoint; "
                "trtllm-serve shards it at load time"
            )
        with contextlib.redirect_stdout(sys.stderr):  # ModelOpt prints progress on stdout
            report = quantize(args)
    except QuantizeError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.code
    except (RuntimeError, OSError, ValueError) as exc:  # CUDA OOM, export failures, disk errors
        print(f"{PROG}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

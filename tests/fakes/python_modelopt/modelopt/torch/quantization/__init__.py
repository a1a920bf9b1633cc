"""modelopt.torch.quantization (fake): the presets modelopt_quantize.py names and quantize().

quantize(model, config, forward_loop) checks the config as ModelOpt's would be written (a dict with
"quant_cfg", a list of {"quantizer_name", "cfg" | "enable"} entries, and "algorithm"), runs
forward_loop(model) once to calibrate (recording the largest input of every linear layer and the
largest key/value), then rewrites each linear weight (lm_head excepted) through the format's
quantize-dequantize and hooks the inputs (and k/v outputs) to be quantized at run time.
"""

from __future__ import annotations

import os

import torch

from modelopt import log_call

from . import _numerics

_FP8 = {"num_bits": "e4m3", "axis": None}
_INT4 = {"num_bits": 4, "block_sizes": {-1: 128, "type": "static"}}
_NVFP4 = {"num_bits": "e2m1", "block_sizes": {-1: 16, "type": "dynamic", "scale_bits": "e4m3"}}
_OFF = {"quantizer_name": "*", "enable": False}
_DISABLED = {"quantizer_name": "*lm_head*", "enable": False}


def _preset(weight, inputs, algorithm) -> dict:
    entries = [_OFF, {"quantizer_name": "*weight_quantizer", "cfg": weight}]
    entries.append(
        {"quantizer_name": "*input_quantizer", "cfg": inputs}
        if inputs
        else {"quantizer_name": "*input_quantizer", "enable": False}
    )
    return {"quant_cfg": [*entries, _DISABLED], "algorithm": algorithm}


FP8_DEFAULT_CFG = _preset(_FP8, _FP8, "max")
INT4_AWQ_CFG = _preset(_INT4, None, {"method": "awq_lite", "alpha_step": 0.1})
W4A8_AWQ_BETA_CFG = _preset([_INT4, _FP8], _FP8, "awq_lite")
NVFP4_DEFAULT_CFG = _preset(_NVFP4, _NVFP4, "max")
FP8_KV_CFG = {"quant_cfg": [{"quantizer_name": "*[kv]_bmm_quantizer", "cfg": _FP8}]}
ALGORITHMS = ("max", "awq_lite")


def _formats(config: dict) -> dict:
    """quantizer name -> format dict (None: disabled), later entries overriding earlier ones."""
    if not isinstance(config, dict) or set(config) - {"quant_cfg", "algorithm"}:
        raise ValueError(f"fake modelopt: a config has quant_cfg and algorithm, got {config!r}")
    algorithm = config.get("algorithm")
    method = algorithm.get("method") if isinstance(algorithm, dict) else algorithm
    if method not in ALGORITHMS:
        raise ValueError(f"fake modelopt: unknown algorithm {algorithm!r}")
    out: dict = {}
    for entry in config["quant_cfg"]:
        if set(entry) - {"quantizer_name", "cfg", "enable"} or "quantizer_name" not in entry:
            raise ValueError(f"fake modelopt: bad quant_cfg entry {entry!r}")
        cfg = entry.get("cfg")
        cfg = cfg[0] if isinstance(cfg, list) else cfg  # W4A8: int4 first, its fp8 scale second
        out[entry["quantizer_name"]] = cfg if entry.get("enable", True) else None
    return out


def _linears(model) -> dict:
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and "lm_head" not in name
    }


def _calibrate(model, linears: dict, forward_loop) -> tuple[dict, int]:
    amax = {name: torch.tensor(0.0) for name in linears}
    calls = [0]

    def hook(name):
        def record(module, args, output):
            x = args[0].detach().float().abs().max().cpu()
            amax[name] = torch.maximum(amax[name], x)
            y = output.detach().float().abs().max().cpu()
            amax[name + ".out"] = torch.maximum(amax.get(name + ".out", y), y)
            calls[0] += 1

        return record

    handles = [m.register_forward_hook(hook(n)) for n, m in linears.items()]
    try:
        forward_loop(model)
    finally:
        for h in handles:
            h.remove()
    if not calls[0]:
        raise RuntimeError("fake modelopt: forward_loop ran no forward pass: nothing calibrated")
    return amax, calls[0]


def _fault(weights: dict) -> str | None:
    """FAKE_MODELOPT_FAULT applied to the (already quantized) weights; its description."""
    spec = os.environ.get("FAKE_MODELOPT_FAULT", "")
    if not spec:
        return None
    kind, _, value = spec.partition(":")
    gen = torch.Generator().manual_seed(0)
    for name, w in weights.items():
        if kind == "noise":
            noise = torch.randn(w.shape, generator=gen) * float(value) * w.float().std()
            w.add_(noise.to(w.dtype))
        elif kind == "zero":
            if value in name:
                w.zero_()
        elif kind == "bits":
            w.copy_(_numerics.int_blocks(w, int(value), None))
        else:
            raise ValueError(f"fake modelopt: unknown FAKE_MODELOPT_FAULT {spec!r}")
    return spec


def _hook_inputs(linears: dict, amax: dict, inputs: dict | None, kv: dict | None) -> None:
    act = _numerics.quantizer(inputs)
    for name, m in linears.items():
        if act is not None:
            bound = amax[name]

            def pre(module, args, _bound=bound):
                x = args[0]
                q = _numerics.fp8(x, _bound.to(x.device)) if act is _numerics.fp8 else act(x)
                return (q, *args[1:])

            m.register_forward_pre_hook(pre)
        if kv and name.endswith(("k_proj", "v_proj")):
            out_amax = amax[name + ".out"]
            m.register_forward_hook(
                lambda module, args, y, _a=out_amax: _numerics.fp8(y, _a.to(y.device))
            )


def quantize(model, config: dict, forward_loop=None):
    """Calibrate with forward_loop, then quantize the model in place (and return it)."""
    formats = _formats(config)
    if forward_loop is None or not callable(forward_loop):
        raise TypeError("fake modelopt: quantize needs a forward_loop to calibrate")
    linears = _linears(model)
    amax, calls = _calibrate(model, linears, forward_loop)
    to_weight = _numerics.quantizer(formats.get("*weight_quantizer"))
    with torch.no_grad():
        weights = {n: m.weight for n, m in linears.items()}
        for w in weights.values():
            if to_weight is not None:
                w.copy_(to_weight(w))
        fault = _fault(weights)
    kv = formats.get("*[kv]_bmm_quantizer")
    _hook_inputs(linears, amax, formats.get("*input_quantizer"), kv)
    model._fake_modelopt = {"formats": formats, "fault": fault}
    log_call(
        "quantize",
        algorithm=config["algorithm"],
        weight=formats.get("*weight_quantizer"),
        kv_cache=bool(kv),
        calibration_forwards=calls,
        fault=fault,
    )
    return model

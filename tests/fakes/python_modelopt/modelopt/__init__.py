"""Importable stand-in for NVIDIA ModelOpt (nvidia-modelopt), for CPU tests of the quantize step.

Put tests/fakes/python_modelopt on PYTHONPATH and set QUANTIZE_DEVICE=cpu: modelopt_quantize.py
then runs its real flow (calibrate, measure, gate, export) on a tiny model without a GPU.
modelopt.torch.quantization.quantize is a stand-in quantizer with known numerics (fp8 E4M3
round trips, int4 per-block, NVFP4 E2M1 blocks; activations and the KV cache in FP8 with the
amax seen during calibration), configured by the same presets ModelOpt 0.47 ships (the list form
of quant_cfg). FAKE_MODELOPT_FAULT breaks it on purpose: "noise:R" (Gaussian noise of R times
each weight's std), "zero:NAME" (zero the weights of linear layers whose name contains NAME),
"bits:N" (N-bit per-tensor weights). FAKE_MODELOPT_LOG=FILE appends one JSON line per call.
"""

from __future__ import annotations

import json
import os

__version__ = "0.47.0+fake"


def log_call(call: str, **fields) -> None:
    path = os.environ.get("FAKE_MODELOPT_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"call": call, **fields}) + "\n")

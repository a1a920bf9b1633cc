"""modelopt.torch.export (fake): the two exporters modelopt_quantize.py calls, keyword-strict.

export_hf_checkpoint writes the model (its quantized-dequantized weights) with save_pretrained,
quantization_config in config.json and hf_quant_config.json, as the unified HF export does (the
tensors are not packed: check-layout is tested on its own fixtures). export_tensorrt_llm_checkpoint
writes config.json (architecture, dtype, mapping, quantization) and one rank<N>.safetensors per
rank of the mapping.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelopt import log_call

ALGOS = {"e4m3": "FP8", "e2m1": "NVFP4", 4: "W4A16_AWQ"}


def _quant_algo(model) -> tuple[str | None, str | None]:
    state = getattr(model, "_fake_modelopt", None)
    if state is None:
        raise RuntimeError("fake modelopt: export of a model that mtq.quantize did not quantize")
    weight = state["formats"].get("*weight_quantizer") or {}
    algo = ALGOS.get(weight.get("num_bits"))
    if algo == "W4A16_AWQ" and state["formats"].get("*input_quantizer"):
        algo = "W4A8_AWQ"
    kv = "FP8" if state["formats"].get("*[kv]_bmm_quantizer") else None
    return algo, kv


def export_hf_checkpoint(model, dtype=None, export_dir: str | Path = "/tmp/export") -> None:
    algo, kv = _quant_algo(model)
    out = Path(export_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    config = json.loads((out / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "modelopt", "quant_algo": algo}
    (out / "config.json").write_text(json.dumps(config, indent=2))
    hfq = {"quantization": {"quant_algo": algo, "kv_cache_quant_algo": kv}}
    (out / "hf_quant_config.json").write_text(json.dumps(hfq, indent=2))
    log_call("export_hf_checkpoint", export_dir=str(out), quant_algo=algo)


def export_tensorrt_llm_checkpoint(
    model,
    decoder_type: str,
    dtype,
    export_dir: str | Path,
    inference_tensor_parallel: int = 0,
    inference_pipeline_parallel: int = 1,
) -> None:
    from safetensors.torch import save_file

    algo, kv = _quant_algo(model)
    out = Path(export_dir)
    out.mkdir(parents=True, exist_ok=True)
    tp, pp = max(1, inference_tensor_parallel), inference_pipeline_parallel
    config = {
        "architecture": type(model).__name__,
        "dtype": str(dtype).replace("torch.", ""),
        "decoder_type": decoder_type,
        "mapping": {"world_size": tp * pp, "tp_size": tp, "pp_size": pp},
        "quantization": {"quant_algo": algo, "kv_cache_quant_algo": kv},
    }
    (out / "config.json").write_text(json.dumps(config, indent=2))
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for rank in range(tp * pp):
        save_file(state, str(out / f"rank{rank}.safetensors"))
    log_call("export_tensorrt_llm_checkpoint", export_dir=str(out), quant_algo=algo)

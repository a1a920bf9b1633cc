"""Tuners other than LoRA (IA3, LoHa, LoKr, VeRA, OFT, AdaLoRA, ...): PEFT's own merge.

The whole model is loaded in float32 (so PEFT's arithmetic is float32, rounded once when the
result is cast to the output dtype), merged with merge_and_unload, and saved with
save_pretrained into the staging dir. Memory is about twice the model in float32.
"""

from __future__ import annotations

from pathlib import Path

from lora_merge.base import BaseModel
from lora_merge.errors import bad_input, failed
from lora_merge.safetensors_io import DTYPES, FLOAT_DTYPES


def stored_float_dtype(base: BaseModel) -> str:
    for info in base.tensors.values():
        if info.dtype in FLOAT_DTYPES:
            return info.dtype
    return "F32"


def merge_with_peft(
    base: BaseModel, adapter_dir: Path, out_dir: Path, dtype: str | None, max_shard: int
) -> str:
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
    except ImportError as err:
        raise failed("missing_package", f"PEFT delegation needs {err.name}") from err
    from lora_merge.verify_logits import quiet_libraries

    quiet_libraries()
    target = getattr(torch, DTYPES[dtype or stored_float_dtype(base)][1])
    try:
        model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    except (ValueError, RuntimeError, KeyError, OSError) as err:
        raise bad_input("peft_load_failed", f"{adapter_dir}: PEFT cannot load it: {err}") from err
    model = model.to(target)
    model.save_pretrained(out_dir, max_shard_size=max_shard)
    return str(target).removeprefix("torch.")

"""Fake tensorrt_llm.executor: LoRARequest(lora_name, lora_int_id, lora_path), as the LLM API's."""

from __future__ import annotations


class LoRARequest:
    def __init__(self, lora_name: str, lora_int_id: int, lora_path: str = ""):
        if not isinstance(lora_int_id, int) or lora_int_id < 0:
            raise ValueError(f"lora_int_id must be a non-negative int, got {lora_int_id!r}")
        self.lora_name, self.lora_int_id, self.lora_path = lora_name, lora_int_id, lora_path

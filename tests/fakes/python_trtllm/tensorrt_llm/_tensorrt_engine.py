"""Fake tensorrt_llm._tensorrt_engine: the TensorRT-engine LLM of 1.x (see __init__.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import LLM as _TorchLLM


class LLM(_TorchLLM):
    def __init__(self, model: str, tokenizer: str | None = None, **options):
        engine = Path(model)
        if not (engine / "rank0.engine").is_file():
            raise ValueError(f"not an engine dir: {model}")
        if not tokenizer or not Path(tokenizer).is_dir():
            raise ValueError("an engine needs its tokenizer dir")
        self.model_dir = Path(os.environ["FAKE_TRTLLM_ENGINE_SOURCE"])
        config = json.loads((engine / "config.json").read_text())
        self.serves_lora = bool(config.get("build_config", {}).get("lora_config"))

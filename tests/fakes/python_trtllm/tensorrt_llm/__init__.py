"""Importable stand-in for tensorrt_llm's LLM API, for verify's golden-prompt check in tests.

Put tests/fakes/python_trtllm on PYTHONPATH (with a fake tensorrt_llm dist-info for the version).
LLM(model, **options) checks the options against the LLM-API record of that version, as
TorchLlmArgs would (unknown key: ValueError), then generates greedily with transformers from the
checkpoint; tensorrt_llm.LLM refuses an engine dir as the real one (1.x, PyTorch backend) does.
tensorrt_llm._tensorrt_engine.LLM takes an engine dir and generates with the HF model named by
FAKE_TRTLLM_ENGINE_SOURCE (the fake engines hold no weights). FAKE_TRTLLM_GOLDEN_SHIFT=N adds N
to every generated token id, to make the artifact disagree with the reference;
FAKE_TRTLLM_LORA_IGNORED=1 makes it ignore lora_request (serve the base instead).
generate(..., lora_request=[tensorrt_llm.executor.LoRARequest]) runs each prompt through PEFT with
that adapter, as the real runtime LoRA would, and only where the LLM serves LoRA: a bundle whose
options carry lora_config (each lora_dir an adapter dir), an engine built with its LoRA plugin.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

_REPO = Path(__file__).resolve().parents[4]
sys.path.insert(0, str(_REPO / "scripts" / "export" / "lib"))

import llm_api_options  # noqa: E402

__version__ = metadata.version("tensorrt_llm")


class SamplingParams:
    def __init__(self, max_tokens: int = 16, temperature: float = 1.0, top_k: int | None = None):
        self.max_tokens, self.temperature, self.top_k = max_tokens, temperature, top_k


def _check_lora_dirs(lora_config: dict | None) -> bool:
    for path in (lora_config or {}).get("lora_dir") or []:
        if not (Path(path) / "adapter_config.json").is_file():
            raise ValueError(f"lora_config.lora_dir {path}: no adapter_config.json")
    return lora_config is not None


class LLM:
    def __init__(self, model: str, tokenizer: str | None = None, **options):
        errors = llm_api_options.check_options(options, llm_api_options.load_record(__version__))
        if errors:
            raise ValueError("; ".join(errors))
        self.serves_lora = _check_lora_dirs(options.get("lora_config"))
        self.model_dir = Path(model)
        if (
            not (self.model_dir / "config.json").is_file()
            or (self.model_dir / "rank0.engine").exists()
        ):
            raise ValueError(f"fake tensorrt_llm runs HF checkpoints only: {model}")

    def _model(self, lora_request):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(self.model_dir).eval()
        if lora_request is None or os.environ.get("FAKE_TRTLLM_LORA_IGNORED"):
            return model  # (the knob: a runtime that silently serves the base, e.g. #791)
        requests = lora_request if isinstance(lora_request, list) else [lora_request]
        paths = {r.lora_path for r in requests}
        if not self.serves_lora or len(paths) != 1:
            raise ValueError("this fake serves one adapter per call, on an LLM that serves LoRA")
        from peft import PeftModel

        return PeftModel.from_pretrained(model, paths.pop()).eval()

    def generate(self, prompts, params: SamplingParams, lora_request=None):
        import torch
        from transformers import AutoTokenizer

        if params.temperature != 0.0 or params.top_k != 1:
            raise ValueError("the golden check must sample greedily")
        shift = int(os.environ.get("FAKE_TRTLLM_GOLDEN_SHIFT", "0"))
        tok = AutoTokenizer.from_pretrained(self.model_dir)
        model = self._model(lora_request)
        out = []
        with torch.no_grad():
            for prompt in prompts:
                ids = tok(prompt, return_tensors="pt").input_ids
                gen = model.generate(
                    ids,
                    max_new_tokens=params.max_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id or tok.eos_token_id,
                )
                new = [t + shift for t in gen[0, ids.shape[1] :].tolist()]
                out.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=new)]))
        return out

    def shutdown(self) -> None:
        pass

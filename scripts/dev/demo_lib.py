"""Shared by the demo's helpers: quiet libraries, chat prompts, greedy answers.

`quiet()` must run before transformers is imported: it sets the environment that silences
progress bars and advisory warnings, so the toolkit's own lines are what the terminal shows.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",  # never a hub: every model here is local
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TQDM_DISABLE": "1",  # transformers' GGUF reader uses tqdm directly
}


def quiet() -> None:
    """Silence library progress bars and FutureWarnings/UserWarnings (call before importing)."""
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    for category in (FutureWarning, UserWarning, DeprecationWarning):
        warnings.filterwarnings("ignore", category=category)


def chat_prompt(tokenizer, text: str) -> str:
    """text as a user turn in the model's chat template, ready for the reply (training and
    the demo's questions use this one form)."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False
    )


def chat_inputs(tokenizer, prompts: list[str]):
    """A left-padded batch of prompts, each in the model's chat template as a user turn."""
    texts = [chat_prompt(tokenizer, p) for p in prompts]
    tokenizer.padding_side = "left"
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def greedy(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[list[int]]:
    """Greedy continuations of prompts (token ids, up to the end-of-turn token, excluded)."""
    import torch

    batch = chat_inputs(tokenizer, prompts)
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=pad_id(tokenizer),
            eos_token_id=tokenizer.eos_token_id,
        )
    width = batch["input_ids"].shape[1]
    answers = []
    for row in out[:, width:].tolist():
        if tokenizer.eos_token_id in row:
            row = row[: row.index(tokenizer.eos_token_id)]
        answers.append(row)
    return answers


def load_causal_lm(model_dir: Path | str):
    """A local Hugging Face model in float32 (CPU matmuls are fastest there), in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return model.eval()


def pad_id(tokenizer) -> int:
    """The tokenizer's pad token, else its end-of-text token (a GGUF tokenizer loaded by older
    transformers releases, 5.17 for one, has no pad token)."""
    pad = tokenizer.pad_token_id
    return tokenizer.eos_token_id if pad is None else pad

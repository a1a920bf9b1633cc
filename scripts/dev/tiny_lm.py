"""A tiny Llama with confident predictions and the text it writes, for the quality-gate tests.

Usage:
  tiny_lm.py model --out DIR                     the model (config, safetensors, tokenizer)
  tiny_lm.py text --model DIR --out FILE.jsonl [--samples N] [--tokens L] [--seed S]

A random tiny model (scripts/dev/tiny_models.py) predicts nearly uniform next tokens, so any
perturbation flips its argmax and its perplexity is the vocabulary size whatever is done to it:
useless for telling a sound quantization from a broken one. This one is initialised at the scale
of a trained network (every linear weight ~ N(0, 1/fan_in), embeddings ~ N(0, 1)), so each layer
moves the residual stream as much as the embedding does, and its output head is sharpened so the
next-token distributions are peaked (perplexity ~10 of 320 tokens). Its text is sampled from the
model itself (temperature 1, special tokens excluded): on its own text the model is the best
predictor there is, so a perturbation of its weights can only raise the perplexity, by about the
KL it adds. Deterministic for a given torch version; well under a second to make.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import tiny_models

HEAD_SCALE = 5.0  # output logits ~ N(0, HEAD_SCALE^2): peaked but not one-hot
SPECIAL = len(tiny_models.SPECIAL_TOKENS)


def make_model(out_dir: Path | str, seed: int = 0) -> Path:
    """tiny_models' llama with weights that make a peaked, learnable next-token distribution."""
    return tiny_models.make_model("llama", out_dir, seed=seed, init=_init)


def _init(model) -> None:
    for name, p in model.named_parameters():
        if name.endswith("norm.weight"):
            p.fill_(1.0)
        elif "embed_tokens" in name:
            p.normal_(0.0, 1.0)
        elif "lm_head" in name:
            p.normal_(0.0, HEAD_SCALE / p.shape[1] ** 0.5)
        else:
            p.normal_(0.0, 1.0 / p.shape[1] ** 0.5)


def sample_texts(model_dir: Path | str, samples: int, tokens: int, seed: int = 0) -> list[str]:
    """`samples` texts of `tokens` words each, sampled from the model (temperature 1)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    gen = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(SPECIAL, vocab, (samples, 1), generator=gen)
    with torch.inference_mode():
        for _ in range(tokens - 1):
            logits = model(input_ids=ids).logits[:, -1].float()
            logits[:, :SPECIAL] = -torch.inf
            nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1, generator=gen)
            ids = torch.cat([ids, nxt], dim=1)
    return [tokenizer.decode(row) for row in ids.tolist()]


def write_texts(path: Path | str, texts: list[str]) -> Path:
    path = Path(path)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_model = sub.add_parser("model", help="write the tiny confident model")
    p_model.add_argument("--out", type=Path, required=True)
    p_text = sub.add_parser("text", help="write .jsonl text sampled from a model")
    p_text.add_argument("--model", type=Path, required=True)
    p_text.add_argument("--out", type=Path, required=True)
    p_text.add_argument("--samples", type=int, default=96)
    p_text.add_argument("--tokens", type=int, default=48)
    p_text.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "model":
        print(make_model(args.out))
    else:
        texts = sample_texts(args.model, args.samples, args.tokens, args.seed)
        print(write_texts(args.out, texts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

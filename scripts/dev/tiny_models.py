"""Tiny Hugging Face models and PEFT adapters with random weights, for tests and benchmarks.

Usage:
  tiny_models.py model --family llama --out DIR [--tie] [--dtype bfloat16]
  tiny_models.py adapter --base DIR --out DIR [--r 4] [--target q_proj,v_proj] [--dora]
  tiny_models.py demo --out DIR        # a llama base and a LoRA adapter under DIR/

Everything is built locally from transformers' config classes (never downloaded): a few
hundred kilobytes per model, well under a second each once torch is imported.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

VOCAB_SIZE = 320
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<unk>", "<s>", "</s>", "<pad>", "<|user|>", "<|assistant|>", "<|end|>"]

# family -> (transformers config class name, config kwargs). Sizes are tiny but keep the
# structure that matters: grouped-query attention, gated MLPs, biases where the family has them.
_COMMON = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 256,
}
FAMILIES: dict[str, tuple[str, dict]] = {
    "llama": ("LlamaConfig", dict(_COMMON)),
    "mistral": ("MistralConfig", dict(_COMMON, sliding_window=None)),
    "qwen2": ("Qwen2Config", dict(_COMMON)),
    "gemma": ("GemmaConfig", dict(_COMMON, head_dim=16)),
    "phi3": ("Phi3Config", dict(_COMMON, pad_token_id=3)),
    "gpt2": ("GPT2Config", {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256}),
}
# The linear layers a typical "all-linear" LoRA targets, per family.
LINEAR_TARGETS = {
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    "phi3": ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"],
    "gpt2": ["c_attn", "c_proj", "c_fc"],
}


def make_tokenizer(out_dir: Path, vocab_size: int = VOCAB_SIZE) -> None:
    """Write a small word-level fast tokenizer with a chat template into out_dir."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for i in range(vocab_size - len(vocab)):
        vocab[f"w{i}"] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.save_pretrained(out_dir)


def make_model(
    family: str,
    out_dir: Path | str,
    *,
    tie: bool | None = None,
    dtype: str = "float32",
    seed: int = 0,
    vocab_size: int = VOCAB_SIZE,
    tokenizer: bool = True,
    init: Callable | None = None,
) -> Path:
    """Write a tiny random model of `family` (config, safetensors, generation config, tokenizer).
    init(model): sets the weights instead of the default small perturbation (under no_grad)."""
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, GenerationConfig

    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")
    out = Path(out_dir)
    cls_name, kwargs = FAMILIES[family]
    kwargs = dict(kwargs, vocab_size=vocab_size, bos_token_id=1, eos_token_id=2)
    if tie is not None:
        kwargs["tie_word_embeddings"] = tie
    config = getattr(transformers, cls_name)(**kwargs)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype))
    with torch.no_grad():  # default init leaves biases/norms at 0/1; make every tensor matter
        if init is not None:
            init(model)
        else:
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.02)
    model.save_pretrained(out)
    GenerationConfig(
        bos_token_id=1, eos_token_id=2, pad_token_id=3, max_new_tokens=16
    ).save_pretrained(out)
    if tokenizer:
        make_tokenizer(out, vocab_size)
    return out


def make_adapter(
    base_dir: Path | str,
    out_dir: Path | str,
    *,
    seed: int = 1,
    save_tokenizer: bool = False,
    resize_vocab: int | None = None,
    **lora_kwargs,
) -> Path:
    """Write a PEFT adapter for the model in base_dir, made with get_peft_model + save_pretrained.

    lora_kwargs go to peft.LoraConfig (default: r=4, alpha=8, all linear layers of the family).
    Every adapter weight is random (PEFT initialises lora_B to zero, which would merge to a no-op).
    For other tuners pass peft_config=<a peft config object>. resize_vocab=N resizes the
    token embeddings to N rows before the adapter is made (as training with added tokens does).
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = Path(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if resize_vocab:
        model.resize_token_embeddings(resize_vocab)
    peft_config = lora_kwargs.pop("peft_config", None)
    if peft_config is None:
        family = _family_of(base)
        lora_kwargs.setdefault("r", 4)
        lora_kwargs.setdefault("lora_alpha", 8)
        lora_kwargs.setdefault("target_modules", LINEAR_TARGETS[family])
        if family == "gpt2":
            lora_kwargs.setdefault("fan_in_fan_out", True)
        peft_config = LoraConfig(task_type="CAUSAL_LM", **lora_kwargs)
    peft_model = get_peft_model(model, peft_config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.1 + (1.0 if "magnitude" in name else 0.0))
    out = Path(out_dir)
    peft_model.save_pretrained(out)
    # Point the adapter at the local base, as a training run on this machine would.
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(base.resolve())
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    if save_tokenizer:
        make_tokenizer(out)
    return out


def _family_of(model_dir: Path) -> str:
    model_type = json.loads((model_dir / "config.json").read_text())["model_type"]
    return model_type if model_type in FAMILIES else "llama"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_model = sub.add_parser("model", help="write a tiny base model")
    p_model.add_argument("--family", default="llama", choices=sorted(FAMILIES))
    p_model.add_argument("--out", required=True, type=Path)
    p_model.add_argument("--tie", action="store_true", help="tie lm_head to the embeddings")
    p_model.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    p_adapter = sub.add_parser("adapter", help="write a LoRA adapter for a tiny base")
    p_adapter.add_argument("--base", required=True, type=Path)
    p_adapter.add_argument("--out", required=True, type=Path)
    p_adapter.add_argument("--r", type=int, default=4)
    p_adapter.add_argument("--target", help="comma-separated module names (default: all linear)")
    p_adapter.add_argument("--dora", action="store_true")
    p_demo = sub.add_parser("demo", help="a llama base and an adapter under OUT/")
    p_demo.add_argument("--out", required=True, type=Path)
    args = parser.parse_args(argv)

    if args.cmd == "model":
        print(make_model(args.family, args.out, tie=args.tie or None, dtype=args.dtype))
    elif args.cmd == "adapter":
        kwargs: dict = {"r": args.r, "lora_alpha": 2 * args.r, "use_dora": args.dora}
        if args.target:
            kwargs["target_modules"] = args.target.split(",")
        print(make_adapter(args.base, args.out, **kwargs))
    else:
        base = make_model("llama", args.out / "base", dtype="bfloat16")
        print(base)
        print(make_adapter(base, args.out / "adapter", save_tokenizer=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

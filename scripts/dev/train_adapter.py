"""Train a LoRA adapter on a small chat dataset with PEFT on the CPU: a short run, a fixed seed.

Usage: train_adapter.py --base DIR --data FILE --out DIR [--steps 10] [--batch-size 8] [--lr 5e-3]
                        [--rank 8] [--top-layers 8] [--seed 0]

FILE holds one {"prompt": ..., "reply": ...} object per line. Each prompt is put in the base's
chat template as a user turn and the loss is taken on the reply and its end-of-turn token only.
LoRA (rank R, alpha 2R) goes on every linear layer of the top --top-layers decoder layers, so the
backward pass stops there, and the output layer is applied only where the loss is taken: that
keeps a run of a 135M model to tens of seconds on two cores. Writes DIR with save_pretrained
(adapter_config.json naming the base dir, adapter_model.safetensors), the tokenizer and chat
template, and train_info.json (schema_version 1: loss per step, seconds, settings). The run is
made in DIR.partial and renamed at the end. Prints DIR. Exit: 0 trained, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import demo_lib

LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainError(Exception):
    """Bad input: one line for the user, exit status 2."""


def log(message: str) -> None:
    print(f"train_adapter: {message}", file=sys.stderr, flush=True)


def read_examples(path: Path) -> list[dict]:
    rows = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise TrainError(f"cannot read {path}: {exc.strerror}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise TrainError(f"{path}:{number}: not JSON: {exc}") from exc
        if not (
            isinstance(row, dict)
            and isinstance(row.get("prompt"), str)
            and isinstance(row.get("reply"), str)
        ):
            raise TrainError(f'{path}:{number}: needs string keys "prompt" and "reply"')
        rows.append(row)
    if not rows:
        raise TrainError(f"{path}: no examples")
    return rows


def encode(tokenizer, rows: list[dict]) -> list[tuple[list[int], list[int]]]:
    """(input ids, labels) per example: the prompt's labels are -100, the reply's are its ids."""
    pairs = []
    for row in rows:
        prompt = demo_lib.chat_prompt(tokenizer, row["prompt"])
        p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        r_ids = tokenizer(row["reply"] + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
        pairs.append((p_ids + r_ids, [-100] * len(p_ids) + r_ids))
    return pairs


def batch_tensors(pairs, pad_id: int):
    import torch

    width = max(len(ids) for ids, _ in pairs)
    ids = torch.full((len(pairs), width), pad_id)
    labels = torch.full((len(pairs), width), -100)
    mask = torch.zeros((len(pairs), width), dtype=torch.long)
    for row, (a, b) in enumerate(pairs):
        ids[row, : len(a)] = torch.tensor(a)
        labels[row, : len(b)] = torch.tensor(b)
        mask[row, : len(a)] = 1
    return ids, labels, mask


def reply_loss(peft_model, ids, labels, mask):
    """Cross-entropy of the next token, with the output layer applied at reply positions only."""
    import torch

    model = peft_model.get_base_model()
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    where = target != -100
    logits = model.get_output_embeddings()(hidden[:, :-1][where])
    return torch.nn.functional.cross_entropy(logits.float(), target[where])


def lora_model(base: Path, rank: int, top_layers: int):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    n_layers = model.config.num_hidden_layers
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        target_modules=LINEAR,
        layers_to_transform=list(range(max(0, n_layers - top_layers), n_layers)),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def train(args: argparse.Namespace, tokenizer, peft_model, pairs) -> list[float]:
    import torch

    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr)
    order = torch.Generator().manual_seed(args.seed)
    losses, start = [], time.monotonic()
    peft_model.train()
    for step in range(1, args.steps + 1):
        chosen = torch.randperm(len(pairs), generator=order)[: args.batch_size].tolist()
        loss = reply_loss(
            peft_model, *batch_tensors([pairs[i] for i in chosen], demo_lib.pad_id(tokenizer))
        )
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(round(loss.item(), 4))
        if step == 1 or step % 4 == 0 or step == args.steps:
            log(
                f"step {step}/{args.steps}  loss {losses[-1]:.3f}  "
                f"({time.monotonic() - start:.0f} s)"
            )
    peft_model.eval()
    return losses


def save(args, tokenizer, peft_model, losses: list[float], seconds: float) -> None:
    partial = args.out.parent / f"{args.out.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    peft_model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    info = {
        "schema_version": 1,
        "base": str(args.base),
        "data": str(args.data),
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "rank": args.rank,
        "top_layers": args.top_layers,
        "seed": args.seed,
        "losses": losses,
        "seconds": round(seconds, 1),
    }
    (partial / "train_info.json").write_text(json.dumps(info, indent=2) + "\n")
    partial.rename(args.out)


def run(args: argparse.Namespace) -> None:
    import torch
    from transformers import AutoTokenizer

    if args.out.exists():
        raise TrainError(f"{args.out} exists: remove it or choose another --out")
    if not (args.base / "config.json").is_file():
        raise TrainError(f"{args.base} is not a Hugging Face model dir (no config.json)")
    rows = read_examples(args.data)
    torch.manual_seed(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    pairs = encode(tokenizer, rows)
    peft_model = lora_model(args.base, args.rank, args.top_layers)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    log(
        f"{len(rows)} examples from {args.data.name}; LoRA r={args.rank} on the top "
        f"{args.top_layers} layers ({trainable / 1e6:.2f}M trainable); {args.steps} steps "
        f"of {args.batch_size}, lr {args.lr}, seed {args.seed}"
    )
    start = time.monotonic()
    losses = train(args, tokenizer, peft_model, pairs)
    save(args, tokenizer, peft_model, losses, time.monotonic() - start)


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be 1 or more")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[5:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--base", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=positive, default=10)
    parser.add_argument("--batch-size", type=positive, default=8)
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--rank", type=positive, default=8)
    parser.add_argument("--top-layers", type=positive, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.base, args.out = args.base.resolve(), args.out.resolve()
    demo_lib.quiet()
    try:
        run(args)
    except TrainError as exc:
        print(f"train_adapter: {exc}", file=sys.stderr)
        return 2
    print(args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

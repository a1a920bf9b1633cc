"""Answers of the base, the adapter model (PeftModel) and the merged model, side by side.

Usage: demo_answers.py --base DIR --adapter DIR --merged DIR --prompts FILE
                       [--max-new-tokens 32] [--json FILE]

Each prompt of FILE (one per line) goes through each model's chat template as a user turn and
is answered greedily on the CPU in float32. Prints one block per prompt (stdout). The merged
model must produce the adapter model's tokens exactly: merging changes how the weights are
stored, not what the model computes. Exit: 0 equal, 1 the merged model answered differently
(the first differing token is named), 2 bad input. --json writes every answer and token count
(schema_version 1).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
import time
from pathlib import Path

import demo_lib

WIDTH = 92


def read_prompts(path: Path) -> list[str]:
    try:
        prompts = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    if not prompts:
        raise ValueError(f"{path}: no prompts")
    return prompts


def answer_all(args: argparse.Namespace, prompts: list[str]):
    """The adapter's tokenizer and the token ids per model: base, base + adapter, merged."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(args.adapter)
    base = demo_lib.load_causal_lm(args.base)
    models = {
        "base": lambda: base,
        "adapter": lambda: PeftModel.from_pretrained(base, args.adapter).eval(),
        "merged": lambda: demo_lib.load_causal_lm(args.merged),
    }
    tokens = {}
    for name, load in models.items():  # in this order: the adapter wraps the base in place
        start = time.monotonic()
        tokens[name] = demo_lib.greedy(load(), tokenizer, prompts, args.max_new_tokens)
        print(
            f"demo_answers: {name:<8} {len(prompts)} answers ({time.monotonic() - start:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    return tokenizer, tokens


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def render(prompt: str, texts: dict[str, str], note: str) -> str:
    lines = [f"prompt: {prompt}"]
    for name in ("base", "adapter", "merged"):
        body = textwrap.wrap(texts[name] or "(empty)", WIDTH - 11) or [""]
        lines.append(f"  {name:<8} {body[0]}")
        lines += [f"  {'':<8} {more}" for more in body[1:]]
    lines.append(f"  {'':<8} {note}")
    return "\n".join(lines)


def compare(prompts: list[str], tokenizer, tokens: dict) -> tuple[list[dict], list[str], bool]:
    rows, blocks, equal = [], [], True
    for i, prompt in enumerate(prompts):
        ids = {name: tokens[name][i] for name in ("base", "adapter", "merged")}
        texts = {name: tokenizer.decode(t).strip() for name, t in ids.items()}
        diff = first_difference(ids["adapter"], ids["merged"])
        if diff is None:
            note = f"merged = adapter, token for token ({len(ids['merged'])} tokens)"
        else:
            equal = False
            note = f"MISMATCH: merged differs from adapter at token {diff}"
        rows.append(
            {
                "prompt": prompt,
                **texts,
                "tokens": {k: len(v) for k, v in ids.items()},
                "merged_equals_adapter": diff is None,
            }
        )
        blocks.append(render(prompt, texts, note))
    return rows, blocks, equal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="\n".join(__doc__.splitlines()[4:]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for name in ("--base", "--adapter", "--merged", "--prompts"):
        parser.add_argument(name, type=Path, required=True)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    demo_lib.quiet()
    try:
        prompts = read_prompts(args.prompts)
        for name in ("base", "adapter", "merged"):
            if not getattr(args, name).is_dir():
                raise ValueError(f"--{name} {getattr(args, name)}: no such directory")
    except ValueError as exc:
        print(f"demo_answers: {exc}", file=sys.stderr)
        return 2
    rows, blocks, equal = compare(prompts, *answer_all(args, prompts))
    print("\n\n".join(blocks))
    if args.json:
        report = {"schema_version": 1, "merged_equals_adapter": equal, "answers": rows}
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if not equal:
        print(
            "demo_answers: the merged model does not answer like the adapter model", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

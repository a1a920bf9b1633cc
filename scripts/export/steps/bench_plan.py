#!/usr/bin/env python3
"""Plan a trtllm-bench run of a built artifact: a synthetic dataset made locally (nothing is
downloaded) and the exact trtllm-bench command, from the artifact's build.json.

Usage:
  bench_plan.py --artifact DIR --results DIR --name NAME [--num-requests N] [--input-len N]
                [--output-len N] [--concurrency N] [--seed S]

Writes into --results: dataset.jsonl (one {"task_id", "input_ids", "output_tokens"} per
line, the format trtllm-bench's --dataset reads; token ids drawn uniformly from the vocabulary
above the first 100 ids (special tokens) with a fixed seed, so runs are comparable),
dataset.json (its summary) and argv (the trtllm-bench command, NUL-separated, for
bench_tensorrt_llm.sh). Backend pytorch benchmarks the bundle's checkpoint with its
llm_api_options.yaml; engine the engine dir with the merged model (build.json
inputs.model_dir) for the tokenizer and config. Exit 2 on bad input, with nothing written.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
from pathlib import Path

SCHEMA_VERSION = 1
RESERVED_IDS = 100
PROG = "bench_tensorrt_llm"


class BenchError(Exception):
    code = 2


def _load(path: Path, what: str) -> dict:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BenchError(f"{what} is missing: {path}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BenchError(f"{what} is not readable JSON: {path}: {exc}") from None
    if not isinstance(doc, dict):
        raise BenchError(f"{what} is not a JSON object: {path}")
    return doc


def vocab_size(config_json: Path) -> int:
    config = _load(config_json, "the model config")
    nested = config.get("text_config") or config.get("pretrained_config") or {}
    vocab = config.get("vocab_size") or nested.get("vocab_size")
    if not isinstance(vocab, int) or vocab < 2:
        raise BenchError(f"no vocab_size in {config_json}")
    return vocab


def bench_argv(artifact: Path, manifest: dict, args: argparse.Namespace) -> tuple[list, Path]:
    """The trtllm-bench command and the config.json that bounds the dataset's token ids."""
    backend = manifest.get("backend")
    version = str((manifest.get("environment") or {}).get("trtllm_version") or "")
    argv = ["trtllm-bench", "--model", args.name]
    if backend == "pytorch":
        model_path = artifact / "checkpoint"
        config_json = model_path / "config.json"
    else:
        model_path = Path((manifest.get("inputs") or {}).get("model_dir") or "")
        config_json = artifact / "engine" / "config.json"
        if not (model_path / "config.json").is_file():
            raise BenchError(
                f"the engine benchmark needs the merged model for its tokenizer: {model_path} "
                "is gone"
            )
    if not config_json.is_file():
        raise BenchError(f"incomplete artifact: {config_json} is missing")
    results = args.results
    argv += ["--model_path", str(model_path), "throughput", "--dataset"]
    argv += [str(results / "dataset.jsonl"), "--report_json", str(results / "report.json")]
    argv += ["--num_requests", str(args.num_requests)]
    if backend == "pytorch":
        parallel = manifest.get("parallel") or {}
        argv += ["--backend", "pytorch", "--extra_llm_api_options"]
        argv += [str(artifact / "llm_api_options.yaml"), "--tp", str(parallel.get("tp_size", 1))]
        argv += ["--pp", str(parallel.get("pp_size", 1))]
    else:
        argv += ["--engine_dir", str(artifact / "engine")]
        if version.split(".")[0].isdigit() and int(version.split(".")[0]) >= 1:
            argv += ["--backend", "tensorrt"]  # from 1.0 trtllm-bench defaults to pytorch
    if args.concurrency:
        argv += ["--concurrency", str(args.concurrency)]
    return argv, config_json


def write_dataset(path: Path, vocab: int, args: argparse.Namespace) -> dict:
    low = RESERVED_IDS if vocab > 2 * RESERVED_IDS else 0
    rng = random.Random(args.seed)
    lines = []
    for i in range(args.num_requests):
        ids = [rng.randrange(low, vocab) for _ in range(args.input_len)]
        lines.append(json.dumps({"task_id": i, "input_ids": ids, "output_tokens": args.output_len}))
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    return {
        "schema_version": SCHEMA_VERSION,
        "requests": args.num_requests,
        "input_len": args.input_len,
        "output_len": args.output_len,
        "vocab_size": vocab,
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_plan.py", description=__doc__.splitlines()[0])
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--results", type=Path, required=True)
    parser.add_argument("--name", required=True)
    for flag, default in (("--num-requests", 256), ("--input-len", 1024), ("--output-len", 256)):
        parser.add_argument(flag, type=int, default=default)
    parser.add_argument("--concurrency", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        manifest = _load(args.artifact / "build.json", "build.json")
        command, config_json = bench_argv(args.artifact, manifest, args)
        vocab = vocab_size(config_json)
    except BenchError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return err.code
    args.results.mkdir(parents=True, exist_ok=True)
    summary = write_dataset(args.results / "dataset.jsonl", vocab, args)
    (args.results / "dataset.json").write_text(json.dumps(summary) + "\n", encoding="utf-8")
    (args.results / "argv").write_bytes(b"".join(a.encode() + b"\0" for a in command))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

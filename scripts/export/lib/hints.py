"""Turn a failed step's exit code and log into one hint that names the setting or action to change.

Usage:
  hints.py --log FILE --exit-code N [--step NAME] [--json]

Prints the hint (one line, or a JSON object with --json) on stdout; exit 0 when a known
signature matched, 1 when none did (nothing printed). The table below is the whole knowledge:
each entry is (id, regex over the log, hint). Order matters: the first match wins.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1
# Only the end of a log matters for a failure; reading a bounded tail keeps this fast on huge logs.
TAIL_BYTES = 256 * 1024


@dataclass(frozen=True)
class Signature:
    id: str
    pattern: re.Pattern[str]
    hint: str


def _sig(id_: str, pattern: str, hint: str) -> Signature:
    return Signature(id_, re.compile(pattern, re.IGNORECASE | re.MULTILINE), hint)


SIGNATURES: tuple[Signature, ...] = (
    _sig(  # modelopt_quantize.py's quality gate (quality.py)
        "quality_gate",
        r"quality gate failed:",
        "the quantized model lost more quality than quantization.eval.gate allows (the table "
        "above; logs/quality.json in the kept staging dir): try a milder quantization.mode (fp8), "
        "calibration data like your traffic (quantization.calibration.dataset), or publish anyway "
        "with --accept-quality-loss (make engine ... ACCEPT_QUALITY_LOSS=1)",
    ),
    _sig(
        "quality_eval",
        r"quality eval: ",
        "too few eval samples for the quality gate once tokenized (each needs 2 tokens or more): "
        "add samples, lower quantization.calibration.num_samples (the eval holds out the samples "
        "after them), or set quantization.eval.dataset to a file of held-out text",
    ),
    _sig(
        "version_tag_mismatch",
        r"Version tag does not match|Serialization assertion|deserializ\w* .*failed",
        "the engine was built by another TensorRT version: rebuild in the container that serves "
        "(make engine NAME=... --force) or pin target.trtllm_version to the serving version",
    ),
    _sig(
        "gpu_arch_mismatch",
        r"expecting compute \d+\.\d+ got compute \d+\.\d+|incompatible device",
        "engines only run on the GPU architecture they were built on: build on the serving GPU "
        "and set target.gpus in the config to it",
    ),
    _sig(
        "unknown_architecture",
        r"KeyError: '?\w*For\w+'?|not in MODEL_MAP|Unsupported model architecture|"
        r"KeyError: '?architecture'?",
        "this TensorRT-LLM version has no converter for the model's architecture (MODEL_MAP): "
        "use a TensorRT-LLM version that supports it (target.trtllm_version) or backend: pytorch; "
        "KeyError 'architecture' means a Hugging Face dir was given where a TensorRT-LLM "
        "checkpoint is expected",
    ),
    _sig(
        "world_size_mismatch",
        r"world size \(?\d+\)? ?!= ?runtime world size|mpiSize ?== ?tp ?\* ?pp|"
        r"MPI size \d+ != TP|world_size .* does not match",
        "the number of processes differs from tp_size*pp_size: launch with the world size in "
        "build.json (serve.sh does) or change parallel.tp_size / parallel.pp_size",
    ),
    _sig(
        "unrecognized_arguments",
        r"unrecognized arguments?:|error: argument .*invalid choice|no such option",
        "the tool rejected a flag the plan took from its recorded CLI: the program that ran "
        "belongs to another TensorRT-LLM than the one installed for PYTHON (make doctor compares "
        "them: trtllm_programs), or this release's CLI differs from the record; run inside one "
        "TensorRT-LLM container and report the flag",
    ),
    _sig(
        "gpu_out_of_memory",
        r"CUDA out of memory|OutOfMemory|out of memory|Requested amount of GPU memory|"
        r"cudaErrorMemoryAllocation|Insufficient memory",
        "the GPU ran out of memory while building: lower build.max_num_tokens or "
        "build.max_batch_size, raise parallel.tp_size, or use a smaller quantization.mode "
        "(fp8, int4_awq)",
    ),
    _sig(
        "host_out_of_memory",
        r"^Killed$|\bKilled\b.*python|MemoryError|Cannot allocate memory",
        "the process was killed for host memory: set build.workers: 1, close other jobs, or "
        "convert on a machine with more RAM (each worker loads a full copy of the weights)",
    ),
    _sig(
        "tool_missing",
        r"run_step: command not found|No module named '?tensorrt_llm'?|can't open file .*"
        r"convert_checkpoint\.py",
        "TensorRT-LLM or one of its scripts is not where the plan expects it: run inside NVIDIA's "
        "TensorRT-LLM container with PYTHON=python3 and TRTLLM_EXAMPLES_DIR set (make doctor "
        "checks both)",
    ),
    _sig(
        "disk_full",
        r"No space left on device",
        "the disk is full: free space under outputs/gpu/tensorrt_llm/ (stale .staging dirs "
        "of failed builds are safe to delete) or build with --output on a larger disk",
    ),
)

# Per step, a hint that names what changes that step's memory (conversion and quantization load
# the checkpoint; max_num_tokens and max_batch_size only size the engine that trtllm-build makes).
STEP_HINTS = {
    ("convert", "gpu_out_of_memory"): "the GPU ran out of memory converting the checkpoint: "
    "convert on a GPU with more memory or with parallel.tp_size raised (each rank converts a "
    "slice); build.max_num_tokens and build.max_batch_size do not change conversion",
    ("quantize", "gpu_out_of_memory"): "the GPU ran out of memory calibrating: lower "
    "quantization.calibration.num_samples or quantization.calibration.max_seq_len, or quantize "
    "on a GPU with more memory",
    ("convert", "host_out_of_memory"): "the converter was killed for host memory (it loads "
    "the whole checkpoint): convert on a machine with more RAM, close other jobs, or raise "
    "parallel.tp_size so each rank holds less",
    ("quantize", "host_out_of_memory"): "the quantizer was killed for host memory: quantize on "
    "a machine with more RAM, or close other jobs",
}

# Exit codes that say more than any log line: 137 = SIGKILL, which the kernel OOM killer sends.
EXIT_CODE_HINTS = {
    137: "host_out_of_memory",
    -9: "host_out_of_memory",
}


def classify(log_text: str, exit_code: int | None = None) -> Signature | None:
    """The first signature whose pattern occurs in log_text, else one implied by exit_code."""
    for sig in SIGNATURES:
        if sig.pattern.search(log_text):
            return sig
    by_code = EXIT_CODE_HINTS.get(exit_code) if exit_code is not None else None
    if by_code:
        return next(s for s in SIGNATURES if s.id == by_code)
    return None


def read_tail(path: Path, max_bytes: int = TAIL_BYTES) -> str:
    """The last max_bytes of a log file as text (undecodable bytes replaced); '' when absent."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="hint for a failed build step")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--exit-code", type=int, default=None)
    parser.add_argument("--step", default="")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    sig = classify(read_tail(args.log), args.exit_code)
    if sig is None:
        return 1
    hint = STEP_HINTS.get((args.step, sig.id), sig.hint)
    if args.json:
        doc = {"schema_version": SCHEMA_VERSION, "id": sig.id, "step": args.step, "hint": hint}
        json.dump(doc, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(f"{hint} [{sig.id}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""serve.sh of an artifact: the one launch command, each option given once, run from the
artifact's own dir (symlinks followed), so the artifact can be copied anywhere as a whole.

Library:
  engine_argv(trtllm_version, tp, pp) -> list[str]   the command for an engine, per version
  write(path, argv, build_id, plan) -> dict          writes serve.sh; the manifest's "serve"
  lora_lines(part) -> str                            serve.sh lines printing each adapter's
                                                     lora_request (runtime LoRA)
"""

from __future__ import annotations

import shlex
from pathlib import Path

from versions import at_least

FIRST_TRTLLM_SERVE = "0.15.0"  # trtllm-serve first shipped in 0.15
DEFAULT_BACKEND_FLAG = "1.0.0"  # from 1.0 trtllm-serve defaults to the PyTorch backend
RUN_PY = "${TRTLLM_EXAMPLES_DIR:?set TRTLLM_EXAMPLES_DIR to TensorRT-LLM examples}/run.py"


def engine_argv(trtllm_version: str, tp: int, pp: int) -> list[str]:
    """trtllm-serve (0.15+) takes the engine dir and --tokenizer; it starts its own MPI workers
    from --tp_size/--pp_size, which must match the engine's mapping. From 1.0 its default backend
    is PyTorch, so --backend tensorrt is needed for an engine. Before 0.15 there is no
    trtllm-serve: the command is examples/run.py, under `mpirun -n <world size>` when > 1."""
    world = tp * pp
    if at_least(trtllm_version, FIRST_TRTLLM_SERVE):
        argv = ["trtllm-serve", "engine", "--tokenizer", "tokenizer"]
        if at_least(trtllm_version, DEFAULT_BACKEND_FLAG):
            argv += ["--backend", "tensorrt"]
        if world > 1:
            argv += ["--tp_size", str(tp), "--pp_size", str(pp)]
        return argv
    argv = ["python3", RUN_PY, "--engine_dir", "engine", "--tokenizer_dir", "tokenizer"]
    argv += ["--max_output_len", "64"]
    if world > 1:
        argv = ["mpirun", "-n", str(world), "--allow-run-as-root", *argv]
    return argv


def _word(arg: str) -> str:
    if arg == RUN_PY:
        return f'"{arg}"'  # expanded by serve.sh on the serving machine, on purpose
    return shlex.quote(arg)


def lora_lines(part: dict) -> str:
    """serve.sh lines (cwd: the artifact) that print what a client sends for each adapter of the
    plan's runtime-LoRA part: trtllm-serve loads the adapter a request names from its lora_path."""
    lines = ['# Runtime LoRA: a request picks an adapter with "lora_request" (build.json "lora").']
    for a in part["adapters"]:
        name, uid = a["name"], int(a["lora_int_id"])
        text = (
            f'lora adapter {name}: "lora_request": {{"lora_name": "{name}", '
            f'"lora_int_id": {uid}, "lora_path": "%s"}}\\n'
        )
        lines.append(f'printf {shlex.quote(text)} "${{PWD}}/lora/{name}" >&2')
    return "\n".join(lines) + "\n"


def write(path: Path, argv: list[str], build_id: str, plan: dict) -> dict:
    kind = "trtllm-serve" if argv[0] == "trtllm-serve" else "run.py"
    usage = (
        "more trtllm-serve options, e.g. --host 0.0.0.0 --port 8000"
        if kind == "trtllm-serve"
        else "more run.py options, e.g. --input_text 'Hello'"
    )
    note = (
        "# TensorRT-LLM before 0.15 has no trtllm-serve: this is a one-shot generation; serve\n"
        "# over HTTP with Triton's tensorrtllm_backend.\n"
        if kind == "run.py"
        else ""
    )
    gpu = plan["gpu"]
    lora = lora_lines(plan["lora"]) if plan.get("lora") else ""
    path.write_text(
        f"""#!/usr/bin/env bash
# Serve this TensorRT-LLM artifact ({plan["backend"]} backend). Written by build_tensorrt_llm.sh
# (build {build_id[:19]}).
#
# Usage: serve.sh [{usage}]
#
# Runs from its own directory (through symlinks too), so the artifact can be copied anywhere as
# a whole. Built for TensorRT-LLM {plan["trtllm_version"]} on {gpu["name"]} (compute capability
# {gpu["compute_capability"]}), world size {plan["world_size"]}: build.json has the rest.
{note}set -euo pipefail
cd "$(dirname "$(readlink -f "${{BASH_SOURCE[0]}}")")"
{lora}exec {" ".join(_word(a) for a in argv)} "$@"
""",
        encoding="utf-8",
    )
    path.chmod(0o755)
    return {
        "kind": kind,
        "argv": argv,
        "world_size": plan["world_size"],
        "accepts_args": True,
        "cwd": "artifact dir",
        "script": "serve.sh",
    }

"""Which code does the merge math, chosen before anything is written.

numpy (np_engine) on the CPU: no torch import, which is most of the run time of a small merge.
torch (torch_engine) for --device cuda, DoRA (its row norms must match torch's bit for bit)
and float8 tensors, and on the CPU when numpy is missing. Neither importable: exit 2.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

from lora_merge.errors import bad_input
from lora_merge.safetensors_io import FLOAT_DTYPES

NUMPY_OPS = {"lora", "lora_fan", "lora_emb", "bias", "tokens"}
MAX_WORKERS = 8  # enough to keep up with the disk; each holds a piece's buffers (~13 MiB)


@dataclass
class Engine:
    name: str  # numpy | torch
    compute: Callable  # compute(piece, fds, out=None) -> memoryview of the piece's bytes
    workers: int
    processes: bool = False  # the workers are forked processes (procs.py), not threads


def missing(*modules: str) -> list[str]:
    """The modules of the list that this interpreter cannot import (without importing)."""
    return [m for m in modules if importlib.util.find_spec(m) is None]


def numpy_can_merge(plan) -> str | None:
    """None when np_engine computes every tensor of the plan, else the reason it cannot."""
    for t in plan.tensors:
        if t.passthrough:
            continue
        if t.src_dtype not in FLOAT_DTYPES or t.out_dtype not in FLOAT_DTYPES:
            return f"{t.name} is {t.src_dtype}"
        kinds = {op.kind for op in t.ops} - NUMPY_OPS
        if kinds:
            return "DoRA" if any(k.startswith("dora") for k in kinds) else sorted(kinds)[0]
    return None


def missing_message(what: str, modules: list[str]) -> str:
    return (
        f"{what} needs {' and '.join(modules)}, which {sys.executable} cannot import; run it "
        "with the interpreter that has them (the repository's .venv/bin/python, or python3 in "
        "NVIDIA's TensorRT-LLM container)"
    )


def pick(plan, device: str, workers: int = 0) -> Engine:
    """The engine for this plan and --device; raises MergeError (exit 2) when none can run."""
    workers = workers or min(MAX_WORKERS, (os.cpu_count() or 2) + 1)
    why_torch = "--device cuda" if device == "cuda" else numpy_can_merge(plan)
    if why_torch is None and not missing("numpy"):
        if "numpy" not in sys.modules:  # the workers are the parallelism: BLAS threads on top
            os.environ["OPENBLAS_NUM_THREADS"] = "1"  # spin-wait: ten times slower on 2 cores
        from lora_merge import np_engine, procs

        forked = procs.usable() and workers > 1
        return Engine("numpy", np_engine.compute_piece, workers, processes=forked)
    if missing("torch"):
        what = f"the merge ({why_torch})" if why_torch else "the merge"
        need = "torch" if why_torch else "numpy (or torch)"
        raise bad_input("missing_package", missing_message(what, [need]))
    from lora_merge import torch_engine

    torch_engine.configure(workers)
    dev = _cuda() if device == "cuda" else None
    return Engine("torch", functools.partial(torch_engine.compute_piece, device=dev), workers)


def check_delegated(device: str) -> None:
    """PEFT's own merge (other tuners) needs torch, transformers and peft."""
    gone = missing("torch", "transformers", "peft")
    if gone:
        raise bad_input("missing_package", missing_message("PEFT's merge of this tuner", gone))
    if device == "cuda":
        _cuda()


def _cuda():
    import torch

    if not torch.cuda.is_available():
        raise bad_input("no_cuda", "--device cuda: torch sees no CUDA device")
    return torch.device("cuda")

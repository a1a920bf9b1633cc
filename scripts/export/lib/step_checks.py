"""Whether each planned step can run on this machine: its program and script, the packages it
imports, a GPU where it needs one. A failed check here stops a build before its staging dir
exists (exit 2); a dry run, which plans for another machine, shows the same as warnings.

Library for plan.py: tool_checks(steps, facts, examples_dir, family, status) -> list[check]
"""

from __future__ import annotations

import shutil
from pathlib import Path

from errors import Check, check
from family import load_data

CONTAINER = "run inside NVIDIA's TensorRT-LLM release container with PYTHON=python3"
# What each kind of step imports or runs, beyond its program and script.
NEEDS = {
    "convert": ("tensorrt_llm",),
    "quantize.py": ("tensorrt_llm",),
    "modelopt": ("torch", "nvidia-modelopt", "gpu"),
    "build": ("tensorrt_llm", "gpu"),
    "calib": (),
}
INSTALL = {
    "tensorrt_llm": CONTAINER,
    "torch": "use an interpreter with torch (PYTHON=python3 in NVIDIA's container)",
    "nvidia-modelopt": "pip install nvidia-modelopt in the interpreter that builds "
    "(NVIDIA's TensorRT-LLM container ships it)",
    "gpu": "quantize and build on a machine with an NVIDIA GPU (nvidia-smi must list it)",
}


def step_kind(step: dict) -> str:
    argv = step["argv"]
    if step["name"] == "quantize":
        return "modelopt" if argv[1].endswith("modelopt_quantize.py") else "quantize.py"
    return step["name"]


def examples_layout(examples: str) -> bool:
    """Whether a dir looks like TensorRT-LLM's examples dir (a family's convert script or the
    quantization dir in it), to tell a wrong TRTLLM_EXAMPLES_DIR from a missing family script."""
    root = Path(examples)
    if not root.is_dir():
        return False
    if (root / load_data()["quantize_py"]["script"]).is_file():
        return True
    return any(root.glob("*/convert_checkpoint.py")) or any(
        root.glob("models/*/*/convert_checkpoint.py")
    )


def _have(need: str, facts: dict) -> bool:
    if need == "gpu":
        gpu = facts.get("gpu") or {}
        return gpu.get("status") == "ok" and bool(gpu.get("devices"))
    return bool((facts.get("packages") or {}).get(need))


def _script_check(step: dict, examples: str, family, status: str) -> Check | None:
    script = step["argv"][1] if len(step["argv"]) > 1 else ""
    if not script.endswith(".py") or Path(script).is_file():
        return None
    name = step["name"]
    if script.startswith("$"):
        return check(
            "examples_dir",
            status,
            f"step {name} runs {script}, and TRTLLM_EXAMPLES_DIR is not set",
            "export TRTLLM_EXAMPLES_DIR=<TensorRT-LLM>/examples "
            "(/app/tensorrt_llm/examples in NVIDIA's container)",
        )
    if examples_layout(examples) and script.startswith(examples):
        what = f"the {family.name} convert script" if family else "the script"
        rel = script[len(examples) :].lstrip("/")
        return check(
            "examples_dir",
            status,
            f"TensorRT-LLM's examples dir {examples} has no {rel}: this TensorRT-LLM release "
            f"does not ship {what} there",
            "use a TensorRT-LLM release whose examples have it, or backend: pytorch",
        )
    return check(
        "examples_dir",
        status,
        f"step {name} needs {script}, which does not exist",
        "set TRTLLM_EXAMPLES_DIR to TensorRT-LLM's examples dir "
        "(/app/tensorrt_llm/examples in NVIDIA's container)",
    )


def tool_checks(steps: list[dict], facts: dict, examples: str, family, status: str) -> list[Check]:
    """One check per missing program, script, package or GPU; one pass when all are there."""
    out: list[Check] = []
    for step in steps:
        program = step["argv"][0]
        if shutil.which(program) is None:
            out.append(
                check(
                    "step_tools",
                    status,
                    f"step {step['name']} runs {program}, which is not on PATH",
                    CONTAINER,
                )
            )
        found = _script_check(step, examples, family, status)
        if found:
            out.append(found)
        for need in NEEDS.get(step_kind(step), ()):
            if not _have(need, facts):
                what = "a GPU" if need == "gpu" else need
                out.append(
                    check(
                        "step_tools",
                        status,
                        f"step {step['name']} needs {what}, which this machine does not have",
                        INSTALL[need],
                    )
                )
    if steps and not out:
        names = ", ".join(s["name"] for s in steps)
        out.append(check("step_tools", "pass", f"programs and packages for {names} are here"))
    return _dedupe(out)


def _dedupe(checks: list[Check]) -> list[Check]:
    seen, out = set(), []
    for c in checks:
        if c["message"] not in seen:
            seen.add(c["message"])
            out.append(c)
    return out

"""Compatibility checks of a resolved build config against the facts of a machine.

Library: `run_checks(config, facts, *, require_machine=True) -> list[dict]`, each check
`{"id", "status": "pass|warn|fail|skip", "message", "fix"}` (docs/internals.md, "Checks").
Tables (TensorRT-LLM -> TensorRT/torch/CUDA/ModelOpt, backend windows, GPU compute capability
per precision) live in data/versions.json, not in code.

require_machine=False (a dry run on a machine without TensorRT-LLM or a GPU) plans for the
config's target: a missing GPU or TensorRT-LLM is then a warning, not a failure.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

DATA = Path(__file__).resolve().parent / "data" / "versions.json"

Check = dict[str, str]


@lru_cache(maxsize=1)
def tables() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def parse_version(text: str | None) -> Version | None:
    if not text:
        return None
    try:
        return Version(text)
    except InvalidVersion:
        return None


def release_line(text: str) -> str | None:
    """'1.2.0rc3' -> '1.2' (the key of the dependency table)."""
    v = parse_version(text)
    return f"{v.major}.{v.minor}" if v else None


def stack_for(trtllm_version: str) -> dict | None:
    """The dependency row (tensorrt, torch, cuda, modelopt, transformers, python) or None."""
    line = release_line(trtllm_version)
    return tables()["trtllm"].get(line) if line else None


def window_text(backend: str) -> str:
    w = tables()["backends"][backend]
    return f"{w['min']} .. {w['max']}" if w["max"] else f"{w['min']} and newer"


def _inside(backend: str, v: Version) -> bool:
    w = tables()["backends"][backend]
    low = Version(w["min"])
    # Pre-releases of the first version belong to the window too (1.0.0rc1 for pytorch).
    if v < low and Version(v.base_version) < low:
        return False
    return not (w["max"] and v > Version(w["max"]))


def window_problem(backend: str, version_text: str) -> str | None:
    """None when `version_text` is inside the backend's window, else a one-line reason."""
    w = tables()["backends"][backend]
    v = parse_version(version_text)
    if v is None:
        return f"{version_text!r} is not a version"
    if _inside(backend, v):
        return None
    relation, bound = (
        ("older than", w["min"]) if v < Version(w["min"]) else ("newer than", w["max"])
    )
    other = "pytorch" if backend == "engine" else "engine"
    alt = f"; or use backend: {other} ({window_text(other)})" if _inside(other, v) else ""
    return (
        f"TensorRT-LLM {version_text} is {relation} {bound}: the {backend} backend needs "
        f"{window_text(backend)}{alt}"
    )


def spec_ok(spec: str | None, version_text: str | None) -> bool | None:
    """True/False when both are known, None when either is unknown or unparsable."""
    if not spec or not version_text:
        return None
    v = parse_version(version_text)
    if v is None:
        return None
    try:
        spec_set = SpecifierSet(spec)
    except InvalidSpecifier:
        return None
    public = Version(v.public)
    return spec_set.contains(public, prereleases=True)


def _cc(text: str | None) -> tuple[int, int] | None:
    try:
        major, minor = str(text).split(".")
        return int(major), int(minor)
    except (ValueError, AttributeError):
        return None


def _check(cid: str, status: str, message: str, fix: str = "") -> Check:
    return {"id": cid, "status": status, "message": message, "fix": fix}


def _config_body(config: Any) -> dict:
    if hasattr(config, "model_dump"):
        return config.model_dump(mode="json")
    if isinstance(config, dict) and "config" in config and "schema_version" in config:
        return config["config"]
    return config


def run_checks(config: Any, facts: dict, *, require_machine: bool = True) -> list[Check]:
    """Every check, in a stable order. `config` is the resolved document or its `config` part."""
    cfg = _config_body(config)
    checks: list[Check] = []
    checks += _check_trtllm(cfg, facts, require_machine)
    checks += _check_stack(cfg, facts)
    checks += _check_gpus(cfg, facts, require_machine)
    checks += _check_driver(cfg, facts)
    checks += _check_host(cfg, facts)
    return checks


# ---------------------------------------------------------------------------------------------
# TensorRT-LLM itself


def effective_trtllm(cfg: dict, facts: dict) -> tuple[str, str]:
    """(version, source): the installed TensorRT-LLM, else the config's target."""
    installed = (facts.get("packages") or {}).get("tensorrt_llm")
    if installed:
        return installed, "installed"
    return cfg["target"]["trtllm_version"], "config"


def _check_trtllm(cfg: dict, facts: dict, require_machine: bool) -> list[Check]:
    out = []
    backend = cfg["backend"]
    target = cfg["target"]["trtllm_version"]
    installed = (facts.get("packages") or {}).get("tensorrt_llm")
    if not installed:
        status = "fail" if require_machine else "warn"
        out.append(
            _check(
                "trtllm_installed",
                status,
                "TensorRT-LLM is not installed for "
                f"{(facts.get('python') or {}).get('executable') or 'PYTHON'}; "
                f"planning for target.trtllm_version {target}",
                "run inside NVIDIA's TensorRT-LLM release container and pass its interpreter: "
                "PYTHON=python3 make ...",
            )
        )
    else:
        out.append(_check("trtllm_installed", "pass", f"TensorRT-LLM {installed} is installed"))
        same_line = release_line(installed) == release_line(target)
        if installed == target:
            out.append(
                _check("trtllm_target", "pass", f"installed {installed} = target.trtllm_version")
            )
        else:
            out.append(
                _check(
                    "trtllm_target",
                    "warn" if same_line else "fail",
                    f"installed TensorRT-LLM {installed} differs from target.trtllm_version "
                    f"{target}: "
                    "an engine only loads in the TensorRT-LLM (and TensorRT) it was built with",
                    f'set target.trtllm_version: "{installed}" if you serve with {installed}, '
                    f"or build in the {target} container",
                )
            )
    version, source = effective_trtllm(cfg, facts)
    problem = window_problem(backend, version)
    if problem:
        out.append(
            _check(
                "backend_window",
                "fail",
                f"{problem} ({source})",
                f"use a TensorRT-LLM in {window_text(backend)}, or change backend",
            )
        )
    else:
        out.append(
            _check(
                "backend_window",
                "pass",
                f"{backend} backend supports TensorRT-LLM {version} ({window_text(backend)})",
            )
        )
    if installed:
        programs = facts.get("programs") or {}
        need = "trtllm-build" if backend == "engine" else "trtllm-serve"
        if programs.get(need):
            out.append(_check("trtllm_programs", "pass", f"{need} is on PATH ({programs[need]})"))
        else:
            out.append(
                _check(
                    "trtllm_programs",
                    "fail",
                    f"{need} is not on PATH although tensorrt_llm {installed} is installed",
                    "add the bin dir of "
                    f"{(facts.get('python') or {}).get('executable') or 'PYTHON'}'s "
                    "environment to PATH",
                )
            )
    return out


def _check_stack(cfg: dict, facts: dict) -> list[Check]:
    """TensorRT, torch, ModelOpt, transformers, Python against the TensorRT-LLM release line."""
    out = []
    installed = (facts.get("packages") or {}).get("tensorrt_llm")
    if not installed:
        return [_check("version_stack", "skip", "TensorRT-LLM not installed; stack not checked")]
    row = stack_for(installed)
    if row is None:
        return [
            _check(
                "version_stack",
                "warn",
                f"no dependency table for TensorRT-LLM {installed}; versions not checked",
                "stay on a release line in data/versions.json (0.12 .. 1.2)",
            )
        ]
    pkgs = facts.get("packages") or {}
    backend = cfg["backend"]
    mode = cfg["quantization"]["mode"]
    needs_modelopt = mode in {"fp8", "int4_awq", "w4a8_awq", "int8_sq", "nvfp4"} or (
        cfg["quantization"]["kv_cache_dtype"] == "fp8"
    )
    items = [
        ("tensorrt", "tensorrt_version", backend == "engine", "fail"),
        ("torch", "torch_version", True, "fail"),
        ("nvidia-modelopt", "modelopt_version", needs_modelopt, "fail"),
        ("transformers", "transformers_version", True, "warn"),
    ]
    table_key = {"nvidia-modelopt": "modelopt"}
    line = release_line(installed)
    for pkg, cid, needed, severity in items:
        spec = row.get(table_key.get(pkg, pkg))
        have = pkgs.get(pkg)
        if not have:
            if needed:
                out.append(
                    _check(
                        cid,
                        "fail",
                        f"{pkg} is not installed (TensorRT-LLM {line} needs {spec or 'it'})",
                        f"use NVIDIA's TensorRT-LLM {installed} container, which ships {pkg}",
                    )
                )
            else:
                out.append(
                    _check(cid, "skip", f"{pkg} not installed and not needed for this config")
                )
            continue
        ok = spec_ok(spec, have)
        if ok is None:
            out.append(
                _check(cid, "pass", f"{pkg} {have} (no pin recorded for TensorRT-LLM {line})")
            )
        elif ok:
            out.append(_check(cid, "pass", f"{pkg} {have} matches {spec} for TensorRT-LLM {line}"))
        else:
            status = severity
            ngc = "+" in have and ".nv" in have.split("+", 1)[1]
            if pkg == "torch" and ngc:
                status = "warn"  # NVIDIA's container builds torch itself; trust the container
            out.append(
                _check(
                    cid,
                    status,
                    f"{pkg} {have} does not match {spec} that TensorRT-LLM {line} was built "
                    "against",
                    f"pip install '{pkg}{spec}' in this environment, or use the TensorRT-LLM "
                    f"{installed} container",
                )
            )
    py = (facts.get("python") or {}).get("version") or ""
    py_mm = ".".join(py.split(".")[:2])
    if py_mm and row.get("python") and py_mm not in row["python"]:
        out.append(
            _check(
                "python_version",
                "warn",
                f"Python {py} is not among the builds of TensorRT-LLM {line} "
                f"({', '.join(row['python'])})",
                f"use Python {row['python'][-1]} (NVIDIA's container has the right one)",
            )
        )
    elif py_mm:
        out.append(_check("python_version", "pass", f"Python {py}"))
    return out


# ---------------------------------------------------------------------------------------------
# GPUs


def _precision_needs(cfg: dict) -> list[tuple[str, str]]:
    """(what, minimum compute capability) for the config's precisions."""
    table = tables()["precision_min_cc"]
    needs = []
    mode = cfg["quantization"]["mode"]
    if cfg["dtype"] == "bfloat16":
        needs.append(("dtype bfloat16", table["bfloat16"]))
    if mode in table:
        needs.append((f"quantization.mode {mode}", table[mode]))
    if cfg["quantization"]["kv_cache_dtype"] == "fp8":
        needs.append(("quantization.kv_cache_dtype fp8", table["fp8"]))
    if cfg["build"]["use_fp8_context_fmha"]:
        needs.append(("build.use_fp8_context_fmha", table["fp8"]))
    return needs


def _best_precision_for(cc: tuple[int, int]) -> str:
    if cc >= (10, 0):
        return "quantization.mode: nvfp4 or fp8"
    if cc >= (8, 9):
        return "quantization.mode: fp8"
    if cc >= (8, 0):
        return "dtype: bfloat16 with quantization.mode none, int8_weight_only or int4_awq"
    return "dtype: float16 with quantization.mode none, int8_weight_only or int4_awq"


def _check_gpus(cfg: dict, facts: dict, require_machine: bool) -> list[Check]:
    out = []
    gpu = facts.get("gpu") or {}
    devices = gpu.get("devices") or []
    targets = cfg["target"]["gpus"]
    world = cfg["parallel"]["tp_size"] * cfg["parallel"]["pp_size"]
    if gpu.get("status") != "ok" or not devices:
        status = "fail" if require_machine else "warn"
        detail = gpu.get("detail") or "no GPU detected"
        fix = (
            "load the NVIDIA driver (nvidia-smi must work), or plan only with --dry-run"
            if gpu.get("status") == "error"
            else "run on a machine with an NVIDIA GPU, or plan only with --dry-run"
        )
        out.append(
            _check("gpu_present", status, f"{detail}; planning for {targets[0]['name']}", fix)
        )
        # Precision against the target GPUs: the config must at least be consistent.
        for t in targets:
            out += _precision(cfg, facts, t["name"], t["compute_capability"], "target")
        return out
    names = sorted({d["name"] for d in devices})
    out.append(_check("gpu_present", "pass", f"{len(devices)} x {', '.join(names)}"))
    if len(names) > 1:
        out.append(
            _check(
                "gpu_uniform",
                "warn",
                f"mixed GPU models ({', '.join(names)}): an engine runs only on the model it was "
                "built on",
                "set CUDA_VISIBLE_DEVICES to GPUs of one model",
            )
        )
    if len(devices) < world:
        out.append(
            _check(
                "gpu_count",
                "fail",
                f"tp_size * pp_size = {world} needs {world} GPUs, this machine has {len(devices)}",
                f"lower parallel.tp_size/pp_size to fit {len(devices)} GPU(s), or use a bigger "
                "machine",
            )
        )
    else:
        out.append(_check("gpu_count", "pass", f"{world} rank(s) on {len(devices)} GPU(s)"))
    mig = [d for d in devices if str(d.get("mig_mode", "")).lower() == "enabled"]
    if mig:
        status = "fail" if world > 1 else "warn"
        out.append(
            _check(
                "gpu_mig",
                status,
                f"MIG is enabled on GPU {', '.join(str(d['index']) for d in mig)}: a MIG slice "
                "has a "
                "fraction of the memory shown"
                + (
                    "; tensor/pipeline parallelism across MIG instances is not supported"
                    if world > 1
                    else ""
                ),
                "disable MIG (nvidia-smi -mig 0, as root) or build with tp_size 1, pp_size 1 for "
                "one slice",
            )
        )
    first = devices[0]
    out += _precision(cfg, facts, first["name"], first["compute_capability"], "detected")
    out += _check_target_vs_detected(cfg, first)
    low_free = [
        d
        for d in devices[: max(world, 1)]
        if d.get("memory_total_mib")
        and d.get("memory_free_mib") is not None
        and d["memory_free_mib"] < 0.9 * d["memory_total_mib"]
    ]
    if low_free:
        d = low_free[0]
        used = d["memory_total_mib"] - d["memory_free_mib"]
        out.append(
            _check(
                "gpu_memory_free",
                "warn",
                f"GPU {d['index']} has {used} MiB of {d['memory_total_mib']} MiB in use by other "
                "processes",
                "stop them before building, or lower runtime.kv_cache_free_gpu_memory_fraction",
            )
        )
    return out


def _precision(cfg: dict, facts: dict, name: str, cc_text: str, source: str) -> list[Check]:
    cc = _cc(cc_text)
    if cc is None:
        return [_check("gpu_precision", "skip", f"compute capability of {name} unknown")]
    out = []
    version, _ = effective_trtllm(cfg, facts)
    floor = None
    for row in tables()["trtllm_min_cc"]:
        v = parse_version(version)
        if v is not None and v >= Version(row["since"]):
            floor = row
            break
    if floor and cc < _cc(floor["min_cc"]):
        out.append(
            _check(
                "gpu_supported",
                "fail",
                f"{name} (compute capability {cc_text}, {source}) is below {floor['min_cc']}: "
                f"{floor['why']}",
                "use a newer GPU (Turing 7.5 or later; Ampere 8.0+ recommended)",
            )
        )
    failed = [(what, need) for what, need in _precision_needs(cfg) if cc < _cc(need)]
    if failed:
        what, _need = failed[0]
        listed = "; ".join(f"{w} needs {n}+" for w, n in failed)
        out.append(
            _check(
                "gpu_precision",
                "fail",
                f"{name} ({source}) has compute capability {cc_text}: {listed}",
                f"on {name} use {_best_precision_for(cc)}, or pick a profile for this GPU",
            )
        )
    else:
        needs = _precision_needs(cfg)
        what = ", ".join(w for w, _ in needs) or f"dtype {cfg['dtype']}"
        out.append(_check("gpu_precision", "pass", f"{name} ({source}, {cc_text}) runs {what}"))
        if cfg["dtype"] == "auto" and cc < (8, 0):
            out.append(
                _check(
                    "gpu_dtype_auto",
                    "warn",
                    f"dtype auto on {name} ({cc_text}): a bfloat16 checkpoint would need 8.0+",
                    "set dtype: float16",
                )
            )
    return out


def _check_target_vs_detected(cfg: dict, device: dict) -> list[Check]:
    targets = cfg["target"]["gpus"]
    cc = device["compute_capability"]
    matching = [t for t in targets if t["compute_capability"] == cc]
    listed = ", ".join(f"{t['name']} ({t['compute_capability']})" for t in targets)
    if not matching:
        status = "fail" if cfg["backend"] == "engine" else "warn"
        return [
            _check(
                "gpu_target",
                status,
                f"detected {device['name']} (compute capability {cc}) is not in target.gpus: "
                f"{listed}; "
                "an engine built here runs only on compute capability " + cc,
                f'add {{name: {_short_name(device["name"])}, compute_capability: "{cc}", '
                f"memory_gib: {round(device.get('memory_total_mib', 0) / 1024)}}} to target.gpus, "
                "or pick the profile for this GPU (--profile)",
            )
        ]
    # Several GPUs share a compute capability (H100 and H200 are both 9.0): prefer the named one.
    short = _short_name(device["name"])
    named = [
        t for t in matching if t["name"].replace(" ", "").lower() == short.replace(" ", "").lower()
    ]
    t = (named or matching)[0]
    total = device.get("memory_total_mib")
    if total and abs(total / 1024 - t["memory_gib"]) > 0.1 * t["memory_gib"]:
        fix = (
            f"set memory_gib: {round(total / 1024)} for {t['name']} in target.gpus"
            if named
            else f'add {{name: {short}, compute_capability: "{cc}", '
            f"memory_gib: {round(total / 1024)}}} to target.gpus, or pick the profile for "
            "this GPU (--profile)"
        )
        return [
            _check(
                "gpu_target",
                "warn",
                f"detected {device['name']} has {total / 1024:.0f} GiB, target {t['name']} says "
                f"{t['memory_gib']} GiB: limits planned for one will not fit the other",
                fix,
            )
        ]
    return [
        _check("gpu_target", "pass", f"detected {device['name']} matches target {t['name']} ({cc})")
    ]


def _short_name(name: str) -> str:
    for known in sorted(tables()["gpus"], key=len, reverse=True):
        if known.replace(" ", "").lower() in name.replace(" ", "").lower():
            return known
    return name.replace("NVIDIA ", "")


def _check_driver(cfg: dict, facts: dict) -> list[Check]:
    gpu = facts.get("gpu") or {}
    if gpu.get("status") != "ok":
        return []
    version, _ = effective_trtllm(cfg, facts)
    row = stack_for(version)
    need = (row or {}).get("cuda")
    have = gpu.get("cuda_driver_version")
    driver = gpu.get("driver_version") or "?"
    if not need:
        return [
            _check(
                "driver_cuda", "skip", f"no CUDA requirement recorded for TensorRT-LLM {version}"
            )
        ]
    need_major = int(need.split(".")[0])
    min_driver = tables()["cuda_min_driver"].get(str(need_major))
    if not have:
        ok = spec_ok(f">={min_driver}", driver) if min_driver else None
        if ok is False:
            return [
                _check(
                    "driver_cuda",
                    "fail",
                    f"driver {driver} is older than {min_driver}, the minimum for CUDA "
                    f"{need_major}",
                    f"install NVIDIA driver {min_driver} or newer",
                )
            ]
        return [
            _check(
                "driver_cuda",
                "pass" if ok else "skip",
                f"driver {driver} (CUDA version not reported)",
            )
        ]
    have_v = parse_version(have)
    need_v = parse_version(need)
    if have_v is None or need_v is None:
        return [_check("driver_cuda", "skip", f"cannot compare CUDA {have} with {need}")]
    if have_v.major < need_major:
        return [
            _check(
                "driver_cuda",
                "fail",
                f"driver {driver} supports CUDA {have}; TensorRT-LLM {release_line(version)} "
                "needs CUDA "
                f"{need_major}.x",
                f"install NVIDIA driver {min_driver or 'for CUDA ' + str(need_major)} or newer",
            )
        ]
    if have_v.major == need_major and len(need.split(".")) > 1 and have_v < need_v:
        return [
            _check(
                "driver_cuda",
                "warn",
                f"driver {driver} supports CUDA {have}, TensorRT-LLM {release_line(version)} was "
                "built "
                f"with {need}: runs through CUDA minor-version compatibility, newer PTX features "
                "may fail",
                f"update the driver to one that supports CUDA {need}",
            )
        ]
    return [
        _check(
            "driver_cuda", "pass", f"driver {driver} supports CUDA {have} (needs {need_major}.x)"
        )
    ]


# ---------------------------------------------------------------------------------------------
# MPI, disk, RAM, calibration data


def _check_host(cfg: dict, facts: dict) -> list[Check]:
    out = []
    world = cfg["parallel"]["tp_size"] * cfg["parallel"]["pp_size"]
    mpi = facts.get("mpi") or {}
    if world > 1:
        if mpi.get("status") == "ok":
            out.append(_check("mpi", "pass", f"{mpi.get('version')} for {world} ranks"))
        else:
            out.append(
                _check(
                    "mpi",
                    "fail",
                    f"tp_size * pp_size = {world} needs mpirun at serve time; none on PATH",
                    "install Open MPI (NVIDIA's TensorRT-LLM container has it)",
                )
            )
    else:
        version = mpi.get("version") if mpi.get("status") == "ok" else "absent"
        out.append(_check("mpi", "pass", f"one rank, MPI not needed (mpirun: {version})"))
    disk = facts.get("disk") or {}
    free = disk.get("free_bytes")
    if free is not None:
        gib = free / 2**30
        if gib < 20:
            out.append(
                _check(
                    "disk",
                    "warn",
                    f"{gib:.1f} GiB free at {disk.get('path')}: a converted checkpoint plus "
                    "engine of a "
                    "7B model needs about 30 GiB",
                    "free disk space or pass --output on a larger volume",
                )
            )
        else:
            out.append(_check("disk", "pass", f"{gib:.0f} GiB free at {disk.get('path')}"))
    mem = facts.get("memory") or {}
    avail = mem.get("available_bytes")
    if avail is not None:
        gib = avail / 2**30
        if gib < 16:
            out.append(
                _check(
                    "host_memory",
                    "warn",
                    f"{gib:.1f} GiB host RAM available: conversion holds a rank's weights in RAM "
                    "(about 2 bytes per parameter per worker)",
                    "close other jobs or keep build.workers at 1",
                )
            )
        else:
            out.append(_check("host_memory", "pass", f"{gib:.0f} GiB host RAM available"))
    out += _check_calibration(cfg)
    return out


def _check_calibration(cfg: dict) -> list[Check]:
    q = cfg["quantization"]
    calibrated = q["mode"] in {"fp8", "int4_awq", "w4a8_awq", "int8_sq", "nvfp4"}
    dataset = q["calibration"]["dataset"]
    if not calibrated:
        return []
    if dataset is None:
        return [
            _check(
                "calibration",
                "warn",
                f"quantization.mode {q['mode']} calibrates on the quantizer's default dataset "
                "(downloaded from the Hugging Face Hub; fails offline, and is not your "
                "fine-tune's data)",
                "set quantization.calibration.dataset to a local .jsonl of your own prompts",
            )
        ]
    if not os.path.isfile(dataset):
        return [
            _check(
                "calibration",
                "fail",
                f"quantization.calibration.dataset {dataset} does not exist (relative to "
                f"{os.getcwd()})",
                "fix the path; relative paths are from the directory make runs in",
            )
        ]
    return [_check("calibration", "pass", f"calibration data {dataset}")]


def torch_checks(config: Any, facts: dict) -> list[Check]:
    """torch's CUDA build and GPU access (facts from probe.py --torch)."""
    cfg = _config_body(config)
    tc = facts.get("torch_cuda") or {}
    if tc.get("status") in (None, "skipped"):
        return [_check("torch_cuda", "skip", "torch not imported (doctor --torch checks it)")]
    if tc.get("status") != "ok":
        return [
            _check(
                "torch_cuda",
                "fail",
                f"import torch failed: {tc.get('detail')}",
                "an undefined symbol means torch and TensorRT-LLM come from different builds: "
                "use the torch of NVIDIA's TensorRT-LLM container",
            )
        ]
    version, _ = effective_trtllm(cfg, facts)
    need = (stack_for(version) or {}).get("cuda")
    have = tc.get("cuda")
    if have is None:
        return [
            _check(
                "torch_cuda",
                "fail",
                f"torch {tc.get('version')} is a CPU-only build",
                "install the CUDA build of torch that TensorRT-LLM pins (or use its container)",
            )
        ]
    if need and have.split(".")[0] != need.split(".")[0]:
        return [
            _check(
                "torch_cuda",
                "fail",
                f"torch is built for CUDA {have}, TensorRT-LLM {release_line(version)} for CUDA "
                f"{need.split('.')[0]}.x",
                f"install a torch built for CUDA {need.split('.')[0]} (or use the container)",
            )
        ]
    if not tc.get("available"):
        return [
            _check(
                "torch_cuda",
                "fail",
                f"torch (CUDA {have}) cannot reach a GPU",
                "check the driver and CUDA_VISIBLE_DEVICES; in docker pass --gpus all",
            )
        ]
    return [_check("torch_cuda", "pass", f"torch CUDA {have}, {tc.get('device_count')} GPU(s)")]


def import_checks(config: Any, facts: dict) -> list[Check]:
    """Whether tensorrt_llm imports (facts from probe.py --import-trtllm)."""
    imp = facts.get("trtllm_import") or {}
    state = imp.get("status")
    if state in (None, "skipped"):
        return [_check("trtllm_import", "skip", "not tried (doctor --deep imports tensorrt_llm)")]
    if state == "ok":
        return [
            _check("trtllm_import", "pass", f"import tensorrt_llm works ({imp.get('version')})")
        ]
    detail = imp.get("detail") or "failed"
    fix = "use NVIDIA's TensorRT-LLM release container, whose torch/TensorRT match it"
    if "undefined symbol" in detail:
        fix = (
            "torch and tensorrt_llm come from different builds (undefined symbol): reinstall the "
            "torch that TensorRT-LLM pins, or use its container"
        )
    elif "libcuda" in detail or "libnvinfer" in detail or "libcudart" in detail:
        fix = "a CUDA/TensorRT library is missing: install the matching CUDA and TensorRT"
    status = (
        "fail" if state == "error" or (facts.get("packages") or {}).get("tensorrt_llm") else "skip"
    )
    return [_check("trtllm_import", status, f"import tensorrt_llm: {detail}", fix)]

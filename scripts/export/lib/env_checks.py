"""Checks of the build config against the facts of a machine: TensorRT-LLM and its stack, GPUs,
driver, MPI, disk, host RAM and calibration data. doctor.py runs them; so does the plan.

Library:
  run_checks(cfg, facts, *, require_machine=True, calibrates=None) -> list[check]
  torch_checks(cfg, facts), import_checks(cfg, facts): for doctor --torch / --deep
  calibration_checks(cfg, calibrates) -> list[check]

`cfg` is the validated BuildConfig; a check is errors.check(...). Tables (dependency stacks,
backend windows, compute capability per precision) come from versions.py.
require_machine=False is a plan for another machine (a dry run): what this machine lacks (GPU,
TensorRT-LLM, GPUs for the world size, MPI, disk) is then a warning, and the precision is judged
on the config's target GPUs; the real build refuses the same problems.
"""

from __future__ import annotations

import os
from pathlib import Path

import versions
from build_config import CALIBRATED_MODES, BuildConfig
from errors import Check, check


def run_checks(
    cfg: BuildConfig,
    facts: dict,
    *,
    require_machine: bool = True,
    calibrates: bool | None = None,
    tool_default: bool = True,
) -> list[Check]:
    """Every check, in a stable order (calibrates, tool_default: see calibration_checks)."""
    machine = "fail" if require_machine else "warn"
    checks: list[Check] = []
    checks += _check_trtllm(cfg, facts, machine)
    checks += _check_stack(cfg, facts)
    checks += _check_gpus(cfg, facts, machine)
    checks += _check_driver(cfg, facts)
    checks += _check_host(cfg, facts, machine)
    if calibrates is None:
        calibrates = cfg.quantization.mode in CALIBRATED_MODES
    checks += calibration_checks(cfg, calibrates, tool_default=tool_default)
    return checks


def _python(facts: dict) -> str:
    return (facts.get("python") or {}).get("executable") or "PYTHON"


def effective_trtllm(cfg: BuildConfig, facts: dict) -> tuple[str, str]:
    """(version, source): the installed TensorRT-LLM, else the config's target."""
    installed = (facts.get("packages") or {}).get("tensorrt_llm")
    if installed:
        return installed, "installed"
    return cfg.target.trtllm_version, "config"


# ---------------------------------------------------------------------------------------------
# TensorRT-LLM itself


def _check_trtllm(cfg: BuildConfig, facts: dict, machine: str) -> list[Check]:
    target = cfg.target.trtllm_version
    installed = (facts.get("packages") or {}).get("tensorrt_llm")
    out = []
    if not installed:
        out.append(
            check(
                "trtllm_installed",
                machine,
                f"TensorRT-LLM is not installed for {_python(facts)}; planning for "
                f"target.trtllm_version {target}",
                "run inside NVIDIA's TensorRT-LLM release container and pass its interpreter: "
                "PYTHON=python3 make ...",
            )
        )
    else:
        out.append(check("trtllm_installed", "pass", f"TensorRT-LLM {installed} is installed"))
        out.append(_check_target(installed, target))
    version, source = effective_trtllm(cfg, facts)
    problem = versions.window_problem(cfg.backend, version)
    if problem:
        out.append(
            check(
                "backend_window",
                "fail",
                f"{problem} ({source})",
                f"use a TensorRT-LLM in {versions.window_text(cfg.backend)}, or change backend",
                key="target.trtllm_version" if source == "config" else "backend",
            )
        )
    else:
        out.append(
            check(
                "backend_window",
                "pass",
                f"{cfg.backend} backend supports TensorRT-LLM {version} "
                f"({versions.window_text(cfg.backend)})",
            )
        )
    if installed:
        out.append(_check_programs(cfg, facts, installed))
    return out


def _check_target(installed: str, target: str) -> Check:
    if installed == target:
        return check("trtllm_target", "pass", f"installed {installed} = target.trtllm_version")
    return check(
        "trtllm_target",
        "warn" if versions.same_line(installed, target) else "fail",
        f"installed TensorRT-LLM {installed} differs from target.trtllm_version {target}: an "
        "engine only loads in the TensorRT-LLM (and TensorRT) it was built with",
        f'set target.trtllm_version: "{installed}" if you serve with {installed}, or build in '
        f"the {target} container",
        key="target.trtllm_version",
    )


def _check_programs(cfg: BuildConfig, facts: dict, installed: str) -> Check:
    """The console script the backend runs is on PATH and belongs to the installed package."""
    programs = facts.get("programs") or {}
    need = "trtllm-build" if cfg.backend == "engine" else "trtllm-serve"
    if not programs.get(need):
        return check(
            "trtllm_programs",
            "fail",
            f"{need} is not on PATH although tensorrt_llm {installed} is installed",
            f"add the bin dir of {_python(facts)}'s environment to PATH",
        )
    found = (facts.get("program_versions") or {}).get(need)
    if found and found != installed:
        return check(
            "trtllm_programs",
            "fail",
            f"{need} on PATH ({programs[need]}) belongs to TensorRT-LLM {found}, the Python "
            f"package of {_python(facts)} is {installed}",
            f"put the bin dir of the {installed} environment first on PATH, or use "
            f"PYTHON=<the interpreter of the {found} environment>",
        )
    return check("trtllm_programs", "pass", f"{need} is on PATH ({programs[need]})")


def _stack_items(cfg: BuildConfig) -> list[tuple[str, str, bool, str]]:
    """(package, check id, needed by this config, severity of a mismatch)."""
    needs_modelopt = cfg.quantization.mode in CALIBRATED_MODES or (
        cfg.quantization.kv_cache_dtype == "fp8"
    )
    return [
        ("tensorrt", "tensorrt_version", cfg.backend == "engine", "fail"),
        ("torch", "torch_version", True, "fail"),
        ("nvidia-modelopt", "modelopt_version", needs_modelopt, "fail"),
        ("transformers", "transformers_version", True, "warn"),
    ]


def _check_stack(cfg: BuildConfig, facts: dict) -> list[Check]:
    """TensorRT, torch, ModelOpt, transformers, Python against the TensorRT-LLM release line."""
    installed = (facts.get("packages") or {}).get("tensorrt_llm")
    if not installed:
        return [check("version_stack", "skip", "TensorRT-LLM not installed; stack not checked")]
    row = versions.stack_for(installed)
    if row is None:
        return [
            check(
                "version_stack",
                "warn",
                f"no dependency table for TensorRT-LLM {installed}; versions not checked",
                "stay on a release line in data/versions.json (0.12 .. 1.2)",
            )
        ]
    pkgs = facts.get("packages") or {}
    line = versions.release_line(installed)
    out = []
    for pkg, cid, needed, severity in _stack_items(cfg):
        spec = row.get("modelopt" if pkg == "nvidia-modelopt" else pkg)
        out.append(_stack_check(pkg, cid, needed, severity, spec, pkgs.get(pkg), installed, line))
    py = (facts.get("python") or {}).get("version") or ""
    py_mm = ".".join(py.split(".")[:2])
    if py_mm and row.get("python") and py_mm not in row["python"]:
        out.append(
            check(
                "python_version",
                "warn",
                f"Python {py} is not among the builds of TensorRT-LLM {line} "
                f"({', '.join(row['python'])})",
                f"use Python {row['python'][-1]} (NVIDIA's container has the right one)",
            )
        )
    elif py_mm:
        out.append(check("python_version", "pass", f"Python {py}"))
    return out


def _stack_check(pkg, cid, needed, severity, spec, have, installed, line) -> Check:
    if not have:
        if not needed:
            return check(cid, "skip", f"{pkg} not installed and not needed for this config")
        return check(
            cid,
            "fail",
            f"{pkg} is not installed (TensorRT-LLM {line} needs {spec or 'it'})",
            f"use NVIDIA's TensorRT-LLM {installed} container, which ships {pkg}",
        )
    ok = versions.spec_ok(spec, have)
    if ok is None:
        return check(cid, "pass", f"{pkg} {have} (no pin recorded for TensorRT-LLM {line})")
    if ok:
        return check(cid, "pass", f"{pkg} {have} matches {spec} for TensorRT-LLM {line}")
    ngc = "+" in have and ".nv" in have.split("+", 1)[1]
    status = "warn" if pkg == "torch" and ngc else severity  # NVIDIA builds its own torch
    return check(
        cid,
        status,
        f"{pkg} {have} does not match {spec} that TensorRT-LLM {line} was built against",
        f"pip install '{pkg}{spec}' in this environment, or use the TensorRT-LLM {installed} "
        "container",
    )


# ---------------------------------------------------------------------------------------------
# GPUs


def precision_needs(cfg: BuildConfig) -> list[tuple[str, str, str]]:
    """(config key, what, minimum compute capability) for the config's precisions."""
    q = cfg.quantization
    wanted = [
        ("dtype", "dtype bfloat16", "bfloat16" if cfg.dtype == "bfloat16" else None),
        ("quantization.mode", f"quantization.mode {q.mode}", q.mode),
        ("quantization.kv_cache_dtype", "quantization.kv_cache_dtype fp8",
         "fp8" if q.kv_cache_dtype == "fp8" else None),
        ("build.use_fp8_context_fmha", "build.use_fp8_context_fmha",
         "fp8" if cfg.build.use_fp8_context_fmha else None),
    ]  # fmt: skip
    return [(key, what, versions.min_cc(p)) for key, what, p in wanted if p and versions.min_cc(p)]


def _best_precision_for(cc: tuple[int, int]) -> str:
    if cc >= (10, 0):
        return "quantization.mode: nvfp4 or fp8"
    if cc >= (8, 9):
        return "quantization.mode: fp8"
    if cc >= (8, 0):
        return "dtype: bfloat16 with quantization.mode none, int8_weight_only or int4_awq"
    return "dtype: float16 with quantization.mode none, int8_weight_only or int4_weight_only"


def _check_gpus(cfg: BuildConfig, facts: dict, machine: str) -> list[Check]:
    gpu = facts.get("gpu") or {}
    devices = gpu.get("devices") or []
    targets = cfg.target.gpus
    if gpu.get("status") != "ok" or not devices:
        fix = (
            "load the NVIDIA driver (nvidia-smi must work), or plan only with --dry-run"
            if gpu.get("status") == "error"
            else "run on a machine with an NVIDIA GPU, or plan only with --dry-run"
        )
        detail = gpu.get("detail") or "no GPU detected"
        out = [check("gpu_present", machine, f"{detail}; planning for {targets[0].name}", fix)]
        for t in targets:  # the config must at least be consistent with its own targets
            out += precision_checks(cfg, facts, t.name, t.compute_capability, "target")
        return out
    names = sorted({d["name"] for d in devices})
    out = [check("gpu_present", "pass", f"{len(devices)} x {', '.join(names)}")]
    if len(names) > 1:
        out.append(
            check(
                "gpu_uniform",
                "warn",
                f"mixed GPU models ({', '.join(names)}): an engine runs only on the model it was "
                "built on",
                "set CUDA_VISIBLE_DEVICES to GPUs of one model",
            )
        )
    out.append(_check_gpu_count(cfg, devices, machine))
    out += _check_mig(cfg, devices, machine)
    first = devices[0]
    out += precision_checks(cfg, facts, first["name"], first["compute_capability"], "detected")
    out.append(_check_target_vs_detected(cfg, first))
    out += _check_busy(cfg, devices)
    return out


def _world(cfg: BuildConfig) -> int:
    return cfg.parallel.tp_size * cfg.parallel.pp_size


def _check_gpu_count(cfg: BuildConfig, devices: list[dict], machine: str) -> Check:
    world = _world(cfg)
    if len(devices) >= world:
        return check("gpu_count", "pass", f"{world} rank(s) on {len(devices)} GPU(s)")
    return check(
        "gpu_count",
        machine,
        f"tp_size * pp_size = {world} needs {world} GPUs, this machine has {len(devices)}",
        f"lower parallel.tp_size/pp_size to fit {len(devices)} GPU(s), or use a bigger machine",
        key="parallel.tp_size",
    )


def _check_mig(cfg: BuildConfig, devices: list[dict], machine: str) -> list[Check]:
    mig = [d for d in devices if str(d.get("mig_mode", "")).lower() == "enabled"]
    if not mig:
        return []
    world = _world(cfg)
    across = "; tensor/pipeline parallelism across MIG instances is not supported"
    return [
        check(
            "gpu_mig",
            machine if world > 1 else "warn",
            f"MIG is enabled on GPU {', '.join(str(d['index']) for d in mig)}: a MIG slice has "
            "a fraction of the memory shown" + (across if world > 1 else ""),
            "disable MIG (nvidia-smi -mig 0, as root) or build with tp_size 1, pp_size 1 for "
            "one slice",
        )
    ]


def _check_busy(cfg: BuildConfig, devices: list[dict]) -> list[Check]:
    for d in devices[: max(_world(cfg), 1)]:
        total, free = d.get("memory_total_mib"), d.get("memory_free_mib")
        if total and free is not None and free < 0.9 * total:
            return [
                check(
                    "gpu_memory_free",
                    "warn",
                    f"GPU {d['index']} has {total - free} MiB of {total} MiB in use by other "
                    "processes",
                    "stop them before building, or lower runtime.kv_cache_free_gpu_memory_fraction",
                )
            ]
    return []


def precision_checks(cfg: BuildConfig, facts: dict, name: str, cc_text, source: str) -> list:
    """The GPU's compute capability against TensorRT-LLM's floor and the config's precisions."""
    cc = versions.cc_tuple(cc_text)
    if cc is None:
        return [check("gpu_precision", "skip", f"compute capability of {name} unknown")]
    out = []
    version, _ = effective_trtllm(cfg, facts)
    floor = next(
        (r for r in versions.tables()["trtllm_min_cc"] if versions.at_least(version, r["since"])),
        None,
    )
    if floor and cc < versions.cc_tuple(floor["min_cc"]):
        out.append(
            check(
                "gpu_supported",
                "fail",
                f"{name} (compute capability {cc_text}, {source}) is below {floor['min_cc']}: "
                f"{floor['why']}",
                "use a newer GPU (Turing 7.5 or later; Ampere 8.0+ recommended)",
            )
        )
    needs = precision_needs(cfg)
    failed = [(key, what, need) for key, what, need in needs if cc < versions.cc_tuple(need)]
    if failed:
        listed = "; ".join(f"{what} needs {need}+" for _, what, need in failed)
        out.append(
            check(
                "gpu_precision",
                "fail",
                f"{name} ({source}) has compute capability {cc_text}: {listed}",
                f"on {name} use {_best_precision_for(cc)}, or pick a profile for this GPU",
                key=failed[0][0],
            )
        )
        return out
    what = ", ".join(w for _, w, _ in needs) or f"dtype {cfg.dtype}"
    out.append(check("gpu_precision", "pass", f"{name} ({source}, {cc_text}) runs {what}"))
    if cfg.dtype == "auto" and cc < (8, 0):
        out.append(
            check(
                "gpu_dtype_auto",
                "warn",
                f"dtype auto on {name} ({cc_text}): a bfloat16 checkpoint would need 8.0+",
                "set dtype: float16",
                key="dtype",
            )
        )
    return out


def _check_target_vs_detected(cfg: BuildConfig, device: dict) -> Check:
    targets = cfg.target.gpus
    cc = device["compute_capability"]
    matching = [t for t in targets if t.compute_capability == cc]
    short = short_gpu_name(device["name"])
    gib = round((device.get("memory_total_mib") or 0) / 1024)
    add = f'add {{name: {short}, compute_capability: "{cc}", memory_gib: {gib}}} to target.gpus'
    if not matching:
        listed = ", ".join(f"{t.name} ({t.compute_capability})" for t in targets)
        return check(
            "gpu_target",
            "fail" if cfg.backend == "engine" else "warn",
            f"detected {device['name']} (compute capability {cc}) is not in target.gpus: "
            f"{listed}; an engine built here runs only on compute capability {cc}",
            f"{add}, or pick the profile for this GPU (--profile)",
            key="target.gpus",
        )
    # Several GPUs share a compute capability (H100 and H200 are both 9.0): prefer the named one.
    flat = short.replace(" ", "").lower()
    named = [t for t in matching if t.name.replace(" ", "").lower() == flat]
    t = (named or matching)[0]
    total = device.get("memory_total_mib")
    if total and abs(total / 1024 - t.memory_gib) > 0.1 * t.memory_gib:
        fix = (
            f"set memory_gib: {round(total / 1024)} for {t.name} in target.gpus"
            if named
            else f"{add}, or pick the profile for this GPU (--profile)"
        )
        return check(
            "gpu_target",
            "warn",
            f"detected {device['name']} has {total / 1024:.0f} GiB, target {t.name} says "
            f"{t.memory_gib:g} GiB: limits planned for one will not fit the other",
            fix,
            key="target.gpus",
        )
    return check("gpu_target", "pass", f"detected {device['name']} matches target {t.name} ({cc})")


def short_gpu_name(name: str) -> str:
    return versions.gpu_key(name) or name.replace("NVIDIA ", "")


def _check_driver(cfg: BuildConfig, facts: dict) -> list[Check]:
    gpu = facts.get("gpu") or {}
    if gpu.get("status") != "ok":
        return []
    version, _ = effective_trtllm(cfg, facts)
    need = (versions.stack_for(version) or {}).get("cuda")
    driver = gpu.get("driver_version") or "?"
    if not need:
        return [check("driver_cuda", "skip", f"no CUDA requirement recorded for {version}")]
    need_major = int(need.split(".")[0])
    min_driver = versions.tables()["cuda_min_driver"].get(str(need_major))
    have = gpu.get("cuda_driver_version")
    if not have:
        ok = versions.spec_ok(f">={min_driver}", driver) if min_driver else None
        if ok is False:
            return [
                check(
                    "driver_cuda",
                    "fail",
                    f"driver {driver} is older than {min_driver}, the minimum for CUDA "
                    f"{need_major}",
                    f"install NVIDIA driver {min_driver} or newer",
                )
            ]
        status = "pass" if ok else "skip"
        return [check("driver_cuda", status, f"driver {driver} (CUDA version not reported)")]
    return [_driver_vs_cuda(driver, have, need, min_driver, version)]


def _driver_vs_cuda(driver: str, have: str, need: str, min_driver, version: str) -> Check:
    have_v, need_v = versions.parse(have), versions.parse(need)
    if have_v is None or need_v is None:
        return check("driver_cuda", "skip", f"cannot compare CUDA {have} with {need}")
    need_major = need_v.major
    line = versions.release_line(version)
    if have_v.major < need_major:
        return check(
            "driver_cuda",
            "fail",
            f"driver {driver} supports CUDA {have}; TensorRT-LLM {line} needs CUDA {need_major}.x",
            f"install NVIDIA driver {min_driver or 'for CUDA ' + str(need_major)} or newer",
        )
    if have_v.major == need_major and "." in need and have_v < need_v:
        return check(
            "driver_cuda",
            "warn",
            f"driver {driver} supports CUDA {have}, TensorRT-LLM {line} was built with {need}: "
            "runs through CUDA minor-version compatibility, newer PTX features may fail",
            f"update the driver to one that supports CUDA {need}",
        )
    return check(
        "driver_cuda", "pass", f"driver {driver} supports CUDA {have} (needs {need_major}.x)"
    )


# ---------------------------------------------------------------------------------------------
# MPI, disk, RAM, calibration data


def _check_mpi(cfg: BuildConfig, facts: dict, machine: str) -> Check:
    world = _world(cfg)
    mpi = facts.get("mpi") or {}
    have = mpi.get("version") if mpi.get("status") == "ok" else None
    if world == 1:
        return check("mpi", "pass", f"one rank, MPI not needed (mpirun: {have or 'absent'})")
    if cfg.backend == "pytorch":  # trtllm-serve starts its own workers; the build runs none
        return check("mpi", "pass", f"{world} ranks: the bundle needs no mpirun to build")
    if have:
        return check("mpi", "pass", f"{have} for {world} ranks")
    return check(
        "mpi",
        machine,
        f"tp_size * pp_size = {world} needs mpirun to run the engine's ranks; none on PATH",
        "install Open MPI (NVIDIA's TensorRT-LLM container has it)",
    )


def _check_room(
    key: str, free: int | None, floor_gib: float, what: str, short: str, fix: str
) -> list[Check]:
    """Free space or memory against a floor: warn below it with `short` and `fix`."""
    if free is None:
        return []
    gib = free / 2**30
    if gib < floor_gib:
        return [check(key, "warn", f"{gib:.1f} {what}: {short}", fix)]
    return [check(key, "pass", f"{gib:.0f} {what}")]


def _check_host(cfg: BuildConfig, facts: dict, machine: str) -> list[Check]:
    disk = facts.get("disk") or {}
    return [
        _check_mpi(cfg, facts, machine),
        *_check_room(
            "disk",
            disk.get("free_bytes"),
            20,
            f"GiB free at {disk.get('path')}",
            "a converted checkpoint plus engine of a 7B model needs about 30 GiB",
            "free disk space or pass --output on a larger volume",
        ),
        *_check_room(
            "host_memory",
            (facts.get("memory") or {}).get("available_bytes"),
            16,
            "GiB host RAM available",
            "conversion holds a rank's weights in RAM (about 2 bytes per parameter per worker)",
            "close other jobs or keep build.workers at 1",
        ),
    ]


MODELOPT_CALIB_SUFFIXES = (".jsonl", ".txt")


def calibration_checks(
    cfg: BuildConfig, calibrates: bool, *, tool_default: bool = True
) -> list[Check]:
    """Where calibration data comes from, when the build calibrates at all. tool_default: the
    quantizer that runs falls back to a downloaded dataset (TensorRT-LLM's quantize.py and
    convert scripts); the ModelOpt step (backend pytorch, or an engine without TensorRT-LLM
    installed) reads only a local text file."""
    if not calibrates:
        return []
    key = "quantization.calibration.dataset"
    mode = cfg.quantization.mode
    dataset = cfg.quantization.calibration.dataset
    if dataset is None and not tool_default:
        fix = "a local .jsonl or .txt file of your own prompts"
        if cfg.backend == "engine":
            fix += (
                " (or plan where TensorRT-LLM is installed: its quantize.py falls back to its "
                "default dataset)"
            )
        return [
            check(
                "calibration",
                "fail",
                f"ModelOpt {mode} calibrates on sample text and nothing is downloaded",
                fix,
                key=key,
            )
        ]
    if dataset is None:
        return [
            check(
                "calibration",
                "warn",
                f"quantization.mode {mode} calibrates on the quantizer's "
                "default dataset (downloaded from the Hugging Face Hub; fails offline, and is "
                "not your fine-tune's data)",
                "set quantization.calibration.dataset to a local .jsonl of your own prompts",
                key=key,
            )
        ]
    if not tool_default and Path(dataset).suffix not in MODELOPT_CALIB_SUFFIXES:
        return [
            check(
                "calibration",
                "fail",
                f"without TensorRT-LLM, ModelOpt reads a .jsonl or .txt file; got {dataset}",
                'convert it to .jsonl ({"text": ...} lines)',
                key=key,
            )
        ]
    if not os.path.isfile(dataset):
        return [
            check(
                "calibration",
                "fail",
                f"{dataset} does not exist (relative to {os.getcwd()})",
                "fix the path; relative paths are from the directory make runs in",
                key=key,
            )
        ]
    return [check("calibration", "pass", f"calibration data {dataset}")]


# ---------------------------------------------------------------------------------------------
# doctor --torch / --deep


def torch_checks(cfg: BuildConfig, facts: dict) -> list[Check]:
    """torch's CUDA build and GPU access (facts from probe.py --torch)."""
    tc = facts.get("torch_cuda") or {}
    if tc.get("status") in (None, "skipped"):
        return [check("torch_cuda", "skip", "torch not imported (doctor --torch checks it)")]
    if tc.get("status") != "ok":
        return [
            check(
                "torch_cuda",
                "fail",
                f"import torch failed: {tc.get('detail')}",
                "an undefined symbol means torch and TensorRT-LLM come from different builds: "
                "use the torch of NVIDIA's TensorRT-LLM container",
            )
        ]
    version, _ = effective_trtllm(cfg, facts)
    need = (versions.stack_for(version) or {}).get("cuda")
    have = tc.get("cuda")
    line = versions.release_line(version)
    if have is None:
        return [
            check(
                "torch_cuda",
                "fail",
                f"torch {tc.get('version')} is a CPU-only build",
                "install the CUDA build of torch that TensorRT-LLM pins (or use its container)",
            )
        ]
    if need and have.split(".")[0] != need.split(".")[0]:
        major = need.split(".")[0]
        return [
            check(
                "torch_cuda",
                "fail",
                f"torch is built for CUDA {have}, TensorRT-LLM {line} for CUDA {major}.x",
                f"install a torch built for CUDA {major} (or use the container)",
            )
        ]
    if not tc.get("available"):
        return [
            check(
                "torch_cuda",
                "fail",
                f"torch (CUDA {have}) cannot reach a GPU",
                "check the driver and CUDA_VISIBLE_DEVICES; in docker pass --gpus all",
            )
        ]
    return [check("torch_cuda", "pass", f"torch CUDA {have}, {tc.get('device_count')} GPU(s)")]


def import_checks(cfg: BuildConfig, facts: dict) -> list[Check]:
    """Whether tensorrt_llm imports (facts from probe.py --import-trtllm)."""
    imp = facts.get("trtllm_import") or {}
    state = imp.get("status")
    if state in (None, "skipped"):
        return [check("trtllm_import", "skip", "not tried (doctor --deep imports tensorrt_llm)")]
    if state == "ok":
        return [check("trtllm_import", "pass", f"import tensorrt_llm works ({imp.get('version')})")]
    detail = imp.get("detail") or "failed"
    fix = "use NVIDIA's TensorRT-LLM release container, whose torch/TensorRT match it"
    if "undefined symbol" in detail:
        fix = (
            "torch and tensorrt_llm come from different builds (undefined symbol): reinstall the "
            "torch that TensorRT-LLM pins, or use its container"
        )
    elif any(lib in detail for lib in ("libcuda", "libnvinfer", "libcudart")):
        fix = "a CUDA/TensorRT library is missing: install the matching CUDA and TensorRT"
    installed = (facts.get("packages") or {}).get("tensorrt_llm")
    status = "fail" if state == "error" or installed else "skip"
    return [check("trtllm_import", status, f"import tensorrt_llm: {detail}", fix)]

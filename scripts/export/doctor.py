#!/usr/bin/env python3
"""Check this machine against the build config: a table of facts and checks, one mark each.

Usage:
  doctor.py [--config FILE] [--profile P] [--output-dir DIR] [--json] [--torch | --deep]

Loads and validates the config, probes the machine (probe.py) and runs the compatibility checks
(compat.py) in-process. Stdout: the table, or with --json one document
{"schema_version", "ok", "config", "facts", "checks", "summary"}.
Exit 0 when no check fails (warnings allowed), 1 when one fails, 2 on a bad config.
--torch also imports torch to check its CUDA build (adds seconds); --deep does that and imports
tensorrt_llm in a child interpreter (tens of seconds), which catches ABI mismatches.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "lib"))
import build_config
import env_checks
import probe
from errors import counts, render_checks, summary_line

SCHEMA_VERSION = 1
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = "configs/export/tensorrt_llm.yaml"
PROG = "doctor"


def _gib(n: int | None) -> str:
    return f"{n / 2**30:.0f} GiB" if n is not None else "unknown"


def fact_rows(facts: dict) -> list[tuple[str, str]]:
    """(label, value) lines of the facts table."""
    gpu = facts["gpu"]
    rows: list[tuple[str, str]] = []
    if gpu["status"] == "ok":
        for d in gpu["devices"]:
            mig = f", MIG {d['mig_mode']}" if d.get("mig_mode") not in (None, "N/A") else ""
            rows.append(
                (
                    f"GPU {d['index']}",
                    f"{d['name']} (compute {d['compute_capability']}, {d['memory_total_mib']} MiB, "
                    f"{d['memory_free_mib']} MiB free{mig})",
                )
            )
        cuda = gpu.get("cuda_driver_version")
        rows.append(
            ("driver", f"{gpu['driver_version']}" + (f", supports CUDA {cuda}" if cuda else ""))
        )
    else:
        rows.append(("GPU", f"{gpu['status']}: {gpu.get('detail')}"))
    runtime = facts.get("cuda_runtime")
    source = facts.get("cuda_runtime_source")
    rows.append(
        (
            "CUDA runtime",
            f"{runtime} ({source})" if runtime else "absent (no CUDA_VERSION, no nvcc)",
        )
    )
    py = facts["python"]
    rows.append(("Python", f"{py['version']}  {py['executable']}"))
    for name, version in facts["packages"].items():
        rows.append((name, version or "absent"))
    tc = facts.get("torch_cuda") or {}
    if tc.get("status") == "ok":
        rows.append(("torch CUDA", f"{tc.get('cuda')}, GPU available: {tc.get('available')}"))
    elif tc.get("status") in {"error", "absent"}:
        rows.append(("torch CUDA", f"{tc['status']}: {tc.get('detail')}"))
    imp = facts.get("trtllm_import") or {}
    if imp.get("status") not in (None, "skipped"):
        rows.append(("import", imp.get("version") or f"{imp['status']}: {imp.get('detail')}"))
    for name, path in facts["programs"].items():
        if name != "nvidia-smi":
            rows.append((name, path or "absent"))
    mpi = facts.get("mpi") or {}
    rows.append(("MPI", mpi.get("version") or mpi.get("status", "absent")))
    disk = facts.get("disk") or {}
    rows.append(("disk", f"{_gib(disk.get('free_bytes'))} free at {disk.get('path')}"))
    mem = facts.get("memory") or {}
    rows.append(
        (
            "host RAM",
            f"{_gib(mem.get('available_bytes'))} available of {_gib(mem.get('total_bytes'))}",
        )
    )
    return rows


def render(loaded: build_config.Checked, facts: dict, checks: list[dict]) -> str:
    cfg = loaded.config
    target = cfg.target
    gpus = ", ".join(
        f"{g.name} ({g.compute_capability}, {g.memory_gib:g} GiB)" for g in target.gpus
    )
    lines = [
        f"TensorRT-LLM doctor: {loaded.source}"
        + (f" --profile {loaded.profile}" if loaded.profile else ""),
        f"  plan: backend {cfg.backend}, TensorRT-LLM {target.trtllm_version}, {gpus}, "
        f"dtype {cfg.dtype}, quantization {cfg.quantization.mode}, "
        f"tp {cfg.parallel.tp_size} x pp {cfg.parallel.pp_size}",
        "",
        "Facts",
    ]
    rows = fact_rows(facts)
    width = max(len(label) for label, _ in rows)
    lines += [f"  {label:<{width}}  {value}" for label, value in rows]
    lines += ["", "Checks", *render_checks(checks), "", summary_line(checks)]
    return "\n".join(lines)


def _suggest_profiles(loaded: build_config.Checked, facts: dict, checks: list[dict]) -> None:
    """Name the profiles written for the detected GPU in the fix of a failed GPU check."""
    devices = facts["gpu"].get("devices") or []
    failed = [
        c for c in checks if c["id"] in {"gpu_precision", "gpu_target"} and c["status"] == "fail"
    ]
    if not devices or not failed:
        return
    cc = devices[0].get("compute_capability")
    names = build_config.profiles_for(loaded, cc) if cc else []
    for c in failed:
        if names:
            c["fix"] += f" (profiles for compute capability {cc}: {', '.join(names)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="doctor.py", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help=f"build config (default {DEFAULT_CONFIG})")
    parser.add_argument("--profile", help="named profile of the config")
    parser.add_argument("--output-dir", default=probe.DEFAULT_OUTPUT_DIR, help="for the disk check")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    parser.add_argument("--torch", action="store_true", help="import torch to check its CUDA")
    parser.add_argument(
        "--deep", action="store_true", help="--torch and import tensorrt_llm too (tens of seconds)"
    )
    args = parser.parse_args(argv)
    config = args.config
    if config is None:
        config = (
            DEFAULT_CONFIG if Path(DEFAULT_CONFIG).is_file() else str(REPO_ROOT / DEFAULT_CONFIG)
        )
    try:
        loaded = build_config.check(config, args.profile)
    except build_config.ConfigError as exc:
        build_config.print_issues(exc.source, exc.issues, exc.warnings, prog=f"{PROG}: ")
        return exc.code
    build_config.print_issues(loaded.source, [], loaded.warnings, prog=f"{PROG}: ")
    with_torch = args.torch or args.deep
    facts = probe.collect(args.output_dir, with_torch=with_torch, with_import=args.deep)
    cfg = loaded.config
    checks = env_checks.run_checks(cfg, facts)
    if with_torch:
        checks += env_checks.torch_checks(cfg, facts)
    if args.deep:
        checks += env_checks.import_checks(cfg, facts)
    for c in checks:
        if c.get("key"):
            c["where"] = loaded.where(c["key"])
    _suggest_profiles(loaded, facts, checks)
    n = counts(checks)
    if args.json:
        out = {
            "schema_version": SCHEMA_VERSION,
            "ok": n["fail"] == 0,
            "config": loaded.document(),
            "facts": facts,
            "checks": checks,
            "summary": n,
        }
        print(json.dumps(out, indent=2))
    else:
        print(render(loaded, facts, checks))
    return 1 if n["fail"] else 0


if __name__ == "__main__":
    raise SystemExit(main())

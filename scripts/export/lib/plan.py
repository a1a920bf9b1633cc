#!/usr/bin/env python3
"""The build plan: (resolved config, machine facts, the model's config.json) -> the exact
commands, the preflight checks and the resource estimate, before any heavy work.

Usage:
  plan.py --config-json F --facts-json F --model-dir D --staging D [--cache-dir D]
          [--examples-dir D] [--keep-going]                     prints the plan JSON
  plan.py argv --plan F --step NAME      that step's argv, NUL-separated (mapfile -d '')
  plan.py show --plan F                  the plan as a human table (commands, checks, estimates)
  plan.py get --plan F --key a.b         one scalar value of the plan (for Bash)

TensorRT-LLM version: the installed one (facts.packages.tensorrt_llm), else the config's
target.trtllm_version. GPU: the first detected device, else the config's first target GPU.
--cache-dir is the timing-cache root (outputs/gpu/tensorrt_llm/.cache); the plan keeps one
cache per GPU and version under it: <root>/<gpu>-sm<cc>-trt<version>/timing.cache.
--examples-dir defaults to $TRTLLM_EXAMPLES_DIR. argv[0] of a script step is the Python of the
facts (python.executable: the $PYTHON that ran probe.py), else "python3".

Exit codes: 0 plan ok; 2 bad input (unsupported family or version, a setting the version cannot
honour, a failed check such as tp not dividing the heads or weights that do not fit): one line
per problem on stderr and nothing on stdout (with --keep-going the plan is still printed).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import shlex
import sys
from pathlib import Path

import commands
import env_checks
import estimate as est
import model_checks
from commands import PlanError, at_least
from family import FamilyError, detect, require_hf_dir, version_key

SCHEMA_VERSION = 1
LIB_DIR = Path(__file__).resolve().parent
ENGINE_WINDOW = ("0.12.0", "1.3.0rc20")
PYTORCH_MIN = "1.0.0"
CLI_RECORD_VERSIONS = ("0.12.0", "0.16.0", "1.2.0")
GIB = 1024**3


def _load_json(path: str, what: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise PlanError(f"{what} {path}: {err}", error_id="bad_input") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        raise PlanError(f"{what} {path}: expected schema_version {SCHEMA_VERSION}")
    return doc


def trtllm_version(config: dict, facts: dict) -> tuple[str, str]:
    installed = (facts.get("packages") or {}).get("tensorrt_llm")
    if installed:
        return str(installed), "installed"
    target = (config.get("target") or {}).get("trtllm_version")
    if not target:
        raise PlanError("no TensorRT-LLM installed and no target.trtllm_version in the config")
    return str(target), "config"


def cli_record_version(version: str) -> str:
    return max((v for v in CLI_RECORD_VERSIONS if at_least(version, v)), key=version_key)


def target_gpu(config: dict, facts: dict) -> dict:
    gpu = facts.get("gpu") or {}
    devices = gpu.get("devices") or []
    if gpu.get("status") == "ok" and devices:
        dev = devices[0]
        return {
            "name": dev.get("name"),
            "compute_capability": str(dev.get("compute_capability")),
            "memory_total_mib": int(dev.get("memory_total_mib") or 0),
            "count": len(devices),
            "source": "detected",
        }
    targets = (config.get("target") or {}).get("gpus") or []
    if not targets:
        raise PlanError("no GPU detected and no target.gpus in the config")
    t = targets[0]
    return {
        "name": t["name"],
        "compute_capability": str(t["compute_capability"]),
        "memory_total_mib": int(float(t["memory_gib"]) * 1024),
        "count": 0,
        "source": "config",
    }


def _slug(text: str) -> str:
    text = re.sub(r"^nvidia\s+", "", str(text).strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-") or "gpu"


def timing_cache_dir(cache_root: str, gpu: dict, version: str) -> str:
    cc = str(gpu.get("compute_capability") or "").replace(".", "")
    return str(Path(cache_root).absolute() / f"{_slug(gpu['name'])}-sm{cc}-trt{version}")


def _modelopt_pin(version: str) -> str | None:
    path = LIB_DIR / "data" / "versions.json"
    try:
        table = json.loads(path.read_text(encoding="utf-8")).get("trtllm", {})
    except (OSError, ValueError):
        return None
    key = ".".join(str(p) for p in version_key(version)[:2])
    return (table.get(key) or {}).get("modelopt")


def _calibration(config: dict) -> tuple[str | None, dict]:
    calib = (config.get("quantization") or {}).get("calibration") or {}
    dataset = calib.get("dataset")
    if not dataset:
        return None, calib
    path = Path(dataset).expanduser()
    if not path.exists():
        raise PlanError(
            f"quantization.calibration.dataset {dataset}: no such file",
            error_id="calibration_missing",
        )
    return str(path.resolve()), calib


# The doctor's checks that the plan's own preflight does not cover: the version stack, the
# backend window, driver vs CUDA, the config's target vs the detected GPU. The plan must also work
# on a laptop (no GPU, no TensorRT-LLM), so a missing machine is a warning here, not a failure.
ENVIRONMENT_CHECKS = (
    "backend_window",
    "trtllm_target",
    "version_stack",
    "tensorrt_version",
    "torch_version",
    "modelopt_version",
    "transformers_version",
    "python_version",
    "torch_cuda",
    "driver_cuda",
    "gpu_supported",
    "gpu_target",
    "gpu_uniform",
    "gpu_mig",
    "mpi",
)


def environment_checks(config: dict, facts: dict) -> list[dict]:
    return [
        c
        for c in env_checks.run_checks(config, facts, require_machine=False)
        if c["id"] in ENVIRONMENT_CHECKS
    ]


def _engine_steps(
    config,
    facts,
    family,
    version,
    model_dir,
    staging,
    gpu,
    dtype,
    cache_root,
    examples_dir,
    python,
    notes,
    estimate,
):
    quant = config.get("quantization") or {}
    mode, kv = quant.get("mode", "none"), quant.get("kv_cache_dtype", "auto")
    par = config.get("parallel") or {}
    tp, pp = int(par.get("tp_size", 1)), int(par.get("pp_size", 1))
    build = config.get("build") or {}
    installed = bool((facts.get("packages") or {}).get("tensorrt_llm"))
    route = commands.quant_route(mode, kv, family, installed)
    checkpoint, engine = str(Path(staging) / "checkpoint"), str(Path(staging) / "engine")
    calib_path, calib = _calibration(config)
    size, seq = int(calib.get("num_samples", 512)), int(calib.get("max_seq_len", 512))
    steps: list[dict] = []
    calib_dir = calib_path
    if route in ("convert", "quantize") and calib_path and Path(calib_path).is_file():
        needs = route == "quantize" or mode == "int8_sq" or kv == "int8"
        if needs:
            # The convert scripts' load_calib_dataset() only knows a local dir's split and
            # column when its path names a known dataset: "lambada" -> validation split, "text"
            # column. calib_data.py writes validation.jsonl and train.jsonl (quantize.py: train).
            calib_dir = str(Path(staging) / ("calib" if route == "quantize" else "calib_lambada"))
            steps.append(
                commands.calib_step(
                    python=python, dataset=calib_path, output_dir=calib_dir, num_samples=size
                )
            )
    if route == "convert":
        steps.append(
            commands.convert_step(
                python=python,
                examples_dir=examples_dir,
                family=family,
                model_dir=model_dir,
                output=checkpoint,
                dtype=dtype,
                tp=tp,
                pp=pp,
                mode=mode,
                kv_dtype=kv,
                calib_dir=calib_dir,
            )
        )
    elif route == "quantize":
        steps.append(
            commands.quantize_step(
                python=python,
                examples_dir=examples_dir,
                version=version,
                model_dir=model_dir,
                output=checkpoint,
                dtype=dtype,
                tp=tp,
                pp=pp,
                mode=mode,
                kv_dtype=kv,
                calib_dir=calib_dir,
                calib_size=size,
                calib_max_seq_len=seq,
            )
        )
    else:
        pin = _modelopt_pin(version)
        match = re.search(r"(\d+)\.(\d+)", pin or "")
        if match and (int(match.group(1)), int(match.group(2))) >= (0, 49):
            raise PlanError(
                f"TensorRT-LLM {version} pins ModelOpt {pin}, which no longer exports TensorRT-LLM "
                "checkpoints (export_tensorrt_llm_checkpoint removed in 0.49): install "
                "TensorRT-LLM to use its quantize.py",
                error_id="version_lacks_setting",
            )
        if calib_path and Path(calib_path).suffix not in (".jsonl", ".txt"):
            raise PlanError(
                "without TensorRT-LLM, ModelOpt reads quantization.calibration.dataset as a "
                f".jsonl or .txt file; got {calib_path}",
                error_id="calibration_format",
            )
        notes.append(
            f"TensorRT-LLM is not installed: quantization planned with ModelOpt "
            f"(pinned {pin or 'unknown'} for {version}); run it on a GPU"
        )
        steps.append(
            commands.modelopt_step(
                python=python,
                model_dir=model_dir,
                output=checkpoint,
                dtype=dtype,
                tp=tp,
                pp=pp,
                mode=mode,
                kv_dtype=kv,
                calib_file=calib_path,
                calib_size=size,
                calib_max_seq_len=seq,
            )
        )
    world = tp * pp
    workers = max(1, min(int(build.get("workers", 1)), world, gpu["count"] or 1))
    available = (facts.get("memory") or {}).get("available_bytes")
    per_worker = 2 * estimate["weights_bytes_per_gpu"]  # a rank's weights + its engine
    if available and per_worker and workers > max(1, available // per_worker):
        notes.append(
            f"build.workers {workers} lowered to {max(1, available // per_worker)}: each worker "
            f"holds about {per_worker / GIB:.1f} GiB of one rank in host RAM, "
            f"{available / GIB:.1f} GiB available"
        )
        workers = max(1, available // per_worker)
    cache_file = None
    if build.get("timing_cache", True) and cache_root:
        cache_file = str(Path(timing_cache_dir(cache_root, gpu, version)) / "timing.cache")
    steps.append(
        commands.build_step(
            version=version,
            checkpoint=checkpoint,
            output=engine,
            build=build,
            mode=mode,
            kv_dtype=kv,
            workers=workers,
            timing_cache=cache_file,
        )
    )
    if cache_file and not Path(cache_file).is_file():
        notes.append(
            "no timing cache yet for this GPU and version: trtllm-build warns 'Invalid timing "
            f"cache, using freshly created one' and writes {cache_file} for the next build"
        )
    return steps, route, cache_file


def _pytorch_steps(config, facts, model_dir, staging) -> list[dict]:
    try:
        pytorch_plan = importlib.import_module("pytorch_plan")
    except ImportError:
        raise PlanError(
            "backend pytorch: its planner (pytorch_plan.py) is not available",
            error_id="pytorch_planner_missing",
        ) from None
    try:
        return pytorch_plan.plan_steps(config, facts, model_dir, staging)
    except Exception as err:
        if hasattr(err, "code") and type(err).__name__ == "PlanError":
            raise PlanError(str(err), code=int(err.code), error_id="pytorch_plan") from None
        raise


def make_plan(
    resolved: dict,
    facts: dict,
    model_dir: str,
    staging: str,
    cache_dir: str | None = None,
    examples_dir: str | None = None,
) -> dict:
    """The plan document (docs/internals.md); raises PlanError / FamilyError (code 2)."""
    config = resolved.get("config", resolved)
    backend = config.get("backend", "engine")
    version, version_source = trtllm_version(config, facts)
    low, high = (PYTORCH_MIN, None) if backend == "pytorch" else ENGINE_WINDOW
    if version_key(version) < version_key(low) or (
        high and version_key(version) > version_key(high)
    ):
        window = f"{low} .. {high}" if high else f">= {low}"
        other = "pytorch (TensorRT-LLM >= 1.0)" if backend == "engine" else "engine (0.12 .. 1.2)"
        raise PlanError(
            f"TensorRT-LLM {version} ({version_source}) is outside the {backend} "
            f"backend's window {window}; use backend: {other}",
            error_id="version_window",
        )
    model_dir = str(Path(model_dir).resolve())
    staging = str(Path(staging).absolute())  # steps run with the staging dir as cwd
    model_config = require_hf_dir(model_dir)
    family = detect(model_config, version) if backend == "engine" else None
    gpu = target_gpu(config, facts)
    shape = est.model_shape(model_config)
    dtype = est.resolve_dtype(config.get("dtype", "auto"), shape.checkpoint_dtype)
    python = (facts.get("python") or {}).get("executable") or "python3"
    notes: list[str] = []
    steps: list[dict]
    route = None
    cache_file = None
    examples = examples_dir or os.environ.get("TRTLLM_EXAMPLES_DIR") or "$TRTLLM_EXAMPLES_DIR"
    if not examples.startswith("$"):
        examples = str(Path(examples).absolute())
    checks = [
        model_checks.check(
            "trtllm_version",
            "pass",
            f"planned for TensorRT-LLM {version} ({version_source})"
            + (f"; CLI record {cli_record_version(version)}" if backend == "engine" else ""),
        )
    ]
    estimate = est.estimate(config, model_config, gpu, model_dir=model_dir, facts=facts)
    if backend == "engine":
        notes += family.notes
        checks.append(
            model_checks.check(
                "family",
                "pass" if family.recorded else "warn",
                f"{family.hf_architecture} -> {family.name} ({family.script})"
                + ("" if family.recorded else ": its arguments are not recorded, flags unchecked"),
            )
        )
        if examples == "$TRTLLM_EXAMPLES_DIR":
            checks.append(
                model_checks.check(
                    "examples_dir",
                    "warn",
                    "TRTLLM_EXAMPLES_DIR is not set: the script paths below are placeholders",
                    "export TRTLLM_EXAMPLES_DIR=<TensorRT-LLM>/examples",
                )
            )
        steps, route, cache_file = _engine_steps(
            config,
            facts,
            family,
            version,
            model_dir,
            staging,
            gpu,
            dtype,
            cache_dir,
            examples,
            python,
            notes,
            estimate,
        )
        if (facts.get("packages") or {}).get("tensorrt_llm"):
            checks.append(model_checks.installed_parser_check(steps[-1]["argv"]))
        checks += model_checks.calibration_checks(config, route)
    else:
        steps = _pytorch_steps(config, facts, model_dir, staging)
    checks += model_checks.structure_checks(config, shape, family, gpu)
    checks += model_checks.precision_checks(config, gpu, dtype)
    checks += model_checks.estimate_checks(config, model_config, gpu, estimate, facts)
    checks += environment_checks(config, facts)
    par = config.get("parallel") or {}
    tp, pp = int(par.get("tp_size", 1)), int(par.get("pp_size", 1))
    quant = config.get("quantization") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "ok": not any(c["status"] == "fail" for c in checks),
        "backend": backend,
        "family": family.name if family else None,
        "hf_architecture": (model_config.get("architectures") or [None])[0],
        "model_type": model_config.get("model_type"),
        "model_dir": model_dir,
        "trtllm_version": version,
        "trtllm_version_source": version_source,
        "cli_record_version": cli_record_version(version) if backend == "engine" else None,
        "gpu": {k: gpu[k] for k in ("name", "compute_capability", "memory_total_mib", "source")},
        "gpus_visible": gpu["count"],
        "tp_size": tp,
        "pp_size": pp,
        "world_size": tp * pp,
        "dtype": dtype,
        "quantization": {
            "mode": quant.get("mode", "none"),
            "kv_cache_dtype": quant.get("kv_cache_dtype", "auto"),
            "route": route,
        },
        "python": python,
        "examples_dir": examples if backend == "engine" else None,
        "staging": str(staging),
        "timing_cache": cache_file,
        "timing_cache_dir": str(Path(cache_file).parent) if cache_file else None,
        "steps": steps,
        "checks": checks,
        "estimates": estimate,
        "notes": notes,
    }


# ----------------------------------------------------------------------------- show / argv / get


def show(plan: dict) -> str:
    e = plan.get("estimates") or {}
    q = plan.get("quantization") or {}
    gpu = plan.get("gpu") or {}
    lines = [
        f"plan   {plan.get('backend')} backend, TensorRT-LLM {plan['trtllm_version']} "
        f"({plan['trtllm_version_source']})",
        f"model  {plan.get('hf_architecture')} -> family {plan.get('family') or '-'}, dtype "
        f"{plan.get('dtype')}, quantization {q.get('mode')} (kv {q.get('kv_cache_dtype')})",
        f"gpu    {gpu.get('name')} SM {gpu.get('compute_capability')} "
        f"{gpu.get('memory_total_mib', 0) / 1024:.0f} GiB ({gpu.get('source')}); "
        f"world size {plan['world_size']} (tp {plan['tp_size']} x pp {plan['pp_size']})",
        "",
        "commands",
    ]
    for step in plan.get("steps") or []:
        lines.append(f"  {step['name']:9s} {shlex.join(step['argv'])}")
    lines += ["", "checks"]
    for c in plan.get("checks") or []:
        fix = f"  -> {c['fix']}" if c.get("fix") and c["status"] in ("fail", "warn") else ""
        lines.append(f"  {c['status']:5s} {c['id']:15s} {c['message']}{fix}")
    if e:
        mem = e["gpu"]["memory_bytes"]
        rows = [
            ("parameters", f"{e['parameters']['total']:,} ({e['parameters']['source']})"),
            (
                "checkpoint",
                f"{model_checks.gib(e['checkpoint']['bytes'])} {e['checkpoint']['dtype']}",
            ),
            (
                "weights/GPU",
                f"{model_checks.gib(e['weights_bytes_per_gpu'])} of {model_checks.gib(mem)}",
            ),
            ("activations/GPU", f"{model_checks.gib(e['activation_bytes_per_gpu'])}"),
            (
                "KV bytes/token",
                f"{e['kv_cache_bytes_per_token_per_gpu']:,} ({e['kv_cache_formula']})",
            ),
            (
                "KV capacity",
                f"{e['kv_cache_capacity_tokens']:,} tokens = "
                f"{e['kv_cache_capacity_sequences']:,} x {e['max_seq_len']} at "
                f"{e['kv_cache_free_gpu_memory_fraction']} of free memory; "
                f"max_batch_size {e['max_batch_size']} "
                f"{'reachable' if e['max_batch_size_reachable'] else 'NOT reachable'}",
            ),
            (
                "host RAM",
                f"{model_checks.gib(e['host_ram_bytes_convert'])} convert, "
                f"{model_checks.gib(e['host_ram_bytes_build'])} build",
            ),
            ("disk", f"{model_checks.gib(e['disk_bytes'])} (checkpoint + engines)"),
        ]
        lines += ["", "estimates"] + [f"  {k:16s} {v}" for k, v in rows]
    for note in plan.get("notes") or []:
        lines.append(f"note: {note}")
    return "\n".join(lines) + "\n"


def _get(plan: dict, key: str):
    value = plan
    for part in key.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise PlanError(f"the plan has no {key}")
    if isinstance(value, (dict, list)):
        raise PlanError(f"{key} is not a scalar")
    return value


def _sub_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="plan.py")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_argv = sub.add_parser("argv")
    p_argv.add_argument("--plan", required=True)
    p_argv.add_argument("--step", required=True)
    p_show = sub.add_parser("show")
    p_show.add_argument("--plan", required=True)
    p_get = sub.add_parser("get")
    p_get.add_argument("--plan", required=True)
    p_get.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    plan = _load_json(args.plan, "plan")
    if args.cmd == "show":
        sys.stdout.write(show(plan))
    elif args.cmd == "get":
        value = _get(plan, args.key)
        print("" if value is None else (json.dumps(value) if isinstance(value, bool) else value))
    else:
        steps = {s["name"]: s for s in plan.get("steps") or []}
        if args.step not in steps:
            raise PlanError(f"the plan has no step {args.step!r} (steps: {', '.join(steps)})")
        sys.stdout.write("".join(f"{a}\0" for a in steps[args.step]["argv"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in ("argv", "show", "get"):
            return _sub_main(argv)
        parser = argparse.ArgumentParser(prog="plan.py", description=__doc__.split("\n\n")[0])
        parser.add_argument("--config-json", required=True)
        parser.add_argument("--facts-json", required=True)
        parser.add_argument("--model-dir", required=True)
        parser.add_argument("--staging", required=True)
        parser.add_argument("--cache-dir", default="")
        parser.add_argument("--examples-dir", default="")
        parser.add_argument(
            "--keep-going",
            action="store_true",
            help="print the plan even when a check fails (still exit 2)",
        )
        args = parser.parse_args(argv)
        resolved = _load_json(args.config_json, "resolved config")
        facts = _load_json(args.facts_json, "facts")
        plan = make_plan(
            resolved,
            facts,
            args.model_dir,
            args.staging,
            cache_dir=args.cache_dir or None,
            examples_dir=args.examples_dir or None,
        )
    except (PlanError, FamilyError, est.EstimateError) as err:
        print(f"plan.py: {err}", file=sys.stderr)
        return err.code
    failed = [c for c in plan["checks"] if c["status"] == "fail"]
    for c in failed:
        print(
            f"plan.py: {c['id']}: {c['message']}" + (f" ({c['fix']})" if c["fix"] else ""),
            file=sys.stderr,
        )
    if not failed or args.keep_going:
        print(json.dumps(plan, indent=2))
    return 2 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

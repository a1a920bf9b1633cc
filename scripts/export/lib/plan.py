"""The build plan: (validated config, machine facts, the model's config.json) -> the exact commands,
every check and the resource estimate, before any heavy work.

Library:
  make_plan(cfg, facts, model_dir, staging, *, cache_dir=None, examples_dir=None,
            dry_run=False) -> dict        the plan document (docs/internals.md, "Plan")
  show(plan) -> str                       the plan as the table a dry run prints

Nothing here stops at the first problem: a setting the version cannot honour, a model the
engine path does not convert, a tool missing from this machine, a GPU that cannot run the
precision... each is a failed check with the config key at fault, and the plan is still made as
far as it can be, so that a dry run shows the commands beside every problem. `ok` is false when a
check failed. A dry run is a plan for another machine: what this machine lacks (GPU, TensorRT-LLM,
tools for a step, GPUs for the world size, MPI, disk) is a warning there and a failure in a build.

TensorRT-LLM version: the installed one (facts.packages.tensorrt_llm), else the config's
target.trtllm_version. GPU: the first detected device, else the config's first target GPU.
cache_dir is the timing-cache root (outputs/gpu/tensorrt_llm/.cache); the plan keeps one cache
per GPU and version under it: <root>/<gpu>-sm<cc>-trt<version>/timing.cache. examples_dir
defaults to $TRTLLM_EXAMPLES_DIR.
"""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import commands
import env_checks
import estimate as est
import lora_plan
import model_checks
import model_files
import pytorch_plan
import quality_gate
import step_checks
import versions
from build_config import BuildConfig
from errors import Check, ExportError, check, render_checks, summary_line
from family import Family, detect, require_hf_dir

SCHEMA_VERSION = 1
GIB = 1024**3
EXAMPLES_PLACEHOLDER = "$TRTLLM_EXAMPLES_DIR"
# The doctor's checks that belong in a plan: the rest (GPU present and count, disk, RAM) are
# judged against the plan's own estimate and steps.
ENVIRONMENT_CHECKS = frozenset(
    {
        "backend_window",
        "trtllm_target",
        "trtllm_programs",
        "version_stack",
        "tensorrt_version",
        "torch_version",
        "modelopt_version",
        "transformers_version",
        "python_version",
        "driver_cuda",
        "gpu_supported",
        "gpu_precision",
        "gpu_dtype_auto",
        "gpu_target",
        "gpu_uniform",
        "gpu_mig",
        "mpi",
        "calibration",
    }
)


def target_gpu(cfg: BuildConfig, facts: dict) -> dict:
    gpu = facts.get("gpu") or {}
    devices = gpu.get("devices") or []
    if gpu.get("status") == "ok" and devices:
        dev = devices[0]
        return {
            "name": dev.get("name"),
            "compute_capability": str(dev.get("compute_capability")),
            "memory_total_mib": int(dev.get("memory_total_mib") or 0),
            "memory_free_mib": dev.get("memory_free_mib"),
            "count": len(devices),
            "source": "detected",
        }
    t = cfg.target.gpus[0]
    return {
        "name": t.name,
        "compute_capability": t.compute_capability,
        "memory_total_mib": int(t.memory_gib * 1024),
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
    return (versions.stack_for(version) or {}).get("modelopt")


class Planner:
    """One plan: the inputs, the steps as they are found, and every check."""

    def __init__(self, cfg, facts, model_dir, staging, cache_dir, examples_dir, dry_run):
        self.cfg: BuildConfig = cfg
        self.facts = facts
        self.model_dir = str(Path(model_dir).resolve())
        self.staging = str(Path(staging).absolute())  # steps run with the staging dir as cwd
        self.cache_dir = cache_dir
        self.dry_run = dry_run
        self.machine = "warn" if dry_run else "fail"
        self.version, self.version_source = env_checks.effective_trtllm(cfg, facts)
        self.installed = bool((facts.get("packages") or {}).get("tensorrt_llm"))
        self.python = (facts.get("python") or {}).get("executable") or "python3"
        examples = str(
            examples_dir or os.environ.get("TRTLLM_EXAMPLES_DIR") or EXAMPLES_PLACEHOLDER
        )
        self.examples = examples if examples.startswith("$") else str(Path(examples).absolute())
        self.checks: list[Check] = []
        self.notes: list[str] = []
        self.quality: dict | None = None  # the quality gate (quality_gate.py)
        self.steps: list[dict] = []
        self.route: str | None = None
        self.cache_file: str | None = None
        self.lora: dict | None = None

    def add_lora(self, dtype: str) -> None:
        """The lora: section: its checks, the package step first, trtllm-build's LoRA flags."""
        lora = lora_plan.plan(
            self.cfg, self.model_dir, self.version, self.python, self.staging, dtype
        )
        self.checks += lora.checks
        self.notes += lora.notes
        for step in self.steps:
            if step["name"] == "build":
                step["argv"] += lora.build_argv
        self.steps.insert(0, lora.step)
        self.lora = lora.part

    def fail(self, check_id: str, message: str, fix: str = "", key: str | None = None) -> None:
        self.checks.append(check(check_id, "fail", message, fix, key))

    def problem(self, err: ExportError) -> None:
        self.fail(err.id, err.message, err.fix, err.key)

    # ------------------------------------------------------------------------------ engine

    def calibration_file(self) -> str | None:
        dataset = self.cfg.quantization.calibration.dataset
        if not dataset:
            return None
        path = Path(dataset).expanduser()
        return str(path.resolve()) if path.is_file() else None  # a missing file: env check

    def engine_steps(self, family: Family, gpu: dict, dtype: str, estimate: dict | None) -> None:
        q, par = self.cfg.quantization, self.cfg.parallel
        self.route = commands.quant_route(q.mode, q.kv_cache_dtype, family, self.installed)
        staging = Path(self.staging)
        checkpoint, engine = str(staging / "checkpoint"), str(staging / "engine")
        calib_path = self.calibration_file()
        calib_dir = self._calib_step(calib_path)
        conv = commands.Conversion(
            python=self.python,
            model_dir=self.model_dir,
            output=checkpoint,
            dtype=dtype,
            tp=par.tp_size,
            pp=par.pp_size,
            mode=q.mode,
            kv_dtype=q.kv_cache_dtype,
        )
        calib = q.calibration
        if self.route == "convert":
            self.steps.append(
                commands.convert_step(
                    conv, examples_dir=self.examples, family=family, calib_dir=calib_dir
                )
            )
        elif self.route == "quantize":
            self.steps.append(
                commands.quantize_step(
                    conv,
                    examples_dir=self.examples,
                    version=self.version,
                    calib_dir=calib_dir,
                    calib_size=calib.num_samples,
                    calib_max_seq_len=calib.max_seq_len,
                )
            )
        else:
            self._modelopt_checks()
            self.steps.append(
                commands.modelopt_step(
                    conv,
                    calib_file=calib_path,
                    calib_size=calib.num_samples,
                    calib_max_seq_len=calib.max_seq_len,
                )
            )
        self.steps.append(self._build_step(checkpoint, engine, gpu, estimate))
        for key, message in commands.setting_problems(
            self.cfg.build, q.mode, q.kv_cache_dtype, self.route, self.version
        ):
            self.fail("version_setting", message, "a setting this version has", key)

    def _calib_step(self, calib_path: str | None) -> str | None:
        """A calibration *file* becomes the local dataset dir quantize.py and the convert scripts
        read; their loader finds a local dir's split and text column only when its path names a
        known dataset ("lambada" -> validation split), so calib_data.py writes both splits."""
        q = self.cfg.quantization
        needs = self.route == "quantize" or q.mode == "int8_sq" or q.kv_cache_dtype == "int8"
        if not calib_path or self.route not in ("convert", "quantize") or not needs:
            return calib_path
        name = "calib" if self.route == "quantize" else "calib_lambada"
        out = str(Path(self.staging) / name)
        self.steps.append(
            commands.calib_step(
                python=self.python,
                dataset=calib_path,
                output_dir=out,
                num_samples=q.calibration.num_samples,
            )
        )
        return out

    def _modelopt_checks(self) -> None:
        q = self.cfg.quantization
        if q.mode not in commands.MODELOPT_QFORMATS or q.kv_cache_dtype == "int8":
            self.checks.append(
                check(
                    "needs_trtllm",
                    self.machine,
                    f"quantization.mode {q.mode} with kv_cache_dtype {q.kv_cache_dtype} needs "
                    "TensorRT-LLM's own quantize.py or convert script, and TensorRT-LLM is not "
                    "installed here; without it ModelOpt quantizes to "
                    f"{', '.join(sorted(commands.MODELOPT_QFORMATS))} (kv fp8 or auto)",
                    "build inside NVIDIA's TensorRT-LLM container",
                    key="quantization.mode",
                )
            )
        pin = _modelopt_pin(self.version)
        match = re.search(r"(\d+)\.(\d+)", pin or "")
        if match and (int(match.group(1)), int(match.group(2))) >= (0, 49):
            self.fail(
                "needs_trtllm",
                f"TensorRT-LLM {self.version} pins ModelOpt {pin}, which no longer exports "
                "TensorRT-LLM checkpoints (export_tensorrt_llm_checkpoint removed in 0.49)",
                "install TensorRT-LLM to use its quantize.py",
                "target.trtllm_version",
            )
        self.notes.append(
            f"TensorRT-LLM is not installed: quantization planned with ModelOpt (pinned "
            f"{pin or 'unknown'} for {self.version}); run it on a GPU"
        )

    def _build_step(self, checkpoint: str, engine: str, gpu: dict, estimate: dict | None) -> dict:
        b, par = self.cfg.build, self.cfg.parallel
        world = par.tp_size * par.pp_size
        workers = max(1, min(b.workers, world, gpu["count"] or 1))
        available = (self.facts.get("memory") or {}).get("available_bytes")
        per_worker = 2 * estimate["weights_bytes_per_gpu"] if estimate else 0
        if available and per_worker and workers > max(1, available // per_worker):
            lowered = max(1, available // per_worker)
            self.notes.append(
                f"build.workers {workers} lowered to {lowered}: each worker holds about "
                f"{per_worker / GIB:.1f} GiB of one rank in host RAM, {available / GIB:.1f} GiB "
                "available"
            )
            workers = lowered
        if b.timing_cache and self.cache_dir:
            cache = Path(timing_cache_dir(self.cache_dir, gpu, self.version)) / "timing.cache"
            self.cache_file = str(cache)
            if not cache.is_file():
                self.notes.append(
                    "no timing cache yet for this GPU and version: trtllm-build warns 'Invalid "
                    f"timing cache, using freshly created one' and writes {cache} for the next "
                    "build"
                )
        q = self.cfg.quantization
        return commands.build_step(
            version=self.version,
            checkpoint=checkpoint,
            output=engine,
            build=b,
            mode=q.mode,
            kv_dtype=q.kv_cache_dtype,
            workers=workers,
            timing_cache=self.cache_file,
        )

    # ------------------------------------------------------------------------------ all

    def family(self, model_config: dict) -> Family | None:
        try:
            family = detect(model_config, self.version)
        except ExportError as err:
            self.problem(err)
            return None
        self.notes += family.notes
        self.checks.append(
            check(
                "family",
                "pass" if family.recorded else "warn",
                f"{family.hf_architecture} -> {family.name} ({family.script})"
                + ("" if family.recorded else ": its arguments are not recorded, flags unchecked"),
            )
        )
        return family

    def estimate(self, model_config: dict, gpu: dict) -> dict | None:
        try:
            return est.estimate(
                self.cfg, model_config, gpu, model_dir=self.model_dir, facts=self.facts
            )
        except est.EstimateError as err:
            self.fail("model_config", str(err), "a complete config.json in the model dir")
            return None

    def calibrates(self) -> bool:
        """Whether a planned step calibrates on sample text (the calibration check's subject)."""
        if self.cfg.backend != "engine":
            return any(s["name"] == "quantize" for s in self.steps)
        return self.route in ("quantize", "modelopt") or (
            self.route == "convert" and any(s["name"] == "calib" for s in self.steps)
        )

    def add_quality(self) -> None:
        """The quality gate: what the ModelOpt step(s) measure, their flags, the check."""
        self.quality, found = quality_gate.plan_quality(self.cfg, self.steps, self.staging)
        self.checks += found


def make_plan(
    cfg: BuildConfig,
    facts: dict,
    model_dir: str | Path,
    staging: str | Path,
    *,
    cache_dir: str | None = None,
    examples_dir: str | None = None,
    dry_run: bool = False,
) -> dict:
    """The plan document; raises ExportError only when the model dir is not a model."""
    p = Planner(cfg, facts, model_dir, staging, cache_dir, examples_dir, dry_run)
    model_config = require_hf_dir(p.model_dir)
    p.checks.append(_tokenizer_check(Path(p.model_dir)))
    engine = cfg.backend == "engine"
    record = f"; CLI record {versions.cli_record(p.version)}" if engine else ""
    p.checks.append(
        check(
            "trtllm_version",
            "pass",
            f"planned for TensorRT-LLM {p.version} ({p.version_source}){record}",
        )
    )
    family = p.family(model_config) if engine else None
    gpu = target_gpu(cfg, facts)
    shape = None
    try:
        shape = est.model_shape(model_config)
    except est.EstimateError as err:
        p.fail("model_config", str(err), "a complete config.json in the model dir")
    dtype = est.resolve_dtype(cfg.dtype, shape.checkpoint_dtype if shape else "float16")
    estimate = p.estimate(model_config, gpu) if shape else None
    if family is not None:
        p.engine_steps(family, gpu, dtype, estimate)
    elif not engine:
        p.steps = pytorch_plan.plan_steps(cfg, p.python, p.model_dir, p.staging)
    if cfg.lora is not None:
        p.add_lora(dtype)
    p.checks += step_checks.tool_checks(p.steps, facts, p.examples, family, p.machine)
    if shape:
        p.checks += model_checks.structure_checks(cfg, shape, family, gpu, p.machine)
    if estimate:
        p.checks += model_checks.estimate_checks(cfg, model_config, gpu, estimate, facts, p.machine)
    p.checks += [
        c
        for c in env_checks.run_checks(
            cfg,
            facts,
            require_machine=not dry_run,
            calibrates=p.calibrates(),
            tool_default=engine and p.route != "modelopt",
        )
        if c["id"] in ENVIRONMENT_CHECKS
    ]
    if p.installed and engine and p.steps:
        p.checks.append(model_checks.installed_parser_check(p.steps[-1]["argv"]))
    p.add_quality()
    return _document(p, model_config, family, gpu, dtype, estimate)


def _tokenizer_check(model_dir: Path) -> Check:
    files = model_files.tokenizer_files(model_dir)
    if model_files.has_tokenizer(files):
        names = ", ".join(f.name for f in files if f.name in model_files.TOKENIZER_CORE)
        return check("tokenizer", "pass", f"the artifact carries the tokenizer ({names})")
    return check(
        "tokenizer",
        "fail",
        f"{model_dir} has no tokenizer (tokenizer.json, tokenizer.model, vocab.json, ...)",
        "save the tokenizer with the merged model (merge_lora.py does) so the artifact ships "
        "with it",
    )


def _document(p: Planner, model_config, family, gpu, dtype, estimate) -> dict:
    cfg = p.cfg
    engine = cfg.backend == "engine"
    par = cfg.parallel
    return {
        "schema_version": SCHEMA_VERSION,
        "ok": not any(c["status"] == "fail" for c in p.checks),
        "dry_run": p.dry_run,
        "backend": cfg.backend,
        "family": family.name if family else None,
        "hf_architecture": (model_config.get("architectures") or [None])[0],
        "model_type": model_config.get("model_type"),
        "model_dir": p.model_dir,
        "trtllm_version": p.version,
        "trtllm_version_source": p.version_source,
        "cli_record_version": versions.cli_record(p.version) if engine else None,
        "gpu": {k: gpu[k] for k in ("name", "compute_capability", "memory_total_mib", "source")},
        "gpus_visible": gpu["count"],
        "tp_size": par.tp_size,
        "pp_size": par.pp_size,
        "world_size": par.tp_size * par.pp_size,
        "dtype": dtype,
        "quantization": {
            "mode": cfg.quantization.mode,
            "kv_cache_dtype": cfg.quantization.kv_cache_dtype,
            "route": p.route,
        },
        "quality": p.quality,
        "python": p.python,
        "examples_dir": p.examples if engine else None,
        "staging": p.staging,
        "timing_cache": p.cache_file,
        "timing_cache_dir": str(Path(p.cache_file).parent) if p.cache_file else None,
        "steps": p.steps,
        "checks": p.checks,
        "estimates": estimate,
        "lora": p.lora,
        "notes": p.notes,
    }


# ----------------------------------------------------------------------------------- show


def _command_lines(argv: list[str]) -> list[str]:
    """A command as shell lines a user can paste: one flag (with its value) per line, and the
    examples placeholder left unquoted so that the shell expands it."""
    words = []
    for arg in argv:
        if arg.startswith(EXAMPLES_PLACEHOLDER + "/"):
            rest = arg[len(EXAMPLES_PLACEHOLDER) :]
            words.append('"${TRTLLM_EXAMPLES_DIR}"' + _quote(rest))
        else:
            words.append(_quote(arg))
    lines, current = [], words[0]
    for word in words[1:]:
        if word.startswith("--") or len(current) + len(word) > 90:
            lines.append(current + " \\")
            current = "    " + word
        else:
            current += " " + word
    return [*lines, current]


def _quote(word: str) -> str:
    return shlex.quote(word) if word else "''"


def show(plan: dict) -> str:
    q = plan.get("quantization") or {}
    gpu = plan.get("gpu") or {}
    memory = model_checks.gib(gpu.get("memory_total_mib", 0) * 1024**2)
    lines = [
        f"plan     {plan['backend']} backend, TensorRT-LLM {plan['trtllm_version']} "
        f"({plan['trtllm_version_source']})",
        f"model    {plan.get('hf_architecture')} -> family {plan.get('family') or '-'}, dtype "
        f"{plan.get('dtype')}, quantization {q.get('mode')} (kv {q.get('kv_cache_dtype')})",
        f"gpu      {gpu.get('name')} SM {gpu.get('compute_capability')} {memory} "
        f"({gpu.get('source')}); world size {plan['world_size']} "
        f"(tp {plan['tp_size']} x pp {plan['pp_size']})",
        "",
        "commands" if plan.get("steps") else "commands (none: the bundle serves the checkpoint)",
    ]
    for step in plan.get("steps") or []:
        lines.append(f"  # {step['name']}: {step.get('description') or step.get('log')}")
        lines += ["  " + line for line in _command_lines(step["argv"])]
    checks = plan.get("checks") or []
    lines += ["", "checks", *render_checks(checks), "  " + summary_line(checks)]
    lines += _estimate_lines(plan.get("estimates"))
    lines += quality_gate.plan_lines(plan.get("quality"))
    lines += [f"note: {note}" for note in plan.get("notes") or []]
    return "\n".join(lines) + "\n"


def _estimate_lines(e: dict | None) -> list[str]:
    if not e:
        return []
    gib = model_checks.gib
    rows = [
        ("parameters", f"{e['parameters']['total']:,} ({e['parameters']['source']})"),
        ("checkpoint", f"{gib(e['checkpoint']['bytes'])} {e['checkpoint']['dtype']}"),
        ("weights/GPU", f"{gib(e['weights_bytes_per_gpu'])} of {gib(e['gpu']['memory_bytes'])}"),
        ("activations/GPU", gib(e["activation_bytes_per_gpu"])),
        ("KV bytes/token", f"{e['kv_cache_bytes_per_token_per_gpu']:,} ({e['kv_cache_formula']})"),
        (
            "KV capacity",
            f"{e['kv_cache_capacity_tokens']:,} tokens = {e['kv_cache_capacity_sequences']:,} x "
            f"{e['max_seq_len']:,} at {e['kv_cache_free_gpu_memory_fraction']} of "
            f"{e.get('kv_cache_memory_basis', 'total')} memory; max_batch_size "
            f"{e['max_batch_size']:,} "
            f"{'reachable' if e['max_batch_size_reachable'] else 'NOT reachable'}",
        ),
        (
            "host RAM",
            f"{gib(e['host_ram_bytes_convert'])} convert, {gib(e['host_ram_bytes_build'])} build",
        ),
        ("disk", f"{gib(e['disk_bytes'])} (checkpoint + engines)"),
    ]
    return ["", "estimates"] + [f"  {k:16s} {v}" for k, v in rows]

"""The runtime-LoRA part of a plan (`lora:` section): checks, the package step, the trtllm-build
flags (engine route) or the LLM-API lora_config (PyTorch route), and what the plan records.

Library for plan.py (publish.py and serve_script.py read the part it records):
  plan(cfg, model_dir, version, python, staging, dtype) -> LoraPlan
      .checks      every adapter check (lora_checks.py) and the route check (lora_route)
      .step        {"name": "lora", ...}: steps/package_adapters.py copies every adapter into
                   <staging>/lora/<name>/, checked against its planned fingerprint; runs first
      .build_argv  appended to trtllm-build's argv (engine route): --lora_plugin <dtype>
                   --lora_dir <staging>/lora/<name>... --max_lora_rank R --lora_target_modules
                   ... --lora_ckpt_source hf (the recorded flags of 0.12, 0.16 and 1.2; none of
                   them sizes the adapter caches: max_loras / max_cpu_loras are not applied there)
      .part        the plan document's "lora" object (docs/internals.md)
(serve.sh prints each adapter's lora_request: serve_script.lora_lines.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import llm_api_options
import lora_checks
import lora_package
import serve_script
from build_config import BuildConfig
from errors import Check, ExportError, check
from versions import at_least

PACKAGE_SCRIPT = Path(__file__).resolve().parents[1] / "steps" / "package_adapters.py"
REQUEST = (
    '"lora_request": {"lora_name", "lora_int_id", "lora_path"} in the request body '
    "(TensorRT-LLM's example sends it to /v1/completions); lora_path is the adapter's dir on "
    "the serving machine (serve.sh prints each one)"
)


@dataclass
class LoraPlan:
    checks: list[Check] = field(default_factory=list)
    step: dict = field(default_factory=dict)
    build_argv: list[str] = field(default_factory=list)
    part: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def package_step(python: str, infos: list, staging: str) -> dict:
    output = str(Path(staging) / lora_package.LORA_DIR)
    argv = [python, str(PACKAGE_SCRIPT), "--output", output]
    for info in infos:
        argv += ["--adapter", info.name, str(info.path), info.fingerprint["fingerprint"]]
    return {
        "name": "lora",
        "argv": argv,
        "log": "lora.log",
        "output": output,
        "description": "adapters -> lora/<name>/ (checked against their planned fingerprints)",
    }


def build_argv(cfg: BuildConfig, targets: dict, dtype: str, staging: str) -> list[str]:
    """trtllm-build's LoRA flags. The plugin runs in the engine's dtype (another dtype silently
    disables LoRA, tensorrtllm_backend #791); trtllm-build builds LoRA only with --lora_plugin."""
    lora = cfg.lora
    root = Path(staging) / lora_package.LORA_DIR
    return [
        "--lora_plugin",
        dtype,
        "--lora_dir",
        *(str(root / a.name) for a in lora.adapters),
        "--max_lora_rank",
        str(lora.max_rank),
        "--lora_target_modules",
        *targets["trtllm"],
        "--lora_ckpt_source",
        "hf",
    ]


def llm_api_lora_config(cfg: BuildConfig, targets: dict) -> dict:
    """The lora_config block of llm_api_options.yaml (PyTorch route); lora_dir is relative to
    the artifact, where serve.sh runs trtllm-serve. Requests still choose the adapter."""
    lora = cfg.lora
    return {
        "lora_dir": [f"{lora_package.LORA_DIR}/{a.name}" for a in lora.adapters],
        "lora_ckpt_source": "hf",
        "max_lora_rank": lora.max_rank,
        "lora_target_modules": list(targets["trtllm"]),
        "max_loras": lora.max_loras,
        "max_cpu_loras": lora.max_cpu_loras,
    }


def route_check(version: str, block: dict | None) -> Check:
    """Engine: trtllm-build has the LoRA flags at this version. PyTorch: the LLM-API record of
    this version lists lora_config and every key of the block."""
    if block is None and not at_least(version, serve_script.FIRST_TRTLLM_SERVE):
        msg = (
            f"TensorRT-LLM {version} has no trtllm-serve: its serve.sh runs examples/run.py, "
            "which serves no adapter per request"
        )
        fix = f"target.trtllm_version {serve_script.FIRST_TRTLLM_SERVE} or newer, or merge"
        return check("lora_route", "fail", msg, fix, key="target.trtllm_version")
    if block is None:
        return check("lora_route", "pass", f"trtllm-build {version}: LoRA plugin flags recorded")
    try:
        record = llm_api_options.load_record(version)
    except ExportError as err:
        return check("lora_route", "fail", err.message, "", key="target.trtllm_version")
    if "lora_config" not in record.get("nested", {}):
        partial = "" if record.get("complete", True) else " (a partial record)"
        msg = (
            f"the LLM-API record {record['record_file']}{partial} lists no lora_config: runtime "
            "LoRA on the PyTorch backend is planned for the recorded lines only (1.2, 1.4)"
        )
        fix = 'target.trtllm_version: "1.2.0" (or backend: engine)'
        return check("lora_route", "fail", msg, fix, key="target.trtllm_version")
    errors = llm_api_options.check_options({"lora_config": block}, record)
    if errors:
        return check("lora_route", "fail", "; ".join(errors), "", key="lora")
    line = record["record_line"]
    return check("lora_route", "pass", f"lora_config checked against the LLM API of {line}")


def _adapter_part(info) -> dict:
    cfg = info.config
    return {
        "name": info.name,
        "lora_int_id": info.index + 1,
        "source": str(info.path),
        "fingerprint": info.fingerprint["fingerprint"],
        "rank": max(info.ranks.values(), default=0),
        "lora_alpha": cfg.get("lora_alpha"),
        "use_rslora": bool(cfg.get("use_rslora")),
        "modules": sorted({m.rsplit(".", 1)[-1] for m in info.ranks}),
        "base_model_name_or_path": cfg.get("base_model_name_or_path"),
    }


def plan(cfg: BuildConfig, model_dir: str, version: str, python: str, staging: str, dtype: str):
    """Everything the plan needs for the lora: section (see the module docstring)."""
    out = LoraPlan()
    engine = cfg.backend == "engine"
    out.checks, infos = lora_checks.adapter_checks(cfg.lora, model_dir, version, cfg.backend)
    targets = lora_checks.resolve_targets(cfg.lora, infos, version, cfg.backend)
    block = None if engine else llm_api_lora_config(cfg, targets)
    out.checks.insert(0, route_check(version, block))
    out.step = package_step(python, infos, staging)
    if engine:
        out.build_argv = build_argv(cfg, targets, dtype, staging)
        out.notes.append(
            "lora.max_loras / max_cpu_loras are not applied on the engine route: trtllm-build "
            "has no flag for them and the serving options are not written for engines; "
            "TensorRT-LLM's own adapter-cache defaults apply"
        )
    lora = cfg.lora
    out.part = {
        "schema_version": 1,
        "route": cfg.backend,
        "trtllm_version": version,
        "adapters": [_adapter_part(i) for i in infos],
        "max_rank": lora.max_rank,
        "target_modules": targets,
        "max_loras": lora.max_loras,
        "max_cpu_loras": lora.max_cpu_loras,
        "llm_api_lora_config": block,
        "request": REQUEST,
    }
    return out

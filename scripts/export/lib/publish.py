"""Publish stage: make the staging dir a complete, self-describing artifact and put it in place.

Usage (build_tensorrt_llm.sh runs it after the last step):
  publish.py --work-dir D --staging D [--keep-checkpoint] [--force]

Reads the plan document prepare.py wrote (<work-dir>/plan.json). Backend engine: checks the
engine layout, copies the tokenizer files, chat template and generation config into tokenizer/
and checks that they load. Backend pytorch: bundle.py links the checkpoint in and writes
llm_api_options.yaml. Both: serve.sh, files readable by everyone (0644, scripts 0755), build.json
last (every file with its size and sha256; "quality": the quantize step's quality report,
quality_report.py), then the staging dir takes the output's place:
one rename for a new output; for --force an exchange of the two dirs where the kernel has it
(renameat2), else the old one is moved aside first and the next build restores it if this one
is killed in between. Prints the output dir. Exit 2 bad input, 1 a failed publish (one line
naming the path and the fix; the staging dir is kept).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path

import artifact_files
import bundle
import lora_package
import manifest
import model_files
import quality_report
import serve_script
import swap
import tokenizer_check
import versions
from build_config import BuildConfig
from errors import ExportError, failed, report

SCHEMA_VERSION = 1
PROG = "build_tensorrt_llm"
ENGINE_DIR = "engine"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoint"
INTERMEDIATE_DIRS = (CHECKPOINT_DIR, "calib", "calib_lambada")


def check_engine(engine_dir: Path, world_size: int) -> dict:
    config = engine_dir / "config.json"
    if not config.is_file():
        raise failed(f"the build wrote no engine config: {config} is missing")
    missing = [r for r in range(world_size) if not (engine_dir / f"rank{r}.engine").is_file()]
    if missing:
        raise failed(
            f"the build wrote no engine for rank(s) {', '.join(map(str, missing))} of world "
            f"size {world_size} in {engine_dir}"
        )
    try:
        doc = manifest.load_json(config, "the engine config")
    except ExportError as err:
        raise failed(err.message) from None
    return {
        "dir": ENGINE_DIR,
        "trtllm_version": doc.get("version"),
        "ranks": world_size,
        "bytes": sum(p.stat().st_size for p in engine_dir.glob("rank*.engine")),
    }


def copy_tokenizer(model_dir: Path, dest: Path) -> dict:
    """Copy the tokenizer files into dest, check that they load, and describe them."""
    files = model_files.tokenizer_files(model_dir)
    if not model_files.has_tokenizer(files):
        raise ExportError(f"{model_dir} has no tokenizer (tokenizer.json, tokenizer.model, ...)")
    dest.mkdir(parents=True, exist_ok=True)
    model_files.copy_tokenizer(model_dir, dest)
    return {"dir": TOKENIZER_DIR, **tokenizer_check.check(dest)}


def publish_engine(doc: dict, staging: Path, keep_checkpoint: bool) -> tuple:
    plan = doc["plan"]
    engine = check_engine(staging / ENGINE_DIR, plan["world_size"])
    tokenizer = copy_tokenizer(Path(plan["model_dir"]), staging / TOKENIZER_DIR)
    if not keep_checkpoint:  # intermediates: as large as the engine (calib: a data copy)
        for intermediate in INTERMEDIATE_DIRS:
            shutil.rmtree(staging / intermediate, ignore_errors=True)
    argv = serve_script.engine_argv(plan["trtllm_version"], plan["tp_size"], plan["pp_size"])
    return {"engine": engine, "tokenizer": tokenizer}, argv, None


def publish_pytorch(doc: dict, staging: Path, cfg: BuildConfig) -> tuple:
    plan = doc["plan"]
    model_dir = Path(plan["model_dir"])
    quantized = staging / CHECKPOINT_DIR
    checkpoint = quantized if (quantized / "config.json").is_file() else model_dir
    lora = (plan.get("lora") or {}).get("llm_api_lora_config")
    part = bundle.publish_bundle(
        staging, checkpoint, cfg, plan["trtllm_version"], tokenizer_dir=model_dir, lora_config=lora
    )
    tokenizer = {"dir": CHECKPOINT_DIR, **tokenizer_check.check(staging / CHECKPOINT_DIR)}
    return {"tokenizer": tokenizer}, bundle.serve_argv(), part


def lora_part(plan: dict, staging: Path) -> dict | None:
    """build.json's "lora": the plan's runtime-LoRA part, each adapter with its packaged files."""
    if not plan.get("lora"):
        return None
    packaged = lora_package.read_packaged(staging)
    if packaged is None:
        raise failed(f"the lora step wrote no {staging}/lora/{lora_package.INDEX}")
    by_name = {a["name"]: a for a in packaged["adapters"]}
    adapters = []
    for planned in plan["lora"]["adapters"]:
        got = by_name.get(planned["name"])
        if got is None or got["fingerprint"] != planned["fingerprint"]:
            raise failed(f"lora/{planned['name']} is missing or not the adapter that was planned")
        adapters.append({**planned, "path": got["path"], "files": got["files"]})
    return {**plan["lora"], "adapters": adapters}


def build_manifest(doc: dict, name: str, artifact: dict, serve: dict, stages: list) -> dict:
    plan, facts, inputs = doc["plan"], doc["facts"], doc["inputs"]
    config = doc["config"]
    packages = facts.get("packages") or {}
    gpu_facts = facts.get("gpu") or {}
    return {
        "schema_version": SCHEMA_VERSION,
        "build_id": inputs["build_id"],
        "name": name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": plan["backend"],
        "family": plan.get("family"),
        "hf_architecture": plan.get("hf_architecture"),
        "inputs": {
            "model_dir": inputs["model"]["dir"],
            "model_fingerprint": inputs["model"]["fingerprint"]["sha256"],
            "fingerprint_method": inputs["model"]["fingerprint"]["method"],
            "adapter": inputs.get("adapter"),
            "config_source": config["source"],
            "profile": config["profile"],
            "config_hash": config["config_hash"],
            "config": config["config"],
        },
        "identity": inputs["identity"],
        "environment": environment(plan, facts, packages, gpu_facts),
        "parallel": {
            "tp_size": plan["tp_size"],
            "pp_size": plan["pp_size"],
            "world_size": plan["world_size"],
        },
        "commands": commands(plan, Path(plan["staging"])),
        "stages": stages,
        "estimates": plan.get("estimates"),
        "checks": plan["checks"],
        "artifact": artifact,
        "serve": serve,
        "verification": None,
    }


def environment(plan: dict, facts: dict, packages: dict, gpu_facts: dict) -> dict:
    """What the build ran with; a value taken from the config rather than read off this machine
    is named in `inferred`."""
    cuda, cuda_source = facts.get("cuda_runtime"), facts.get("cuda_runtime_source")
    inferred = []
    if plan["trtllm_version_source"] == "config":
        # no TensorRT-LLM here: the CUDA its release line was built with, not this machine's
        inferred += ["trtllm_version", "cuda_runtime"]
        cuda = (versions.stack_for(plan["trtllm_version"]) or {}).get("cuda")
        cuda_source = "the TensorRT-LLM release line's (target.trtllm_version)"
    if plan["gpu"]["source"] == "config":
        inferred.append("gpu")
    return {
        "trtllm_version": plan["trtllm_version"],
        "trtllm_version_source": plan["trtllm_version_source"],
        "trtllm_installed": packages.get("tensorrt_llm"),
        "tensorrt": packages.get("tensorrt"),
        "torch": packages.get("torch"),
        "transformers": packages.get("transformers"),
        "cuda_runtime": cuda,
        "cuda_runtime_source": cuda_source,
        "cuda_driver": gpu_facts.get("cuda_driver_version"),
        "driver": gpu_facts.get("driver_version"),
        "python": (facts.get("python") or {}).get("version"),
        "gpu": {
            **{k: plan["gpu"][k] for k in ("name", "compute_capability", "source")},
            "detected": [d.get("name") for d in gpu_facts.get("devices") or []],
        },
        "inferred": inferred,
    }


def commands(plan: dict, staging: Path) -> list[dict]:
    out = []
    for step in plan["steps"]:
        stats = artifact_files.step_stats(staging, step["name"])
        out.append(
            {
                "name": step["name"],
                "argv": step["argv"],
                "log": f"logs/{step['name']}.log",
                "exit_code": stats.get("exit_code"),
                "seconds": stats.get("seconds"),
                "peak_rss_kib": stats.get("peak_rss_kib"),
            }
        )
    return out


def publish(args: argparse.Namespace) -> Path:
    doc = manifest.load_json(args.work_dir / "plan.json", "the plan")
    staging: Path = args.staging
    output = Path(doc["output"])
    cfg = BuildConfig.model_validate(doc["config"]["config"])
    if cfg.backend == "pytorch":
        artifact, argv, part = publish_pytorch(doc, staging, cfg)
    else:
        artifact, argv, part = publish_engine(doc, staging, args.keep_checkpoint)
    plan = doc["plan"]
    serve = serve_script.write(staging / "serve.sh", argv, doc["inputs"]["build_id"], plan)
    artifact_files.make_readable(staging)
    artifact["files"] = artifact_files.describe(staging)
    stages = artifact_files.read_stages(args.work_dir / "stages.tsv")
    record = build_manifest(doc, output.name, artifact, serve, stages)
    record["quality"] = quality_report.manifest_entry(staging)  # None: nothing was measured
    if part is not None:  # the bundle's own record (backend pytorch)
        record["bundle"] = part
    record["lora"] = lora_part(plan, staging)
    manifest.write_json_atomic(staging / "build.json", record)
    swap.put_in_place(staging, output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="publish.py", description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, required=True)
    parser.add_argument("--staging", type=Path, required=True)
    parser.add_argument("--keep-checkpoint", action="store_true")
    args = parser.parse_args(argv)
    try:
        output = publish(args)
    except ExportError as err:
        return report(PROG, err)
    except OSError as exc:
        return report(PROG, artifact_files.os_error(exc, args.staging))
    print(output)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Publish stage of build_tensorrt_llm.sh: make the staging dir a complete, self-describing artifact
(tokenizer beside the engine, serve.sh, build.json).

Usage:
  publish.py check --model-dir D
      preflight: the model dir has the tokenizer files the artifact needs (prints them)
  publish.py run --staging D --model-dir D --name NAME --config-json F --facts-json F
                 --plan-json F --inputs-json F [--stages-file F] [--keep-checkpoint]
      backend engine: check the engine layout, copy the tokenizer files, chat template and
      generation config to <staging>/tokenizer/ and load them once with AutoTokenizer, write
      serve.sh, drop the intermediate checkpoint (unless --keep-checkpoint), write build.json
      last. backend pytorch: delegates to bundle.publish_bundle(...) (see docs/internals.md).
      Prints the path of build.json.

The staging dir is renamed into place by the caller only after this exits 0, so build.json is
the last file written into a complete directory. Exit 2: bad input; 1: the build's output is
not what it should be (an engine rank missing, a tokenizer that does not load).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import manifest

SCHEMA_VERSION = 1
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "spiece.model",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "generation_config.json",
)
# Not config.json: with it, AutoTokenizer may pick the model type's tokenizer class over the one
# tokenizer_config.json names (transformers 5), which is not what was trained with.
TOKENIZER_GLOBS = ("*.tiktoken",)
TOKENIZER_DIRS = ("additional_chat_templates",)
# At least one of these: a tokenizer that transformers can load without the network.
TOKENIZER_CORE = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
ENGINE_DIR = "engine"
TOKENIZER_DIR = "tokenizer"
CHECKPOINT_DIR = "checkpoint"
INTERMEDIATE_DIRS = (CHECKPOINT_DIR, "calib")
FIRST_TRTLLM_SERVE = (0, 15)  # trtllm-serve first shipped in 0.15
DEFAULT_BACKEND_FLAG = (1, 0)  # from 1.0 trtllm-serve defaults to the PyTorch backend


class PublishError(Exception):
    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def _version_tuple(version: str | None) -> tuple[int, ...]:
    match = re.match(r"\s*v?(\d+)\.(\d+)", str(version or ""))
    if not match:
        raise PublishError(f"plan has no usable trtllm_version: {version!r}", code=2)
    return int(match.group(1)), int(match.group(2))


# --------------------------------------------------------------------------- tokenizer


def tokenizer_files(model_dir: Path) -> list[Path]:
    """The tokenizer-side files of model_dir that the artifact carries (paths in model_dir)."""
    found = [model_dir / n for n in TOKENIZER_FILES if (model_dir / n).is_file()]
    for pattern in TOKENIZER_GLOBS:
        found.extend(sorted(model_dir.glob(pattern)))
    found.extend(model_dir / d for d in TOKENIZER_DIRS if (model_dir / d).is_dir())
    return found


def check_model(model_dir: Path) -> list[Path]:
    if not (model_dir / "config.json").is_file():
        raise PublishError(f"{model_dir} has no config.json: not a Hugging Face model dir", 2)
    files = tokenizer_files(model_dir)
    if not any(f.name in TOKENIZER_CORE or f.suffix == ".tiktoken" for f in files):
        raise PublishError(
            f"{model_dir} has no tokenizer (tokenizer.json, tokenizer.model, vocab.json, ...): "
            "save the tokenizer with the merged model (merge_lora.py does) so the engine "
            "ships with it",
            code=2,
        )
    return files


def copy_tokenizer(model_dir: Path, dest: Path) -> dict[str, Any]:
    """Copy the tokenizer files into dest, load them once, and describe what was copied."""
    files = check_model(model_dir)
    dest.mkdir(parents=True, exist_ok=True)
    copied: dict[str, str] = {}
    for src in files:
        target = dest / src.name
        if src.is_dir():
            shutil.copytree(src, target, dirs_exist_ok=True)
            continue
        shutil.copy2(src, target)
        copied[src.name] = manifest._sha256_file(target)
    return {"dir": TOKENIZER_DIR, "files": copied, **load_tokenizer(dest)}


def load_tokenizer(tok_dir: Path) -> dict[str, Any]:
    """Load the copied tokenizer as trtllm-serve will (AutoTokenizer, offline) and use it once."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(str(tok_dir), trust_remote_code=False)
        ids = tok.encode("Hello world")
        chat = bool(getattr(tok, "chat_template", None))
        if chat:
            tok.apply_chat_template(
                [{"role": "user", "content": "Hello"}], add_generation_prompt=True, tokenize=True
            )
    except Exception as exc:  # any failure to load is the finding itself
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PublishError(f"the tokenizer copied to {tok_dir} does not load: {first}") from exc
    if not ids:
        raise PublishError(f"the tokenizer in {tok_dir} encodes 'Hello world' to nothing")
    return {
        "class": type(tok).__name__,
        "vocab_size": len(tok),
        "chat_template": chat,
        "eos_token": getattr(tok, "eos_token", None),
        "load_check": "ok",
    }


# --------------------------------------------------------------------------- engine + serve


def check_engine(engine_dir: Path, world_size: int) -> dict[str, Any]:
    config = engine_dir / "config.json"
    if not config.is_file():
        raise PublishError(f"the build wrote no engine config: {config} is missing")
    missing = [r for r in range(world_size) if not (engine_dir / f"rank{r}.engine").is_file()]
    if missing:
        raise PublishError(
            f"the build wrote no engine for rank(s) {', '.join(map(str, missing))} "
            f"of world size {world_size} in {engine_dir}"
        )
    try:
        doc = json.loads(config.read_text())
    except json.JSONDecodeError as exc:
        raise PublishError(f"the engine config {config} is not valid JSON: {exc}") from exc
    return {
        "dir": ENGINE_DIR,
        "trtllm_version": doc.get("version"),
        "ranks": world_size,
        "bytes": sum(p.stat().st_size for p in engine_dir.glob("rank*.engine")),
    }


def serve_command(trtllm_version: str, tp: int, pp: int) -> dict[str, Any]:
    """The launch command (argv relative to the artifact dir) for this version and world size.

    trtllm-serve (0.15+) takes the engine dir and --tokenizer; it starts its own MPI workers
    from --tp_size/--pp_size, which must match the engine's mapping. From 1.0 its default backend
    is PyTorch, so --backend tensorrt is needed for an engine. Before 0.15 there is no
    trtllm-serve: the command is examples/run.py, under `mpirun -n <world size>` when > 1.
    """
    version = _version_tuple(trtllm_version)
    world = tp * pp
    if version >= FIRST_TRTLLM_SERVE:
        argv = ["trtllm-serve", ENGINE_DIR, "--tokenizer", TOKENIZER_DIR]
        if version >= DEFAULT_BACKEND_FLAG:
            argv += ["--backend", "tensorrt"]
        if world > 1:
            argv += ["--tp_size", str(tp), "--pp_size", str(pp)]
        return {"kind": "trtllm-serve", "argv": argv, "world_size": world, "accepts_args": True}
    run_py = "${TRTLLM_EXAMPLES_DIR:?set TRTLLM_EXAMPLES_DIR to TensorRT-LLM examples}/run.py"
    argv = ["python3", run_py, "--engine_dir", ENGINE_DIR, "--tokenizer_dir", TOKENIZER_DIR]
    argv += ["--max_output_len", "64"]
    if world > 1:
        argv = ["mpirun", "-n", str(world), "--allow-run-as-root", *argv]
    return {
        "kind": "run.py",
        "argv": argv,
        "world_size": world,
        "accepts_args": True,
        "note": "TensorRT-LLM before 0.15 has no trtllm-serve: this is a one-shot generation "
        "(pass --input_text '...'); serve over HTTP with Triton's tensorrtllm_backend",
    }


def _shell_word(arg: str) -> str:
    if arg.startswith("${") and arg.endswith("/run.py"):
        return f'"{arg}"'  # expanded by serve.sh on the serving machine, on purpose
    return shlex.quote(arg)


def write_serve_sh(path: Path, serve: dict[str, Any], build_id: str, env: dict[str, Any]) -> None:
    words = " ".join(_shell_word(a) for a in serve["argv"])
    gpu = env.get("gpu") or {}
    note = f"# {serve['note']}\n" if serve.get("note") else ""
    usage = (
        "more trtllm-serve options, e.g. --host 0.0.0.0 --port 8000"
        if serve["kind"] == "trtllm-serve"
        else "more run.py options, e.g. --input_text 'Hello'"
    )
    text = f"""#!/usr/bin/env bash
# Serve this TensorRT-LLM artifact. Written by build_tensorrt_llm.sh (build {build_id[:19]}).
#
# Usage: serve.sh [{usage}]
#
# Runs from its own directory, so the artifact can be copied anywhere as a whole.
# Built for TensorRT-LLM {env.get("trtllm_version")} on {gpu.get("name")} (compute capability
# {gpu.get("compute_capability")}), world size {serve["world_size"]}: build.json has the rest.
{note}set -euo pipefail
cd "$(dirname "${{BASH_SOURCE[0]}}")"
exec {words} "$@"
"""
    path.write_text(text)
    path.chmod(0o755)


# --------------------------------------------------------------------------- manifest


def read_stages(path: Path | None) -> list[dict[str, Any]]:
    """Stage lines written by the Bash side: NAME<TAB>SECONDS<TAB>STATUS."""
    if path is None or not path.is_file():
        return []
    stages = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            try:
                seconds = float(parts[1])
            except ValueError:
                seconds = None
            stages.append({"name": parts[0], "seconds": seconds, "status": parts[2]})
    return stages


def read_step_stats(logs_dir: Path, step: str) -> dict[str, Any]:
    path = logs_dir / f"{step}.stats.json"
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def build_manifest(
    *,
    name: str,
    staging: Path,
    config_doc: dict[str, Any],
    facts: dict[str, Any],
    plan: dict[str, Any],
    inputs: dict[str, Any],
    stages: list[dict[str, Any]],
    artifact: dict[str, Any],
    serve: dict[str, Any],
) -> dict[str, Any]:
    config = config_doc.get("config", {})
    packages = facts.get("packages") or {}
    gpu_facts = facts.get("gpu") or {}
    plan_gpu = plan.get("gpu") or {}
    commands = []
    for step in plan.get("steps", []):
        stats = read_step_stats(staging / "logs", step.get("name", ""))
        commands.append(
            {
                "name": step.get("name"),
                "argv": step.get("argv"),
                "log": f"logs/{step.get('name')}.log",
                "exit_code": stats.get("exit_code"),
                "seconds": stats.get("seconds"),
                "peak_rss_kib": stats.get("peak_rss_kib"),
            }
        )
    return {
        "schema_version": SCHEMA_VERSION,
        "build_id": inputs["build_id"],
        "name": name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "backend": plan.get("backend") or config.get("backend", "engine"),
        "family": plan.get("family"),
        "hf_architecture": plan.get("hf_architecture"),
        "inputs": {
            "model_dir": inputs["model"]["dir"],
            "model_fingerprint": inputs["model"]["fingerprint"]["sha256"],
            "fingerprint_method": inputs["model"]["fingerprint"]["method"],
            "adapter": inputs.get("adapter"),
            "config_source": config_doc.get("source"),
            "profile": config_doc.get("profile"),
            "config_hash": inputs["identity"]["config_hash"],
            "config": config,
        },
        "identity": inputs["identity"],
        "environment": {
            "trtllm_version": plan.get("trtllm_version"),
            "trtllm_version_source": plan.get("trtllm_version_source"),
            "trtllm_installed": packages.get("tensorrt_llm"),
            "tensorrt": packages.get("tensorrt"),
            "torch": packages.get("torch"),
            "transformers": packages.get("transformers"),
            "cuda_runtime": facts.get("cuda_runtime"),
            "cuda_driver": gpu_facts.get("cuda_driver_version"),
            "driver": gpu_facts.get("driver_version"),
            "python": (facts.get("python") or {}).get("version"),
            "gpu": {
                "name": plan_gpu.get("name"),
                "compute_capability": plan_gpu.get("compute_capability"),
                "source": plan_gpu.get("source"),
                "detected": [d.get("name") for d in gpu_facts.get("devices") or []],
            },
        },
        "parallel": {
            "tp_size": (config.get("parallel") or {}).get("tp_size", 1),
            "pp_size": (config.get("parallel") or {}).get("pp_size", 1),
            "world_size": plan.get("world_size", 1),
        },
        "commands": commands,
        "stages": stages,
        "estimates": plan.get("estimates"),
        "checks": plan.get("checks"),
        "artifact": artifact,
        "serve": {**serve, "cwd": "artifact dir", "script": "serve.sh"},
        "verification": None,
    }


def load_inputs(args: argparse.Namespace) -> tuple[dict, dict, dict, dict]:
    """The resolved config, facts, plan and build inputs the build script wrote."""
    return (
        manifest._load_json(args.config_json, "resolved config"),
        manifest._load_json(args.facts_json, "facts"),
        manifest._load_json(args.plan_json, "plan"),
        manifest._load_json(args.inputs_json, "build inputs"),
    )


def write_manifest(args, config_doc, facts, plan, inputs, artifact, serve, **extra) -> Path:
    """build.json in the staging dir, written last (atomically): its presence means complete."""
    doc = build_manifest(
        name=args.name,
        staging=args.staging,
        config_doc=config_doc,
        facts=facts,
        plan=plan,
        inputs=inputs,
        stages=read_stages(args.stages_file),
        artifact=artifact,
        serve=serve,
    )
    doc.update(extra)
    out = args.staging / "build.json"
    manifest.write_json_atomic(out, doc)
    return out


def publish_engine(args: argparse.Namespace) -> Path:
    config_doc, facts, plan, inputs = load_inputs(args)
    staging: Path = args.staging
    parallel = config_doc.get("config", {}).get("parallel") or {}
    tp, pp = int(parallel.get("tp_size", 1)), int(parallel.get("pp_size", 1))
    world = int(plan.get("world_size", tp * pp))

    engine = check_engine(staging / ENGINE_DIR, world)
    tokenizer = copy_tokenizer(args.model_dir, staging / TOKENIZER_DIR)
    serve = serve_command(plan.get("trtllm_version"), tp, pp)
    env = {"trtllm_version": plan.get("trtllm_version"), "gpu": plan.get("gpu")}
    write_serve_sh(staging / "serve.sh", serve, inputs["build_id"], env)
    if not args.keep_checkpoint:  # intermediates: as large as the engine (calib: a data copy)
        for intermediate in INTERMEDIATE_DIRS:
            shutil.rmtree(staging / intermediate, ignore_errors=True)
    files = {
        p.relative_to(staging).as_posix(): p.stat().st_size
        for p in sorted(staging.rglob("*"))
        if p.is_file() and p.name != "build.json"
    }
    artifact = {"engine": engine, "tokenizer": tokenizer, "files": files}
    return write_manifest(args, config_doc, facts, plan, inputs, artifact, serve)


def publish_pytorch(args: argparse.Namespace) -> Path:
    """Backend pytorch: bundle.publish_bundle lays out checkpoint/, options and serve.sh; the
    manifest is written here, as for an engine, with the bundle's own record under "bundle"."""
    try:
        import bundle
    except ImportError as exc:
        raise PublishError(
            f"backend pytorch needs scripts/export/lib/bundle.py, which does not import: {exc}"
        ) from exc
    config_doc, facts, plan, inputs = load_inputs(args)
    staging: Path = args.staging
    quantized = staging / CHECKPOINT_DIR
    checkpoint = quantized if (quantized / "config.json").is_file() else args.model_dir
    check_model(args.model_dir)
    try:
        part = bundle.publish_bundle(
            staging,
            checkpoint,
            config_doc.get("config", {}),
            str(plan.get("trtllm_version")),
            tokenizer_dir=args.model_dir,
        )
    except bundle.BundleError as exc:
        raise PublishError(str(exc), code=getattr(exc, "code", 2)) from exc
    tokenizer = load_tokenizer(staging / CHECKPOINT_DIR)
    serve = {
        "kind": "trtllm-serve",
        "argv": part.get("serve_command"),
        "world_size": part.get("world_size", plan.get("world_size", 1)),
        "accepts_args": True,
    }
    artifact = {"bundle": part, "tokenizer": tokenizer}
    return write_manifest(args, config_doc, facts, plan, inputs, artifact, serve, bundle=part)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="publish stage of build_tensorrt_llm.sh")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_check = sub.add_parser("check", help="check the model dir carries a tokenizer")
    p_check.add_argument("--model-dir", type=Path, required=True)
    p_run = sub.add_parser("run", help="complete the staging dir")
    for flag in ("--staging", "--model-dir", "--config-json", "--facts-json", "--plan-json"):
        p_run.add_argument(flag, type=Path, required=True)
    p_run.add_argument("--inputs-json", type=Path, required=True)
    p_run.add_argument("--name", required=True)
    p_run.add_argument("--stages-file", type=Path, default=None)
    p_run.add_argument("--keep-checkpoint", action="store_true")
    args = parser.parse_args(argv)

    try:
        if args.cmd == "check":
            for path in check_model(args.model_dir):
                print(path.name)
            return 0
        plan = manifest._load_json(args.plan_json, "plan")
        config = manifest._load_json(args.config_json, "resolved config").get("config", {})
        backend = plan.get("backend") or config.get("backend", "engine")
        out = publish_pytorch(args) if backend == "pytorch" else publish_engine(args)
        print(out)
    except (PublishError, manifest.ManifestError) as exc:
        print(f"publish: error: {exc}", file=sys.stderr)
        return exc.code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

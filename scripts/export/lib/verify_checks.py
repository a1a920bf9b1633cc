"""Checks of a built artifact (its build.json) against the machine that will serve it.

Library for verify.py: machine_checks(artifact, doc, facts, *, full=False) -> list[check]
  artifact        every file build.json lists is there with its size (and, with full=True,
                  its sha256); a build.json without a file list falls back to the files the
                  backend needs, with a warning
  trtllm_version  installed TensorRT-LLM vs the manifest (engines: exact; pytorch: same line,
                  and the options YAML valid for the installed version's LLM-API record)
  tensorrt        installed TensorRT vs the manifest (engines only)
  gpu_arch        this GPU's compute capability (engines: the one built for; pytorch: what the
                  checkpoint's quantization needs)
  gpu_count       visible GPUs >= tp*pp
  driver          the CUDA this driver supports vs the build's CUDA runtime
A fact the manifest says was inferred (not detected at build time) is named in the message.
"""

from __future__ import annotations

from pathlib import Path

import artifact_files
import manifest
import versions
from errors import Check, ExportError, check

REBUILD = "rebuild it (make engine ... FORCE=1)"


def _inferred(doc: dict, fact: str) -> str:
    inferred = (doc.get("environment") or {}).get("inferred") or []
    return " (inferred from the config at build time, not detected)" if fact in inferred else ""


def _devices(facts: dict) -> list[dict]:
    return list((facts.get("gpu") or {}).get("devices") or [])


def _required(doc: dict) -> list[str]:
    world = int((doc.get("parallel") or {}).get("world_size", 1))
    if doc.get("backend") == "pytorch":
        return ["checkpoint/config.json", "llm_api_options.yaml", "serve.sh"]
    return ["engine/config.json", *(f"engine/rank{r}.engine" for r in range(world))]


def check_artifact(artifact: Path, doc: dict, full: bool) -> Check:
    files = (doc.get("artifact") or {}).get("files")
    if not isinstance(files, dict):
        missing = [n for n in _required(doc) if not (artifact / n).is_file()]
        if missing:
            return check("artifact", "fail", f"missing: {', '.join(missing)}", REBUILD)
        return check(
            "artifact",
            "warn",
            "build.json lists no files (an older build): only the required files were checked",
            REBUILD + " to record sizes and hashes",
        )
    missing, changed = artifact_files.damage(artifact, files, full=full)
    how = "size and sha256" if full else "size and sampled content; --full hashes every byte"
    if missing or changed:
        found = (("missing", missing), ("changed", changed))
        listed = "; ".join(f"{what}: {', '.join(names[:5])}" for what, names in found if names)
        return check("artifact", "fail", f"{len(missing) + len(changed)} file(s) {listed}", REBUILD)
    return check("artifact", "pass", f"all {len(files)} files of build.json are there ({how})")


def check_trtllm(doc: dict, facts: dict, artifact: Path) -> Check:
    built = (doc.get("environment") or {}).get("trtllm_version")
    have = (facts.get("packages") or {}).get("tensorrt_llm")
    note = _inferred(doc, "trtllm_version")
    if not have:
        return check(
            "trtllm_version",
            "fail",
            f"TensorRT-LLM is not installed here (built for {built}{note})",
            f"run inside the TensorRT-LLM {built} release container",
        )
    if doc.get("backend") == "pytorch":
        if not versions.same_line(have, built):
            return check(
                "trtllm_version",
                "fail",
                f"installed {have}, bundle made for the {built} line{note}",
                f"use TensorRT-LLM {versions.release_line(built)}.x or rebuild the bundle",
            )
        problems = _options_problems(artifact, have)
        if problems:
            return check(
                "trtllm_version",
                "fail",
                f"llm_api_options.yaml for {have}: {problems[0]}",
                "rebuild the bundle",
            )
        status = "pass" if have == built else "warn"
        return check("trtllm_version", status, f"installed {have}, bundle made for {built}{note}")
    if have != built:
        return check(
            "trtllm_version",
            "fail",
            f"installed {have}, engine built with {built}{note} (engines load only in the "
            "version that built them)",
            f"run inside the TensorRT-LLM {built} container or rebuild",
        )
    return check("trtllm_version", "pass", f"installed {have} = built {built}")


def _options_problems(artifact: Path, version: str) -> list[str]:
    import llm_api_options
    import yaml

    try:
        text = (artifact / "llm_api_options.yaml").read_text(encoding="utf-8")
        options = yaml.safe_load(text) or {}
        return llm_api_options.check_options(options, llm_api_options.load_record(version))
    except (OSError, UnicodeDecodeError, yaml.YAMLError, ExportError) as exc:
        return [str(exc)]


def check_tensorrt(doc: dict, facts: dict) -> Check:
    built = (doc.get("environment") or {}).get("tensorrt")
    have = (facts.get("packages") or {}).get("tensorrt")
    if not have:
        return check(
            "tensorrt",
            "fail",
            f"TensorRT is not installed here (engine built with {built})",
            "use the matching release container",
        )
    if not built:
        return check("tensorrt", "skip", f"build.json records no TensorRT version ({have} here)")
    h, b = versions.parse(have), versions.parse(built)
    if h is None or b is None or h.release[:3] != b.release[:3]:
        return check(
            "tensorrt",
            "fail",
            f"installed TensorRT {have}, engine built with {built}",
            "use the container the engine was built in",
        )
    return check("tensorrt", "pass", f"installed TensorRT {have} = built {built}")


def check_gpu_arch(doc: dict, facts: dict) -> Check:
    gpu = facts.get("gpu") or {}
    devices = _devices(facts)
    if gpu.get("status") == "error":
        return check("gpu_arch", "skip", gpu.get("detail") or "nvidia-smi failed")
    if not devices:
        return check(
            "gpu_arch",
            "fail",
            f"no NVIDIA GPU visible ({gpu.get('detail') or 'nvidia-smi lists none'})",
            "run on the serving GPU machine",
        )
    ccs = sorted({str(d.get("compute_capability")) for d in devices})
    here = f"{devices[0]['name']} (SM {devices[0]['compute_capability']})"
    if doc.get("backend") == "pytorch":
        mode = manifest.quant_mode(doc) or "none"
        need = versions.min_cc(mode)
        if need and not all(versions.cc_at_least(cc, need) for cc in ccs):
            return check(
                "gpu_arch",
                "fail",
                f"a {mode} checkpoint needs SM {need}+, this machine has SM {', '.join(ccs)}",
                "serve on a newer GPU or rebuild with quantization.mode: none",
            )
        what = "an unquantized" if mode == "none" else f"a {mode}"
        return check("gpu_arch", "pass", f"{here}: runs {what} checkpoint")
    built = ((doc.get("environment") or {}).get("gpu") or {}).get("compute_capability")
    note = _inferred(doc, "gpu")
    if not built:
        return check("gpu_arch", "skip", "build.json records no target compute capability")
    if ccs != [built]:
        return check(
            "gpu_arch",
            "fail",
            f"engine built for SM {built}{note}, this machine has SM {', '.join(ccs)}",
            "rebuild on (or for) this GPU: engines are tied to the compute capability",
        )
    return check("gpu_arch", "pass", f"{here} = built for SM {built}{note}")


def check_gpu_count(doc: dict, facts: dict) -> Check:
    world = int((doc.get("parallel") or {}).get("world_size", 1))
    devices = _devices(facts)
    if (facts.get("gpu") or {}).get("status") == "error":
        return check("gpu_count", "skip", "nvidia-smi failed; GPU count unknown")
    if len(devices) < world:
        return check(
            "gpu_count",
            "fail",
            f"world size {world} needs {world} GPUs, {len(devices)} visible",
            "serve on a machine with enough GPUs, or rebuild with smaller parallel.tp_size/pp_size",
        )
    return check("gpu_count", "pass", f"{len(devices)} GPU(s) visible for world size {world}")


def check_driver(doc: dict, facts: dict) -> Check:
    env = doc.get("environment") or {}
    gpu = facts.get("gpu") or {}
    runtime, supported = env.get("cuda_runtime"), gpu.get("cuda_driver_version")
    note = _inferred(doc, "cuda_runtime")
    if not supported:
        return check("driver", "skip", "this machine's driver reports no CUDA version")
    if not runtime:
        return check("driver", "skip", "build.json records no CUDA runtime")
    if versions.parse(supported) < versions.parse(runtime):
        return check(
            "driver",
            "fail",
            f"driver supports CUDA {supported}, the build used CUDA {runtime}{note}",
            "upgrade the NVIDIA driver",
        )
    return check("driver", "pass", f"driver supports CUDA {supported} >= {runtime}{note}")


def machine_checks(artifact: Path, doc: dict, facts: dict, *, full: bool = False) -> list[Check]:
    checks = [check_artifact(artifact, doc, full), check_trtllm(doc, facts, artifact)]
    if doc.get("backend") != "pytorch":  # the PyTorch backend does not use TensorRT
        checks.append(check_tensorrt(doc, facts))
    checks += [check_gpu_arch(doc, facts), check_gpu_count(doc, facts), check_driver(doc, facts)]
    return checks

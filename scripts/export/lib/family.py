"""Model family detection: Hugging Face config.json -> TensorRT-LLM convert script and dialect.

Library:
  detect(model_config: dict, trtllm_version: str) -> Family   (raises ExportError, code 2)
  inspect_dir(path) -> "hf" | "trtllm_checkpoint" | "trtllm_engine" | "missing" | "unknown"
  require_hf_dir(path) -> dict  (the config.json; ExportError naming what the dir is otherwise)
  require_trtllm_checkpoint(path) -> dict
  supported(trtllm_version) -> list[str]  (the Hugging Face architectures that version converts)

Data: data/families.json (facts from TensorRT-LLM's sources, per family and version).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from errors import ExportError
from versions import at_least

DATA_DIR = Path(__file__).resolve().parent / "data"
ENGINE_MIN = "0.12.0"


@dataclass
class Family:
    name: str  # key in families.json: llama, qwen, gemma, ...
    hf_architecture: str
    model_type: str
    script: str  # convert script path relative to TensorRT-LLM's examples dir
    dialect: str  # "standard" or "gemma" (dash-style flags, --ckpt-type hf)
    pipeline_parallel: bool
    pipeline_parallel_why: str
    weight_only: list[str]
    smoothquant: bool
    int8_kv_cache: bool
    calib_dataset_flag: bool
    variant_args: list[str] = field(default_factory=list)  # e.g. ["--gpt_variant", "starcoder2"]
    notes: list[str] = field(default_factory=list)
    recorded: bool = True  # False: no recorded CLI for this family's script

    def to_dict(self) -> dict:
        return asdict(self)


_DATA: dict | None = None


def load_data() -> dict:
    global _DATA
    if _DATA is None:
        _DATA = json.loads((DATA_DIR / "families.json").read_text(encoding="utf-8"))
    return _DATA


def script_path(family: dict, trtllm_version: str) -> str:
    data = load_data()
    new = at_least(trtllm_version, data["examples_move_version"])
    return f"{family['script']['new' if new else 'old']}/convert_checkpoint.py"


def _min_version(name: str, family: dict, architecture: str) -> tuple[str, str]:
    arch_min = load_data()["architecture_min_version"].get(architecture)
    fam_min = family.get("min_version", ENGINE_MIN)
    if arch_min and not at_least(fam_min, arch_min["version"]):
        return arch_min["version"], arch_min["why"]
    return fam_min, f"{name} convert script first ships in {fam_min}"


def supported(trtllm_version: str) -> list[str]:
    """Hugging Face architectures the engine path converts at this TensorRT-LLM version."""
    out = []
    for name, fam in load_data()["families"].items():
        for arch in fam["architectures"]:
            if at_least(trtllm_version, _min_version(name, fam, arch)[0]):
                out.append(arch)
    return sorted(out)


def _lookup(model_config: dict) -> tuple[str, dict, str] | None:
    archs = model_config.get("architectures") or []
    model_type = str(model_config.get("model_type") or "")
    families = load_data()["families"]
    for arch in archs:
        for name, fam in families.items():
            if arch in fam["architectures"]:
                return name, fam, arch
    for name, fam in families.items():
        if model_type and model_type in fam["model_types"]:
            return name, fam, archs[0] if archs else fam["architectures"][0]
    return None


def _gpt_variant(model_config: dict, fam: dict) -> list[str]:
    model_type = model_config.get("model_type")
    variant = fam["variants_by_model_type"].get(model_type)
    if variant is None:
        raise ExportError(f"gpt family: no --gpt_variant for model_type {model_type!r}")
    return ["--gpt_variant", variant]


def _glm_version(model_config: dict) -> tuple[list[str], list[str]]:
    vocab = int(model_config.get("padded_vocab_size") or model_config.get("vocab_size") or 0)
    name = str(model_config.get("_name_or_path", "")).lower()
    if vocab >= 151552 or "glm-4" in name or "glm4" in name:
        return ["--chatglm_version", "glm4"], []
    if "chatglm2" in name:
        return ["--chatglm_version", "chatglm2"], []
    note = "chatglm version guessed as chatglm3 (config.json does not say; chatglm2 looks the same)"
    return ["--chatglm_version", "chatglm3"], [note]


def _baichuan_version(model_config: dict) -> list[str]:
    gen = "v2" if int(model_config.get("vocab_size") or 0) >= 125696 else "v1"
    hidden = int(model_config.get("hidden_size") or 0)
    size = {4096: "7b", 5120: "13b"}.get(hidden)
    if size is None:
        raise ExportError(f"baichuan: hidden_size {hidden} is neither 7B (4096) nor 13B (5120)")
    return ["--model_version", f"{gen}_{size}"]


def unsupported(model_config: dict, trtllm_version: str) -> ExportError:
    """The error for an architecture the engine path does not convert, naming the nearest
    supported ones (not all of them)."""
    archs = model_config.get("architectures") or []
    shown = archs[0] if archs else f"model_type {model_config.get('model_type') or '?'}"
    known = supported(trtllm_version)
    near = difflib.get_close_matches(str(archs[0]) if archs else "", known, n=3, cutoff=0.5)
    hint = f"nearest supported: {', '.join(near)}" if near else f"{len(known)} architectures"
    return ExportError(
        f"{shown} is not converted by the TensorRT engine path of TensorRT-LLM {trtllm_version} "
        f"({hint})",
        id="unsupported_family",
        key="backend",
        fix="backend: pytorch serves any architecture transformers loads (TensorRT-LLM 1.0+)",
    )


def detect(model_config: dict, trtllm_version: str) -> Family:
    """The family of a Hugging Face config.json for the engine path of this TensorRT-LLM version."""
    if "architecture" in model_config and "mapping" in model_config:
        raise ExportError(
            "this is a TensorRT-LLM checkpoint config (architecture + mapping), not a Hugging Face "
            "config.json: pass the merged Hugging Face model dir",
            id="wrong_input_dir",
        )
    found = _lookup(model_config)
    if found is None:
        raise unsupported(model_config, trtllm_version)
    name, fam, arch = found
    min_version, why = _min_version(name, fam, arch)
    if not at_least(trtllm_version, min_version):
        raise ExportError(
            f"{arch} needs TensorRT-LLM >= {min_version} ({why}); planned for {trtllm_version}",
            id="unsupported_family",
            key="target.trtllm_version",
            fix=f"target.trtllm_version {min_version} or newer, or backend: pytorch",
        )
    notes: list[str] = []
    variant: list[str] = []
    if name == "gpt":
        variant = _gpt_variant(model_config, fam)
    elif name == "glm":
        variant, notes = _glm_version(model_config)
    elif name == "baichuan":
        variant = _baichuan_version(model_config)
    if fam.get("unrecorded"):
        notes.append(fam["unrecorded"])
    if fam.get("unverified"):
        notes.append(fam["unverified"])
    return Family(
        name=name,
        hf_architecture=arch,
        model_type=str(model_config.get("model_type") or ""),
        script=script_path(fam, trtllm_version),
        dialect=fam["dialect"],
        pipeline_parallel=fam["pipeline_parallel"],
        pipeline_parallel_why=fam.get("pipeline_parallel_why", ""),
        weight_only=list(fam["weight_only"]),
        smoothquant=fam["smoothquant"],
        int8_kv_cache=fam["int8_kv_cache"],
        calib_dataset_flag=fam["calib_dataset_flag"],
        variant_args=variant,
        notes=notes,
        recorded=not fam.get("unrecorded"),
    )


def inspect_dir(path: str | Path) -> str:
    """What a directory holds, from its file names and config.json keys alone."""
    return _inspect(path)[0]


def _inspect(path: str | Path) -> tuple[str, dict | None]:
    """(inspect_dir's kind, the parsed config.json when there is one)."""
    path = Path(path)
    if not path.is_dir():
        return "missing", None
    if any(path.glob("rank*.engine")):
        return "trtllm_engine", None
    config_file = path / "config.json"
    if not config_file.is_file():
        return "unknown", None
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown", None
    if not isinstance(config, dict):
        return "unknown", None
    if "architecture" in config and "mapping" in config:
        return "trtllm_checkpoint", config
    if "architectures" in config or "model_type" in config:
        return "hf", config
    return "unknown", config


_KIND_WORDS = {
    "trtllm_engine": "a TensorRT-LLM engine dir (rank*.engine)",
    "trtllm_checkpoint": "a TensorRT-LLM checkpoint (config.json with architecture + mapping)",
    "hf": "a Hugging Face model dir",
    "missing": "missing",
    "unknown": "neither a Hugging Face model nor a TensorRT-LLM checkpoint (no usable config.json)",
}


def _require(path: str | Path, kind: str, expected: str) -> dict:
    found, config = _inspect(path)
    if found != kind or config is None:
        raise ExportError(
            f"{path}: {_KIND_WORDS[found]}, where {expected} is expected", id="wrong_input_dir"
        )
    return config


def require_hf_dir(path: str | Path) -> dict:
    return _require(path, "hf", "a Hugging Face model dir")


def require_trtllm_checkpoint(path: str | Path) -> dict:
    return _require(path, "trtllm_checkpoint", "a TensorRT-LLM checkpoint")

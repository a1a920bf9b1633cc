#!/usr/bin/env python3
"""Model family detection: Hugging Face config.json -> TensorRT-LLM convert script and dialect.

Usage:
  family.py --model-dir DIR --trtllm-version V     prints the family as JSON

Library:
  detect(model_config: dict, trtllm_version: str) -> Family   (raises FamilyError, code 2)
  inspect_dir(path) -> "hf" | "trtllm_checkpoint" | "trtllm_engine" | "missing" | "unknown"
  require_hf_dir(path) -> dict  (the config.json; FamilyError naming what the dir is otherwise)
  require_trtllm_checkpoint(path) -> dict
  supported(trtllm_version) -> list[str]  (the Hugging Face architectures that version converts)

Data: data/families.json (facts from TensorRT-LLM's sources, per family and version).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"
SCHEMA_VERSION = 1
ENGINE_MIN = "0.12.0"


class FamilyError(Exception):
    """Unsupported model, version or input dir; `code` is the exit code (2: bad input)."""

    def __init__(self, message: str, code: int = 2, error_id: str = "unsupported_family"):
        super().__init__(message)
        self.code = code
        self.id = error_id


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


def version_key(version: str) -> tuple[int, ...]:
    """'1.2.0rc1' -> (1, 2, 0, -1); pre-releases sort before the release."""
    text = str(version).strip().lstrip("v")
    match = re.match(r"(\d+(?:\.\d+)*)(.*)", text)
    if not match:
        raise FamilyError(f"not a TensorRT-LLM version: {version!r}", error_id="bad_version")
    parts = [int(p) for p in match.group(1).split(".")]
    parts += [0] * (3 - len(parts))
    rest = match.group(2)
    pre = re.match(r"\.?(rc|a|b|dev)(\d*)", rest)
    parts.append(-1000 + int(pre.group(2) or 0) if pre else 0)
    return tuple(parts)


_DATA: dict | None = None


def load_data() -> dict:
    global _DATA
    if _DATA is None:
        _DATA = json.loads((DATA_DIR / "families.json").read_text(encoding="utf-8"))
    return _DATA


def script_path(family: dict, trtllm_version: str) -> str:
    data = load_data()
    new = version_key(trtllm_version) >= version_key(data["examples_move_version"])
    return f"{family['script']['new' if new else 'old']}/convert_checkpoint.py"


def _min_version(name: str, family: dict, architecture: str) -> tuple[str, str]:
    arch_min = load_data()["architecture_min_version"].get(architecture)
    fam_min = family.get("min_version", ENGINE_MIN)
    if arch_min and version_key(arch_min["version"]) > version_key(fam_min):
        return arch_min["version"], arch_min["why"]
    return fam_min, f"{name} convert script first ships in {fam_min}"


def supported(trtllm_version: str) -> list[str]:
    """Hugging Face architectures the engine path converts at this TensorRT-LLM version."""
    out = []
    for name, fam in load_data()["families"].items():
        for arch in fam["architectures"]:
            if version_key(_min_version(name, fam, arch)[0]) <= version_key(trtllm_version):
                out.append(arch)
    return sorted(out)


def _lookup(model_config: dict) -> tuple[str, dict, str]:
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
    shown = archs[0] if archs else f"model_type {model_type or '?'}"
    raise FamilyError(f"unsupported architecture {shown}")


def _gpt_variant(model_config: dict, fam: dict) -> list[str]:
    model_type = model_config.get("model_type")
    variant = fam["variants_by_model_type"].get(model_type)
    if variant is None:
        raise FamilyError(f"gpt family: no --gpt_variant for model_type {model_type!r}")
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
        raise FamilyError(f"baichuan: hidden_size {hidden} is neither 7B (4096) nor 13B (5120)")
    return ["--model_version", f"{gen}_{size}"]


def detect(model_config: dict, trtllm_version: str) -> Family:
    """The family of a Hugging Face config.json for the engine path of this TensorRT-LLM version."""
    if "architecture" in model_config and "mapping" in model_config:
        raise FamilyError(
            "this is a TensorRT-LLM checkpoint config (architecture + mapping), not a Hugging Face "
            "config.json: pass the merged Hugging Face model dir",
            error_id="wrong_input_dir",
        )
    try:
        name, fam, arch = _lookup(model_config)
    except FamilyError as err:
        raise FamilyError(
            f"{err} is not supported by the TensorRT engine path of TensorRT-LLM {trtllm_version}; "
            f"supported: {', '.join(supported(trtllm_version))}"
        ) from None
    min_version, why = _min_version(name, fam, arch)
    if version_key(trtllm_version) < version_key(min_version):
        raise FamilyError(
            f"{arch} needs TensorRT-LLM >= {min_version} ({why}); planned for {trtllm_version}. "
            f"Supported at {trtllm_version}: {', '.join(supported(trtllm_version))}"
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
    path = Path(path)
    if not path.is_dir():
        return "missing"
    if any(path.glob("rank*.engine")):
        return "trtllm_engine"
    config_file = path / "config.json"
    if not config_file.is_file():
        return "unknown"
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown"
    if not isinstance(config, dict):
        return "unknown"
    if "architecture" in config and "mapping" in config:
        return "trtllm_checkpoint"
    if "architectures" in config or "model_type" in config:
        return "hf"
    return "unknown"


_KIND_WORDS = {
    "trtllm_engine": "a TensorRT-LLM engine dir (rank*.engine)",
    "trtllm_checkpoint": "a TensorRT-LLM checkpoint (config.json with architecture + mapping)",
    "hf": "a Hugging Face model dir",
    "missing": "missing",
    "unknown": "neither a Hugging Face model nor a TensorRT-LLM checkpoint (no usable config.json)",
}


def require_hf_dir(path: str | Path) -> dict:
    kind = inspect_dir(path)
    if kind != "hf":
        raise FamilyError(
            f"{path}: {_KIND_WORDS[kind]}, where a Hugging Face model dir is expected",
            error_id="wrong_input_dir",
        )
    return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))


def require_trtllm_checkpoint(path: str | Path) -> dict:
    kind = inspect_dir(path)
    if kind != "trtllm_checkpoint":
        raise FamilyError(
            f"{path}: {_KIND_WORDS[kind]}, where a TensorRT-LLM checkpoint is expected",
            error_id="wrong_input_dir",
        )
    return json.loads((Path(path) / "config.json").read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="family.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--trtllm-version", required=True)
    args = parser.parse_args(argv)
    try:
        fam = detect(require_hf_dir(args.model_dir), args.trtllm_version)
    except FamilyError as err:
        print(f"family.py: {err}", file=sys.stderr)
        return err.code
    print(json.dumps({"schema_version": SCHEMA_VERSION, **fam.to_dict()}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

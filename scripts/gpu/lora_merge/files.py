"""Everything in the merged directory besides the weights: config, generation config,
tokenizer (the adapter's trained one when it has it), and merge_info.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from model_files import TOKENIZER_FILES

from lora_merge.errors import bad_input

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt", ".h5", ".msgpack")
SKIP = {
    "config.json",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "merge_info.json",
    "adapter_config.json",
    "adapter_model.safetensors",
    "README.md",
}
MAX_EXTRA_FILE = 50 * 2**20
TORCH_DTYPE_NAMES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32"}


def merged_config(config: dict, changes: dict, dtype: str | None) -> dict:
    """The base config with the plan's changes ("a.b" paths) and the output dtype applied."""
    out = json.loads(json.dumps(config))
    for path, value in changes.items():
        node = out
        *parents, leaf = path.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = value
    if dtype:
        name = TORCH_DTYPE_NAMES[dtype]
        for node in [out] + [out[k] for k in ("text_config",) if isinstance(out.get(k), dict)]:
            keys = [k for k in ("dtype", "torch_dtype") if k in node] or (
                ["torch_dtype"] if node is out else []
            )
            for k in keys:
                node[k] = name
    return out


def tokenizer_source(adapters: list[Path], base: Path) -> Path:
    """The last adapter dir that saved a tokenizer (the trained one), else the base."""
    for path in reversed(adapters):
        if (path / "tokenizer_config.json").is_file() or (path / "tokenizer.json").is_file():
            return path
    return base


def tokenizer_size(src: Path) -> int | None:
    """Highest token id + 1 in tokenizer.json (None when there is no tokenizer.json)."""
    path = src / "tokenizer.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise bad_input("corrupt_tokenizer", f"{path}: {err}") from err
    vocab = (data.get("model") or {}).get("vocab") or {}
    ids = list(vocab.values()) if isinstance(vocab, dict) else list(range(len(vocab)))
    ids += [t.get("id", 0) for t in data.get("added_tokens") or []]
    return max(ids) + 1 if ids else 0


def copy_side_files(base: Path, tok_src: Path, out: Path) -> list[str]:
    """Small non-weight files of the base, then the tokenizer files of tok_src over them."""
    copied = []
    for f in sorted(base.iterdir()):
        if (
            not f.is_file()
            or f.name in SKIP
            or f.name.endswith(WEIGHT_SUFFIXES)
            or f.name.startswith(".")
            or f.stat().st_size > MAX_EXTRA_FILE
        ):
            continue
        if tok_src != base and f.name in TOKENIZER_FILES:
            continue
        shutil.copyfile(f, out / f.name)
        copied.append(f.name)
    if tok_src != base:
        for name in TOKENIZER_FILES:
            if (tok_src / name).is_file():
                shutil.copyfile(tok_src / name, out / name)
                copied.append(name)
    return sorted(set(copied))


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def versions() -> dict:
    from importlib import metadata

    out = {}
    for pkg in ("numpy", "torch", "safetensors", "transformers", "peft"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = None
    return out

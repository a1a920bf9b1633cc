"""What a Hugging Face model dir holds besides its config: the tokenizer files and the safetensors
headers. One home for both lists and for the header reader, shared with the merge
(scripts/gpu/lora_merge) and every export stage.

Library:
  tokenizer_files(model_dir) -> list[Path]     the tokenizer-side files an artifact carries
  has_tokenizer(files) -> bool                 one of them is a tokenizer transformers can load
  header_bytes(fh, size) -> bytes | None       the raw JSON header of an open safetensors file
  read_header(path) -> dict                    the parsed header (name -> dtype, shape, offsets)
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import BinaryIO

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
)
# generation_config.json travels with the tokenizer: trtllm-serve reads its stop tokens there.
# Not config.json: with it, AutoTokenizer may pick the model type's tokenizer class over the one
# tokenizer_config.json names (transformers 5), which is not what was trained with.
SERVING_FILES = (*TOKENIZER_FILES, "generation_config.json")
TOKENIZER_GLOBS = ("*.tiktoken",)
TOKENIZER_DIRS = ("additional_chat_templates",)
# At least one of these: a tokenizer that transformers can load without the network.
TOKENIZER_CORE = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")
MAX_HEADER_BYTES = 100 * 1024 * 1024


class HeaderError(ValueError):
    """Not a safetensors file (short, oversized or unparsable header)."""


def tokenizer_files(model_dir: Path) -> list[Path]:
    """The tokenizer-side files of model_dir that an artifact carries (paths in model_dir)."""
    found = [model_dir / n for n in SERVING_FILES if (model_dir / n).is_file()]
    for pattern in TOKENIZER_GLOBS:
        found.extend(sorted(model_dir.glob(pattern)))
    found.extend(model_dir / d for d in TOKENIZER_DIRS if (model_dir / d).is_dir())
    return found


def copy_tokenizer(model_dir: Path, dest: Path, *, keep_existing: bool = False) -> list[str]:
    """Copy tokenizer_files(model_dir) into dest (directories whole); keep_existing: leave a
    name dest already has (a quantizer's export may have written its own). The names copied."""
    copied = []
    for src in tokenizer_files(model_dir):
        if keep_existing and (dest / src.name).exists():
            continue
        if src.is_dir():
            shutil.copytree(src, dest / src.name, dirs_exist_ok=True)
        else:
            shutil.copy2(src, dest / src.name)
        copied.append(src.name)
    return copied


def has_tokenizer(files: list[Path]) -> bool:
    return any(f.name in TOKENIZER_CORE or f.suffix == ".tiktoken" for f in files)


def header_bytes(fh: BinaryIO, size: int) -> bytes | None:
    """The JSON header of an open safetensors file of `size` bytes, or None when it has none."""
    if size < 8:
        return None
    fh.seek(0)
    (n,) = struct.unpack("<Q", fh.read(8))
    if n <= 0 or n > MAX_HEADER_BYTES or 8 + n > size:
        return None
    return fh.read(n)


def read_header(path: Path) -> dict:
    """The parsed header of a safetensors file; HeaderError when it is not one."""
    try:
        with path.open("rb") as fh:
            raw = header_bytes(fh, path.stat().st_size)
    except OSError as exc:
        raise HeaderError(f"{path}: {exc.strerror or exc}") from exc
    if raw is None:
        raise HeaderError(f"{path}: not a safetensors file (no usable header)")
    try:
        header = json.loads(raw)
    except ValueError as exc:
        raise HeaderError(f"{path}: unreadable safetensors header") from exc
    if not isinstance(header, dict):
        raise HeaderError(f"{path}: unreadable safetensors header")
    return header

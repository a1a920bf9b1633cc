"""Safetensors headers and tensor bytes, read and written without loading whole files.

The format: 8 bytes little-endian header length N, N bytes of JSON
({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}), then the
data buffer, which the offsets index without holes. Reads use os.pread into a private buffer
(anonymous memory, released when the tensor is written), so mapped file pages never count
against the merge's memory.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import model_files

from lora_merge.errors import bad_input

# safetensors dtype -> (bytes per element, torch dtype attribute name)
DTYPES: dict[str, tuple[int, str]] = {
    "F64": (8, "float64"),
    "F32": (4, "float32"),
    "F16": (2, "float16"),
    "BF16": (2, "bfloat16"),
    "F8_E4M3": (1, "float8_e4m3fn"),
    "F8_E5M2": (1, "float8_e5m2"),
    "I64": (8, "int64"),
    "I32": (4, "int32"),
    "I16": (2, "int16"),
    "I8": (1, "int8"),
    "U8": (1, "uint8"),
    "BOOL": (1, "bool"),
}
FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
TORCH_TO_ST = {"float32": "F32", "float16": "F16", "bfloat16": "BF16", "float64": "F64"}
_IO_CHUNK = 1 << 30  # Linux moves at most ~2 GiB per read/write call


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: file, absolute byte offset, length, dtype, shape."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


def read_header(path: Path) -> tuple[dict[str, TensorInfo], dict, bytes]:
    """Parse and check one file's header; returns (tensors, metadata, raw header bytes)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            raw = model_files.header_bytes(f, size)  # the one reader, shared with the export
    except OSError as err:
        raise bad_input("unreadable_file", f"{path}: {err.strerror or err}") from err
    if raw is None:
        raise bad_input("corrupt_safetensors", f"{path}: not a safetensors file (no usable header)")
    n = len(raw)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad_input("corrupt_safetensors", f"{path}: header is not JSON ({err})") from err
    if not isinstance(header, dict):
        raise bad_input("corrupt_safetensors", f"{path}: header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    data_start = 8 + n
    tensors: dict[str, TensorInfo] = {}
    end_max = 0
    for name, entry in header.items():
        try:
            dtype = entry["dtype"]
            shape = tuple(int(d) for d in entry["shape"])
            begin, end = (int(x) for x in entry["data_offsets"])
        except (KeyError, TypeError, ValueError) as err:
            raise bad_input("corrupt_safetensors", f"{path}: bad header entry {name!r}") from err
        if dtype not in DTYPES:
            raise bad_input("corrupt_safetensors", f"{path}: {name}: unknown dtype {dtype}")
        nbytes = math.prod(shape) * DTYPES[dtype][0]
        if end - begin != nbytes or begin < 0:
            raise bad_input(
                "corrupt_safetensors", f"{path}: {name}: offsets do not match its shape"
            )
        end_max = max(end_max, end)
        tensors[name] = TensorInfo(name, path, dtype, shape, data_start + begin, nbytes)
    if data_start + end_max > size:
        raise bad_input(
            "truncated_safetensors",
            f"{path}: truncated: header needs {data_start + end_max} bytes, file has {size}",
        )
    return tensors, metadata, raw


def pread_into(fd: int, buf: memoryview, offset: int) -> None:
    done = 0
    while done < len(buf):
        n = os.preadv(fd, [buf[done : done + _IO_CHUNK]], offset + done)
        if n <= 0:
            raise OSError(f"unexpected end of file at byte {offset + done}")
        done += n


def pwrite_all(fd: int, buf: memoryview, offset: int) -> None:
    done = 0
    while done < len(buf):
        done += os.pwrite(fd, buf[done : done + _IO_CHUNK], offset + done)


def header_bytes(entries: list[tuple[str, str, tuple[int, ...], int]], metadata: dict) -> bytes:
    """Header for [(name, dtype, shape, nbytes)] laid out in that order; padded to 8 bytes."""
    header: dict = {"__metadata__": metadata}
    pos = 0
    for name, dtype, shape, nbytes in entries:
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
        pos += nbytes
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw


def open_fd(path: Path, cache: dict[Path, int]) -> int:
    fd = cache.get(path)
    if fd is None:
        fd = cache[path] = os.open(path, os.O_RDONLY)
    return fd


def read_bytes(info: TensorInfo, fds: dict[Path, int]) -> bytearray:
    """The tensor's bytes in a fresh writable buffer."""
    buf = bytearray(info.nbytes)
    if info.nbytes:
        pread_into(open_fd(info.path, fds), memoryview(buf), info.offset)
    return buf


def read_tensor(info: TensorInfo, fds: dict[Path, int]):
    """The tensor's bytes in a fresh writable buffer, viewed as a torch tensor of its dtype."""
    import torch

    buf = read_bytes(info, fds)
    dtype = getattr(torch, DTYPES[info.dtype][1])
    if not info.nbytes:
        return torch.empty(info.shape, dtype=dtype)
    return torch.frombuffer(buf, dtype=torch.uint8).view(dtype).reshape(info.shape)


class ThreadBuffers(threading.local):
    """Per-thread byte buffers by name, grown as needed and reused: fresh memory costs a page
    fault per 4 KiB, which at these sizes is slower than the merge itself."""

    def __init__(self) -> None:
        self.bufs: dict[str, bytearray] = {}

    def get(self, which: str, n: int) -> memoryview:
        buf = self.bufs.get(which)
        if buf is None or len(buf) < n:
            buf = self.bufs[which] = bytearray(n)
        return memoryview(buf)[:n]

"""The CPU merge math with numpy: float32 arithmetic, one rounding to the output dtype, no torch.

Importing torch costs about 1.4 s, more than merging a small model, so the CPU path works on
numpy arrays (numpy is installed with torch and weighs 0.15 s). The arithmetic is PEFT's in
float32: W' = W + (B·A)·s, the product from BLAS sgemm (a fused multiply-add chain over the
rank, as torch's CPU and CUDA matmuls compute it), then one rounding to the output dtype.
bfloat16 has no numpy dtype: it is handled as uint16 bits, widened exactly to float32 and
rounded to nearest-even as torch does (a NaN becomes 0xFFFF, as torch's CPU conversion has it).

A piece is processed in tiles of a few rows (TILE_ELEMS float32 values) so every pass stays in
the core's cache. DoRA (a norm over rows), float8 and --device cuda go to torch_engine.
"""

from __future__ import annotations

import numpy as np

from lora_merge.ops import Op
from lora_merge.safetensors_io import DTYPES, ThreadBuffers, open_fd, pread_into

TILE_ELEMS = 1 << 15  # 128 KiB of float32 per tile buffer (32K measured best of 8K-256K)
FLOATS = {"F64": np.float64, "F32": np.float32, "F16": np.float16}
_COL_ALIGN = 16  # sgemm's edge kernels for odd column counts sum in another order: pad


def decode(raw, dtype: str, out: np.ndarray) -> None:
    """Raw little-endian bytes of a float dtype into the float32 array out (exact widening)."""
    if dtype == "BF16":
        bits = out.view(np.uint32).reshape(-1)
        np.left_shift(np.frombuffer(raw, np.uint16), 16, out=bits, dtype=np.uint32)
    else:
        out.reshape(-1)[:] = np.frombuffer(raw, FLOATS[dtype])


def encode(x: np.ndarray, dtype: str, out, scratch: np.ndarray) -> None:
    """float32 x rounded once to dtype into the raw buffer out; scratch: uint32, x's size."""
    flat = x.reshape(-1)
    if dtype != "BF16":
        np.frombuffer(out, FLOATS[dtype])[:] = flat
        return
    bits, t = flat.view(np.uint32), scratch
    np.right_shift(bits, 16, out=t)  # round to nearest even: + 0x7FFF + the lowest kept bit
    np.bitwise_and(t, 1, out=t)
    np.add(t, 0x7FFF, out=t)
    np.add(t, bits, out=t)
    dst = np.frombuffer(out, np.uint16)
    np.right_shift(t, 16, out=dst, casting="unsafe")  # the high half
    if flat.size and np.isnan(np.max(flat)):  # max propagates NaN; torch's CPU conversion: 0xFFFF
        dst[np.isnan(flat)] = 0xFFFF


def matmul(b: np.ndarray, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """b @ a in float32 by the main sgemm kernel: columns padded, at least two rows.

    sgemm's edge kernels (odd column counts, one row) sum the rank in another order; the main
    one is the fused multiply-add chain that torch's matmul and so PEFT's merge compute."""
    n, cols = b.shape[0], a.shape[1]
    pad_cols = -cols % _COL_ALIGN
    if not pad_cols and n >= 2:
        return np.matmul(b, a, out=out)
    a = np.pad(a, ((0, 0), (0, pad_cols))) if pad_cols else a
    b = np.pad(b, ((0, 2 - n), (0, 0))) if n < 2 else b
    return (b @ a)[:n, :cols]


def _array(op: Op, role: str) -> np.ndarray:
    """An adapter tensor as float32 (read once per op, dropped by op.release())."""
    key = ("np", role)
    if key not in op._cache:
        info = op.adapter.tensors[op.keys[role]]
        raw = op.adapter.read(op.keys[role])
        x = np.empty(info.shape, np.float32)
        decode(raw, info.dtype, x)
        op._cache[key] = x
    return op._cache[key]


def _scale(x: np.ndarray, s: float) -> np.ndarray:
    return np.multiply(x, np.float32(s), out=x)


def apply(op: Op, block: np.ndarray, start: int, stop: int, prod: np.ndarray) -> None:
    """Apply op in place to block = rows [start, stop) of the tensor (float32); prod: a
    float32 scratch array of block's shape."""
    if op.kind == "lora":
        block += _scale(matmul(_array(op, "B")[start:stop], _array(op, "A"), prod), op.scale)
    elif op.kind in ("lora_fan", "lora_emb"):  # stored transposed: rows index A's columns
        a = _array(op, "EA" if op.kind == "lora_emb" else "A")
        b = _array(op, "EB" if op.kind == "lora_emb" else "B")
        np.copyto(prod, matmul(b, a[:, start:stop]).T)
        block += _scale(prod, op.scale)
    elif op.kind == "bias":
        np.copyto(prod, _array(op, "B_bias")[start:stop].reshape(prod.shape))
        block += _scale(prod, op.scale)
    elif op.kind == "tokens":
        rows = _array(op, "T")
        for i, idx in enumerate(op.indices):
            if start <= idx < stop:
                block[idx - start] = rows[i]
    else:  # pragma: no cover - engines.numpy_can_merge routes the rest to torch
        raise ValueError(op.kind)


_buffers = ThreadBuffers()


def _tiles(rows: int, cols: int):
    """Row ranges of about TILE_ELEMS values each, none of one row unless the tensor has one."""
    step = max(2, TILE_ELEMS // max(cols, 1))
    a = 0
    while a < rows:
        b = min(rows, a + step)
        if rows - b == 1:
            b = rows
        yield a, b
        a = b


def _arrays(n: int, cols: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This thread's float32 block, float32 product and uint32 scratch for n rows."""
    size = 4 * n * max(cols, 1)
    block = np.frombuffer(_buffers.get("block", size), np.float32)
    prod = np.frombuffer(_buffers.get("prod", size), np.float32)
    return block, prod, np.frombuffer(_buffers.get("bits", size), np.uint32)


def compute_piece(pc, fds: dict, out: memoryview | None = None) -> memoryview:
    """The piece's output bytes, written into out when given (a window of the output stream:
    a piece of the same dtype is read there and merged in place), else into a per-thread
    buffer valid until the thread's next piece."""
    t = pc.tensor
    info = t.src
    r0, r1 = pc.rows if pc.rows else (0, t.shape[0] if t.shape else 1)
    rows = r1 - r0
    src_row = info.nbytes // info.shape[0] if info.shape and info.shape[0] else info.nbytes
    same = info.dtype == t.out_dtype
    src = out if same and out is not None else _buffers.get("src", rows * src_row)
    if len(src):
        pread_into(open_fd(info.path, fds), src, info.offset + r0 * src_row)
    if not t.ops and same:
        return src
    cols = src_row // DTYPES[info.dtype][0]
    out_row = cols * DTYPES[t.out_dtype][0]
    dst = src if same else out if out is not None else _buffers.get("out", rows * out_row)
    step = max(2, TILE_ELEMS // max(cols, 1))
    block, prod, bits = _arrays(step + 1, cols)
    with np.errstate(all="ignore"):  # inf and NaN follow IEEE rules, as in torch; no warnings
        _merge_tiles(t, info.dtype, src, dst, r0, rows, cols, (block, prod, bits))
    return dst


def _merge_tiles(t, src_dtype: str, src, out, r0: int, rows: int, cols: int, arrays) -> None:
    block, prod, bits = arrays
    src_row = cols * DTYPES[src_dtype][0]
    out_row = cols * DTYPES[t.out_dtype][0]
    for a, b in _tiles(rows, cols):
        n = (b - a) * cols
        x, p = block[:n].reshape(b - a, cols), prod[:n].reshape(b - a, cols)
        decode(src[a * src_row : b * src_row], src_dtype, x)
        for op in t.ops:
            apply(op, x, r0 + a, r0 + b, p)
        encode(x, t.out_dtype, out[a * out_row : b * out_row], bits[:n])

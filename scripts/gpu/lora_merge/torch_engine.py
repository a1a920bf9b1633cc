"""The merge math with torch, for --device cuda, DoRA (a norm over rows), float8, and CPU
merges under an interpreter without numpy. A piece is one block of rows: on the CPU it is
merged in per-thread float32 buffers, on a device moved there whole; either way float32
arithmetic rounded once, the same bytes as np_engine where both apply.
"""

from __future__ import annotations

import os

from lora_merge import ops as ops_mod
from lora_merge.safetensors_io import DTYPES, ThreadBuffers, open_fd, pread_into


def configure(workers: int) -> None:
    import torch

    # The workers overlap reads, math and writes, one piece each; torch's own thread pool
    # on top would oversubscribe the cores (OpenMP spin-waits on blocks this small).
    torch.set_num_threads(1 if workers > 1 else (os.cpu_count() or 1))


class _Scratch(ThreadBuffers):
    """ThreadBuffers, plus one float32 tensor per thread for the CPU merge's block and product."""

    def __init__(self) -> None:
        super().__init__()
        self.f32 = None

    def floats(self, n: int):
        import torch

        if self.f32 is None or self.f32.numel() < 2 * n:
            self.f32 = torch.empty(2 * n, dtype=torch.float32)
        return self.f32[:n], self.f32[n : 2 * n]


_scratch = _Scratch()


def _as_tensor(view: memoryview, dtype_name: str, shape):
    import torch

    dtype = getattr(torch, DTYPES[dtype_name][1])
    if not len(view):
        return torch.empty(shape, dtype=dtype)
    return torch.frombuffer(view, dtype=torch.uint8).view(dtype).reshape(shape)


def compute_piece(pc, fds: dict, out: memoryview | None = None, device=None) -> memoryview:
    """The piece's output bytes, copied into out when given, else a per-thread buffer valid
    until the thread's next piece."""
    data = _compute(pc, fds, device)
    if out is None:
        return data
    out[:] = data
    return out


def _compute(pc, fds: dict, device) -> memoryview:
    import torch

    t = pc.tensor
    info = t.src
    r0, r1 = pc.rows if pc.rows else (0, t.shape[0] if t.shape else 1)
    rows = r1 - r0
    src_row = info.nbytes // max(1, info.shape[0]) if info.shape else info.nbytes
    src_view = _scratch.get("src", rows * src_row if info.shape else info.nbytes)
    if len(src_view):
        pread_into(open_fd(info.path, fds), src_view, info.offset + r0 * src_row)
    shape = (rows, *info.shape[1:]) if info.shape else ()
    x = _as_tensor(src_view, info.dtype, shape)
    out_dtype = getattr(torch, DTYPES[t.out_dtype][1])
    if not t.ops and x.dtype == out_dtype:
        return src_view
    if x.dtype == out_dtype:
        out_view, y = src_view, x  # merge in place
    else:
        out_view = _scratch.get("out", pc.nbytes)
        y = _as_tensor(out_view, t.out_dtype, shape)
    if not t.ops:
        y.copy_(x)
        return out_view
    xv, yv = (x, y) if x.dim() else (x.view(1), y.view(1))
    if device is not None:  # --device cuda: the piece at once on the device
        work = xv.to(device).to(torch.float32)
        for op in t.ops:
            ops_mod.apply(op, work, r0, r1)
        yv.copy_(work.to(out_dtype).cpu())
        return out_view
    block, prod = _scratch.floats(xv.numel())
    block = block.view(xv.shape)
    block.copy_(xv)
    for op in t.ops:
        ops_mod.apply(op, block, r0, r0 + xv.shape[0], prod)
    yv.copy_(block)
    return out_view

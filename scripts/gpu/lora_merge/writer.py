"""Stream the plan into safetensors shards: read, merge, write, overlapped across threads.

Every output shape and dtype is known from the plan, so each shard's header is written first
and every tensor goes to its final offset with pwrite, in whatever order the workers finish.
Untouched tensors are copied file to file in the kernel (copy_file_range), never through
Python memory. Merged tensors are read into a private buffer, merged in float32 one block of
rows at a time (in place when the dtype is kept), and written. A byte budget bounds what is
in flight, so peak memory is a few of the largest tensors whatever the model size.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from lora_merge import ops as ops_mod
from lora_merge.errors import failed
from lora_merge.plan import OutTensor
from lora_merge.safetensors_io import (
    DTYPES,
    copy_range,
    header_bytes,
    open_fd,
    pread_into,
    pwrite_all,
)

BLOCK_ELEMENTS = 1 << 20  # rows per block: about 4 MiB of float32, cache-friendly
INDEX_NAME = "model.safetensors.index.json"


@dataclass
class Placement:
    tensor: OutTensor
    shard: Path
    offset: int  # absolute byte offset in the shard file


def layout(tensors: list[OutTensor], out_dir: Path, max_shard: int):
    """Split into shards of at most max_shard bytes (a bigger tensor gets its own shard)."""
    groups: list[list[OutTensor]] = [[]]
    size = 0
    for t in tensors:
        if groups[-1] and size + t.nbytes > max_shard:
            groups.append([])
            size = 0
        groups[-1].append(t)
        size += t.nbytes
    n = len(groups)
    shards: list[tuple[Path, bytes, list[Placement]]] = []
    for i, group in enumerate(groups, 1):
        path = out_dir / f"model-{i:05d}-of-{n:05d}.safetensors"
        # Wider dtypes first keeps every tensor aligned to its element size.
        group = sorted(group, key=lambda t: -DTYPES[t.out_dtype][0])
        head = header_bytes(
            [(t.name, t.out_dtype, t.shape, t.nbytes) for t in group], {"format": "pt"}
        )
        pos = len(head)
        placed = []
        for t in group:
            placed.append(Placement(t, path, pos))
            pos += t.nbytes
        shards.append((path, head, placed))
    return shards


def index_json(shards) -> dict:
    weight_map = {p.tensor.name: path.name for path, _h, placed in shards for p in placed}
    total = sum(p.tensor.nbytes for _path, _h, placed in shards for p in placed)
    return {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}


class _Budget:
    """Bytes in flight; a request larger than the budget waits until it can run alone."""

    def __init__(self, limit: int) -> None:
        self.limit, self.used = limit, 0
        self.cond = threading.Condition()

    def acquire(self, n: int) -> int:
        n = min(n, self.limit)
        with self.cond:
            self.cond.wait_for(lambda: self.used + n <= self.limit)
            self.used += n
        return n

    def release(self, n: int) -> None:
        with self.cond:
            self.used -= n
            self.cond.notify_all()


class Progress:
    """Bytes written, rate and ETA on stderr: a live bar on a terminal, else a line per 10%."""

    def __init__(self, total: int, label: str, quiet: bool = False) -> None:
        self.total, self.done, self.label = max(total, 1), 0, label
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.tty = sys.stderr.isatty()
        self.quiet = quiet
        self.next_mark = 0.1
        self.last_draw = 0.0

    def add(self, n: int) -> None:
        with self.lock:
            self.done += n
            frac = self.done / self.total
            now = time.monotonic()
            if self.quiet:
                return
            if self.tty and (now - self.last_draw > 0.2 or self.done >= self.total):
                self.last_draw = now
                sys.stderr.write("\r" + self._line(frac, now) + "\033[K")
                sys.stderr.flush()
            elif not self.tty and frac >= self.next_mark:
                self.next_mark = (int(frac * 10) + 1) / 10
                sys.stderr.write(self._line(frac, now) + "\n")

    def _line(self, frac: float, now: float) -> str:
        elapsed = max(now - self.start, 1e-6)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        bar = "#" * int(frac * 24)
        return (
            f"{self.label} [{bar:<24}] {frac * 100:5.1f}% {self.done / 2**30:.2f}/"
            f"{self.total / 2**30:.2f} GiB {rate / 2**20:.0f} MiB/s ETA {eta:.0f}s"
        )

    def close(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")


class _Scratch(threading.local):
    """Per-thread buffers, grown as needed and reused: fresh memory costs a page fault per
    4 KiB, which at these sizes is slower than the merge itself."""

    def __init__(self) -> None:
        self.raw = bytearray()
        self.out = bytearray()
        self.f32 = None

    def bytes(self, which: str, n: int) -> memoryview:
        buf = getattr(self, which)
        if len(buf) < n:
            buf = bytearray(n)
            setattr(self, which, buf)
        return memoryview(buf)[:n]

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


def _read_source(t: OutTensor, fds: dict):
    """(memoryview, tensor view) of the tensor's source bytes, in the source dtype."""
    if t.source is not None:
        adapter, key = t.source
        info = adapter.tensors[key]
    else:
        info = t.base
    view = _scratch.bytes("raw", info.nbytes)
    if info.nbytes:
        pread_into(open_fd(info.path, fds), view, info.offset)
    return view, _as_tensor(view, info.dtype, info.shape)


def merge_tensor(t: OutTensor, fds: dict, device=None) -> memoryview:
    """The merged tensor's bytes in the output dtype (a per-thread buffer: write it before the
    thread merges the next tensor)."""
    import torch

    src_view, x = _read_source(t, fds)
    out_dtype = getattr(torch, DTYPES[t.out_dtype][1])
    if not t.ops and x.dtype == out_dtype:
        return src_view
    if x.dtype == out_dtype:
        out_view, y = src_view, x  # merge in place, block by block
    else:
        out_view = _scratch.bytes("out", t.nbytes)
        y = _as_tensor(out_view, t.out_dtype, t.shape)
    if not t.ops:
        y.copy_(x)
        return out_view
    if device is not None and device.type != "cpu":
        work = x.to(device).to(torch.float32)
        for op in t.ops:
            ops_mod.apply(op, work, 0, work.shape[0])
            op.release()
        y.copy_(work.to(out_dtype).cpu())
        return out_view
    rows = x.shape[0] if x.dim() else 1
    cols = max(1, x.numel() // max(rows, 1))
    step = rows if not all(op.row_local for op in t.ops) else max(1, BLOCK_ELEMENTS // cols)
    xv, yv = (x, y) if x.dim() else (x.view(1), y.view(1))
    block_buf, prod_buf = _scratch.floats(min(rows, step) * cols)
    for start in range(0, rows, step):
        stop = min(rows, start + step)
        block = block_buf[: (stop - start) * cols].view(xv[start:stop].shape)
        block.copy_(xv[start:stop])
        for op in t.ops:
            ops_mod.apply(op, block, start, stop, prod_buf)
        yv[start:stop].copy_(block)
    for op in t.ops:
        op.release()
    return out_view


def write_shards(shards, workers: int, budget_bytes: int, progress: Progress, device=None) -> None:
    """Write every shard file; raises MergeError(exit 1) on an I/O or compute failure."""
    out_fds: dict[Path, int] = {}
    in_fds: dict[Path, int] = {}
    budget = _Budget(budget_bytes)
    try:
        for _path, _h, placed in shards:  # open every input once, before the threads start
            for p in placed:
                t = p.tensor
                if t.base is not None:
                    open_fd(t.base.path, in_fds)
                if t.source is not None:
                    open_fd(t.source[0].tensors[t.source[1]].path, in_fds)
                for op in t.ops:
                    for key in op.keys.values():
                        open_fd(op.adapter.tensors[key].path, op.adapter._fds)
        for path, head, placed in shards:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            out_fds[path] = fd
            pwrite_all(fd, memoryview(head), 0)
            os.ftruncate(fd, len(head) + sum(p.tensor.nbytes for p in placed))

        def job(p: Placement, cost: int) -> None:
            try:
                t = p.tensor
                if t.passthrough:
                    copy_range(
                        in_fds[t.base.path], t.base.offset, out_fds[p.shard], p.offset, t.nbytes
                    )
                else:
                    data = merge_tensor(t, in_fds, device)
                    pwrite_all(out_fds[p.shard], data, p.offset)
                progress.add(t.nbytes)
            finally:
                budget.release(cost)

        jobs = [p for _path, _h, placed in shards for p in placed]
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge") as pool:
            futures = []
            for p in jobs:
                t = p.tensor
                cost = 0 if t.passthrough else (t.base.nbytes if t.base else 0) + 2 * t.nbytes
                cost = budget.acquire(max(cost, 1))
                futures.append(pool.submit(job, p, cost))
                if any(f.done() and f.exception() for f in futures[-8:]):
                    break
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            for f in done:
                if f.exception() is not None:
                    for g in futures:
                        g.cancel()
                    err = f.exception()
                    raise failed("write_failed", f"merge failed: {err}") from err
        for fd in out_fds.values():
            os.fsync(fd)
    finally:
        for fd in [*out_fds.values(), *in_fds.values()]:
            os.close(fd)

"""Stream the plan into safetensors shards: read, merge, write, overlapped across threads.

Every output shape and dtype is known from the plan, so each shard's header is known first
and the shard is one byte stream. It is cut into pieces (a block of rows of one tensor, a
few MiB); worker threads read and merge pieces in parallel (float32, rounded once) and copy
each into a ring of page-aligned windows over the stream; a full window is written with
O_DIRECT (no page cache: the output is not read back, and on hosts where fresh memory is
slow to fault in this is what keeps the merge near the speed of a file copy), or with plain
writes where the filesystem refuses O_DIRECT. Memory is the ring plus one piece per worker,
whatever the size of the model or of its largest tensor (a tensor whose op needs all rows at
once, such as DoRA on an embedding, is one piece).
"""

from __future__ import annotations

import mmap
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lora_merge import ops as ops_mod
from lora_merge.errors import failed
from lora_merge.plan import OutTensor
from lora_merge.safetensors_io import DTYPES, header_bytes, open_fd, pread_into, pwrite_all

PIECE_BYTES = 4 << 20  # output bytes per piece (a block of rows)
WINDOW_BYTES = 16 << 20  # one aligned write
RING = 6  # windows in flight
ALIGN = 4096
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


@dataclass
class Piece:
    tensor: OutTensor
    pos: int  # byte offset of the piece in the shard file
    rows: tuple[int, int] | None  # row range of a 2-D+ tensor, None: the whole tensor
    nbytes: int


def pieces(placed: list[Placement], piece_bytes: int | None = None) -> list[Piece]:
    piece_bytes = piece_bytes or PIECE_BYTES
    out = []
    for p in placed:
        t = p.tensor
        whole = len(t.shape) < 1 or not all(op.row_local for op in t.ops)
        if whole or t.nbytes <= piece_bytes or t.shape[0] <= 1:
            out.append(Piece(t, p.offset, None, t.nbytes))
            continue
        row_bytes = t.nbytes // t.shape[0]
        step = max(1, piece_bytes // row_bytes)
        for r0 in range(0, t.shape[0], step):
            r1 = min(t.shape[0], r0 + step)
            out.append(Piece(t, p.offset + r0 * row_bytes, (r0, r1), (r1 - r0) * row_bytes))
    return out


class _Scratch(threading.local):
    """Per-thread buffers, grown as needed and reused: fresh memory costs a page fault per
    4 KiB, which at these sizes is slower than the merge itself."""

    def __init__(self) -> None:
        self.bufs: dict[str, bytearray] = {}
        self.f32 = None

    def bytes(self, which: str, n: int) -> memoryview:
        buf = self.bufs.get(which)
        if buf is None or len(buf) < n:
            buf = self.bufs[which] = bytearray(n)
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


def _source_info(t: OutTensor):
    if t.source is not None:
        adapter, key = t.source
        return adapter.tensors[key]
    return t.base


def compute_piece(pc: Piece, fds: dict, device=None) -> memoryview:
    """The piece's output bytes (a per-thread buffer, valid until the thread's next piece)."""
    import torch

    t = pc.tensor
    info = _source_info(t)
    r0, r1 = pc.rows if pc.rows else (0, t.shape[0] if t.shape else 1)
    rows = r1 - r0
    src_row = info.nbytes // max(1, info.shape[0]) if info.shape else info.nbytes
    src_view = _scratch.bytes("src", rows * src_row if info.shape else info.nbytes)
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
        out_view = _scratch.bytes("out", pc.nbytes)
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


class _ShardStream:
    """A ring of aligned windows over one shard file; full windows are written in order."""

    def __init__(self, path: Path, size: int, ring: int, window: int, progress) -> None:
        self.path, self.size, self.window = path, size, window
        self.progress = progress
        self.cond = threading.Condition()
        self.base = 0  # index of the lowest window not yet written
        self.bufs = [mmap.mmap(-1, window) for _ in range(ring)]
        self.filled: dict[int, int] = {}
        self.error: BaseException | None = None
        self.direct = hasattr(os, "O_DIRECT")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            self.fd = os.open(path, flags | (os.O_DIRECT if self.direct else 0), 0o644)
        except OSError:
            self.direct = False
            self.fd = os.open(path, flags, 0o644)
        self.nwin = max(1, -(-size // window))
        self.ready: set[int] = set()
        self.flusher = threading.Thread(target=self._flush_loop, name="merge-write", daemon=True)
        self.flusher.start()

    def _win_len(self, k: int) -> int:
        return min(self.window, self.size - k * self.window)

    def put(self, pos: int, data: memoryview) -> None:
        """Copy data to shard bytes [pos, pos+len): waits for ring space, window by window."""
        done = 0
        while done < len(data):
            k = (pos + done) // self.window
            off = (pos + done) - k * self.window
            n = min(len(data) - done, self.window - off)
            with self.cond:
                self.cond.wait_for(lambda k=k: k < self.base + len(self.bufs) or self.error)
                if self.error:
                    raise self.error
            buf = self.bufs[k % len(self.bufs)]
            buf[off : off + n] = data[done : done + n]
            with self.cond:
                self.filled[k] = self.filled.get(k, 0) + n
                if self.filled[k] == self._win_len(k):
                    self.ready.add(k)
                    self.cond.notify_all()
            done += n

    def _write(self, k: int) -> None:
        n = self._win_len(k)
        view = memoryview(self.bufs[k % len(self.bufs)])
        if self.direct:
            padded = -(-n // ALIGN) * ALIGN
            if padded > n:
                view[n:padded] = bytes(padded - n)
            try:
                pwrite_all(self.fd, view[:padded], k * self.window)
                return
            except OSError:  # the filesystem refused O_DIRECT: plain writes from here on
                os.close(self.fd)
                self.fd = os.open(self.path, os.O_WRONLY)
                self.direct = False
        pwrite_all(self.fd, view[:n], k * self.window)

    def _flush_loop(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(
                    lambda: self.base in self.ready or self.base >= self.nwin or self.error
                )
                if self.base >= self.nwin or self.error:
                    return
                k = self.base
                self.ready.discard(k)
            try:
                self._write(k)
                self.progress.add(self._win_len(k))
            except BaseException as err:
                with self.cond:
                    self.error = err
                    self.cond.notify_all()
                return
            with self.cond:
                self.filled.pop(k, None)
                self.base += 1
                self.cond.notify_all()

    def fail(self, err: BaseException) -> None:
        with self.cond:
            self.error = self.error or err
            self.cond.notify_all()

    def finish(self) -> None:
        self.flusher.join()
        if self.error:
            raise self.error
        os.ftruncate(self.fd, self.size)  # drop the O_DIRECT padding of the last window
        os.fsync(self.fd)

    def close(self) -> None:
        os.close(self.fd)
        for b in self.bufs:
            b.close()


def write_shards(shards, workers: int, progress: Progress, device=None) -> None:
    """Write every shard file; raises MergeError(exit 1) on an I/O or compute failure."""
    in_fds: dict[Path, int] = {}
    for _path, _h, placed in shards:  # open every input once, before the threads start
        for p in placed:
            t = p.tensor
            if t.base is not None:
                open_fd(t.base.path, in_fds)
            if t.source is not None:
                open_fd(_source_info(t).path, in_fds)
            for op in t.ops:
                for key in op.keys.values():
                    open_fd(op.adapter.tensors[key].path, op.adapter._fds)
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge") as pool:
            for path, head, placed in shards:
                size = len(head) + sum(p.tensor.nbytes for p in placed)
                stream = _ShardStream(path, size, RING, WINDOW_BYTES, progress)
                try:
                    _run_shard(stream, head, placed, pool, workers, in_fds, device)
                    stream.finish()
                finally:
                    stream.close()
    except (OSError, RuntimeError, ValueError) as err:
        raise failed("write_failed", f"writing the merged shards failed: {err}") from err
    finally:
        for fd in in_fds.values():
            os.close(fd)


def _run_shard(stream, head, placed, pool, workers, in_fds, device) -> None:
    todo = pieces(placed)
    left = {}
    for pc in todo:
        left[id(pc.tensor)] = left.get(id(pc.tensor), 0) + 1
    lock = threading.Lock()

    def job(pc: Piece) -> None:
        try:
            stream.put(pc.pos, compute_piece(pc, in_fds, device))
        except BaseException as err:
            stream.fail(err)
            raise
        with lock:
            left[id(pc.tensor)] -= 1
            last = left[id(pc.tensor)] == 0
        if last:  # the adapter tensors of this tensor's ops are no longer needed
            for op in pc.tensor.ops:
                op.release()

    stream.put(0, memoryview(head))
    futures: deque = deque()
    for pc in todo:
        while len(futures) >= 2 * workers:  # bounded look-ahead keeps memory flat
            futures.popleft().result()
        futures.append(pool.submit(job, pc))
    while futures:
        futures.popleft().result()

"""Stream the plan into safetensors shards: read, merge, write, overlapped across threads.

Every output shape and dtype is known from the plan, so each shard's header is known first
and the shard is one byte stream over a ring of page-aligned windows. The stream is cut into
pieces (a block of rows of one tensor, a few MiB, cut where a window ends); worker threads
read and merge pieces in parallel (float32, rounded once), each straight into its window
(the few pieces that cross a window boundary are merged aside and copied). A full window is
written with O_DIRECT (no page cache: the output is not read back, and on hosts where fresh
memory is slow to fault in this is what keeps the merge near the speed of a file copy), or
with plain writes where the filesystem refuses O_DIRECT. Memory is the ring plus a few MiB of
buffers per worker, whatever the size of the model or of its largest tensor (a tensor whose
op needs all rows at once, such as DoRA on an embedding, is one piece).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sys
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from lora_merge import procs
from lora_merge.errors import failed
from lora_merge.plan import OutTensor
from lora_merge.safetensors_io import DTYPES, header_bytes, open_fd, pwrite_all

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
    """Bytes written, rate and ETA: a tqdm bar on a terminal, nothing otherwise."""

    def __init__(self, total: int, label: str, quiet: bool = False) -> None:
        self.bar = None
        if quiet or not sys.stderr.isatty():
            return
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: worker processes are forked later
        self.bar = tqdm(
            total=total,
            desc=label,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            file=sys.stderr,
            dynamic_ncols=True,
            mininterval=0.2,
            leave=True,
        )

    def add(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@dataclass
class Piece:
    tensor: OutTensor
    pos: int  # byte offset of the piece in the shard file
    rows: tuple[int, int] | None  # row range of a 2-D+ tensor, None: the whole tensor
    nbytes: int


def pieces(placed: list[Placement], piece_bytes: int = 0, window: int = 0) -> list[Piece]:
    """The pieces of a shard, in stream order: whole small tensors, else blocks of rows."""
    piece_bytes, window = piece_bytes or PIECE_BYTES, window or WINDOW_BYTES
    out = []
    for p in placed:
        t = p.tensor
        whole = len(t.shape) < 1 or not all(op.row_local for op in t.ops)
        if whole or t.nbytes <= piece_bytes or t.shape[0] <= 2:
            out.append(Piece(t, p.offset, None, t.nbytes))
        else:
            out += _row_blocks(t, p.offset, piece_bytes, window)
    return out


def _row_blocks(t: OutTensor, offset: int, piece_bytes: int, window: int) -> list[Piece]:
    """Blocks of at most piece_bytes, cut where a window ends so that nearly every piece lies
    in one window (and is computed there, in place); never one row (sgemm takes another path
    for a single row), so a block that must cross a window boundary has two."""
    rows = t.shape[0]
    row_bytes = t.nbytes // rows
    step = max(2, piece_bytes // row_bytes)
    out, r0 = [], 0
    while r0 < rows:
        pos = offset + r0 * row_bytes
        fit = (window - pos % window) // row_bytes  # whole rows before the window ends
        r1 = min(rows, r0 + (min(step, fit) if fit >= 2 else 2))
        if rows - r1 == 1:
            r1 = rows
        out.append(Piece(t, pos, (r0, r1), (r1 - r0) * row_bytes))
        r0 = r1
    return out


class _ShardStream:
    """A ring of aligned windows over one shard file; full windows are written in order."""

    def __init__(self, path: Path, size: int, ring: list, progress) -> None:
        self.path, self.size, self.window = path, size, len(ring[0])
        self.progress = progress
        self.cond = threading.Condition()
        self.base = 0  # index of the lowest window not yet written
        self.bufs = ring  # shared anonymous memory: worker processes merge into it too
        self.filled: dict[int, int] = {}
        self.error: BaseException | None = None
        self.direct = hasattr(os, "O_DIRECT")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        try:
            self.fd = os.open(path, flags | (os.O_DIRECT if self.direct else 0), 0o644)
        except OSError:
            self.direct = False
            self.fd = os.open(path, flags, 0o644)
        self.nwin = max(1, -(-size // self.window))
        self.ready: set[int] = set()
        self.flusher = threading.Thread(target=self._flush_loop, name="merge-write", daemon=True)
        self.flusher.start()

    def _win_len(self, k: int) -> int:
        return min(self.window, self.size - k * self.window)

    def _wait_for(self, k: int) -> None:
        """Until window k is in the ring."""
        with self.cond:
            self.cond.wait_for(lambda: k < self.base + len(self.bufs) or self.error)
            if self.error:
                raise self.error

    def _filled(self, k: int, n: int) -> None:
        with self.cond:
            self.filled[k] = self.filled.get(k, 0) + n
            if self.filled[k] == self._win_len(k):
                self.ready.add(k)
                self.cond.notify_all()

    def reserve(self, pos: int, n: int) -> tuple[int, int] | None:
        """(ring slot, offset) of shard bytes [pos, pos+n) when they lie in one window (waits
        for it to enter the ring); None when they cross a boundary. commit() when written."""
        k = pos // self.window
        if n == 0 or (pos + n - 1) // self.window != k:
            return None
        self._wait_for(k)
        return k % len(self.bufs), pos - k * self.window

    def commit(self, pos: int, n: int) -> None:
        self._filled(pos // self.window, n)

    def put(self, pos: int, data: memoryview) -> None:
        """Copy data to shard bytes [pos, pos+len): waits for ring space, window by window."""
        done = 0
        while done < len(data):
            k = (pos + done) // self.window
            off = (pos + done) - k * self.window
            n = min(len(data) - done, self.window - off)
            self._wait_for(k)
            self.bufs[k % len(self.bufs)][off : off + n] = data[done : done + n]
            self._filled(k, n)
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


def _open_inputs(shards) -> dict[Path, int]:
    """Every input file opened once, before threads or worker processes start."""
    in_fds: dict[Path, int] = {}
    for _path, _h, placed in shards:
        for p in placed:
            t = p.tensor
            if t.base is not None:
                open_fd(t.base.path, in_fds)
            if t.source is not None:
                open_fd(t.src.path, in_fds)
            for op in t.ops:
                for key in op.keys.values():
                    open_fd(op.adapter.tensors[key].path, op.adapter._fds)
    return in_fds


def write_shards(shards, workers: int, progress: Progress, compute, processes=False) -> None:
    """Write every shard file; compute(piece, fds, out=None) writes a piece's bytes into out
    (a window of the stream) or returns them (np_engine or torch_engine), in worker threads
    or (processes) in worker processes forked here. Raises MergeError(exit 1) on an I/O or
    compute failure."""
    in_fds = _open_inputs(shards)
    ring = [mmap.mmap(-1, WINDOW_BYTES) for _ in range(RING)]
    todo = [pieces(placed, window=WINDOW_BYTES) for _path, _h, placed in shards]
    flat = [pc for shard_pieces in todo for pc in shard_pieces]
    forked = None
    try:
        if processes:
            forked = procs.Pool(workers, compute, flat, ring, in_fds)
        run = _runner(compute, in_fds, forked, {id(pc): i for i, pc in enumerate(flat)})
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="merge") as pool:
            for (path, head, placed), shard_pieces in zip(shards, todo, strict=True):
                size = len(head) + sum(p.tensor.nbytes for p in placed)
                stream = _ShardStream(path, size, ring, progress)
                try:
                    _run_shard(stream, head, shard_pieces, pool, workers, run)
                    stream.finish()
                finally:
                    stream.close()
    except (OSError, RuntimeError, ValueError) as err:
        raise failed("write_failed", f"writing the merged shards failed: {err}") from err
    finally:
        if forked is not None:
            forked.close()
        for fd in in_fds.values():
            os.close(fd)
        for b in ring:
            with contextlib.suppress(BufferError):  # a view still alive (error path): GC unmaps
                b.close()


def _runner(compute, in_fds: dict, forked, index: dict):
    """run(stream, piece): the piece merged into its window (or aside and copied there)."""

    def run(stream: _ShardStream, pc: Piece) -> None:
        where = stream.reserve(pc.pos, pc.nbytes)
        if forked is not None and where is not None:
            forked.run(index[id(pc)], *where)
        elif forked is not None:
            forked.run(index[id(pc)], take=lambda data: stream.put(pc.pos, data[: pc.nbytes]))
            return
        elif where is None:
            stream.put(pc.pos, compute(pc, in_fds))
            return
        else:
            slot, off = where
            with memoryview(stream.bufs[slot])[off : off + pc.nbytes] as view:
                compute(pc, in_fds, view)
        stream.commit(pc.pos, pc.nbytes)

    return run


def _run_shard(stream, head, todo: list[Piece], pool, workers: int, run) -> None:
    left: dict[int, int] = {}
    for pc in todo:
        left[id(pc.tensor)] = left.get(id(pc.tensor), 0) + 1
    lock = threading.Lock()

    def job(pc: Piece) -> None:
        try:
            run(stream, pc)
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

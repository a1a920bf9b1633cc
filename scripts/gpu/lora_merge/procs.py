"""Worker processes for the numpy engine: pieces merged in parallel, without the GIL.

The numpy engine works in cache-sized tiles, so a piece is hundreds of short numpy calls and
every one of them hands the GIL over: two threads merged slower than one (0.8x), two
processes 1.9x faster. So each worker thread of the writer hands its pieces to its own
process, forked once the plan, the input files and the ring of output windows exist (the
windows are shared memory). A process merges a piece straight into its window, or into its
own shared scratch buffer when the piece crosses a window boundary, and answers with an
empty message or the error text. It ignores Ctrl-C (the parent handles it) and exits when
its pipe closes, so nothing outlives the merge.
"""

from __future__ import annotations

import mmap
import os
import queue
import signal
import struct
import sys

_TASK = struct.Struct("<qqq")  # piece index, ring slot (-1: the worker's scratch), offset
_REPLY = struct.Struct("<I")  # length of the error text that follows (0: done)


def usable() -> bool:
    """fork() with shared anonymous memory: Linux (and other POSIX systems with fork)."""
    return hasattr(os, "fork") and sys.platform != "darwin"


def _read_exact(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def _serve(inp: int, out: int, compute, pieces, ring, scratch, fds) -> None:
    """The worker process: merge the pieces it is sent until its pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    code, current = 0, None
    try:
        while (task := _read_exact(inp, _TASK.size)) and len(task) == _TASK.size:
            index, slot, off = _TASK.unpack(task)
            pc = pieces[index]
            if pc.tensor is not current:  # pieces come in order: free the last tensor's
                for op in getattr(current, "ops", ()):  # adapter arrays
                    op.release()
                current = pc.tensor
            target = memoryview(scratch if slot < 0 else ring[slot])[off : off + pc.nbytes]
            try:
                data = compute(pc, fds, target)
                if data is not target:
                    target[:] = data
                reply = b""
            except Exception as err:  # reported to the parent, which fails the merge
                reply = f"{type(err).__name__}: {err}".encode()
            target.release()
            os.write(out, _REPLY.pack(len(reply)) + reply)
    except BaseException:
        code = 1
    finally:
        os._exit(code)


class Worker:
    """One forked process and its two pipes."""

    def __init__(self, compute, pieces, ring, scratch_bytes: int, fds: dict, others) -> None:
        """others: the workers forked before; their pipe ends are closed in this child, or
        they would never see the end of their task pipe."""
        self.scratch = mmap.mmap(-1, max(scratch_bytes, mmap.PAGESIZE))
        task_r, self.task_w = os.pipe()
        self.reply_r, reply_w = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the child never returns from _serve
            for fd in [self.task_w, self.reply_r, *(f for w in others for f in w.fds)]:
                os.close(fd)
            _serve(task_r, reply_w, compute, pieces, ring, self.scratch, fds)
        os.close(task_r)
        os.close(reply_w)

    @property
    def fds(self) -> tuple[int, int]:
        return self.task_w, self.reply_r

    def run(self, index: int, slot: int, off: int) -> None:
        os.write(self.task_w, _TASK.pack(index, slot, off))
        head = _read_exact(self.reply_r, _REPLY.size)
        if len(head) < _REPLY.size:
            raise RuntimeError(f"merge worker process {self.pid} died")
        (n,) = _REPLY.unpack(head)
        if n:
            raise RuntimeError(_read_exact(self.reply_r, n).decode(errors="replace"))

    def close(self) -> None:
        os.close(self.task_w)  # the child sees the end of its pipe and exits
        os.waitpid(self.pid, 0)
        os.close(self.reply_r)
        self.scratch.close()


class Pool:
    """Worker processes handed out to the writer's threads, one at a time each."""

    def __init__(self, n: int, compute, pieces, ring, fds: dict) -> None:
        scratch = max((pc.nbytes for pc in pieces), default=0)
        self.workers: list[Worker] = []
        self.idle: queue.SimpleQueue = queue.SimpleQueue()
        try:
            for _ in range(n):
                self.workers.append(Worker(compute, pieces, ring, scratch, fds, self.workers))
                self.idle.put(self.workers[-1])
        except BaseException:
            self.close()
            raise

    def run(self, index: int, slot: int = -1, off: int = 0, take=None) -> None:
        """Merge piece index into ring[slot][off:]; slot -1: into the worker's scratch
        buffer, handed to take(memoryview) before the worker serves anyone else."""
        worker = self.idle.get()
        try:
            worker.run(index, slot, off)
            if slot < 0:
                with memoryview(worker.scratch) as data:
                    take(data)
        finally:
            self.idle.put(worker)

    def close(self) -> None:
        for worker in self.workers:
            worker.close()
        self.workers = []

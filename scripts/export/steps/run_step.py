"""Run one planned step with its output in a log file; record exit code, duration and peak memory.

Usage:
  run_step.py --log FILE --stats FILE -- PROGRAM [ARGS...]

stdout and stderr of the step go to FILE (appended), stdin is closed. The stats file gets
{"schema_version": 1, "exit_code", "seconds", "peak_rss_kib"} (peak RSS of the largest process
of the step's tree that has ended, from getrusage). Exits with the step's exit code (128+N when a
signal N ended it, 127 when the program is not found). SIGINT/SIGTERM are passed on to the step,
and on Linux the step dies with this process (and this process with the build script), so a
killed build leaves no orphaned converter holding GPU memory.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

SCHEMA_VERSION = 1
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """Ask the kernel to SIGTERM this process when its parent dies (Linux; no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("run_step: error: give the command after --", file=sys.stderr)
        return 2
    cut = argv.index("--")
    parser = argparse.ArgumentParser(description="run one build step")
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--stats", type=Path, required=True)
    args = parser.parse_args(argv[:cut])
    command = argv[cut + 1 :]
    if not command:
        print("run_step: error: no command after --", file=sys.stderr)
        return 2

    _die_with_parent()
    start = time.monotonic()
    with args.log.open("ab") as log:
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,  # no threads here
            )
        except FileNotFoundError:
            log.write(f"run_step: command not found: {command[0]}\n".encode())
            code = 127
            proc = None
        except PermissionError:
            log.write(f"run_step: not executable: {command[0]}\n".encode())
            code = 126
            proc = None
        if proc is not None:

            def forward(signum, _frame):
                proc.send_signal(signum)

            signal.signal(signal.SIGINT, forward)
            signal.signal(signal.SIGTERM, forward)
            rc = proc.wait()
            code = 128 - rc if rc < 0 else rc
    stats = {
        "schema_version": SCHEMA_VERSION,
        "command": command[0],
        "exit_code": code,
        "seconds": round(time.monotonic() - start, 3),
        "peak_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss or None,
    }
    try:
        args.stats.write_text(json.dumps(stats) + "\n")
    except OSError as exc:  # the step's own result stands; the manifest just lacks its stats
        print(f"run_step: cannot write {args.stats}: {exc.strerror or exc}", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())

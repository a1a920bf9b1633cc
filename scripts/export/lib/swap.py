"""Put a complete staging dir in its output's place so that a kill at any instant leaves either
the old artifact or the new one, never neither.

Library:
  put_in_place(staging, output)   a new output: one rename. An existing one (--force): an
                                  exchange of the two dirs (renameat2 RENAME_EXCHANGE, Linux
                                  3.15+ on most filesystems), then the old one (now at the
                                  staging path) is removed; where the exchange is not available,
                                  the old one is moved aside to .NAME.old-PID first.
  restore_aside(output) -> Path | None   the next build's repair after a kill between the two
                                  renames of the fallback: the aside dir goes back in place.
Tests only: EXPORT_NO_EXCHANGE=1 takes the fallback; EXPORT_KILL_AT=<point> kills this process
with SIGKILL at that point (before_swap, after_exchange, after_aside), to show that no instant
leaves the output missing for good.
"""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import signal
from pathlib import Path

AT_FDCWD = -100
RENAME_EXCHANGE = 2 << 0


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically; False where the kernel or filesystem cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes.append(ctypes.c_uint)
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def aside_path(output: Path) -> Path:
    return output.parent / f".{output.name}.old-{os.getpid()}"


def _point(name: str) -> None:
    if os.environ.get("EXPORT_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)


def put_in_place(staging: Path, output: Path) -> None:
    _point("before_swap")
    if not output.exists():
        os.rename(staging, output)
        return
    if os.environ.get("EXPORT_NO_EXCHANGE") != "1" and _exchange(staging, output):
        _point("after_exchange")
        shutil.rmtree(staging, ignore_errors=True)  # the old artifact, now at the staging path
        return
    aside = aside_path(output)
    os.rename(output, aside)
    _point("after_aside")
    os.rename(staging, output)
    shutil.rmtree(aside, ignore_errors=True)


def _alive(pid_text: str) -> bool:
    try:
        os.kill(int(pid_text), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def restore_aside(output: Path) -> Path | None:
    """When output is missing and an old one was moved aside by a build that is gone, put it
    back. Returns the dir restored, if any."""
    if output.exists():
        return None
    for aside in sorted(output.parent.glob(f".{output.name}.old-*")):
        pid = aside.name.rsplit("-", 1)[-1]
        if aside.is_dir() and (aside / "build.json").is_file() and not _alive(pid):
            os.rename(aside, output)
            return aside
    return None

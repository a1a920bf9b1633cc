"""The files of an artifact: what build.json lists (size, sha256, a sampled digest), whether a
published artifact still has them, their modes, and OSError as one line naming the fix.

Library:
  describe(root) -> {relpath: {"bytes", "sha256", "sample"}}   every file but build.json
  damage(root, files, *, full=False) -> (missing, changed)       sizes and sampled digests;
                                                                 full=True: every sha256 too
  make_readable(root)        dirs and executables 0755, other files 0644
  os_error(exc, root) -> ExportError   (code 1) the path, what went wrong, and what to do
  read_stages(path), step_stats(staging, step)

The sampled digest (size + nine 64 KiB windows, as the model fingerprint) is what the
up-to-date check compares: about a millisecond a file, and it sees a deleted, truncated or
replaced file. sha256 of the whole content is for `make verify --full`.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from errors import ExportError

HASH = "sha256"
SAMPLE_WINDOWS = 9
SAMPLE_BYTES = 64 * 1024
MANIFEST = "build.json"


def _files(root: Path) -> list[Path]:
    return sorted(
        p for p in root.rglob("*") if p.is_file() and p.relative_to(root).as_posix() != MANIFEST
    )


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:  # (hashlib.file_digest is 3.11+; the 0.x containers have 3.10)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def update_with_windows(h, fh, size: int) -> None:
    """Feed h nine 64 KiB windows spread evenly over an open file of `size` bytes."""
    span = max(size - SAMPLE_BYTES, 0)
    for i in range(SAMPLE_WINDOWS):
        fh.seek(span * i // (SAMPLE_WINDOWS - 1))
        h.update(fh.read(SAMPLE_BYTES))


def sample(path: Path) -> str:
    """sha256 over the size and nine 64 KiB windows spread evenly over the file."""
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        update_with_windows(h, fh, size)
    return h.hexdigest()


def _entry(path: Path) -> dict:
    return {"bytes": path.stat().st_size, HASH: sha256(path), "sample": sample(path)}


def describe(root: Path) -> dict[str, dict]:
    files = _files(root)
    workers = min(8, os.cpu_count() or 1, max(1, len(files)))
    with ThreadPoolExecutor(max_workers=workers) as pool:  # hashlib releases the GIL
        entries = list(pool.map(_entry, files))
    return {p.relative_to(root).as_posix(): e for p, e in zip(files, entries, strict=True)}


def damage(root: Path, files: dict[str, dict], *, full: bool = False) -> tuple[list, list]:
    """(missing, changed) relative paths of a published artifact against its build.json."""
    missing, changed = [], []
    for rel, entry in files.items():
        path = root / rel
        try:
            size = path.stat().st_size
        except OSError:
            missing.append(rel)
            continue
        if (
            size != entry.get("bytes")
            or sample(path) != entry.get("sample")
            or (full and sha256(path) != entry.get(HASH))
        ):
            changed.append(rel)
    return missing, changed


def make_readable(root: Path) -> None:
    """Whatever mode the writers used: dirs and executables 0755, files 0644."""
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            continue
        executable = stat.S_ISDIR(mode) or mode & stat.S_IXUSR
        want = 0o755 if executable else 0o644
        if stat.S_IMODE(mode) != want:
            path.chmod(want)


_FIXES = {
    errno.ENOSPC: "free space on that disk (stale .staging dirs of failed builds are safe to "
    "delete), or build with --output on a larger disk",
    errno.EDQUOT: "free space under your quota, or build with --output on another disk",
    errno.EROFS: "the filesystem is read-only: choose --output (or OUTPUTS_DIR) on a writable one",
    errno.EACCES: "no permission: fix the owner or mode of that dir, or choose another --output",
    errno.EPERM: "not permitted: fix the owner or mode of that dir, or choose another --output",
}


def os_error(exc: OSError, root: Path | None = None) -> ExportError:
    """One line for a failed write under root: the path written (root itself when the error
    names the source of a copy), what went wrong and what to do."""
    where = str(exc.filename or root or "a file of the artifact")
    if root is not None and not where.startswith(str(root)):
        where = str(root)
    what = exc.strerror or str(exc)
    fix = _FIXES.get(exc.errno or 0, "see the error; the staging dir is kept for inspection")
    return ExportError(f"cannot write {where}: {what}", code=1, id="os_error", fix=fix)


def read_stages(path: Path) -> list[dict]:
    """Stage lines NAME<TAB>SECONDS<TAB>STATUS written by the build's stages."""
    if not path.is_file():
        return []
    stages = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 3:
            try:
                seconds = float(parts[1])
            except ValueError:
                seconds = None
            stages.append({"name": parts[0], "seconds": seconds, "status": parts[2]})
    return stages


def step_stats(staging: Path, step: str) -> dict:
    try:
        return json.loads((staging / "logs" / f"{step}.stats.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}

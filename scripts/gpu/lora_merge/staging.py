"""Atomic output: write into a hidden staging dir beside the output, rename at the end.

The staging dir `.<name>.partial` holds a `.owner` file with the writer's pid. A merge
killed at any point leaves only that hidden dir (never a complete-looking output); the next
run removes it when its owner is gone, and refuses to start while the owner is alive.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from lora_merge.errors import bad_input, failed

OWNER = ".owner"


def staging_path(output: Path) -> Path:
    return output.parent / f".{output.name}.partial"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_output(output: Path, overwrite: bool) -> None:
    if output.exists() and not overwrite:
        raise bad_input("output_exists", f"{output}: exists; pass --overwrite to replace it")
    if output.exists() and not output.is_dir():
        raise bad_input("output_not_dir", f"{output}: exists and is not a directory")


def create(output: Path) -> Path:
    stage = staging_path(output)
    owner = stage / OWNER
    if stage.exists():
        try:
            pid = int(owner.read_text().strip())
        except (OSError, ValueError):
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise failed("merge_in_progress", f"{stage}: another merge (pid {pid}) is writing it")
        shutil.rmtree(stage)
    output.parent.mkdir(parents=True, exist_ok=True)
    stage.mkdir()
    owner.write_text(f"{os.getpid()}\n")
    return stage


def publish(stage: Path, output: Path) -> None:
    """Rename stage into place (replacing an existing output), then drop the owner file."""
    (stage / OWNER).unlink()
    fd = os.open(stage, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    old = None
    if output.exists():
        old = output.parent / f".{output.name}.old-{os.getpid()}"
        os.rename(output, old)
    os.rename(stage, output)
    if old is not None:
        shutil.rmtree(old)

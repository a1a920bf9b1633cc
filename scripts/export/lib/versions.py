"""Versions and the tables keyed by them (data/versions.json): the one place that parses a version.

- parse(text) / at_least(version, minimum): PEP 440 through `packaging`; pre-releases sort before
  their release (1.3.0rc20 < 1.3.0), so "1.0.0rc1" is inside a window that starts at 1.0.0's line.
- window_problem(backend, version): why a TensorRT-LLM version cannot build that backend, or None.
- stack_for(version): the TensorRT/torch/CUDA/ModelOpt/transformers/Python row of its release line.
- min_cc(precision): the lowest GPU compute capability that runs a dtype or quantization format.
- cli_record(version): which recorded trtllm-build/convert CLI a version is checked against.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import InvalidVersion, Version

DATA = Path(__file__).resolve().parent / "data" / "versions.json"


@lru_cache(maxsize=1)
def tables() -> dict:
    """data/versions.json, read once per process (callers only read it)."""
    return json.loads(DATA.read_text(encoding="utf-8"))


def gpu_key(name: str) -> str | None:
    """The versions.json "gpus" entry a GPU name is (longest match, spaces and case ignored)."""
    flat = name.replace(" ", "").lower()
    for known in sorted(tables()["gpus"], key=len, reverse=True):
        if known.replace(" ", "").lower() in flat:
            return known
    return None


def parse(text: object) -> Version | None:
    """The version, or None when `text` is not one ("v1.2.0" and " 1.2 " are accepted)."""
    if text is None:
        return None
    try:
        return Version(str(text).strip())
    except InvalidVersion:
        return None


def at_least(version: str, minimum: str) -> bool:
    have, need = parse(version), parse(minimum)
    return have is not None and need is not None and have >= need


def release_line(text: str | None) -> str | None:
    """'1.2.0rc3' -> '1.2' (the key of the dependency table)."""
    v = parse(text)
    return f"{v.major}.{v.minor}" if v else None


def same_line(a: str | None, b: str | None) -> bool:
    return release_line(a) is not None and release_line(a) == release_line(b)


def stack_for(trtllm_version: str | None) -> dict | None:
    """The dependency row of the version's release line, or None when none is recorded."""
    line = release_line(trtllm_version)
    return tables()["trtllm"].get(line) if line else None


# ------------------------------------------------------------------------------ backend windows


def window(backend: str) -> tuple[str, str | None]:
    w = tables()["backends"][backend]
    return w["min"], w["max"]


def window_text(backend: str) -> str:
    low, high = window(backend)
    return f"{low} .. {high}" if high else f"{low} and newer"


def inside(backend: str, version: str) -> bool:
    v = parse(version)
    if v is None:
        return False
    low, high = (parse(x) for x in window(backend))
    # Pre-releases of the first version belong to the window too (1.0.0rc1 for pytorch).
    if v < low and Version(v.base_version) < low:
        return False
    return not (high and v > high)


def window_problem(backend: str, version_text: str) -> str | None:
    """None when `version_text` is inside the backend's window, else a one-line reason."""
    v = parse(version_text)
    if v is None:
        return f"{version_text!r} is not a version"
    if inside(backend, version_text):
        return None
    low, high = window(backend)
    relation, bound = ("older than", low) if v < parse(low) else ("newer than", high)
    other = "pytorch" if backend == "engine" else "engine"
    alt = f"; or use backend: {other} ({window_text(other)})" if inside(other, version_text) else ""
    return (
        f"TensorRT-LLM {version_text} is {relation} {bound}: the {backend} backend needs "
        f"{window_text(backend)}{alt}"
    )


# ------------------------------------------------------------------------------ specifiers, GPUs


def spec_ok(spec: str | None, version_text: str | None) -> bool | None:
    """True/False when both are known, None when either is unknown or unparsable."""
    v = parse(version_text)
    if not spec or v is None:
        return None
    try:
        spec_set = SpecifierSet(spec)
    except InvalidSpecifier:
        return None
    return spec_set.contains(Version(v.public), prereleases=True)


def cc_tuple(text: object) -> tuple[int, int] | None:
    """'9.0' -> (9, 0); None when not a compute capability."""
    try:
        major, minor = str(text).split(".")
        return int(major), int(minor)
    except (ValueError, AttributeError):
        return None


def min_cc(precision: str) -> str | None:
    """Lowest compute capability for a dtype or quantization format (None: any GPU)."""
    return tables()["precision_min_cc"].get(precision)


def cc_at_least(cc: object, need: str) -> bool:
    have, want = cc_tuple(cc), cc_tuple(need)
    return have is None or want is None or have >= want


def cli_record(version: str) -> str:
    """The newest recorded CLI at or below `version` (the oldest record below all of them)."""
    records = tables()["cli_records"]
    usable = [r for r in records if at_least(version, r)]
    return max(usable, key=Version) if usable else records[0]

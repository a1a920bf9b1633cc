"""Typed build configs for the tests: the shipped config (a profile applied) with dotted keys
changed, validated again, as every stage receives it."""

from __future__ import annotations

import copy
from functools import lru_cache
from pathlib import Path

import build_config

SHIPPED = Path(__file__).resolve().parents[2] / "configs" / "export" / "tensorrt_llm.yaml"


@lru_cache(maxsize=32)
def _shipped(profile: str | None) -> dict:
    return build_config.check(SHIPPED, profile).chosen.model_dump(mode="json")


def as_dict(profile: str | None = None, **changes) -> dict:
    """The shipped settings as a plain dict, with changes {"build__max_seq_len": 4096} or
    {"build.max_seq_len": 4096} applied (not validated)."""
    return changed(_shipped(profile), **{k.replace("__", "."): v for k, v in changes.items()})


def changed(doc: dict, **changes) -> dict:
    """A deep copy of doc with dotted keys set: changed(d, **{"build.max_seq_len": 4096})."""
    doc = copy.deepcopy(doc)
    for dotted, value in changes.items():
        node = doc
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    return doc


def typed(profile: str | None = None, **changes) -> build_config.BuildConfig:
    """The shipped settings with changes, validated (the rules of the file are not re-run)."""
    return build_config.BuildConfig.model_validate(as_dict(profile, **changes))

"""Shared pytest fixtures: tiny models and adapters from scripts/dev/tiny_models.py, in tmp dirs."""

from __future__ import annotations

from pathlib import Path

import pytest
import tiny_models

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_model_cache(tmp_path_factory):
    """One tiny base model per (family, tie, dtype) for the whole session; treat as read-only."""
    made: dict[tuple, Path] = {}

    def get(family: str = "llama", *, tie: bool | None = None, dtype: str = "float32") -> Path:
        key = (family, tie, dtype)
        if key not in made:
            out = tmp_path_factory.mktemp(f"base-{family}")
            made[key] = tiny_models.make_model(family, out, tie=tie, dtype=dtype)
        return made[key]

    return get


@pytest.fixture
def make_adapter(tmp_path):
    """Factory: make_adapter(base_dir, **LoraConfig kwargs) -> adapter dir under tmp_path."""
    counter = iter(range(1000))

    def make(base_dir: Path, **kwargs) -> Path:
        return tiny_models.make_adapter(base_dir, tmp_path / f"adapter{next(counter)}", **kwargs)

    return make

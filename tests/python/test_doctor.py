"""doctor.py in-process: config + probe (fakes on PATH/PYTHONPATH) + checks -> table or JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import doctor
import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "export" / "tensorrt_llm.yaml"
sys.path.insert(0, str(REPO / "tests" / "fakes"))
import make_dist_info  # noqa: E402


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """machine(gpu, trtllm): fake nvidia-smi fixture and a fake TensorRT-LLM stack on sys.path."""

    def make(gpu: str, trtllm: str | None = "1.2.0") -> Path:
        monkeypatch.setenv("PATH", f"{REPO / 'tests/fakes/bin'}:/usr/bin:/bin")
        monkeypatch.setenv("FAKE_NVIDIA_SMI", gpu)
        monkeypatch.setenv("CUDA_VERSION", "13.0.1")
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        if trtllm:
            site = tmp_path / f"site-{trtllm}"
            make_dist_info.make_dist_info(site, make_dist_info.stack(trtllm))
            monkeypatch.syspath_prepend(str(site))
        return tmp_path / "out"

    return make


def run(args, capsys) -> tuple[int, str, str]:
    rc = doctor.main(args)
    out, err = capsys.readouterr()
    return rc, out, err


def test_a_matching_h200_passes_with_a_readable_table(machine, capsys):
    out_dir = machine("h200")
    rc, out, _ = run(["--config", str(SHIPPED), "--profile", "h200-fp8", "--output-dir",
                      str(out_dir)], capsys)  # fmt: skip
    assert rc == 0, out
    assert "NVIDIA H200 (compute 9.0" in out
    assert "[FAIL]" not in out
    rows = {line.split()[1]: line.split()[0] for line in out.splitlines() if line.startswith("  [")}
    assert rows["gpu_target"] == "[ok]"
    assert rows["driver_cuda"] == "[ok]"
    assert out.rstrip().splitlines()[-1].startswith("0 failed")


def test_a_precision_the_gpu_cannot_run_fails_with_a_fix(machine, capsys):
    machine("a100")
    rc, out, _ = run(["--config", str(SHIPPED), "--profile", "h100-fp8"], capsys)
    assert rc == 1
    lines = out.splitlines()
    i = next(n for n, line in enumerate(lines) if "[FAIL] gpu_precision" in line)
    assert "fix:" in lines[i + 1]
    assert "(profiles for compute capability 8.0: a100-bf16)" in lines[i + 1]


def test_json_carries_config_facts_and_checks(machine, capsys):
    machine("nodriver")
    rc, out, _ = run(["--config", str(SHIPPED), "--json"], capsys)
    doc = json.loads(out)
    assert rc == 1
    assert doc["schema_version"] == 1 and doc["ok"] is False
    assert doc["config"]["config"]["backend"] == "engine"
    assert doc["facts"]["gpu"]["status"] == "error"
    present = next(c for c in doc["checks"] if c["id"] == "gpu_present")
    assert present["status"] == "fail" and "driver" in present["fix"]
    assert doc["summary"]["fail"] == sum(c["status"] == "fail" for c in doc["checks"])


def test_without_trtllm_doctor_fails_and_says_where_to_run(machine, capsys):
    machine("h100", trtllm=None)
    rc, out, _ = run(["--config", str(SHIPPED), "--json"], capsys)
    checks = {c["id"]: c for c in json.loads(out)["checks"]}
    assert rc == 1
    assert checks["trtllm_installed"]["status"] == "fail"
    assert "container" in checks["trtllm_installed"]["fix"]


def test_a_bad_config_exits_2_with_nothing_on_stdout(machine, capsys):
    machine("h200")
    bad = REPO / "tests/fixtures/configs/bad/unknown-key-typo.yaml"
    rc, out, err = run(["--config", str(bad)], capsys)
    assert (rc, out) == (2, "")
    assert f"{bad}:23: build.max_seq_length: unknown key" in err


def test_an_unknown_profile_exits_2(machine, capsys):
    machine("h200")
    rc, out, err = run(["--config", str(SHIPPED), "--profile", "h100-pf8"], capsys)
    assert (rc, out) == (2, "")
    assert "did you mean 'h100-fp8'" in err


def test_a_broken_profile_that_is_not_selected_is_a_warning_line_and_doctor_goes_on(
    machine, capsys
):
    machine("h200")
    config = REPO / "tests/fixtures/configs/bad/profile-conflict.yaml"
    rc, out, err = run(["--config", str(config)], capsys)
    assert rc in (0, 1) and "Checks" in out
    assert err.startswith(
        f"doctor: config warning: {config}:42: profiles.long.build.max_input_len: "
    )
    assert err.rstrip().endswith("(profile long is not selected: this build goes on)")
    rc, out, err = run(["--config", str(config), "--profile", "long"], capsys)
    assert (rc, out) == (2, "")
    assert err.startswith(f"doctor: config error: {config}:42: profiles.long.build.max_input_len: ")


def test_doctor_does_not_import_torch(tmp_path):
    env = dict(os.environ, FAKE_NVIDIA_SMI="h200",
               PATH=f"{REPO / 'tests/fakes/bin'}:/usr/bin:/bin",
               PYTHONPATH=str(REPO / "scripts/export"))  # fmt: skip
    code = (
        "import sys, doctor; rc = doctor.main(sys.argv[1:]); "
        "print('TORCH', 'torch' in sys.modules, file=sys.stderr)"
    )
    argv = [sys.executable, "-c", code, "--config", str(SHIPPED), "--output-dir", str(tmp_path)]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert "TORCH False" in proc.stderr
    assert "Checks" in proc.stdout


def test_deep_imports_tensorrt_llm_and_names_an_abi_mismatch(
    machine, capsys, tmp_path, monkeypatch
):
    machine("h200")
    broken = tmp_path / "broken"
    (broken / "tensorrt_llm").mkdir(parents=True)
    (broken / "tensorrt_llm" / "__init__.py").write_text(
        "raise ImportError('libth_common.so: undefined symbol: _ZN3c104cuda9SetDevice')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(broken))
    rc, out, _ = run(
        ["--config", str(SHIPPED), "--profile", "h200-fp8", "--deep", "--json"], capsys
    )
    checks = {c["id"]: c for c in json.loads(out)["checks"]}
    assert rc == 1
    assert checks["trtllm_import"]["status"] == "fail"
    assert "undefined symbol" in checks["trtllm_import"]["message"]
    assert checks["torch_cuda"]["status"] in {"pass", "fail"}  # ran; CPU-only torch fails

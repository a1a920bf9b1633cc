"""probe.py against captured nvidia-smi outputs (fake on PATH) and fake dist-info dirs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import probe
import pytest

REPO = Path(__file__).resolve().parents[2]
FAKES = REPO / "tests" / "fakes"
sys.path.insert(0, str(FAKES))
import make_dist_info  # noqa: E402

# fixture -> (status, GPU count, first name, compute capability, CUDA the driver supports, MIG)
GPU_TABLE = {
    "h200": ("ok", 1, "NVIDIA H200", "9.0", "13.0", "Disabled"),
    "h100": ("ok", 1, "NVIDIA H100 80GB HBM3", "9.0", "12.4", "Disabled"),
    "a100": ("ok", 1, "NVIDIA A100-SXM4-80GB", "8.0", "12.2", "Disabled"),
    "l40s": ("ok", 1, "NVIDIA L40S", "8.9", "12.4", "N/A"),
    "a10": ("ok", 1, "NVIDIA A10", "8.6", "12.2", "N/A"),
    "h100x8": ("ok", 8, "NVIDIA H100 80GB HBM3", "9.0", "12.8", "Disabled"),
    "mig": ("ok", 1, "NVIDIA A100-SXM4-40GB", "8.0", "12.4", "Enabled"),
    "mixed": ("ok", 2, "NVIDIA A100-SXM4-80GB", "8.0", "12.4", "Disabled"),
    "t4-r470": ("ok", 1, "Tesla T4", "7.5", "11.4", "N/A"),
    "none": ("absent", 0, None, None, None, None),
    "nodriver": ("error", 0, None, None, None, None),
}


@pytest.fixture
def fake_path(tmp_path, monkeypatch):
    """PATH with the fakes first and no real NVIDIA tools; returns a dir for extra fakes."""
    extra = tmp_path / "bin"
    extra.mkdir()
    monkeypatch.setenv(
        "PATH", os.pathsep.join([str(extra), str(FAKES / "bin"), "/usr/bin", "/bin"])
    )
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.delenv("CUDA_VERSION", raising=False)
    return extra


@pytest.mark.parametrize("name", GPU_TABLE)
def test_gpu_facts_from_captured_nvidia_smi(name, fake_path, monkeypatch):
    status, count, first, cc, cuda, mig = GPU_TABLE[name]
    monkeypatch.setenv("FAKE_NVIDIA_SMI", name)
    gpu = probe.probe_gpu()
    assert gpu["status"] == status
    assert len(gpu["devices"]) == count
    assert gpu["cuda_driver_version"] == cuda
    if count:
        d = gpu["devices"][0]
        assert (d["name"], d["compute_capability"], d["mig_mode"]) == (first, cc, mig)
        assert d["memory_total_mib"] > d["memory_free_mib"] > 0
        assert gpu["driver_version"]
    else:
        assert gpu["detail"]


def test_old_driver_without_compute_cap_field_is_asked_again(fake_path, monkeypatch, tmp_path):
    log = tmp_path / "calls"
    monkeypatch.setenv("FAKE_NVIDIA_SMI", "t4-r470")
    monkeypatch.setenv("FAKE_NVIDIA_SMI_LOG", str(log))
    assert probe.probe_gpu()["devices"][0]["compute_capability"] == "7.5"
    queries = [c for c in log.read_text().splitlines() if c.startswith("--query-gpu")]
    assert "compute_cap" in queries[0] and "compute_cap" not in queries[1]


def test_the_h200_capture_is_read_exactly(fake_path, monkeypatch):
    monkeypatch.setenv("FAKE_NVIDIA_SMI", "h200")
    gpu = probe.probe_gpu()
    assert gpu["driver_version"] == "580.159.04"
    assert gpu["devices"] == [{
        "index": 0, "name": "NVIDIA H200", "compute_capability": "9.0",
        "memory_total_mib": 143771, "memory_free_mib": 143156, "mig_mode": "Disabled",
        "uuid": "GPU-d85bdebe-e66d-a81c-841e-b669c42688c0",
    }]  # fmt: skip


@pytest.mark.parametrize(
    ("visible", "indices"),
    [("1,3", [1, 3]), ("GPU-h1000005", [5]), ("2,99,4", [2]), ("", [])],
)
def test_cuda_visible_devices_limits_the_gpus(visible, indices, fake_path, monkeypatch):
    monkeypatch.setenv("FAKE_NVIDIA_SMI", "h100x8")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    gpu = probe.probe_gpu()
    assert [d["index"] for d in gpu["devices"]] == indices
    assert gpu["status"] == ("ok" if indices else "absent")


def test_nvidia_smi_missing_is_a_fact_not_a_crash(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    facts = probe.collect(str(tmp_path / "out"))
    assert facts["gpu"]["status"] == "absent"
    assert facts["mpi"] == {"status": "absent", "version": None}
    assert facts["programs"] == dict.fromkeys(probe.PROGRAMS)
    assert facts["cuda_runtime"] is None or facts["cuda_runtime_source"] == "CUDA_VERSION"


def test_fake_nvidia_smi_rejects_what_the_real_one_rejects(fake_path):
    env = dict(os.environ, FAKE_NVIDIA_SMI="h200")
    argv = ["nvidia-smi", "--query-gpu=index,gpu_temp", "--format=csv,noheader,nounits"]
    bad = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    assert bad.returncode == 2
    assert 'Field "gpu_temp" is not a valid field to query.' in bad.stdout
    odd = subprocess.run(["nvidia-smi", "-q"], capture_output=True, text=True, env=env, check=False)
    assert odd.returncode == 2


def test_packages_come_from_dist_info_on_the_path(tmp_path, monkeypatch):
    site = tmp_path / "site"
    make_dist_info.make_dist_info(site, make_dist_info.stack("1.2.0"))
    make_dist_info.make_dist_info(site, {"tensorrt_llm": "1.2.1"})  # replaces, one version each
    monkeypatch.syspath_prepend(str(site))
    pkgs = probe.probe_packages()
    assert pkgs["tensorrt_llm"] == "1.2.1"
    assert pkgs["tensorrt"] == "10.14.1.48"
    assert pkgs["torch"] == "2.9.1"  # the fake shadows the venv's torch, as PYTHONPATH does
    assert pkgs["nvidia-modelopt"] == "0.37.0"


def test_tensorrt_is_found_under_its_cuda_suffixed_name(tmp_path, monkeypatch):
    make_dist_info.make_dist_info(tmp_path, {"tensorrt-cu12": "10.9.0.34"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert probe.probe_packages()["tensorrt"] == "10.9.0.34"


def test_missing_packages_are_null(monkeypatch):
    monkeypatch.setattr(probe, "PACKAGES", {"tensorrt_llm": ["surely-not-installed-pkg"]})
    assert probe.probe_packages() == {"tensorrt_llm": None}


def test_probe_reads_the_packages_of_the_interpreter_it_runs_in(tmp_path, fake_path):
    site = tmp_path / "site"
    make_dist_info.main([str(site), "--stack", "0.21.0", "tensorrt==10.11.0.1"])
    env = dict(os.environ, PYTHONPATH=str(site), FAKE_NVIDIA_SMI="a100")
    out = subprocess.run([sys.executable, str(REPO / "scripts/export/lib/probe.py"),
                          "--output-dir", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, check=True).stdout  # fmt: skip
    facts = json.loads(out)
    assert facts["schema_version"] == 1
    assert facts["packages"]["tensorrt_llm"] == "0.21.0"
    assert facts["packages"]["tensorrt"] == "10.11.0.1"
    assert facts["gpu"]["devices"][0]["compute_capability"] == "8.0"
    assert facts["torch_cuda"] == {"status": "skipped"}
    assert facts["disk"]["path"] == str(tmp_path / "out")
    assert facts["disk"]["free_bytes"] > 0


@pytest.mark.parametrize(
    ("env", "status", "version"),
    [
        ({}, "ok", "Open MPI 4.1.7"),
        ({"FAKE_MPIRUN_VERSION": "5.0.3"}, "ok", "Open MPI 5.0.3"),
        ({"FAKE_MPIRUN_FLAVOR": "mpich", "FAKE_MPIRUN_VERSION": "4.2.0"}, "ok", "MPICH 4.2.0"),
        ({"FAKE_MPIRUN_FAIL": "127"}, "error", None),
    ],
)
def test_mpi_version(env, status, version, fake_path, monkeypatch):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    mpi = probe.probe_mpi()
    assert (mpi["status"], mpi["version"]) == (status, version)


def test_cuda_runtime_prefers_the_container_variable(fake_path, monkeypatch):
    monkeypatch.setenv("CUDA_VERSION", "12.8.1.012")
    assert probe.probe_cuda_runtime() == ("12.8", "CUDA_VERSION")
    monkeypatch.delenv("CUDA_VERSION")
    (fake_path / "nvcc").write_text(
        "#!/bin/sh\necho 'Cuda compilation tools, release 12.4, V12.4.131'\n"
    )
    (fake_path / "nvcc").chmod(0o755)
    assert probe.probe_cuda_runtime() == ("12.4", "nvcc")


def test_disk_is_measured_at_the_nearest_existing_parent(tmp_path):
    disk = probe.probe_disk(str(tmp_path / "a" / "b" / "c"))
    assert disk["measured_at"] == str(tmp_path.resolve())
    assert disk["free_bytes"] > 0


def test_host_memory_is_read():
    mem = probe.probe_memory()
    if Path("/proc/meminfo").exists():
        assert mem["total_bytes"] >= mem["available_bytes"] > 0


def test_torch_is_only_imported_on_request(tmp_path, fake_path):
    code = "import sys, probe; probe.collect(sys.argv[1]); print('torch' in sys.modules)"
    env = dict(os.environ, PYTHONPATH=str(REPO / "scripts/export/lib"), FAKE_NVIDIA_SMI="none")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, env=env, check=True).stdout  # fmt: skip
    assert out.strip() == "False"


def test_torch_probe_reports_the_build_it_imported():
    import torch

    facts = probe.probe_torch()
    assert facts["status"] == "ok"
    assert (facts["version"], facts["cuda"]) == (torch.__version__, torch.version.cuda)
    if torch.version.cuda is None:  # the dev venv's CPU build
        assert facts["available"] is False


@pytest.mark.parametrize(
    ("init", "status", "detail"),
    [
        ("__version__ = '1.2.0'\n", "ok", None),
        ("raise ImportError('libth.so: undefined symbol: _ZN3c1017RegisterOperators')\n", "error",
         "undefined symbol"),
        (None, "absent", "No module named 'tensorrt_llm'"),
    ],
)  # fmt: skip
def test_trtllm_import_runs_in_a_child(init, status, detail, tmp_path, monkeypatch):
    if init is not None:
        (tmp_path / "tensorrt_llm").mkdir()
        (tmp_path / "tensorrt_llm" / "__init__.py").write_text(init)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    facts = probe.probe_trtllm_import()
    assert facts["status"] == status
    if detail:
        assert detail in facts["detail"]
    else:
        assert facts["version"] == "1.2.0"


def test_mig_instance_uuids_keep_the_mig_gpu(fake_path, monkeypatch):
    monkeypatch.setenv("FAKE_NVIDIA_SMI", "mig")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "MIG-4d1d7a6e-8e2c-5a3b-9a0f-1b2c3d4e5f60")
    gpu = probe.probe_gpu()
    assert [d["mig_mode"] for d in gpu["devices"]] == ["Enabled"]

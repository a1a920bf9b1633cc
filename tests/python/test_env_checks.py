"""env_checks.py and versions.py: version windows, the dependency table, GPU vs precision,
driver vs CUDA, host."""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import env_checks
import probe
import pytest
import typed_configs as configs
import versions

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "export" / "tensorrt_llm.yaml"
sys.path.insert(0, str(REPO / "tests" / "fakes"))
import make_dist_info  # noqa: E402

_GPU_CACHE: dict[str, dict] = {}


def gpu_facts(name: str) -> dict:
    """probe.probe_gpu() against a captured nvidia-smi (the fake), once per fixture."""
    if name not in _GPU_CACHE:
        saved = dict(os.environ)
        os.environ.update(FAKE_NVIDIA_SMI=name, PATH=f"{REPO / 'tests/fakes/bin'}:/usr/bin:/bin")
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        try:
            _GPU_CACHE[name] = probe.probe_gpu()
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return copy.deepcopy(_GPU_CACHE[name])


def facts(gpu: str = "h100", trtllm: str | None = "1.2.0", **packages) -> dict:
    pkgs = dict.fromkeys(probe.PACKAGES)
    if trtllm:
        pkgs.update(make_dist_info.stack(trtllm))
    pkgs.update(
        {k.replace("_", "-") if k == "nvidia_modelopt" else k: v for k, v in packages.items()}
    )
    return {
        "schema_version": 1,
        "gpu": gpu_facts(gpu),
        "python": {"executable": "python3", "version": "3.12.3"},
        "packages": pkgs,
        "torch_cuda": {"status": "skipped"},
        "cuda_runtime": None,
        "programs": {"trtllm-build": "/x/trtllm-build" if trtllm else None,
                     "trtllm-serve": "/x/trtllm-serve" if trtllm else None,
                     "mpirun": "/x/mpirun", "nvidia-smi": "/x/nvidia-smi"},
        "mpi": {"status": "ok", "version": "Open MPI 4.1.7"},
        "disk": {"path": "outputs/gpu/tensorrt_llm", "free_bytes": 500 * 2**30},
        "memory": {"total_bytes": 256 * 2**30, "available_bytes": 200 * 2**30},
    }  # fmt: skip


def config(profile: str | None = None, **changes):
    """The shipped config with a profile, typed; changes as parallel__tp_size=2."""
    return configs.typed(profile, **changes)


def by_id(checks: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for c in checks:
        out.setdefault(c["id"], c)
    return out


def status(checks: list[dict], cid: str) -> str:
    return by_id(checks)[cid]["status"]


# --- windows -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "version", "inside"),
    [
        ("engine", "0.11.0", False),
        ("engine", "0.12.0", True),
        ("engine", "0.21.0", True),
        ("engine", "1.2.1", True),
        ("engine", "1.3.0rc1", True),
        ("engine", "1.3.0rc20", True),
        ("engine", "1.3.0rc21", False),
        ("engine", "1.3.0", False),
        ("pytorch", "0.21.0", False),
        ("pytorch", "1.0.0rc2", True),
        ("pytorch", "1.0.0", True),
        ("pytorch", "1.4.0", True),
    ],
)
def test_backend_windows(backend, version, inside):
    assert (versions.window_problem(backend, version) is None) == inside


def test_a_version_past_the_engine_window_points_to_the_pytorch_backend():
    assert "backend: pytorch" in versions.window_problem("engine", "1.3.0")
    assert "backend: engine" in versions.window_problem("pytorch", "0.21.0")


# --- the dependency table ------------------------------------------------------------------------


@pytest.mark.parametrize("trtllm", list(make_dist_info.STACKS))
def test_each_released_stack_passes_its_own_version_checks(trtllm):
    cfg = config("h100-fp8", **{"target.trtllm_version": trtllm})
    checks = env_checks.run_checks(cfg, facts("h100", trtllm))
    stack_ids = {"tensorrt_version", "torch_version", "modelopt_version", "transformers_version"}
    assert [c for c in checks if c["id"] in stack_ids and c["status"] != "pass"] == []


@pytest.mark.parametrize(
    ("packages", "cid", "expected"),
    [
        ({"tensorrt": "10.13.3.9"}, "tensorrt_version", "fail"),
        ({"tensorrt": None}, "tensorrt_version", "fail"),
        ({"torch": "2.10.1"}, "torch_version", "fail"),
        ({"torch": "2.9.0a0+145a3a7bda.nv25.10"}, "torch_version", "warn"),  # NGC build
        ({"torch": "2.9.1+cu130"}, "torch_version", "pass"),
        ({"transformers": "4.56.0"}, "transformers_version", "warn"),
        ({"nvidia_modelopt": None}, "modelopt_version", "fail"),  # fp8 needs ModelOpt
        ({"nvidia_modelopt": "0.35.0"}, "modelopt_version", "fail"),
    ],
)
def test_version_stack_mismatches(packages, cid, expected):
    checks = env_checks.run_checks(config("h100-fp8"), facts("h100", **packages))
    assert status(checks, cid) == expected
    if expected != "pass":
        assert by_id(checks)[cid]["fix"]


def test_modelopt_is_not_needed_without_quantization():
    checks = env_checks.run_checks(config(), facts("h100", nvidia_modelopt=None))
    assert status(checks, "modelopt_version") == "skip"


def test_pytorch_backend_does_not_need_tensorrt():
    cfg = config("h100-fp8-pytorch")
    checks = env_checks.run_checks(cfg, facts("h100", tensorrt=None))
    assert status(checks, "tensorrt_version") == "skip"


# --- TensorRT-LLM itself -----------------------------------------------------------------------


def test_no_trtllm_fails_doctor_but_only_warns_a_dry_run():
    f = facts("h100", trtllm=None)
    assert status(env_checks.run_checks(config(), f), "trtllm_installed") == "fail"
    dry = env_checks.run_checks(config(), f, require_machine=False)
    assert status(dry, "trtllm_installed") == "warn"
    assert status(dry, "backend_window") == "pass"  # judged on target.trtllm_version


@pytest.mark.parametrize(("installed", "expected"), [("1.2.0", "pass"), ("1.1.0", "fail")])
def test_installed_version_against_the_target(installed, expected):
    checks = env_checks.run_checks(config(), facts("h100", installed))
    assert status(checks, "trtllm_target") == expected


def test_a_patch_release_of_the_target_line_is_a_warning():
    f = facts("h100")
    f["packages"]["tensorrt_llm"] = "1.2.1"
    assert status(env_checks.run_checks(config(), f), "trtllm_target") == "warn"


def test_installed_trtllm_past_the_engine_window_fails():
    f = facts("h200")
    f["packages"]["tensorrt_llm"] = "1.3.0"
    check = by_id(env_checks.run_checks(config(), f))["backend_window"]
    assert check["status"] == "fail" and "backend: pytorch" in check["message"]


def test_trtllm_build_missing_from_path_fails():
    f = facts("h100")
    f["programs"]["trtllm-build"] = None
    assert status(env_checks.run_checks(config(), f), "trtllm_programs") == "fail"
    # the pytorch backend needs trtllm-serve instead
    assert status(env_checks.run_checks(config("h100-fp8-pytorch"), f), "trtllm_programs") == "pass"


# --- GPUs --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "profile", "precision", "target"),
    [
        ("h100", None, "pass", "pass"),
        ("h100", "h100-fp8", "pass", "pass"),
        ("h200", "h200-fp8", "pass", "pass"),
        ("a100", "h100-fp8", "fail", "fail"),  # no FP8 on Ampere
        ("a100", "a100-bf16", "pass", "pass"),
        ("l40s", "h100-fp8", "pass", "fail"),  # FP8 runs on Ada, but the engine targets 9.0
        ("l40s", "l40s-int4", "pass", "pass"),
        ("a10", "a100-bf16", "pass", "fail"),
        ("a10", "a10-int8", "pass", "pass"),
        ("t4-r470", "a100-bf16", "fail", "fail"),  # bfloat16 needs 8.0
        ("h200", "b200-nvfp4", "fail", "fail"),  # NVFP4 needs Blackwell
        ("mig", "a100-bf16", "pass", "warn"),  # a 40 GB A100 where the target says 80
    ],
)
def test_gpu_against_precision_and_target(gpu, profile, precision, target):
    cfg = config(profile)
    checks = env_checks.run_checks(cfg, facts(gpu, "0.21.0" if gpu == "t4-r470" else "1.2.0"))
    assert status(checks, "gpu_precision") == precision
    assert status(checks, "gpu_target") == target


def test_a_gpu_sharing_the_targets_compute_capability_is_told_to_add_itself():
    # H200 and H100 are both 9.0: the default target (H100, 80 GiB) must not be "fixed" to 141.
    check = by_id(env_checks.run_checks(config(), facts("h200")))["gpu_target"]
    assert check["status"] == "warn"
    assert check["fix"].startswith("add {name: H200")
    assert "--profile" in check["fix"]


def test_pytorch_backend_only_warns_on_another_gpu():
    checks = env_checks.run_checks(config("h100-fp8-pytorch"), facts("l40s"))
    assert status(checks, "gpu_target") == "warn"


def test_gpu_fix_names_something_that_runs_on_it():
    check = by_id(env_checks.run_checks(config("h100-fp8"), facts("a100")))["gpu_precision"]
    assert "fp8" in check["message"] and "8.9" in check["message"]
    assert "bfloat16" in check["fix"]


def test_volta_is_refused_by_recent_trtllm():
    f = facts("h100")
    f["gpu"]["devices"][0].update(name="Tesla V100-SXM2-32GB", compute_capability="7.0")
    assert status(env_checks.run_checks(config(), f), "gpu_supported") == "fail"


@pytest.mark.parametrize(("tp", "gpu", "expected"), [(8, "h100x8", "pass"), (2, "h100", "fail")])
def test_gpu_count_against_world_size(tp, gpu, expected):
    cfg = config(parallel__tp_size=tp)
    assert status(env_checks.run_checks(cfg, facts(gpu)), "gpu_count") == expected


def test_busy_gpu_is_a_warning_naming_it():
    check = by_id(env_checks.run_checks(config(parallel__tp_size=8), facts("h100x8")))[
        "gpu_memory_free"
    ]
    assert check["status"] == "warn" and "GPU 3" in check["message"]


@pytest.mark.parametrize(("tp", "expected"), [(1, "warn"), (2, "fail")])
def test_mig(tp, expected):
    checks = env_checks.run_checks(config("a100-bf16", parallel__tp_size=tp), facts("mig"))
    assert status(checks, "gpu_mig") == expected


def test_mixed_gpus_warn():
    assert status(env_checks.run_checks(config(), facts("mixed")), "gpu_uniform") == "warn"


@pytest.mark.parametrize(("gpu", "require", "expected"), [
    ("none", True, "fail"), ("nodriver", True, "fail"), ("none", False, "warn"),
])  # fmt: skip
def test_no_gpu(gpu, require, expected):
    checks = env_checks.run_checks(config("h100-fp8"), facts(gpu), require_machine=require)
    check = by_id(checks)["gpu_present"]
    assert check["status"] == expected
    assert status(checks, "gpu_precision") == "pass"  # judged on the target H100
    if gpu == "nodriver":
        assert "driver" in check["fix"]


def test_no_gpu_still_catches_a_target_that_cannot_run_the_precision():
    a100 = [{"name": "A100", "compute_capability": "8.0", "memory_gib": 80}]
    cfg = config("h100-fp8", **{"target.gpus": a100})
    checks = env_checks.run_checks(cfg, facts("none"), require_machine=False)
    assert status(checks, "gpu_precision") == "fail"


# --- driver vs CUDA ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gpu", "trtllm", "expected"),
    [
        ("h200", "1.2.0", "pass"),  # driver CUDA 13.0, needs 13
        ("h100", "1.2.0", "fail"),  # driver CUDA 12.4, needs 13
        ("h100", "0.21.0", "pass"),  # needs 12
        ("a100", "0.18.2", "warn"),  # driver CUDA 12.2 < 12.8: minor-version compatibility
        ("t4-r470", "0.21.0", "fail"),  # CUDA 11.4
    ],
)
def test_driver_against_cuda(gpu, trtllm, expected):
    checks = env_checks.run_checks(config(), facts(gpu, trtllm))  # the installed version decides
    assert status(checks, "driver_cuda") == expected


def test_driver_without_reported_cuda_is_judged_by_its_version():
    f = facts("h100", "1.2.0")
    f["gpu"]["cuda_driver_version"] = None
    check = by_id(env_checks.run_checks(config(), f))["driver_cuda"]
    assert check["status"] == "fail" and "580.65.06" in check["fix"]


# --- host --------------------------------------------------------------------------------------


def test_multi_gpu_needs_mpirun():
    f = facts("h100x8")
    f["mpi"] = {"status": "absent", "version": None}
    assert status(env_checks.run_checks(config(parallel__tp_size=2), f), "mpi") == "fail"
    assert status(env_checks.run_checks(config(), f), "mpi") == "pass"


def test_low_disk_and_ram_warn():
    f = facts("h100")
    f["disk"]["free_bytes"] = 5 * 2**30
    f["memory"]["available_bytes"] = 8 * 2**30
    checks = env_checks.run_checks(config(), f)
    assert status(checks, "disk") == "warn"
    assert status(checks, "host_memory") == "warn"


def test_calibration_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config("h100-fp8")
    assert status(env_checks.run_checks(cfg, facts("h100")), "calibration") == "warn"
    cfg = config("h100-fp8", **{"quantization.calibration.dataset": "calib.jsonl"})
    assert status(env_checks.run_checks(cfg, facts("h100")), "calibration") == "fail"
    (tmp_path / "calib.jsonl").write_text('{"text": "hi"}\n')
    assert status(env_checks.run_checks(cfg, facts("h100")), "calibration") == "pass"


def test_every_check_has_the_contract_shape():
    checks = env_checks.run_checks(config("h100-fp8"), facts("a100"))
    assert checks
    for c in checks:
        assert set(c) == {"id", "status", "message", "fix", "key"}
        assert c["status"] in {"pass", "warn", "fail", "skip"}
        assert c["message"] and "\n" not in c["message"]
        if c["status"] == "fail":
            assert c["fix"]


def test_torch_checks():
    cfg = config()
    f = facts("h200")
    assert env_checks.torch_checks(cfg, f)[0]["status"] == "skip"
    f["torch_cuda"] = {"status": "ok", "version": "2.9.1", "cuda": "12.8", "available": True}
    assert env_checks.torch_checks(cfg, f)[0]["status"] == "fail"  # 1.2 needs CUDA 13
    f["torch_cuda"]["cuda"] = "13.0"
    f["torch_cuda"]["device_count"] = 1
    assert env_checks.torch_checks(cfg, f)[0]["status"] == "pass"
    f["torch_cuda"] = {"status": "error", "detail": "undefined symbol: _ZN3c10", "cuda": None}
    assert "undefined symbol" in env_checks.torch_checks(cfg, f)[0]["message"]


def test_import_checks_name_the_abi_mismatch():
    f = facts("h200")
    assert env_checks.import_checks(config(), f)[0]["status"] == "skip"
    f["trtllm_import"] = {"status": "error", "version": None,
                          "detail": "ImportError: libth.so: undefined symbol: _ZN3c10"}  # fmt: skip
    check = env_checks.import_checks(config(), f)[0]
    assert check["status"] == "fail" and "different builds" in check["fix"]
    f["trtllm_import"] = {"status": "ok", "version": "1.2.0"}
    assert env_checks.import_checks(config(), f)[0]["status"] == "pass"


@pytest.mark.parametrize(
    ("mode", "cc", "status"),
    [
        ("fp8", "9.0", "pass"),
        ("fp8", "8.0", "fail"),
        ("nvfp4", "9.0", "fail"),
        ("nvfp4", "10.0", "pass"),
        ("int4_awq", "8.0", "pass"),
        ("int4_awq", "7.5", "fail"),
        ("none", "7.5", "pass"),
    ],
)
def test_each_format_needs_its_compute_capability(mode, cc, status):
    cfg = config(None, dtype="float16", quantization__mode=mode)
    checks = env_checks.precision_checks(cfg, facts("h100", None), "GPU", cc, "target")
    found = by_id(checks)["gpu_precision"]
    assert found["status"] == status
    if status == "fail":
        assert found["key"] == "quantization.mode" and cc in found["message"]


def test_a_dry_run_plans_for_another_machine_so_what_this_one_lacks_only_warns():
    f = facts("none", None)
    f["mpi"] = {"status": "absent", "version": None}
    cfg = config(parallel__tp_size=2)
    real = by_id(env_checks.run_checks(cfg, f))
    dry = by_id(env_checks.run_checks(cfg, f, require_machine=False))
    for cid in ("trtllm_installed", "gpu_present", "mpi"):
        assert (real[cid]["status"], dry[cid]["status"]) == ("fail", "warn"), cid


def test_a_tp2_bundle_needs_no_mpirun_on_the_build_box():
    f = facts("h100x8")
    f["mpi"] = {"status": "absent", "version": None}
    cfg = config("h100-fp8-pytorch", parallel__tp_size=2)
    assert status(env_checks.run_checks(cfg, f), "mpi") == "pass"


def test_a_trtllm_build_of_another_tensorrt_llm_fails_naming_both_versions():
    f = facts("h100", "1.2.0")
    f["program_versions"] = {"trtllm-build": "1.1.0", "trtllm-serve": None}
    found = by_id(env_checks.run_checks(config(), f))["trtllm_programs"]
    assert found["status"] == "fail"
    assert "1.1.0" in found["message"] and "1.2.0" in found["message"]
    f["program_versions"]["trtllm-build"] = "1.2.0"
    assert status(env_checks.run_checks(config(), f), "trtllm_programs") == "pass"

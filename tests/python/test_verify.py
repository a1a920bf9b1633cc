"""verify.py: an artifact against matching and mismatching machines; golden prompts."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import artifact_files
import bundle
import pytest
import typed_configs as configs
import verify

SETTINGS = {
    "backend": "pytorch",
    "dtype": "auto",
    "build.max_batch_size": 8,
    "build.max_num_tokens": 512,
    "build.max_seq_len": 256,
    "build.max_input_len": 128,
    "runtime.kv_cache_free_gpu_memory_fraction": 0.9,
}
CONFIG = configs.typed(None, **SETTINGS)
H200 = {"index": 0, "name": "NVIDIA H200", "compute_capability": "9.0", "memory_total_mib": 143771}
A100 = {
    "index": 0,
    "name": "NVIDIA A100-SXM4-80GB",
    "compute_capability": "8.0",
    "memory_total_mib": 81920,
}


def facts(
    trtllm="1.2.0",
    tensorrt="10.14.1",
    devices=(H200,),
    status="ok",
    driver="580.159.04",
    cuda="13.0",
):
    return {
        "schema_version": 1,
        "packages": {"tensorrt_llm": trtllm, "tensorrt": tensorrt},
        "gpu": {
            "status": status,
            "driver_version": driver,
            "cuda_driver_version": cuda,
            "devices": list(devices),
        },
    }


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    import tiny_models

    return tiny_models.make_model("llama", tmp_path_factory.mktemp("merged"))


def manifest(backend: str, model: Path, art: Path, *, world=1, mode="none", trtllm="1.2.0"):
    config = configs.as_dict(None, **SETTINGS, **{"quantization.mode": mode})
    return {
        "schema_version": 1,
        "build_id": "sha256:" + "ab" * 32,
        "backend": backend,
        "inputs": {"model_dir": str(model), "config": config},
        "environment": {
            "trtllm_version": trtllm,
            "tensorrt": "10.14.1",
            "driver": "580.159.04",
            "cuda_runtime": "13.0",
            "gpu": {"name": "H200", "compute_capability": "9.0"},
        },
        "parallel": {"tp_size": world, "pp_size": 1, "world_size": world},
        "artifact": {
            **(
                {"engine": {"dir": "engine"}, "tokenizer": {"dir": "tokenizer"}}
                if backend == "engine"
                else {}
            ),
            "files": artifact_files.describe(art),
        },
        "verification": None,
    }


@pytest.fixture
def pytorch_artifact(model: Path, tmp_path: Path):
    made = iter(range(100))

    def make(**kw) -> Path:
        art = tmp_path / f"art{next(made)}"
        bundle.publish_bundle(art, model, CONFIG, kw.get("trtllm", "1.2.0"))
        (art / "build.json").write_text(json.dumps(manifest("pytorch", model, art, **kw)))
        return art

    return make


@pytest.fixture
def engine_artifact(model: Path, tmp_path: Path):
    def make(world=1, **kw) -> Path:
        art = tmp_path / "eng"
        (art / "engine").mkdir(parents=True, exist_ok=True)
        (art / "engine" / "config.json").write_text("{}")
        for r in range(world):
            (art / "engine" / f"rank{r}.engine").write_bytes(b"x")
        doc = manifest("engine", model, art, world=world, **kw)
        (art / "build.json").write_text(json.dumps(doc))
        return art

    return make


def run(art: Path, tmp_path: Path, f: dict, *extra: str) -> tuple[int, dict]:
    path = tmp_path / "facts.json"
    path.write_text(json.dumps(f))
    argv = ["--artifact", str(art), "--facts-json", str(path), "--no-golden", "--allow-skip"]
    code = verify.main([*argv, *extra])
    return code, json.loads((art / "build.json").read_text())["verification"]


def verdicts(report: dict) -> dict:
    return {c["id"]: c["status"] for c in report["checks"]}


def test_matching_machine_passes_and_writes_the_report(pytorch_artifact, tmp_path, capsys):
    code, report = run(pytorch_artifact(), tmp_path, facts())
    assert code == 0 and report["ok"] is True
    got = verdicts(report)
    assert got == {
        "manifest": "pass",
        "artifact": "pass",
        "trtllm_version": "pass",
        "gpu_arch": "pass",
        "gpu_count": "pass",
        "driver": "pass",
        "golden": "skip",
    }
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == 7 and out.out.startswith("[ok]   manifest")
    assert "partially verified (--allow-skip)" in out.err and "golden: --no-golden" in out.err
    assert report["allow_skip"] is True and "partially" in report["verdict"]


def test_a_check_that_cannot_run_is_not_verified_without_allow_skip(
    pytorch_artifact, tmp_path, capsys
):
    art = pytorch_artifact()
    path = tmp_path / "f.json"
    machine = facts(status="error", devices=())  # nvidia-smi finds no driver
    machine["gpu"].update(detail="NVIDIA-SMI has failed: no driver", cuda_driver_version=None)
    path.write_text(json.dumps(machine))
    code = verify.main(["--artifact", str(art), "--facts-json", str(path)])
    assert code == verify.EXIT_NOT_VERIFIED == 3
    err = capsys.readouterr().err
    assert "NOT verified: 4 check(s) could not run here" in err and "no driver" in err
    stored = json.loads((art / "build.json").read_text())["verification"]
    assert stored["ok"] is False and stored["verdict"].startswith("NOT verified")


def test_sizes_are_always_checked_and_hashes_with_full(pytorch_artifact, tmp_path):
    art = pytorch_artifact()
    weights = art / "checkpoint" / "model.safetensors"
    weights.unlink()  # a hard link: the merged model keeps its copy
    weights.write_bytes(b"\0" * 10)
    code, report = run(art, tmp_path, facts())
    assert code == 1 and "changed: checkpoint/model.safetensors" in report["checks"][1]["message"]
    art = pytorch_artifact()
    options = art / "llm_api_options.yaml"
    text = options.read_text()
    options.write_text(text.replace("max_batch_size: 8", "max_batch_size: 9"))  # same size
    code, report = run(art, tmp_path, facts())  # a small file: the sample is all of it
    assert code == 1 and "changed: llm_api_options.yaml" in report["checks"][1]["message"]
    code, report = run(art, tmp_path, facts(), "--full")
    assert code == 1 and verdicts(report)["artifact"] == "fail"


def test_inferred_facts_are_named_as_inferred(engine_artifact, tmp_path):
    art = engine_artifact()
    doc = json.loads((art / "build.json").read_text())
    doc["environment"]["inferred"] = ["gpu", "cuda_runtime"]
    (art / "build.json").write_text(json.dumps(doc))
    _, report = run(art, tmp_path, facts())
    messages = {c["id"]: c["message"] for c in report["checks"]}
    assert "inferred" in messages["gpu_arch"] and "inferred" in messages["driver"]


def test_engine_on_the_machine_it_was_built_for(engine_artifact, tmp_path):
    code, report = run(engine_artifact(), tmp_path, facts())
    assert code == 0
    assert verdicts(report)["tensorrt"] == "pass" and verdicts(report)["gpu_arch"] == "pass"


@pytest.mark.parametrize(
    ("kind", "machine", "check_id"),
    [
        ("engine", facts(devices=(A100,)), "gpu_arch"),  # other GPU
        ("engine", facts(trtllm="1.1.0"), "trtllm_version"),  # other TensorRT-LLM
        ("engine", facts(tensorrt="10.13.3"), "tensorrt"),
        ("engine", facts(trtllm=None), "trtllm_version"),
        ("engine", facts(devices=()), "gpu_arch"),  # no GPU at all
        ("pytorch", facts(trtllm="1.0.0"), "trtllm_version"),  # other line than the bundle's
        ("pytorch", facts(cuda="12.4"), "driver"),  # driver too old for the CUDA runtime
    ],
)
def test_mismatching_machines_fail_the_named_check(
    engine_artifact, pytorch_artifact, tmp_path, kind, machine, check_id
):
    art = engine_artifact() if kind == "engine" else pytorch_artifact()
    code, report = run(art, tmp_path, machine)
    assert code == 1 and report["ok"] is False
    assert verdicts(report)[check_id] == "fail"


def test_too_few_gpus_for_the_world_size(engine_artifact, tmp_path):
    code, report = run(engine_artifact(world=2), tmp_path, facts())
    assert code == 1 and verdicts(report)["gpu_count"] == "fail"
    code, report = run(
        engine_artifact(world=2), tmp_path, facts(devices=(H200, dict(H200, index=1)))
    )
    assert code == 0 and verdicts(report)["gpu_count"] == "pass"


def test_a_missing_rank_engine_fails_the_artifact_check(engine_artifact, tmp_path):
    art = engine_artifact(world=2)
    (art / "engine" / "rank1.engine").unlink()
    code, report = run(art, tmp_path, facts(devices=(H200, dict(H200, index=1))))
    assert code == 1 and verdicts(report)["artifact"] == "fail"


def test_a_patch_release_of_the_same_line_warns(pytorch_artifact, tmp_path):
    code, report = run(pytorch_artifact(), tmp_path, facts(trtllm="1.2.1"))
    assert code == 0 and verdicts(report)["trtllm_version"] == "warn"


def test_fp8_bundle_on_a_gpu_without_fp8_fails(pytorch_artifact, tmp_path):
    code, report = run(pytorch_artifact(mode="fp8"), tmp_path, facts(devices=(A100,)))
    assert code == 1 and verdicts(report)["gpu_arch"] == "fail"


def test_a_hand_edited_options_key_the_version_rejects_fails(pytorch_artifact, tmp_path):
    art = pytorch_artifact()
    with (art / "llm_api_options.yaml").open("a") as handle:
        handle.write("use_cuda_graph: true\n")  # the 0.x key: TorchLlmArgs 1.x refuses it
    code, report = run(art, tmp_path, facts())
    assert code == 1 and verdicts(report)["trtllm_version"] == "fail"
    assert "use_cuda_graph" in next(
        c["message"] for c in report["checks"] if c["id"] == "trtllm_version"
    )


def test_unknown_facts_are_skipped_not_passed(pytorch_artifact, tmp_path):
    machine = facts(status="error", devices=())
    machine["gpu"]["detail"] = "nvidia-smi failed: NVML error"
    machine["gpu"]["cuda_driver_version"] = None
    machine["gpu"]["driver_version"] = None
    _, report = run(pytorch_artifact(), tmp_path, machine)
    got = verdicts(report)
    assert got["gpu_arch"] == "skip" and got["gpu_count"] == "skip" and got["driver"] == "skip"
    assert "pass" not in (got["gpu_arch"], got["gpu_count"], got["driver"])


def test_no_build_json_is_bad_input(tmp_path, capsys):
    assert verify.main(["--artifact", str(tmp_path), "--no-golden"]) == 2
    assert "no build.json" in capsys.readouterr().err


# --- golden prompts, with a stand-in for tensorrt_llm.LLM that runs transformers ----------------


def fake_trtllm(shift: int = 0) -> types.ModuleType:
    module = types.ModuleType("tensorrt_llm")

    class SamplingParams:
        def __init__(self, max_tokens, temperature, top_k):
            assert temperature == 0.0 and top_k == 1
            self.max_tokens = max_tokens

    class LLM:
        def __init__(self, model, **options):
            assert "kv_cache_config" in options  # the bundle's options reach the LLM API
            self.model = Path(model)

        def generate(self, prompts, params):
            tokens = verify.reference_tokens(self.model, prompts, params.max_tokens)
            out = []
            for toks in tokens:
                toks = [t + shift for t in toks]
                out.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(token_ids=toks)]))
            return out

    module.LLM, module.SamplingParams = LLM, SamplingParams
    return module


@pytest.mark.parametrize(
    ("shift", "mode", "status", "code"),
    [(0, "none", "pass", 0), (1, "none", "fail", 1), (1, "fp8", "warn", 0)],
)
def test_golden_prompts_compare_greedy_tokens(
    pytorch_artifact, tmp_path, monkeypatch, shift, mode, status, code
):
    monkeypatch.setitem(sys.modules, "tensorrt_llm", fake_trtllm(shift))
    art = pytorch_artifact(mode=mode)
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("w1 w2 w3\nw7 w8\n")
    fpath = tmp_path / "f.json"
    fpath.write_text(json.dumps(facts()))
    args = [
        "--artifact",
        str(art),
        "--facts-json",
        str(fpath),
        "--prompts",
        str(prompts),
        "--max-new-tokens",
        "4",
        "--min-match",
        "4",
    ]
    assert verify.main(args) == code
    report = json.loads((art / "build.json").read_text())["verification"]
    assert verdicts(report)["golden"] == status
    assert report["golden"]["prompts"] == 2
    assert report["golden"]["passed"] == (2 if shift == 0 else 0)


def test_golden_is_skipped_after_a_failed_check(pytorch_artifact, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt_llm", fake_trtllm())
    art = pytorch_artifact()
    fpath = tmp_path / "f.json"
    fpath.write_text(json.dumps(facts(devices=())))
    assert verify.main(["--artifact", str(art), "--facts-json", str(fpath)]) == 1
    golden = next(
        c
        for c in json.loads((art / "build.json").read_text())["verification"]["checks"]
        if c["id"] == "golden"
    )
    assert golden["status"] == "skip" and "earlier check failed" in golden["message"]


# --------------------------------------------------------------------------- quality


def _with_quality(art: Path, passed: bool) -> Path:
    import quality_report

    metrics = {
        "reference_perplexity": 17.83,
        "quantized_perplexity": 18.27 if passed else 27.61,
        "perplexity_increase_pct": 2.5 if passed else 54.8,
        "token_agreement_pct": 89.3 if passed else 66.2,
        "kl_mean": 0.037 if passed else 0.434,
        "kl_top_k": 1024,
        "reference_tail_mass_mean": 0.02,
        "positions": 16320,
        "reference_seconds": 1.0,
        "quantized_seconds": 1.0,
    }
    data = {"file": "/d/c.jsonl", "held_out": True, "first_sample": 512, "requested": 64}
    data |= {"samples": 64, "dropped_short": 0, "seq_len": 256, "tokens": 1, "positions": 1}
    context = {"mode": "fp8", "kv_cache_dtype": "fp8", "device": "cuda"}
    doc = json.loads((art / "build.json").read_text())
    doc["quality"] = quality_report.make_report(metrics, data, context, (8.0, 80.0, True))
    (art / "build.json").write_text(json.dumps(doc))
    return art


@pytest.mark.parametrize(("passed", "status"), [(True, "pass"), (False, "warn")])
def test_the_quality_the_build_measured_is_reported_with_its_table(
    pytorch_artifact, tmp_path, capsys, passed, status
):
    art = _with_quality(pytorch_artifact(mode="fp8"), passed)
    code, report = run(art, tmp_path, facts())
    assert code == 0  # the quality line never fails a verify: the build decided
    assert verdicts(report)["quality"] == status
    out = capsys.readouterr().out
    assert "quality of fp8 (kv fp8) vs the unquantized model" in out
    assert ("published anyway (--accept-quality-loss)" in out) is not passed


def test_a_quantized_build_without_a_quality_report_says_it_was_not_measured(
    pytorch_artifact, tmp_path, capsys
):
    code, report = run(pytorch_artifact(mode="fp8"), tmp_path, facts())
    check = next(c for c in report["checks"] if c["id"] == "quality")
    assert check["status"] == "warn" and "quality not measured" in check["message"]
    assert code == 0 and "quality of" not in capsys.readouterr().out

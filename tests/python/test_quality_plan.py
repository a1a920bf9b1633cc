"""The quality gate in the plan (quality_gate.py): what is measured, its check and the ModelOpt
step's flags on both routes; prepare.py's --accept-quality-loss and the over-gate status."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import modelopt_quantize
import plan
import prepare
import pytest
import pytorch_plan
import quality_gate
import typed_configs as configs
import yaml

REPO = Path(__file__).resolve().parents[2]
LLAMA = REPO / "tests" / "fixtures" / "hf_configs" / "llama-3.1-8b.json"


def samples_file(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"text": f"sample {i}"}) + "\n" for i in range(n)))
    return path


def changes(calib: Path | None, mode="fp8", calib_n=512, backend="pytorch", **eval_cfg) -> dict:
    return {
        "backend": backend,
        "quantization.mode": mode,
        "quantization.kv_cache_dtype": "fp8",
        "quantization.calibration.dataset": str(calib) if calib else None,
        "quantization.calibration.num_samples": calib_n,
        "quantization.eval": {**configs.as_dict()["quantization"]["eval"], **eval_cfg},
    }


def planned(calib, staging="/stage", **kw) -> tuple[dict | None, list[dict], list[dict]]:
    cfg = configs.typed(**changes(calib, **kw))
    steps = pytorch_plan.plan_steps(cfg, "python3", "/models/m", staging)
    entry, checks = quality_gate.plan_quality(cfg, steps, staging)
    return entry, checks, steps


@pytest.fixture
def model(tmp_path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text(LLAMA.read_text())
    (d / "tokenizer.json").write_text("{}")
    return d


def facts(trtllm: str | None) -> dict:
    return {
        "schema_version": 1,
        "gpu": {"status": "absent", "devices": []},
        "python": {"executable": "python3", "version": "3.12.3"},
        "packages": {"tensorrt_llm": trtllm},
        "programs": {},
        "disk": {"free_bytes": None},
        "memory": {"available_bytes": None},
    }


def make_plan(model: Path, trtllm: str | None, **kw) -> dict:
    cfg = configs.typed(**changes(**kw))
    return plan.make_plan(cfg, facts(trtllm), model, "/stage", examples_dir="/ex", dry_run=True)


def test_held_out_calibration_samples_are_planned_with_the_mode_defaults(tmp_path):
    calib = samples_file(tmp_path / "calib.jsonl", 512 + 64)
    entry, checks, steps = planned(calib)
    assert entry == {
        "measured": True,
        "mode": "fp8",
        "dataset": str(calib),
        "held_out": True,
        "first_sample": 512,
        "num_samples": 64,
        "available": 64,
        "seq_len": 256,
        "max_ppl_increase_pct": 8.0,
        "min_token_agreement_pct": 80.0,
        "gate_source": "fp8 defaults",
        "report": "/stage/logs/quality.json",
    }
    assert [c["status"] for c in checks] == ["pass"]
    assert steps[0]["quality_gate"] is True
    args = modelopt_quantize.build_parser().parse_args(steps[0]["argv"][2:])
    modelopt_quantize._check_quality_args(args)  # the step accepts what the plan wrote
    assert (args.eval_size, args.eval_seq_len, args.eval_data) == (64, 256, None)
    assert (args.max_ppl_increase_pct, args.min_token_agreement_pct) == (8.0, 80.0)
    assert args.quality_report == Path("/stage/logs/quality.json")
    assert not args.accept_quality_loss  # only prepare.py --accept-quality-loss adds it


def test_a_calibration_file_too_small_to_hold_out_the_eval_fails_the_plan(tmp_path):
    calib = samples_file(tmp_path / "calib.jsonl", 512 + 15)
    entry, checks, _ = planned(calib)
    assert entry["available"] == 15
    assert (checks[0]["status"], checks[0]["key"]) == ("fail", "quantization.eval.dataset")
    assert checks[0]["message"] == (
        "calib.jsonl leaves 15 sample(s) for the quality eval after the 512 that calibration "
        "uses; at least 16 are needed"
    )
    assert "quantization.eval.dataset" in checks[0]["fix"]


def test_fewer_than_asked_but_enough_is_a_warning(tmp_path):
    calib = samples_file(tmp_path / "calib.jsonl", 128 + 20)
    entry, checks, _ = planned(calib, calib_n=128)
    assert (entry["available"], checks[0]["status"]) == (20, "warn")
    assert "asks for 64" in checks[0]["message"]


def test_a_separate_eval_file_and_a_configured_gate(tmp_path, monkeypatch):
    calib = samples_file(tmp_path / "calib.jsonl", 512)
    samples_file(tmp_path / "held_out.jsonl", 40)
    monkeypatch.chdir(tmp_path)  # a relative path is the user's, made absolute for the step
    entry, checks, steps = planned(
        calib,
        mode="nvfp4",
        dataset="held_out.jsonl",
        num_samples=32,
        gate={"max_ppl_increase_pct": None, "min_token_agreement_pct": 60.0},
    )
    assert (entry["held_out"], entry["available"], checks[0]["status"]) == (False, 32, "pass")
    assert (entry["max_ppl_increase_pct"], entry["min_token_agreement_pct"]) == (20.0, 60.0)
    assert entry["gate_source"] == "config + nvfp4 defaults"
    argv = steps[0]["argv"]
    assert argv[argv.index("--eval-data") + 1] == str(tmp_path / "held_out.jsonl")
    assert argv[argv.index("--min-token-agreement-pct") + 1] == "60"


def test_the_calibration_path_is_absolute_for_the_step_that_runs_in_staging(tmp_path, monkeypatch):
    samples_file(tmp_path / "calib.jsonl", 600)
    monkeypatch.chdir(tmp_path)
    _, checks, steps = planned(Path("calib.jsonl"))
    argv = steps[0]["argv"]
    assert argv[argv.index("--calib-data") + 1] == str(tmp_path / "calib.jsonl")
    assert checks[0]["status"] == "pass"


def test_an_unreadable_eval_file_is_a_failed_check_keyed_to_it(tmp_path):
    calib = samples_file(tmp_path / "calib.jsonl", 512)
    entry, checks, _ = planned(calib, dataset=str(tmp_path / "missing.jsonl"))
    assert entry["available"] == 0
    assert (checks[0]["status"], checks[0]["key"]) == ("fail", "quantization.eval.dataset")
    assert "eval file not found" in checks[0]["message"]


def test_without_a_calibration_file_the_calibration_check_speaks(tmp_path, model):
    p = make_plan(model, None, calib=tmp_path / "absent.jsonl")
    quality = [c for c in p["checks"] if c["id"] == "quality_eval"]
    assert [c["status"] for c in quality] == ["skip"]
    assert "calibration" in {c["id"] for c in p["checks"] if c["status"] == "fail"}


def test_the_engine_route_without_trtllm_is_measured_too(tmp_path, model):
    calib = samples_file(tmp_path / "calib.jsonl", 600)
    p = make_plan(model, None, calib=calib, mode="int4_awq", backend="engine")
    assert p["quantization"]["route"] == "modelopt" and p["quality"]["measured"]
    quantize = next(s for s in p["steps"] if s["name"] == "quantize")
    assert quantize["quality_gate"] is True and quantize["argv"][-2:] == [
        "--min-token-agreement-pct",
        "70",
    ]
    assert not any(s.get("quality_gate") for s in p["steps"] if s["name"] != "quantize")
    assert "quality  int4_awq vs the unquantized model on 64 held-out samples" in plan.show(p)


def test_tools_other_than_modelopt_are_not_measured_and_say_so(tmp_path, model):
    calib = samples_file(tmp_path / "calib.jsonl", 600)
    p = make_plan(model, "1.2.0", calib=calib, backend="engine")  # quantize.py
    assert p["quality"]["measured"] is False
    check = next(c for c in p["checks"] if c["id"] == "quality_eval")
    assert check["status"] == "warn" and "quality not measured" in check["message"]
    assert "quality  not measured: quantization.mode fp8 runs in TensorRT-LLM" in plan.show(p)
    assert not any(s.get("quality_gate") for s in p["steps"])
    none = make_plan(model, None, calib=None, mode="none")
    assert none["quality"] is None and "quality_eval" not in {c["id"] for c in none["checks"]}


@pytest.mark.parametrize("held_out", [True, False])
def test_the_dry_run_says_what_will_be_measured(tmp_path, held_out):
    calib = samples_file(tmp_path / "calib.jsonl", 600)
    extra = {} if held_out else {"dataset": str(samples_file(tmp_path / "e.jsonl", 40))}
    entry, _, _ = planned(calib, **extra)
    text = "\n".join(quality_gate.plan_lines(entry))
    if held_out:
        assert f"64 held-out samples of {calib} (after the 512 calibration uses)" in text
    else:
        assert f"40 samples of {tmp_path / 'e.jsonl'}, up to 256 tokens" in text
    assert "perplexity +8% at most, token agreement 80% at least" in text
    assert "--accept-quality-loss" in text and "CUDA extensions" in text


# --------------------------------------------------------------------------- prepare.py


def run_prepare(tmp_path, model, cfg_changes: dict, *extra: str, trtllm=None) -> int:
    doc = configs.as_dict(**cfg_changes)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    argv = [
        f"--config={cfg}", f"--model-dir={model}", f"--output={tmp_path / 'out' / 'm'}",
        f"--staging={tmp_path / 'stage'}", f"--cache-dir={tmp_path / 'cache'}",
        f"--work-dir={work}", *extra,
    ]  # fmt: skip
    saved = prepare.probe.collect
    prepare.probe.collect = lambda *_a, **_k: copy.deepcopy(facts(trtllm))
    try:
        return prepare.main(argv)
    finally:
        prepare.probe.collect = saved


def test_too_few_held_out_samples_stop_prepare_with_file_line_and_key(tmp_path, model, capsys):
    calib = samples_file(tmp_path / "calib.jsonl", 512 + 8)
    assert run_prepare(tmp_path, model, changes(calib), "--dry-run") == 2
    err = capsys.readouterr().err
    lines = yaml.safe_dump(configs.as_dict(**changes(calib)), sort_keys=False).splitlines()
    line = 1 + next(i for i, t in enumerate(lines) if t.strip().startswith("dataset: null"))
    assert (
        f"build_tensorrt_llm: error: {tmp_path / 'config.yaml'}:{line}: quantization.eval.dataset: "
        "calib.jsonl leaves 8 sample(s) for the quality eval after the 512"
    ) in err


def _work(tmp_path) -> tuple[dict, dict]:
    work = tmp_path / "work"
    argv = {
        name: (work / f"argv.{name}").read_bytes().decode().split("\0")[:-1]
        for name in (work / "steps").read_text().split()
    }
    return json.loads((work / "plan.json").read_text()), argv


def test_accept_quality_loss_reaches_the_gated_step_only_and_keeps_the_build_id(
    tmp_path, model, capsys
):
    calib = samples_file(tmp_path / "calib.jsonl", 600)
    cfg = changes(calib, backend="engine")  # ModelOpt step, then trtllm-build
    assert run_prepare(tmp_path, model, cfg, "--dry-run") == 0
    plain, plain_argv = _work(tmp_path)
    assert run_prepare(tmp_path, model, cfg, "--dry-run", "--accept-quality-loss") == 0
    accepted, argv = _work(tmp_path)
    assert argv["quantize"] == [*plain_argv["quantize"], "--accept-quality-loss"]
    assert argv["build"] == plain_argv["build"]
    assert accepted["inputs"]["build_id"] == plain["inputs"]["build_id"]
    assert accepted["inputs"]["identity"] == plain["inputs"]["identity"]
    step = next(s for s in accepted["plan"]["steps"] if s["name"] == "quantize")
    assert step["argv"][-1] == "--accept-quality-loss"  # plan.json says what runs
    assert "--accept-quality-loss" in capsys.readouterr().out  # and so does the dry run


def test_accept_quality_loss_without_a_gated_step_says_it_changes_nothing(tmp_path, model, capsys):
    cfg = {"backend": "engine"}  # the shipped settings: no quantization
    assert run_prepare(tmp_path, model, cfg, "--dry-run", "--accept-quality-loss") == 0
    assert "--accept-quality-loss changes nothing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("quality", "accepted", "status"),
    [
        ({"gate": {"passed": False, "accepted_loss": True}}, False, "over_gate"),
        ({"gate": {"passed": False, "accepted_loss": True}}, True, "same"),
        ({"gate": {"passed": True, "accepted_loss": False}}, False, "same"),
        (None, False, "same"),
    ],
)
def test_an_artifact_published_over_its_gate_is_up_to_date_only_when_accepted_again(
    tmp_path, quality, accepted, status
):
    (tmp_path / "build.json").write_text(json.dumps({"build_id": "x", "quality": quality}))
    assert quality_gate.status_with_gate("same", tmp_path, accepted) == status
    assert quality_gate.status_with_gate("different", tmp_path, False) == "different"


def test_a_dry_run_over_an_over_gate_artifact_says_what_the_real_run_needs():
    doc = {"output": "/o/m", "status": "over_gate", "inputs": {"build_id": "sha256:" + "a" * 64}}
    assert prepare.dry_run_summary(doc) == (
        "dry run: nothing was written; /o/m holds this build, published over its quality gate: "
        "the real run needs --accept-quality-loss to keep it (or --force)"
    )

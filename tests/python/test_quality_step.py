"""modelopt_quantize.py's real flow on the CPU: calibrate, measure, gate, export.

The ModelOpt here is tests/fakes/python_modelopt: a stand-in quantizer with ModelOpt's presets and
known numerics, which FAKE_MODELOPT_FAULT breaks on purpose. The model is scripts/dev/tiny_lm.py's
(confident predictions) and the text is sampled from it, so a sound fp8 quantization costs a few
percent of perplexity and a broken one costs far more: the gate must pass the first and stop the
second, with the defaults the config ships.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import modelopt_quantize as mq
import pytest
import quality_config
import quality_report

FAKES = Path(__file__).resolve().parents[1] / "fakes" / "python_modelopt"
FP8 = quality_config.GATE_DEFAULTS["fp8"]


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny confident model and 96 samples of its own text (calibration 32 + eval 64)."""
    import tiny_lm

    out = tmp_path_factory.mktemp("lm")
    model = tiny_lm.make_model(out / "model")
    texts = tiny_lm.sample_texts(model, 96, 48)
    return model, tiny_lm.write_texts(out / "text.jsonl", texts)


@pytest.fixture
def fake_modelopt(monkeypatch, tmp_path):
    """The fake ModelOpt importable for one test, its calls logged; sys.modules left clean."""
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.setenv("QUANTIZE_DEVICE", "cpu")
    monkeypatch.setenv("FAKE_MODELOPT_LOG", str(tmp_path / "modelopt.jsonl"))
    monkeypatch.delenv("FAKE_MODELOPT_FAULT", raising=False)
    before = {n for n in sys.modules if n.split(".")[0] == "modelopt"}
    yield tmp_path / "modelopt.jsonl"
    for name in [n for n in sys.modules if n.split(".")[0] == "modelopt"]:
        if name not in before:
            del sys.modules[name]


def argv(model: Path, calib: Path, out: Path, *extra: str, qformat="fp8", export="hf"):
    gate = quality_config.GATE_DEFAULTS[qformat]
    return [
        *("--model-dir", str(model), "--output-dir", str(out / "checkpoint")),
        *("--qformat", qformat, "--kv-cache-dtype", "fp8", "--calib-data", str(calib)),
        *("--calib-size", "32", "--calib-max-seq-len", "64", "--export", export),
        *("--tp-size", "1", "--pp-size", "1", "--dtype", "auto"),
        *("--quality-report", str(out / "logs" / "quality.json")),
        *("--eval-size", "64", "--eval-seq-len", "64"),
        *("--max-ppl-increase-pct", str(gate[0]), "--min-token-agreement-pct", str(gate[1])),
        *extra,
    ]


def calls(log: Path) -> list[str]:
    return [json.loads(line)["call"] for line in log.read_text().splitlines()]


def test_a_sound_fp8_build_passes_the_default_gate_and_exports(lm, fake_modelopt, tmp_path, capsys):
    model, text = lm
    assert mq.main(argv(model, text, tmp_path)) == 0
    out, err = capsys.readouterr()
    report = json.loads(out)["quality"]
    assert report == json.loads((tmp_path / "logs" / "quality.json").read_text())
    assert report["gate"]["passed"] and report["data"]["held_out"]
    assert report["data"] | {"file": None} == {
        "file": None,
        "held_out": True,
        "first_sample": 32,
        "requested": 64,
        "samples": 64,
        "dropped_short": 0,
        "seq_len": 64,
        "tokens": 64 * 48,
        "positions": 64 * 47,
    }
    assert 0 < report["perplexity_increase_pct"] < FP8[0] / 2
    assert FP8[1] < report["token_agreement_pct"] < 100 and report["kl_mean"] > 0
    assert (tmp_path / "checkpoint" / "hf_quant_config.json").is_file()
    # the CUDA extensions are loaded (and announced) before calibration; export comes last
    assert calls(fake_modelopt) == [
        "get_cuda_ext",
        "get_cuda_ext_fp8",
        "quantize",
        "export_hf_checkpoint",
    ]
    assert "==> ModelOpt CUDA extensions: loading (a machine's first run compiles them" in err
    assert "==>   gate             passed" in err


@pytest.mark.parametrize(
    "fault",
    ["noise:0.5", "zero:layers.1.self_attn.o_proj", "bits:2"],
    ids=["noise", "zero-layer", "2-bit"],
)
def test_a_broken_quantizer_fails_the_gate_and_exports_nothing(
    lm, fake_modelopt, tmp_path, capsys, monkeypatch, fault
):
    model, text = lm
    monkeypatch.setenv("FAKE_MODELOPT_FAULT", fault)
    assert mq.main(argv(model, text, tmp_path)) == 1
    err = capsys.readouterr().err
    assert "modelopt_quantize: error: quality gate failed: perplexity +" in err
    assert "--accept-quality-loss" in err
    assert not (tmp_path / "checkpoint").exists()
    assert not (tmp_path / "checkpoint.partial").exists()
    report = quality_report.load_report(tmp_path / "logs" / "quality.json")
    assert not report["gate"]["passed"] and not report["gate"]["accepted_loss"]
    assert report["perplexity_increase_pct"] > FP8[0]
    assert "export_hf_checkpoint" not in calls(fake_modelopt)


def test_a_wrong_calibration_set_fails_the_gate(lm, fake_modelopt, tmp_path):
    """Calibrated on text the tokenizer does not know (all <unk>): the activation ranges are
    wrong, so FP8 clips the real activations. The held-out eval samples are the model's text."""
    model, text = lm
    wrong = tmp_path / "wrong.jsonl"
    junk = "".join('{"text": "the quick brown fox jumps"}\n' for _ in range(32))
    wrong.write_text(junk + "".join(text.read_text().splitlines(keepends=True)[32:]))
    assert mq.main(argv(model, wrong, tmp_path)) == 1
    report = quality_report.load_report(tmp_path / "logs" / "quality.json")
    assert not report["gate"]["passed"]


def test_accept_quality_loss_exports_and_records_it(
    lm, fake_modelopt, tmp_path, capsys, monkeypatch
):
    model, text = lm
    monkeypatch.setenv("FAKE_MODELOPT_FAULT", "noise:0.5")
    assert mq.main(argv(model, text, tmp_path, "--accept-quality-loss")) == 0
    report = json.loads(capsys.readouterr().out)["quality"]
    assert report["gate"]["accepted_loss"] is True and not report["gate"]["passed"]
    assert (tmp_path / "checkpoint" / "config.json").is_file()


def test_the_engine_route_is_measured_before_its_trtllm_export(lm, fake_modelopt, tmp_path):
    model, text = lm
    assert mq.main(argv(model, text, tmp_path, export="trtllm")) == 0
    assert (tmp_path / "checkpoint" / "rank0.safetensors").is_file()
    assert calls(fake_modelopt)[-1] == "export_tensorrt_llm_checkpoint"
    assert quality_report.load_report(tmp_path / "logs" / "quality.json")["gate"]["passed"]


def test_a_separate_eval_file_is_read_from_its_start(lm, fake_modelopt, tmp_path, capsys):
    model, text = lm
    extra = ("--eval-data", str(text))
    assert mq.main(argv(model, text, tmp_path, *extra)) == 0
    data = json.loads(capsys.readouterr().out)["quality"]["data"]
    assert (data["held_out"], data["first_sample"], data["samples"]) == (False, 0, 64)


def test_too_few_held_out_samples_stop_the_step_before_loading(lm, fake_modelopt, tmp_path, capsys):
    model, text = lm
    short = tmp_path / "short.jsonl"
    short.write_text("".join(text.read_text().splitlines(keepends=True)[:40]))
    assert mq.main(argv(model, short, tmp_path)) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        "modelopt_quantize: error: quality eval: short.jsonl leaves 8 sample(s) for the quality "
        "eval after the 32 that calibration uses; at least 16 are needed"
    )
    assert not fake_modelopt.exists()  # nothing ran


@pytest.mark.parametrize(
    ("drop", "add", "needle"),
    [
        ("--eval-size", (), "--quality-report needs --eval-size"),
        ("--quality-report", (), "need --quality-report"),
        (None, ("--eval-seq-len", "1"), "--eval-seq-len at least 2"),
    ],
)
def test_incomplete_quality_flags_are_bad_input(lm, tmp_path, capsys, drop, add, needle):
    model, text = lm
    args = argv(model, text, tmp_path)
    if drop:
        i = args.index(drop)
        del args[i : i + 2]
    assert mq.main([*args, *add]) == 2
    assert needle in capsys.readouterr().err

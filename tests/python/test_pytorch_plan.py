"""pytorch_plan.py: the PyTorch backend plans no engine, at most one ModelOpt step."""

from __future__ import annotations

from pathlib import Path

import env_checks
import modelopt_quantize
import pytest
import pytorch_plan
import typed_configs as configs

PYTHON = "/opt/py/bin/python3"


def config(mode="fp8", kv="fp8", dataset="data/calib.jsonl", tp=2, pp=1):
    return configs.typed(
        None,
        **{
            "backend": "pytorch",
            "dtype": "bfloat16",
            "parallel.tp_size": tp,
            "parallel.pp_size": pp,
            "quantization.mode": mode,
            "quantization.kv_cache_dtype": kv,
            "quantization.calibration": {
                "dataset": dataset,
                "num_samples": 128,
                "max_seq_len": 256,
            },
        },
    )


def test_no_quantization_plans_nothing_and_serves_the_merged_model(tmp_path: Path):
    cfg = config(mode="none")
    assert pytorch_plan.plan_steps(cfg, PYTHON, tmp_path / "model", tmp_path / "stage") == []
    assert (
        pytorch_plan.checkpoint_dir(cfg, tmp_path / "model", tmp_path / "stage")
        == tmp_path / "model"
    )


@pytest.mark.parametrize("mode", ["fp8", "nvfp4", "int4_awq", "w4a8_awq"])
def test_modelopt_step_argv_is_accepted_by_the_quantize_cli(tmp_path: Path, mode):
    steps = pytorch_plan.plan_steps(
        config(mode=mode), PYTHON, tmp_path / "model", tmp_path / "stage"
    )
    assert [s["name"] for s in steps] == ["quantize"]
    step = steps[0]
    assert step["argv"][0] == PYTHON
    assert Path(step["argv"][1]).name == "modelopt_quantize.py"
    args = modelopt_quantize.build_parser().parse_args(step["argv"][2:])
    assert args.qformat == mode
    assert args.export == "hf"
    assert args.kv_cache_dtype == "fp8"
    assert (args.calib_size, args.calib_max_seq_len, args.tp_size, args.pp_size) == (128, 256, 2, 1)
    assert args.dtype == "bfloat16"
    assert args.output_dir == tmp_path / "stage" / "checkpoint"
    assert step["output"] == str(tmp_path / "stage" / "checkpoint")
    assert step["log"] == "quantize.log"


def test_kv_auto_maps_to_none():
    step = pytorch_plan.plan_steps(config(kv="auto"), "python3", "m", "s")[0]
    assert step["argv"][step["argv"].index("--kv-cache-dtype") + 1] == "none"
    assert step["argv"][0] == "python3"


def test_a_quantized_bundle_without_calibration_data_is_a_problem_of_that_key(tmp_path):
    def calibration(cfg):
        return env_checks.calibration_checks(
            cfg, cfg.quantization.mode != "none", tool_default=False
        )

    [c] = calibration(config(dataset=None))
    assert c["status"] == "fail" and c["key"] == "quantization.calibration.dataset"
    assert "nothing is downloaded" in c["message"]
    assert calibration(config(mode="none", dataset=None)) == []
    (tmp_path / "calib.jsonl").write_text('{"text": "hi"}\n')
    [c] = calibration(config(dataset=str(tmp_path / "calib.jsonl")))
    assert c["status"] == "pass"
    [c] = calibration(config(dataset=str(tmp_path / "calib.parquet")))
    assert c["status"] == "fail" and ".jsonl or .txt" in c["message"]

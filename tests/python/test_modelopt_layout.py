"""modelopt_quantize.py on CPU: calibration data, bad input, config merge, exported-layout checks.

The layout fixture is what ModelOpt's export_hf_checkpoint writes for FP8 (see the module
docstring): the tiny model's linear weights cast to float8_e4m3fn with per-tensor weight_scale and
input_scale, lm_head left in high precision, quantization_config in config.json and
hf_quant_config.json beside it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import ClassVar

import modelopt_quantize as mq
import pytest
from errors import ExportError
from text_samples import read_samples

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@pytest.fixture(scope="module")
def fp8_export(tmp_path_factory) -> Path:
    import tiny_models
    import torch
    from safetensors.torch import load_file, save_file

    out = tiny_models.make_model("llama", tmp_path_factory.mktemp("fp8"))
    tensors = load_file(out / "model.safetensors")
    quantized = {}
    for name, t in tensors.items():
        module = name[: -len(".weight")]
        if name.endswith(".weight") and module.rsplit(".", 1)[-1] in LINEARS:
            scale = t.abs().max().float() / 448.0
            quantized[name] = (t.float() / scale).to(torch.float8_e4m3fn)
            quantized[f"{module}.weight_scale"] = scale.reshape(())
            quantized[f"{module}.input_scale"] = torch.tensor(0.05)
            if module.endswith(("k_proj", "v_proj")):
                quantized[f"{module}.{module[-6]}_scale"] = torch.tensor(1.0)
        else:
            quantized[name] = t
    save_file(quantized, out / "model.safetensors")
    config = json.loads((out / "config.json").read_text())
    config["quantization_config"] = {
        "quant_method": "modelopt",
        "quant_algo": "FP8",
        "kv_cache_scheme": "FP8",
    }
    (out / "config.json").write_text(json.dumps(config))
    hfq = {
        "producer": {"name": "modelopt", "version": "0.47.0"},
        "quantization": {
            "quant_algo": "FP8",
            "kv_cache_quant_algo": "FP8",
            "exclude_modules": ["lm_head"],
        },
    }
    (out / "hf_quant_config.json").write_text(json.dumps(hfq))
    return out


def statuses(checks):
    return {c["id"]: c["status"] for c in checks}


def test_a_modelopt_fp8_export_passes(fp8_export: Path):
    checks = mq.check_layout(fp8_export, "fp8", "fp8")
    assert all(c["status"] == "pass" for c in checks), checks
    assert "14 linear weights stored as F8_E4M3" in statuses_msg(checks, "quantized_weights")


def statuses_msg(checks, cid):
    return next(c["message"] for c in checks if c["id"] == cid)


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_missing_scales_fail(fp8_export: Path, tmp_path: Path):
    from safetensors.torch import load_file, save_file

    bad = _copy(fp8_export, tmp_path / "bad")
    tensors = load_file(bad / "model.safetensors")
    del tensors["model.layers.0.self_attn.q_proj.weight_scale"]
    save_file(tensors, bad / "model.safetensors")
    assert statuses(mq.check_layout(bad, "fp8", "fp8"))["weight_scales"] == "fail"


def test_an_unquantized_checkpoint_fails_every_quant_check(tmp_path: Path):
    import tiny_models

    plain = tiny_models.make_model("llama", tmp_path / "plain")
    got = statuses(mq.check_layout(plain, "fp8"))
    for cid in ("config_quantization", "hf_quant_config", "quantized_weights", "weight_scales"):
        assert got[cid] == "fail", cid


def test_wrong_format_and_kv_mismatch_are_caught(fp8_export: Path):
    got = statuses(mq.check_layout(fp8_export, "nvfp4"))
    assert got["config_quantization"] == "fail" and got["quantized_weights"] == "fail"
    assert statuses(mq.check_layout(fp8_export, "fp8", "none"))["kv_cache_quant_algo"] == "fail"


def test_a_quantized_lm_head_fails(fp8_export: Path, tmp_path: Path):
    import torch
    from safetensors.torch import load_file, save_file

    bad = _copy(fp8_export, tmp_path / "head")
    tensors = load_file(bad / "model.safetensors")
    tensors["lm_head.weight"] = tensors["lm_head.weight"].to(torch.float8_e4m3fn)
    tensors["lm_head.weight_scale"] = torch.tensor(1.0)
    tensors["lm_head.input_scale"] = torch.tensor(1.0)
    save_file(tensors, bad / "model.safetensors")
    assert statuses(mq.check_layout(bad, "fp8", "fp8"))["lm_head_unquantized"] == "fail"


def test_check_layout_cli_exit_codes(fp8_export: Path, tmp_path: Path, capsys):
    assert (
        mq.main(
            [
                "check-layout",
                str(fp8_export),
                "--qformat",
                "fp8",
                "--kv-cache-dtype",
                "fp8",
                "--json",
            ]
        )
        == 0
    )
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["schema_version"] == 1
    assert mq.main(["check-layout", str(fp8_export), "--qformat", "nvfp4"]) == 1
    assert mq.main(["check-layout", str(tmp_path / "nope"), "--qformat", "fp8"]) == 2


def test_calibration_files(tmp_path: Path):
    """The one reader of sample text (lib/text_samples.py) that the step and the plan use."""
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text(
        '{"text": "alpha"}\n\n{"prompt": "beta"}\n'
        '{"messages": [{"role": "user", "content": "gamma"}]}\n{"text": "delta"}\n'
    )
    assert read_samples(jsonl, 3) == ["alpha", "beta", "gamma"]
    txt = tmp_path / "c.txt"
    txt.write_text("one\n\ntwo\n")
    assert read_samples(txt, 10) == ["one", "two"]


@pytest.mark.parametrize(
    ("name", "body", "needle"),
    [
        ("c.jsonl", "{not json}\n", "c.jsonl:1: not JSON"),
        ("c.jsonl", '{"id": 1}\n', "no text"),
        ("c.csv", "a,b\n", ".jsonl, .json or .txt"),
        ("c.txt", "\n\n", "no calibration samples"),
        ("c.json", '{"text": "a"}', "expected a JSON list"),
    ],
)
def test_bad_calibration_files(tmp_path: Path, name, body, needle):
    path = tmp_path / name
    path.write_text(body)
    with pytest.raises(ExportError, match=needle) as err:
        read_samples(path, 8)
    assert err.value.code == 2


def _argv(model: Path, out: Path, calib: Path) -> list[str]:
    return [
        "--model-dir",
        str(model),
        "--output-dir",
        str(out),
        "--qformat",
        "fp8",
        "--kv-cache-dtype",
        "fp8",
        "--calib-data",
        str(calib),
        "--calib-size",
        "4",
        "--calib-max-seq-len",
        "64",
        "--export",
        "hf",
        "--tp-size",
        "1",
        "--pp-size",
        "1",
        "--dtype",
        "auto",
    ]


def test_bad_input_exits_2_and_writes_nothing(fp8_export: Path, tmp_path: Path, capsys):
    calib = tmp_path / "c.txt"
    calib.write_text("hello\n")
    exists = tmp_path / "exists"
    exists.mkdir()
    assert mq.main(_argv(fp8_export, exists, calib)) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert mq.main(_argv(tmp_path / "no-model", tmp_path / "o", calib)) == 2
    assert mq.main(_argv(fp8_export, tmp_path / "o", tmp_path / "missing.txt")) == 2
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_without_modelopt_the_run_stops_with_a_clear_line(fp8_export: Path, tmp_path: Path, capsys):
    pytest.importorskip("torch")
    try:
        import modelopt  # noqa: F401

        pytest.skip("nvidia-modelopt is installed here")
    except ImportError:
        pass
    calib = tmp_path / "c.txt"
    calib.write_text("hello\n")
    assert mq.main(_argv(fp8_export, tmp_path / "o", calib)) == 2
    assert "nvidia-modelopt" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


class FakeMtq:
    FP8_DEFAULT_CFG: ClassVar[dict] = {
        "quant_cfg": [{"quantizer_name": "*weight_quantizer"}],
        "algorithm": "max",
    }
    FP8_KV_CFG: ClassVar[dict] = {"quant_cfg": [{"quantizer_name": "*[kv]_bmm_quantizer"}]}


def test_fp8_kv_entries_are_appended_without_touching_the_preset():
    cfg = mq._quant_config(FakeMtq, "fp8", "fp8")
    assert [e["quantizer_name"] for e in cfg["quant_cfg"]] == [
        "*weight_quantizer",
        "*[kv]_bmm_quantizer",
    ]
    assert len(FakeMtq.FP8_DEFAULT_CFG["quant_cfg"]) == 1
    assert (
        mq._quant_config(FakeMtq, "fp8", "none")["quant_cfg"]
        == FakeMtq.FP8_DEFAULT_CFG["quant_cfg"]
    )


def _awq_export(root: Path, qformat: str, *, scale_rows_factor: int = 2) -> Path:
    """The layout ModelOpt 0.47 wrote for INT4-AWQ / W4A8-AWQ on an H200 (docs/measurements.md):
    U8 weights packed [out/2, in], float32 weight_scale [out, in/group], pre_quant_scale BF16,
    and for W4A8 also input_scale and weight_scale_2 (float32 scalars)."""
    import tiny_models
    import torch
    from safetensors.torch import load_file, save_file

    out = tiny_models.make_model("llama", root)
    tensors = load_file(out / "model.safetensors")
    quantized = {}
    for name, t in tensors.items():
        module = name[: -len(".weight")]
        if name.endswith(".weight") and module.rsplit(".", 1)[-1] in LINEARS:
            rows, cols = t.shape
            quantized[name] = torch.zeros(rows // 2, cols, dtype=torch.uint8)
            groups = -(-cols // 128)
            quantized[f"{module}.weight_scale"] = torch.rand(scale_rows_factor * rows // 2, groups)
            quantized[f"{module}.pre_quant_scale"] = torch.ones(cols, dtype=torch.bfloat16)
            if qformat == "w4a8_awq":
                quantized[f"{module}.input_scale"] = torch.tensor(0.05)
                quantized[f"{module}.weight_scale_2"] = torch.tensor(0.01)
        else:
            quantized[name] = t
    save_file(quantized, out / "model.safetensors")
    algo = {"int4_awq": "W4A16_AWQ", "w4a8_awq": "W4A8_AWQ"}[qformat]
    config = json.loads((out / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "modelopt", "quant_algo": algo}
    (out / "config.json").write_text(json.dumps(config))
    quant = {"quant_algo": algo, "kv_cache_quant_algo": None, "group_size": 128}
    (out / "hf_quant_config.json").write_text(json.dumps({"quantization": quant}))
    return out


@pytest.mark.parametrize("qformat", ["int4_awq", "w4a8_awq"])
def test_awq_exports_pass_with_their_packing_checked(qformat, tmp_path: Path):
    checks = mq.check_layout(_awq_export(tmp_path, qformat), qformat)
    assert all(c["status"] == "pass" for c in checks), checks
    assert {"quantized_weights", "weight_scales", "scale_dtype", "int4_packing"} <= {
        c["id"] for c in checks
    }


def test_awq_scales_that_do_not_match_the_packing_fail(tmp_path: Path):
    export = _awq_export(tmp_path, "int4_awq", scale_rows_factor=1)
    assert statuses(mq.check_layout(export, "int4_awq"))["int4_packing"] == "fail"


def test_w4a8_without_its_second_scale_fails(tmp_path: Path):
    from safetensors.torch import load_file, save_file

    export = _awq_export(tmp_path, "w4a8_awq")
    tensors = load_file(export / "model.safetensors")
    tensors = {k: v for k, v in tensors.items() if not k.endswith("q_proj.weight_scale_2")}
    save_file(tensors, export / "model.safetensors")
    assert statuses(mq.check_layout(export, "w4a8_awq"))["weight_scales"] == "fail"
    # the same checkpoint read as INT4-AWQ has what that format needs
    assert statuses(mq.check_layout(export, "int4_awq"))["weight_scales"] == "pass"

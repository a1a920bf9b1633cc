"""tests/contracts/cli_contract.py: strict parsers rebuilt from TensorRT-LLM's recorded CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CONTRACTS = Path(__file__).resolve().parents[1] / "contracts"
sys.path.insert(0, str(CONTRACTS))
import cli_contract as cc  # noqa: E402


def build(version: str) -> dict:
    return cc.load_record("trtllm-build", version)


@pytest.mark.parametrize("rec", cc.records(), ids=lambda r: r["file"])
def test_every_record_builds_a_parser_that_accepts_its_own_required_options(rec):
    version = rec["version"] if rec["version"].count(".") == 2 else rec["version"] + ".0"
    record = cc.load_record(rec["tool"], version, rec["family"])
    assert record["record_file"] == rec["file"]
    argv = []
    for arg in record["arguments"]:
        if arg.get("required") or arg.get("effectively_required"):
            value = (arg.get("choices") or ["x"])[-1]
            argv += [arg["flags"][0], value]
    assert cc.check_argv(record, argv) == []


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("0.12.0", "0.12.0"),
        ("0.13.1", "0.12.0"),
        ("0.16.0", "0.16.0"),
        ("0.18.2", "0.16.0"),
        ("1.0.0", "0.16.0"),
        ("1.2.0", "1.2"),
        ("1.2.1rc3", "1.2"),
        ("1.3.0rc20", "1.2"),
    ],
)
def test_load_record_picks_the_newest_record_at_or_below_the_version(version, expected):
    assert build(version)["record_version"] == expected


def test_load_record_for_a_convert_script_is_per_family():
    assert cc.load_record("convert_checkpoint", "0.16.0", "llama")["record_version"] == "0.11.0"
    assert cc.load_record("convert_checkpoint", "1.2.0", "qwen")["family"] == "qwen"
    assert cc.load_record("quantize.py", "1.2.0")["script_path"].endswith("quantize.py")


@pytest.mark.parametrize(
    ("tool", "version", "family"),
    [
        ("trtllm-build", "0.11.0", None),
        ("convert_checkpoint", "1.2.0", None),
        ("convert_checkpoint", "0.16.0", "phi"),
        ("convert_checkpoint", "1.2.0", "nosuch"),
        ("trtllm-serve", "1.2.0", None),
        ("trtllm-build", "latest", None),
    ],
)
def test_load_record_refuses_what_was_not_recorded(tool, version, family):
    with pytest.raises(cc.RecordNotFound):
        cc.load_record(tool, version, family)


@pytest.mark.parametrize(
    ("version", "argv", "fragment"),
    [
        ("0.16.0", ["--checkpoint_dir", "c", "--no_such_flag"], "unrecognized arguments"),
        ("0.16.0", ["--max_batch_size", "eight"], "invalid int value"),
        ("0.16.0", ["--gemm_plugin", "nvfp4"], "invalid choice"),  # nvfp4 arrived in 0.17
        ("1.2.0", ["--gemm_plugin", "float8"], "invalid choice"),
        ("0.16.0", ["--checkpoint_dir"], "expected one argument"),
        ("0.12.0", ["--tp_size", "2"], "unrecognized arguments"),  # removed in 0.12
        ("0.12.0", ["--kv_cache_type", "paged"], "unrecognized arguments"),  # added in 0.13
        ("1.2.0", ["--auto_parallel", "2"], "unrecognized arguments"),  # removed in 1.2
        ("1.2.0", ["--paged_kv_cache", "yes"], "invalid choice"),
        ("1.2.0", ["--max_seq"], "unrecognized arguments"),  # abbreviations refused
        ("1.2.0", ["--context_fmha", "true"], "invalid choice"),
    ],
)
def test_check_argv_rejects_what_trtllm_build_would_reject(version, argv, fragment):
    errors = cc.check_argv(build(version), argv)
    assert len(errors) == 1
    assert errors[0].startswith("trtllm-build: error: ")
    assert fragment in errors[0]


@pytest.mark.parametrize(
    ("version", "argv"),
    [
        (
            "0.12.0",
            [
                "--checkpoint_dir",
                "c",
                "--output_dir",
                "e",
                "--paged_kv_cache",
                "enable",
                "--gemm_plugin",
                "auto",
                "--max_seq_len",
                "4096",
                "--workers",
                "2",
            ],
        ),
        (
            "0.16.0",
            [
                "--checkpoint_dir",
                "c",
                "--kv_cache_type",
                "paged",
                "--use_fused_mlp",
                "enable",
                "--multiple_profiles",
                "enable",
            ],
        ),
        (
            "1.2.0",
            [
                "--checkpoint_dir=c",
                "--gemm_plugin",
                "nvfp4",
                "--kv_cache_type",
                "paged",
                "--input_timing_cache",
                "t",
                "--output_timing_cache",
                "t",
            ],
        ),
        ("1.2.0", []),
    ],
)
def test_check_argv_accepts_valid_command_lines(version, argv):
    assert cc.check_argv(build(version), argv) == []


def test_parse_argv_returns_the_values_given_with_types():
    got = cc.parse_argv(build("1.2.0"), ["--checkpoint_dir", "c", "--max_batch_size", "8"])
    assert got == {"checkpoint_dir": "c", "max_batch_size": 8}


def test_weight_only_precision_without_a_value_means_int8():
    llama = cc.load_record("convert_checkpoint", "1.2.0", "llama")
    got = cc.parse_argv(llama, ["--use_weight_only", "--weight_only_precision"])
    assert got["weight_only_precision"] == "int8"
    got = cc.parse_argv(llama, ["--weight_only_precision", "int4_awq"])
    assert got["weight_only_precision"] == "int4_awq"
    assert cc.check_argv(
        cc.load_record("convert_checkpoint", "0.11.0", "llama"),
        ["--weight_only_precision", "int4_awq"],
    )


def test_gemma_dialect_needs_its_dash_flags_and_ckpt_type():
    old = cc.load_record("convert_checkpoint", "0.16.0", "gemma")
    new = cc.load_record("convert_checkpoint", "1.2.0", "gemma")
    dash = ["--ckpt-type", "hf", "--model-dir", "m", "--output-model-dir", "o", "--world-size", "2"]
    assert cc.check_argv(old, dash) == []
    assert cc.check_argv(new, dash) == []
    missing = cc.check_argv(old, ["--model-dir", "m", "--output-model-dir", "o"])
    assert "required" in missing[0] and "--ckpt-type" in missing[0]
    underscore = ["--ckpt-type", "hf", "--model_dir", "m", "--output_dir", "o"]
    assert cc.check_argv(old, underscore)  # aliases only from 1.x
    assert cc.check_argv(new, underscore) == []
    assert cc.check_argv(new, [*dash, "--pp_size", "2"])  # gemma has no pipeline parallelism


def test_qwen_model_dir_is_required():
    qwen = cc.load_record("convert_checkpoint", "0.12.0", "qwen")
    assert "--model_dir" in cc.check_argv(qwen, ["--output_dir", "o"])[0]


def test_deprecated_flags_are_reported():
    assert cc.deprecated_flags(build("1.2.0"), ["--paged_kv_cache", "enable"]) == [
        "--paged_kv_cache"
    ]
    assert cc.deprecated_flags(build("0.12.0"), ["--paged_kv_cache", "enable"]) == []


def test_cli_exits_2_with_argparse_error_and_0_when_clean():
    script = str(CONTRACTS / "cli_contract.py")
    bad = subprocess.run(
        [
            sys.executable,
            script,
            "check",
            "--tool",
            "trtllm-build",
            "--version",
            "0.16.0",
            "--",
            "--checkpoint_dir",
            "c",
            "--bogus",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stdout == ""
    assert bad.stderr.strip() == "trtllm-build: error: unrecognized arguments: --bogus"
    good = subprocess.run(
        [
            sys.executable,
            script,
            "check",
            "--tool",
            "convert_checkpoint",
            "--family",
            "gemma",
            "--version",
            "0.16.0",
            "--",
            "--ckpt-type",
            "hf",
            "--model-dir",
            "m",
            "--output-model-dir",
            "o",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (good.returncode, good.stderr) == (0, "")


def test_cli_main_in_process_refuses_unrecorded_versions(capsys):
    assert cc.main(["check", "--tool", "trtllm-build", "--version", "0.9.0", "--"]) == 2
    assert "no recorded CLI" in capsys.readouterr().err

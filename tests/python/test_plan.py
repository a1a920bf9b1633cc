"""plan.py and prepare.py: every emitted command parses against the recorded CLI of its version;
every check, all problems in one run, file:line: key; the work-dir hand-over to Bash."""

from __future__ import annotations

import argparse
import copy
import importlib.machinery
import json
import sys
import types
from pathlib import Path

import modelopt_quantize
import plan
import prepare
import pytest
import quality_gate
import typed_configs as configs
import yaml
from build_config import BuildConfig

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "hf_configs"
sys.path.insert(0, str(REPO / "tests" / "contracts"))
import cli_contract as cc  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "fakes"))
import make_dist_info  # noqa: E402

VERSIONS = ("0.12.0", "0.16.0", "1.2.0")
TRTLLM_PROGRAMS = ("trtllm-build", "trtllm-serve")


@pytest.fixture(scope="module")
def base_config():
    return configs.as_dict()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    made = {}
    for path in FIXTURES.glob("*.json"):
        if path.name == "checkpoints.json":
            continue
        d = root / path.stem
        d.mkdir()
        (d / "config.json").write_text(path.read_text())
        (d / "tokenizer.json").write_text("{}")  # present: prepare checks that one is there
        made[path.stem] = d
    return made


config_with = configs.changed  # a copy of the settings with dotted keys changed


def calibrated(base, tmp_path, **changes):
    """config_with() plus a one-line local calibration file (its content does not matter)."""
    data = tmp_path / "c.txt"
    data.write_text("x\n")
    return config_with(base, **{"quantization.calibration.dataset": str(data), **changes})


def facts(version=None, gpus=0, name="NVIDIA H200", cc="9.0", mib=143771):
    devices = [
        {"index": i, "name": name, "compute_capability": cc, "memory_total_mib": mib}
        for i in range(gpus)
    ]
    return {
        "schema_version": 1,
        "gpu": {"status": "ok" if gpus else "absent", "devices": devices},
        "python": {"executable": "python3", "version": "3.12.3"},
        # an installed TensorRT-LLM comes with the stack it was released with
        "packages": (
            make_dist_info.stack(version)
            if version in make_dist_info.STACKS
            else {"tensorrt_llm": version}
        ),
        "programs": {name: f"/x/{name}" if version else None for name in TRTLLM_PROGRAMS},
        "disk": {"free_bytes": None},
        "memory": {"available_bytes": None},
    }


def typed(doc: dict) -> BuildConfig:
    return BuildConfig.model_validate(doc)


def make(base, model, version="1.2.0", installed=True, gpus=1, cache_dir=None, **changes):
    """A dry-run plan (this machine has no /ex, no trtllm-build: warnings only)."""
    doc = config_with(base, **{"target.trtllm_version": version, **changes})
    return plan.make_plan(
        typed(doc),
        facts(version if installed else None, gpus=gpus),
        model,
        "/stage",
        cache_dir=cache_dir,
        examples_dir="/ex",
        dry_run=True,
    )


def failed(p: dict) -> dict:
    return {c["id"]: c for c in p["checks"] if c["status"] == "fail"}


def step(p: dict, name: str) -> dict:
    return next(s for s in p["steps"] if s["name"] == name)


def assert_parses(tool: str, version: str, argv: list[str], family=None) -> dict:
    record = cc.load_record(tool, version, family)
    assert cc.check_argv(record, argv) == [], (tool, version, family, argv)
    return record


# --------------------------------------------------------------------------- the contract


# (fixture, family record, versions with a recorded convert script at or below them)
CONVERT_CASES = [
    ("llama-3.1-8b", "llama", VERSIONS),
    ("mixtral-8x7b-v0.1", "llama", VERSIONS),
    ("qwen2.5-7b", "qwen", VERSIONS),
    ("qwen3-8b", "qwen", ("1.2.0",)),
    ("gemma-2-9b", "gemma", ("0.16.0", "1.2.0")),
    ("phi-3-mini-4k-instruct", "phi", ("1.2.0",)),
    ("falcon-7b", "falcon", ("1.2.0",)),
    ("gpt2", "gpt", ("0.16.0", "1.2.0")),
    ("starcoder2-7b", "gpt", ("0.16.0", "1.2.0")),
    ("glm-4-9b-chat", "glm", ("1.2.0",)),
    ("baichuan2-7b-base", "baichuan", ("1.2.0",)),
    ("internlm2-7b", "internlm2", ("1.2.0",)),
]


@pytest.mark.parametrize(
    ("name", "fam", "version"),
    [(n, f, v) for n, f, versions in CONVERT_CASES for v in versions],
)
def test_convert_and_build_parse_against_the_recorded_cli(base_config, models, name, fam, version):
    p = make(base_config, models[name], version, gpus=8, **{"build.max_seq_len": 4096})
    assert [s["name"] for s in p["steps"]] == ["convert", "build"]
    convert = step(p, "convert")
    record = assert_parses("convert_checkpoint", version, convert["argv"][2:], fam)
    assert convert["argv"][0] == "python3"
    if record["record_version"] == "1.2":  # the 1.2 records carry the new examples layout
        assert convert["argv"][1] == "/ex/" + record["script_path"].removeprefix("examples/")
    build = assert_parses("trtllm-build", version, step(p, "build")["argv"][1:])
    if version != "0.12.0":
        assert cc.deprecated_flags(build, step(p, "build")["argv"]) == []


def test_commandr_plan_parses_against_its_record(base_config, tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["CohereForCausalLM"],
                "model_type": "cohere",
                "hidden_size": 8192,
                "num_hidden_layers": 40,
                "num_attention_heads": 64,
                "num_key_value_heads": 64,
                "intermediate_size": 22528,
                "vocab_size": 256000,
                "max_position_embeddings": 8192,
                "torch_dtype": "float16",
            }
        )
    )
    p = make(base_config, tmp_path, "1.2.0", gpus=8, **{"parallel.tp_size": 4})
    assert_parses("convert_checkpoint", "1.2.0", step(p, "convert")["argv"][2:], "commandr")


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(
    ("mode", "kv"),
    [
        ("int8_weight_only", "auto"),
        ("int4_weight_only", "auto"),
        ("int8_sq", "auto"),
        ("none", "int8"),
        ("int8_weight_only", "int8"),
    ],
)
def test_convert_script_quantization_flags_parse(base_config, models, tmp_path, version, mode, kv):
    data = tmp_path / "calib.jsonl"
    data.write_text('{"text": "hello"}\n')
    for name, fam in (("llama-3.1-8b", "llama"), ("qwen2.5-7b", "qwen"), ("gemma-2-9b", "gemma")):
        if fam == "gemma" and version == "0.12.0":
            continue
        p = make(
            base_config,
            models[name],
            version,
            **{
                "quantization.mode": mode,
                "quantization.kv_cache_dtype": kv,
                "quantization.calibration.dataset": str(data),
                "build.max_seq_len": 4096,
            },
        )
        assert p["quantization"]["route"] == "convert"
        assert_parses("convert_checkpoint", version, step(p, "convert")["argv"][2:], fam)
        calibrates = mode == "int8_sq" or kv == "int8"
        assert ("calib" in [s["name"] for s in p["steps"]]) == calibrates
        if calibrates:  # convert scripts find a local dir's split only under a "lambada" path
            argv = step(p, "convert")["argv"]
            calib_dir = argv[argv.index("--calib_dataset") + 1]
            assert calib_dir == step(p, "calib")["output"] == "/stage/calib_lambada"


@pytest.mark.parametrize("mode", ["fp8", "int4_awq", "w4a8_awq", "nvfp4"])
@pytest.mark.parametrize("kv", ["auto", "fp8"])
def test_quantize_py_commands_parse_at_1_2(base_config, models, tmp_path, mode, kv):
    data = tmp_path / "calib.txt"
    data.write_text("one\ntwo\n")
    p = make(
        base_config,
        models["qwen2.5-7b"],
        "1.2.0",
        **{
            "quantization.mode": mode,
            "quantization.kv_cache_dtype": kv,
            "quantization.calibration.dataset": str(data),
        },
    )
    assert [s["name"] for s in p["steps"]] == ["calib", "quantize", "build"]
    quantize = step(p, "quantize")
    assert quantize["argv"][1] == "/ex/quantization/quantize.py"
    parsed = cc.parse_argv(
        assert_parses("quantize", "1.2.0", quantize["argv"][2:]), quantize["argv"][2:]
    )
    assert parsed["calib_dataset"] == step(p, "calib")["output"] == "/stage/calib"
    assert parsed.get("kv_cache_dtype") == (None if kv == "auto" else kv)
    assert_parses("trtllm-build", "1.2.0", step(p, "build")["argv"][1:])


def test_calib_step_writes_the_local_dataset_dir_quantize_reads(base_config, models, tmp_path):
    import calib_data

    data = tmp_path / "chat.jsonl"
    data.write_text(
        '{"messages": [{"role": "user", "content": "hi"}]}\n{"prompt": "a", "completion": "b"}\n'
    )
    p = make(
        base_config,
        models["qwen2.5-7b"],
        "1.2.0",
        **{
            "quantization.mode": "fp8",
            "quantization.calibration.dataset": str(data),
            "quantization.calibration.num_samples": 1,
        },
    )
    argv = step(p, "calib")["argv"]
    out = tmp_path / "calib"
    argv[argv.index("--output-dir") + 1] = str(out)
    assert calib_data.main(argv[2:]) == 0
    assert [json.loads(x) for x in (out / "train.jsonl").read_text().splitlines()] == [
        {"text": "hi"}
    ]


def test_without_trtllm_fp8_is_a_modelopt_step_with_the_agreed_cli(base_config, models, tmp_path):
    data = tmp_path / "calib.jsonl"
    data.write_text('{"text": "x"}\n')
    p = make(
        base_config,
        models["llama-3.1-8b"],
        "1.2.0",
        installed=False,
        gpus=0,
        **{
            "quantization.mode": "fp8",
            "quantization.kv_cache_dtype": "fp8",
            "quantization.calibration.dataset": str(data),
        },
    )
    assert p["quantization"]["route"] == "modelopt"
    argv = step(p, "quantize")["argv"]
    assert argv[1].endswith("scripts/export/steps/modelopt_quantize.py")
    args = modelopt_quantize.build_parser().parse_args(argv[2:])
    assert (args.qformat, args.kv_cache_dtype, args.export) == ("fp8", "fp8", "trtllm")
    assert str(args.calib_data) == str(data)
    assert any("ModelOpt" in note for note in p["notes"])


# --------------------------------------------------------------------------- version handling


def test_kv_cache_flag_follows_the_version(base_config, models):
    old = step(make(base_config, models["llama-3.1-8b"], "0.12.0"), "build")["argv"]
    new = step(make(base_config, models["llama-3.1-8b"], "0.16.0"), "build")["argv"]
    assert "--paged_kv_cache" in old and "--kv_cache_type" not in old
    assert "--kv_cache_type" in new and "--paged_kv_cache" not in new


@pytest.mark.parametrize(
    ("version", "changes", "needle"),
    [
        ("0.16.0", {"quantization.mode": "nvfp4"}, "0.17.0"),
        ("0.16.0", {"build.gemm_plugin": "nvfp4", "quantization.mode": "nvfp4"}, "0.16.0"),
        (
            "0.12.0",
            {
                "build.kv_cache_type": "disabled",
                "build.use_paged_context_fmha": False,
                "runtime.enable_chunked_context": False,
                "runtime.enable_block_reuse": False,
            },
            "0.13.0",
        ),
        ("1.4.0", {}, "0.12.0 .. 1.3.0rc20"),
        ("0.11.0", {}, "0.12.0 .. 1.3.0rc20"),
    ],
)
def test_a_setting_the_version_cannot_honour_exits_2_naming_it(
    base_config, models, tmp_path, capsys, version, changes, needle
):
    doc = calibrated(base_config, tmp_path, **changes)
    code = run_main(tmp_path, doc, facts(version, gpus=1), models["llama-3.1-8b"], "--build")
    out = capsys.readouterr()
    assert code == 2 and out.out == ""  # a build stops before anything: no plan, no staging
    errors = [ln for ln in out.err.splitlines() if "error: " in ln]
    assert any(needle in ln for ln in errors), out.err
    assert not (tmp_path / "stage").exists() and not (tmp_path / "out").exists()


def test_installed_version_wins_over_the_config_target(base_config, models):
    doc = config_with(base_config, **{"target.trtllm_version": "1.2.0"})
    p = plan.make_plan(
        typed(doc), facts("0.16.0", gpus=1), models["llama-3.1-8b"], "/s", examples_dir="/e"
    )
    assert (p["trtllm_version"], p["trtllm_version_source"]) == ("0.16.0", "installed")
    assert p["cli_record_version"] == "0.16.0"
    p = plan.make_plan(
        typed(doc), facts(None, gpus=0), models["llama-3.1-8b"], "/s", examples_dir="/e"
    )
    assert (p["trtllm_version"], p["trtllm_version_source"]) == ("1.2.0", "config")
    assert p["gpu"]["source"] == "config" and p["gpu"]["name"] == "H100"


def test_float32_checkpoints_build_in_float16_with_auto(base_config, models):
    p = make(base_config, models["gemma-2-9b"], "1.2.0")
    argv = step(p, "convert")["argv"]
    assert argv[argv.index("--dtype") + 1] == "float16" == p["dtype"]


# --------------------------------------------------------------------------- bad input -> exit 2


def run_main(tmp_path, doc, fact, model, *extra, monkeypatch=None):
    """prepare.main on a YAML of the settings, with these facts for the machine; --dry-run
    unless told otherwise ("--build")."""
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    argv = [
        "--config", str(cfg), "--model-dir", str(model), "--output", str(tmp_path / "out" / "m"),
        "--staging", str(tmp_path / "stage"), "--cache-dir", str(tmp_path / "cache"),
        "--work-dir", str(work),
    ]  # fmt: skip
    argv += [] if "--build" in extra else ["--dry-run"]
    argv += [a for a in extra if a != "--build"]
    saved = prepare.probe.collect
    prepare.probe.collect = lambda *_a, **_k: copy.deepcopy(fact)
    try:
        return prepare.main(argv)
    finally:
        prepare.probe.collect = saved


@pytest.mark.parametrize(
    ("name", "changes", "check_id", "fix"),
    [
        ("llama-3.1-8b", {"parallel.tp_size": 3}, "tp_heads", "1, 2, 4, 8, 16"),
        ("qwen2.5-7b", {"parallel.tp_size": 8}, "tp_heads", "one of 1, 2, 4)"),
        ("phi-3-mini-4k-instruct", {"parallel.pp_size": 2}, "pp_layers", "pp_size: 1"),
        ("gemma-2-9b", {"parallel.pp_size": 2}, "pp_layers", "pp_size: 1"),
        ("gpt2", {"parallel.pp_size": 16}, "pp_layers", "at most 12"),
        ("mistral-7b-v0.1", {"build.max_seq_len": 65536}, "max_seq_len", "at most 32768"),
        ("llama-3.1-70b", {}, "weights_fit", "parallel.tp_size: 2"),
        (
            "llama-3.1-8b",
            {
                "quantization.mode": "fp8",
                "target.gpus": [{"name": "A100", "compute_capability": "8.0", "memory_gib": 80}],
            },
            "gpu_precision",
            "quantization.mode",
        ),
        (
            "llama-3.1-8b",
            {
                "build.max_seq_len": 131072,
                "build.max_input_len": 4096,
                "target.gpus": [{"name": "L4", "compute_capability": "8.9", "memory_gib": 24}],
            },
            "kv_capacity",
            "max_seq_len",
        ),
    ],
)
def test_failed_checks_exit_2_with_one_line_each_naming_file_line_and_key(
    base_config, models, tmp_path, capsys, name, changes, check_id, fix
):
    doc = calibrated(base_config, tmp_path, **changes)
    assert run_main(tmp_path, doc, facts(None), models[name]) == 2
    out = capsys.readouterr()
    assert out.out.startswith("plan ")  # a dry run always prints the plan, failures marked
    assert f"[FAIL] {check_id}" in out.out
    lines = [ln for ln in out.err.splitlines() if ": error: " in ln]
    assert any(fix in ln for ln in lines), lines
    if changes:
        key = next(iter(changes)) if check_id != "gpu_precision" else "quantization.mode"
        where = f"{tmp_path / 'config.yaml'}:"
        assert any(where in ln and f": {key}: " in ln for ln in lines), lines
    assert run_main(tmp_path, doc, facts(None), models[name], "--json") == 2
    kept = json.loads(capsys.readouterr().out)["plan"]
    assert kept["ok"] is False
    assert any(c["id"] == check_id and c["status"] == "fail" for c in kept["checks"])


def test_rope_scaling_turns_a_long_max_seq_len_into_a_warning(base_config, models):
    p = make(base_config, models["llama-3.1-8b"], **{"build.max_seq_len": 262144})
    check = next(c for c in p["checks"] if c["id"] == "max_seq_len")
    assert check["status"] == "warn" and "rope scaling" in check["message"]


def test_short_max_seq_len_warns_about_the_model_context(base_config, models):
    p = make(base_config, models["qwen2.5-7b"], **{"build.max_seq_len": 8192})
    check = next(c for c in p["checks"] if c["id"] == "max_seq_len")
    assert check["status"] == "warn" and "131072" in check["message"]


@pytest.mark.parametrize(
    ("model_kind", "needle"),
    [("trtllm_checkpoint", "where a Hugging Face"), ("unsupported", "MambaForCausalLM")],
)
def test_wrong_or_unsupported_model_exits_2(base_config, tmp_path, capsys, model_kind, needle):
    model = tmp_path / "model"
    model.mkdir()
    content = {"architecture": "LlamaForCausalLM", "mapping": {"world_size": 1}}
    if model_kind == "unsupported":
        content = {"architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": 8}
    (model / "config.json").write_text(json.dumps(content))
    assert run_main(tmp_path, base_config, facts("1.2.0"), model, "--build") == 2
    out = capsys.readouterr()
    assert out.out == "" and needle in out.err


def test_without_calibration_data_quantize_py_warns_and_modelopt_exits_2(
    base_config, models, tmp_path, capsys
):
    doc = config_with(base_config, **{"quantization.mode": "fp8"})
    p = make(base_config, models["qwen2.5-7b"], **{"quantization.mode": "fp8"})
    [check] = [c for c in p["checks"] if c["id"] == "calibration"]
    assert check["status"] == "warn" and "Hugging Face Hub" in check["message"]
    # without TensorRT-LLM the ModelOpt step runs: one failing check, not a warn beside it
    p = make(base_config, models["qwen2.5-7b"], installed=False, **{"quantization.mode": "fp8"})
    [check] = [c for c in p["checks"] if c["id"] == "calibration"]
    assert check["status"] == "fail" and "nothing is downloaded" in check["message"]
    assert "--calib_dataset" not in step(p, "quantize")["argv"]
    assert run_main(tmp_path, doc, facts(None), models["qwen2.5-7b"]) == 2
    assert "quantization.calibration.dataset" in capsys.readouterr().err
    data = tmp_path / "c.parquet"
    data.write_bytes(b"PAR1")
    doc = config_with(doc, **{"quantization.calibration.dataset": str(data)})
    assert run_main(tmp_path, doc, facts(None), models["qwen2.5-7b"]) == 2
    assert ".jsonl or .txt" in capsys.readouterr().err


def test_without_trtllm_int8_smoothquant_cannot_use_modelopt(base_config, models, tmp_path, capsys):
    data = tmp_path / "c.txt"
    data.write_text("x\n")
    doc = config_with(
        base_config,
        **{
            "quantization.mode": "int8_sq",
            "quantization.calibration.dataset": str(data),
            "build.max_seq_len": 2048,  # falcon-7b: FalconConfig's 2048 positions
            "build.max_input_len": 1024,
        },
    )
    # llama's convert script does smoothquant itself: fine without TensorRT-LLM installed
    assert run_main(tmp_path, doc, facts(None), models["llama-3.1-8b"]) == 0
    capsys.readouterr()
    # falcon's does not, and ModelOpt alone has no int8_sq export: a dry run (for the machine
    # that will build, which has TensorRT-LLM) warns; a build on this machine refuses
    assert run_main(tmp_path, doc, facts(None), models["falcon-7b"]) == 0
    assert "TensorRT-LLM is not installed" in capsys.readouterr().out
    assert run_main(tmp_path, doc, facts(None), models["falcon-7b"], "--build") == 2
    assert "TensorRT-LLM is not installed" in capsys.readouterr().err


# --------------------------------------------------------------------------- plan details


def test_timing_cache_is_per_gpu_and_version_and_keeps_the_argv_stable(
    base_config, models, tmp_path
):
    p = make(base_config, models["llama-3.1-8b"], cache_dir=str(tmp_path))
    cache = tmp_path / "h200-sm90-trt1.2.0" / "timing.cache"
    argv = step(p, "build")["argv"]
    assert p["timing_cache"] == str(cache) and p["timing_cache_dir"] == str(cache.parent)
    assert argv[argv.index("--input_timing_cache") + 1] == str(cache)
    assert argv[argv.index("--output_timing_cache") + 1] == str(cache)
    assert any("Invalid timing cache" in note for note in p["notes"])
    cache.parent.mkdir()
    cache.write_bytes(b"x")
    again = make(base_config, models["llama-3.1-8b"], cache_dir=str(tmp_path))
    assert step(again, "build")["argv"] == argv  # same argv, so the same build_id
    assert not any("Invalid timing cache" in note for note in again["notes"])
    other = make(base_config, models["llama-3.1-8b"], "0.16.0", cache_dir=str(tmp_path))
    assert other["timing_cache_dir"] == str(tmp_path / "h200-sm90-trt0.16.0")
    off = make(
        base_config,
        models["llama-3.1-8b"],
        cache_dir=str(tmp_path),
        **{"build.timing_cache": False},
    )
    assert "--output_timing_cache" not in step(off, "build")["argv"]


def test_workers_are_capped_by_visible_gpus_and_fewer_gpus_warn(base_config, models):
    p = make(
        base_config, models["llama-3.1-70b"], gpus=2, **{"parallel.tp_size": 4, "build.workers": 4}
    )
    argv = step(p, "build")["argv"]
    assert argv[argv.index("--workers") + 1] == "2"
    world = next(c for c in p["checks"] if c["id"] == "world_size")
    assert world["status"] == "warn" and "one after another" in world["message"]
    step_tp = step(p, "convert")["argv"]
    assert step_tp[step_tp.index("--tp_size") + 1] == "4"


def test_plan_document_carries_the_contract_fields(base_config, models):
    p = make(base_config, models["llama-3.1-8b"])
    for key in (
        "schema_version",
        "backend",
        "family",
        "hf_architecture",
        "trtllm_version",
        "trtllm_version_source",
        "gpu",
        "world_size",
        "steps",
        "checks",
        "estimates",
    ):
        assert key in p
    assert p["schema_version"] == 1 and p["ok"] is True
    for s in p["steps"]:
        assert set(s) >= {"name", "argv", "log", "output"}
        assert all(isinstance(a, str) for a in s["argv"])
    for c in p["checks"]:
        assert set(c) == {"id", "status", "message", "fix", "key"}
        assert c["status"] in ("pass", "warn", "fail", "skip")


def test_prepare_hands_bash_plain_files_and_one_plan_document(base_config, models, tmp_path):
    doc = config_with(base_config, **{"target.trtllm_version": "0.16.0"})
    assert run_main(tmp_path, doc, facts("0.16.0", gpus=1), models["gemma-2-9b"]) == 0
    work = tmp_path / "work"
    full = json.loads((work / "plan.json").read_text())
    assert full["schema_version"] == 1 and full["status"] == "absent"
    p = full["plan"]
    assert (work / "steps").read_text().splitlines() == ["convert", "build"]
    raw = (work / "argv.convert").read_bytes().decode()
    assert raw.endswith("\0") and raw.split("\0")[:-1] == step(p, "convert")["argv"]
    assert "--ckpt-type" in raw.split("\0")
    assert (work / "build_id").read_text().strip() == full["inputs"]["build_id"]
    assert (work / "status").read_text().strip() == "absent"
    assert (work / "dirs").read_text().strip() == p["timing_cache_dir"]
    assert [s["name"] for s in artifact_stages(work)] == ["config", "probe", "plan"]
    assert full["config"]["config"]["target"]["trtllm_version"] == "0.16.0"
    shown = plan.show(p)
    for word in ("commands", "checks", "estimates", "trtllm-build", "KV bytes/token"):
        assert word in shown


def artifact_stages(work):
    import artifact_files

    return artifact_files.read_stages(work / "stages.tsv")


def test_show_prints_commands_a_user_can_paste(base_config, models, monkeypatch):
    monkeypatch.delenv("TRTLLM_EXAMPLES_DIR", raising=False)
    doc = config_with(base_config, **{"target.trtllm_version": "1.2.0"})
    p = plan.make_plan(typed(doc), facts(None), models["llama-3.1-8b"], "/stage", dry_run=True)
    shown = plan.show(p)
    assert '"${TRTLLM_EXAMPLES_DIR}"/models/core/llama/convert_checkpoint.py' in shown
    assert "'$TRTLLM_EXAMPLES_DIR" not in shown
    assert max(len(line) for line in shown.splitlines() if "\\" in line) <= 100
    assert "0.0 GiB" not in shown


@pytest.mark.parametrize("returns_parser", [True, False])
def test_installed_trtllm_build_parser_is_consulted(
    base_config, models, monkeypatch, returns_parser
):
    pkg = types.ModuleType("tensorrt_llm")
    pkg.__spec__ = importlib.machinery.ModuleSpec("tensorrt_llm", None)
    build_mod = types.ModuleType("tensorrt_llm.commands.build")
    seen = []

    def parse_arguments():
        seen.append(list(sys.argv))
        parser = argparse.ArgumentParser(prog="trtllm-build")
        parser.add_argument("--checkpoint_dir")  # a parser that lacks every other flag
        if returns_parser:  # the 0.13+ shape: main() calls parse_args itself
            return parser
        return parser.parse_args()

    build_mod.parse_arguments = parse_arguments
    monkeypatch.setitem(sys.modules, "tensorrt_llm", pkg)
    monkeypatch.setitem(sys.modules, "tensorrt_llm.commands", types.ModuleType("x"))
    monkeypatch.setitem(sys.modules, "tensorrt_llm.commands.build", build_mod)
    p = make(base_config, models["llama-3.1-8b"])
    check = next(c for c in p["checks"] if c["id"] == "installed_cli")
    assert check["status"] == "fail" and "unrecognized arguments: --output_dir" in check["message"]
    assert seen[0][0] == "trtllm-build" and seen[0][1:] == step(p, "build")["argv"][1:]
    assert sys.argv[0] != "trtllm-build"  # restored


def test_pytorch_backend_uses_its_planner_and_keeps_checks(base_config, models, tmp_path):
    import pytorch_plan

    doc = calibrated(
        base_config,
        tmp_path,
        **{
            "backend": "pytorch",
            "quantization.mode": "fp8",
        },
    )
    p = plan.make_plan(typed(doc), facts("1.2.0", gpus=1), models["qwen2.5-7b"], "/stage")
    expected = pytorch_plan.plan_steps(
        typed(doc), "python3", str(models["qwen2.5-7b"].resolve()), "/stage"
    )
    quality_gate.plan_quality(typed(doc), expected, "/stage")  # + the quality gate's flags
    assert p["steps"] == expected
    assert p["family"] is None and p["backend"] == "pytorch"
    assert {"tp_heads", "weights_fit", "kv_capacity"} <= {c["id"] for c in p["checks"]}
    old = config_with(base_config, **{"backend": "pytorch", "target.trtllm_version": "0.16.0"})
    p = plan.make_plan(typed(old), facts(None), models["qwen2.5-7b"], "/stage", dry_run=True)
    assert "engine backend" in failed(p)["backend_window"]["message"] or "0.16.0" in str(
        failed(p)["backend_window"]
    )


def test_environment_checks_of_the_doctor_run_in_the_plan(base_config, models):
    # An installed TensorRT-LLM whose TensorRT is not the one it was built for: the plan fails on
    # the version stack before any conversion, as make doctor would.
    doc = config_with(base_config, **{"target.trtllm_version": "0.16.0"})
    fct = facts("0.16.0", gpus=1)
    fct["packages"]["tensorrt"] = "10.3.0"
    p = plan.make_plan(typed(doc), fct, models["llama-3.1-8b"], "/stage", examples_dir="/ex")
    checks = {c["id"]: c for c in p["checks"]}
    assert checks["tensorrt_version"]["status"] == "fail"
    assert "backend_window" in checks
    assert p["ok"] is False
    # A laptop without TensorRT-LLM or a GPU still plans (warnings, no failure from the machine).
    p = plan.make_plan(
        typed(doc), facts(None, gpus=0), models["llama-3.1-8b"], "/stage", dry_run=True
    )
    assert not [c for c in p["checks"] if c["status"] == "fail"]


# --------------------------------------------------------------------------- calib_data.py


@pytest.mark.parametrize(
    ("suffix", "body", "expected"),
    [
        (".txt", "first\n\nsecond\nthird\n", ["first", "second"]),
        (".jsonl", '{"text": "a"}\n{"prompt": "b", "completion": "c"}\n', ["a", "bc"]),
        (".json", '["x", {"messages": [{"role": "user", "content": "y"}]}]', ["x", "y"]),
    ],
)
def test_calib_data_writes_the_first_n_samples_as_text_lines(
    tmp_path, capsys, suffix, body, expected
):
    import calib_data

    src = tmp_path / f"data{suffix}"
    src.write_text(body)
    out = tmp_path / "out"
    assert (
        calib_data.main(["--input", str(src), "--output-dir", str(out), "--num-samples", "2"]) == 0
    )
    lines = (out / "train.jsonl").read_text().splitlines()
    assert [json.loads(x)["text"] for x in lines] == expected
    assert (out / "validation.jsonl").read_text() == (out / "train.jsonl").read_text()
    assert json.loads(capsys.readouterr().out)["samples"] == 2


def test_calib_data_copies_parquet_and_refuses_bad_input(tmp_path, capsys):
    import calib_data

    src = tmp_path / "d.parquet"
    src.write_bytes(b"PAR1data")
    assert calib_data.main(["--input", str(src), "--output-dir", str(tmp_path / "p")]) == 0
    assert (tmp_path / "p" / "train.parquet").read_bytes() == b"PAR1data"
    assert (tmp_path / "p" / "validation.parquet").read_bytes() == b"PAR1data"
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    capsys.readouterr()
    assert calib_data.main(["--input", str(bad), "--output-dir", str(tmp_path / "b")]) == 2
    assert not (tmp_path / "b").exists()
    assert "bad.jsonl:1" in capsys.readouterr().err
    assert calib_data.main(["--input", str(tmp_path / "x.csv"), "--output-dir", str(tmp_path)]) == 2


def test_installed_parser_that_knows_the_flags_passes(base_config, models, monkeypatch):
    strict = cc.build_parser(cc.load_record("trtllm-build", "1.2.0"))
    strict.error = types.MethodType(argparse.ArgumentParser.error, strict)  # exits 2 like argparse
    pkg = types.ModuleType("tensorrt_llm")
    pkg.__spec__ = importlib.machinery.ModuleSpec("tensorrt_llm", None)
    build_mod = types.ModuleType("tensorrt_llm.commands.build")
    build_mod.parse_arguments = lambda: strict
    monkeypatch.setitem(sys.modules, "tensorrt_llm", pkg)
    monkeypatch.setitem(sys.modules, "tensorrt_llm.commands", types.ModuleType("x"))
    monkeypatch.setitem(sys.modules, "tensorrt_llm.commands.build", build_mod)
    p = make(base_config, models["llama-3.1-8b"], cache_dir="/cache")
    assert next(c for c in p["checks"] if c["id"] == "installed_cli")["status"] == "pass"
    p = make(base_config, models["llama-3.1-8b"], "0.12.0")  # --paged_kv_cache: 1.2 still has it
    assert next(c for c in p["checks"] if c["id"] == "installed_cli")["status"] == "pass"


def test_uneven_pipeline_split_warns_and_unrecorded_family_warns(base_config, models):
    p = make(base_config, models["llama-3.1-8b"], gpus=8, **{"parallel.pp_size": 3})
    assert next(c for c in p["checks"] if c["id"] == "pp_layers")["status"] == "warn"
    p = make(base_config, models["deepseek-v2-lite"], gpus=8, **{"build.max_seq_len": 4096})
    fam = next(c for c in p["checks"] if c["id"] == "family")
    assert fam["status"] == "warn" and "not recorded" in fam["message"]
    assert step(p, "convert")["argv"][1] == "/ex/models/contrib/deepseek_v2/convert_checkpoint.py"


def test_a_trtllm_import_banner_does_not_reach_the_plan_on_stdout(
    base_config, models, tmp_path, monkeypatch, capfd
):
    pkg = tmp_path / "site" / "tensorrt_llm"
    (pkg / "commands").mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        "import os, sys\nprint('[TensorRT-LLM] TensorRT-LLM version: 9.9')\n"
        "os.write(1, b'native banner\\n')\n"
    )
    (pkg / "commands" / "__init__.py").write_text("")
    (pkg / "commands" / "build.py").write_text(
        "import argparse\ndef parse_arguments():\n"
        "    p = argparse.ArgumentParser()\n    p.add_argument('--anything', nargs='*')\n"
        "    return p\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    for name in [m for m in sys.modules if m.startswith("tensorrt_llm")]:
        monkeypatch.delitem(sys.modules, name)
    code = run_main(tmp_path, base_config, facts("1.2.0", gpus=1), models["llama-3.1-8b"], "--json")
    out = capfd.readouterr()
    plan_doc = json.loads(out.out)["plan"]  # nothing but the plan on stdout
    assert "banner" in out.err and "TensorRT-LLM version" in out.err
    check = next(c for c in plan_doc["checks"] if c["id"] == "installed_cli")
    assert check["status"] == "fail" and code == 2  # this stand-in parser knows no build flag


def test_relative_dirs_become_absolute_because_steps_run_in_the_staging_dir(
    base_config, models, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    doc = config_with(base_config, **{"target.trtllm_version": "1.2.0"})
    p = plan.make_plan(
        typed(doc),
        facts("1.2.0", gpus=1),
        models["llama-3.1-8b"],
        "stage",
        cache_dir="cache",
        examples_dir="ex",
    )
    convert, build = step(p, "convert")["argv"], step(p, "build")["argv"]
    assert convert[1] == str(tmp_path / "ex/models/core/llama/convert_checkpoint.py")
    assert convert[convert.index("--output_dir") + 1] == str(tmp_path / "stage/checkpoint")
    assert build[build.index("--output_dir") + 1] == str(tmp_path / "stage/engine")
    assert p["timing_cache"].startswith(str(tmp_path / "cache") + "/")


def test_workers_are_lowered_to_what_host_ram_holds(base_config, models):
    doc = config_with(base_config, **{"parallel.tp_size": 8, "build.workers": 8})
    fact = facts("1.2.0", gpus=8)
    fact["memory"]["available_bytes"] = 100 * 1024**3
    p = plan.make_plan(typed(doc), fact, models["llama-3.1-70b"], "/stage", examples_dir="/ex")
    per_worker = 2 * p["estimates"]["weights_bytes_per_gpu"]
    argv = step(p, "build")["argv"]
    workers = int(argv[argv.index("--workers") + 1])
    assert workers == (100 * 1024**3) // per_worker < 8
    assert any("build.workers 8 lowered" in note for note in p["notes"])


# --------------------------------------------------------------------------- all problems at once


def test_every_problem_is_reported_in_one_run_not_one_per_try(
    base_config, models, tmp_path, capsys
):
    a10 = [{"name": "A10", "compute_capability": "8.6", "memory_gib": 24}]
    doc = config_with(base_config, **{"quantization.mode": "fp8", "target.gpus": a10})
    assert run_main(tmp_path, doc, facts(None), models["llama-3.1-8b"]) == 2
    out = capsys.readouterr()
    assert "[FAIL] calibration" in out.out and "[FAIL] gpu_precision" in out.out
    errors = [ln for ln in out.err.splitlines() if ": error: " in ln]
    assert any("quantization.calibration.dataset" in ln for ln in errors)
    assert any("quantization.mode" in ln and "8.9" in ln for ln in errors)


def test_a_quantize_step_this_machine_cannot_run_is_refused_by_a_build_and_warned_by_a_dry_run(
    base_config, models, tmp_path
):
    doc = calibrated(
        base_config,
        tmp_path,
        **{
            "backend": "pytorch",
            "quantization.mode": "fp8",
        },
    )
    fact = facts("1.2.0", gpus=0)
    fact["packages"]["nvidia-modelopt"] = None
    for dry_run, status in ((False, "fail"), (True, "warn")):
        p = plan.make_plan(typed(doc), fact, models["qwen2.5-7b"], "/s", dry_run=dry_run)
        tools = [c for c in p["checks"] if c["id"] == "step_tools"]
        assert {c["status"] for c in tools} == {status}
        text = " ".join(c["message"] + c["fix"] for c in tools)
        assert "nvidia-modelopt" in text and "a GPU" in text


def test_a_missing_family_script_in_a_real_examples_dir_says_so(base_config, models, tmp_path):
    examples = tmp_path / "examples"
    (examples / "quantization").mkdir(parents=True)
    (examples / "quantization" / "quantize.py").write_text("")
    doc = config_with(base_config, **{"target.trtllm_version": "1.2.0"})
    p = plan.make_plan(
        typed(doc), facts("1.2.0", gpus=1), models["llama-3.1-8b"], "/s", examples_dir=examples
    )
    found = failed(p)["examples_dir"]
    assert "has no models/core/llama/convert_checkpoint.py" in found["message"]
    assert "TRTLLM_EXAMPLES_DIR" not in found["fix"]
    p = plan.make_plan(
        typed(doc), facts("1.2.0", gpus=1), models["llama-3.1-8b"], "/s", examples_dir="/nope"
    )
    assert "TRTLLM_EXAMPLES_DIR" in failed(p)["examples_dir"]["fix"]


def test_a_dry_run_on_a_laptop_warns_about_what_only_the_build_machine_needs(base_config, models):
    doc = config_with(base_config, **{"parallel.tp_size": 8})
    fact = facts(None)
    fact["mpi"] = {"status": "absent", "version": None}
    fact["disk"]["free_bytes"] = 1024**3  # too little for a 70B's checkpoint and engines
    p = plan.make_plan(typed(doc), fact, models["llama-3.1-70b"], "/s", dry_run=True)
    checks = {c["id"]: c for c in p["checks"]}
    assert (checks["mpi"]["status"], checks["disk"]["status"]) == ("warn", "warn")
    assert p["ok"] is True
    p = plan.make_plan(typed(doc), fact, models["llama-3.1-70b"], "/s", dry_run=False)
    assert {"mpi", "disk"} <= set(failed(p))

"""llm_api_options.py: the options YAML from the config, checked per TensorRT-LLM version."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import llm_api_options as lao
import pytest
import yaml

RECORDS = sorted(lao.RECORD_DIR.glob("llm_args.*.json"))
BASE = {
    "backend": "pytorch",
    "dtype": "bfloat16",
    "build": {"max_batch_size": 64, "max_num_tokens": 4096, "max_seq_len": 2048},
    "parallel": {"tp_size": 2, "pp_size": 1},
    "quantization": {"mode": "fp8", "kv_cache_dtype": "fp8", "calibration": {}},
    "runtime": {
        "kv_cache_free_gpu_memory_fraction": 0.85,
        "enable_chunked_context": False,
        "cuda_graphs": True,
        "enable_block_reuse": False,
    },
}


def cfg(**changes) -> dict:
    out = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = out
        *parents, leaf = dotted.split("__")
        for p in parents:
            node = node[p]
        node[leaf] = value
    return out


def test_config_values_reach_the_llm_api_keys():
    opts = lao.build_options(cfg())
    assert opts["max_batch_size"] == 64
    assert opts["max_num_tokens"] == 4096
    assert opts["max_seq_len"] == 2048
    assert (opts["tensor_parallel_size"], opts["pipeline_parallel_size"]) == (2, 1)
    assert opts["dtype"] == "bfloat16"
    assert opts["enable_chunked_prefill"] is False
    assert opts["kv_cache_config"] == {
        "free_gpu_memory_fraction": 0.85,
        "enable_block_reuse": False,
        "dtype": "fp8",
    }
    assert opts["cuda_graph_config"] == {"enable_padding": True, "max_batch_size": 64}


def test_cuda_graphs_off_writes_null_config():
    assert lao.build_options(cfg(runtime__cuda_graphs=False))["cuda_graph_config"] is None


@pytest.mark.parametrize(
    "changes",
    [
        {"quantization__mode": "int8_sq"},
        {"quantization__mode": "int4_weight_only"},
        {"quantization__kv_cache_dtype": "int8"},
        {"runtime__kv_cache_free_gpu_memory_fraction": 1.5},
        {"build__max_batch_size": 9000},
    ],
)
def test_configs_the_backend_cannot_serve_are_bad_input(changes):
    with pytest.raises(lao.OptionsError) as err:
        lao.build_options(cfg(**changes))
    assert err.value.code == 2


@pytest.mark.parametrize(
    "version", ["1.0.0", "1.1.0", "1.2.0", "1.2.1", "1.3.0rc20", "1.4.0rc4", "2.0.0"]
)
def test_emitted_options_pass_every_recorded_version(version):
    record = lao.load_record(version)
    assert lao.check_options(lao.build_options(cfg()), record) == []
    assert lao.check_options(lao.build_options(cfg(runtime__cuda_graphs=False)), record) == []


def test_the_newest_line_at_or_below_is_used():
    assert lao.load_record("1.2.1")["record_file"] == "llm_args.1.2.json"
    assert lao.load_record("1.3.0rc20")["record_file"] == "llm_args.1.3.json"
    assert lao.load_record("1.1.0rc5")["record_file"] == "llm_args.1.1.json"
    assert lao.load_record("1.4.0rc4")["record_file"] == "llm_args.1.4.json"


@pytest.mark.parametrize("version", ["0.21.0", "0.12.0"])
def test_versions_without_pytorch_serving_are_refused(version):
    with pytest.raises(lao.OptionsError, match=r"1\.0 or newer"):
        lao.load_record(version)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"use_cuda_graph": True}, "use_cuda_graph"),  # the 0.x flat key, gone in 1.0
        ({"build_config": {"max_batch_size": 8}}, "TensorRT-engine option"),
        (
            {"kv_cache_config": {"free_gpu_mem_fraction": 0.9}},
            "kv_cache_config.free_gpu_mem_fraction",
        ),
        ({"cuda_graph_config": {"padding": True}}, "cuda_graph_config.padding"),
    ],
)
def test_unknown_keys_are_named(options, needle):
    errors = lao.check_options(options, lao.load_record("1.2.0"))
    assert len(errors) == 1 and needle in errors[0]


def test_removed_and_added_keys_follow_the_version():
    # fail_fast_on_attention_window_too_large is gone in 2026; num_serve_frontends is new there.
    assert (
        lao.check_options(
            {"fail_fast_on_attention_window_too_large": True}, lao.load_record("1.2.0")
        )
        == []
    )
    assert lao.check_options(
        {"fail_fast_on_attention_window_too_large": True}, lao.load_record("1.4.0")
    )
    assert lao.check_options({"num_serve_frontends": 2}, lao.load_record("1.4.0")) == []
    assert lao.check_options({"num_serve_frontends": 2}, lao.load_record("1.2.0"))


def test_partial_records_refuse_keys_they_did_not_verify():
    # stream_interval is in the 1.2 source record; the 1.0 record (docs only) does not vouch for it.
    assert lao.check_options({"stream_interval": 4}, lao.load_record("1.2.0")) == []
    errors = lao.check_options({"stream_interval": 4}, lao.load_record("1.0.0"))
    assert errors and "partial" in errors[0]


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: p.name)
def test_records_carry_provenance_and_partial_ones_stay_inside_the_source_records(path):
    record = json.loads(path.read_text())
    full = json.loads((lao.RECORD_DIR / "llm_args.1.2.json").read_text())
    assert record["version_pin"] and ("source_commit" in record or record.get("sources"))
    if record.get("complete", True):
        return
    newest = json.loads((lao.RECORD_DIR / "llm_args.1.4.json").read_text())
    both = set(full["fields"]) & set(newest["fields"])
    assert set(record["fields"]) <= both, "a partial record names a key a source record lacks"
    for key, subs in record.get("nested", {}).items():
        assert set(subs) <= set(full["nested"][key]) & set(newest["nested"][key])


def test_main_writes_the_yaml_atomically(tmp_path: Path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"schema_version": 1, "config": cfg()}))
    out = tmp_path / "llm_api_options.yaml"
    assert (
        lao.main(["--config-json", str(config), "--trtllm-version", "1.2.0", "--output", str(out)])
        == 0
    )
    text = out.read_text()
    assert "llm_args.1.2.json" in text.splitlines()[1]
    assert yaml.safe_load(text) == lao.build_options(cfg())
    assert not list(tmp_path.glob("*.tmp"))


def test_main_check_rejects_a_bad_yaml_with_exit_2(tmp_path: Path, capsys):
    bad = tmp_path / "extra.yaml"
    bad.write_text("max_batch_size: 8\nkv_cache_config:\n  free_gpu_memory_fractoin: 0.5\n")
    assert lao.main(["--check", str(bad), "--trtllm-version", "1.2.0"]) == 2
    assert "free_gpu_memory_fractoin" in capsys.readouterr().err
    good = tmp_path / "good.yaml"
    good.write_text("max_batch_size: 8\n")
    assert lao.main(["--check", str(good), "--trtllm-version", "1.2.0"]) == 0


def test_main_refuses_engine_only_quantization(tmp_path: Path, capsys):
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"schema_version": 1, "config": cfg(quantization__mode="int8_sq")})
    )
    out = tmp_path / "o.yaml"
    code = lao.main(
        ["--config-json", str(config), "--trtllm-version", "1.2.0", "--output", str(out)]
    )
    assert code == 2 and not out.exists()
    assert "engine-only" in capsys.readouterr().err

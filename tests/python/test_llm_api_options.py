"""llm_api_options.py: the options YAML from the config, checked per TensorRT-LLM version."""

from __future__ import annotations

import json
from pathlib import Path

import build_config
import check_options
import llm_api_options as lao
import pytest
import typed_configs as configs
import yaml
from errors import ExportError

RECORDS = sorted(lao.RECORD_DIR.glob("llm_args.*.json"))
BASE = {
    "backend": "pytorch",
    "dtype": "bfloat16",
    "build.max_batch_size": 64,
    "build.max_num_tokens": 4096,
    "build.max_seq_len": 2048,
    "build.max_input_len": 1024,
    "parallel.tp_size": 2,
    "parallel.pp_size": 1,
    "quantization.mode": "fp8",
    "quantization.kv_cache_dtype": "fp8",
    "runtime.kv_cache_free_gpu_memory_fraction": 0.85,
    "runtime.enable_chunked_context": False,
    "runtime.cuda_graphs": True,
    "runtime.enable_block_reuse": False,
}


def cfg(**changes):
    return configs.typed(None, **{**BASE, **changes})


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
    ("changes", "code"),
    [
        ({"quantization__mode": "int8_sq"}, "rule:mode_not_on_pytorch"),
        ({"quantization__mode": "int4_weight_only"}, "rule:mode_not_on_pytorch"),
        ({"quantization__kv_cache_dtype": "int8"}, "rule:kv_int8_on_pytorch"),
        (
            {"build__max_batch_size": 4000, "build__max_num_tokens": 2048},
            "rule:batch_exceeds_num_tokens",
        ),
    ],
)
def test_configs_the_backend_cannot_serve_are_refused_by_the_config(tmp_path, changes, code):
    doc = configs.as_dict(None, **{**BASE, **changes})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(build_config.ConfigError) as err:
        build_config.check(path)
    assert code in [i.code for i in err.value.issues]


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
    with pytest.raises(ExportError, match=r"1\.0 or newer"):
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


def test_check_options_rejects_a_bad_yaml_with_exit_2(tmp_path: Path, capsys):
    bad = tmp_path / "extra.yaml"
    bad.write_text("max_batch_size: 8\nkv_cache_config:\n  free_gpu_memory_fractoin: 0.5\n")
    assert check_options.main([str(bad), "--trtllm-version", "1.2.0"]) == 2
    err = capsys.readouterr().err
    assert "free_gpu_memory_fractoin" in err and str(bad) in err
    good = tmp_path / "good.yaml"
    good.write_text("max_batch_size: 8\n")
    assert check_options.main([str(good), "--trtllm-version", "1.2.0"]) == 0
    (tmp_path / "list.yaml").write_text("- a\n")
    assert check_options.main([str(tmp_path / "list.yaml"), "--trtllm-version", "1.2.0"]) == 2
    assert check_options.main([str(good), "--trtllm-version", "0.16.0"]) == 2


def test_rendered_yaml_names_its_record_and_loads_back():
    record = lao.load_record("1.2.0")
    text = lao.render_yaml(lao.build_options(cfg()), record)
    assert "llm_args.1.2.json" in text.splitlines()[1]
    assert yaml.safe_load(text) == lao.build_options(cfg())

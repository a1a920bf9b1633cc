"""estimate.py: exact arithmetic against published checkpoint sizes, KV cache, fit, suggestions."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import estimate as est
import pytest
import typed_configs as configs

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf_configs"
TABLE = json.loads((FIXTURES / "checkpoints.json").read_text())["models"]
H100 = {"name": "H100", "compute_capability": "9.0", "memory_gib": 80}
GIB = 1024**3


def cfg(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def settings(**kw):
    """The shipped config, typed, with the estimate's inputs changed."""
    return configs.typed(
        None,
        **{
            "dtype": kw.get("dtype", "auto"),
            "parallel.tp_size": kw.get("tp", 1),
            "parallel.pp_size": kw.get("pp", 1),
            "quantization.mode": kw.get("quant", "none"),
            "quantization.kv_cache_dtype": kw.get("kv", "auto"),
            "build.max_batch_size": kw.get("batch", 64),
            "build.max_seq_len": kw.get("seq", 8192),
            "build.max_num_tokens": kw.get("tokens", 8192),
            "build.max_beam_width": 1,
            "build.workers": 1,
            "runtime.kv_cache_free_gpu_memory_fraction": kw.get("fraction", 0.9),
        },
    )


def test_the_fixture_table_has_at_least_15_published_models():
    assert len(TABLE) >= 15
    for name in TABLE:
        assert (FIXTURES / f"{name}.json").is_file(), name


@pytest.mark.parametrize("name", sorted(TABLE))
def test_weight_bytes_match_the_published_checkpoint_within_1_percent(name):
    published = TABLE[name]
    shape = est.model_shape(cfg(name))
    assert shape.checkpoint_dtype == published["dtype"]
    got = est.estimate(settings(), cfg(name), {"name": "big", "memory_gib": 4096})
    assert got["checkpoint"]["bytes"] == pytest.approx(published["bytes"], rel=0.01)


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({}, 2 * 32 * 8 * 128 * 2),
        ({"tp": 2}, 2 * 32 * 4 * 128 * 2),
        ({"tp": 16}, 2 * 32 * 1 * 128 * 2),  # 8 KV heads on 16 ranks: one (replicated) per GPU
        ({"pp": 4}, 2 * 8 * 8 * 128 * 2),
        ({"kv": "fp8"}, 2 * 32 * 8 * 128 * 1),
        ({"dtype": "float32"}, 2 * 32 * 8 * 128 * 4),
    ],
)
def test_kv_bytes_per_token_per_gpu(kw, expected):
    got = est.estimate(settings(**kw), cfg("llama-3.1-8b"), H100)
    assert got["kv_cache_bytes_per_token_per_gpu"] == expected


def test_kv_bytes_for_mla_use_the_compressed_latent():
    got = est.estimate(settings(), cfg("deepseek-v2-lite"), H100)
    assert got["kv_cache_bytes_per_token_per_gpu"] == 27 * (512 + 64) * 2


def test_kv_bytes_use_head_dim_from_config_when_given():
    got = est.estimate(settings(), cfg("gemma-2-9b"), H100)  # head_dim 256, float32 -> float16
    assert got["build"]["dtype"] == "float16"
    assert got["kv_cache_bytes_per_token_per_gpu"] == 2 * 42 * 8 * 256 * 2


def test_weights_per_gpu_shrink_with_tp_and_quantization():
    base = est.estimate(settings(), cfg("llama-3.1-8b"), H100)["weights_bytes_per_gpu"]
    assert base == pytest.approx(16060522496, rel=0.001)
    tp2 = est.estimate(settings(tp=2), cfg("llama-3.1-8b"), H100)["weights_bytes_per_gpu"]
    embedding = 128256 * 4096 * 2
    assert tp2 == pytest.approx((base - embedding) / 2 + embedding, rel=0.001)
    fp8 = est.estimate(settings(quant="fp8"), cfg("llama-3.1-8b"), H100)["weights_bytes_per_gpu"]
    awq = est.estimate(settings(quant="int4_awq"), cfg("llama-3.1-8b"), H100)
    assert awq["weights_bytes_per_gpu"] < fp8 < base
    linear = 32 * (4096 * (4096 + 2 * 1024) + 4096 * 4096 + 3 * 4096 * 14336)
    assert base - fp8 == pytest.approx(linear, rel=0.001)  # fp8: one byte less per linear weight


def test_pipeline_parallel_counts_the_worst_stage():
    pp1 = est.estimate(settings(), cfg("llama-3.1-70b"), H100)["weights_bytes_per_gpu"]
    pp2 = est.estimate(settings(pp=2), cfg("llama-3.1-70b"), H100)["weights_bytes_per_gpu"]
    assert pp1 / 2 < pp2 < pp1 / 2 + 128256 * 8192 * 2


def test_kv_capacity_is_the_free_memory_fraction_over_bytes_per_token():
    got = est.estimate(settings(fraction=0.5), cfg("llama-3.1-8b"), H100)
    free = 80 * GIB - got["weights_bytes_per_gpu"] - got["activation_bytes_per_gpu"]
    assert got["free_after_weights_and_activations_bytes"] == free
    assert got["kv_cache_capacity_tokens"] == int(free * 0.5) // (2 * 32 * 8 * 128 * 2)
    assert got["kv_cache_capacity_sequences"] == got["kv_cache_capacity_tokens"] // 8192
    assert got["max_batch_size_reachable"] == (got["kv_cache_capacity_sequences"] >= 64)


def test_activations_grow_with_max_num_tokens():
    small = est.estimate(settings(tokens=2048), cfg("llama-3.1-8b"), H100)
    big = est.estimate(settings(tokens=16384), cfg("llama-3.1-8b"), H100)
    assert big["activation_bytes_per_gpu"] > small["activation_bytes_per_gpu"]
    per_token = (4 * 4096 + 2 * 14336 + (32 + 16) * 128) * 2
    grown = big["activation_bytes_per_gpu"] - small["activation_bytes_per_gpu"]
    assert grown == pytest.approx((16384 - 2048) * per_token, rel=0.001)


def test_70b_does_not_fit_one_h100_and_the_suggestions_do():
    got = est.estimate(settings(), cfg("llama-3.1-70b"), H100)
    assert not got["weights_fit"]
    fits = est.suggestions(settings(), cfg("llama-3.1-70b"), H100)
    assert "parallel.tp_size: 2" in fits
    assert "quantization.mode: fp8" in fits
    assert "quantization.mode: int4_awq" in fits
    for line in fits:
        key, value = line.split(": ")
        section, field = key.split(".")
        new = int(value) if value.isdigit() else value
        changed = settings().model_copy(
            update={section: getattr(settings(), section).model_copy(update={field: new})}
        )
        assert est.estimate(changed, cfg("llama-3.1-70b"), H100)["weights_fit"]
    no_fp8 = est.suggestions(settings(), cfg("llama-3.1-70b"), H100, fp8_ok=False)
    assert "quantization.mode: fp8" not in no_fp8


def test_host_ram_and_disk_scale_with_the_checkpoint():
    got = est.estimate(settings(), cfg("llama-3.1-8b"), H100)
    assert got["host_ram_bytes_convert"] >= got["checkpoint"]["bytes"]
    assert got["disk_bytes"] == pytest.approx(2 * got["weights_bytes_all_ranks"])


def _write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]]) -> int:
    header, offset = {}, 0
    for name, (dtype, shape) in tensors.items():
        size = est.ST_DTYPE_BYTES[dtype]
        for dim in shape:
            size *= dim
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return offset


def test_safetensors_headers_give_exact_bytes_and_parameters(tmp_path):
    a = _write_safetensors(tmp_path / "model-1.safetensors", {"w": ("BF16", [4, 8])})
    b = _write_safetensors(tmp_path / "model-2.safetensors", {"x": ("F32", [3]), "y": ("I8", [5])})
    got = est.read_safetensors(tmp_path)
    by_dtype = {"BF16": 64, "F32": 12, "I8": 5}
    assert got == {"files": 2, "bytes": a + b, "parameters": 40, "bytes_by_dtype": by_dtype}
    (tmp_path / "config.json").write_text(json.dumps(cfg("llama-3.2-1b")))
    full = est.estimate(settings(), cfg("llama-3.2-1b"), H100, model_dir=tmp_path)
    assert full["parameters"]["source"] == "safetensors headers"
    assert full["checkpoint"]["bytes"] == a + b


def test_a_broken_safetensors_file_is_a_clear_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"\x01")
    with pytest.raises(est.EstimateError, match="not a safetensors file"):
        est.read_safetensors(tmp_path)


def test_config_without_the_needed_keys_is_an_error():
    with pytest.raises(est.EstimateError, match="hidden size"):
        est.model_shape({"model_type": "llama", "num_hidden_layers": 2})


def test_resolve_dtype_follows_trtllm_auto_rule():
    assert est.resolve_dtype("auto", "bfloat16") == "bfloat16"
    assert est.resolve_dtype("auto", "float32") == "float16"
    assert est.resolve_dtype("float32", "bfloat16") == "float32"


def test_a_key_missing_from_config_json_takes_the_model_class_default():
    falcon = cfg("falcon-7b")  # no max_position_embeddings: FalconConfig's 2048 applies
    assert "max_position_embeddings" not in falcon
    assert est.model_shape(falcon).max_position_embeddings == 2048
    llama = {k: v for k, v in cfg("llama-3.1-8b").items() if k != "tie_word_embeddings"}
    assert est.model_shape(llama).tied is False  # LlamaConfig does not tie


def test_kv_capacity_comes_from_free_memory_when_the_gpu_was_detected():
    total = est.estimate(settings(), cfg("llama-3.1-8b"), H100)
    busy = {**H100, "memory_total_mib": 81920, "memory_free_mib": 70000}
    free = est.estimate(settings(), cfg("llama-3.1-8b"), busy)
    assert (total["kv_cache_memory_basis"], free["kv_cache_memory_basis"]) == ("total", "free")
    assert free["kv_cache_capacity_tokens"] < total["kv_cache_capacity_tokens"]


def test_kv_heads_are_replicated_when_tp_exceeds_them():
    falcon = cfg("falcon-7b")  # multi-query: one KV head of 64
    groups = est.parameter_groups(est.model_shape(falcon))
    tp2 = est.estimate(settings(tp=2), falcon, H100)["weights_bytes_per_gpu"]
    kv = 32 * 2 * 4544 * 64  # K and V projections of the one KV head, all layers
    expected = 2 * (
        (groups["layers_linear"] - kv) / 2  # split across the two ranks
        + kv  # but each rank keeps all of K and V
        + groups["layers_other"]  # norms replicated
        + groups["embedding"]  # embedding replicated
        + 65024 * 4544 / 2  # lm_head split
        + groups["final_norm"]
    )
    assert tp2 == pytest.approx(expected, rel=1e-9)

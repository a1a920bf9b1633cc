"""lora_checks.py: every adapter of the lora: section is checked against the base before anything
runs; each problem is one check record keyed to its adapter (lora.adapters[i])."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lora_checks
import pytest
import tiny_models
from lora_config import LoraSection
from peft import IA3Config

MERGE = "merge it instead"


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-bases")
    return {f: tiny_models.make_model(f, root / f) for f in ("llama", "qwen2", "gpt2", "phi3")}


@pytest.fixture(scope="module")
def adapter(tmp_path_factory, bases):
    """adapter(key, family="llama", **LoraConfig kwargs) -> dir, made once per key."""
    root = tmp_path_factory.mktemp("lora-adapters")
    made: dict[str, Path] = {}

    def make(key: str, family: str = "llama", **kwargs) -> Path:
        if key not in made:
            made[key] = tiny_models.make_adapter(bases[family], root / key, **kwargs)
        return made[key]

    return make


def section(*paths: Path, max_rank: int = 8, targets="auto") -> LoraSection:
    return LoraSection.model_validate(
        {
            "adapters": [{"name": f"a{i}", "path": str(p)} for i, p in enumerate(paths)],
            "max_rank": max_rank,
            "target_modules": targets,
            "max_loras": 2,
            "max_cpu_loras": 4,
        }
    )


def run(lora: LoraSection, base: Path, version="1.2.0", backend="engine") -> list[dict]:
    checks, _infos = lora_checks.adapter_checks(lora, base, version, backend)
    return checks


def failures(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["status"] == "fail"]


@pytest.mark.parametrize(
    ("version", "backend"), [("0.16.0", "engine"), ("1.2.0", "engine"), ("1.2.0", "pytorch")]
)
def test_a_plain_adapter_on_its_own_base_passes_every_check(bases, adapter, version, backend):
    checks, infos = lora_checks.adapter_checks(
        section(adapter("plain")), bases["llama"], version, backend
    )
    assert failures(checks) == []
    assert {c["id"] for c in checks} == {"lora_serve", "lora_rank", "lora_modules", "lora_base"}
    assert all(c["key"] == "lora.adapters[0]" and c["message"].startswith("a0: ") for c in checks)
    base = next(c for c in checks if c["id"] == "lora_base")
    assert "14 LoRA modules fit the base's weights; trained on this model dir" in base["message"]
    (info,) = infos
    assert info.fingerprint["fingerprint"].startswith("sha256:") and max(info.ranks.values()) == 4


@pytest.mark.parametrize(
    ("key", "kwargs", "needle"),
    [
        ("dora", {"use_dora": True}, "DoRA"),
        ("bias", {"lora_bias": True}, "LoRA bias"),
        ("mts", {"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]}, "modules_to_save"),
        ("tokens", {"target_modules": ["q_proj"], "trainable_token_indices": [5, 6]}, "tokens"),
        ("emb", {"target_modules": ["q_proj", "embed_tokens"]}, "embedding LoRA"),
        ("head", {"target_modules": ["q_proj", "lm_head"]}, "output head"),
        ("alpha", {"alpha_pattern": {"o_proj": 3}}, "alpha_pattern"),
    ],
)
def test_features_that_cannot_be_served_unmerged_say_merge_instead(
    bases, adapter, key, kwargs, needle
):
    serve = [
        c
        for c in failures(run(section(adapter(key, **kwargs)), bases["llama"]))
        if c["id"] == "lora_serve"
    ]
    assert len(serve) == 1
    assert serve[0]["message"].startswith("a0: cannot be served unmerged: ")
    assert needle in serve[0]["message"] and MERGE in serve[0]["fix"]
    assert serve[0]["key"] == "lora.adapters[0]"


def test_another_tuner_than_lora_is_refused_with_merge_instead(bases, adapter):
    ia3 = IA3Config(
        task_type="CAUSAL_LM",
        target_modules=["v_proj", "down_proj"],
        feedforward_modules=["down_proj"],
    )
    (bad,) = failures(
        run(section(adapter("ia3", peft_config=ia3)), bases["llama"], "1.2.0", "pytorch")
    )
    assert bad["id"] == "lora_serve" and "IA3" in bad["message"] and MERGE in bad["fix"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"use_qalora": True}, "QA-LoRA"), ({"init_lora_weights": "pissa"}, "rewritten base")],
)
def test_variants_that_neither_serve_nor_merge_say_why(bases, adapter, tmp_path, change, needle):
    variant = tmp_path / "variant"
    shutil.copytree(adapter("plain"), variant)
    cfg = json.loads((variant / "adapter_config.json").read_text())
    (variant / "adapter_config.json").write_text(json.dumps({**cfg, **change}))
    (bad,) = failures(run(section(variant), bases["llama"]))
    assert bad["id"] == "lora_serve" and "cannot be served unmerged either" in bad["message"]
    assert needle in bad["message"]


def test_rank_above_max_rank_names_the_module_and_rank_pattern(bases, adapter):
    big = adapter("r8", r=8, lora_alpha=16)
    pattern = adapter("pattern", r=4, rank_pattern={"down_proj": 16})
    ranks = [
        c
        for c in failures(run(section(big, pattern, max_rank=4), bases["llama"]))
        if c["id"] == "lora_rank"
    ]
    assert [c["key"] for c in ranks] == ["lora.adapters[0]", "lora.adapters[1]"]
    assert ranks[0]["message"].startswith("a0: rank 8 ") and ranks[0]["fix"] == "lora.max_rank: 8"
    assert "rank 16 (rank_pattern)" in ranks[1]["message"] and "down_proj" in ranks[1]["message"]


@pytest.mark.parametrize(
    ("version", "backend", "refused"),
    [
        ("0.16.0", "engine", "gate_up_proj, qkv_proj"),
        ("1.1.0", "engine", "qkv_proj"),
        ("1.2.0", "engine", None),
        ("1.2.0", "pytorch", None),
    ],
)
def test_modules_the_runtime_cannot_map_are_named_with_the_supported_set(
    bases, adapter, version, backend, refused
):
    checks = run(section(adapter("phi3", "phi3")), bases["phi3"], version, backend)
    modules = [c for c in failures(checks) if c["id"] == "lora_modules"]
    if refused is None:
        assert modules == []
        return
    (bad,) = modules
    assert bad["message"].startswith(
        f"a0: {refused}: not mapped by the runtime LoRA of TensorRT-LLM {version}"
    )
    assert "which maps down_proj, gate" in bad["message"] and MERGE in bad["fix"]


def test_an_explicit_target_list_must_cover_the_adapters_and_map(bases, adapter):
    checks = failures(
        run(section(adapter("plain"), targets=["q_proj", "v_proj", "c_attn"]), bases["llama"])
    )
    outside, targets = (c for c in checks if c["id"] == "lora_modules")
    assert "down_proj, gate_proj, k_proj, o_proj, up_proj" in outside["message"]
    assert targets["key"] == "lora.target_modules" and targets["message"].startswith("c_attn: ")


def test_an_adapter_of_another_base_is_refused_by_shape_and_by_its_recorded_config(bases, adapter):
    lora = section(adapter("gpt2", "gpt2"), adapter("qwen", "qwen2"))
    bad = {
        (c["key"], c["id"]): c["message"]
        for c in failures(run(lora, bases["llama"], "1.2.0", "pytorch"))
    }
    gpt2 = bad[("lora.adapters[0]", "lora_base")]
    assert (
        gpt2.startswith("a0: not trained on this base: ") and "transformer.h.0.attn.c_attn" in gpt2
    )
    # the same LoRA shapes as the llama base: the recorded base's config tells them apart
    qwen = bad[("lora.adapters[1]", "lora_base")]
    assert "trained on another base" in qwen and "model_type qwen2 vs llama" in qwen


def test_a_base_name_that_is_not_on_this_machine_is_only_noted(bases, adapter, tmp_path):
    hub = tmp_path / "hub"
    shutil.copytree(adapter("plain"), hub)
    cfg = json.loads((hub / "adapter_config.json").read_text())
    (hub / "adapter_config.json").write_text(
        json.dumps({**cfg, "base_model_name_or_path": "meta-llama/Llama-3.1-8B"})
    )
    checks = run(section(hub), bases["llama"])
    assert failures(checks) == []
    base = next(c for c in checks if c["id"] == "lora_base")
    assert base["status"] == "pass" and "not on this machine" in base["message"]


def test_an_adapter_trained_on_another_dir_of_the_same_shape_is_a_warning(bases, adapter, tmp_path):
    merged = tmp_path / "merged"  # e.g. the base with another adapter merged in
    shutil.copytree(bases["llama"], merged)
    checks = run(section(adapter("plain")), merged)
    assert failures(checks) == []
    (warn,) = [c for c in checks if c["status"] == "warn"]
    assert "another dir of the same architecture" in warn["message"]
    assert str(bases["llama"]) in warn["fix"]


def test_an_unreadable_adapter_is_one_failure_and_the_others_are_still_checked(
    bases, adapter, tmp_path
):
    bin_only = tmp_path / "bin"
    bin_only.mkdir()
    shutil.copy(adapter("plain") / "adapter_config.json", bin_only)
    (bin_only / "adapter_model.bin").write_bytes(b"x")
    lora = section(tmp_path / "missing", bin_only, adapter("dora", use_dora=True))
    bad = failures(run(lora, bases["llama"]))
    assert [(c["key"], c["id"]) for c in bad] == [
        ("lora.adapters[0]", "lora_adapter"),
        ("lora.adapters[1]", "lora_adapter"),
        ("lora.adapters[2]", "lora_serve"),
    ]
    assert bad[0]["message"] == f"a0: {tmp_path / 'missing'}: not a directory"
    assert "adapter_model.bin only" in bad[1]["message"]


def test_auto_targets_are_the_adapters_union_in_trtllm_names(bases, adapter):
    lora = section(adapter("plain"), adapter("qv", target_modules=["q_proj", "v_proj"]))
    _checks, infos = lora_checks.adapter_checks(lora, bases["llama"], "1.2.0", "engine")
    targets = lora_checks.resolve_targets(lora, infos, "1.2.0", "engine")
    assert targets["hf"] == [
        "down_proj",
        "gate_proj",
        "k_proj",
        "o_proj",
        "q_proj",
        "up_proj",
        "v_proj",
    ]
    # Llama's gate_proj is TensorRT-LLM's mlp_h_to_4h and up_proj its mlp_gate
    assert targets["trtllm"] == [
        "attn_dense",
        "attn_k",
        "attn_q",
        "attn_v",
        "mlp_4h_to_h",
        "mlp_gate",
        "mlp_h_to_4h",
    ]
    explicit = lora_checks.resolve_targets(
        section(adapter("plain"), targets=["q_proj"]), infos, "1.2.0", "engine"
    )
    assert explicit == {"hf": ["q_proj"], "trtllm": ["attn_q"]}

"""lora_checks.py: every adapter is checked against the base before anything runs (issue 16)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import lora_checks
import pytest
import tiny_models
from peft import IA3Config

REPO = Path(__file__).resolve().parents[2]
MINIMAL = REPO / "tests" / "fixtures" / "configs" / "good" / "minimal.yaml"


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


def section(*paths: Path, max_rank: int = 8, targets="auto") -> dict:
    adapters = [{"name": f"a{i}", "path": str(p)} for i, p in enumerate(paths)]
    return {
        "adapters": adapters,
        "max_rank": max_rank,
        "target_modules": targets,
        "max_loras": 2,
        "max_cpu_loras": 4,
    }


def failures(checks: list[dict]) -> list[dict]:
    return [c for c in checks if c["status"] == "fail"]


@pytest.mark.parametrize(
    ("version", "backend"), [("0.16.0", "engine"), ("1.2.0", "engine"), ("1.2.0", "pytorch")]
)
def test_a_plain_adapter_on_its_own_base_passes_every_check(bases, adapter, version, backend):
    checks = lora_checks.adapter_checks(section(adapter("plain")), bases["llama"], version, backend)
    assert failures(checks) == []
    ids = {c["id"] for c in checks}
    assert {"lora_route", "lora_serve", "lora_rank", "lora_modules", "lora_base"} <= ids
    config = next(c for c in checks if c["id"] == "lora_base_config")
    assert config["status"] == "pass" and "trained on this model dir" in config["message"]


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
    checks = lora_checks.adapter_checks(
        section(adapter(key, **kwargs)), bases["llama"], "1.2.0", "engine"
    )
    serve = [c for c in failures(checks) if c["id"] == "lora_serve"]
    assert len(serve) == 1, checks
    assert needle in serve[0]["message"] and "merge_lora.py" in serve[0]["fix"]
    assert serve[0]["key"] == "lora.adapters[0]" and serve[0]["adapter"] == "a0"


def test_another_tuner_than_lora_is_refused_with_merge_instead(bases, adapter):
    ia3 = IA3Config(
        task_type="CAUSAL_LM",
        target_modules=["v_proj", "down_proj"],
        feedforward_modules=["down_proj"],
    )
    checks = lora_checks.adapter_checks(
        section(adapter("ia3", peft_config=ia3)), bases["llama"], "1.2.0", "pytorch"
    )
    (bad,) = failures(checks)
    assert bad["id"] == "lora_serve" and "IA3" in bad["message"] and "merge_lora.py" in bad["fix"]


@pytest.mark.parametrize(
    ("change", "needle"),
    [({"use_qalora": True}, "QA-LoRA"), ({"init_lora_weights": "pissa"}, "rewritten base")],
)
def test_variants_that_neither_serve_nor_merge_say_why(bases, adapter, tmp_path, change, needle):
    variant = tmp_path / "variant"
    shutil.copytree(adapter("plain"), variant)
    cfg = json.loads((variant / "adapter_config.json").read_text())
    (variant / "adapter_config.json").write_text(json.dumps({**cfg, **change}))
    checks = lora_checks.adapter_checks(section(variant), bases["llama"], "1.2.0", "engine")
    (bad,) = failures(checks)
    assert bad["id"] == "lora_serve" and "cannot be served unmerged either" in bad["message"]
    assert needle in bad["message"]


def test_rank_above_max_rank_names_the_module_and_rank_pattern(bases, adapter):
    big = adapter("r8", r=8, lora_alpha=16)
    pattern = adapter("pattern", r=4, rank_pattern={"down_proj": 16})
    checks = lora_checks.adapter_checks(
        section(big, pattern, max_rank=4), bases["llama"], "1.2.0", "engine"
    )
    ranks = [c for c in failures(checks) if c["id"] == "lora_rank"]
    assert [c["adapter"] for c in ranks] == ["a0", "a1"]
    assert "rank 8" in ranks[0]["message"] and ranks[0]["fix"] == "lora.max_rank: 8"
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
    checks = lora_checks.adapter_checks(
        section(adapter("phi3", "phi3")), bases["phi3"], version, backend
    )
    modules = [c for c in failures(checks) if c["id"] == "lora_modules"]
    if refused is None:
        assert modules == []
        return
    (bad,) = modules
    prefix = f"lora.adapters[0] (a0): {refused}: not mapped by TensorRT-LLM {version}"
    assert bad["message"].startswith(prefix)
    assert "which maps down_proj, gate" in bad["message"]


def test_an_explicit_target_list_must_cover_the_adapters_and_map(bases, adapter):
    lora = section(adapter("plain"), targets=["q_proj", "v_proj", "c_attn"])
    checks = failures(lora_checks.adapter_checks(lora, bases["llama"], "1.2.0", "engine"))
    outside = next(c for c in checks if c["id"] == "lora_modules")
    assert "down_proj, gate_proj, k_proj, o_proj, up_proj" in outside["message"]
    targets = next(c for c in checks if c["id"] == "lora_targets")
    assert targets["key"] == "lora.target_modules" and "c_attn" in targets["message"]


def test_an_adapter_of_another_base_is_refused_by_shape_and_by_its_recorded_config(bases, adapter):
    lora = section(adapter("gpt2", "gpt2"), adapter("qwen", "qwen2"))
    checks = failures(lora_checks.adapter_checks(lora, bases["llama"], "1.2.0", "pytorch"))
    by = {(c["adapter"], c["id"]): c["message"] for c in checks}
    assert "not trained on this base" in by[("a0", "lora_base")]
    assert "transformer.h.0.attn.c_attn" in by[("a0", "lora_base")]
    # same LoRA shapes as the llama base: only the recorded base's config tells them apart
    assert ("a1", "lora_base") not in by
    assert "model_type qwen2 vs llama" in by[("a1", "lora_base_config")]


def test_a_base_name_that_is_not_on_this_machine_is_only_a_hint(bases, adapter, tmp_path):
    hub = tmp_path / "hub"
    shutil.copytree(adapter("plain"), hub)
    cfg = json.loads((hub / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = "meta-llama/Llama-3.1-8B"
    (hub / "adapter_config.json").write_text(json.dumps(cfg))
    checks = lora_checks.adapter_checks(section(hub), bases["llama"], "1.2.0", "engine")
    assert failures(checks) == []
    hint = next(c for c in checks if c["id"] == "lora_base_config")
    assert hint["status"] == "skip" and "not on this machine" in hint["message"]


def test_an_adapter_of_the_raw_base_on_a_merged_model_is_a_warning(bases, adapter, tmp_path):
    merged = tmp_path / "merged"
    shutil.copytree(bases["llama"], merged)
    info = {"base": {"path": str(bases["llama"])}, "adapters": [{"path": "/ckpt/sft/final"}]}
    (merged / "merge_info.json").write_text(json.dumps(info))
    checks = lora_checks.adapter_checks(section(adapter("plain")), merged, "1.2.0", "engine")
    assert failures(checks) == []
    (warn,) = [c for c in checks if c["status"] == "warn"]
    assert "final merged in" in warn["message"] and str(bases["llama"]) in warn["fix"]


@pytest.mark.parametrize("version", ["1.1.0", "1.3.0rc20"])
def test_pytorch_route_needs_a_recorded_lora_config(bases, adapter, version):
    checks = lora_checks.adapter_checks(
        section(adapter("plain")), bases["llama"], version, "pytorch"
    )
    (bad,) = failures(checks)
    assert bad["id"] == "lora_route" and "lists no lora_config" in bad["message"]


def test_cli_reports_every_problem_with_file_line_and_adapter(bases, adapter, tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(
        MINIMAL.read_text()
        + "lora:\n  adapters:\n"
        + f"    - {{name: ok, path: {adapter('plain')}}}\n"
        + f"    - {{name: dora, path: {adapter('dora', use_dora=True)}}}\n"
        + f"    - {{name: gone, path: {tmp_path / 'missing'}}}\n"
        + "  max_rank: 8\n  max_loras: 2\n  max_cpu_loras: 4\n"
    )
    first = MINIMAL.read_text().count("\n") + 3  # line of adapters[0]
    args = ["--config", str(config), "--model-dir", str(bases["llama"])]
    assert lora_checks.main(args) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2, err
    assert err[0].startswith(f"lora_checks: error: {config}:{first + 1}: lora.adapters[1] (dora):")
    assert err[1].startswith(f"lora_checks: error: {config}:{first + 2}: lora.adapters[2] (gone):")
    assert "not a directory" in err[1]


def test_cli_passes_a_clean_section_and_refuses_a_config_without_one(
    bases, adapter, tmp_path, capsys
):
    config = tmp_path / "c.yaml"
    body = f"lora:\n  adapters: [{{name: ok, path: {adapter('plain')}}}]\n  max_rank: 8\n"
    config.write_text(MINIMAL.read_text() + body + "  max_loras: 2\n  max_cpu_loras: 4\n")
    args = ["--model-dir", str(bases["llama"]), "--json"]
    assert lora_checks.main(["--config", str(config), *args]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1 and doc["ok"] is True
    assert lora_checks.main(["--config", str(MINIMAL), *args]) == 2
    assert "no lora: section" in capsys.readouterr().err

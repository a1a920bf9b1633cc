"""merge_lora.py on every supported adapter variant: weights vs PEFT, logits vs the adapter model.

Each variant is a tiny random model plus an adapter made with peft (scripts/dev/tiny_models.py).
The oracle for weights is PEFT's merge_and_unload (bit-identical on CPU where PEFT is right);
the oracle for behaviour is the unmerged PeftModel's logits, which is what catches the
tied-embedding cases where PEFT's own merge is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

import merge_lora
import pytest
import tiny_models
import torch
from peft import IA3Config, LoHaConfig, PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

LLAMA_LINEAR = tiny_models.LINEAR_TARGETS["llama"]

# name -> (family, tie, base dtype, adapter kwargs, PEFT's merge is right for this variant)
VARIANTS: dict[str, tuple[str, bool | None, str, dict, bool]] = {
    "lora": ("llama", None, "float32", {}, True),
    "lora_bf16_base": ("llama", None, "bfloat16", {}, True),
    "rslora_patterns": (
        "llama",
        None,
        "float32",
        {
            "use_rslora": True,
            "rank_pattern": {"v_proj": 2, r"layers\.1\.mlp\.down_proj": 6},
            "alpha_pattern": {"o_proj": 3, "k_proj": 5},
        },
        True,
    ),
    "gpt2_fan_in_fan_out_lora_bias": ("gpt2", None, "float32", {"lora_bias": True}, True),
    "gpt2_bias_all": ("gpt2", None, "float32", {"bias": "all"}, True),
    "embedding_lora": (
        "llama",
        None,
        "float32",
        {"target_modules": ["embed_tokens", "q_proj"]},
        True,
    ),
    "dora": (
        "llama",
        None,
        "float32",
        {"use_dora": True, "target_modules": ["q_proj", "down_proj", "embed_tokens"]},
        True,
    ),
    "dora_bf16_base": ("llama", None, "bfloat16", {"use_dora": True}, True),
    "dora_fan_in_fan_out": ("gpt2", None, "float32", {"use_dora": True}, True),
    "modules_to_save": (
        "llama",
        None,
        "float32",
        {"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]},
        True,
    ),
    "resized_vocab": (
        "llama",
        None,
        "float32",
        {
            "resize_vocab": 336,
            "target_modules": ["q_proj", "v_proj"],
            "modules_to_save": ["embed_tokens", "lm_head"],
        },
        True,
    ),
    "trainable_tokens_tied": (
        "llama",
        True,
        "float32",
        {"target_modules": ["q_proj"], "trainable_token_indices": [5, 7, 300]},
        True,
    ),
    "tied_lm_head_lora": (
        "llama",
        True,
        "float32",
        {"target_modules": ["lm_head", "q_proj"]},
        False,
    ),
    "tied_embedding_lora": ("llama", True, "float32", {"target_modules": ["embed_tokens"]}, False),
    "tied_modules_to_save": (
        "llama",
        True,
        "float32",
        {"target_modules": ["q_proj"], "modules_to_save": ["lm_head"]},
        True,
    ),
    "ia3_delegated": (
        "llama",
        None,
        "float32",
        {
            "peft_config": IA3Config(
                target_modules=["k_proj", "down_proj"],
                feedforward_modules=["down_proj"],
                task_type="CAUSAL_LM",
            )
        },
        True,
    ),
    "loha_delegated": (
        "llama",
        None,
        "float32",
        {
            "peft_config": LoHaConfig(
                r=4, alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
            )
        },
        True,
    ),
}
IDS = torch.randint(0, 320, (3, 12), generator=torch.Generator().manual_seed(0))


def load_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for f in sorted(model_dir.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def reference_model(base: Path, adapters: list[Path], vocab: int | None = None):
    """Base in float32 with the adapters: all but the last merged, the last one live."""
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if vocab and model.get_input_embeddings().weight.shape[0] != vocab:
        model.resize_token_embeddings(vocab)
    for i, a in enumerate(adapters):
        model = PeftModel.from_pretrained(model, a)
        if i < len(adapters) - 1:
            model = model.merge_and_unload()
    return model.eval()


def logits(model) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=IDS).logits


@pytest.fixture(scope="module")
def variant_result(tiny_model_cache, tmp_path_factory):
    """name -> dict(base, adapter, merged, rc) made once per variant for this module."""
    made: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in made:
            family, tie, dtype, kwargs, _ok = VARIANTS[name]
            base = tiny_model_cache(family, tie=tie, dtype=dtype)
            work = tmp_path_factory.mktemp(name)
            adapter = tiny_models.make_adapter(base, work / "adapter", **dict(kwargs))
            merged = work / "merged"
            rc = merge_lora.main(["--adapter", str(adapter), "--output", str(merged), "--quiet"])
            made[name] = {"base": base, "adapter": adapter, "merged": merged, "rc": rc}
        return made[name]

    return get


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_merged_weights_equal_peft_merge_and_unload(name, variant_result):
    _family, _tie, dtype, kwargs, peft_is_right = VARIANTS[name]
    r = variant_result(name)
    assert r["rc"] == 0
    ours = load_weights(r["merged"])
    model = AutoModelForCausalLM.from_pretrained(r["base"], dtype=getattr(torch, dtype))
    if kwargs.get("resize_vocab"):
        model.resize_token_embeddings(kwargs["resize_vocab"])
    peft_sd = PeftModel.from_pretrained(model, r["adapter"]).merge_and_unload().state_dict()
    differ = [k for k in ours if k in peft_sd and not torch.equal(ours[k], peft_sd[k])]
    if peft_is_right:
        assert differ == []
        # every tensor PEFT has is written, except a tied head PEFT reports twice
        missing = set(peft_sd) - set(ours)
        assert missing <= {"lm_head.weight"}
        if missing:
            assert json.loads((r["merged"] / "config.json").read_text())["tie_word_embeddings"]
    else:  # PEFT folds the delta into the shared matrix; only the tied pair may differ
        assert set(differ) <= {"model.embed_tokens.weight", "lm_head.weight"} and differ


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_merged_logits_equal_unmerged_adapter_model(name, variant_result):
    kwargs = VARIANTS[name][3]
    r = variant_result(name)
    ref = reference_model(r["base"], [r["adapter"]], kwargs.get("resize_vocab"))
    merged = AutoModelForCausalLM.from_pretrained(r["merged"], dtype=torch.float32)
    want, got = logits(ref), logits(merged)
    tol = 2e-2 if VARIANTS[name][2] == "bfloat16" else 1e-5
    assert (want - got).abs().max() <= tol * want.abs().max()


@pytest.mark.parametrize("name", ["tied_lm_head_lora", "tied_embedding_lora"])
def test_peft_merge_of_a_tied_lora_is_wrong_and_ours_unties(name, variant_result):
    r = variant_result(name)
    config = json.loads((r["merged"] / "config.json").read_text())
    assert config["tie_word_embeddings"] is False
    ours = load_weights(r["merged"])
    assert not torch.equal(ours["lm_head.weight"], ours["model.embed_tokens.weight"])
    ref = reference_model(r["base"], [r["adapter"]])
    peft_merged = reference_model(r["base"], [r["adapter"]]).merge_and_unload()
    want = logits(ref)
    assert (want - logits(peft_merged)).abs().max() > 1e-2  # the upstream bug this guards
    assert json.loads((r["merged"] / "merge_info.json").read_text())["config_changes"] == {
        "tie_word_embeddings": False
    }


def test_resized_vocab_updates_config_and_shapes(variant_result):
    r = variant_result("resized_vocab")
    config = json.loads((r["merged"] / "config.json").read_text())
    assert config["vocab_size"] == 336
    ours = load_weights(r["merged"])
    assert ours["model.embed_tokens.weight"].shape == (336, 64)
    assert ours["lm_head.weight"].shape == (336, 64)


def test_trainable_tokens_on_a_tied_model_stay_tied(variant_result):
    r = variant_result("trainable_tokens_tied")
    config = json.loads((r["merged"] / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    assert "lm_head.weight" not in load_weights(r["merged"])


def test_delegated_tuner_says_so_on_stderr(tiny_model_cache, tmp_path, capsys):
    base = tiny_model_cache("llama")
    adapter = tiny_models.make_adapter(
        base,
        tmp_path / "a",
        peft_config=IA3Config(
            target_modules=["q_proj"], feedforward_modules=[], task_type="CAUSAL_LM"
        ),
    )
    assert merge_lora.main(["--adapter", str(adapter), "--output", str(tmp_path / "m")]) == 0
    assert "PEFT's in-memory merge_and_unload" in capsys.readouterr().err
    info = json.loads((tmp_path / "m" / "merge_info.json").read_text())
    assert info["method"] == "peft_merge_and_unload"

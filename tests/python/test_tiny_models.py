"""The fixture library: every family makes a loadable model and a PEFT adapter that changes it."""

from __future__ import annotations

import json

import pytest
import tiny_models
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

FAMILIES = sorted(tiny_models.FAMILIES)


@pytest.mark.parametrize("family", FAMILIES)
def test_model_and_adapter_load_and_differ(family, tiny_model_cache, make_adapter):
    base_dir = tiny_model_cache(family)
    config = json.loads((base_dir / "config.json").read_text())
    assert config["model_type"] == family
    assert (base_dir / "generation_config.json").is_file()
    tokenizer = AutoTokenizer.from_pretrained(base_dir)
    assert len(tokenizer) == config["vocab_size"]
    assert tokenizer.chat_template

    adapter_dir = make_adapter(base_dir)
    adapter_cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    assert adapter_cfg["base_model_name_or_path"] == str(base_dir.resolve())

    ids = torch.tensor([[1, 10, 11, 12, 13]])
    base = AutoModelForCausalLM.from_pretrained(base_dir)
    with torch.no_grad():
        base_logits = base(ids).logits
        peft_logits = PeftModel.from_pretrained(base, adapter_dir)(ids).logits
    assert base_logits.shape == (1, 5, config["vocab_size"])
    assert not torch.allclose(base_logits, peft_logits), "adapter must change the output"


def test_unknown_family_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown family"):
        tiny_models.make_model("nosuch", tmp_path)


def test_cli_demo_writes_base_and_adapter(tmp_path, capsys):
    assert tiny_models.main(["demo", "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(tmp_path / "base"), str(tmp_path / "adapter")]
    config = json.loads((tmp_path / "base" / "config.json").read_text())
    assert config["dtype"] == "bfloat16"
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "adapter" / "tokenizer.json").is_file()

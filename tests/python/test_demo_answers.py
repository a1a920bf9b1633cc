"""demo_answers.py on tiny random models: the merged model must answer like the adapter model."""

from __future__ import annotations

import json
from pathlib import Path

import demo_answers
import demo_lib
import pytest
import tiny_models


@pytest.fixture(autouse=True)
def restore_env(monkeypatch):
    """quiet() sets these in os.environ; give them back after each test."""
    for key, value in demo_lib.QUIET_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A tiny base, a random LoRA adapter with the tokenizer, and PEFT's merge of the two."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("answers")
    base = tiny_models.make_model("llama", root / "base")
    adapter = tiny_models.make_adapter(base, root / "adapter", save_tokenizer=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    PeftModel.from_pretrained(model, adapter).merge_and_unload().save_pretrained(root / "merged")
    prompts = root / "prompts.txt"
    prompts.write_text("w10 w11\n\nw12 w13 w14\n")
    return {"base": base, "adapter": adapter, "merged": root / "merged", "prompts": prompts}


def answers(capsys, models, tmp_path, merged: Path) -> tuple[int, str, dict]:
    argv = [
        "--base",
        str(models["base"]),
        "--adapter",
        str(models["adapter"]),
        "--merged",
        str(merged),
        "--prompts",
        str(models["prompts"]),
        "--max-new-tokens",
        "8",
        "--json",
        str(tmp_path / "answers.json"),
    ]
    code = demo_answers.main(argv)
    return code, capsys.readouterr().out, json.loads((tmp_path / "answers.json").read_text())


def test_a_true_merge_answers_token_for_token_like_the_adapter(models, tmp_path, capsys):
    code, out, report = answers(capsys, models, tmp_path, models["merged"])
    assert code == 0
    assert out.count("prompt: ") == 2 and out.count("merged = adapter, token for token") == 2
    assert report["schema_version"] == 1 and report["merged_equals_adapter"] is True
    assert [a["prompt"] for a in report["answers"]] == ["w10 w11", "w12 w13 w14"]
    assert all(a["tokens"]["merged"] == a["tokens"]["adapter"] for a in report["answers"])


def test_a_model_that_answers_otherwise_fails_the_demo(models, tmp_path, capsys):
    # the base stands in for a broken merge: the random adapter changes every answer
    code, out, report = answers(capsys, models, tmp_path, models["base"])
    assert code == 1
    assert "MISMATCH: merged differs from adapter at token" in out
    assert report["merged_equals_adapter"] is False


def test_missing_prompts_or_model_dir_exit_2(models, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    base = ["--base", str(models["base"]), "--adapter", str(models["adapter"])]
    assert (
        demo_answers.main([*base, "--merged", str(models["merged"]), "--prompts", str(empty)]) == 2
    )
    assert "no prompts" in capsys.readouterr().err
    missing = str(tmp_path / "nowhere")
    argv = [*base, "--merged", missing, "--prompts", str(models["prompts"])]
    assert demo_answers.main(argv) == 2
    assert f"--merged {missing}: no such directory" in capsys.readouterr().err

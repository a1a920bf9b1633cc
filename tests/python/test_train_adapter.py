"""train_adapter.py on a tiny random Llama: what it writes, that it learns, that a seed repeats."""

from __future__ import annotations

import json
from pathlib import Path

import demo_lib
import pytest
import train_adapter
from safetensors.torch import load_file

ROWS = [{"prompt": f"w{i} w{i + 1}", "reply": "w7 w8 w9"} for i in range(10, 16)]


@pytest.fixture(autouse=True)
def restore_env(monkeypatch):
    """quiet() sets these in os.environ; give them back after each test."""
    for key, value in demo_lib.QUIET_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def train(capsys, base: Path, data: Path, out: Path, *extra: str) -> tuple[int, str, str]:
    argv = [
        "--base",
        str(base),
        "--data",
        str(data),
        "--out",
        str(out),
        "--batch-size",
        "4",
        "--rank",
        "4",
        *extra,
    ]
    code = train_adapter.main(argv)
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err


def test_writes_a_peft_adapter_with_tokenizer_and_train_info(
    tiny_model_cache, data, tmp_path, capsys
):
    base = tiny_model_cache()
    code, out, err = train(capsys, base, data, tmp_path / "adapter", "--steps", "3")
    assert (code, out) == (0, str(tmp_path / "adapter"))
    assert "6 examples from chats.jsonl" in err and "step 3/3" in err
    adapter = tmp_path / "adapter"
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base.resolve())
    assert (config["r"], config["lora_alpha"]) == (4, 8)
    assert sorted(config["target_modules"]) == sorted(train_adapter.LINEAR)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "tokenizer.json").is_file()
    info = json.loads((adapter / "train_info.json").read_text())
    assert info["schema_version"] == 1 and len(info["losses"]) == 3
    assert not (tmp_path / "adapter.partial").exists()


def test_the_loss_falls_and_the_same_seed_gives_the_same_adapter(
    tiny_model_cache, data, tmp_path, capsys
):
    base = tiny_model_cache()
    for name in ("a", "b"):
        assert train(capsys, base, data, tmp_path / name, "--steps", "12")[0] == 0
    losses = json.loads((tmp_path / "a" / "train_info.json").read_text())["losses"]
    assert losses[-1] < losses[0] - 0.5  # a tiny random model learns slowly, but it learns
    a = load_file(tmp_path / "a" / "adapter_model.safetensors")
    b = load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(a[k].equal(b[k]) for k in a)
    assert any(k.endswith("lora_B.weight") and a[k].abs().sum() > 0 for k in a)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"prompt": "w1", "reply": "w2"}\nnot json\n', "chats.jsonl:2: not JSON"),
        ('{"prompt": "w1"}\n', 'chats.jsonl:1: needs string keys "prompt" and "reply"'),
        ("\n", "chats.jsonl: no examples"),
    ],
)
def test_bad_data_exits_2_naming_the_line(
    tiny_model_cache, data, tmp_path, capsys, content, message
):
    data.write_text(content)
    code, out, err = train(capsys, tiny_model_cache(), data, tmp_path / "adapter")
    assert (code, out) == (2, "")
    assert message in err and not (tmp_path / "adapter").exists()


def test_an_existing_output_or_a_base_without_config_exits_2(
    tiny_model_cache, data, tmp_path, capsys
):
    (tmp_path / "taken").mkdir()
    code, _, err = train(capsys, tiny_model_cache(), data, tmp_path / "taken")
    assert code == 2 and "exists" in err
    code, _, err = train(capsys, tmp_path, data, tmp_path / "adapter")
    assert code == 2 and "no config.json" in err

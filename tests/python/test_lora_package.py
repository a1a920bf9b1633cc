"""lora_package.py (adapters into the artifact as lora/<name>/) and lora_verify.py (each adapter
loads onto the base with PEFT and changes its output) (issue 16)."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import lora_package
import lora_verify
import pytest
import tiny_models
import torch
from safetensors.torch import load_file, save_file


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-pkg")
    base = tiny_models.make_model("llama", root / "base")
    good = tiny_models.make_adapter(base, root / "good", save_tokenizer=True)
    zero = root / "zero"  # what training saves when it never updated lora_B
    shutil.copytree(good, zero)
    weights = load_file(zero / "adapter_model.safetensors")
    zeroed = {k: torch.zeros_like(v) if "lora_B" in k else v for k, v in weights.items()}
    save_file(zeroed, zero / "adapter_model.safetensors", metadata={"format": "pt"})
    return base, good, zero


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


def test_package_copies_config_and_weights_with_their_fingerprints(made, tmp_path, capsys):
    _base, good, zero = made
    out = tmp_path / "artifact" / "lora"
    args = ["--output", str(out), "--adapter", f"sft={good}", "--adapter", f"dpo={zero}"]
    assert lora_package.main(args) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads((out / "adapters.json").read_text())
    assert [(a["name"], a["lora_int_id"], a["path"]) for a in doc["adapters"]] == [
        ("sft", 1, "lora/sft"),
        ("dpo", 2, "lora/dpo"),
    ]
    assert sorted(p.name for p in (out / "sft").iterdir()) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]  # the adapter's saved tokenizer stays behind: the base's serves every adapter
    sft = doc["adapters"][0]
    for name, rec in sft["files"].items():
        assert rec["sha256"] == sha(good / name) == sha(out / "sft" / name)
    assert sft["fingerprint"] != doc["adapters"][1]["fingerprint"]
    assert sft["max_rank"] == 4 and "q_proj" in sft["target_modules"]
    assert lora_package.manifest_part(out.parent) == doc
    assert lora_package.manifest_part(tmp_path) is None


@pytest.mark.parametrize(
    ("pairs", "needle"),
    [
        ([("a", "GOOD"), ("a", "GOOD")], "names repeat"),
        ([("../up", "GOOD")], "adapter names use"),
        ([("a", "GOOD"), ("b", "MISSING")], "not a directory"),
    ],
)
def test_package_refuses_bad_input_and_leaves_nothing_behind(made, tmp_path, pairs, needle, capsys):
    _base, good, _zero = made
    out = tmp_path / "lora"
    args = ["--output", str(out)]
    for name, path in pairs:
        real = good if path == "GOOD" else tmp_path / "missing"
        args += ["--adapter", f"{name}={real}"]
    assert lora_package.main(args) == 2
    assert needle in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_package_never_overwrites(made, tmp_path):
    (tmp_path / "lora").mkdir()
    with pytest.raises(lora_package.PackageError, match="already exists"):
        lora_package.package([("a", made[1])], tmp_path / "lora")


def test_verify_passes_an_effective_adapter_and_fails_one_without_effect(made, tmp_path, capsys):
    base, good, zero = made
    artifact = tmp_path / "artifact"
    lora_package.package([("sft", good), ("untrained", zero)], artifact / "lora")
    args = ["--artifact", str(artifact), "--model-dir", str(base), "--device", "cpu", "--json"]
    assert lora_verify.main(args) == 1
    out = capsys.readouterr()
    checks = {(c["adapter"], c["id"]): c for c in json.loads(out.out)["checks"]}
    assert checks[("sft", "lora_files")]["status"] == "pass"
    assert checks[("sft", "lora_effect")]["status"] == "pass"
    assert "changes the output" in checks[("sft", "lora_effect")]["message"]
    assert checks[("untrained", "lora_effect")]["status"] == "fail"
    assert "adapter has no effect" in checks[("untrained", "lora_effect")]["message"]
    assert "untrained: adapter has no effect" in out.err


def test_verify_notices_a_changed_packaged_file_and_a_foreign_adapter(made, tmp_path, capsys):
    base, good, _zero = made
    artifact = tmp_path / "artifact"
    lora_package.package([("sft", good)], artifact / "lora")
    (artifact / "lora" / "sft" / "adapter_config.json").write_text("{}")
    assert lora_verify.main(["--artifact", str(artifact), "--model-dir", str(base), "--json"]) == 1
    checks = json.loads(capsys.readouterr().out)["checks"]
    files = next(c for c in checks if c["id"] == "lora_files")
    assert files["status"] == "fail" and "adapter_config.json" in files["message"]
    other = tiny_models.make_model("gpt2", tmp_path / "gpt2")
    foreign = tiny_models.make_adapter(other, tmp_path / "foreign")
    assert lora_verify.main(["--model-dir", str(base), "--adapter", f"x={foreign}"]) == 1
    assert "does not load onto the base with PEFT" in capsys.readouterr().err


def test_verify_refuses_an_artifact_without_lora_and_a_missing_base(tmp_path, capsys):
    assert lora_verify.main(["--artifact", str(tmp_path), "--model-dir", str(tmp_path)]) == 2
    assert "no lora/adapters.json" in capsys.readouterr().err
    assert lora_verify.main(["--adapter", "a=/x"]) == 2
    assert "no config.json" in capsys.readouterr().err

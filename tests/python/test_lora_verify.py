"""verify's runtime-LoRA checks: each packaged adapter loads onto the base with PEFT and changes
its output (lora_effect, any machine); its greedy tokens are the reference of the per-adapter
golden check (lora_golden); torch and peft are imported only for an artifact with adapters."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import golden
import lora_verify
import pytest
import tiny_models

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """An artifact dir with lora/good (trained), lora/zero (lora_B all zero), lora/gpt2."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("lora-verify")
    base = tiny_models.make_model("llama", root / "base")
    art = root / "artifact"
    tiny_models.make_adapter(base, art / "lora" / "good")
    untrained = get_peft_model(
        AutoModelForCausalLM.from_pretrained(base),
        LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj"]),
    )
    untrained.save_pretrained(art / "lora" / "zero")  # PEFT starts lora_B at zero
    gpt2 = tiny_models.make_model("gpt2", root / "gpt2")
    tiny_models.make_adapter(gpt2, art / "lora" / "gpt2")
    return base, art


def doc_for(base: Path, *names: str) -> dict:
    adapters = [{"name": n, "lora_int_id": i + 1, "path": f"lora/{n}"} for i, n in enumerate(names)]
    return {"backend": "engine", "inputs": {"model_dir": str(base)}, "lora": {"adapters": adapters}}


def args(**over) -> argparse.Namespace:
    prompts = over.pop("prompts", None)
    return argparse.Namespace(
        prompts=prompts, max_new_tokens=4, min_match=4, no_golden=False, **over
    )


def test_an_adapter_that_changes_the_output_passes_and_one_that_does_not_fails(made):
    base, art = made
    checks, refs, base_tokens = lora_verify.peft_pass(
        art, doc_for(base, "good", "zero", "gpt2"), args()
    )
    assert base_tokens is None  # a CPU run in float32 is not golden's reference (GPU, its dtype)
    by = {c["message"].split(":")[0]: c for c in checks}
    assert [c["id"] for c in checks] == ["lora_effect"] * 3
    assert by["good"]["status"] == "pass" and "changes its output" in by["good"]["message"]
    assert by["zero"]["status"] == "fail" and "adapter has no effect" in by["zero"]["message"]
    assert (
        by["gpt2"]["status"] == "fail"
        and "does not load onto the base with PEFT" in by["gpt2"]["message"]
    )
    assert set(refs) == {"good", "zero"}  # the references golden compares the artifact with
    assert len(refs["good"]["tokens"]) == len(golden.DEFAULT_PROMPTS)
    assert refs["good"]["path"] == str(art / "lora" / "good") and refs["good"]["lora_int_id"] == 1


def test_without_the_base_every_adapter_is_skipped_with_the_reason(made, tmp_path):
    _base, art = made
    checks, refs, _base_tokens = lora_verify.peft_pass(
        art, doc_for(tmp_path / "gone", "good"), args()
    )
    assert refs == {}
    (only,) = checks
    assert only["status"] == "skip" and "the base model is not here" in only["message"]


def test_a_bundle_serves_its_own_unquantized_checkpoint_as_the_base(made, tmp_path):
    base, _art = made
    art = tmp_path / "bundle"
    shutil.copytree(base, art / "checkpoint")
    doc = {
        "backend": "pytorch",
        "inputs": {
            "model_dir": str(tmp_path / "gone"),
            "config": {"quantization": {"mode": "none"}},
        },
    }
    assert lora_verify.base_dir(art, doc) == art / "checkpoint"
    doc["inputs"]["config"]["quantization"]["mode"] = "fp8"
    assert lora_verify.base_dir(art, doc) is None


def test_golden_compares_each_adapter_with_its_peft_reference(tmp_path, monkeypatch):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    refs = {
        n: {"lora_int_id": i, "path": f"/a/{n}", "tokens": [[5, 6, 7, 8]] * 4}
        for i, n in ((1, "a"), (2, "b"))
    }
    got = {None: [[1, 2, 3, 4]] * 4, "a": [[5, 6, 7, 8]] * 4, "b": [[1, 2, 3, 4]] * 4}
    monkeypatch.setattr(golden, "reference_tokens", lambda *_a: [[1, 2, 3, 4]] * 4)
    monkeypatch.setattr(golden, "artifact_tokens", lambda *_a: got)
    fact = {"packages": {"tensorrt_llm": "1.2.0"}, "gpu": {"devices": [{"name": "H200"}]}}
    doc = {"inputs": {"model_dir": str(model), "config": {}}}
    checks, report = golden.golden_check(tmp_path, doc, fact, args(), [], refs)
    assert [(c["id"], c["status"]) for c in checks] == [
        ("golden", "pass"),
        ("lora_golden", "pass"),
        ("lora_golden", "fail"),
    ]
    assert checks[2]["message"].startswith("b: 0/4 prompts agree")
    assert report["lora"]["a"]["passed"] == 4
    # the base's tokens from the PEFT pass are the HF reference: the model is not loaded again
    monkeypatch.setattr(golden, "reference_tokens", lambda *_a: pytest.fail("loaded twice"))
    again, _ = golden.golden_check(tmp_path, doc, fact, args(), [], refs, [[1, 2, 3, 4]] * 4)
    assert [c["status"] for c in again] == ["pass", "pass", "fail"]
    skipped, _ = golden.golden_check(tmp_path, doc, {"packages": {}}, args(), [], refs)
    assert [(c["id"], c["status"]) for c in skipped] == [("golden", "skip")] + [
        ("lora_golden", "skip")
    ] * 2


def test_verify_imports_no_torch_for_an_artifact_without_adapters(tmp_path):
    art = tmp_path / "art"
    art.mkdir()
    (art / "build.json").write_text(
        json.dumps({"schema_version": 1, "build_id": "sha256:x", "backend": "engine"})
    )
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"schema_version": 1, "packages": {}, "gpu": {"status": "absent"}}))
    code = (
        "import sys, verify\n"
        f"verify.main(['--artifact', {str(art)!r}, '--facts-json', {str(facts)!r},"
        " '--allow-skip'])\n"
        "print('torch' in sys.modules, 'peft' in sys.modules)\n"
    )
    env_path = [str(REPO / "scripts" / "export"), str(REPO / "scripts" / "export" / "lib")]
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": ":".join(env_path), "PATH": "/usr/bin:/bin"},
    )
    assert run.stdout.strip().splitlines()[-1] == "False False", run.stderr

"""family.py: detection from published config.json files, script paths per version, wrong dirs."""

from __future__ import annotations

import json
from pathlib import Path

import family
import pytest
import versions
from errors import ExportError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hf_configs"


def cfg(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())


@pytest.mark.parametrize(
    ("name", "fam", "variant"),
    [
        ("llama-3.1-8b", "llama", []),
        ("llama-3.2-1b", "llama", []),
        ("mistral-7b-v0.1", "llama", []),
        ("mixtral-8x7b-v0.1", "llama", []),
        ("qwen2.5-7b", "qwen", []),
        ("qwen3-8b", "qwen", []),
        ("gemma-2-9b", "gemma", []),
        ("phi-3-mini-4k-instruct", "phi", []),
        ("falcon-7b", "falcon", []),
        ("gpt2", "gpt", ["--gpt_variant", "gpt2"]),
        ("starcoder2-7b", "gpt", ["--gpt_variant", "starcoder2"]),
        ("deepseek-v2-lite", "deepseek_v2", []),
        ("glm-4-9b-chat", "glm", ["--chatglm_version", "glm4"]),
        ("baichuan2-7b-base", "baichuan", ["--model_version", "v2_7b"]),
        ("internlm2-7b", "internlm2", []),
    ],
)
def test_published_configs_map_to_their_family(name, fam, variant):
    got = family.detect(cfg(name), "1.2.0")
    assert got.name == fam
    assert got.variant_args == variant
    assert got.hf_architecture == cfg(name)["architectures"][0]


@pytest.mark.parametrize(
    ("name", "version", "script"),
    [
        ("llama-3.1-8b", "0.12.0", "llama/convert_checkpoint.py"),
        ("llama-3.1-8b", "0.18.2", "llama/convert_checkpoint.py"),
        ("llama-3.1-8b", "0.19.0", "models/core/llama/convert_checkpoint.py"),
        ("falcon-7b", "0.16.0", "falcon/convert_checkpoint.py"),
        ("falcon-7b", "1.2.0", "models/contrib/falcon/convert_checkpoint.py"),
        ("glm-4-9b-chat", "0.16.0", "chatglm/convert_checkpoint.py"),
        ("glm-4-9b-chat", "1.0.0", "models/core/glm-4-9b/convert_checkpoint.py"),
        ("deepseek-v2-lite", "1.2.0", "models/contrib/deepseek_v2/convert_checkpoint.py"),
        ("gemma-2-9b", "1.2.0", "models/core/gemma/convert_checkpoint.py"),
    ],
)
def test_convert_script_path_moves_at_0_19(name, version, script):
    assert family.detect(cfg(name), version).script == script


def test_gemma_has_its_dialect_and_no_pipeline_parallelism():
    got = family.detect(cfg("gemma-2-9b"), "0.16.0")
    assert got.dialect == "gemma"
    assert not got.pipeline_parallel
    assert not family.detect(cfg("phi-3-mini-4k-instruct"), "1.2.0").pipeline_parallel
    assert not family.detect(cfg("glm-4-9b-chat"), "1.2.0").pipeline_parallel
    assert family.detect(cfg("llama-3.1-8b"), "1.2.0").pipeline_parallel


@pytest.mark.parametrize(
    ("name", "version", "needs"),
    [("qwen3-8b", "0.16.0", "1.0.0"), ("gemma-2-9b", "0.12.0", "0.13.0")],
)
def test_architecture_newer_than_the_version_is_refused_naming_both(name, version, needs):
    with pytest.raises(ExportError) as err:
        family.detect(cfg(name), version)
    assert err.value.code == 2
    assert needs in str(err.value) and version in str(err.value)


def test_commandr_needs_0_15():
    config = {"architectures": ["CohereForCausalLM"], "model_type": "cohere"}
    with pytest.raises(ExportError):
        family.detect(config, "0.12.0")
    assert family.detect(config, "0.15.0").name == "commandr"


def test_unsupported_architecture_lists_what_the_version_supports():
    config = {"architectures": ["MambaForCausalLM"], "model_type": "mamba"}
    with pytest.raises(ExportError) as err:
        family.detect(config, "0.16.0")
    message = str(err.value)
    assert "MambaForCausalLM" in message and "nearest supported: LlamaForCausalLM" in message
    assert len(message) < 200 and message.count("ForCausalLM") <= 4  # not all 40 of them
    assert err.value.key == "backend" and "backend: pytorch" in err.value.fix
    phi = {"architectures": ["Phi4ForCausalLM"], "model_type": "phi4"}
    with pytest.raises(ExportError, match="PhiForCausalLM, Phi3ForCausalLM"):
        family.detect(phi, "0.16.0")
    assert "Qwen3ForCausalLM" not in family.supported("0.16.0")
    assert "Qwen3ForCausalLM" in family.supported("1.2.0")


def test_model_type_is_the_fallback_when_architectures_is_missing():
    assert family.detect({"model_type": "mistral"}, "1.2.0").name == "llama"


def test_trtllm_checkpoint_config_is_recognised_as_the_wrong_input():
    ckpt = {"architecture": "LlamaForCausalLM", "mapping": {"world_size": 1}, "dtype": "float16"}
    with pytest.raises(ExportError) as err:
        family.detect(ckpt, "1.2.0")
    assert err.value.id == "wrong_input_dir"


@pytest.fixture
def dirs(tmp_path):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps(cfg("llama-3.2-1b")))
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"architecture": "X", "mapping": {}}))
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "config.json").write_text("{}")
    (engine / "rank0.engine").write_bytes(b"")
    empty = tmp_path / "empty"
    empty.mkdir()
    return {
        "hf": hf,
        "trtllm_checkpoint": ckpt,
        "trtllm_engine": engine,
        "unknown": empty,
        "missing": tmp_path / "nope",
    }


def test_inspect_dir_tells_the_kinds_apart(dirs):
    for kind, path in dirs.items():
        assert family.inspect_dir(path) == kind


def test_wrong_dir_kinds_are_said_in_both_directions(dirs):
    with pytest.raises(ExportError, match=r"TensorRT-LLM checkpoint .* where a Hugging Face"):
        family.require_hf_dir(dirs["trtllm_checkpoint"])
    with pytest.raises(ExportError, match="Hugging Face model dir, where a TensorRT-LLM"):
        family.require_trtllm_checkpoint(dirs["hf"])
    assert family.require_trtllm_checkpoint(dirs["trtllm_checkpoint"])["architecture"] == "X"


def test_versions_order_prereleases_before_releases():
    assert versions.parse("1.3.0rc20") < versions.parse("1.3.0")
    assert versions.parse("0.9.0") < versions.parse("0.12.0") < versions.parse("1.2")
    assert versions.at_least("1.3.0rc20", "1.2.0") and not versions.at_least("0.9", "0.12")

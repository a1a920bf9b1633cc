"""bundle.py: checkpoint/ (hard links or copies), llm_api_options.yaml and serve.sh in staging."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bundle
import llm_api_options
import pytest
import serve_script
import typed_configs as configs
import yaml
from errors import ExportError

REPO = Path(__file__).resolve().parents[2]
CONFIG = configs.typed(
    None,
    **{
        "backend": "pytorch",
        "dtype": "auto",
        "build.max_batch_size": 16,
        "build.max_num_tokens": 2048,
        "build.max_seq_len": 1024,
        "parallel.tp_size": 1,
        "parallel.pp_size": 1,
        "runtime.kv_cache_free_gpu_memory_fraction": 0.8,
        "runtime.cuda_graphs": True,
    },
)
PLAN = {
    "backend": "pytorch",
    "trtllm_version": "1.2.0",
    "world_size": 1,
    "gpu": {"name": "H200", "compute_capability": "9.0"},
}


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    import tiny_models

    return tiny_models.make_model("llama", tmp_path_factory.mktemp("merged"))


def test_checkpoint_files_are_hard_links_of_the_merged_model(model: Path, tmp_path: Path):
    part = bundle.publish_bundle(tmp_path, model, CONFIG, "1.2.0")
    assert part["link_mode"] == "hardlink"
    for src in model.iterdir():
        dst = tmp_path / "checkpoint" / src.name
        assert dst.stat().st_ino == src.stat().st_ino
    assert part["files"] == len(list(model.iterdir()))
    assert part["bytes"] == sum(p.stat().st_size for p in model.iterdir())
    assert part["llm_api_record"] == "llm_args.1.2.json"
    assert part["world_size"] == 1


def test_other_filesystem_falls_back_to_copies(model: Path, tmp_path: Path, monkeypatch):
    def cross_device(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    part = bundle.publish_bundle(tmp_path, model, CONFIG, "1.2.0")
    assert part["link_mode"] == "copy"
    weights = tmp_path / "checkpoint" / "model.safetensors"
    assert weights.read_bytes() == (model / "model.safetensors").read_bytes()
    assert weights.stat().st_ino != (model / "model.safetensors").stat().st_ino


def test_options_yaml_is_the_checked_config(model: Path, tmp_path: Path):
    bundle.publish_bundle(tmp_path, model, CONFIG, "1.3.0rc20")
    text = (tmp_path / "llm_api_options.yaml").read_text()
    assert "llm_args.1.3.json" in text
    options = yaml.safe_load(text)
    assert options == llm_api_options.build_options(CONFIG)
    assert options["kv_cache_config"]["free_gpu_memory_fraction"] == 0.8


def test_serve_sh_launches_the_bundle_through_a_strict_trtllm_serve(model: Path, tmp_path: Path):
    part = bundle.publish_bundle(tmp_path / "stage", model, CONFIG, "1.2.0")
    serve_script.write(tmp_path / "stage" / "serve.sh", bundle.serve_argv(), "sha256:0", PLAN)
    served = tmp_path / "copied"
    shutil.copytree(tmp_path / "stage", served)  # serve.sh is relative: the bundle is copyable
    assert os.access(served / "serve.sh", os.X_OK)
    dist = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "tests/fakes/make_dist_info.py"),
            str(dist),
            "tensorrt_llm==1.2.0",
        ],
        check=True,
    )
    log = tmp_path / "calls.jsonl"
    env = dict(
        os.environ,
        PATH=f"{REPO / 'tests/fakes/bin'}:{os.environ['PATH']}",
        PYTHONPATH=str(dist),
        PYTHON=sys.executable,
        FAKE_TRTLLM_LOG=str(log),
    )
    run = subprocess.run(
        [str(served / "serve.sh"), "--port", "8123"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    call = json.loads(log.read_text())
    assert call["argv"][0] == "checkpoint"  # relative: serve.sh runs in the bundle's own dir
    assert call["argv"][-2:] == ["--port", "8123"]
    # every serving option is in the YAML, given once: no flag repeats one of its keys
    assert call["argv"][1:-2] == [
        "--backend", "pytorch", "--extra_llm_api_options", "llm_api_options.yaml"
    ]  # fmt: skip
    assert part["serve_command"][0] == "trtllm-serve"


def test_a_quantized_checkpoint_in_staging_is_used_in_place(model: Path, tmp_path: Path):
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(
        model, ckpt, ignore=shutil.ignore_patterns("tokenizer*", "special_tokens_map.json")
    )
    part = bundle.publish_bundle(tmp_path, ckpt, CONFIG, "1.2.0", tokenizer_dir=model)
    assert part["link_mode"] == "in-place"
    assert "tokenizer.json" in part["tokenizer_copied"]
    assert (ckpt / "tokenizer.json").is_file()


def test_the_tokenizer_dirs_reach_a_quantized_checkpoint_too(model: Path, tmp_path: Path):
    tok = Path(shutil.copytree(model, tmp_path / "model"))
    (tok / "additional_chat_templates").mkdir()
    (tok / "additional_chat_templates" / "tool_use.jinja").write_text("{{ 'tools' }}")
    ckpt = tmp_path / "checkpoint"
    shutil.copytree(model, ckpt, ignore=shutil.ignore_patterns("tokenizer*"))
    part = bundle.publish_bundle(tmp_path, ckpt, CONFIG, "1.2.0", tokenizer_dir=tok)
    assert "additional_chat_templates" in part["tokenizer_copied"]
    assert (ckpt / "additional_chat_templates" / "tool_use.jinja").read_text() == "{{ 'tools' }}"


def test_a_version_without_pytorch_serving_raises_before_anything_is_written(
    model: Path, tmp_path: Path
):
    with pytest.raises(ExportError, match=r"1\.0 or newer"):
        bundle.publish_bundle(tmp_path, model, CONFIG, "0.16.0")
    assert list(tmp_path.iterdir()) == []


def test_a_dir_without_config_json_is_refused(tmp_path: Path):
    (tmp_path / "m").mkdir()
    with pytest.raises(ExportError, match=r"config\.json"):
        bundle.publish_bundle(tmp_path / "s", tmp_path / "m", CONFIG, "1.2.0")

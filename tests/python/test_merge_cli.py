"""merge_lora.py's contract: bad inputs exit 2 with nothing written, options, output files,
atomic publishing, --verify that can fail, and the streaming writer's windows and pieces."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import shutil
import sys
from pathlib import Path

import merge_lora
import pytest
import tiny_models
import torch
from lora_merge import np_engine, staging, writer
from lora_merge import plan as plan_mod
from peft import PeftModel
from safetensors.torch import load_file, save_file
from test_merge import IDS, load_weights, logits, reference_model
from tqdm import tqdm
from transformers import AutoModelForCausalLM

ADAPTER_FILE = "adapter_model.safetensors"


@pytest.fixture(scope="module")
def base(tiny_model_cache) -> Path:
    return tiny_model_cache("llama")


@pytest.fixture(scope="module")
def adapter(base, tmp_path_factory) -> Path:
    return tiny_models.make_adapter(base, tmp_path_factory.mktemp("a") / "adapter", r=4)


@pytest.fixture(scope="module")
def adapter2(base, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("a2") / "adapter"
    return tiny_models.make_adapter(base, out, seed=7, r=2, target_modules=["v_proj", "up_proj"])


def run(adapters, output, *extra) -> int:
    argv = [a for p in adapters for a in ("--adapter", str(p))]
    return merge_lora.main([*argv, "--output", str(output), "--quiet", *map(str, extra)])


def copy_adapter(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_config(adapter_dir: Path, **changes) -> None:
    path = adapter_dir / "adapter_config.json"
    cfg = json.loads(path.read_text())
    cfg.update(changes)
    path.write_text(json.dumps(cfg))


def edit_tensors(adapter_dir: Path, fn) -> None:
    path = adapter_dir / ADAPTER_FILE
    tensors = load_file(path)
    fn(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def assert_nothing_written(output: Path) -> None:
    assert not output.exists()
    assert not staging.staging_path(output).exists()


# ----------------------------------------------------------------------------- bad inputs


def _missing_base(a: Path, tmp: Path) -> list:
    edit_config(a, base_model_name_or_path=str(tmp / "no-such-base"))
    return []


def _missing_config(a: Path, tmp: Path) -> list:
    (a / "adapter_config.json").unlink()
    return []


def _corrupt_config(a: Path, tmp: Path) -> list:
    (a / "adapter_config.json").write_text('{"peft_type": "LORA", ')
    return []


def _truncated_adapter(a: Path, tmp: Path) -> list:
    data = (a / ADAPTER_FILE).read_bytes()
    (a / ADAPTER_FILE).write_bytes(data[: len(data) - 100])
    return []


def _truncated_base(a: Path, tmp: Path) -> list:
    cfg = json.loads((a / "adapter_config.json").read_text())
    new_base = Path(shutil.copytree(cfg["base_model_name_or_path"], tmp / "base"))
    shard = new_base / "model.safetensors"
    shard.write_bytes(shard.read_bytes()[:-4096])
    return ["--base", new_base]


def _shape_mismatch(a: Path, tmp: Path) -> list:
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight"
    edit_tensors(a, lambda t: t.__setitem__(key, torch.zeros(65, 4)))
    return []


def _unused_key(a: Path, tmp: Path) -> list:
    def add(t):
        t["base_model.model.model.layers.9.self_attn.q_proj.lora_A.weight"] = torch.zeros(4, 64)
        t["base_model.model.model.layers.9.self_attn.q_proj.lora_B.weight"] = torch.zeros(64, 4)

    edit_tensors(a, add)
    return []


def _unknown_key(a: Path, tmp: Path) -> list:
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_X.weight"
    edit_tensors(a, lambda t: t.__setitem__(key, torch.zeros(4, 64)))
    return []


def _rank_mismatch(a: Path, tmp: Path) -> list:
    edit_config(a, r=8)
    return []


def _prompt_tuning(a: Path, tmp: Path) -> list:
    edit_config(a, peft_type="PROMPT_TUNING")
    return []


def _pissa(a: Path, tmp: Path) -> list:
    edit_config(a, init_lora_weights="pissa_niter_4")
    return []


def _unknown_tuner(a: Path, tmp: Path) -> list:
    edit_config(a, peft_type="FANCY_NEW_TUNER")
    return []


def _quantized_base(a: Path, tmp: Path) -> list:
    cfg = json.loads((a / "adapter_config.json").read_text())
    new_base = Path(shutil.copytree(cfg["base_model_name_or_path"], tmp / "base"))
    conf = json.loads((new_base / "config.json").read_text())
    conf["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (new_base / "config.json").write_text(json.dumps(conf))
    return ["--base", new_base]


def _lora_bias_without_base_bias(a: Path, tmp: Path) -> list:
    key = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.bias"
    edit_tensors(a, lambda t: t.__setitem__(key, torch.zeros(64)))
    return []


def _bin_only(a: Path, tmp: Path) -> list:
    (a / ADAPTER_FILE).rename(a / "adapter_model.bin")
    return []


def _bad_shard_size(a: Path, tmp: Path) -> list:
    return ["--max-shard-size", "lots"]


def _cuda_without_cuda(a: Path, tmp: Path) -> list:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    return ["--device", "cuda"]


BAD_INPUTS = {f.__name__.lstrip("_"): f for f in [
    _missing_base, _missing_config, _corrupt_config, _truncated_adapter, _truncated_base,
    _shape_mismatch, _unused_key, _unknown_key, _rank_mismatch, _prompt_tuning, _pissa,
    _unknown_tuner, _quantized_base, _lora_bias_without_base_bias, _bin_only, _bad_shard_size,
    _cuda_without_cuda,
]}  # fmt: skip


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_input_exits_2_and_writes_nothing(name, adapter, tmp_path, capsys):
    a = copy_adapter(adapter, tmp_path / "adapter")
    extra = BAD_INPUTS[name](a, tmp_path)
    output = tmp_path / "new" / "merged"
    assert run([a], output, *extra) == 2
    assert_nothing_written(output)
    assert not output.parent.exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith(("merge_lora: error:", "usage:", "merge_lora.py: error:"))


def test_missing_base_names_every_place_looked(adapter, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    a = copy_adapter(adapter, tmp_path / "adapter")
    edit_config(a, base_model_name_or_path="acme/tiny-llama")
    assert run([a], tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "acme/tiny-llama" in err and str(tmp_path / "hub" / "models--acme--tiny-llama") in err


def test_existing_output_is_refused_and_left_alone(adapter, tmp_path):
    output = tmp_path / "merged"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    assert run([adapter], output) == 2
    assert [p.name for p in output.iterdir()] == ["keep.txt"]


# ------------------------------------------------------------------------- good behaviour


def test_base_found_in_the_local_hf_cache(base, adapter, tmp_path, monkeypatch):
    snap = tmp_path / "hub" / "models--acme--tiny-llama" / "snapshots" / "abc123"
    shutil.copytree(base, snap)
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    a = copy_adapter(adapter, tmp_path / "adapter")
    edit_config(a, base_model_name_or_path="acme/tiny-llama")
    assert run([a], tmp_path / "out") == 0
    info = json.loads((tmp_path / "out" / "merge_info.json").read_text())
    assert info["base"]["path"] == str(snap)


def test_output_is_a_complete_hf_model_dir(base, adapter, tmp_path):
    output = tmp_path / "merged"
    assert run([adapter], output) == 0
    index = json.loads((output / "model.safetensors.index.json").read_text())
    weights = load_weights(output)
    assert set(index["weight_map"]) == set(weights)
    assert index["metadata"]["total_size"] == sum(
        t.numel() * t.element_size() for t in weights.values()
    )
    for name in (
        "config.json",
        "generation_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ):
        assert (output / name).is_file(), name
    info = json.loads((output / "merge_info.json").read_text())
    assert info["schema_version"] == 1
    digest = hashlib.sha256((adapter / ADAPTER_FILE).read_bytes()).hexdigest()
    assert info["adapters"][0]["sha256"] == f"sha256:{digest}"
    assert info["base"]["header_sha256"].startswith("sha256:")
    assert "16-bit" in info["policy"]["qlora_base"]
    assert torch.__version__.startswith(info["versions"]["torch"])
    assert info["counts"] == {"tensors": 21, "merged": 14, "replaced": 0, "copied": 7}
    assert not list(tmp_path.glob(".*"))  # no staging or backup dirs left beside it


def test_trained_tokenizer_in_the_adapter_wins(base, tmp_path):
    a = tiny_models.make_adapter(base, tmp_path / "adapter", save_tokenizer=True)
    (a / "chat_template.jinja").write_text("{{ 'trained template' }}")
    assert run([a], tmp_path / "out") == 0
    assert (tmp_path / "out" / "chat_template.jinja").read_text() == "{{ 'trained template' }}"
    assert json.loads((tmp_path / "out" / "merge_info.json").read_text())["tokenizer_from"] == str(
        a
    )


def test_two_adapters_apply_in_order(base, adapter, adapter2, tmp_path):
    assert run([adapter, adapter2], tmp_path / "out") == 0
    ref = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    ref = PeftModel.from_pretrained(ref, adapter).merge_and_unload()
    ref = PeftModel.from_pretrained(ref, adapter2).merge_and_unload()
    ours = load_weights(tmp_path / "out")
    assert all(torch.equal(ours[k], v) for k, v in ref.state_dict().items() if k in ours)
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "out", dtype=torch.float32)
    want = logits(reference_model(base, [adapter, adapter2]))
    assert (logits(merged) - want).abs().max() <= 1e-5 * want.abs().max()


def test_dtype_option_rounds_once_and_updates_config(base, adapter, tmp_path):
    assert run([adapter], tmp_path / "out", "--dtype", "bfloat16") == 0
    ours = load_weights(tmp_path / "out")
    assert {t.dtype for t in ours.values()} == {torch.bfloat16}
    ref = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    ref_sd = PeftModel.from_pretrained(ref, adapter).merge_and_unload().state_dict()
    assert all(torch.equal(ours[k], ref_sd[k].to(torch.bfloat16)) for k in ours)
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["dtype"] == "bfloat16"


@pytest.mark.parametrize(
    ("rows", "row_bytes", "offset"), [(1000, 96, 40), (7, 3000, 0), (3, 8, 100)]
)
def test_pieces_tile_the_tensor_mostly_inside_windows_and_never_one_row(rows, row_bytes, offset):
    t = plan_mod.OutTensor("w", None, "F32", (rows, row_bytes // 4))
    placed = [writer.Placement(t, None, offset)]
    got = writer.pieces(placed, piece_bytes=1000, window=4096)
    assert [pc.pos for pc in got] == sorted(pc.pos for pc in got)
    assert sum(pc.nbytes for pc in got) == rows * row_bytes and got[0].pos == offset
    assert all(a.pos + a.nbytes == b.pos for a, b in itertools.pairwise(got))
    assert all(pc.rows is None or pc.rows[1] - pc.rows[0] >= 2 for pc in got)
    crossing = [pc for pc in got if pc.pos // 4096 != (pc.pos + pc.nbytes - 1) // 4096]
    assert len(crossing) <= rows * row_bytes // 4096 + 1  # at most one per window boundary


def test_small_shards_small_pieces_and_windows_give_the_same_bytes(adapter, tmp_path, monkeypatch):
    assert run([adapter], tmp_path / "plain", "--max-shard-size", "40KB") == 0
    monkeypatch.setattr(writer, "PIECE_BYTES", 1000)
    monkeypatch.setattr(writer, "WINDOW_BYTES", 8192)
    monkeypatch.setattr(writer, "RING", 2)
    assert run([adapter], tmp_path / "tiny_io", "--max-shard-size", "40KB", "--workers", "3") == 0
    shards = sorted(p.name for p in (tmp_path / "plain").glob("model-*.safetensors"))
    assert len(shards) > 3
    for name in shards:
        assert (tmp_path / "plain" / name).read_bytes() == (
            tmp_path / "tiny_io" / name
        ).read_bytes()
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny_io", dtype=torch.float32)
    assert merged(input_ids=IDS).logits.isfinite().all()


def test_device_path_gives_the_same_bytes(adapter, tmp_path, monkeypatch):
    """--device cuda's code path (whole pieces moved to a device), run with the CPU device."""
    from lora_merge import engines

    assert run([adapter], tmp_path / "plain") == 0
    monkeypatch.setattr(engines, "_cuda", lambda: torch.device("cpu"))
    assert run([adapter], tmp_path / "dev", "--device", "cuda") == 0
    info = json.loads((tmp_path / "dev" / "merge_info.json").read_text())
    assert info["engine"] == "torch"
    for f in (tmp_path / "plain").glob("model-*.safetensors"):
        assert f.read_bytes() == (tmp_path / "dev" / f.name).read_bytes()


def test_a_refused_direct_write_falls_back_to_plain_writes(adapter, tmp_path, monkeypatch):
    assert run([adapter], tmp_path / "plain") == 0
    real, calls = writer.pwrite_all, []

    def refuse_first(fd, view, offset):
        calls.append(offset)
        if len(calls) == 1:
            raise OSError(22, "Invalid argument")  # what O_DIRECT gets where it is unsupported
        return real(fd, view, offset)

    monkeypatch.setattr(writer, "pwrite_all", refuse_first)
    assert run([adapter], tmp_path / "fallback") == 0
    assert len(calls) >= 2
    for f in (tmp_path / "plain").glob("model-*.safetensors"):
        assert f.read_bytes() == (tmp_path / "fallback" / f.name).read_bytes()


def test_overwrite_replaces_the_output(adapter, adapter2, tmp_path):
    assert run([adapter], tmp_path / "out") == 0
    assert run([adapter2], tmp_path / "out", "--overwrite") == 0
    info = json.loads((tmp_path / "out" / "merge_info.json").read_text())
    assert info["adapters"][0]["path"] == str(adapter2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_stale_staging_of_a_dead_run_is_replaced(adapter, tmp_path):
    stage = staging.staging_path(tmp_path / "out")
    stage.mkdir()
    (stage / staging.OWNER).write_text("999999999\n")
    (stage / "model-00001-of-00001.safetensors").write_bytes(b"half")
    assert run([adapter], tmp_path / "out") == 0
    assert not stage.exists()


def test_staging_of_a_live_merge_is_not_touched(adapter, tmp_path):
    stage = staging.staging_path(tmp_path / "out")
    stage.mkdir()
    (stage / staging.OWNER).write_text(f"{os.getppid()}\n")
    assert run([adapter], tmp_path / "out") == 1
    assert (stage / staging.OWNER).exists() and not (tmp_path / "out").exists()


def test_progress_is_a_tqdm_bar_on_a_terminal_and_silent_elsewhere(
    adapter, tmp_path, capsys, monkeypatch
):
    argv = ["--adapter", str(adapter), "--output"]
    assert merge_lora.main([*argv, str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "out")
    assert "B/s" not in err and "%" not in err and "done in" in err  # a log, no bar

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert merge_lora.main([*argv, str(tmp_path / "tty")]) == 0
    bar = terminal.getvalue()
    total = sum(f.stat().st_size for f in (tmp_path / "tty").glob("model-*.safetensors"))
    size = tqdm.format_sizeof(total, divisor=1024)
    assert "merge_lora: weights: 100%" in bar and f"| {size}/{size} [" in bar  # bytes done/total
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d, *[\d.]+[kMG]?B/s\]", bar)  # elapsed<ETA, rate


def test_verify_passes_on_a_good_merge(adapter, tmp_path):
    assert run([adapter], tmp_path / "out", "--verify") == 0
    info = json.loads((tmp_path / "out" / "merge_info.json").read_text())
    assert info["verify"]["tensors"]["status"] == "pass"
    assert info["verify"]["logits"]["status"] == "pass"


def test_verify_catches_a_wrong_tensor(adapter, tmp_path, monkeypatch):
    real = np_engine.compute_piece

    def corrupt(pc, fds, out=None):
        data = real(pc, fds, out)
        if pc.tensor.name == "model.layers.1.mlp.up_proj.weight":
            data[0:4] = b"\x00\x00\x80\x7f"  # +inf in the first element
        return data

    monkeypatch.setattr(np_engine, "compute_piece", corrupt)
    output = tmp_path / "out"
    assert run([adapter], output, "--verify") == 1
    assert not output.exists()
    info = json.loads((staging.staging_path(output) / "merge_info.json").read_text())
    bad = [m["tensor"] for m in info["verify"]["tensors"]["mismatches"]]
    assert bad == ["model.layers.1.mlp.up_proj.weight"]


def test_verify_logits_catch_a_wrong_tied_head_rule(tiny_model_cache, tmp_path, monkeypatch):
    base = tiny_model_cache("llama", tie=True)
    a = tiny_models.make_adapter(base, tmp_path / "a", target_modules=["lm_head"])
    # A plan that ignores tying drops the head's LoRA: consistent per tensor, wrong in logits.
    monkeypatch.setattr(plan_mod._Builder, "is_end", lambda self, t: False)
    assert run([a], tmp_path / "out", "--verify") == 1
    info = json.loads((staging.staging_path(tmp_path / "out") / "merge_info.json").read_text())
    assert info["verify"]["tensors"]["status"] == "pass"
    assert info["verify"]["logits"]["status"] == "fail"

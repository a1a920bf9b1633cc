"""The merge math engines: numpy's bytes equal torch's, bit for bit; which engine runs when;
an interpreter without the packages an engine needs gets one line and exit 2, nothing written.
"""

from __future__ import annotations

import json
import os

import merge_lora
import numpy as np
import pytest
import tiny_models
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lora_merge import engines, np_engine, staging
from peft import IA3Config

SPECIAL = [0.0, -0.0, 1.0, -1.5, 3.3895314e38, -3.4e38, 1e-40, -1e-45, np.inf, -np.inf]
TIES = [0x3F808000, 0x3F818000, 0xBF808000, 0x3F807FFF, 0x3F80FFFF, 0x7F7FFFFF, 0x00008000]


def torch_bf16_bits(x: np.ndarray) -> np.ndarray:
    return torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def np_encode(x: np.ndarray, dtype: str = "BF16") -> bytearray:
    out = bytearray(x.size * {"BF16": 2, "F16": 2, "F32": 4, "F64": 8}[dtype])
    with np.errstate(all="ignore"):
        np_engine.encode(x, dtype, memoryview(out), np.empty(x.size, np.uint32))
    return out


def test_bf16_rounding_is_torchs_on_ties_overflow_subnormals_and_nan():
    x = np.concatenate([np.array(SPECIAL, np.float32), np.array(TIES, np.uint32).view(np.float32)])
    ours = np.frombuffer(np_encode(x), np.uint16)
    assert ours.tolist() == torch_bf16_bits(x).tolist()
    nan = np.array([1.0, np.nan, -np.nan], np.float32)
    assert np.frombuffer(np_encode(nan), np.uint16).tolist() == torch_bf16_bits(nan).tolist()
    assert np_encode(np.empty(0, np.float32)) == bytearray()  # a zero-size tensor


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=300))
def test_bf16_rounding_is_torchs_for_any_float32(words):
    x = np.array(words, np.uint32).view(np.float32)
    x = x[~np.isnan(x)]  # NaN payloads: covered above
    assert np.frombuffer(np_encode(x), np.uint16).tolist() == torch_bf16_bits(x).tolist()


@pytest.mark.parametrize("dtype", ["F16", "F32", "F64"])
def test_other_float_outputs_round_as_torch(dtype):
    x = (np.random.default_rng(0).standard_normal(4096) * 100).astype(np.float32)
    want = torch.from_numpy(x).to(
        getattr(torch, {"F16": "float16", "F32": "float32"}.get(dtype, "float64"))
    )
    assert bytes(np_encode(x, dtype)) == want.numpy().tobytes()


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_decode_widens_exactly(dtype):
    t = torch.randn(1000, dtype=torch.float64).to(getattr(torch, dtype))
    raw = t.view(torch.uint8).numpy().tobytes()
    out = np.empty(1000, np.float32)
    np_engine.decode(raw, {"bfloat16": "BF16", "float16": "F16", "float64": "F64"}[dtype], out)
    assert out.tobytes() == t.to(torch.float32).numpy().tobytes()


@pytest.mark.parametrize("rank", [1, 4, 8, 16, 32, 64])
@pytest.mark.parametrize(("rows", "cols"), [(1, 64), (2, 5), (7, 320), (64, 17), (33, 2048)])
def test_matmul_is_torchs_fused_multiply_add_chain(rank, rows, cols):
    g = torch.Generator().manual_seed(rank * 1000 + rows)
    b, a = torch.randn(rows + 1, rank, generator=g), torch.randn(rank, cols, generator=g)
    want = torch.mm(b, a)[:rows]  # two rows or more: torch's sgemm, as PEFT's merge runs it
    ours = np_engine.matmul(b.numpy()[:rows], a.numpy())
    assert ours.tobytes() == want.numpy().tobytes()


# --------------------------------------------------------------------- which engine runs


@pytest.fixture(scope="module")
def base(tiny_model_cache):
    return tiny_model_cache("llama", dtype="bfloat16")


def merge(adapter, output, *extra) -> int:
    return merge_lora.main(["--adapter", str(adapter), "--output", str(output), "--quiet", *extra])


def engine_of(output) -> str:
    return json.loads((output / "merge_info.json").read_text())["engine"]


def test_lora_runs_on_numpy_and_dora_on_torch_with_the_same_bytes(base, tmp_path, monkeypatch):
    lora = tiny_models.make_adapter(base, tmp_path / "lora")
    dora = tiny_models.make_adapter(base, tmp_path / "dora", use_dora=True)
    assert merge(lora, tmp_path / "np") == 0 and engine_of(tmp_path / "np") == "numpy"
    assert merge(dora, tmp_path / "dora_out") == 0 and engine_of(tmp_path / "dora_out") == "torch"
    _without(monkeypatch, "numpy")
    assert merge(lora, tmp_path / "torch") == 0 and engine_of(tmp_path / "torch") == "torch"
    for shard in (tmp_path / "np").glob("model-*.safetensors"):
        assert shard.read_bytes() == (tmp_path / "torch" / shard.name).read_bytes()


def _without(monkeypatch, *gone: str) -> None:
    real = engines.missing
    monkeypatch.setattr(engines, "missing", lambda *m: [x for x in m if x in gone] + real(*m))


@pytest.mark.parametrize(
    ("gone", "extra", "needs"),
    [
        (("numpy", "torch"), [], "the merge needs numpy (or torch)"),
        (("torch",), ["--verify"], "--verify needs torch"),
        (("torch",), ["--dora"], "the merge (DoRA) needs torch"),
        (("peft",), ["--ia3"], "PEFT's merge of this tuner needs peft"),
    ],
)
def test_a_missing_package_is_one_line_exit_2_and_nothing_written(
    gone, extra, needs, base, tmp_path, monkeypatch, capsys
):
    kwargs: dict = {}
    if "--dora" in extra:
        kwargs["use_dora"] = True
    if "--ia3" in extra:
        kwargs["peft_config"] = IA3Config(target_modules=["k_proj"], feedforward_modules=[])
    adapter = tiny_models.make_adapter(base, tmp_path / "a", **kwargs)
    _without(monkeypatch, *gone)
    output = tmp_path / "out"
    assert merge(adapter, output, *[e for e in extra if e == "--verify"]) == 2
    assert not output.exists() and not staging.staging_path(output).exists()
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"merge_lora: error: {needs}, which ")
    assert "Traceback" not in "\n".join(err)


# ------------------------------------------------------------------- worker processes


def test_worker_processes_and_one_in_process_worker_write_the_same_bytes(base, tmp_path):
    lora = tiny_models.make_adapter(base, tmp_path / "lora", r=8)
    assert merge(lora, tmp_path / "forked", "--max-shard-size", "60KB") == 0
    assert merge(lora, tmp_path / "inline", "--max-shard-size", "60KB", "--workers", "1") == 0
    shards = sorted((tmp_path / "forked").glob("model-*.safetensors"))
    assert len(shards) > 1
    for shard in shards:
        assert shard.read_bytes() == (tmp_path / "inline" / shard.name).read_bytes()


def test_a_failing_worker_process_fails_the_merge_and_leaves_no_process(
    base, tmp_path, monkeypatch, capsys
):
    lora = tiny_models.make_adapter(base, tmp_path / "lora")
    real = np_engine.compute_piece

    def broken(pc, fds, out=None):
        if pc.tensor.name.endswith("layers.1.mlp.down_proj.weight"):
            raise ValueError("disk said no")
        return real(pc, fds, out)

    monkeypatch.setattr(np_engine, "compute_piece", broken)
    before = set(os.listdir("/proc"))
    assert merge(lora, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert "writing the merged shards failed: ValueError: disk said no" in err
    assert not (tmp_path / "out").exists()
    children = [p for p in set(os.listdir("/proc")) - before if p.isdigit()]
    assert not [p for p in children if _parent(p) == os.getpid()]


def _parent(pid: str) -> int:
    try:
        return int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return -1

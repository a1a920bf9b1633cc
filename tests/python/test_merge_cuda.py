"""--device cuda writes the CPU merge's bytes: the rank-r product on the GPU is the CPU's chain.

Runs where torch sees a CUDA device (CI has none; on a GPU box: `python3 -m pytest
tests/python/test_merge_cuda.py`). cuBLAS alone is not enough: it picks a kernel per shape, and
on the H200 some of them summed the rank in another order (10 of 291 tensors of an 8B merge one
bf16 ulp apart from the CPU's).
"""

from __future__ import annotations

import merge_lora
import numpy as np
import pytest
import tiny_models
import torch
from lora_merge import np_engine, ops

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device here (these run on a GPU box)"
)

# (rows, rank, cols): odd edges, pieces of 4 MiB (the writer's blocks of rows) and the whole
# projections of an 8B Llama at r=16 and r=64. On the H200, torch.mm differed from the chain in
# about half the values of (1..63, 8, 1024), and in 250 of 687 shapes tried.
SHAPES = [
    (1, 8, 64),
    (7, 4, 320),
    (64, 16, 17),
    (3, 8, 1024),
    (37, 8, 1024),
    (146, 16, 14336),
    (512, 16, 4096),
    (1024, 16, 4096),
    (4096, 16, 14336),
    (14336, 16, 4096),
    (4096, 64, 4096),
]


@pytest.mark.parametrize(("rows", "rank", "cols"), SHAPES)
def test_cuda_product_is_the_cpu_fused_multiply_add_chain(rows, rank, cols):
    g = torch.Generator().manual_seed(rows + rank + cols)
    b = torch.randn(rows, rank, generator=g) * 0.01
    a = torch.randn(rank, cols, generator=g) * 0.01
    want = np_engine.matmul(b.numpy(), a.numpy())
    got = ops.product(b.cuda(), a.cuda()).cpu().numpy()
    assert got.tobytes() == np.ascontiguousarray(want).tobytes()


@pytest.mark.parametrize(("family", "dtype"), [("llama", "bfloat16"), ("gpt2", "float32")])
def test_cuda_merge_is_bit_identical_to_the_cpu_merge(family, dtype, tiny_model_cache, tmp_path):
    base = tiny_model_cache(family, dtype=dtype)
    adapter = tiny_models.make_adapter(base, tmp_path / "adapter")
    for device in ("cpu", "cuda"):
        argv = ["--adapter", str(adapter), "--output", str(tmp_path / device), "--quiet"]
        assert merge_lora.main([*argv, "--device", device]) == 0
    shards = sorted(p.name for p in (tmp_path / "cpu").glob("*.safetensors"))
    assert shards
    for name in shards:
        assert (tmp_path / "cuda" / name).read_bytes() == (tmp_path / "cpu" / name).read_bytes()

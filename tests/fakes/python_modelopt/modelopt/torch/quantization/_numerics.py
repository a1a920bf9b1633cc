"""Quantize-dequantize functions of the fake ModelOpt (what the real formats do to a tensor)."""

from __future__ import annotations

import torch

FP8_MAX = 448.0
E2M1_GRID = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)


def fp8(x: torch.Tensor, amax: torch.Tensor | float | None = None) -> torch.Tensor:
    """FP8 E4M3 with one scale (amax / 448); values beyond amax are clipped, as calibrated."""
    amax = x.abs().max() if amax is None else torch.as_tensor(amax, dtype=torch.float32)
    scale = torch.clamp(amax.float(), min=1e-12) / FP8_MAX
    clipped = torch.maximum(torch.minimum(x.float(), amax), -amax)
    return ((clipped / scale).to(torch.float8_e4m3fn).float() * scale).to(x.dtype)


def int_blocks(w: torch.Tensor, bits: int, block: int | None) -> torch.Tensor:
    """Symmetric integer quantization per block of the last dim (block None: per tensor)."""
    shape = w.shape
    block = shape[-1] if block is None or shape[-1] % block else block
    groups = w.float().reshape(-1, block)
    qmax = 2 ** (bits - 1) - 1
    scale = torch.clamp(groups.abs().amax(dim=-1, keepdim=True), min=1e-12) / max(qmax, 1)
    q = torch.clamp(torch.round(groups / scale), -qmax - 1, qmax)
    return (q * scale).reshape(shape).to(w.dtype)


def nvfp4(x: torch.Tensor, block: int = 16) -> torch.Tensor:
    """NVFP4: E2M1 values in blocks of 16 with an FP8 E4M3 scale per block (dynamic)."""
    shape = x.shape
    if shape[-1] % block:
        return x
    groups = x.float().reshape(-1, block)
    global_scale = torch.clamp(groups.abs().max(), min=1e-12) / (6.0 * FP8_MAX)
    block_scale = fp8(groups.abs().amax(dim=-1, keepdim=True) / 6.0 / global_scale) * global_scale
    block_scale = torch.clamp(block_scale, min=1e-12)
    grid = torch.tensor(E2M1_GRID)
    scaled = (groups / block_scale).abs()
    nearest = grid[(scaled[..., None] - grid).abs().argmin(dim=-1)]
    return (torch.sign(groups) * nearest * block_scale).reshape(shape).to(x.dtype)


def quantizer(fmt: dict | None):
    """A function tensor -> tensor for a weight format, or None when quantization is off."""
    if not fmt:
        return None
    bits, blocks = fmt.get("num_bits"), fmt.get("block_sizes") or {}
    if bits == "e4m3":
        return fp8
    if bits == "e2m1":
        return lambda w: nvfp4(w, int(blocks.get(-1, 16)))
    if isinstance(bits, int):
        return lambda w: int_blocks(w, bits, blocks.get(-1))
    raise ValueError(f"fake modelopt: unknown num_bits {bits!r}")

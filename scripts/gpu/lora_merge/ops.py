"""The merge math, one function per variant, applied to a block of rows of one tensor.

Each op works in the dtype of the block it is given (float32 for the merge, float64 for
--verify's reference) and mirrors PEFT's formulas (see the research notes in the docs):
  LoRA       W' = W + s·B·A              (fan_in_fan_out: W' = W + s·(B·A)ᵀ)
  embedding  E' = E + s·(B·A)ᵀ
  DoRA       V = W + ΔW; W' = (m / ‖V‖) · V   (norm per output row; per column for embeddings)
  lora_bias  b' = b + s·b_B
  tokens     E'[idx] = stored rows
Ops flagged row_local can run on any block of rows; the others need the whole tensor.

The rank-r product B·A is, on the CPU, BLAS's fused multiply-add chain over the rank in order
(what torch's CPU matmul, numpy's sgemm and so PEFT's CPU merge compute). On a GPU, cuBLAS
picks a kernel per shape and some sum the rank in another order, so a float32 product there is
that same chain, spelled out (r fused multiply-adds per element): a cuda merge is bit-identical
to a CPU merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Op:
    kind: str  # lora | lora_fan | lora_emb | dora | dora_fan | dora_emb | bias | tokens
    adapter: object  # lora_merge.adapter.Adapter
    module: str
    keys: dict[str, str]  # role -> adapter key
    scale: float = 1.0
    indices: list[int] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def row_local(self) -> bool:
        return self.kind not in ("dora_fan", "dora_emb")

    def tensor(self, role: str, dtype, device):
        key = (role, dtype, str(device))
        if key not in self._cache:
            self._cache[key] = self.adapter.get(self.keys[role]).to(device=device, dtype=dtype)
        return self._cache[key]

    def release(self) -> None:
        self._cache.clear()


def product(b, a, out=None):
    """b @ a: on a GPU in float32 the rank-ordered fused multiply-add chain (see above)."""
    import torch

    if b.device.type == "cpu" or b.dtype != torch.float32:
        return torch.mm(b, a, out=out) if out is not None else b @ a
    acc = torch.zeros((b.shape[0], a.shape[1]), dtype=b.dtype, device=b.device)
    for k in range(b.shape[1]):  # acc = fma(b[:, k], a[k, :], acc), k ascending
        acc.addcmul_(b[:, k : k + 1], a[k : k + 1, :])
    return acc


def apply(op: Op, block, start: int, stop: int, scratch=None) -> None:
    """Apply op in place to block = rows [start, stop) of the tensor (working dtype).

    scratch: optional flat tensor of block's dtype and at least block's size, reused for the
    product so the hot path allocates nothing.
    """
    import torch

    dt, dev = block.dtype, block.device

    def t(role):
        return op.tensor(role, dt, dev)

    if op.kind in ("lora", "dora"):
        if scratch is not None:
            delta = product(t("B")[start:stop], t("A"), scratch[: block.numel()].view(block.shape))
        else:
            delta = product(t("B")[start:stop], t("A"))
        delta.mul_(op.scale)
        block.add_(delta)
        if op.kind == "dora":
            norm = torch.linalg.norm(block, dim=1).to(dt)
            block.mul_((t("M")[start:stop] / norm).view(-1, 1))
    elif op.kind in ("lora_fan", "lora_emb"):  # stored transposed: rows index A's columns
        a = t("EA" if op.kind == "lora_emb" else "A")
        b = t("EB" if op.kind == "lora_emb" else "B")
        delta = product(b, a[:, start:stop]).t()
        delta = delta * op.scale
        block.add_(delta)
    elif op.kind in ("dora_fan", "dora_emb"):  # whole tensor: norm over the stored rows
        a = t("EA" if op.kind == "dora_emb" else "A")
        b = t("EB" if op.kind == "dora_emb" else "B")
        delta = product(b, a).t() * op.scale
        block.add_(delta)
        norm = torch.linalg.norm(block.t(), dim=1).to(dt)
        block.mul_((t("M") / norm).view(1, -1))
    elif op.kind == "bias":
        block.add_(t("B_bias")[start:stop] * op.scale)
    elif op.kind == "tokens":
        rows = t("T")
        for i, idx in enumerate(op.indices):
            if start <= idx < stop:
                block[idx - start] = rows[i]
    else:  # pragma: no cover - plan only makes the kinds above
        raise ValueError(op.kind)

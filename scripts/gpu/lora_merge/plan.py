"""The merge plan: every output tensor, where its bytes come from, and the ops applied to it.

Built from headers and configs only, before anything is written, so every problem with the
inputs (a key that matches nothing, a shape or rank mismatch, a bias the base lacks) is found
up front. Tied embeddings: a base whose lm_head is tied to the input embedding has one
stored matrix; when the adapter treats the two ends differently (LoRA or a full copy on
either end) the plan writes a separate lm_head.weight and unties the config, so the merged
model computes what the adapter model computed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from lora_merge.adapter import FULL_ORDER, Adapter, Module, unmatched_patterns
from lora_merge.base import BaseModel
from lora_merge.errors import bad_input
from lora_merge.ops import Op
from lora_merge.safetensors_io import DTYPES, FLOAT_DTYPES, TensorInfo

HEAD = "lm_head.weight"
EMBED_SUFFIXES = ("embed_tokens.weight", "wte.weight", "word_embeddings.weight", "embed_in.weight")


@dataclass
class OutTensor:
    name: str
    base: (
        TensorInfo | None
    )  # the base tensor (None for nothing); for the untied head: the embedding
    out_dtype: str
    shape: tuple[int, ...]
    source: tuple[Adapter, str] | None = None  # full replacement from an adapter
    ops: list[Op] = field(default_factory=list)

    @property
    def src(self) -> TensorInfo:
        """Where the bytes come from: the adapter's replacement, else the base tensor."""
        return self.source[0].tensors[self.source[1]] if self.source else self.base

    @property
    def src_dtype(self) -> str:
        return self.src.dtype

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPES[self.out_dtype][0]

    @property
    def passthrough(self) -> bool:
        return not self.ops and self.source is None and self.out_dtype == self.base.dtype


@dataclass
class Plan:
    tensors: list[OutTensor]
    config_changes: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    untied: bool = False
    counts: dict = field(default_factory=dict)
    embed: str | None = None  # the input embedding's name

    @property
    def embed_rows(self) -> int | None:
        """Rows of the input embedding as written (a resized vocabulary included)."""
        return next((t.shape[0] for t in self.tensors if t.name == self.embed), None)


def _tie_flag(base: BaseModel) -> bool:
    cfg = base.config
    flags = [cfg.get("tie_word_embeddings")]
    if isinstance(cfg.get("text_config"), dict):
        flags.append(cfg["text_config"].get("tie_word_embeddings"))
    return any(f is True for f in flags)


def _embed_name(base: BaseModel) -> str | None:
    names = [n for n in base.tensors if n.endswith(EMBED_SUFFIXES)]
    return names[0] if names else None


class _Builder:
    def __init__(self, base: BaseModel, dtype: str | None):
        self.base = base
        self.out: dict[str, OutTensor] = {}
        for name, info in base.tensors.items():
            out_dtype = dtype if dtype and info.dtype in FLOAT_DTYPES else info.dtype
            self.out[name] = OutTensor(name, info, out_dtype, info.shape)
        self.embed = _embed_name(base)
        # Tied: no stored lm_head (a causal LM without one reuses the embedding), or a stored
        # one that the config ties (transformers would overwrite one end with the other).
        self.virtual_head = self.embed is not None and HEAD not in base.tensors
        self.tied = self.virtual_head or (self.embed is not None and _tie_flag(base))
        self.diverged = False
        self.head: OutTensor | None = self.out.get(HEAD)
        if self.virtual_head:
            e = self.out[self.embed]
            self.head = OutTensor(HEAD, e.base, e.out_dtype, e.shape)

    def target(self, adapter: Adapter, module: str, param: str, key: str) -> OutTensor:
        name = f"{module}.{param}"
        if name == HEAD and self.virtual_head:
            return self.head
        if name not in self.out:
            raise bad_input(
                "unmatched_adapter_key",
                f"{adapter.path}: {key} targets {name}, which the base does not have",
            )
        return self.out[name]

    def is_end(self, t: OutTensor) -> bool:
        return self.tied and (t is self.head or t.name == self.embed)

    def replace(self, adapter: Adapter, t: OutTensor, key: str, origin: str) -> None:
        shape = adapter.shape(key)
        resizable = self.is_end(t) or t.name in (HEAD, self.embed)
        same = shape == t.base.shape
        if not same and not (resizable and len(shape) == 2 and shape[1:] == t.base.shape[1:]):
            raise bad_input(
                "shape_mismatch",
                f"{adapter.path}: {key} has shape {list(shape)}, base {t.name} has "
                f"{list(t.base.shape)}",
            )
        targets = [t]
        if self.is_end(t) and origin == "base_layer" and t.name == self.embed:
            targets.append(self.head)  # the shared matrix the adapter saw: both ends follow
        elif self.is_end(t):
            self.diverged = True
        for x in targets:
            x.source, x.shape, x.ops = (adapter, key), shape, []

    def add_op(self, t: OutTensor, op: Op, shared: bool = False) -> None:
        t.ops.append(op)
        if self.is_end(t):
            if shared:
                other = self.head if t is not self.head else self.out[self.embed]
                other.ops.append(op)
            else:
                self.diverged = True


def _need(adapter: Adapter, mod: Module, *kinds: str) -> None:
    missing = [k for k in kinds if k not in mod.parts]
    if missing:
        raise bad_input(
            "incomplete_adapter",
            f"{adapter.path}: module {mod.name} lacks {', '.join(missing)}",
        )


def _shape_error(adapter: Adapter, mod: Module, what: str) -> None:
    raise bad_input("shape_mismatch", f"{adapter.path}: module {mod.name}: {what}")


def _lora_ops(b: _Builder, adapter: Adapter, mod: Module) -> None:
    parts = mod.parts
    cfg = adapter.config
    emb = "EA" in parts or "EB" in parts
    pair = ("EA", "EB") if emb else ("A", "B")
    _need(adapter, mod, *pair)
    t = b.target(adapter, mod.name, "weight", parts[pair[0]])
    a_shape, b_shape = adapter.shape(parts[pair[0]]), adapter.shape(parts[pair[1]])
    if len(t.shape) != 2:
        raise bad_input(
            "unsupported_layer",
            f"{adapter.path}: module {mod.name} is a {len(t.shape)}-D weight (conv or fused "
            "experts); the streaming merge handles linear and embedding layers only",
        )
    if len(a_shape) != 2 or len(b_shape) != 2 or a_shape[0] != b_shape[1]:
        _shape_error(adapter, mod, f"A {list(a_shape)} and B {list(b_shape)} do not pair")
    rank = a_shape[0]
    r_cfg, _alpha = adapter.rank_alpha(mod.name)
    if rank != r_cfg:
        raise bad_input(
            "rank_mismatch",
            f"{adapter.path}: module {mod.name} has rank {rank}, the config says r={r_cfg}",
        )
    fan = bool(cfg.get("fan_in_fan_out")) and not emb
    if emb:  # E (V, d): A (r, V), B (d, r)
        expect = (a_shape[1], b_shape[0])
    else:  # W (out, in) or (in, out) with fan_in_fan_out: A (r, in), B (out, r)
        expect = (a_shape[1], b_shape[0]) if fan else (b_shape[0], a_shape[1])
    if tuple(t.shape) != expect:
        _shape_error(adapter, mod, f"LoRA makes {list(expect)}, base {t.name} is {list(t.shape)}")
    dora = "M" in parts
    if dora:
        m_len = b_shape[0]
        if tuple(adapter.shape(parts["M"])) != (m_len,):
            _shape_error(
                adapter, mod, f"magnitude is {list(adapter.shape(parts['M']))}, expected [{m_len}]"
            )
        kind = "dora_emb" if emb else ("dora_fan" if fan else "dora")
    else:
        kind = "lora_emb" if emb else ("lora_fan" if fan else "lora")
    keys = {k: parts[k] for k in (*pair, "M") if k in parts}
    b.add_op(t, Op(kind, adapter, mod.name, keys, adapter.scale(mod.name)))
    if "B_bias" in parts:
        if emb:
            _shape_error(adapter, mod, "lora_B.bias on an embedding")
        bias = b.out.get(f"{mod.name}.bias")
        if bias is None:
            raise bad_input(
                "lora_bias_without_bias",
                f"{adapter.path}: module {mod.name} has lora_B.bias but the base layer has no bias",
            )
        if tuple(adapter.shape(parts["B_bias"])) != tuple(bias.shape):
            _shape_error(adapter, mod, "lora_B.bias does not match the base bias")
        op = Op("bias", adapter, mod.name, {"B_bias": parts["B_bias"]}, adapter.scale(mod.name))
        b.add_op(bias, op)


def _token_indices(adapter: Adapter, module: str) -> list[int]:
    cfg = adapter.config
    spec = cfg.get("token_indices") if adapter.peft_type == "TRAINABLE_TOKENS" else None
    if spec is None:
        spec = cfg.get("trainable_token_indices")
    if isinstance(spec, dict):
        for key, ids in spec.items():
            if module == key or module.endswith("." + key):
                return list(ids)
        return []
    return list(spec or [])


def _token_op(b: _Builder, adapter: Adapter, mod: Module) -> None:
    key = mod.parts["T"]
    t = b.target(adapter, mod.name, "weight", key)
    ids = _token_indices(adapter, mod.name)
    shape = adapter.shape(key)
    if not ids or len(shape) != 2 or shape[0] != len(ids) or shape[1] != t.shape[1]:
        _shape_error(
            adapter,
            mod,
            f"trainable tokens {list(shape)} do not match indices "
            f"{ids[:8]} and {t.name} {list(t.shape)}",
        )
    if max(ids) >= t.shape[0] or min(ids) < 0:
        _shape_error(adapter, mod, f"token index {max(ids)} outside {t.shape[0]} rows")
    b.add_op(t, Op("tokens", adapter, mod.name, {"T": key}, indices=ids), shared=True)


def _adapter_ops(b: _Builder, adapter: Adapter) -> None:
    for mod in adapter.modules.values():
        for param, key, origin in sorted(mod.full, key=lambda e: FULL_ORDER[e[2]]):
            target = b.target(adapter, mod.name, param, key)
            if origin != "original":
                b.replace(adapter, target, key, origin)
        known = {"A", "B", "EA", "EB", "M", "B_bias", "T"}
        if set(mod.parts) - known:  # pragma: no cover - classify only makes known kinds
            raise bad_input("unknown_adapter_key", f"{adapter.path}: {mod.name}")
        if {"A", "B", "EA", "EB"} & set(mod.parts):
            _lora_ops(b, adapter, mod)
        elif "M" in mod.parts or "B_bias" in mod.parts:
            _need(adapter, mod, "A", "B")
        if "T" in mod.parts:
            _token_op(b, adapter, mod)


def _set_everywhere(config: dict, key: str, value) -> dict:
    """{path: value} for key at the top level and in nested text/llm configs that have it."""
    changes = {}
    if key in config or key == "tie_word_embeddings":
        changes[key] = value
    for sub in ("text_config", "llm_config", "language_config"):
        if isinstance(config.get(sub), dict) and key in config[sub]:
            changes[f"{sub}.{key}"] = value
    return changes


def build(base: BaseModel, adapters: list[Adapter], dtype: str | None) -> Plan:
    """dtype: safetensors dtype name for float tensors (None: keep each tensor's own)."""
    b = _Builder(base, dtype)
    warnings: list[str] = []
    for adapter in adapters:
        _adapter_ops(b, adapter)
        for pat in unmatched_patterns(adapter):
            warnings.append(f"{adapter.path}: {pat} matches no adapted module (ignored, as PEFT)")
    tensors = list(b.out.values())
    changes: dict = {}
    if b.tied and b.diverged:
        if b.virtual_head:
            tensors.insert(tensors.index(b.out[b.embed]) + 1, b.head)
        changes.update(_set_everywhere(base.config, "tie_word_embeddings", False))
    if b.embed is not None:
        rows = b.out[b.embed].shape[0]
        head = b.head if (b.virtual_head and b.diverged) else b.out.get(HEAD)
        if head is not None and head.shape[0] != rows:
            raise bad_input(
                "vocab_mismatch",
                f"merged {b.embed} has {rows} rows but lm_head has {head.shape[0]}",
            )
        if rows != b.out[b.embed].base.shape[0]:
            changes.update(_set_everywhere(base.config, "vocab_size", rows))
    counts = {
        "tensors": len(tensors),
        "merged": sum(1 for t in tensors if t.ops),
        "replaced": sum(1 for t in tensors if t.source is not None),
        "copied": sum(1 for t in tensors if not t.ops and t.source is None),
    }
    return Plan(tensors, changes, warnings, b.tied and b.diverged, counts, b.embed)

"""Resource estimate of a build, by exact arithmetic on config.json (and the safetensors headers
when the model dir has them): weights per GPU, KV cache per token, activations, KV capacity, host
RAM and disk.

Library:
  model_shape(model_config) -> Shape      keys missing from config.json take the model class's
                                          default (data/families.json, config_defaults)
  parameter_groups(shape) -> dict[str, int]     parameters by group (exact for the families here)
  read_safetensors(model_dir) -> dict | None    exact tensor bytes from the file headers
  estimate(cfg, model_config, gpu, model_dir=None, facts=None) -> dict
      cfg: the validated BuildConfig; gpu: {"name", "memory_total_mib" (or "memory_gib"),
      "memory_free_mib" (detected GPUs), "compute_capability"}; facts: the probe facts or None.
  suggestions(cfg, model_config, gpu) -> list[str]   settings under which the weights fit

Assumptions, named in the output: embeddings are replicated on each tensor-parallel rank
(TensorRT-LLM's default without --use_parallel_embedding) and the lm_head is split; quantized
formats store linear-layer weights only (embeddings, lm_head, norms and biases stay in the build
dtype); RUNTIME_RESERVE_BYTES covers the CUDA context and TensorRT/cuBLAS workspaces. The KV
cache is sized from the GPU's free memory where a GPU was detected (TensorRT-LLM takes its
fraction of what is free), else from the target GPU's total memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import model_files
from build_config import BuildConfig
from family import load_data

SCHEMA_VERSION = 1
GIB = 1024**3
MIB = 1024**2
RUNTIME_RESERVE_BYTES = 1 * GIB

DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "fp8": 1, "int8": 1}
ST_DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}

# Bytes per parameter of the linear-layer weights for each quantization mode ("none" = dtype).
# Group scales: AWQ keeps one fp16 scale per 128 weights; NVFP4 one fp8 scale per 16.
QUANT_LINEAR_BYTES = {
    "fp8": 1.0,
    "int8_sq": 1.0,
    "int8_weight_only": 1.0,
    "int4_weight_only": 0.5,
    "int4_awq": 0.5 + 2 / 128,
    "w4a8_awq": 0.5 + 2 / 128,
    "nvfp4": 0.5 + 1 / 16,
}
# GPT-style families: a plain two-matrix MLP (no gate) and LayerNorm with a bias, both of which
# change the parameter count. One set, so the two facts cannot drift apart.
GPT_STYLE = {
    "gpt2",
    "gpt_bigcode",
    "starcoder2",
    "falcon",
    "RefinedWeb",
    "RefinedWebModel",
    "phi",
    "nemotron",
}


class EstimateError(Exception):
    """config.json lacks what the arithmetic needs; code 2."""

    code = 2


@dataclass
class Shape:
    model_type: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    gated_mlp: bool
    checkpoint_dtype: str
    max_position_embeddings: int | None
    rope_scaling_factor: float | None
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    norm_vectors_per_layer: int = 2  # weight vectors of size hidden per layer
    norm_bias: bool = False
    qk_norm: bool = False
    learned_positions: int = 0
    experts: int = 0
    moe_intermediate: int = 0
    shared_intermediate: int = 0
    dense_layers: int = 0  # leading layers with a dense MLP (DeepSeek first_k_dense_replace)
    mla: dict | None = None


def _first(cfg: dict, *keys, default=None):
    for key in keys:
        if cfg.get(key) is not None:
            return cfg[key]
    return default


def _need(cfg: dict, what: str, *keys) -> int:
    value = _first(cfg, *keys)
    if value is None:
        raise EstimateError(f"config.json has no {what} ({' / '.join(keys)})")
    return int(value)


def model_shape(cfg: dict) -> Shape:
    """Normalise the config.json spellings of the families in data/families.json; a key that
    config.json leaves out takes the model class's default, as transformers would load it."""
    if isinstance(cfg.get("text_config"), dict) and "hidden_size" not in cfg:
        cfg = {**cfg["text_config"], "architectures": cfg.get("architectures")}
    model_type = str(cfg.get("model_type") or "")
    cfg = {**load_data()["config_defaults"].get(model_type, {}), **cfg}
    hidden = _need(cfg, "hidden size", "hidden_size", "n_embd", "d_model")
    layers = _need(cfg, "layer count", "num_hidden_layers", "n_layer", "num_layers")
    heads = _need(cfg, "attention head count", "num_attention_heads", "n_head")
    if model_type == "chatglm":
        kv_heads = int(cfg.get("multi_query_group_num") or heads)
        if not cfg.get("multi_query_attention", True):
            kv_heads = heads
    elif model_type in {"falcon", "RefinedWeb", "RefinedWebModel"}:
        if cfg.get("new_decoder_architecture"):
            kv_heads = int(_first(cfg, "num_kv_heads", "n_head_kv", default=heads))
        else:
            kv_heads = 1 if cfg.get("multi_query", True) else heads
    elif model_type == "gpt_bigcode":
        kv_heads = 1 if cfg.get("multi_query", True) else heads
    else:
        kv_heads = int(_first(cfg, "num_key_value_heads", "n_head_kv", default=heads))
    head_dim = int(_first(cfg, "head_dim", "kv_channels", default=hidden // heads))
    intermediate = int(
        _first(cfg, "intermediate_size", "ffn_hidden_size", "n_inner", default=4 * hidden)
    )
    vocab = _need(cfg, "vocab size", "padded_vocab_size", "vocab_size")
    dtype = str(_first(cfg, "torch_dtype", "dtype", default="float32"))
    rope = cfg.get("rope_scaling") or {}
    factor = rope.get("factor") if isinstance(rope, dict) else None
    shape = Shape(
        model_type=model_type,
        hidden=hidden,
        layers=layers,
        heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate=intermediate,
        vocab=vocab,
        tied=bool(cfg.get("tie_word_embeddings", True)),
        gated_mlp=model_type not in GPT_STYLE,
        checkpoint_dtype=dtype if dtype in DTYPE_BYTES else "float32",
        max_position_embeddings=_first(
            cfg, "max_position_embeddings", "n_positions", "seq_length", "max_sequence_length"
        ),
        rope_scaling_factor=float(factor) if factor else None,
    )
    _family_details(shape, cfg)
    return shape


def _family_details(s: Shape, cfg: dict) -> None:
    mt = s.model_type
    s.qkv_bias = bool(cfg.get("attention_bias") or cfg.get("add_qkv_bias") or cfg.get("bias"))
    s.o_bias = bool(cfg.get("attention_bias") or (mt == "falcon" and cfg.get("bias")))
    s.mlp_bias = bool(cfg.get("mlp_bias") or (mt == "falcon" and cfg.get("bias")))
    if mt in {"qwen2", "qwen2_moe", "qwen"}:
        s.qkv_bias = True
    if mt in {"gpt2", "gpt_bigcode", "phi"} or (mt == "starcoder2" and cfg.get("use_bias", True)):
        s.qkv_bias = s.o_bias = s.mlp_bias = True
    s.norm_bias = mt in GPT_STYLE
    if mt == "gemma2":
        s.norm_vectors_per_layer = 4
    elif mt == "gemma3_text":
        s.norm_vectors_per_layer = 4
        s.qk_norm = True
    elif mt in {"falcon", "RefinedWeb", "RefinedWebModel"}:
        parallel = cfg.get("parallel_attn", True) and not cfg.get("new_decoder_architecture")
        s.norm_vectors_per_layer = 1 if parallel else 2
    elif mt in {"cohere", "phi"}:
        s.norm_vectors_per_layer = 1
    if mt in {"qwen3", "qwen3_moe", "cohere"} and (mt != "cohere" or cfg.get("use_qk_norm")):
        s.qk_norm = True
    if mt in {"gpt2", "gpt_bigcode"}:
        s.learned_positions = int(_first(cfg, "n_positions", "max_position_embeddings") or 0)
    experts = _first(cfg, "num_local_experts", "num_experts", "n_routed_experts", default=0)
    if experts:
        s.experts = int(experts)
        s.moe_intermediate = int(_first(cfg, "moe_intermediate_size", default=s.intermediate))
        shared = cfg.get("shared_expert_intermediate_size")
        if shared is None and cfg.get("n_shared_experts"):
            shared = int(cfg["n_shared_experts"]) * s.moe_intermediate
        s.shared_intermediate = int(shared or 0)
        s.dense_layers = int(cfg.get("first_k_dense_replace") or 0)
    if cfg.get("kv_lora_rank"):
        s.mla = {
            "q_lora_rank": cfg.get("q_lora_rank"),
            "kv_lora_rank": int(cfg["kv_lora_rank"]),
            "qk_nope_head_dim": int(cfg["qk_nope_head_dim"]),
            "qk_rope_head_dim": int(cfg["qk_rope_head_dim"]),
            "v_head_dim": int(cfg["v_head_dim"]),
        }


def _attention_params(s: Shape) -> tuple[int, int]:
    """(linear weights, other params) of one layer's attention."""
    h = s.hidden
    if s.mla:
        m = s.mla
        qk = m["qk_nope_head_dim"] + m["qk_rope_head_dim"]
        if m["q_lora_rank"]:
            q = h * m["q_lora_rank"] + m["q_lora_rank"] * s.heads * qk
            other = m["q_lora_rank"]
        else:
            q = h * s.heads * qk
            other = 0
        kv_a = h * (m["kv_lora_rank"] + m["qk_rope_head_dim"])
        kv_b = m["kv_lora_rank"] * s.heads * (m["qk_nope_head_dim"] + m["v_head_dim"])
        o = s.heads * m["v_head_dim"] * h
        return q + kv_a + kv_b + o, other + m["kv_lora_rank"]
    q_out = s.heads * s.head_dim
    kv_out = s.kv_heads * s.head_dim
    linear = h * (q_out + 2 * kv_out) + q_out * h
    other = (q_out + 2 * kv_out if s.qkv_bias else 0) + (h if s.o_bias else 0)
    if s.qk_norm:
        other += 2 * s.head_dim
    return linear, other


def _mlp_params(s: Shape, inter: int) -> tuple[int, int]:
    mats = 3 if s.gated_mlp else 2
    linear = mats * s.hidden * inter
    bias = ((mats - 1) * inter + s.hidden) if s.mlp_bias else 0
    return linear, bias


def parameter_groups(s: Shape) -> dict[str, int]:
    """Parameters by group: linear_per_layer (quantizable), other_per_layer, embedding, lm_head,
    final_norm, positions, and total. MoE layers count every expert."""
    attn_lin, attn_other = _attention_params(s)
    norms = s.norm_vectors_per_layer * s.hidden * (2 if s.norm_bias else 1)
    dense_lin, dense_bias = _mlp_params(s, s.intermediate)
    if s.experts:
        exp_lin, exp_bias = _mlp_params(s, s.moe_intermediate)
        sh_lin, sh_bias = _mlp_params(s, s.shared_intermediate) if s.shared_intermediate else (0, 0)
        router = s.experts * s.hidden + (s.hidden if s.model_type == "qwen2_moe" else 0)
        moe_lin = s.experts * exp_lin + sh_lin
        moe_other = s.experts * exp_bias + sh_bias + router
        dense_layers = min(s.dense_layers, s.layers)
        linear = dense_layers * (attn_lin + dense_lin) + (s.layers - dense_layers) * (
            attn_lin + moe_lin
        )
        other = dense_layers * (attn_other + norms + dense_bias) + (s.layers - dense_layers) * (
            attn_other + norms + moe_other
        )
    else:
        linear = s.layers * (attn_lin + dense_lin)
        other = s.layers * (attn_other + norms + dense_bias)
    embedding = s.vocab * s.hidden
    lm_head = 0 if s.tied else s.vocab * s.hidden
    final_norm = s.hidden * (2 if s.norm_bias else 1)
    positions = s.learned_positions * s.hidden
    total = linear + other + embedding + lm_head + final_norm + positions
    return {
        "layers_linear": linear,
        "layers_other": other,
        "embedding": embedding,
        "lm_head": lm_head,
        "final_norm": final_norm,
        "positions": positions,
        "total": total,
    }


def read_safetensors(model_dir: str | Path | None) -> dict | None:
    """Exact tensor bytes and parameter count from every *.safetensors header (no tensor data
    is read). None when the dir has no safetensors files."""
    if model_dir is None:
        return None
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    total_bytes = params = 0
    by_dtype: dict[str, int] = {}
    for path in files:
        try:
            header = model_files.read_header(path)
        except model_files.HeaderError as err:
            raise EstimateError(str(err)) from None
        for name, info in header.items():
            if name == "__metadata__":
                continue
            start, end = info["data_offsets"]
            total_bytes += end - start
            params += math.prod(info["shape"])
            by_dtype[info["dtype"]] = by_dtype.get(info["dtype"], 0) + end - start
    return {
        "files": len(files),
        "bytes": total_bytes,
        "parameters": params,
        "bytes_by_dtype": by_dtype,
    }


def resolve_dtype(requested: str, checkpoint_dtype: str) -> str:
    """TensorRT-LLM's rule for --dtype auto: the checkpoint dtype, float32 -> float16."""
    if requested in (None, "", "auto"):
        return "float16" if checkpoint_dtype == "float32" else checkpoint_dtype
    return requested


def _settings(cfg: BuildConfig) -> dict:
    b = cfg.build
    return {
        "tp": cfg.parallel.tp_size,
        "pp": cfg.parallel.pp_size,
        "dtype": cfg.dtype,
        "quant": cfg.quantization.mode,
        "kv_dtype": cfg.quantization.kv_cache_dtype,
        "max_batch_size": b.max_batch_size,
        "max_seq_len": b.max_seq_len,
        "max_num_tokens": b.max_num_tokens,
        "max_beam_width": b.max_beam_width,
        "workers": b.workers,
        "fraction": cfg.runtime.kv_cache_free_gpu_memory_fraction,
    }


def _weights_per_gpu(groups: dict, s: Shape, st: dict, dtype_bytes: int) -> dict:
    tp, pp = st["tp"], st["pp"]
    lin_bytes = QUANT_LINEAR_BYTES.get(st["quant"], dtype_bytes)
    per_layer_lin = groups["layers_linear"] / s.layers * lin_bytes / tp
    if not s.mla and tp > s.kv_heads:  # KV heads are replicated when tp exceeds them
        kv_lin = 2 * s.hidden * s.head_dim  # k and v projections of one KV head
        per_layer_lin += kv_lin * lin_bytes * (math.ceil(s.kv_heads / tp) - s.kv_heads / tp)
    per_layer_other = groups["layers_other"] / s.layers * dtype_bytes  # replicated: upper bound
    layers_on_worst = math.ceil(s.layers / pp)
    layer_bytes = layers_on_worst * (per_layer_lin + per_layer_other)
    embed = (groups["embedding"] + groups["positions"]) * dtype_bytes
    lm_head = s.vocab * s.hidden * dtype_bytes / tp  # TensorRT-LLM keeps an lm_head even when tied
    final = groups["final_norm"] * dtype_bytes
    if pp == 1:
        worst = layer_bytes + embed + lm_head + final
    else:
        worst = layer_bytes + max(embed, lm_head + final)
    total = (
        groups["layers_linear"] * lin_bytes
        + groups["layers_other"] * dtype_bytes * tp
        + (embed + final) * tp
        + lm_head * tp
    )
    return {"per_gpu": int(worst), "all_ranks": int(total), "linear_bytes_per_param": lin_bytes}


def _kv_per_token(s: Shape, st: dict, dtype_bytes: int) -> dict:
    kv_bytes = DTYPE_BYTES[st["kv_dtype"]] if st["kv_dtype"] in ("fp8", "int8") else dtype_bytes
    layers = math.ceil(s.layers / st["pp"])
    if s.mla:
        width = s.mla["kv_lora_rank"] + s.mla["qk_rope_head_dim"]
        per_token = layers * width * kv_bytes
        formula = (
            f"{layers} layers x (kv_lora_rank + qk_rope_head_dim = {width}) x {kv_bytes} B (MLA)"
        )
        return {"bytes": per_token, "formula": formula, "kv_heads_per_gpu": 1}
    heads = max(1, math.ceil(s.kv_heads / st["tp"]))
    per_token = 2 * layers * heads * s.head_dim * kv_bytes
    formula = f"2 x {layers} layers x {heads} kv heads x {s.head_dim} head_dim x {kv_bytes} B"
    return {"bytes": per_token, "formula": formula, "kv_heads_per_gpu": heads}


def _activations(s: Shape, st: dict, dtype_bytes: int) -> dict:
    tp = st["tp"]
    inter = (s.moe_intermediate * 2 + s.shared_intermediate) if s.experts else s.intermediate
    qkv = (s.heads + 2 * s.kv_heads) * s.head_dim
    per_token = 4 * s.hidden + (2 * inter + qkv) / tp
    tokens = st["max_num_tokens"]
    act = int(tokens * per_token * dtype_bytes)
    logits = st["max_batch_size"] * st["max_beam_width"] * math.ceil(s.vocab / tp) * 4
    return {
        "bytes": act + logits + RUNTIME_RESERVE_BYTES,
        "formula": (
            f"max_num_tokens {tokens} x (4 x hidden + (2 x intermediate + qkv) / tp) x "
            f"{dtype_bytes} B + fp32 logits for max_batch_size x beam x vocab/tp + "
            f"{RUNTIME_RESERVE_BYTES // MIB} MiB runtime reserve"
        ),
    }


def gpu_memory_bytes(gpu: dict) -> int:
    if gpu.get("memory_total_mib"):
        return int(gpu["memory_total_mib"]) * MIB
    if gpu.get("memory_gib"):
        return int(float(gpu["memory_gib"]) * GIB)
    raise EstimateError(f"GPU {gpu.get('name', '?')}: memory size unknown")


def _kv_capacity(gpu: dict, weights: dict, act: dict, kv: dict, st: dict) -> dict:
    """The KV cache TensorRT-LLM would size: its fraction of what weights and activations leave,
    of the free memory of a detected GPU (what it actually sees) or the target's total."""
    basis = "free" if gpu.get("memory_free_mib") is not None else "total"
    usable = int(gpu["memory_free_mib"]) * MIB if basis == "free" else gpu_memory_bytes(gpu)
    free = usable - weights["per_gpu"] - act["bytes"]
    tokens = int(max(0, free) * st["fraction"]) // kv["bytes"] if kv["bytes"] else 0
    sequences = tokens // st["max_seq_len"] if st["max_seq_len"] else 0
    return {
        "free_after_weights_and_activations_bytes": free,
        "kv_cache_memory_basis": basis,
        "kv_cache_free_gpu_memory_fraction": st["fraction"],
        "kv_cache_capacity_tokens": tokens,
        "kv_cache_capacity_sequences": sequences,
        "max_seq_len": st["max_seq_len"],
        "max_batch_size": st["max_batch_size"],
        "max_batch_size_reachable": sequences >= st["max_batch_size"],
    }


def estimate(
    cfg: BuildConfig, model_config: dict, gpu: dict, model_dir=None, facts: dict | None = None
) -> dict:
    s = model_shape(model_config)
    st = _settings(cfg)
    groups = parameter_groups(s)
    dtype = resolve_dtype(st["dtype"], s.checkpoint_dtype)
    dtype_bytes = DTYPE_BYTES[dtype]
    headers = read_safetensors(model_dir)
    hf_bytes = headers["bytes"] if headers else groups["total"] * DTYPE_BYTES[s.checkpoint_dtype]
    weights = _weights_per_gpu(groups, s, st, dtype_bytes)
    kv = _kv_per_token(s, st, dtype_bytes)
    act = _activations(s, st, dtype_bytes)
    mem = gpu_memory_bytes(gpu)
    world = st["tp"] * st["pp"]
    workers = max(1, min(st["workers"], world))
    out = {
        "schema_version": SCHEMA_VERSION,
        "parameters": {
            "total": headers["parameters"] if headers else groups["total"],
            "source": "safetensors headers" if headers else "config.json arithmetic",
            "config_arithmetic": groups,
        },
        "checkpoint": {"dtype": s.checkpoint_dtype, "bytes": hf_bytes},
        "build": {
            "dtype": dtype,
            "quantization": st["quant"],
            "tp_size": st["tp"],
            "pp_size": st["pp"],
            "world_size": world,
        },
        "gpu": {"name": gpu.get("name"), "memory_bytes": mem},
        "weights_bytes_per_gpu": weights["per_gpu"],
        "weights_bytes_all_ranks": weights["all_ranks"],
        "kv_cache_bytes_per_token_per_gpu": kv["bytes"],
        "kv_cache_formula": kv["formula"],
        "activation_bytes_per_gpu": act["bytes"],
        "activation_formula": act["formula"],
        **_kv_capacity(gpu, weights, act, kv, st),
        "weights_fit": weights["per_gpu"] + act["bytes"] <= mem,
        "host_ram_bytes_convert": hf_bytes + workers * weights["per_gpu"],
        "host_ram_bytes_build": workers * 2 * weights["per_gpu"],
        "disk_bytes": 2 * weights["all_ranks"],
        "disk_formula": "TensorRT-LLM checkpoint + engines, each about the weights of all ranks",
    }
    if facts:
        out["host_ram_available_bytes"] = (facts.get("memory") or {}).get("available_bytes")
        out["disk_free_bytes"] = (facts.get("disk") or {}).get("free_bytes")
    return out


def tp_ok(s: Shape, tp: int) -> bool:
    """Whether tp_size splits the attention heads (KV heads split or replicated; MLA has none)."""
    if s.heads % tp:
        return False
    if s.mla:
        return True
    return s.kv_heads % tp == 0 or tp % s.kv_heads == 0


def _with(cfg: BuildConfig, section: str, **changes) -> BuildConfig:
    part = getattr(cfg, section).model_copy(update=changes)
    return cfg.model_copy(update={section: part})


def suggestions(cfg: BuildConfig, model_config: dict, gpu: dict, fp8_ok: bool = True) -> list[str]:
    """Settings (config keys) under which weights + activations fit this GPU, cheapest first."""
    s = model_shape(model_config)
    tp0, pp = cfg.parallel.tp_size, cfg.parallel.pp_size
    out = []

    def fits(candidate: BuildConfig) -> bool:
        return estimate(candidate, model_config, gpu)["weights_fit"]

    for tp in (2, 4, 8):
        if tp <= tp0 or not tp_ok(s, tp) or tp * pp > 8:
            continue
        if fits(_with(cfg, "parallel", tp_size=tp)):
            out.append(f"parallel.tp_size: {tp}")
            break
    modes = (["fp8"] if fp8_ok else []) + ["int8_weight_only", "int4_awq", "int4_weight_only"]
    for mode in modes:
        if mode != cfg.quantization.mode and fits(_with(cfg, "quantization", mode=mode)):
            out.append(f"quantization.mode: {mode}")
    return out

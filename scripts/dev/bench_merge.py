"""Helper of bench_merge.sh: synthetic models, one timed run, the PEFT baseline, the table.

Usage:
  bench_merge.py synth --size 1.5b --out DIR     # DIR/base (Llama-shaped, bf16) + DIR/adapter
  bench_merge.py measure --label L --size S --run N -- CMD...   # one JSON line on stdout
  bench_merge.py peft --base DIR --adapter DIR --output DIR [--device cpu|cuda]
  bench_merge.py compare DIR_A DIR_B             # tensor-by-tensor equality, one JSON line
  bench_merge.py table RESULTS.jsonl [--target-ratio 1.5]

Needs only torch, safetensors and (for synth/peft) peft + transformers: it runs with the
plain interpreter of NVIDIA's containers, no venv, pydantic or pytest. The synthetic weights
are random bf16 (no download); the adapter is a valid PEFT LoRA dir (r=16, all linear layers).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "gpu"))

# name -> (hidden, intermediate, layers, heads, kv heads, vocab, shards)
SIZES = {
    "small": (1024, 4096, 8, 16, 4, 8192, 1),
    "0.6b": (2048, 8192, 8, 32, 8, 32000, 1),
    "1.5b": (2048, 8192, 22, 32, 8, 32000, 2),
    "8b": (4096, 14336, 32, 32, 8, 128256, 4),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
POOL_ELEMENTS = 1 << 25  # 64 MiB of random bf16 that every base tensor is cut from


def llama_tensors(size: str) -> list[tuple[str, tuple[int, int] | tuple[int]]]:
    hidden, inter, layers, heads, kv, vocab, _shards = SIZES[size]
    kv_dim = hidden // heads * kv
    out: list = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        out += [
            (p + "input_layernorm.weight", (hidden,)),
            (p + "self_attn.q_proj.weight", (hidden, hidden)),
            (p + "self_attn.k_proj.weight", (kv_dim, hidden)),
            (p + "self_attn.v_proj.weight", (kv_dim, hidden)),
            (p + "self_attn.o_proj.weight", (hidden, hidden)),
            (p + "post_attention_layernorm.weight", (hidden,)),
            (p + "mlp.gate_proj.weight", (inter, hidden)),
            (p + "mlp.up_proj.weight", (inter, hidden)),
            (p + "mlp.down_proj.weight", (hidden, inter)),
        ]
    out += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    return out


def _write_shard(path: Path, tensors, pool: bytearray, rng) -> None:
    from lora_merge.safetensors_io import header_bytes

    entries = [(n, "BF16", s, math.prod(s) * 2) for n, s in tensors]
    with path.open("wb") as f:
        f.write(header_bytes(entries, {"format": "pt"}))
        view = memoryview(pool)
        for _n, _s, _d, nbytes in entries:
            pos = int(rng.integers(0, len(pool) // 2)) * 2
            left = nbytes
            while left:
                n = min(left, len(pool) - pos)
                f.write(view[pos : pos + n])
                left -= n
                pos = 0


def synth(size: str, out: Path) -> None:
    import numpy as np
    import torch

    hidden, inter, layers, heads, kv, vocab, shards = SIZES[size]
    base, adapter = out / "base", out / "adapter"
    base.mkdir(parents=True)
    adapter.mkdir()
    torch.manual_seed(0)
    pool_t = (torch.randn(POOL_ELEMENTS) * 0.02).to(torch.bfloat16)
    pool = bytearray(pool_t.view(torch.uint8).numpy().tobytes())
    rng = np.random.default_rng(0)
    tensors = llama_tensors(size)
    total = sum(math.prod(s) * 2 for _n, s in tensors)
    per_shard = math.ceil(total / shards)
    groups: list[list] = [[]]
    filled = 0
    for t in tensors:
        nbytes = math.prod(t[1]) * 2
        if groups[-1] and filled >= per_shard:
            groups.append([])
            filled = 0
        groups[-1].append(t)
        filled += nbytes
    weight_map = {}
    for i, group in enumerate(groups, 1):
        name = f"model-{i:05d}-of-{len(groups):05d}.safetensors"
        _write_shard(base / name, group, pool, rng)
        weight_map.update({n: name for n, _s in group})
        print(f"bench: wrote {base / name}", file=sys.stderr)
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (base / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "vocab_size": vocab,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "torch_dtype": "bfloat16",
    }
    (base / "config.json").write_text(json.dumps(config, indent=2))
    _synth_adapter(base, adapter, tensors)


def _synth_adapter(base: Path, adapter: Path, tensors) -> None:
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file

    LoraConfig(r=16, lora_alpha=32, target_modules=TARGETS, task_type="CAUSAL_LM").save_pretrained(
        adapter
    )
    cfg_path = adapter / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = str(base.resolve())
    cfg_path.write_text(json.dumps(cfg, indent=2))
    gen = torch.Generator().manual_seed(1)
    weights = {}
    for name, shape in tensors:
        module = name.removesuffix(".weight")
        if module.rsplit(".", 1)[-1] not in TARGETS:
            continue
        out_f, in_f = shape
        key = f"base_model.model.{module}"
        weights[f"{key}.lora_A.weight"] = torch.randn(16, in_f, generator=gen) * 0.01
        weights[f"{key}.lora_B.weight"] = torch.randn(out_f, 16, generator=gen) * 0.01
    save_file(weights, str(adapter / "adapter_model.safetensors"), metadata={"format": "pt"})


def _tree_memory(pid: int) -> tuple[int, int]:
    """(Pss, RssAnon) in bytes summed over pid and its descendants (0 for processes gone).
    Pss splits each shared page among the processes that map it: the sum is what the tree
    holds, shared libraries and the shared output ring counted once."""
    pss = anon = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    anon += int(line.split()[1]) * 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return pss, anon


def measure(label: str, size: str, run: int, cmd: list[str], log: Path | None) -> dict:
    """One timed run; memory as ru_maxrss (the largest process's maximum RSS, file-backed
    pages included) and the polled peaks of the process tree's Pss (its processes together,
    shared pages once: what a container's limit sees) and RssAnon."""
    out = log.open("ab") if log else subprocess.DEVNULL
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=out)
    peak_pss = peak_anon = 0
    while proc.poll() is None:
        pss, anon = _tree_memory(proc.pid)
        peak_pss, peak_anon = max(peak_pss, pss), max(peak_anon, anon)
        time.sleep(0.02)
    os.sync()
    wall = time.perf_counter() - start
    ru = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "schema_version": 2,
        "label": label,
        "size": size,
        "run": run,
        "rc": proc.returncode,
        "wall_s": round(wall, 3),
        "max_rss_mib": round(ru / 2**20, 1),
        "peak_tree_pss_mib": round(peak_pss / 2**20, 1),
        "peak_rss_anon_mib": round(peak_anon / 2**20, 1),
    }


def peft_merge(base: Path, adapter: Path, output: Path, device: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    kwargs = {"device_map": "cuda"} if device == "cuda" else {}
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.bfloat16, **kwargs)
    model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    model.save_pretrained(output)


def compare(a: Path, b: Path) -> dict:
    import torch
    from safetensors import safe_open

    def index(d: Path) -> dict[str, Path]:
        out = {}
        for f in sorted(d.glob("*.safetensors")):
            with safe_open(f, "pt") as h:
                out.update({k: f for k in h.keys()})  # noqa: SIM118 - safe_open has no __iter__
        return out

    ia, ib = index(a), index(b)
    same = differ = 0
    worst = 0.0
    for name in sorted(set(ia) & set(ib)):
        with safe_open(ia[name], "pt") as ha, safe_open(ib[name], "pt") as hb:
            x, y = ha.get_tensor(name), hb.get_tensor(name)
        if torch.equal(x, y):
            same += 1
        else:
            differ += 1
            worst = max(worst, float((x.float() - y.float()).abs().max()))
    return {
        "schema_version": 1,
        "identical": same,
        "different": differ,
        "max_abs_diff": worst,
        "only_in_a": sorted(set(ia) - set(ib)),
        "only_in_b": sorted(set(ib) - set(ia)),
    }


def model_bytes(size: str) -> int:
    return sum(math.prod(shape) * 2 for _name, shape in llama_tensors(size)) if size in SIZES else 0


def table(path: Path, target_ratio: float = 1.5) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["size"], r["label"]), []).append(r)
    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in groups.items()}
    lines = [
        f"{'size':<6} {'method':<16} {'runs':>4} {'median s':>9} {'x copy':>7} "
        f"{'max RSS MiB':>12} {'tree PSS MiB':>13}",
    ]
    for (size, label), runs in groups.items():
        copy = med.get((size, "copy"))
        ratio = f"{med[(size, label)] / copy:7.2f}" if copy else f"{'-':>7}"
        ok = all(r["rc"] == 0 for r in runs)
        lines.append(
            f"{size:<6} {label:<16} {len(runs):>4} {med[(size, label)]:>9.2f} {ratio} "
            f"{max(r['max_rss_mib'] for r in runs):>12.0f} "
            f"{max(r['peak_tree_pss_mib'] for r in runs):>13.0f}" + ("" if ok else "  FAILED")
        )
    return "\n".join([*lines, "", *targets(groups, med, target_ratio)])


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def targets(groups: dict, med: dict, target_ratio: float) -> list[str]:
    """The targets of issue 13, each with ok or MISSED."""
    lines = []
    for size in dict.fromkeys(s for s, _l in groups):
        copy, ours = med.get((size, "copy")), med.get((size, "merge_lora"))
        if not (copy and ours) or (size, "peft") not in med:
            continue  # the speed targets are for the compared size
        for label in ("merge_lora", "merge_lora_cuda"):
            if (size, label) in med:
                ratio = med[(size, label)] / copy
                ok = _verdict(ratio <= target_ratio)
                lines.append(f"{size}: {label}/copy = {ratio:.2f} (target <= {target_ratio}): {ok}")
        for peft_label, floor in (("peft", 3.0), ("peft_cuda", None)):
            if (size, peft_label) in med:
                speedup = med[(size, peft_label)] / ours
                verdict = (
                    "(no target)" if floor is None else f"(target >= 3): {_verdict(speedup >= 3)}"
                )
                lines.append(f"{size}: {peft_label}/merge_lora = {speedup:.2f} {verdict}")
    for size in dict.fromkeys(s for s, _l in groups):
        small = 0 < model_bytes(size) < 2**30
        if small and (size, "merge_lora") in med:
            wall = med[(size, "merge_lora")]
            lines.append(
                f"{size} (< 1 GiB): merge_lora {wall:.2f} s (target < 2 s): {_verdict(wall < 2)}"
            )
    memory = {  # the larger of the largest process's RSS and the tree's Pss
        s: max(max(r["max_rss_mib"], r["peak_tree_pss_mib"]) for r in v)
        for (s, label), v in groups.items()
        if label.startswith("merge_lora")
    }
    if memory:
        each = ", ".join(f"{s} {v:.0f} MiB" for s, v in memory.items())
        ok = _verdict(max(memory.values()) <= 512)
        lines.append(f"merge_lora peak memory by size: {each} (target <= 512 MiB, flat): {ok}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("synth")
    p.add_argument("--size", choices=sorted(SIZES), required=True)
    p.add_argument("--out", type=Path, required=True)
    p = sub.add_parser("measure")
    p.add_argument("--label", required=True)
    p.add_argument("--size", required=True)
    p.add_argument("--run", type=int, default=1)
    p.add_argument("--log", type=Path)
    p.add_argument("argv", nargs=argparse.REMAINDER)
    p = sub.add_parser("peft")
    p.add_argument("--base", type=Path, required=True)
    p.add_argument("--adapter", type=Path, required=True)
    p.add_argument("--output", type=Path, required=True)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p = sub.add_parser("compare")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p = sub.add_parser("table")
    p.add_argument("results", type=Path)
    p.add_argument("--target-ratio", type=float, default=1.5)
    args = parser.parse_args(argv)

    if args.cmd == "synth":
        if args.out.exists() and any(args.out.iterdir()):
            print(f"bench_merge.py: {args.out} is not empty", file=sys.stderr)
            return 2
        synth(args.size, args.out)
    elif args.cmd == "measure":
        cmd = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not cmd:
            print("bench_merge.py measure: no command after --", file=sys.stderr)
            return 2
        print(json.dumps(measure(args.label, args.size, args.run, cmd, args.log)))
    elif args.cmd == "peft":
        peft_merge(args.base, args.adapter, args.output, args.device)
    elif args.cmd == "compare":
        print(json.dumps(compare(args.a, args.b)))
    else:
        print(table(args.results, args.target_ratio))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

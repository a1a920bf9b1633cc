"""Every adapter of the `lora:` section checked against the base, before anything runs.

Library for lora_plan.py: adapter_checks(section, model_dir, version, backend) -> (checks, infos)
Each check is the one check record (errors.check) keyed to its adapter, `lora.adapters[<i>]`,
so that prepare.py adds its FILE:LINE; the message starts with the adapter's name. Per adapter:
  lora_adapter   a PEFT adapter dir with adapter_model.safetensors (read by lora_merge.adapter)
  lora_serve     servable unmerged: plain LoRA on linear layers. DoRA, LoRA bias, embedding or
                 lm_head LoRA, modules_to_save / trained biases, trainable tokens, alpha_pattern
                 (TensorRT-LLM scales every module by the one lora_alpha), other tuners: the fix
                 says to merge instead
  lora_rank      every module's rank (tensor shapes, so rank_pattern counts) <= lora.max_rank
  lora_modules   every adapted module maps to a TensorRT-LLM LoRA module of this version and
                 route (lora_targets.py) and is in lora.target_modules when that is a list
  lora_base      trained on this base: each LoRA pair against the base's weight shapes (the
                 safetensors headers, model_files.read_header), then the adapter's recorded base
                 (base_model_name_or_path) when it is on this machine: another architecture or
                 size fails, another dir of the same shape warns
An explicit lora.target_modules list is checked too (lora_targets, key lora.target_modules).
infos: one AdapterInfo per adapter that could be read (its ranks, modules and fingerprint).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lora_package
import lora_targets
import model_files
from errors import Check, check
from lora_config import LoraSection

GPU_DIR = Path(__file__).resolve().parents[2] / "gpu"
if str(GPU_DIR) not in sys.path:
    sys.path.insert(0, str(GPU_DIR))
from lora_merge import adapter as merge_adapter  # noqa: E402
from lora_merge.errors import MergeError  # noqa: E402

MERGE_FIX = "merge it instead: make merge ADAPTER=<dir> NAME=<name>, then build the merged model"
SAME_BASE = (
    "model_type",
    "architectures",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
)
NOT_PLAIN = {  # adapter_config.json keys whose non-empty value makes it more than plain LoRA
    "use_dora": "DoRA (magnitude vectors)",
    "lora_bias": "LoRA bias (lora_B.bias)",
    "modules_to_save": "modules_to_save (full weight copies)",
    "trainable_token_indices": "trainable tokens (embedding rows)",
    "target_parameters": "LoRA on nn.Parameter targets (target_parameters)",
}
TENSOR_KINDS = {  # lora_merge.adapter's kinds that plain LoRA does not have
    "M": "DoRA (magnitude vectors)",
    "B_bias": "LoRA bias (lora_B.bias)",
    "EA": "embedding LoRA (lora_embedding_A/B)",
    "T": "trainable tokens (embedding rows)",
}


@dataclass
class AdapterInfo:
    index: int
    name: str
    path: Path
    config: dict
    adapter: merge_adapter.Adapter
    ranks: dict[str, int] = field(default_factory=dict)  # module path -> rank (lora_A rows)
    fingerprint: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"lora.adapters[{self.index}]"

    def record(self, check_id: str, status: str, message: str, fix: str = "") -> Check:
        return check(check_id, status, f"{self.name}: {message}", fix, key=self.key)


def read_adapter(index: int, name: str, path_text: str) -> tuple[AdapterInfo | None, list[Check]]:
    """One adapter dir: (AdapterInfo, []) or (None, [the failed check])."""
    key, path = f"lora.adapters[{index}]", Path(path_text).expanduser().absolute()
    try:
        config = merge_adapter.read_config(path)
        peft_type = config["peft_type"].upper()
        if peft_type != "LORA":
            why = merge_adapter.NOT_MERGEABLE.get(peft_type, f"a {peft_type} adapter")
            fix = MERGE_FIX if peft_type in merge_adapter.DELEGATED_TYPES else "retrain it as LoRA"
            msg = f"{name}: {why}: TensorRT-LLM serves plain LoRA adapters only"
            return None, [check("lora_serve", "fail", msg, fix, key=key)]
        adapter = merge_adapter.load(path)
    except MergeError as err:
        reason = str(err).replace(f"{path}: ", "")
        if err.code in ("not_mergeable", "base_rewriting_init"):  # neither served nor merged
            msg = f"{name}: cannot be served unmerged either: {reason}"
            return None, [check("lora_serve", "fail", msg, "retrain it as plain LoRA", key=key)]
        reason = str(err).replace("--adapter ", "")
        fix = "a PEFT adapter dir (adapter_config.json, adapter_model.safetensors)"
        return None, [check("lora_adapter", "fail", f"{name}: {reason}", fix, key=key)]
    ranks = {
        m.name: adapter.shape(m.parts["A"])[0] for m in adapter.modules.values() if "A" in m.parts
    }
    info = AdapterInfo(index, name, path, config, adapter, ranks)
    info.fingerprint = lora_package.fingerprint(
        path, known={"adapter_model.safetensors": adapter.digest}
    )
    return info, []


def _not_plain(info: AdapterInfo) -> list[str]:
    """What makes the adapter more than plain LoRA on linear layers, from config and tensors."""
    cfg = info.config
    found = [what for key, what in NOT_PLAIN.items() if cfg.get(key)]
    kinds = {kind for mod in info.adapter.modules.values() for kind in mod.parts}
    found += [what for kind, what in TENSOR_KINDS.items() if kind in kinds and what not in found]
    full = sorted(
        f"{mod.name}.{param}"
        for mod in info.adapter.modules.values()
        for param, _key, origin in mod.full
        if origin != "original"
    )
    if full and NOT_PLAIN["modules_to_save"] not in found:
        found.append(f"full weights for {', '.join(full[:3])} (modules_to_save or trained biases)")
    heads = sorted(m for m in info.ranks if m.rsplit(".", 1)[-1] in ("lm_head", "embed_out"))
    if heads:
        found.append(f"LoRA on the output head ({heads[0]})")
    if set((cfg.get("alpha_pattern") or {}).values()) - {cfg.get("lora_alpha", 8)}:
        found.append(
            "alpha_pattern (TensorRT-LLM scales every module by the one lora_alpha: the "
            "patterned modules would be served at the wrong scale)"
        )
    return found


def serve_checks(info: AdapterInfo) -> list[Check]:
    found = _not_plain(info)
    if found:
        return [
            info.record(
                "lora_serve", "fail", f"cannot be served unmerged: {'; '.join(found)}", MERGE_FIX
            )
        ]
    return [info.record("lora_serve", "pass", "plain LoRA on linear layers")]


def rank_checks(info: AdapterInfo, max_rank: int) -> list[Check]:
    above = {m: r for m, r in info.ranks.items() if r > max_rank}
    if not above:
        return [
            info.record(
                "lora_rank",
                "pass",
                f"rank {max(info.ranks.values(), default=0)} <= lora.max_rank {max_rank}",
            )
        ]
    worst = max(above, key=lambda m: above[m])
    via = " (rank_pattern)" if info.config.get("rank_pattern") else ""
    msg = (
        f"rank {above[worst]}{via} of {worst} is above lora.max_rank {max_rank} "
        f"({len(above)} module(s))"
    )
    return [info.record("lora_rank", "fail", msg, f"lora.max_rank: {above[worst]}")]


def module_checks(
    info: AdapterInfo, section: LoraSection, version: str, backend: str
) -> list[Check]:
    supported = lora_targets.supported(version, backend)
    known, _ = lora_targets.hf_map(version)
    names = {m: lora_targets.hf_name(m, known) for m in info.ranks}
    unmapped = sorted(
        {names[m] for m in info.ranks if not lora_targets.trtllm_module(m, supported)}
    )
    out = []
    if unmapped:
        route = "trtllm-build --lora_target_modules" if backend == "engine" else "LLM-API LoRA"
        msg = (
            f"{', '.join(unmapped)}: not mapped by the runtime LoRA of TensorRT-LLM {version} "
            f"({route}), which maps {', '.join(sorted(supported))}"
        )
        out.append(info.record("lora_modules", "fail", msg, MERGE_FIX))
    if isinstance(section.target_modules, list):
        outside = sorted(set(names.values()) - set(section.target_modules) - set(unmapped))
        if outside:
            msg = f"adapts {', '.join(outside)}, which lora.target_modules leaves out"
            out.append(
                info.record(
                    "lora_modules",
                    "fail",
                    msg,
                    "add them to lora.target_modules, or set it to auto",
                )
            )
    if not out:
        out.append(
            info.record("lora_modules", "pass", f"adapts {', '.join(sorted(set(names.values())))}")
        )
    return out


def target_list_checks(section: LoraSection, version: str, backend: str) -> list[Check]:
    """An explicit lora.target_modules list: every entry must map in this version and route."""
    if not isinstance(section.target_modules, list):
        return []
    supported = lora_targets.supported(version, backend)
    bad = [m for m in section.target_modules if not lora_targets.trtllm_module(m, supported)]
    if not bad:
        return []
    msg = (
        f"{', '.join(bad)}: not mapped by the runtime LoRA of TensorRT-LLM {version}, which "
        f"maps {', '.join(sorted(supported))}"
    )
    fix = "remove them, or set lora.target_modules: auto"
    return [check("lora_modules", "fail", msg, fix, key="lora.target_modules")]


def base_shapes(model_dir: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape over every *.safetensors header of the base (no data is read)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for path in sorted(model_dir.glob("*.safetensors")):
        header = model_files.read_header(path)
        shapes.update({k: tuple(v["shape"]) for k, v in header.items() if k != "__metadata__"})
    return shapes


def shape_problems(info: AdapterInfo, shapes: dict) -> list[str]:
    """Each LoRA pair against the base weight it adapts: B @ A must have that weight's shape."""
    flip = bool(info.config.get("fan_in_fan_out"))
    problems = []
    for mod in info.adapter.modules.values():
        if "A" not in mod.parts or "B" not in mod.parts:
            continue
        r_in, out_r = info.adapter.shape(mod.parts["A"]), info.adapter.shape(mod.parts["B"])
        delta = (out_r[0], r_in[1]) if not flip else (r_in[1], out_r[0])
        base = shapes.get(f"{mod.name}.weight")
        if base is None:
            problems.append(f"{mod.name}.weight is not in the base")
        elif tuple(base[:2]) != delta:
            problems.append(f"{mod.name}: LoRA delta {list(delta)}, base weight {list(base)}")
    return problems


def base_checks(info: AdapterInfo, shapes: dict, model_dir: Path, model_cfg: dict) -> list[Check]:
    problems = shape_problems(info, shapes)
    if problems:
        more = f" (and {len(problems) - 2} more)" if len(problems) > 2 else ""
        msg = f"not trained on this base: {'; '.join(problems[:2])}{more}"
        fix = "give the base it was trained on as the model dir (NAME / --model-dir)"
        return [info.record("lora_base", "fail", msg, fix)]
    return [recorded_base_check(info, model_dir, model_cfg)]


def _same_base_keys(config: dict) -> dict:
    src = config.get("text_config") if "hidden_size" not in config else config
    src = src if isinstance(src, dict) else config
    out = {k: src.get(k, config.get(k)) for k in SAME_BASE}
    out["architectures"] = (out["architectures"] or [None])[0]
    return {k: v for k, v in out.items() if v is not None}


def recorded_base_check(info: AdapterInfo, model_dir: Path, model_cfg: dict) -> Check:
    """The base the adapter names (base_model_name_or_path), when that dir is on this machine."""
    shapes_ok = f"its {len(info.ranks)} LoRA modules fit the base's weights"
    recorded = info.config.get("base_model_name_or_path")
    path = Path(str(recorded)).expanduser() if recorded else None
    if path is None or not (path / "config.json").is_file():
        return info.record(
            "lora_base", "pass", f"{shapes_ok} (names base {recorded!r}, not on this machine)"
        )
    if path.resolve() == model_dir.resolve():
        return info.record("lora_base", "pass", f"{shapes_ok}; trained on this model dir")
    try:
        theirs = _same_base_keys(json.loads((path / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return info.record(
            "lora_base", "pass", f"{shapes_ok} (its recorded base {path} is unreadable)"
        )
    ours = _same_base_keys(model_cfg)
    diff = [f"{k} {theirs[k]} vs {ours[k]}" for k in theirs if k in ours and theirs[k] != ours[k]]
    if diff:
        msg = f"trained on another base, {path} ({'; '.join(diff)} in the model dir)"
        return info.record(
            "lora_base",
            "fail",
            msg,
            f"build it over {path}, or use adapters trained on {model_dir}",
        )
    msg = (
        f"{shapes_ok}, but it was trained on {path}, another dir of the same architecture and sizes"
    )
    return info.record(
        "lora_base", "warn", msg, f"serve it over {path} unless the two hold the same weights"
    )


def adapter_checks(
    section: LoraSection, model_dir: Path | str, version: str, backend: str
) -> tuple[list[Check], list[AdapterInfo]]:
    """Every check of the section, every adapter: nothing stops at the first problem."""
    model_dir = Path(model_dir)
    checks: list[Check] = []
    try:
        shapes = base_shapes(model_dir)
        model_cfg = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # HeaderError is a ValueError
        checks.append(check("lora_base", "fail", f"the base cannot be read: {exc}", "", key="lora"))
        shapes, model_cfg = None, {}
    infos = []
    for i, entry in enumerate(section.adapters):
        info, failed = read_adapter(i, entry.name, entry.path)
        checks += failed
        if info is None:
            continue
        infos.append(info)
        checks += serve_checks(info) + rank_checks(info, section.max_rank)
        checks += module_checks(info, section, version, backend)
        if shapes is not None:
            checks += base_checks(info, shapes, model_dir, model_cfg)
    return checks + target_list_checks(section, version, backend), infos


def resolve_targets(
    section: LoraSection, infos: list[AdapterInfo], version: str, backend: str
) -> dict:
    """The modules the artifact serves: {"hf": [...], "trtllm": [...]}; auto: the union."""
    supported = lora_targets.supported(version, backend)
    if isinstance(section.target_modules, list):
        hf = list(section.target_modules)
    else:
        hf = sorted({lora_targets.hf_name(m, supported) for i in infos for m in i.ranks})
    trt = {lora_targets.trtllm_module(m, supported) for m in hf}
    return {"hf": hf, "trtllm": sorted(t for t in trt if t)}

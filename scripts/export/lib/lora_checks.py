#!/usr/bin/env python3
"""Check every adapter of the `lora:` section against the base before anything runs (issue 16).

Usage:
  lora_checks.py --config FILE [--profile P] --model-dir DIR [--trtllm-version V] [--json]

Each problem is one stderr line `FILE:LINE: lora.adapters[i] (name): reason`; any failed check
exits 2 (warnings alone exit 0). --json prints {"schema_version", "ok", "checks"} on stdout.
Relative adapter paths are from the current directory. V defaults to target.trtllm_version.

What is checked, per adapter (a check record {"id", "status", "message", "fix", "key",
"adapter"} each, the shape of preflight.check):
  lora_adapter   a PEFT adapter dir with adapter_model.safetensors (lora_merge.adapter reads it)
  lora_serve     servable unmerged: plain LoRA only. DoRA, LoRA bias, embedding or lm_head LoRA,
                 modules_to_save / trained biases, trainable tokens, alpha_pattern (TensorRT-LLM
                 scales every module by the one lora_alpha), other tuners: merge instead
  lora_rank      every module's rank (tensor shapes, so rank_pattern counts) <= lora.max_rank
  lora_modules   every adapted module maps to a TensorRT-LLM LoRA module of this version and
                 route (lora_targets.py) and is in lora.target_modules when that is a list
  lora_base      trained on this base: each LoRA pair's shape against the base's safetensors
                 headers (reliable); the adapter's recorded base config against the model dir's
                 when that base is on this machine; base_model_name_or_path only as a hint
Once per section: lora_route (the route has LoRA in this version's records).

Library: adapter_checks(lora, model_dir, version, backend) -> list[check];
inspect_adapter(name, path) -> (AdapterInfo | None, list[check]); resolve_targets(...).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import lora_targets
from preflight import check

GPU_DIR = Path(__file__).resolve().parents[2] / "gpu"
if str(GPU_DIR) not in sys.path:
    sys.path.insert(0, str(GPU_DIR))
from lora_merge import adapter as merge_adapter  # noqa: E402
from lora_merge import base as merge_base  # noqa: E402
from lora_merge import plan as merge_plan  # noqa: E402
from lora_merge.errors import MergeError  # noqa: E402

SCHEMA_VERSION = 1
MERGE_FIX = "merge it instead: scripts/gpu/merge_lora.py (make merge), then build the merged model"
FINGERPRINT = (
    "model_type",
    "architectures",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "intermediate_size",
    "vocab_size",
)
# adapter_config.json keys whose non-empty value makes the adapter more than plain LoRA.
NOT_PLAIN = {
    "use_dora": "DoRA (magnitude vectors)",
    "lora_bias": "LoRA bias (lora_B.bias)",
    "modules_to_save": "modules_to_save (full weight copies)",
    "trainable_token_indices": "trainable tokens (embedding rows)",
    "target_parameters": "LoRA on nn.Parameter targets (target_parameters)",
    "layer_replication": "layer replication",
    "use_qalora": "QA-LoRA",
    "use_bdlora": "BD-LoRA",
    "alora_invocation_tokens": "aLoRA (active after invocation tokens)",
    "velora_config": "VeLoRA",
    "monteclora_config": "MonteCLoRA",
    "arrow_config": "Arrow routing",
    "kasa_config": "KaSA",
}


@dataclass
class AdapterInfo:
    name: str
    path: Path
    config: dict
    adapter: object  # lora_merge.adapter.Adapter
    ranks: dict[str, int] = field(default_factory=dict)  # LoRA module path -> rank (A rows)

    @property
    def digest(self) -> str:
        return self.adapter.digest

    @property
    def max_rank(self) -> int:
        return max(self.ranks.values(), default=0)


def _record(check_id: str, status: str, key: str, name: str, message: str, fix: str = "") -> dict:
    return dict(check(check_id, status, f"{key} ({name}): {message}", fix), key=key, adapter=name)


def inspect_adapter(name: str, path: str | Path, key: str = "lora") -> tuple:
    """Read one adapter dir: (AdapterInfo, []) or (None, [failed check])."""
    path = Path(path)
    try:
        config = merge_adapter.read_config(path)
        peft_type = config["peft_type"].upper()
        if peft_type != "LORA":
            why = merge_adapter.NOT_MERGEABLE.get(peft_type, f"a {peft_type} adapter")
            fix = MERGE_FIX if peft_type in merge_adapter.DELEGATED_TYPES else "retrain as LoRA"
            msg = f"{why}: TensorRT-LLM serves plain LoRA adapters only"
            return None, [_record("lora_serve", "fail", key, name, msg, fix)]
        adapter = merge_adapter.load(path)
    except MergeError as err:
        if err.code in ("not_mergeable", "base_rewriting_init"):  # neither served nor merged
            msg = f"cannot be served unmerged either: {str(err).replace(f'{path}: ', '')}"
            return None, [_record("lora_serve", "fail", key, name, msg, "")]
        return None, [_record("lora_adapter", "fail", key, name, str(err), "")]
    ranks = {
        mod.name: adapter.shape(mod.parts["A"])[0]
        for mod in adapter.modules.values()
        if "A" in mod.parts
    }
    return AdapterInfo(name, path, config, adapter, ranks), []


def _not_plain(info: AdapterInfo) -> list[str]:
    """What makes the adapter more than plain LoRA on linear layers, from config and tensors."""
    cfg, found = info.config, []
    for key, what in NOT_PLAIN.items():
        if cfg.get(key):
            found.append(what)
    kinds = {kind for mod in info.adapter.modules.values() for kind in mod.parts}
    full = sorted(
        f"{mod.name}.{param}"
        for mod in info.adapter.modules.values()
        for param, _key, origin in mod.full
        if origin != "original"
    )
    for kind, what in (("M", "DoRA (magnitude vectors)"), ("B_bias", "LoRA bias (lora_B.bias)")):
        if kind in kinds and what not in found:
            found.append(what)
    if {"EA", "EB"} & kinds:
        found.append("embedding LoRA (lora_embedding_A/B)")
    if "T" in kinds and NOT_PLAIN["trainable_token_indices"] not in found:
        found.append(NOT_PLAIN["trainable_token_indices"])
    if full and NOT_PLAIN["modules_to_save"] not in found:
        found.append(f"full weights for {', '.join(full[:3])} (modules_to_save or trained biases)")
    heads = sorted(m for m in info.ranks if m.rsplit(".", 1)[-1] in ("lm_head", "embed_out"))
    if heads:
        found.append(f"LoRA on the output head ({heads[0]})")
    alphas = set((cfg.get("alpha_pattern") or {}).values()) - {cfg.get("lora_alpha", 8)}
    if alphas:
        found.append(
            "alpha_pattern (TensorRT-LLM scales every module by the one lora_alpha, so the "
            "patterned modules would be served with the wrong scale)"
        )
    return found


def serve_checks(info: AdapterInfo, key: str, version: str) -> list[dict]:
    found = _not_plain(info)
    if found:
        msg = f"cannot be served unmerged: {'; '.join(found)}"
        return [_record("lora_serve", "fail", key, info.name, msg, MERGE_FIX)]
    out = [_record("lora_serve", "pass", key, info.name, "plain LoRA on linear layers")]
    if info.config.get("use_rslora") and lora_targets._line(version) < (1, 0):
        out.append(
            _record(
                "lora_serve",
                "warn",
                key,
                info.name,
                f"use_rslora: not verified that TensorRT-LLM {version} scales by "
                "lora_alpha/sqrt(r) (the 1.x loader does)",
                "compare a few outputs of the served adapter with PeftModel, or merge it",
            )
        )
    return out


def rank_checks(info: AdapterInfo, key: str, max_rank: int) -> list[dict]:
    above = {m: r for m, r in info.ranks.items() if r > max_rank}
    if not above:
        msg = f"rank {info.max_rank} <= lora.max_rank {max_rank}"
        return [_record("lora_rank", "pass", key, info.name, msg)]
    worst = max(above, key=above.get)
    via = " (rank_pattern)" if info.config.get("rank_pattern") else ""
    msg = (
        f"rank {above[worst]}{via} of {worst} is above lora.max_rank {max_rank} "
        f"({len(above)} module(s))"
    )
    return [_record("lora_rank", "fail", key, info.name, msg, f"lora.max_rank: {above[worst]}")]


def module_checks(info: AdapterInfo, key: str, version: str, backend: str, targets) -> list:
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
            f"{', '.join(unmapped)}: not mapped by TensorRT-LLM {version} runtime LoRA "
            f"({route}), which maps {', '.join(sorted(supported))}"
        )
        out.append(_record("lora_modules", "fail", key, info.name, msg, MERGE_FIX))
    if isinstance(targets, list):
        outside = sorted(set(names.values()) - set(targets) - set(unmapped))
        if outside:
            msg = f"adapts {', '.join(outside)}, which lora.target_modules leaves out"
            fix = "add them to lora.target_modules, or set it to auto"
            out.append(_record("lora_modules", "fail", key, info.name, msg, fix))
    if not out:
        mods = ", ".join(sorted(set(names.values())))
        out.append(_record("lora_modules", "pass", key, info.name, f"adapts {mods}"))
    return out


def target_list_checks(targets, version: str, backend: str) -> list[dict]:
    """An explicit lora.target_modules list: every entry must map in this version and route."""
    if not isinstance(targets, list):
        return []
    supported = lora_targets.supported(version, backend)
    bad = [m for m in targets if not lora_targets.trtllm_module(m, supported)]
    if not bad:
        return []
    msg = (
        f"lora.target_modules: {', '.join(bad)}: not mapped by TensorRT-LLM {version} runtime "
        f"LoRA, which maps {', '.join(sorted(supported))}"
    )
    rec = check("lora_targets", "fail", msg, "remove them, or set lora.target_modules: auto")
    return [dict(rec, key="lora.target_modules", adapter=None)]


def _fingerprint(config: dict) -> dict:
    src = config
    if "hidden_size" not in config and isinstance(config.get("text_config"), dict):
        src = config["text_config"]
    out = {k: src.get(k, config.get(k)) for k in FINGERPRINT}
    out["architectures"] = (out["architectures"] or [None])[0]
    return {k: v for k, v in out.items() if v is not None}


def _merged_from(model_dir: Path, recorded: Path) -> list[str] | None:
    """The adapters merged into model_dir when its merge_info says its base is `recorded`."""
    info_path = model_dir / "merge_info.json"
    try:
        info = json.loads(info_path.read_text())
        same = Path(info["base"]["path"]).resolve() == recorded.resolve()
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return [Path(a.get("path", "?")).name for a in info.get("adapters", [])] if same else None


def recorded_base_checks(info: AdapterInfo, key: str, model_dir: Path, model_cfg: dict) -> list:
    """base_model_name_or_path, as a hint: compared only when that base is on this machine."""
    recorded = info.config.get("base_model_name_or_path")
    path = Path(str(recorded)).expanduser() if recorded else None
    if path is None or not (path / "config.json").is_file():
        msg = f"names base {recorded!r}, not on this machine: checked by tensor shapes only"
        return [_record("lora_base_config", "skip", key, info.name, msg)]
    if path.resolve() == model_dir.resolve():
        return [_record("lora_base_config", "pass", key, info.name, "trained on this model dir")]
    theirs = _fingerprint(merge_base.read_config(path))
    ours = _fingerprint(model_cfg)
    diff = [f"{k} {theirs[k]} vs {ours[k]}" for k in theirs if k in ours and theirs[k] != ours[k]]
    if diff:
        msg = f"trained on {path} ({'; '.join(diff)} in the model dir): another base"
        fix = f"package it onto {path}, or use adapters trained on {model_dir}"
        return [_record("lora_base_config", "fail", key, info.name, msg, fix)]
    merged = _merged_from(model_dir, path)
    if merged:
        msg = (
            f"trained on {path}, but the model dir is that base with {', '.join(merged)} merged "
            "in: its deltas were learnt on other weights"
        )
        fix = f"package it onto {path}, or retrain it on {model_dir}"
        return [_record("lora_base_config", "warn", key, info.name, msg, fix)]
    msg = f"recorded base {path} has the model dir's architecture and sizes"
    return [_record("lora_base_config", "pass", key, info.name, msg)]


def base_checks(info: AdapterInfo, key: str, base, model_dir: Path) -> list[dict]:
    """Each LoRA pair against the base's tensor headers (names and shapes), then the hint."""
    out = []
    try:
        merge_plan.build(base, [info.adapter], None)
        msg = f"{len(info.ranks)} LoRA modules match the base's tensors"
        out.append(_record("lora_base", "pass", key, info.name, msg))
    except MergeError as err:
        msg = f"not trained on this base: {str(err).replace(str(info.path) + ': ', '')}"
        fix = "use the base it was trained on as the model dir (NAME / --model-dir)"
        out.append(_record("lora_base", "fail", key, info.name, msg, fix))
    return out + recorded_base_checks(info, key, model_dir, base.config)


def load_base(model_dir: str | Path) -> tuple:
    """The base's config and tensor index (headers only): (base, []) or (None, [failed check])."""
    try:
        return merge_base.load(Path(model_dir)), []
    except MergeError as err:
        rec = check("lora_base", "fail", f"model dir: {err}", "give the 16-bit base as NAME")
        return None, [dict(rec, key="lora", adapter=None)]


def route_checks(version: str, backend: str) -> list[dict]:
    """The route has runtime LoRA in this version's records (trtllm-build flags, lora_config)."""
    if backend == "engine":
        if lora_targets.build_choices(version):
            return [check("lora_route", "pass", f"trtllm-build {version}: LoRA plugin flags")]
        msg = f"no recorded trtllm-build with LoRA flags at or below TensorRT-LLM {version}"
        return [check("lora_route", "fail", msg, "target.trtllm_version 0.12.0 or newer")]
    import llm_api_options

    try:
        record = llm_api_options.load_record(version)
    except llm_api_options.OptionsError as err:
        return [check("lora_route", "fail", str(err), "")]
    if "lora_config" in record["fields"] and "lora_config" in record.get("nested", {}):
        line = record["record_line"]
        return [check("lora_route", "pass", f"LLM API {line}: lora_config (llm_api_options.yaml)")]
    partial = "" if record.get("complete", True) else " (that record is partial)"
    msg = (
        f"the LLM-API record {record['record_file']} lists no lora_config{partial}: runtime LoRA "
        f"on the PyTorch backend is planned for recorded lines only (1.2, 1.4)"
    )
    return [check("lora_route", "fail", msg, 'target.trtllm_version "1.2.0" or newer')]


def _as_dict(lora) -> dict:
    return lora.model_dump(mode="json") if hasattr(lora, "model_dump") else dict(lora)


def adapter_checks(lora, model_dir: str | Path, version: str, backend: str) -> list[dict]:
    """Every check of the section, every adapter (the list the plan adds to its own)."""
    lora = _as_dict(lora)
    model_dir = Path(model_dir)
    out = route_checks(version, backend)
    base, failed = load_base(model_dir)
    out += failed
    for i, entry in enumerate(lora["adapters"]):
        key = f"lora.adapters[{i}]"
        info, failed = inspect_adapter(entry["name"], entry["path"], key)
        out += failed
        if info is None:
            continue
        out += serve_checks(info, key, version)
        out += rank_checks(info, key, lora["max_rank"])
        out += module_checks(info, key, version, backend, lora["target_modules"])
        if base is not None:
            out += base_checks(info, key, base, model_dir)
    return out + target_list_checks(lora["target_modules"], version, backend)


def resolve_targets(lora, infos: list[AdapterInfo], version: str, backend: str) -> dict:
    """The modules the artifact serves: {"hf": [...], "trtllm": [...]} (auto = the union)."""
    lora = _as_dict(lora)
    supported = lora_targets.supported(version, backend)
    if isinstance(lora["target_modules"], list):
        hf = list(lora["target_modules"])
    else:
        hf = sorted({lora_targets.hf_name(m, supported) for i in infos for m in i.ranks})
    trt = [lora_targets.trtllm_module(m, supported) for m in hf]
    return {"hf": hf, "trtllm": sorted({t for t in trt if t})}


def _where(key: str | None, source: str, lines: dict, profile: str | None) -> str:
    """FILE:LINE of a record's key ("lora.adapters[1]") in the YAML, as build_config reports."""
    import re

    import build_config

    parts: list = []
    for name, index in re.findall(r"([A-Za-z_]+)|\[(\d+)\]", key or "lora"):
        parts.append(int(index) if index else name)
    _path, line = build_config._locate(tuple(parts), lines, profile)
    return f"{source}:{line}" if line else source


def main(argv: list[str] | None = None) -> int:
    import build_config

    parser = argparse.ArgumentParser(prog="lora_checks.py", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="build config YAML")
    parser.add_argument("--profile", help="named profile to apply")
    parser.add_argument("--model-dir", required=True, type=Path, help="the base (HF model dir)")
    parser.add_argument("--trtllm-version", help="default: the config's target.trtllm_version")
    parser.add_argument("--json", action="store_true", help="check records as JSON on stdout")
    args = parser.parse_args(argv)
    try:
        cfg = build_config.load(args.config, args.profile)
    except build_config.ConfigError as exc:
        for issue in exc.issues:
            print(f"config error: {issue.render(exc.source)}", file=sys.stderr)
        return exc.code
    if cfg.lora is None:
        print(
            f"lora_checks.py: {args.config}: no lora: section (runtime LoRA is off)",
            file=sys.stderr,
        )
        return 2
    version = args.trtllm_version or cfg.target.trtllm_version
    checks = adapter_checks(cfg.lora, args.model_dir, version, cfg.backend)
    _data, lines = build_config._read_yaml(Path(args.config), args.config)
    for rec in checks:
        if rec["status"] in ("fail", "warn"):
            where = _where(rec.get("key"), args.config, lines, args.profile)
            label = "error" if rec["status"] == "fail" else "warning"
            fix = f" (fix: {rec['fix']})" if rec["fix"] else ""
            print(f"lora_checks: {label}: {where}: {rec['message']}{fix}", file=sys.stderr)
    ok = not any(rec["status"] == "fail" for rec in checks)
    if args.json:
        print(json.dumps({"schema_version": SCHEMA_VERSION, "ok": ok, "checks": checks}, indent=2))
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(main())

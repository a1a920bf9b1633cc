"""A PEFT adapter directory: its config, its tensors, and what each tensor means.

Keys are `base_model.model.<module>.<param>`. For LoRA adapters every key is sorted into
a per-module entry (LoRA pair, embedding LoRA pair, DoRA magnitude, LoRA bias, trainable
token rows, full-weight replacement); a key that fits none of them is an error, so no
adapter tensor can be silently left out of the merge.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from lora_merge.errors import bad_input
from lora_merge.safetensors_io import TensorInfo, read_bytes, read_header, read_tensor

PREFIX = "base_model.model."
CONFIG_NAME = "adapter_config.json"

# Tuners merged by the streaming merge itself.
STREAMED_TYPES = {"LORA", "TRAINABLE_TOKENS"}
# Tuners whose merge is delegated to PEFT's own in-memory merge_and_unload.
DELEGATED_TYPES = {
    "IA3",
    "LOHA",
    "LOKR",
    "VERA",
    "OFT",
    "BOFT",
    "ADALORA",
    "HRA",
    "FOURIERFT",
    "RANDLORA",
    "SHIRA",
    "C3A",
    "ROAD",
    "MISS",
    "BONE",
    "WAVEFT",
    "DELORA",
    "GRALORA",
}
# Tuners that add no weight to fold: they change the input or the forward itself.
NOT_MERGEABLE = {
    "PROMPT_TUNING": "prompt tuning adds virtual tokens to the input, not weights",
    "MULTITASK_PROMPT_TUNING": "prompt tuning adds virtual tokens to the input, not weights",
    "P_TUNING": "p-tuning adds virtual tokens to the input, not weights",
    "PREFIX_TUNING": "prefix tuning adds key/value prefixes at run time, not weights",
    "ADAPTION_PROMPT": "adaption prompts add gated prompt attention, not weights",
    "CPT": "context-aware prompt tuning adds virtual tokens to the input, not weights",
    "POLY": "Poly routes between adapters per task at run time",
    "XLORA": "X-LoRA mixes adapters per token at run time",
    "LN_TUNING": "LN tuning is saved as full LayerNorm copies without a merge rule here",
}
# init_lora_weights values whose adapters were trained against a rewritten base.
BASE_REWRITING_INITS = ("pissa", "olora", "corda", "loftq")

_SUFFIXES = [
    (".lora_A.weight", "A"),
    (".lora_B.weight", "B"),
    (".lora_B.bias", "B_bias"),
    (".lora_embedding_A", "EA"),
    (".lora_embedding_B", "EB"),
    (".lora_magnitude_vector.weight", "M"),
    (".lora_magnitude_vector", "M"),
    (".token_adapter.trainable_tokens_delta", "T"),
]
_FULL_INFIXES = [
    (".modules_to_save.default.", "saved"),
    (".modules_to_save.", "saved"),
    (".original_module.", "original"),
    (".base_layer.", "base_layer"),
]
# Several full entries for one parameter: applied in this order, so the live copy wins.
# "original" (the base a modules_to_save wrapper kept) is read by nobody and never applied.
FULL_ORDER = {"original": -1, "base_layer": 0, "full": 1, "saved": 2}


@dataclass
class Module:
    """What one adapter stores for one module of the base."""

    name: str
    parts: dict[str, str] = field(default_factory=dict)  # kind -> adapter key
    full: list[tuple[str, str, str]] = field(default_factory=list)  # (param, key, origin)


@dataclass
class Adapter:
    path: Path
    config: dict
    peft_type: str
    tensors: dict[str, TensorInfo]
    digest: str
    modules: dict[str, Module] = field(default_factory=dict)
    delegate_reason: str | None = None  # set when the merge goes to PEFT (see run.py)
    _fds: dict = field(default_factory=dict, repr=False)

    def shape(self, key: str) -> tuple[int, ...]:
        return self.tensors[key].shape

    def get(self, key: str):
        """The tensor as a torch float32 tensor (adapters are small; read on demand)."""
        return read_tensor(self.tensors[key], self._fds).float()

    def read(self, key: str) -> bytearray:
        """The tensor's raw bytes (for the numpy engine)."""
        return read_bytes(self.tensors[key], self._fds)

    # Per-module rank, alpha and scale, with PEFT's pattern rule.
    def rank_alpha(self, module: str) -> tuple[int, float]:
        r = _pattern_value(self.config.get("rank_pattern") or {}, module, self.config.get("r", 8))
        alpha = _pattern_value(
            self.config.get("alpha_pattern") or {}, module, self.config.get("lora_alpha", 8)
        )
        return int(r), float(alpha)

    def scale(self, module: str) -> float:
        r, alpha = self.rank_alpha(module)
        return alpha / math.sqrt(r) if self.config.get("use_rslora") else alpha / r


def _pattern_value(patterns: dict, module: str, default):
    """PEFT's rule: the first key k, in order, with re.match(r"(.*\\.)?(k)$", module)."""
    for key, value in patterns.items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def unmatched_patterns(adapter: Adapter) -> list[str]:
    names = list(adapter.modules)
    out = []
    for opt in ("rank_pattern", "alpha_pattern"):
        for key in adapter.config.get(opt) or {}:
            if not any(re.match(rf"(.*\.)?({key})$", m) for m in names):
                out.append(f"{opt}[{key!r}]")
    return out


def read_config(path: Path) -> dict:
    cfg_path = path / CONFIG_NAME
    if not path.is_dir():
        raise bad_input("adapter_not_found", f"--adapter {path}: not a directory")
    if not cfg_path.is_file():
        raise bad_input("adapter_config_missing", f"{cfg_path}: missing (not a PEFT adapter dir)")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise bad_input("adapter_config_corrupt", f"{cfg_path}: not valid JSON ({err})") from err
    if not isinstance(config, dict) or not isinstance(config.get("peft_type"), str):
        raise bad_input("adapter_config_corrupt", f"{cfg_path}: no peft_type")
    return config


def check_mergeable(path: Path, config: dict) -> None:
    """Refuse adapters that no weight merge can reproduce, with the reason."""
    peft_type = config["peft_type"].upper()
    if peft_type in NOT_MERGEABLE:
        raise bad_input(
            "not_mergeable",
            f"{path}: {peft_type} cannot be merged: "
            f"{NOT_MERGEABLE[peft_type]}; serve it with the adapter instead",
        )
    if peft_type not in STREAMED_TYPES | DELEGATED_TYPES:
        raise bad_input("unsupported_tuner", f"{path}: unsupported peft_type {peft_type}")
    init = config.get("init_lora_weights")
    if isinstance(init, str) and init.lower().startswith(BASE_REWRITING_INITS):
        raise bad_input(
            "base_rewriting_init",
            f"{path}: init_lora_weights={init!r} trains against a rewritten base; convert the "
            "adapter with PEFT's path_initial_model_for_weight_conversion first",
        )
    for key, why in (
        ("use_qalora", "QA-LoRA"),
        ("layer_replication", "layer replication"),
        ("alora_invocation_tokens", "aLoRA (active only after invocation tokens)"),
        ("use_bdlora", "BD-LoRA"),
    ):
        if config.get(key):
            raise bad_input("not_mergeable", f"{path}: {why} cannot be merged into plain weights")


def load(path: Path) -> Adapter:
    config = read_config(path)
    check_mergeable(path, config)
    st_path = path / "adapter_model.safetensors"
    if not st_path.is_file():
        if (path / "adapter_model.bin").is_file():
            raise bad_input(
                "adapter_bin",
                f"{path}: adapter_model.bin only; save with "
                "safe_serialization (the default) or convert it to safetensors",
            )
        raise bad_input("adapter_weights_missing", f"{st_path}: missing")
    tensors, _meta, _raw = read_header(st_path)
    digest = hashlib.sha256()
    with st_path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    adapter = Adapter(
        path, config, config["peft_type"].upper(), tensors, "sha256:" + digest.hexdigest()
    )
    if adapter.peft_type in STREAMED_TYPES and not config.get("target_parameters"):
        adapter.modules = classify(path, tensors)
    return adapter


def classify(path: Path, tensors: dict[str, TensorInfo]) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for key in tensors:
        if not key.startswith(PREFIX):
            raise bad_input("unknown_adapter_key", f"{path}: key {key!r} lacks {PREFIX!r}")
        rest = key[len(PREFIX) :]
        for suffix, kind in _SUFFIXES:
            if rest.endswith(suffix):
                mod = modules.setdefault(rest[: -len(suffix)], Module(rest[: -len(suffix)]))
                mod.parts[kind] = key
                break
        else:
            for infix, kind in _FULL_INFIXES:
                if infix in rest:
                    mod_name, param = rest.split(infix, 1)
                    origin = kind
                    break
            else:
                if "lora_" in rest or "." not in rest:
                    raise bad_input("unknown_adapter_key", f"{path}: unknown adapter key {key!r}")
                mod_name, param = rest.rsplit(".", 1)
                origin = "full"
            if "." in param:
                raise bad_input("unknown_adapter_key", f"{path}: unknown adapter key {key!r}")
            mod = modules.setdefault(mod_name, Module(mod_name))
            mod.full.append((param, key, origin))
    return modules

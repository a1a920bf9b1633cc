"""Load, validate and resolve the TensorRT-LLM build config (configs/export/tensorrt_llm.yaml).

Usage:
  build_config.py --config FILE [--profile P]        resolved config as JSON on stdout
  build_config.py --config FILE [--profile P] --get build.max_seq_len   one value (for Bash)
  build_config.py --config FILE --list-profiles      one profile per line: name<TAB>description
  build_config.py --schema                           the JSON Schema (configs/export/*.schema.json)

The whole file is checked on every load, every profile included: unknown keys (with a
did-you-mean), types, ranges, choices and cross-field rules. Each problem is one stderr line
`FILE:LINE: key.path: message`; any problem exits 2 and prints nothing on stdout.
Library use: `resolve(path, profile) -> dict` (the resolved JSON document), ConfigError.
"""

from __future__ import annotations

import argparse
import difflib
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

# pydantic looks for plugins in every installed package's entry points when the first model is
# built (~0.1 s here, more in a full container); this helper uses none. Set it to override.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
try:
    import yaml
    from pydantic import (
        BaseModel,
        ConfigDict,
        Field,
        ValidationError,
        create_model,
        field_validator,
    )
except ModuleNotFoundError as _missing:
    if __name__ != "__main__" and _missing.name not in {"yaml", "pydantic"}:
        raise
    print(
        f"{Path(sys.argv[0]).name}: Python package "
        f"{ {'yaml': 'pyyaml'}.get(_missing.name, _missing.name) } is missing from "
        f"{sys.executable}: use the interpreter of NVIDIA's TensorRT-LLM container "
        "(PYTHON=python3) or the dev venv (make setup)",
        file=sys.stderr,
    )
    raise SystemExit(2) from None

# issue 16 (runtime LoRA): the optional `lora:` section lives in its own module.
from lora_config import LoraSection
from lora_config import rules as lora_rules

SCHEMA_VERSION = 1
PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
VERSION_TEXT = re.compile(r"^\d+\.\d+(\.\d+)?((a|b|rc)\d+)?(\.post\d+)?$")
CC_TEXT = re.compile(r"^\d{1,2}\.\d$")

QuantMode = Literal[
    "none",
    "fp8",
    "int8_weight_only",
    "int4_weight_only",
    "int4_awq",
    "w4a8_awq",
    "int8_sq",
    "nvfp4",
]
# Modes that calibrate on sample data (TensorRT-LLM's quantize.py through ModelOpt).
CALIBRATED_MODES = frozenset({"fp8", "int4_awq", "w4a8_awq", "int8_sq", "nvfp4"})
# Modes the PyTorch backend (trtllm-serve on a ModelOpt HF checkpoint) can serve.
PYTORCH_MODES = frozenset({"none", "fp8", "int4_awq", "w4a8_awq", "nvfp4"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class GpuTarget(_Model):
    name: str = Field(min_length=1, description="GPU model, e.g. H100, A100, L40S")
    compute_capability: str = Field(
        description='SM "major.minor": 8.0 A100, 8.6 A10, 8.9 L40S/L4, 9.0 H100/H200, 10.0 B200'
    )
    memory_gib: float = Field(gt=0, le=1024, description="memory of one GPU in GiB")

    @field_validator("compute_capability", mode="before")
    @classmethod
    def _cc_text(cls, value: Any) -> Any:
        if isinstance(value, float):
            value = f"{value:.1f}"
        if isinstance(value, str) and not CC_TEXT.match(value):
            raise ValueError(f'compute capability must look like "9.0", got {value!r}')
        return value


class Target(_Model):
    trtllm_version: str = Field(
        description="TensorRT-LLM version the plan is written for when none is installed"
    )
    gpus: list[GpuTarget] = Field(
        min_length=1, description="GPUs the artifact is built for (first = planning default)"
    )

    @field_validator("trtllm_version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        if isinstance(value, (int, float)):
            raise ValueError(
                f"got the number {value}: write the version as a quoted string such as "
                '"1.2.0" (YAML reads an unquoted 0.20 as the number 0.2)'
            )
        if isinstance(value, str) and not VERSION_TEXT.match(value):
            raise ValueError(f'expected a version such as "1.2.0" or "1.3.0rc20", got {value!r}')
        return value


class Build(_Model):
    max_batch_size: int = Field(ge=1, le=4096, description="most requests in flight at once")
    max_input_len: int = Field(ge=1, le=1048576, description="longest prompt, in tokens")
    max_seq_len: int = Field(ge=1, le=1048576, description="longest prompt + output, in tokens")
    max_num_tokens: int = Field(ge=64, le=1048576, description="tokens per engine step (batch)")
    max_beam_width: int = Field(ge=1, le=64, description="1 = greedy/sampling, >1 = beam search")
    gemm_plugin: Literal["auto", "disable", "float16", "bfloat16", "float32", "fp8", "nvfp4"]
    kv_cache_type: Literal["paged", "continuous", "disabled"]
    use_paged_context_fmha: bool
    use_fp8_context_fmha: bool
    multiple_profiles: bool
    workers: int = Field(ge=1, le=64, description="ranks built in parallel")
    timing_cache: bool


class Parallel(_Model):
    tp_size: int = Field(ge=1, le=64, description="tensor parallel size")
    pp_size: int = Field(ge=1, le=64, description="pipeline parallel size")


class Calibration(_Model):
    dataset: str | None = Field(
        description="local .jsonl/.json/.txt/.parquet file of your own prompts; null = tool default"
    )
    num_samples: int = Field(ge=1, le=16384)
    max_seq_len: int = Field(ge=32, le=16384)

    @field_validator("dataset")
    @classmethod
    def _local_file(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if re.match(r"^[a-z][a-z0-9+.-]*://", value):
            raise ValueError(f"must be a local file, not a URL: {value!r}")
        if not value.endswith((".jsonl", ".json", ".txt", ".parquet")):
            raise ValueError(f"must be a .jsonl, .json, .txt or .parquet file, got {value!r}")
        return value


class Quantization(_Model):
    mode: QuantMode
    kv_cache_dtype: Literal["auto", "fp8", "int8"]
    calibration: Calibration


class Runtime(_Model):
    kv_cache_free_gpu_memory_fraction: float = Field(gt=0, le=0.99)
    enable_chunked_context: bool
    cuda_graphs: bool
    enable_block_reuse: bool


class BuildConfig(_Model):
    """The settings of one build: the defaults with one profile applied."""

    backend: Literal["engine", "pytorch"]
    target: Target
    dtype: Literal["auto", "bfloat16", "float16", "float32"]
    build: Build
    parallel: Parallel
    quantization: Quantization
    runtime: Runtime
    lora: LoraSection | None = None  # issue 16: off unless the section is present


def _partial(model: type[BaseModel], prefix: str) -> type[BaseModel]:
    """The same model with every field optional (a profile overrides only what it names)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            ann = _partial(ann, prefix)
        elif info.metadata:
            ann = Annotated[(ann, *info.metadata)]
        fields[name] = (ann | None, Field(default=None, description=info.description))
    return create_model(prefix + model.__name__, __config__=ConfigDict(extra="forbid"), **fields)


# ---------------------------------------------------------------------------------------------
# Errors


@dataclass(frozen=True)
class Issue:
    code: str  # unknown_key, missing_key, wrong_type, bad_choice, out_of_range, bad_value, rule:*
    path: str
    line: int | None
    message: str

    def render(self, source: str) -> str:
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.path}: {self.message}"


class ConfigError(Exception):
    """A config that cannot be used; exit code 2. `issues` lists every problem found."""

    code = 2

    def __init__(self, source: str, issues: list[Issue]):
        self.source = source
        self.issues = issues
        super().__init__("\n".join(i.render(source) for i in issues))


# ---------------------------------------------------------------------------------------------
# YAML with line numbers


def _read_yaml(path: Path, source: str) -> tuple[Any, dict[tuple, int]]:
    """The document and a map key path -> 1-based line. Duplicate keys are errors."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, [Issue("no_file", "(file)", None, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, [Issue("unreadable", "(file)", None, str(exc))]) from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(source, [Issue("empty", "(file)", 1, "the file is empty")])
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(source, [Issue("yaml_syntax", "(file)", line, problem)]) from None
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}
    issues: list[Issue] = []

    def walk(n: yaml.Node, path: tuple) -> None:
        lines[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            seen: set = set()
            for key_node, value_node in n.value:
                key = key_node.value
                if key in seen:
                    issues.append(
                        Issue(
                            "duplicate_key",
                            _dotted((*path, key)),
                            key_node.start_mark.line + 1,
                            "appears twice in the same mapping; YAML would keep only the last",
                        )
                    )
                seen.add(key)
                walk(value_node, (*path, key))
                lines[(*path, key)] = key_node.start_mark.line + 1
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, (*path, i))

    walk(node, ())
    if issues:
        raise ConfigError(source, issues)
    return data, lines


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


# ---------------------------------------------------------------------------------------------
# Validation


def _fields_at(loc: tuple) -> list[str]:
    """Known keys of the model that holds `loc`'s parent mapping (for did-you-mean)."""
    model: Any = BuildConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if info is None:
            return []
        ann = info.annotation
        inner = getattr(ann, "__args__", None)
        if inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
            ann = inner[0]
        model = ann
    return list(model.model_fields) if hasattr(model, "model_fields") else []


_TYPE_WORDS = {
    "int": "an integer",
    "bool": "true or false",
    "float": "a number",
    "str": "a string",
    "dict": "a mapping",
    "list": "a list",
    "model": "a mapping",
}


def _issue_from_pydantic(err: dict, in_profile: bool = False) -> tuple[str, tuple, str]:
    loc = tuple(err["loc"])
    kind = err["type"]
    given = err.get("input")
    if kind == "extra_forbidden":
        known = _fields_at(loc)
        if len(loc) == 1:  # the top level also has profiles; a profile has a description
            known.append("description" if in_profile else "profiles")
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f"; known keys: {', '.join(known)}"
        return "unknown_key", loc, f"unknown key{hint}"
    if kind == "missing":
        return "missing_key", loc, "required key is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        close = difflib.get_close_matches(str(given), re.findall(r"'([^']+)'", expected), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return "bad_choice", loc, f"{given!r} is not one of {expected}{hint}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return "out_of_range", loc, f"{err['msg'].lower()}, got {given!r}"
    if kind in {"too_short", "too_long"}:
        return "out_of_range", loc, err["msg"]
    if kind == "value_error":
        return "bad_value", loc, str(err.get("ctx", {}).get("error", err["msg"]))
    base = kind.split("_", 1)[0]
    if kind.endswith("_type") or kind.endswith("_parsing") or base in _TYPE_WORDS:
        want = _TYPE_WORDS.get(base, base)
        return "wrong_type", loc, f"expected {want}, got {given!r} ({type(given).__name__})"
    return "bad_value", loc, err["msg"]


def _rules(cfg: BuildConfig) -> list[tuple[str, tuple, str]]:
    """Cross-field rules: (code, key path, message)."""
    from compat import window_problem  # late import: compat has no dependency on this module

    out: list[tuple[str, tuple, str]] = []
    b, q, r, p = cfg.build, cfg.quantization, cfg.runtime, cfg.parallel
    if b.max_input_len > b.max_seq_len:
        out.append(
            (
                "rule:input_exceeds_seq_len",
                ("build", "max_input_len"),
                f"{b.max_input_len} must be <= build.max_seq_len ({b.max_seq_len}): "
                "max_seq_len counts the prompt plus the output",
            )
        )
    if b.max_num_tokens < b.max_input_len and not r.enable_chunked_context:
        out.append(
            (
                "rule:num_tokens_below_input",
                ("build", "max_num_tokens"),
                f"{b.max_num_tokens} is below build.max_input_len ({b.max_input_len}): a full "
                "prompt would not fit in one step; raise it or set "
                "runtime.enable_chunked_context: true",
            )
        )
    if b.use_paged_context_fmha and b.kv_cache_type != "paged":
        out.append(
            (
                "rule:paged_fmha_needs_paged_kv",
                ("build", "use_paged_context_fmha"),
                f"needs build.kv_cache_type: paged (it is {b.kv_cache_type})",
            )
        )
    if r.enable_chunked_context and not b.use_paged_context_fmha:
        out.append(
            (
                "rule:chunked_context_needs_paged_fmha",
                ("runtime", "enable_chunked_context"),
                "needs build.use_paged_context_fmha: true (chunks are attended through the paged "
                "KV cache)",
            )
        )
    if r.enable_block_reuse and not b.use_paged_context_fmha:
        out.append(
            (
                "rule:block_reuse_needs_paged_fmha",
                ("runtime", "enable_block_reuse"),
                "needs build.use_paged_context_fmha: true (reused KV blocks are read by paged "
                "context FMHA)",
            )
        )
    if b.use_fp8_context_fmha and q.kv_cache_dtype != "fp8":
        out.append(
            (
                "rule:fp8_fmha_needs_fp8_kv",
                ("build", "use_fp8_context_fmha"),
                f"needs quantization.kv_cache_dtype: fp8 (it is {q.kv_cache_dtype})",
            )
        )
    if b.use_fp8_context_fmha and q.mode not in {"fp8", "nvfp4"}:
        out.append(
            (
                "rule:fp8_fmha_needs_fp8_quant",
                ("build", "use_fp8_context_fmha"),
                f"needs quantization.mode fp8 or nvfp4 (it is {q.mode})",
            )
        )
    if b.gemm_plugin in {"fp8", "nvfp4"} and q.mode != b.gemm_plugin:
        out.append(
            (
                "rule:gemm_plugin_needs_quant",
                ("build", "gemm_plugin"),
                f"{b.gemm_plugin} GEMMs need quantization.mode: {b.gemm_plugin} (it is {q.mode})",
            )
        )
    if q.mode != "none" and cfg.dtype == "float32":
        out.append(
            (
                "rule:quant_needs_half_dtype",
                ("dtype",),
                f"quantization.mode {q.mode} works on float16/bfloat16 models; set dtype: auto, "
                "bfloat16 or float16",
            )
        )
    if b.workers > p.tp_size * p.pp_size:
        out.append(
            (
                "rule:workers_exceed_ranks",
                ("build", "workers"),
                f"{b.workers} workers for {p.tp_size * p.pp_size} rank(s): workers build ranks in "
                "parallel, so more than tp_size * pp_size only costs host RAM",
            )
        )
    if cfg.backend == "pytorch" and q.mode not in PYTORCH_MODES:
        out.append(
            (
                "rule:mode_not_on_pytorch",
                ("quantization", "mode"),
                f"{q.mode} is not served by the pytorch backend; use one of "
                f"{', '.join(sorted(PYTORCH_MODES))}, or backend: engine",
            )
        )
    if cfg.backend == "pytorch" and b.max_beam_width > 1:
        out.append(
            (
                "rule:beam_on_pytorch",
                ("build", "max_beam_width"),
                "beam search is planned for the engine backend only; set 1 or backend: engine",
            )
        )
    names = [g.name for g in cfg.target.gpus]
    for i, name in enumerate(names):
        if name in names[:i]:
            out.append(
                ("rule:duplicate_gpu", ("target", "gpus", i, "name"), f"{name} listed twice")
            )
    problem = window_problem(cfg.backend, cfg.target.trtllm_version)
    if problem:
        out.append(("rule:version_outside_window", ("target", "trtllm_version"), problem))
    out += lora_rules(cfg.lora)  # issue 16
    return out


def _locate(path: tuple, lines: dict[tuple, int], profile: str | None) -> tuple[str, int | None]:
    """The key path to report and its line: the profile's override when it sets the key."""
    if profile is not None and ("profiles", profile, *path) in lines:
        return _dotted(("profiles", profile, *path)), lines[("profiles", profile, *path)]
    # Not set by the profile: the key (or its parent, for a missing key) in the defaults.
    for cut in range(len(path), -1, -1):
        if path[:cut] in lines:
            return _dotted(path), lines[path[:cut]]
    return _dotted(path), None


def _merge(base: Any, over: Any) -> Any:
    """Deep merge of mappings; anything else (lists included) is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for key, value in over.items():
            out[key] = _merge(base.get(key), value) if key in base else value
        return out
    return over


def _validate(data: dict, lines: dict, profile: str | None) -> tuple[BuildConfig | None, list]:
    issues = []
    try:
        cfg = BuildConfig.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            code, loc, msg = _issue_from_pydantic(err, profile is not None)
            where, line = _locate(loc, lines, profile)
            issues.append(Issue(code, where, line, _in_profile(msg, where, profile)))
        return None, issues
    for code, loc, msg in _rules(cfg):
        where, line = _locate(loc, lines, profile)
        issues.append(Issue(code, where, line, _in_profile(msg, where, profile)))
    return (cfg if not issues else None), issues


def _in_profile(msg: str, where: str, profile: str | None) -> str:
    if profile is None or where.startswith("profiles."):
        return msg
    return f"{msg} (with profile {profile})"


def load(path: str | Path, profile: str | None = None) -> BuildConfig:
    """Validate the whole file and return the settings with `profile` applied."""
    source = str(path)
    data, lines = _read_yaml(Path(path), source)
    if not isinstance(data, dict):
        line = lines.get(())
        raise ConfigError(source, [Issue("wrong_type", "(top level)", line, "expected a mapping")])
    profiles = data.get("profiles", {})
    if profiles is None:
        profiles = {}
    base = {k: v for k, v in data.items() if k != "profiles"}
    issues: list[Issue] = []
    if not isinstance(profiles, dict):
        issues.append(
            Issue("wrong_type", "profiles", lines.get(("profiles",)), "expected a mapping")
        )
        profiles = {}
    default_cfg, found = _validate(base, lines, None)
    issues += found
    chosen = default_cfg
    for name, body in profiles.items():
        where = ("profiles", name)
        if not isinstance(name, str) or not PROFILE_NAME.match(name):
            issues.append(
                Issue(
                    "bad_profile_name",
                    _dotted(where),
                    lines.get(where),
                    "profile names use a-z, 0-9, '-', '.', '_' (e.g. h100-fp8)",
                )
            )
            continue
        if not isinstance(body, dict):
            issues.append(
                Issue("wrong_type", _dotted(where), lines.get(where), "expected a mapping")
            )
            continue
        over = {k: v for k, v in body.items() if k != "description"}
        desc = body.get("description")
        if desc is not None and not isinstance(desc, str):
            line = lines.get((*where, "description"))
            issues.append(
                Issue("wrong_type", _dotted((*where, "description")), line, "expected a string")
            )
        if "profiles" in over:
            line = lines.get((*where, "profiles"))
            issues.append(
                Issue("unknown_key", _dotted((*where, "profiles")), line, "profiles do not nest")
            )
            continue
        cfg, found = _validate(_merge(base, over), lines, name)
        issues += [i for i in found if i not in issues]
        if name == profile:
            chosen = cfg
    if profile is not None and profile not in profiles:
        names = sorted(str(n) for n in profiles)
        close = difflib.get_close_matches(profile, names, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        issues.append(
            Issue(
                "unknown_profile",
                "profiles",
                lines.get(("profiles",)),
                f"no profile {profile!r}{hint} (profiles: {', '.join(names) or 'none'})",
            )
        )
    if issues:
        raise ConfigError(source, _dedupe(issues))
    if chosen is None:  # unreachable: no issues means every validation returned a config
        raise ConfigError(source, [Issue("internal", "(file)", None, "no config resolved")])
    return chosen


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen, out = set(), []
    for issue in issues:
        key = (issue.code, issue.path, issue.line)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def profiles_of(path: str | Path) -> dict[str, str]:
    """Profile name -> description, after validating the whole file."""
    load(path)
    data, _ = _read_yaml(Path(path), str(path))
    return {
        name: (body.get("description") or "") for name, body in (data.get("profiles") or {}).items()
    }


def profiles_for(path: str | Path, compute_capability: str) -> list[str]:
    """Profiles whose target GPUs include this compute capability (call after load())."""
    data, _ = _read_yaml(Path(path), str(path))
    base_gpus = (data.get("target") or {}).get("gpus") or []
    out = []
    for name, body in (data.get("profiles") or {}).items():
        gpus = ((body or {}).get("target") or {}).get("gpus", base_gpus)
        ccs = {GpuTarget._cc_text(g.get("compute_capability")) for g in gpus}
        if compute_capability in ccs:
            out.append(name)
    return out


def config_hash(config: dict) -> str:
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


def resolve(path: str | Path, profile: str | None = None) -> dict:
    """The resolved-config JSON document (docs/internals.md, "Resolved config")."""
    cfg = load(path, profile).model_dump(mode="json")
    if cfg["lora"] is None:  # issue 16: without the section the document (and hash) is unchanged
        del cfg["lora"]
    return {
        "schema_version": SCHEMA_VERSION,
        "source": str(path),
        "profile": profile,
        "config_hash": config_hash(cfg),
        "config": cfg,
    }


def json_schema() -> dict:
    """JSON Schema of the YAML file, for editor completion (kept in sync by a test)."""
    # Built here, not at import: pydantic models cost time and only the schema needs these.
    profile_model = create_model(
        "Profile",
        __base__=_partial(BuildConfig, "Profile"),
        description=(
            str | None,
            Field(default=None, description="one line shown by --list-profiles"),
        ),
    )
    schema_model = create_model(
        "TensorRTLLMBuildConfig",
        __base__=BuildConfig,
        profiles=(
            dict[str, profile_model],
            Field(default_factory=dict, description="named overrides, chosen with --profile"),
        ),
    )
    schema = schema_model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "TensorRT-LLM build config (configs/export/tensorrt_llm.yaml)"
    return schema


def _get(doc: dict, dotted: str) -> str | int | float | bool | None:
    node: Any = doc["config"]
    for part in dotted.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(dotted)
    if isinstance(node, (dict, list)):
        raise KeyError(dotted)
    return node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="build_config.py", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--config", help="build config YAML")
    parser.add_argument("--profile", help="named profile to apply")
    parser.add_argument(
        "--get", metavar="KEY", help="print one resolved value, e.g. build.max_seq_len"
    )
    parser.add_argument("--list-profiles", action="store_true", help="name<TAB>description lines")
    parser.add_argument("--schema", action="store_true", help="print the JSON Schema")
    args = parser.parse_args(argv)
    if args.schema:
        print(json.dumps(json_schema(), indent=2))
        return 0
    if not args.config:
        parser.print_usage(sys.stderr)
        print("build_config.py: --config FILE is required", file=sys.stderr)
        return 2
    try:
        if args.list_profiles:
            for name, desc in profiles_of(args.config).items():
                print(f"{name}\t{desc}")
            return 0
        doc = resolve(args.config, args.profile)
    except ConfigError as exc:
        for issue in exc.issues:
            print(f"config error: {issue.render(exc.source)}", file=sys.stderr)
        return exc.code
    if args.get:
        try:
            value = _get(doc, args.get)
        except KeyError:
            print(f"build_config.py: no scalar key {args.get!r} in the config", file=sys.stderr)
            return 2
        print(json.dumps(value) if not isinstance(value, str) else value)
        return 0
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

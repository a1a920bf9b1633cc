"""Load, validate and resolve the TensorRT-LLM build config (configs/export/tensorrt_llm.yaml).

The typed settings (BuildConfig) are what every later stage reads: no consumer restates a
default. scripts/export/check_config.py is the command that prints them.

The whole file is checked on every load, every profile included: unknown keys (with a
did-you-mean that ignores case, or the section a misplaced key belongs under), types, ranges,
choices and cross-field rules. Each problem is one stderr line `config error: FILE:LINE:
key.path: message`; any problem of the defaults or of the selected profile exits 2 and prints
nothing on stdout. A problem of a profile that is not selected is a `config warning:` line of the
same form, and the build goes on.
Bounds, checked before any node is built: at most 1 MiB (before reading), UTF-8, no anchors,
aliases or tags, at most 16 levels of nesting, 10,000 keys and values, 4096 characters a value.
Library use: `check(path, profile) -> Checked` (settings, warnings, and `where(key)`: the
FILE:LINE a key comes from), `resolve(path, profile) -> dict` (the resolved JSON document),
ConfigError (exit 2, `issues` and `warnings`), `print_issues(...)`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

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
import versions
from lora_config import LoraSection
from lora_config import rules as lora_rules
from quality_config import QuantEval, local_file

SCHEMA_VERSION = 1
PROFILE_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
VERSION_TEXT = re.compile(r"^\d+\.\d+(\.\d+)?((a|b|rc)\d+)?(\.post\d+)?$")
CC_TEXT = re.compile(r"^\d{1,2}\.\d$")
KEY_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

Backend = Literal["engine", "pytorch"]
BACKENDS = get_args(Backend)
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
# Modes modelopt_quantize.py (ModelOpt directly) quantizes to.
MODELOPT_MODES = frozenset({"fp8", "nvfp4", "int4_awq", "w4a8_awq"})
# Modes the PyTorch backend (trtllm-serve on a ModelOpt HF checkpoint) can serve.
PYTORCH_MODES = MODELOPT_MODES | {"none"}


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
        return local_file(value, (".jsonl", ".json", ".txt", ".parquet"))


class Quantization(_Model):
    mode: QuantMode
    kv_cache_dtype: Literal["auto", "fp8", "int8"]
    calibration: Calibration
    eval: QuantEval = Field(  # the quality gate (quality_config.py); optional in the YAML
        default_factory=QuantEval,
        description="what a quantized build is measured on and the quality it must keep",
    )


class Runtime(_Model):
    kv_cache_free_gpu_memory_fraction: float = Field(gt=0, le=0.99)
    enable_chunked_context: bool
    cuda_graphs: bool
    enable_block_reuse: bool


class BuildConfig(_Model):
    """The settings of one build: the defaults with one profile applied."""

    backend: Backend
    target: Target
    dtype: Literal["auto", "bfloat16", "float16", "float32"]
    build: Build
    parallel: Parallel
    quantization: Quantization
    runtime: Runtime
    lora: LoraSection | None = None  # runtime LoRA (lora_config.py); None: off


def _partial(model: type[BaseModel], prefix: str) -> type[BaseModel]:
    """The same model with every field optional (a profile overrides only what it names)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        ann = info.annotation
        inner = _model_of(ann)
        if inner is not None and getattr(ann, "__origin__", None) is not list:
            ann = _partial(inner, prefix)  # a section, optional or not (lora)
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
    profile: str | None = None  # set on a warning: the profile (not selected) it belongs to

    def render(self, source: str) -> str:
        """One line: a control character or line break from the file or its path is escaped."""
        where = f"{source}:{self.line}" if self.line else source
        return f"{where}: {self.path}: {self.message}".translate(_ESCAPES)

    def render_warning(self, source: str) -> str:
        which = f"profile {_key_text(self.profile)} is" if self.profile else "the profiles are"
        return f"{self.render(source)} ({which} not selected: this build goes on)"


# Characters that would break a one-line message (str.splitlines() breaks at some of them).
_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(32), 127, 0x85)} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


class ConfigError(Exception):
    """A config that cannot be used; exit code 2. `issues` lists every problem found,
    `warnings` the problems of the profiles not selected."""

    code = 2

    def __init__(self, source: str, issues: list[Issue], warnings: list[Issue] | None = None):
        self.source = source
        self.issues = issues
        self.warnings = warnings or []
        super().__init__("\n".join(i.render(source) for i in issues))


# ---------------------------------------------------------------------------------------------
# YAML with line numbers, bounded: the file's size is checked before it is read, its shape
# (anchors, aliases, tags, nesting, node count, value length) before any node is built, so
# that no file can make the load slow or large.

MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 16
MAX_NODES = 10_000
MAX_VALUE_CHARS = 4096
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_YamlLoader):  # type: ignore[misc, valid-type]
    """The safe loader, whose value errors (a date such as 2024-13-45) name the value's line."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # the constructors raise ValueError, KeyError, IndexError, ...
            value = _show(node.value) if isinstance(node, yaml.ScalarNode) else "here"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value {value}: {exc}", node.start_mark
            ) from None


def _file_issue(source: str, code: str, line: int | None, message: str) -> ConfigError:
    return ConfigError(source, [Issue(code, "(file)", line, message)])


def _read_text(path: Path, source: str) -> str:
    """The file as text: at most MAX_FILE_BYTES (checked before reading), UTF-8."""
    limit = f"a build config is at most {MAX_FILE_BYTES // 1024 // 1024} MiB"
    try:
        with path.open("rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise _file_issue(source, "too_big", None, f"{_mib(size)}: {limit}")
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise _file_issue(source, "no_file", None, "no such file") from None
    except OSError as exc:
        raise _file_issue(source, "unreadable", None, exc.strerror or str(exc)) from None
    if len(data) > MAX_FILE_BYTES:  # a pipe or a special file: no size before reading
        raise _file_issue(source, "too_big", None, f"more than 1 MiB: {limit}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - data.rfind(b"\n", 0, exc.start)
        raise _file_issue(
            source,
            "not_utf8",
            line,
            f"not UTF-8: byte 0x{data[exc.start]:02x} at column {column}; save the file as UTF-8",
        ) from None


def _mib(size: int) -> str:
    return f"the file is {size / 1024 / 1024:.1f} MiB ({size} bytes)"


def _shape_problem(event: yaml.Event, depth: int, nodes: int) -> tuple[str, str] | None:
    """(code, message) when the event is something this loader refuses."""
    if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
        return "yaml_alias", (
            "YAML anchors and aliases (&name, *name) are not supported: write the value out "
            "(a profile names only the keys it changes)"
        )
    if isinstance(event, yaml.NodeEvent) and getattr(event, "tag", None):
        return "yaml_tag", f"YAML tags ({event.tag}) are not supported: write a plain value"
    if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_VALUE_CHARS:
        return "too_long", f"a value of {len(event.value)} characters: at most {MAX_VALUE_CHARS}"
    if depth > MAX_DEPTH:
        return "too_deep", f"nested more than {MAX_DEPTH} levels deep"
    if nodes > MAX_NODES:
        return "too_many_nodes", (
            f"more than {MAX_NODES} keys and values (a build config has a few hundred)"
        )
    return None


def _check_shape(text: str, source: str) -> None:
    """Walk the YAML events once (no nodes built) and refuse the first unsupported shape."""
    loader = _Loader(text)
    depth = nodes = 0
    try:
        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
            nodes += isinstance(event, yaml.NodeEvent)
            found = _shape_problem(event, depth, nodes)
            if found:
                raise _file_issue(source, found[0], event.start_mark.line + 1, found[1])
    except yaml.YAMLError as exc:
        raise _yaml_issue(exc, text, source) from None
    finally:
        loader.dispose()


def _yaml_issue(exc: yaml.YAMLError, text: str, source: str) -> ConfigError:
    """One line for a YAML error: its problem and its line."""
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        problem = f"character #x{exc.character:04x} is not allowed in YAML ({exc.reason})"
        return _file_issue(source, "yaml_syntax", line, problem)
    line = mark.line + 1 if mark else None
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    context = getattr(exc, "context", None)
    return _file_issue(source, "yaml_syntax", line, f"{context}: {problem}" if context else problem)


def _read_yaml(path: Path, source: str) -> tuple[Any, dict[tuple, int]]:
    """The document and a map key path -> 1-based line. Duplicate keys are errors."""
    text = _read_text(path, source)
    _check_shape(text, source)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise _file_issue(source, "empty", None, "the file is empty")
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_issue(exc, text, source) from None
    finally:
        loader.dispose()
    lines: dict[tuple, int] = {}
    issues: list[Issue] = []
    _walk(node, (), lines, issues)
    if issues:
        raise ConfigError(source, issues)
    return data, lines


def _walk(node: yaml.Node, path: tuple, lines: dict[tuple, int], issues: list[Issue]) -> None:
    """Record the line of every key path; a key twice in one mapping is an issue."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key_node, value_node in node.value:
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
            _walk(value_node, (*path, key), lines, issues)
            lines[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*path, i), lines, issues)


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        text = _key_text(part)
        out += f"[{part}]" if isinstance(part, int) else (f".{text}" if out else text)
    return out or "(top level)"


def _key_text(key: Any) -> str:
    """A key as it is when plain (max_seq_len, h100-fp8), else quoted ('my key', '\\x1e')."""
    text = str(key)
    return text if re.fullmatch(r"[A-Za-z0-9_.+/-]+", text) else _show(text, 40)


# ---------------------------------------------------------------------------------------------
# Validation


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation (GpuTarget for list[GpuTarget]), else None."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _fields_at(loc: tuple) -> list[str]:
    """Known keys of the model that holds `loc`'s parent mapping (for did-you-mean)."""
    model: Any = BuildConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if model is not None else None
        if info is None:
            return []
        model = _model_of(info.annotation)
    return list(model.model_fields) if model is not None else []


def _sections_of_keys() -> dict[str, list[str]]:
    """Every key name of the config -> the sections that hold it ('' is the top level)."""
    out: dict[str, list[str]] = {}

    def visit(model: Any, where: str) -> None:
        for name, info in model.model_fields.items():
            out.setdefault(name, []).append(where)
            inner = _model_of(info.annotation)
            if inner is not None:
                suffix = "[]" if getattr(info.annotation, "__origin__", None) is list else ""
                visit(inner, f"{where}.{name}{suffix}" if where else f"{name}{suffix}")

    visit(BuildConfig, "")
    return out


def _suggest(word: str, known: list[str], cutoff: float = 0.6) -> str | None:
    """The known name closest to `word`, ignoring case (MAX_BATCH_SIZE -> max_batch_size)."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[close[0]] if close else None


def _unknown_key_message(loc: tuple, in_profile: bool) -> str:
    known = _fields_at(loc)
    if len(loc) == 1:  # the top level also has profiles; a profile has a description
        known.append("description" if in_profile else "profiles")
    key = str(loc[-1])
    here = _suggest(key, known)
    if here is not None and here.lower() == key.lower():
        return f"unknown key; did you mean {here!r}?"
    name = _suggest(key, list(_SECTIONS), cutoff=1.0)  # the same name, any case, elsewhere
    parent = ".".join(str(p) for p in loc[:-1] if not isinstance(p, int))
    elsewhere = [s for s in _SECTIONS.get(name or "", []) if s.removesuffix("[]") != parent]
    if elsewhere:
        return f"unknown key here; {name!r} belongs under {' or '.join(map(_where, elsewhere))}"
    if here is not None:
        return f"unknown key; did you mean {here!r}?"
    return f"unknown key; known keys: {', '.join(known)}"


def _where(section: str) -> str:
    if not section:
        return "the top level"
    return f"each {section[:-2]} entry" if section.endswith("[]") else f"{section}:"


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        return "unknown_key", loc, _unknown_key_message(loc, in_profile)
    if kind == "missing":
        return "missing_key", loc, "required key is missing"
    if kind == "literal_error":
        expected = err.get("ctx", {}).get("expected", "")
        close = _suggest(str(given), re.findall(r"'([^']+)'", expected))
        hint = f"; did you mean {close!r}?" if close else ""
        return "bad_choice", loc, f"{_show(given)} is not one of {expected}{hint}"
    if kind in {"greater_than", "greater_than_equal", "less_than", "less_than_equal"}:
        return "out_of_range", loc, f"{err['msg'].lower()}, got {_show(given)}"
    if kind in {"too_short", "too_long"}:
        return "out_of_range", loc, err["msg"]
    if kind == "value_error":
        return "bad_value", loc, str(err.get("ctx", {}).get("error", err["msg"]))
    base = kind.split("_", 1)[0]
    if kind.endswith("_type") or kind.endswith("_parsing") or base in _TYPE_WORDS:
        want = _TYPE_WORDS.get(base, base)
        return "wrong_type", loc, f"expected {want}, got {_show(given)} ({type(given).__name__})"
    return "bad_value", loc, err["msg"]


_SECTIONS = _sections_of_keys()


# Cross-field rules, in report order: (code, key path, broken(cfg), message(cfg)).
_CROSS_FIELD_RULES: tuple[tuple[str, tuple, Any, Any], ...] = (
    (
        "rule:input_exceeds_seq_len",
        ("build", "max_input_len"),
        lambda c: c.build.max_input_len > c.build.max_seq_len,
        lambda c: (
            f"{c.build.max_input_len} must be <= build.max_seq_len ({c.build.max_seq_len}): "
            "max_seq_len counts the prompt plus the output"
        ),
    ),
    (
        "rule:num_tokens_below_input",
        ("build", "max_num_tokens"),
        lambda c: (
            c.build.max_num_tokens < c.build.max_input_len and not c.runtime.enable_chunked_context
        ),
        lambda c: (
            f"{c.build.max_num_tokens} is below build.max_input_len "
            f"({c.build.max_input_len}): a full prompt would not fit in one step; raise it or set "
            "runtime.enable_chunked_context: true"
        ),
    ),
    (
        "rule:paged_fmha_needs_paged_kv",
        ("build", "use_paged_context_fmha"),
        lambda c: c.build.use_paged_context_fmha and c.build.kv_cache_type != "paged",
        lambda c: f"needs build.kv_cache_type: paged (it is {c.build.kv_cache_type})",
    ),
    (
        "rule:chunked_context_needs_paged_fmha",
        ("runtime", "enable_chunked_context"),
        lambda c: c.runtime.enable_chunked_context and not c.build.use_paged_context_fmha,
        lambda c: (
            "needs build.use_paged_context_fmha: true (chunks are attended through the "
            "paged KV cache)"
        ),
    ),
    (
        "rule:block_reuse_needs_paged_fmha",
        ("runtime", "enable_block_reuse"),
        lambda c: c.runtime.enable_block_reuse and not c.build.use_paged_context_fmha,
        lambda c: (
            "needs build.use_paged_context_fmha: true (reused KV blocks are read by paged "
            "context FMHA)"
        ),
    ),
    (
        "rule:fp8_fmha_needs_fp8_kv",
        ("build", "use_fp8_context_fmha"),
        lambda c: c.build.use_fp8_context_fmha and c.quantization.kv_cache_dtype != "fp8",
        lambda c: f"needs quantization.kv_cache_dtype: fp8 (it is {c.quantization.kv_cache_dtype})",
    ),
    (
        "rule:fp8_fmha_needs_fp8_quant",
        ("build", "use_fp8_context_fmha"),
        lambda c: c.build.use_fp8_context_fmha and c.quantization.mode not in {"fp8", "nvfp4"},
        lambda c: f"needs quantization.mode fp8 or nvfp4 (it is {c.quantization.mode})",
    ),
    (
        "rule:gemm_plugin_needs_quant",
        ("build", "gemm_plugin"),
        lambda c: (
            c.build.gemm_plugin in {"fp8", "nvfp4"} and c.quantization.mode != c.build.gemm_plugin
        ),
        lambda c: (
            f"{c.build.gemm_plugin} GEMMs need quantization.mode: {c.build.gemm_plugin} "
            f"(it is {c.quantization.mode})"
        ),
    ),
    (
        "rule:quant_needs_half_dtype",
        ("dtype",),
        lambda c: c.quantization.mode != "none" and c.dtype == "float32",
        lambda c: (
            f"quantization.mode {c.quantization.mode} works on float16/bfloat16 models; "
            "set dtype: auto, bfloat16 or float16"
        ),
    ),
    (
        "rule:workers_exceed_ranks",
        ("build", "workers"),
        lambda c: c.build.workers > c.parallel.tp_size * c.parallel.pp_size,
        lambda c: (
            f"{c.build.workers} workers for {c.parallel.tp_size * c.parallel.pp_size} "
            "rank(s): workers build ranks in parallel, so more than tp_size * pp_size only costs "
            "host RAM"
        ),
    ),
    (
        "rule:mode_not_on_pytorch",
        ("quantization", "mode"),
        lambda c: c.backend == "pytorch" and c.quantization.mode not in PYTORCH_MODES,
        lambda c: (
            f"{c.quantization.mode} is not served by the pytorch backend; use one of "
            f"{', '.join(sorted(PYTORCH_MODES))}, or backend: engine"
        ),
    ),
    (
        "rule:kv_int8_on_pytorch",
        ("quantization", "kv_cache_dtype"),
        lambda c: c.backend == "pytorch" and c.quantization.kv_cache_dtype == "int8",
        lambda c: "int8 is not served by the pytorch backend; use auto or fp8, or backend: engine",
    ),
    (
        "rule:batch_exceeds_num_tokens",
        ("build", "max_batch_size"),
        lambda c: c.backend == "pytorch" and c.build.max_batch_size > c.build.max_num_tokens,
        lambda c: (
            f"{c.build.max_batch_size} exceeds build.max_num_tokens "
            f"({c.build.max_num_tokens}): every scheduled request needs at least one token "
            "of the step"
        ),
    ),
    (
        "rule:beam_on_pytorch",
        ("build", "max_beam_width"),
        lambda c: c.backend == "pytorch" and c.build.max_beam_width > 1,
        lambda c: "beam search is planned for the engine backend only; set 1 or backend: engine",
    ),
)


def _rules(cfg: BuildConfig) -> list[tuple[str, tuple, str]]:
    """Cross-field rules: (code, key path, message)."""
    out = [(code, key, say(cfg)) for code, key, broken, say in _CROSS_FIELD_RULES if broken(cfg)]
    names = [g.name for g in cfg.target.gpus]
    for i, name in enumerate(names):
        if name in names[:i]:
            out.append(
                ("rule:duplicate_gpu", ("target", "gpus", i, "name"), f"{name} listed twice")
            )
    problem = versions.window_problem(cfg.backend, cfg.target.trtllm_version)
    if problem:
        out.append(("rule:version_outside_window", ("target", "trtllm_version"), problem))
    return out + lora_rules(cfg.lora)


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


@dataclass
class Checked:
    """One read of the file: the chosen settings, every usable profile's, the warnings, and
    where each key is in the file (so that a later stage can name FILE:LINE for a key)."""

    chosen: BuildConfig
    profiles: dict[str, BuildConfig]  # the profiles without problems
    descriptions: dict[str, str]
    warnings: list[Issue]  # problems of profiles that are not selected
    source: str = ""
    profile: str | None = None
    lines: dict[tuple, int] = field(default_factory=dict, repr=False)

    @property
    def config(self) -> BuildConfig:
        return self.chosen

    def where(self, key: str) -> str:
        """FILE:LINE of a dotted key of the chosen settings (the profile's line when it sets
        the key), or FILE alone when the key is not in the file."""
        parts = tuple(
            int(index) if index else name for name, index in KEY_PART.findall(key)
        )  # "lora.adapters[1].path" -> ("lora", "adapters", 1, "path")
        _, line = _locate(parts, self.lines, self.profile)
        return f"{self.source}:{line}" if line else self.source

    def document(self) -> dict:
        return document(self.chosen, self.source, self.profile)

    @property
    def hash(self) -> str:
        return self.document()["config_hash"]


def check(path: str | Path, profile: str | None = None) -> Checked:
    """Validate the whole file and apply `profile`. Problems of the defaults and of the chosen
    profile are errors (ConfigError); those of the other profiles are warnings."""
    source = str(path)
    data, lines = _read_yaml(Path(path), source)
    if not isinstance(data, dict):
        line = lines.get(())
        raise ConfigError(source, [Issue("wrong_type", "(top level)", line, "expected a mapping")])
    base = {k: v for k, v in data.items() if k != "profiles"}
    chosen, errors = _validate(base, lines, None)
    profiles = data.get("profiles")
    section: list[Issue] = []  # problems of the profiles key itself
    if profiles is None:
        profiles = {}
    elif not isinstance(profiles, dict):
        where = lines.get(("profiles",))
        section.append(Issue("wrong_type", "profiles", where, "expected a mapping"))
        profiles = {}
    found: dict[Any, list[Issue]] = {}
    usable: dict[str, BuildConfig] = {}
    for name, body in profiles.items():
        cfg, found[name] = _check_profile(name, body, base, lines)
        if cfg is not None and not found[name]:
            usable[name] = cfg
    others = [(str(n), issues) for n, issues in found.items() if profile is None or n != profile]
    if profile is not None:
        errors += section + found.get(profile, [])
        chosen = usable.get(profile)
        if profile not in profiles:
            errors.append(_unknown_profile(profile, profiles, lines))
    else:
        others.append((None, section))
    errors = _dedupe(errors)
    taken = {(i.code, i.path, i.line) for i in errors}
    warnings = [
        replace(i, profile=name)
        for name, issues in others
        for i in _dedupe(issues)
        if (i.code, i.path, i.line) not in taken
    ]
    if errors or chosen is None:
        raise ConfigError(source, errors or [_internal()], warnings)
    descriptions = {n: (profiles[n].get("description") or "") for n in usable}
    return Checked(chosen, usable, descriptions, warnings, source, profile, lines)


def _internal() -> Issue:  # unreachable: no error means the chosen settings validated
    return Issue("internal", "(file)", None, "no config resolved")


def _check_profile(
    name: Any, body: Any, base: dict, lines: dict
) -> tuple[BuildConfig | None, list]:
    """One profile applied to the defaults: its settings (None when unusable) and its issues."""
    where = ("profiles", name)
    if not isinstance(name, str) or not PROFILE_NAME.match(name):
        message = "profile names use a-z, 0-9, '-', '.', '_' (e.g. h100-fp8)"
        return None, [Issue("bad_profile_name", _dotted(where), lines.get(where), message)]
    if not isinstance(body, dict):
        return None, [Issue("wrong_type", _dotted(where), lines.get(where), "expected a mapping")]
    issues = []
    desc = body.get("description")
    if desc is not None and not isinstance(desc, str):
        line = lines.get((*where, "description"))
        issues.append(
            Issue("wrong_type", _dotted((*where, "description")), line, "expected a string")
        )
    over = {k: v for k, v in body.items() if k != "description"}
    if "profiles" in over:
        line = lines.get((*where, "profiles"))
        issues.append(
            Issue("unknown_key", _dotted((*where, "profiles")), line, "profiles do not nest")
        )
        return None, issues
    issues += _backend_pin(name, over, base, lines)
    cfg, found = _validate(_merge(base, over), lines, name)
    return cfg, issues + found


def _backend_pin(name: str, over: dict, base: dict, lines: dict) -> list[Issue]:
    """A profile that changes the backend pins a TensorRT-LLM version of that backend's window:
    the top-level target.trtllm_version then only has to fit the top-level backend's."""
    backend = over.get("backend")
    target = over.get("target")
    if backend not in BACKENDS or backend == base.get("backend"):
        return []
    if isinstance(target, dict) and "trtllm_version" in target:
        return []
    where = ("profiles", name, "backend")
    message = (
        f"a profile that changes the backend to {backend} also sets target.trtllm_version "
        f"inside that backend's window ({versions.window_text(backend)}), so that the top-level "
        "version can be any of its own backend's"
    )
    return [Issue("rule:profile_backend_needs_version", _dotted(where), lines.get(where), message)]


def _unknown_profile(profile: str, profiles: dict, lines: dict) -> Issue:
    names = sorted(str(n) for n in profiles)
    close = _suggest(profile, names, cutoff=0.5)
    hint = f"; did you mean {close!r}?" if close and close != profile else ""
    return Issue(
        "unknown_profile",
        "profiles",
        lines.get(("profiles",)),
        f"no profile {_show(profile)}{hint} (profiles: {', '.join(names) or 'none'})",
    )


def load(path: str | Path, profile: str | None = None) -> BuildConfig:
    """Validate the whole file and return the settings with `profile` applied."""
    return check(path, profile).chosen


def _dedupe(issues: list[Issue]) -> list[Issue]:
    seen, out = set(), []
    for issue in issues:
        key = (issue.code, issue.path, issue.line)
        if key not in seen:
            seen.add(key)
            out.append(issue)
    return out


def profiles_of(path: str | Path) -> dict[str, str]:
    """Usable profile name -> description, after validating the whole file."""
    return check(path).descriptions


def profiles_for(checked: Checked, compute_capability: str) -> list[str]:
    """Usable profiles whose target GPUs include this compute capability."""
    return [
        name
        for name, cfg in checked.profiles.items()
        if compute_capability in {g.compute_capability for g in cfg.target.gpus}
    ]


def config_hash(config: dict) -> str:
    canon = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


def document(cfg: BuildConfig, path: str | Path, profile: str | None) -> dict:
    """The resolved-config JSON document (docs/internals.md, "Resolved config")."""
    body = cfg.model_dump(mode="json")
    if body["lora"] is None:  # without the section the document (and its hash) is as before
        del body["lora"]
    return {
        "schema_version": SCHEMA_VERSION,
        "source": str(path),
        "profile": profile,
        "config_hash": config_hash(body),
        "config": body,
    }


def resolve(path: str | Path, profile: str | None = None) -> dict:
    """The resolved-config JSON document of `profile` (warnings are dropped: see check())."""
    return document(load(path, profile), path, profile)


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


def print_issues(source: str, errors: list[Issue], warnings: list[Issue], prog: str = "") -> None:
    """One stderr line per problem: `config error: FILE:LINE: KEY: message`, then warnings."""
    for issue in errors:
        print(f"{prog}config error: {issue.render(source)}", file=sys.stderr)
    for issue in warnings:
        print(f"{prog}config warning: {issue.render_warning(source)}", file=sys.stderr)

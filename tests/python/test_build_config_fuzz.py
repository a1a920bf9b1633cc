"""build_config.py main([...]) on thousands of mutations of the shipped config (hypothesis).

Each example deletes, renames, retypes, duplicates, deepens or moves keys of
configs/export/tensorrt_llm.yaml (a few at once), writes the result as block YAML and runs the
validator in-process. It must exit 0 (a resolved document on stdout) or 2 (nothing on stdout),
with every stderr line `config error|warning: FILE[:LINE]: KEY: message`: never a traceback,
never another exit code, each run of main() under a second.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import io
import json
import re
import time
from pathlib import Path
from typing import Any

import build_config
import check_config
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "export" / "tensorrt_llm.yaml"
SHIPPED_DATA = yaml.safe_load(SHIPPED.read_text())
PROFILES = sorted(SHIPPED_DATA["profiles"])
KEYS = sorted({k for k in build_config.json_schema()["$defs"]["Build"]["properties"]} | {
    "backend", "target", "dtype", "build", "parallel", "quantization", "runtime", "profiles",
    "trtllm_version", "gpus", "name", "compute_capability", "memory_gib", "mode", "calibration",
})  # fmt: skip

# A document is a tree of ("map", [(key, node), ...]) (duplicate keys allowed), ("seq", [node])
# and ("scalar", value), so that mutations can make what a dict cannot hold.
Node = tuple[str, Any]


def _tree(value: Any) -> Node:
    if isinstance(value, dict):
        return ("map", [(k, _tree(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("seq", [_tree(v) for v in value])
    return ("scalar", value)


class Plain(str):
    """Scalar text written as it is, for YAML to resolve (~, 2024-13-45, 1e400, 0x1F, ...)."""


_RESOLVER = yaml.resolver.Resolver()
_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(value: Any) -> str:
    """YAML text of a scalar: plain when YAML reads it back as the same value, else JSON's
    double-quoted form (YAML reads that too); a Plain is written as it is."""
    if isinstance(value, Plain):
        return str(value)
    if value is None or isinstance(value, (bool, int)):
        return json.dumps(value)
    if isinstance(value, float):
        return {"nan": ".nan", "inf": ".inf", "-inf": "-.inf"}.get(repr(value), repr(value))
    plain = _PLAIN.fullmatch(value)
    if plain and _RESOLVER.resolve(yaml.ScalarNode, value, (True, False)) == _STR_TAG:
        return value
    return json.dumps(value)


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]*")


def _emit(node: Node, indent: int = 0) -> list[str]:
    """Block YAML lines of a tree (a scalar node gives one line without indentation)."""
    kind, body = node
    pad = " " * indent
    if kind == "scalar" or not body:
        return [_scalar(body) if kind == "scalar" else ("{}" if kind == "map" else "[]")]
    out = []
    for item in body:
        key, child = item if kind == "map" else (None, item)
        head = f"{pad}{_scalar(key)}:" if kind == "map" else f"{pad}-"
        lines = _emit(child, indent + 2)
        if child[0] == "scalar" or not child[1]:
            out.append(f"{head} {lines[0]}")
        else:
            out += [head, *lines]
    return out


def _mappings(node: Node) -> list[list]:
    """Every mapping's pair list in the tree (mutable: mutations edit them in place)."""
    kind, body = node
    found = [body] if kind == "map" else []
    children = [c for _, c in body] if kind == "map" else (body if kind == "seq" else [])
    for child in children:
        found += _mappings(child)
    return found


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.sampled_from(["1.2.0", "0.16.0", "9.0", "fp8", "auto", "bfloat16", "paged"]),
    st.sampled_from(
        ["~", "2024-13-45", "9" * 4000, "1e400", ".nan", "0x1F", "0o17", "yes", "9.0"]
    ).map(Plain),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)
    ),
    max_leaves=6,
)
key_names = st.one_of(st.sampled_from(KEYS), st.text(st.characters(codec="utf-8"), max_size=20))


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, str | None]:
    """(YAML text, --profile value) after 1 to 4 mutations of the shipped config."""
    tree = _tree(SHIPPED_DATA)  # a new tree: mutations never touch SHIPPED_DATA
    for _ in range(draw(st.integers(1, 4))):
        pairs = draw(st.sampled_from(_mappings(tree)))
        op = draw(st.sampled_from(["delete", "rename", "retype", "duplicate", "deepen", "move"]))
        if not pairs:
            continue
        i = draw(st.integers(0, len(pairs) - 1))
        key, child = pairs[i]
        if op == "delete":
            del pairs[i]
        elif op == "rename":
            new = draw(st.one_of(key_names, st.just(str(key).upper()), st.just(str(key)[1:])))
            pairs[i] = (new, child)
        elif op == "retype":
            pairs[i] = (key, _tree(draw(values)))
        elif op == "duplicate":  # a copy: one node twice in the tree, then moved into
            # itself, would be a cycle (seen once as a RecursionError in this generator)
            pairs.insert(draw(st.integers(0, len(pairs))), (key, copy.deepcopy(child)))
        elif op == "deepen":
            pairs[i] = (key, ("map", [(draw(key_names), child)]))
        else:  # move: the pair goes to another mapping (a key at the wrong level)
            del pairs[i]
            draw(st.sampled_from(_mappings(tree) or [pairs])).append((key, child))
    profile = draw(st.one_of(st.none(), st.sampled_from(PROFILES), key_names))
    return "\n".join(_emit(tree)) + "\n", profile


@settings(
    max_examples=2000,
    deadline=None,  # the time that counts, main()'s, is asserted in the test (< 1 s)
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=mutated())
def test_any_mutation_of_the_shipped_config_exits_0_or_2_with_keyed_lines(case, tmp_path_factory):
    text, profile = case
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    # as build_tensorrt_llm.sh calls it: --profile=P, so that a P that starts with '-' is a value
    argv = ["--config", str(path)] + ([] if profile is None else [f"--profile={profile}"])
    out, err, code, seconds = _run(argv)
    assert code in (0, 2), (code, err)
    assert seconds < 1.0
    line = re.compile(rf"^config (error|warning): {re.escape(str(path))}(:\d+)?: [^\n]+?: .+$")
    rows = err.splitlines()
    assert all(line.match(row) for row in rows), err
    if code == 0:
        assert json.loads(out)["schema_version"] == 1
        assert not any(row.startswith("config error") for row in rows)
    else:
        assert out == ""
        assert any(row.startswith("config error") for row in rows), err


def _run(argv: list[str]) -> tuple[str, str, int, float]:
    """main(argv) with stdout and stderr captured (a capsys fixture cannot reset per example),
    and its duration. The garbage collector is off meanwhile: after thousands of examples a full
    collection of the test process's heap (hypothesis' data, torch from other tests) takes
    tenths of a second, which is not the validator's time."""
    out, err = io.StringIO(), io.StringIO()
    gc.disable()
    try:
        start = time.perf_counter()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = check_config.main(argv)
        seconds = time.perf_counter() - start
    finally:
        gc.enable()
    return out.getvalue(), err.getvalue(), code, seconds


def test_the_unmutated_tree_writes_back_the_shipped_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("\n".join(_emit(_tree(SHIPPED_DATA))) + "\n", encoding="utf-8")
    assert yaml.safe_load(path.read_text()) == SHIPPED_DATA
    assert _run(["--config", str(path)])[:3] == (_run(["--config", str(SHIPPED)])[0].replace(
        str(SHIPPED), str(path)), "", 0)  # fmt: skip

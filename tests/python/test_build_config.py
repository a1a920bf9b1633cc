"""build_config.py: the shipped config, good and bad config files, profiles, schema, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import NamedTuple

import build_config
import check_config
import pytest
import versions

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "export" / "tensorrt_llm.yaml"
SCHEMA = REPO / "configs" / "export" / "tensorrt_llm.schema.json"
FIXTURES = REPO / "tests" / "fixtures" / "configs"
# the shipped example configs (configs/export/*.yaml) must load too
GOOD = sorted((FIXTURES / "good").glob("*.yaml")) + sorted(SHIPPED.parent.glob("*.yaml"))
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))


class Row(NamedTuple):
    """One bad config: what main() must say about it (exit 2, nothing on stdout)."""

    config: Path
    profile: str | None
    code: str
    key: str
    line: int | None
    message: str


def _row(path: Path) -> Row:
    """A bad fixture's header: `# expect: CODE KEY`, then `# profile: P` and `# message: TEXT`
    (both optional); the line the error names ends with `#!`."""
    lines = path.read_bytes().decode("utf-8", errors="replace").splitlines()
    match = re.match(r"^# expect: (\S+) (.+)$", lines[0])
    if match is None:
        raise ValueError(f"{path.name}: first line must be '# expect: CODE PATH'")
    head = dict(re.findall(r"^# (profile|message): (.*)$", "\n".join(lines[1:3]), re.M))
    marked = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith("#!")]
    return Row(
        path,
        head.get("profile"),
        match.group(1),
        match.group(2),
        marked[0] if marked else None,
        head.get("message", ""),
    )


def _generated(tmp: Path, index: int) -> Row:
    """Bad config `index` of those too large or too odd to keep as files, made in a temp dir."""
    text = (FIXTURES / "good" / "minimal.yaml").read_text()
    files = {
        "ten-mib.yaml": "# padding\n" * (1024 * 1024),
        "one-byte-over.yaml": text + "#" * (build_config.MAX_FILE_BYTES - len(text) - 1) + "\n\n",
        "long-value.yaml": text.replace("dataset: null", f"dataset: {'d' * 5000}.jsonl"),
        "many-nodes.yaml": text.replace("build:\n", "build:\n" + "".join(
            f"  k{i}: {i}\n" for i in range(build_config.MAX_NODES))),
        "deep-flow.yaml": text.replace("dtype: auto", "dtype: " + "[" * 40 + "]" * 40),
    }  # fmt: skip
    limit = "a build config is at most 1 MiB"
    ten = f"10.0 MiB (10485760 bytes): {limit}"
    at = SHIPPED.read_text().splitlines().index("profiles:") + 1  # the line of profiles:
    rows = [
        Row(tmp / "ten-mib.yaml", None, "too_big", "(file)", None, ten),
        Row(tmp / "one-byte-over.yaml", None, "too_big", "(file)", None, "(1048577 bytes)"),
        Row(Path("/dev/zero"), None, "too_big", "(file)", None, f"more than 1 MiB: {limit}"),
        Row(tmp / "long-value.yaml", None, "too_long", "(file)", 30, "5006 characters"),
        Row(tmp / "many-nodes.yaml", None, "too_many_nodes", "(file)", 5001, "more than 10000"),
        Row(tmp / "deep-flow.yaml", None, "too_deep", "(file)", 9, "more than 16 levels"),
        Row(SHIPPED, "h100-fp9", "unknown_profile", "profiles", at, "did you mean 'h100-fp8'?"),
        Row(SHIPPED, "H100-FP8", "unknown_profile", "profiles", at, "did you mean 'h100-fp8'?"),
        Row(tmp, None, "unreadable", "(file)", None, "Is a directory"),
        Row(tmp / "absent.yaml", None, "no_file", "(file)", None, "no such file"),
    ]  # fmt: skip
    row = rows[index]
    if row.config.name in files:
        row.config.write_text(files[row.config.name])
    return row


GENERATED = [
    "ten-mib", "one-byte-over", "dev-zero", "long-value", "many-nodes", "deep-flow",
    "unknown-profile", "unknown-profile-case", "directory", "missing-file",
]  # fmt: skip


def test_the_bad_config_table_has_at_least_60_rows():
    assert len(BAD) + len(GENERATED) >= 60


def _assert_refused(row: Row, capsys) -> None:
    argv = ["--config", str(row.config)] + (
        [] if row.profile is None else ["--profile", row.profile]
    )
    assert check_config.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    where = f"{row.config}:{row.line}: " if row.line else f"{row.config}: "
    assert any(line.startswith(f"config error: {where}{row.key}: ") and row.message in line
               for line in err.splitlines()), err  # fmt: skip
    with pytest.raises(build_config.ConfigError) as caught:
        build_config.check(row.config, row.profile)
    assert (row.code, row.key) in {(i.code, i.path) for i in caught.value.issues}


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_config_resolves(path, capsys):
    assert check_config.main(["--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""  # not even a warning
    doc = json.loads(out)
    assert doc["schema_version"] == 1
    assert doc["config_hash"] == build_config.config_hash(doc["config"])


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_exits_2_naming_key_and_line(path, capsys):
    _assert_refused(_row(path), capsys)


@pytest.mark.parametrize("index", range(len(GENERATED)), ids=GENERATED)
def test_generated_bad_config_exits_2_naming_the_limit(index, tmp_path, capsys):
    _assert_refused(_generated(tmp_path, index), capsys)


def test_unknown_key_suggests_the_closest_name():
    with pytest.raises(build_config.ConfigError) as caught:
        build_config.load(FIXTURES / "bad" / "unknown-key-typo.yaml")
    assert "did you mean 'max_seq_len'" in caught.value.issues[0].message


@pytest.mark.parametrize("profile", build_config.profiles_of(SHIPPED))
def test_every_shipped_profile_resolves_and_keeps_its_target(profile):
    doc = build_config.resolve(SHIPPED, profile)
    assert doc["profile"] == profile
    cfg = doc["config"]
    raw = build_config._read_yaml(SHIPPED, str(SHIPPED))[0]["profiles"][profile]
    if "target" in raw:
        assert cfg["target"]["gpus"][0]["name"] == raw["target"]["gpus"][0]["name"]
    if "quantization" in raw:
        assert cfg["quantization"]["mode"] == raw["quantization"].get("mode", "none")


def test_shipped_defaults_match_the_documented_contract_keys():
    doc = build_config.resolve(SHIPPED)
    cfg = doc["config"]
    assert set(cfg) == {
        "backend",
        "target",
        "dtype",
        "build",
        "parallel",
        "quantization",
        "runtime",
    }
    assert set(doc) == {"schema_version", "source", "profile", "config_hash", "config"}
    assert cfg["backend"] == "engine" and cfg["parallel"] == {"tp_size": 1, "pp_size": 1}


def test_profile_overrides_only_what_it_names_and_replaces_lists():
    base = build_config.resolve(FIXTURES / "good" / "fp8-profiles.yaml")["config"]
    fp8 = build_config.resolve(FIXTURES / "good" / "fp8-profiles.yaml", "h100-fp8")["config"]
    l40s = build_config.resolve(FIXTURES / "good" / "fp8-profiles.yaml", "l40s")["config"]
    assert fp8["quantization"]["mode"] == "fp8"
    assert fp8["quantization"]["calibration"]["dataset"] == "data/calib.jsonl"
    assert fp8["quantization"]["calibration"]["num_samples"] == 512  # merged, not replaced
    assert fp8["build"]["max_seq_len"] == base["build"]["max_seq_len"]
    assert [g["name"] for g in l40s["target"]["gpus"]] == ["L40S"]  # list replaced
    assert l40s["target"]["trtllm_version"] == base["target"]["trtllm_version"]


def test_a_problem_in_an_unselected_profile_is_a_warning_line_and_the_build_goes_on(capsys):
    path = FIXTURES / "bad" / "profile-conflict.yaml"
    row = _row(path)
    assert check_config.main(["--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["profile"] is None
    (line,) = err.splitlines()
    assert line.startswith(f"config warning: {path}:{row.line}: {row.key}: ")
    assert line.endswith("(profile long is not selected: this build goes on)")
    assert check_config.main(["--config", str(path), "--profile", "long"]) == 2
    assert capsys.readouterr().err.startswith(f"config error: {path}:{row.line}: {row.key}: ")


def test_a_broken_profile_never_blocks_another_profile(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    tail = "profiles:\n  good: {dtype: bfloat16}\n  broken: {dtype: bf16}\n  typo: {biuld: {}}\n"
    path.write_text((FIXTURES / "good" / "minimal.yaml").read_text() + tail)
    assert check_config.main(["--config", str(path), "--profile", "good"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["config"]["dtype"] == "bfloat16"
    assert [w.split(": ")[1:3] for w in err.splitlines()] == [
        [f"{path}:40", "profiles.broken.dtype"],
        [f"{path}:41", "profiles.typo.biuld"],
    ]
    assert check_config.main(["--config", str(path), "--list-profiles"]) == 0
    out, err = capsys.readouterr()
    assert out == "good\t\n"  # only the usable profiles; the others are warnings
    assert len(err.splitlines()) == 2


def test_a_rule_broken_only_by_a_profile_points_at_the_profile(tmp_path):
    path = tmp_path / "c.yaml"
    text = (FIXTURES / "good" / "minimal.yaml").read_text()
    path.write_text(text + "profiles:\n  nochunk:\n    runtime: {enable_chunked_context: false}\n"
                    "    build: {max_num_tokens: 1024}\n")  # fmt: skip
    with pytest.raises(build_config.ConfigError) as caught:
        build_config.load(path, "nochunk")
    (issue,) = caught.value.issues
    assert issue.path == "profiles.nochunk.build.max_num_tokens"
    assert issue.line == len(text.splitlines()) + 4


def _engine_versions() -> list[str]:
    """A version of every release line in the engine backend's window, and its last one."""
    window = versions.tables()["backends"]["engine"]
    lines = [f"{line}.0" for line in versions.tables()["trtllm"]]
    return [v for v in lines if versions.window_problem("engine", v) is None] + [window["max"]]


@pytest.mark.parametrize("version", _engine_versions())
def test_the_shipped_config_stays_valid_for_any_engine_version(version, tmp_path, capsys):
    text = SHIPPED.read_text()
    assert 'trtllm_version: "1.2.0"\n' in text
    path = tmp_path / "tensorrt_llm.yaml"
    path.write_text(text.replace('trtllm_version: "1.2.0"\n', f'trtllm_version: "{version}"\n', 1))
    for profile in [None, *build_config.profiles_of(SHIPPED)]:
        argv = ["--config", str(path)] + ([] if profile is None else ["--profile", profile])
        assert check_config.main(argv) == 0, (version, profile)
        assert capsys.readouterr().err == "", (version, profile)


def test_a_profile_that_pins_its_backends_version_is_valid(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    text = (FIXTURES / "good" / "minimal.yaml").read_text().replace('"1.2.0"', '"0.16.0"')
    tail = 'profiles:\n  torch:\n    backend: pytorch\n    target: {trtllm_version: "1.3.0"}\n'
    path.write_text(text + tail)
    assert check_config.main(["--config", str(path), "--profile", "torch"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["config"]["target"]["trtllm_version"] == "1.3.0"
    assert err == ""


def test_unknown_profile_is_exit_2_with_a_suggestion(capsys):
    assert check_config.main(["--config", str(SHIPPED), "--profile", "h100-fp9"]) == 2
    err = capsys.readouterr().err
    assert "no profile 'h100-fp9'; did you mean 'h100-fp8'?" in err


def test_missing_file_is_exit_2(tmp_path, capsys):
    assert check_config.main(["--config", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_hash_follows_the_resolved_values(tmp_path):
    a = build_config.resolve(FIXTURES / "good" / "minimal.yaml")
    b = build_config.resolve(FIXTURES / "good" / "chunked-small-steps.yaml")
    again = build_config.resolve(FIXTURES / "good" / "minimal.yaml")
    assert a["config_hash"] == again["config_hash"] != b["config_hash"]
    moved = tmp_path / "x.yaml"
    moved.write_text(
        "# only a comment differs\n" + (FIXTURES / "good" / "minimal.yaml").read_text()
    )
    assert build_config.resolve(moved)["config_hash"] == a["config_hash"]


def test_schema_file_is_generated_from_the_models():
    assert json.loads(SCHEMA.read_text()) == build_config.json_schema(), (
        "regenerate: scripts/export/check_config.py --schema "
        "> configs/export/tensorrt_llm.schema.json"
    )


def test_schema_covers_every_key_of_the_shipped_file():
    schema = build_config.json_schema()
    defs = schema["$defs"]

    def walk(node: dict, data: dict, where: str) -> None:
        props = node["properties"]
        for key, value in data.items():
            assert key in props, f"{where}{key} missing from the schema"
            sub = props[key]
            ref = sub.get("$ref") or next(
                (a.get("$ref") for a in sub.get("anyOf", []) if "$ref" in a), None
            )
            if isinstance(value, dict) and ref and key != "profiles":
                walk(defs[ref.rsplit("/", 1)[1]], value, f"{where}{key}.")

    data = build_config._read_yaml(SHIPPED, str(SHIPPED))[0]
    walk(schema, data, "")
    profile_def = defs["Profile"]
    for body in data["profiles"].values():
        walk(profile_def, body, "profiles.*.")


def test_get_prints_one_scalar_and_refuses_mappings(capsys):
    assert check_config.main(["--config", str(SHIPPED), "--profile", "a10-int8",
                              "--get", "build.max_seq_len"]) == 0  # fmt: skip
    assert capsys.readouterr().out == "4096\n"
    assert check_config.main(["--config", str(SHIPPED), "--get", "target.gpus.0.name"]) == 0
    assert capsys.readouterr().out == "H100\n"
    assert check_config.main(["--config", str(SHIPPED), "--get", "build"]) == 2


def test_list_profiles_prints_name_tab_description(capsys):
    assert check_config.main(["--config", str(SHIPPED), "--list-profiles"]) == 0
    rows = capsys.readouterr().out.splitlines()
    names = [r.split("\t")[0] for r in rows]
    assert {"h100-fp8", "a100-bf16", "l40s-int4", "h200-fp8"} <= set(names)
    assert all(r.split("\t")[1] for r in rows)


def test_a_missing_default_is_reported_once_not_once_per_profile(tmp_path):
    text = (FIXTURES / "good" / "fp8-profiles.yaml").read_text()
    path = tmp_path / "c.yaml"
    path.write_text(text.replace("  max_seq_len: 8192\n", ""))
    with pytest.raises(build_config.ConfigError) as caught:
        build_config.load(path)
    assert [(i.code, i.path) for i in caught.value.issues] == [("missing_key", "build.max_seq_len")]


@pytest.mark.parametrize(
    ("tail", "profile", "path", "suggestion"),
    [
        ("profile:\n  x: {dtype: bfloat16}\n", None, "profile", "profiles"),
        ("profiles:\n  x: {descripton: fast}\n", "x", "profiles.x.descripton", "description"),
        ("profiles:\n  x: {Build: {}}\n", "x", "profiles.x.Build", "build"),
        ("profiles:\n  x: {max_batch_size: 8}\n", "x", "profiles.x.max_batch_size", "build:"),
    ],
)
def test_did_you_mean_knows_profiles_and_descriptions(tail, profile, path, suggestion, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text((FIXTURES / "good" / "minimal.yaml").read_text() + tail)
    with pytest.raises(build_config.ConfigError) as caught:
        build_config.load(cfg, profile)
    (issue,) = caught.value.issues
    assert issue.path == path
    assert repr(suggestion) in issue.message or f"belongs under {suggestion}" in issue.message

"""build_config.py: the shipped config, good and bad config files, profiles, schema, CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import build_config
import pytest

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "configs" / "export" / "tensorrt_llm.yaml"
SCHEMA = REPO / "configs" / "export" / "tensorrt_llm.schema.json"
FIXTURES = REPO / "tests" / "fixtures" / "configs"
# the shipped example configs (configs/export/*.yaml) must load too
GOOD = sorted((FIXTURES / "good").glob("*.yaml")) + sorted(SHIPPED.parent.glob("*.yaml"))
BAD = sorted((FIXTURES / "bad").glob("*.yaml"))


def _expectation(path: Path) -> tuple[str, str, int | None]:
    lines = path.read_text().splitlines()
    match = re.match(r"^# expect: (\S+) (.+)$", lines[0])
    if match is None:
        raise ValueError(f"{path.name}: first line must be '# expect: CODE PATH'")
    marked = [i + 1 for i, line in enumerate(lines) if line.rstrip().endswith("#!")]
    return match.group(1), match.group(2), (marked[0] if marked else None)


def test_there_are_at_least_25_bad_configs():
    assert len(BAD) >= 25


@pytest.mark.parametrize("path", GOOD, ids=[p.stem for p in GOOD])
def test_good_config_resolves(path, capsys):
    assert build_config.main(["--config", str(path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema_version"] == 1
    assert doc["config_hash"] == build_config.config_hash(doc["config"])


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_exits_2_naming_key_and_line(path, capsys):
    code, key, line = _expectation(path)
    assert build_config.main(["--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    where = f"{path}:{line}: " if line else f"{path}:"
    assert any(row.startswith(f"config error: {where}") and f" {key}: " in row
               for row in err.splitlines()), err  # fmt: skip
    with pytest.raises(build_config.ConfigError) as caught:
        build_config.load(path)
    assert (code, key) in {(i.code, i.path) for i in caught.value.issues}


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


def test_an_error_in_an_unselected_profile_still_fails_the_file():
    path = FIXTURES / "bad" / "profile-conflict.yaml"
    with pytest.raises(build_config.ConfigError):
        build_config.load(path)  # no profile chosen


def test_a_rule_broken_only_by_a_profile_points_at_the_profile(tmp_path):
    path = tmp_path / "c.yaml"
    text = (FIXTURES / "good" / "minimal.yaml").read_text()
    path.write_text(text + "profiles:\n  nochunk:\n    runtime: {enable_chunked_context: false}\n"
                    "    build: {max_num_tokens: 1024}\n")  # fmt: skip
    with pytest.raises(build_config.ConfigError) as caught:
        build_config.load(path)
    (issue,) = caught.value.issues
    assert issue.path == "profiles.nochunk.build.max_num_tokens"
    assert issue.line == len(text.splitlines()) + 4


def test_unknown_profile_is_exit_2_with_a_suggestion(capsys):
    assert build_config.main(["--config", str(SHIPPED), "--profile", "h100-fp9"]) == 2
    err = capsys.readouterr().err
    assert "no profile 'h100-fp9'; did you mean 'h100-fp8'?" in err


def test_missing_file_is_exit_2(tmp_path, capsys):
    assert build_config.main(["--config", str(tmp_path / "nope.yaml")]) == 2
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
        "regenerate: python scripts/export/lib/build_config.py --schema "
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
    assert build_config.main(["--config", str(SHIPPED), "--profile", "a10-int8",
                              "--get", "build.max_seq_len"]) == 0  # fmt: skip
    assert capsys.readouterr().out == "4096\n"
    assert build_config.main(["--config", str(SHIPPED), "--get", "target.gpus.0.name"]) == 0
    assert capsys.readouterr().out == "H100\n"
    assert build_config.main(["--config", str(SHIPPED), "--get", "build"]) == 2


def test_list_profiles_prints_name_tab_description(capsys):
    assert build_config.main(["--config", str(SHIPPED), "--list-profiles"]) == 0
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
    ("tail", "path", "suggestion"),
    [
        ("profile:\n  x: {dtype: bfloat16}\n", "profile", "profiles"),
        ("profiles:\n  x: {descripton: fast}\n", "profiles.x.descripton", "description"),
    ],
)
def test_did_you_mean_knows_profiles_and_descriptions(tail, path, suggestion, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text((FIXTURES / "good" / "minimal.yaml").read_text() + tail)
    with pytest.raises(build_config.ConfigError) as caught:
        build_config.load(cfg)
    (issue,) = caught.value.issues
    assert issue.path == path
    assert f"did you mean {suggestion!r}" in issue.message

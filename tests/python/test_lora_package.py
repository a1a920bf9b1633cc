"""The lora package step (steps/package_adapters.py, lib/lora_package.py) and build.json's "lora"
part (publish.lora_part): every adapter copied with its fingerprint, nothing half-written."""

from __future__ import annotations

import json
from pathlib import Path

import lora_package
import package_adapters
import publish
import pytest
import tiny_models
from errors import ExportError


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-package")
    base = tiny_models.make_model("llama", root / "base")
    return {
        "a": tiny_models.make_adapter(base, root / "a"),
        "b": tiny_models.make_adapter(base, root / "b", r=8, target_modules=["q_proj"]),
    }


def argv(out: Path, *names_paths: tuple[str, Path], fingerprints: dict | None = None) -> list:
    args = ["--output", str(out)]
    for name, path in names_paths:
        fp = (fingerprints or {}).get(name) or lora_package.fingerprint(path)["fingerprint"]
        args += ["--adapter", name, str(path), fp]
    return args


def test_the_step_copies_config_and_weights_with_their_fingerprints(made, tmp_path, capsys):
    out = tmp_path / "stage" / "lora"
    assert package_adapters.main(argv(out, ("sft", made["a"]), ("dpo", made["b"]))) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc == json.loads((out / "adapters.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["adapters.json", "dpo", "sft"]
    sft, dpo = doc["adapters"]
    assert (sft["name"], sft["lora_int_id"], sft["path"]) == ("sft", 1, "lora/sft")
    assert dpo["lora_int_id"] == 2
    for name in lora_package.FILES:
        assert (out / "sft" / name).read_bytes() == (made["a"] / name).read_bytes()
    assert sft["fingerprint"] == lora_package.fingerprint(made["a"])["fingerprint"]
    assert sft["files"] == lora_package.fingerprint(out / "sft")["files"]
    assert sft["fingerprint"] != dpo["fingerprint"]


def test_an_adapter_that_changed_after_the_plan_stops_the_step_and_leaves_nothing(
    made, tmp_path, capsys
):
    out = tmp_path / "lora"
    planned = {"b": "sha256:" + "0" * 64}
    code = package_adapters.main(
        argv(out, ("a", made["a"]), ("b", made["b"]), fingerprints=planned)
    )
    assert code == 1
    err = capsys.readouterr().err
    assert (
        "package_adapters: error: adapter b" in err and "changed after the build was planned" in err
    )
    assert not out.exists() and not out.with_name("lora.partial").exists()


def test_the_step_never_overwrites_and_reports_a_missing_file(made, tmp_path, capsys):
    out = tmp_path / "lora"
    out.mkdir()
    assert package_adapters.main(argv(out, ("a", made["a"]))) == 2
    assert "already exists" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()
    bad = ["--output", str(tmp_path / "new"), "--adapter", "x", str(empty), "sha256:0"]
    assert package_adapters.main(bad) == 1
    assert "adapter_config.json" in capsys.readouterr().err
    assert not (tmp_path / "new").exists() and not (tmp_path / "new.partial").exists()


def _plan_part(made) -> dict:
    adapters = [
        {
            "name": n,
            "lora_int_id": i + 1,
            "fingerprint": lora_package.fingerprint(made[n])["fingerprint"],
        }
        for i, n in enumerate(("a", "b"))
    ]
    return {"lora": {"schema_version": 1, "route": "engine", "adapters": adapters}}


def test_build_json_lists_each_planned_adapter_with_its_packaged_files(made, tmp_path):
    assert package_adapters.main(argv(tmp_path / "lora", ("a", made["a"]), ("b", made["b"]))) == 0
    part = publish.lora_part(_plan_part(made), tmp_path)
    assert [a["path"] for a in part["adapters"]] == ["lora/a", "lora/b"]
    assert set(part["adapters"][0]["files"]) == set(lora_package.FILES)
    assert part["route"] == "engine"
    assert publish.lora_part({"lora": None}, tmp_path) is None


def test_publish_refuses_a_packaged_adapter_that_is_not_the_planned_one(made, tmp_path):
    assert package_adapters.main(argv(tmp_path / "lora", ("a", made["a"]), ("b", made["a"]))) == 0
    with pytest.raises(ExportError, match="lora/b is missing or not the adapter that was planned"):
        publish.lora_part(_plan_part(made), tmp_path)
    with pytest.raises(ExportError, match="wrote no"):
        publish.lora_part(_plan_part(made), tmp_path / "elsewhere")

"""lora_plan.py inside the plan: the package step first, trtllm-build's LoRA flags per recorded
version, lora_config checked against the LLM-API record, every adapter problem at once with
file:line, a build_id that follows the adapters; the strict fakes refuse unrecorded flags."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import build_config
import llm_api_options
import manifest
import plan
import pytest
import serve_script
import tiny_models
import typed_configs as configs
import yaml
from test_plan import facts, run_main

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "contracts"))
import cli_contract as cc  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "fakes"))
import make_dist_info  # noqa: E402

FAKES = REPO / "tests" / "fakes" / "bin"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-plan")
    base = tiny_models.make_model("llama", root / "base")
    attn = tiny_models.make_adapter(base, root / "attn", target_modules=["q_proj", "v_proj"])
    mlp = tiny_models.make_adapter(base, root / "mlp", r=8, target_modules=["gate_proj", "up_proj"])
    dora = tiny_models.make_adapter(base, root / "dora", use_dora=True)
    return {"base": base, "attn": attn, "mlp": mlp, "dora": dora}


def lora(*adapters: tuple[str, Path], max_rank: int = 16, targets="auto") -> dict:
    return {
        "adapters": [{"name": n, "path": str(p)} for n, p in adapters],
        "max_rank": max_rank,
        "target_modules": targets,
        "max_loras": 2,
        "max_cpu_loras": 8,
    }


def two(made) -> dict:
    return lora(("attn", made["attn"]), ("mlp", made["mlp"]))


def make(made, section: dict, version="1.2.0", backend="engine", staging="/stage") -> dict:
    cfg = configs.typed(
        **{
            "backend": backend,
            "target.trtllm_version": version,
            "lora": section,
            "dtype": "bfloat16",
        }
    )
    fact = facts(version, gpus=1)
    return plan.make_plan(cfg, fact, made["base"], staging, examples_dir="/ex", dry_run=True)


def step(p: dict, name: str) -> dict:
    return next(s for s in p["steps"] if s["name"] == name)


@pytest.mark.parametrize("version", ["0.16.0", "1.2.0"])
def test_the_engine_plan_packages_first_and_builds_with_the_recorded_lora_flags(made, version):
    p = make(made, two(made), version)
    assert [s["name"] for s in p["steps"]] == ["lora", "convert", "build"]
    assert not [c for c in p["checks"] if c["status"] == "fail" and c["id"].startswith("lora")]
    package = p["steps"][0]["argv"]
    assert package[1].endswith("steps/package_adapters.py") and package[2:4] == [
        "--output",
        "/stage/lora",
    ]
    assert package[4:7] == ["--adapter", "attn", str(made["attn"])]
    assert package[7] == p["lora"]["adapters"][0]["fingerprint"]
    build = step(p, "build")["argv"]
    args = cc.parse_argv(cc.load_record("trtllm-build", version), build[1:])
    assert args["lora_plugin"] == "bfloat16" and args["max_lora_rank"] == 16
    assert args["lora_dir"] == ["/stage/lora/attn", "/stage/lora/mlp"]
    # TensorRT-LLM names Llama's gate_proj mlp_h_to_4h and its up_proj mlp_gate
    assert args["lora_target_modules"] == ["attn_q", "attn_v", "mlp_gate", "mlp_h_to_4h"]
    assert args["lora_ckpt_source"] == "hf"
    assert p["lora"]["llm_api_lora_config"] is None
    assert any("max_loras" in n and "not applied" in n for n in p["notes"])


def test_the_pytorch_plan_packages_and_its_lora_config_passes_the_record(made):
    p = make(made, two(made), "1.2.0", "pytorch")
    assert [s["name"] for s in p["steps"]] == ["lora"]
    route = next(c for c in p["checks"] if c["id"] == "lora_route")
    assert route["status"] == "pass" and "1.2" in route["message"]
    block = p["lora"]["llm_api_lora_config"]
    assert block["lora_dir"] == ["lora/attn", "lora/mlp"] and block["max_cpu_loras"] == 8
    record = llm_api_options.load_record("1.4.0")
    assert llm_api_options.check_options({"lora_config": block}, record) == []
    bad = llm_api_options.check_options({"lora_config": {**block, "max_lora": 2}}, record)
    assert bad == ["lora_config.max_lora: not a field of lora_config in TensorRT-LLM 1.4"]


@pytest.mark.parametrize(
    ("version", "backend", "needle"),
    [
        ("1.1.0", "pytorch", "llm_args.1.1.json (a partial record) lists no lora_config"),
        ("1.3.0rc20", "pytorch", "llm_args.1.3.json (a partial record) lists no lora_config"),
        ("0.12.0", "engine", "has no trtllm-serve"),
    ],
)
def test_a_route_without_recorded_runtime_lora_is_refused(made, version, backend, needle):
    p = make(made, two(made), version, backend)
    (bad,) = [c for c in p["checks"] if c["id"] == "lora_route"]
    assert bad["status"] == "fail" and needle in bad["message"]
    assert bad["key"] == "target.trtllm_version"


def test_every_adapter_problem_exits_2_with_file_line_key_and_adapter(made, tmp_path, capsys):
    section = lora(
        ("ok", made["attn"]), ("dora", made["dora"]), ("gone", tmp_path / "gone"), max_rank=4
    )
    doc = configs.as_dict(**{"target.trtllm_version": "1.2.0", "lora": section})
    assert run_main(tmp_path, doc, facts("1.2.0", gpus=1), made["base"]) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ": error: " in ln]
    lines = (tmp_path / "config.yaml").read_text().splitlines()
    item = {n: i + 1 for i, ln in enumerate(lines) for n in ("dora", "gone") if f"name: {n}" in ln}
    where = f"build_tensorrt_llm: error: {tmp_path / 'config.yaml'}"
    assert any(
        ln.startswith(
            f"{where}:{item['dora']}: lora.adapters[1]: dora: cannot be served unmerged: DoRA"
        )
        for ln in err
    )
    assert any(
        ln.startswith(f"{where}:{item['gone']}: lora.adapters[2]: gone: ")
        and "not a directory" in ln
        for ln in err
    )
    assert len([ln for ln in err if "lora.adapters[" in ln]) == 2, err  # "ok" passes


def test_checked_where_names_the_line_of_a_list_item(made, tmp_path):
    path = tmp_path / "c.yaml"
    doc = configs.as_dict(lora=two(made))
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    checked = build_config.check(path)
    text = path.read_text().splitlines()
    mlp_line = next(i + 1 for i, ln in enumerate(text) if "name: mlp" in ln)
    assert checked.where("lora.adapters[1]") == f"{path}:{mlp_line}"
    assert checked.where("lora.adapters[1].path") == f"{path}:{mlp_line + 1}"


def test_without_the_section_the_resolved_config_and_its_hash_are_unchanged():
    doc = build_config.resolve(configs.SHIPPED)
    assert "lora" not in doc["config"]
    assert doc["config_hash"] == build_config.config_hash(doc["config"])


def _build_id(p: dict, tmp_path: Path, model: Path) -> str:
    return manifest.build_inputs("sha256:c", {}, p, model, Path(p["staging"]), None)["build_id"]


def test_the_build_id_follows_an_adapters_content_not_its_location(made, tmp_path):
    first = _build_id(make(made, two(made)), tmp_path, made["base"])
    moved = tmp_path / "moved"
    moved.mkdir()
    copy = tiny_models.make_adapter(
        made["base"], moved / "attn", target_modules=["q_proj", "v_proj"]
    )
    # the same adapter bytes (same seed) at another path: the same build
    again = _build_id(
        make(made, lora(("attn", copy), ("mlp", made["mlp"]))), tmp_path, made["base"]
    )
    assert again == first
    other = tiny_models.make_adapter(
        made["base"], tmp_path / "other", seed=7, target_modules=["q_proj", "v_proj"]
    )
    changed = _build_id(
        make(made, lora(("attn", other), ("mlp", made["mlp"]))), tmp_path, made["base"]
    )
    assert changed != first


def _fake_env(tmp_path: Path, version: str) -> dict:
    site = tmp_path / f"site-{version}"
    make_dist_info.make_dist_info(site, {"tensorrt_llm": version})
    return dict(
        os.environ,
        PATH=f"{FAKES}:{os.environ['PATH']}",
        PYTHONPATH=str(site),
        PYTHON=sys.executable,
    )


def _build(tmp_path: Path, version: str, extra: list[str]) -> subprocess.CompletedProcess:
    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir(parents=True)
    config = {"architecture": "LlamaForCausalLM", "dtype": "bfloat16", "mapping": {"world_size": 1}}
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "rank0.safetensors").write_bytes(b"")
    argv = [
        "trtllm-build",
        "--checkpoint_dir",
        str(ckpt),
        "--output_dir",
        str(tmp_path / "engine"),
        *extra,
    ]
    return subprocess.run(argv, env=_fake_env(tmp_path, version), capture_output=True, text=True)


@pytest.mark.parametrize(
    ("version", "extra", "needle"),
    [
        ("1.2.0", ["--max_loras", "4"], "unrecognized arguments: --max_loras"),
        ("1.2.0", ["--max_cpu_loras", "8"], "unrecognized arguments: --max_cpu_loras"),
        ("0.16.0", ["--dora_plugin", "enable"], "unrecognized arguments: --dora_plugin"),
        ("0.12.0", ["--lora_target_modules", "up_proj"], "invalid choice: 'up_proj'"),
        ("1.2.0", ["--lora_plugin", "fp8"], "invalid choice: 'fp8'"),
        ("1.2.0", ["--lora_ckpt_source", "peft"], "invalid choice: 'peft'"),
    ],
)
def test_the_fake_trtllm_build_refuses_unrecorded_lora_flags(tmp_path, version, extra, needle):
    run = _build(tmp_path, version, extra)
    assert run.returncode == 2, run.stderr
    assert needle in run.stderr and "trtllm-build" in run.stderr


def test_the_fake_builds_lora_only_with_the_plugin_as_trtllm_build_does(made, tmp_path):
    extra = step(make(made, two(made), staging=str(tmp_path / "s")), "build")["argv"]
    extra = extra[extra.index("--lora_plugin") :]
    extra = [str(made[Path(a).name]) if a.startswith(str(tmp_path / "s")) else a for a in extra]
    run = _build(tmp_path / "with", "1.2.0", extra)
    assert run.returncode == 0, run.stderr
    built = json.loads((tmp_path / "with" / "engine" / "config.json").read_text())["build_config"]
    assert built["lora_config"]["lora_target_modules"] == [
        "attn_q",
        "attn_v",
        "mlp_gate",
        "mlp_h_to_4h",
    ]
    assert built["plugin_config"]["lora_plugin"] == "bfloat16"
    run = _build(tmp_path / "without", "1.2.0", extra[2:])  # no --lora_plugin: no LoRA built
    assert run.returncode == 0, run.stderr
    assert (
        "lora_config"
        not in json.loads((tmp_path / "without" / "engine" / "config.json").read_text())[
            "build_config"
        ]
    )
    missing = [a if a != str(made["mlp"]) else str(tmp_path) for a in extra]
    run = _build(tmp_path / "missing", "1.2.0", missing)
    assert run.returncode == 1 and "adapter_model file does not exist" in run.stderr


def test_the_fake_trtllm_serve_refuses_an_unknown_lora_key_and_a_missing_lora_dir(made, tmp_path):
    block = make(made, two(made), backend="pytorch")["lora"]["llm_api_lora_config"]
    for name in ("attn", "mlp"):  # lora_dir is relative to where trtllm-serve runs
        (tmp_path / "lora").mkdir(exist_ok=True)
        os.symlink(made[name], tmp_path / "lora" / name)
    env = _fake_env(tmp_path, "1.2.0")
    cases = (
        ("good", block, 0),
        ("bad", {**block, "lora_dirs": ["x"]}, 1),
        ("gone", {**block, "lora_dir": ["lora/x"]}, 1),
    )
    for name, body, code in cases:
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"lora_config": body}))
        argv = ["trtllm-serve", str(made["base"]), "--extra_llm_api_options", str(path)]
        run = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=tmp_path)
        assert run.returncode == code, (name, run.stderr)
        assert name != "gone" or "lora/x has no adapter_config.json" in run.stderr


def test_serve_sh_lines_print_what_a_client_sends_per_adapter(tmp_path):
    part = {
        "adapters": [
            {"name": "support-sft", "lora_int_id": 1},
            {"name": "dpo.v2", "lora_int_id": 2},
        ]
    }
    script = tmp_path / "s.sh"
    script.write_text("set -euo pipefail\n" + serve_script.lora_lines(part))
    run = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout == "", run.stderr
    sent = json.loads("{" + run.stderr.splitlines()[1].split(": ", 1)[1] + "}")["lora_request"]
    assert sent == {"lora_name": "dpo.v2", "lora_int_id": 2, "lora_path": f"{tmp_path}/lora/dpo.v2"}


def test_the_example_lora_config_resolves_with_a_profile_that_switches_route():
    path = REPO / "tests" / "fixtures" / "configs" / "good" / "lora-two-adapters.yaml"
    engine = build_config.resolve(path)["config"]["lora"]
    pytorch = build_config.resolve(path, "pytorch-lora")["config"]
    assert engine["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert pytorch["backend"] == "pytorch" and pytorch["lora"]["target_modules"] == "auto"
    assert pytorch["lora"]["adapters"] == engine["adapters"]  # the profile merged, not replaced


def test_lora_plan_part_records_each_adapter_for_build_json(made):
    p = make(made, two(made), backend="pytorch")
    attn, mlp = p["lora"]["adapters"]
    assert (attn["name"], attn["lora_int_id"], attn["rank"], attn["modules"]) == (
        "attn",
        1,
        4,
        ["q_proj", "v_proj"],
    )
    assert (mlp["lora_int_id"], mlp["rank"], mlp["source"]) == (2, 8, str(made["mlp"]))
    assert p["lora"]["target_modules"]["hf"] == ["gate_proj", "q_proj", "up_proj", "v_proj"]
    assert '"lora_request"' in p["lora"]["request"]

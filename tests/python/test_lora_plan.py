"""lora_plan.py and the strict fakes: every LoRA flag and key emitted is recorded for its version;
an unrecorded one fails as TensorRT-LLM would (issue 16)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import build_config
import llm_api_options
import lora_checks
import lora_plan
import pytest
import tiny_models
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "contracts"))
import cli_contract as cc  # noqa: E402

sys.path.insert(0, str(REPO / "tests" / "fakes"))
import make_dist_info  # noqa: E402

FAKES = REPO / "tests" / "fakes" / "bin"
VERSIONS = ("0.12.0", "0.16.0", "1.2.0")


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    root = tmp_path_factory.mktemp("lora-plan")
    base = tiny_models.make_model("llama", root / "base")
    attn = tiny_models.make_adapter(base, root / "attn", target_modules=["q_proj", "v_proj"])
    mlp = tiny_models.make_adapter(base, root / "mlp", r=8, target_modules=["gate_proj", "up_proj"])
    return base, attn, mlp


def section(attn: Path, mlp: Path, targets="auto") -> dict:
    return {
        "adapters": [{"name": "attn", "path": str(attn)}, {"name": "mlp", "path": str(mlp)}],
        "max_rank": 16,
        "target_modules": targets,
        "max_loras": 2,
        "max_cpu_loras": 8,
    }


def targets_for(lora: dict, version: str, backend: str) -> dict:
    infos = [lora_checks.inspect_adapter(a["name"], a["path"])[0] for a in lora["adapters"]]
    return lora_checks.resolve_targets(lora, infos, version, backend)


def test_auto_targets_are_the_adapters_union_with_llamas_gate_up_naming(adapters):
    _base, attn, mlp = adapters
    got = targets_for(section(attn, mlp), "1.2.0", "engine")
    assert got["hf"] == ["gate_proj", "q_proj", "up_proj", "v_proj"]
    # TensorRT-LLM names Llama's gate_proj mlp_h_to_4h and its up_proj mlp_gate
    assert got["trtllm"] == ["attn_q", "attn_v", "mlp_gate", "mlp_h_to_4h"]
    listed = targets_for(section(attn, mlp, ["q_proj", "o_proj"]), "1.2.0", "engine")
    assert listed == {"hf": ["q_proj", "o_proj"], "trtllm": ["attn_dense", "attn_q"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_build_flags_parse_against_the_recorded_trtllm_build(adapters, version):
    _base, attn, mlp = adapters
    lora = section(attn, mlp)
    extra = lora_plan.build_lora_argv(
        lora, targets_for(lora, version, "engine"), "bfloat16", "/s/lora"
    )
    argv = ["--checkpoint_dir", "/s/checkpoint", "--output_dir", "/s/engine", *extra]
    args = cc.parse_argv(cc.load_record("trtllm-build", version), argv)
    assert args["lora_plugin"] == "bfloat16" and args["max_lora_rank"] == 16
    assert args["lora_dir"] == ["/s/lora/attn", "/s/lora/mlp"]
    assert args["lora_target_modules"] == ["attn_q", "attn_v", "mlp_gate", "mlp_h_to_4h"]
    assert args["lora_ckpt_source"] == "hf"


def _fake_env(tmp_path: Path, version: str) -> dict:
    site = tmp_path / f"site-{version}"
    make_dist_info.make_dist_info(site, {"tensorrt_llm": version})
    return dict(
        os.environ,
        PATH=f"{FAKES}:{os.environ['PATH']}",
        PYTHONPATH=str(site),
        PYTHON=sys.executable,
    )


def _checkpoint(tmp_path: Path) -> Path:
    ckpt = tmp_path / "checkpoint"
    ckpt.mkdir(parents=True)
    config = {"architecture": "LlamaForCausalLM", "dtype": "bfloat16", "mapping": {"world_size": 1}}
    (ckpt / "config.json").write_text(json.dumps(config))
    (ckpt / "rank0.safetensors").write_bytes(b"")
    return ckpt


def _build(tmp_path: Path, version: str, extra: list[str]) -> subprocess.CompletedProcess:
    argv = ["trtllm-build", "--checkpoint_dir", str(_checkpoint(tmp_path))]
    argv += ["--output_dir", str(tmp_path / "engine"), *extra]
    return subprocess.run(argv, env=_fake_env(tmp_path, version), capture_output=True, text=True)


@pytest.mark.parametrize(
    ("version", "extra", "needle"),
    [
        ("1.2.0", ["--max_loras", "4"], "unrecognized arguments: --max_loras"),
        ("1.2.0", ["--max_cpu_loras", "8"], "unrecognized arguments: --max_cpu_loras"),
        ("0.16.0", ["--dora_plugin", "enable"], "unrecognized arguments: --dora_plugin"),
        ("0.12.0", ["--lora_target_modules", "mlp_up"], "invalid choice: 'mlp_up'"),
        ("1.2.0", ["--lora_plugin", "fp8"], "invalid choice: 'fp8'"),
        ("1.2.0", ["--lora_ckpt_source", "peft"], "invalid choice: 'peft'"),
    ],
)
def test_the_fake_trtllm_build_refuses_unrecorded_lora_flags(tmp_path, version, extra, needle):
    run = _build(tmp_path, version, extra)
    assert run.returncode == 2, run.stderr
    assert needle in run.stderr and "trtllm-build" in run.stderr


def test_the_fake_builds_lora_only_with_the_plugin_as_trtllm_build_does(tmp_path, adapters):
    _base, attn, mlp = adapters
    lora = section(attn, mlp)
    extra = lora_plan.build_lora_argv(lora, targets_for(lora, "1.2.0", "engine"), "float16", "/x")
    extra = [str(attn) if a == "/x/attn" else str(mlp) if a == "/x/mlp" else a for a in extra]
    version = "1.2.0"
    run = _build(tmp_path / "with", version, extra)
    assert run.returncode == 0, run.stderr
    built = json.loads((tmp_path / "with" / "engine" / "config.json").read_text())["build_config"]
    assert built["lora_config"]["lora_target_modules"] == [
        "attn_q",
        "attn_v",
        "mlp_gate",
        "mlp_h_to_4h",
    ]
    assert built["plugin_config"]["lora_plugin"] == "float16"
    without = extra[2:]  # the same flags without --lora_plugin: accepted, and no LoRA is built
    run = _build(tmp_path / "without", version, without)
    assert run.returncode == 0, run.stderr
    built = json.loads((tmp_path / "without" / "engine" / "config.json").read_text())
    assert "lora_config" not in built["build_config"]
    missing = [a if a != str(mlp) else str(tmp_path) for a in extra]
    run = _build(tmp_path / "missing", version, missing)
    assert run.returncode == 1 and "adapter_model file does not exist" in run.stderr


@pytest.mark.parametrize("version", ["1.2.0", "1.4.0rc4"])
def test_lora_config_keys_are_recorded_and_an_unknown_key_is_refused(adapters, version):
    _base, attn, mlp = adapters
    lora = section(attn, mlp)
    block = lora_plan.llm_api_lora_config(lora, targets_for(lora, version, "pytorch"))
    assert block["lora_dir"] == ["lora/attn", "lora/mlp"] and block["max_cpu_loras"] == 8
    record = llm_api_options.load_record(version)
    assert llm_api_options.check_options({"lora_config": block}, record) == []
    bad = llm_api_options.check_options({"lora_config": {**block, "max_lora": 2}}, record)
    assert bad == [
        f"lora_config.max_lora: not a field of lora_config in TensorRT-LLM {version[:3]}"
    ]


def test_the_fake_trtllm_serve_refuses_an_options_file_with_an_unknown_lora_key(tmp_path, adapters):
    _base, attn, mlp = adapters
    lora = section(attn, mlp)
    block = lora_plan.llm_api_lora_config(lora, targets_for(lora, "1.2.0", "pytorch"))
    env = _fake_env(tmp_path, "1.2.0")
    for name, body, code in (("good", block, 0), ("bad", {**block, "lora_dirs": ["x"]}, 1)):
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"lora_config": body}))
        argv = ["trtllm-serve", str(adapters[0]), "--extra_llm_api_options", str(path)]
        run = subprocess.run(argv, env=env, capture_output=True, text=True)
        assert run.returncode == code, run.stderr
    assert "lora_dirs" in run.stderr


def test_package_step_and_plan_part_use_absolute_sources_and_stable_ids(adapters, monkeypatch):
    _base, attn, mlp = adapters
    monkeypatch.chdir(attn.parent)
    lora = section(Path(attn.name), Path(mlp.name))  # relative to the current directory
    step = lora_plan.package_step("python3", lora, "/stage")
    assert step["name"] == "lora" and step["output"] == "/stage/lora"
    assert step["argv"][-4:] == ["--adapter", f"attn={attn}", "--adapter", f"mlp={mlp}"]
    part = lora_plan.plan_part(lora, {"hf": [], "trtllm": []}, "1.2.0", "engine")
    assert [(a["name"], a["lora_int_id"]) for a in part["adapters"]] == [("attn", 1), ("mlp", 2)]
    assert any("max_loras" in n and "not applied" in n for n in part["notes"])
    assert not any(
        "not applied" in n for n in lora_plan.plan_part(lora, {}, "1.2.0", "pytorch")["notes"]
    )


def test_serve_sh_lines_print_what_a_client_sends_per_adapter(tmp_path):
    entries = [{"name": "support-sft", "lora_int_id": 1}, {"name": "dpo.v2", "lora_int_id": 2}]
    script = tmp_path / "s.sh"
    script.write_text("set -euo pipefail\n" + lora_plan.serve_sh_lines(entries))
    run = subprocess.run(["bash", str(script)], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    lines = run.stderr.splitlines()
    sent = json.loads("{" + lines[1].split(": ", 1)[1] + "}")["lora_request"]
    assert sent == {"lora_name": "dpo.v2", "lora_int_id": 2, "lora_path": f"{tmp_path}/lora/dpo.v2"}
    body = lora_plan.request_body(entries[1] | {"lora_int_id": 2}, "m", "Hi", sent["lora_path"])
    assert body["lora_request"] == sent


def test_the_example_lora_config_resolves_with_a_profile_that_switches_route():
    path = REPO / "tests" / "fixtures" / "configs" / "good" / "lora-two-adapters.yaml"
    engine = build_config.resolve(path)["config"]["lora"]
    pytorch = build_config.resolve(path, "pytorch-lora")["config"]
    assert engine["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert pytorch["backend"] == "pytorch" and pytorch["lora"]["target_modules"] == "auto"
    assert pytorch["lora"]["adapters"] == engine["adapters"]  # the profile merged, not replaced

"""The build's own helpers: hints (error signatures), manifest (fingerprint, build_id, status),
publish (serve command per version, tokenizer copy + load check, engine layout), run_step."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import struct
import subprocess
import sys
from pathlib import Path

import artifact_files
import hints
import manifest
import publish
import pytest
import run_step
import serve_script
import tokenizer_check
from errors import ExportError

# --------------------------------------------------------------------------- hints

HINT_CASES = [
    ("Killed\n", None, "host_out_of_memory", "build.workers"),
    ("loading weights...\n", 137, "host_out_of_memory", "build.workers"),
    (
        "[TensorRT][ERROR] Serialization assertion failed. Version tag does not match.",
        1,
        "version_tag_mismatch",
        "target.trtllm_version",
    ),
    (
        "The engine plan file is generated on an incompatible device, expecting compute 8.6 "
        "got compute 8.0, please rebuild.",
        1,
        "gpu_arch_mismatch",
        "target.gpus",
    ),
    ("KeyError: 'Qwen2VLForConditionalGeneration'", 1, "unknown_architecture", "backend: pytorch"),
    ("KeyError: 'architecture'", 1, "unknown_architecture", "Hugging Face dir"),
    ("Assertion failed: mpiSize == tp * pp", 1, "world_size_mismatch", "parallel.tp_size"),
    (
        "trtllm-build: error: unrecognized arguments: --kv_cache_type paged",
        2,
        "unrecognized_arguments",
        "trtllm_programs",
    ),
    (
        "[TensorRT] ERROR: Requested amount of GPU memory (123 bytes) could not be allocated",
        1,
        "gpu_out_of_memory",
        "build.max_num_tokens",
    ),
    ("torch.OutOfMemoryError: CUDA out of memory.", 1, "gpu_out_of_memory", "parallel.tp_size"),
    ("OSError: [Errno 28] No space left on device", 1, "disk_full", "--output"),
    ("run_step: command not found: trtllm-build", 127, "tool_missing", "TRTLLM_EXAMPLES_DIR"),
    ("ModuleNotFoundError: No module named 'tensorrt_llm'", 1, "tool_missing", "PYTHON=python3"),
    (
        "modelopt_quantize: error: quality gate failed: perplexity +54.8% is over the gate's +20%",
        1,
        "quality_gate",
        "--accept-quality-loss",
    ),
    (
        "modelopt_quantize: error: quality eval: 3 of 64 eval samples have 2 or more tokens",
        1,
        "quality_eval",
        "quantization.eval.dataset",
    ),
]


@pytest.mark.parametrize(("log", "code", "hint_id", "names"), HINT_CASES)
def test_each_known_signature_gives_a_hint_naming_the_fix(
    tmp_path, capsys, log, code, hint_id, names
):
    path = tmp_path / "step.log"
    path.write_text("some output\n" + log)
    argv = ["--log", str(path), "--json"] + (["--exit-code", str(code)] if code else [])
    assert hints.main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["id"] == hint_id
    assert names in doc["hint"]


@pytest.mark.parametrize(
    ("step", "names", "absent"),
    [
        ("convert", "parallel.tp_size", "build.max_num_tokens or"),
        ("quantize", "quantization.calibration.num_samples", "build.max_num_tokens or"),
        ("build", "build.max_num_tokens", "calibration"),
    ],
)
def test_an_out_of_memory_hint_names_what_lowers_that_steps_memory(
    tmp_path, capsys, step, names, absent
):
    path = tmp_path / "step.log"
    path.write_text("torch.OutOfMemoryError: CUDA out of memory.\n")
    assert hints.main(["--log", str(path), "--step", step, "--json"]) == 0
    hint = json.loads(capsys.readouterr().out)["hint"]
    assert names in hint and absent not in hint


def test_an_unknown_failure_gives_no_hint(tmp_path, capsys):
    path = tmp_path / "step.log"
    path.write_text("ValueError: something new\n")
    assert hints.main(["--log", str(path), "--exit-code", "1"]) == 1
    assert capsys.readouterr().out == ""


def test_hints_read_only_the_tail_of_a_huge_log(tmp_path):
    path = tmp_path / "big.log"
    path.write_bytes(b"Killed\n" + b"x" * (hints.TAIL_BYTES + 10) + b"\nfine\n")
    assert hints.classify(hints.read_tail(path), 1) is None


# --------------------------------------------------------------------------- manifest


def _safetensors(path: Path, payload: bytes) -> None:
    header = json.dumps(
        {"w": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}}
    )
    raw = header.encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + payload)


@pytest.fixture
def model_dir(tmp_path):
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    (d / "tokenizer.json").write_text("{}")
    return d


def test_fingerprint_is_content_based_not_path_based(tmp_path, model_dir):
    _safetensors(model_dir / "model.safetensors", b"a" * 1000)
    other = tmp_path / "elsewhere"
    other.mkdir()
    for f in model_dir.iterdir():
        (other / f.name).write_bytes(f.read_bytes())
    assert (
        manifest.model_fingerprint(model_dir)["sha256"]
        == manifest.model_fingerprint(other)["sha256"]
    )


def test_fingerprint_sees_a_changed_weight_in_a_large_file_with_the_same_header(
    model_dir, monkeypatch
):
    monkeypatch.setattr(manifest, "SMALL_FILE_BYTES", 100)  # make the weights a "large" file
    payload = bytearray(b"\0" * 200_000)
    _safetensors(model_dir / "model.safetensors", bytes(payload))
    before = manifest.model_fingerprint(model_dir)
    assert "sampled_sha256" in before["files"]["model.safetensors"]
    payload[100_000] = 1  # the middle sample window covers it
    _safetensors(model_dir / "model.safetensors", bytes(payload))
    assert manifest.model_fingerprint(model_dir)["sha256"] != before["sha256"]


def test_fingerprint_changes_with_tokenizer_and_merge_info(model_dir):
    before = manifest.model_fingerprint(model_dir)["sha256"]
    (model_dir / "merge_info.json").write_text('{"adapter_sha256": "x"}')
    after_merge = manifest.model_fingerprint(model_dir)["sha256"]
    (model_dir / "tokenizer.json").write_text('{"v": 2}')
    assert len({before, after_merge, manifest.model_fingerprint(model_dir)["sha256"]}) == 3


def test_fingerprint_of_a_dir_without_config_is_bad_input(tmp_path):
    with pytest.raises(ExportError) as err:
        manifest.model_fingerprint(tmp_path)
    assert err.value.code == 2


def _docs(model_dir: Path, staging: str, steps=None, tensorrt="10.14.1"):
    config = "sha256:c"
    facts = {"schema_version": 1, "packages": {"tensorrt_llm": "1.2.0", "tensorrt": tensorrt}}
    plan = {
        "schema_version": 1,
        "backend": "engine",
        "trtllm_version": "1.2.0",
        "gpu": {"name": "NVIDIA H200", "compute_capability": "9.0"},
        "world_size": 1,
        "steps": steps
        or [{"name": "build", "argv": ["trtllm-build", "--output_dir", f"{staging}/engine"]}],
    }
    return config, facts, plan


def test_build_id_ignores_the_staging_pid_and_model_path_but_not_versions(tmp_path, model_dir):
    a = manifest.build_inputs(
        *_docs(model_dir, "/o/.x.staging-1"), model_dir, Path("/o/.x.staging-1"), Path("/c")
    )
    b = manifest.build_inputs(
        *_docs(model_dir, "/o/.x.staging-2"), model_dir, Path("/o/.x.staging-2"), Path("/c")
    )
    assert a["build_id"] == b["build_id"]
    assert a["identity"]["commands"][0]["argv"][-1] == "<staging>/engine"
    moved = _docs(model_dir, "/s", steps=[{"name": "convert", "argv": ["/py", "/ex/c.py"]}])
    moved[1]["python"] = {"executable": "/py"}
    moved[2]["examples_dir"] = "/ex"
    doc = manifest.build_inputs(*moved, model_dir, Path("/s"), Path("/c"))
    assert doc["identity"]["commands"][0]["argv"] == ["<python>", "<examples>/c.py"]
    c = manifest.build_inputs(
        *_docs(model_dir, "/s", tensorrt="10.13.0"), model_dir, Path("/s"), Path("/c")
    )
    assert c["build_id"] != a["build_id"]


def test_status_says_absent_same_damaged_different_or_incomplete(tmp_path):
    out = tmp_path / "artifact"
    assert manifest.output_status(out, "sha256:1") == ("absent", {})
    out.mkdir()
    assert manifest.output_status(out, "sha256:1")[0] == "incomplete"
    (out / "engine").mkdir()
    (out / "engine" / "rank0.engine").write_bytes(b"x" * 300_000)
    (out / "serve.sh").write_text("exec x\n")
    files = artifact_files.describe(out)
    (out / "build.json").write_text(
        json.dumps({"build_id": "sha256:1", "artifact": {"files": files}})
    )
    assert manifest.output_status(out, "sha256:1") == ("same", {})
    assert manifest.output_status(out, "sha256:2")[0] == "different"
    with (out / "engine" / "rank0.engine").open("r+b") as fh:  # same size, other bytes
        fh.seek(150_000)
        fh.write(b"y")
    (out / "serve.sh").unlink()
    status, details = manifest.output_status(out, "sha256:1")
    assert status == "damaged"
    assert details == {"missing": ["serve.sh"], "changed": ["engine/rank0.engine"]}


def test_a_build_json_without_a_file_list_is_damaged(tmp_path):
    (tmp_path / "build.json").write_text('{"build_id": "sha256:1"}')
    assert manifest.output_status(tmp_path, "sha256:1")[0] == "damaged"


def test_describe_lists_every_file_with_size_and_sha256_and_damage_full_sees_any_change(tmp_path):
    (tmp_path / "a").write_bytes(b"hello")
    (tmp_path / "build.json").write_text("{}")
    files = artifact_files.describe(tmp_path)
    assert list(files) == ["a"]
    assert files["a"]["bytes"] == 5
    assert files["a"]["sha256"] == hashlib.sha256(b"hello").hexdigest()
    assert artifact_files.damage(tmp_path, files, full=True) == ([], [])
    big = tmp_path / "big"
    big.write_bytes(b"\0" * 2_000_000)
    files = artifact_files.describe(tmp_path)
    with big.open("r+b") as fh:  # a byte no sample window covers: only the full hash sees it
        fh.seek(1_000_000 + 100_000)
        fh.write(b"z")
    assert artifact_files.damage(tmp_path, files) == ([], [])
    assert artifact_files.damage(tmp_path, files, full=True) == ([], ["big"])


def test_make_readable_gives_0644_files_and_0755_scripts_and_dirs(tmp_path):
    (tmp_path / "d").mkdir(mode=0o700)
    (tmp_path / "d" / "w.safetensors").write_bytes(b"x")
    (tmp_path / "d" / "w.safetensors").chmod(0o600)
    (tmp_path / "serve.sh").write_text("x")
    (tmp_path / "serve.sh").chmod(0o700)
    artifact_files.make_readable(tmp_path)

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(tmp_path / "d") == 0o755 and mode(tmp_path / "serve.sh") == 0o755
    assert mode(tmp_path / "d" / "w.safetensors") == 0o644


def test_os_errors_become_one_line_with_the_path_and_the_fix():
    err = artifact_files.os_error(OSError(errno.ENOSPC, "No space left on device", "/o/x"))
    assert err.code == 1 and "/o/x" in err.line() and "larger disk" in err.line()
    err = artifact_files.os_error(OSError(errno.EROFS, "Read-only file system", "/o"))
    assert "writable" in err.fix


# --------------------------------------------------------------------------- publish

SERVE_CASES = [
    ("0.12.0", 1, 1, ["python3"], "run.py"),
    ("0.12.0", 2, 1, ["mpirun", "-n", "2"], "run.py"),
    ("0.16.0", 1, 1, ["trtllm-serve", "engine", "--tokenizer", "tokenizer"], "trtllm-serve"),
    ("0.16.0", 2, 2, ["--tp_size", "2", "--pp_size", "2"], "trtllm-serve"),
    ("1.2.0", 1, 1, ["--backend", "tensorrt"], "trtllm-serve"),
]


@pytest.mark.parametrize(("version", "tp", "pp", "expected", "kind"), SERVE_CASES)
def test_serve_command_follows_the_version_and_world_size(version, tp, pp, expected, kind):
    argv = serve_script.engine_argv(version, tp, pp)
    assert (argv[0] == "trtllm-serve") == (kind == "trtllm-serve")
    assert any(argv[i : i + len(expected)] == expected for i in range(len(argv)))
    if version == "0.16.0":
        assert "--backend" not in argv


def test_copy_tokenizer_refuses_a_model_without_tokenizer(model_dir, tmp_path):
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(ExportError) as err:
        publish.copy_tokenizer(model_dir, tmp_path / "tok")
    assert err.value.code == 2


def test_check_engine_names_the_missing_rank(tmp_path):
    engine = tmp_path / "engine"
    engine.mkdir()
    (engine / "config.json").write_text('{"version": "1.2.0"}')
    (engine / "rank0.engine").write_bytes(b"x")
    with pytest.raises(ExportError, match=r"rank\(s\) 1 of world size 2"):
        publish.check_engine(engine, 2)
    assert publish.check_engine(engine, 1)["trtllm_version"] == "1.2.0"


def test_copy_tokenizer_copies_and_loads_a_real_tokenizer(tiny_model_cache, tmp_path):
    info = publish.copy_tokenizer(tiny_model_cache("llama"), tmp_path / "tokenizer")
    assert info["load_check"] == "ok" and info["chat_template"] is True
    copied = {p.name for p in (tmp_path / "tokenizer").iterdir()}
    assert {"tokenizer.json", "generation_config.json"} <= copied
    assert not (tmp_path / "tokenizer" / "config.json").exists()
    assert not list((tmp_path / "tokenizer").glob("*.safetensors"))


def test_a_tokenizer_that_does_not_load_fails_the_publish(tmp_path):
    tok = tmp_path / "tok"
    tok.mkdir()
    (tok / "tokenizer.json").write_text("not json")
    (tok / "tokenizer_config.json").write_text('{"tokenizer_class": "PreTrainedTokenizerFast"}')
    with pytest.raises(ExportError, match="does not load"):
        tokenizer_check.check(tok)


def test_a_chat_template_that_does_not_compile_fails_the_publish(tiny_model_cache, tmp_path):
    publish.copy_tokenizer(tiny_model_cache("llama"), tmp_path / "tok")
    (tmp_path / "tok" / "chat_template.jinja").write_text("{% for m in messages %}")
    with pytest.raises(ExportError, match="does not compile"):
        tokenizer_check.check(tmp_path / "tok")


def test_the_tokenizer_check_does_not_import_transformers(tiny_model_cache, tmp_path):
    publish.copy_tokenizer(tiny_model_cache("llama"), tmp_path / "tok")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import tokenizer_check; "
        "tokenizer_check.check(__import__('pathlib').Path(sys.argv[2])); "
        "print('transformers' in sys.modules)"
    )
    lib = Path(__file__).resolve().parents[2] / "scripts" / "export" / "lib"
    argv = [sys.executable, "-c", code, str(lib), str(tmp_path / "tok")]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_serve_sh_is_executable_and_runs_from_its_own_dir_through_a_symlink(tmp_path):
    artifact = tmp_path / "artifact"
    (artifact / "engine").mkdir(parents=True)
    path = artifact / "serve.sh"
    argv = serve_script.engine_argv("1.2.0", 2, 1)
    plan = {
        "backend": "engine",
        "trtllm_version": "1.2.0",
        "world_size": 2,
        "gpu": {"name": "H200", "compute_capability": "9.0"},
    }
    serve = serve_script.write(path, argv, "sha256:" + "0" * 64, plan)
    assert serve["argv"] == argv and serve["script"] == "serve.sh"
    text = path.read_text()
    assert path.stat().st_mode & 0o111
    assert text.rstrip().endswith('--tp_size 2 --pp_size 1 "$@"')
    # a fake trtllm-serve that prints where it runs; serve.sh started through a link elsewhere
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "trtllm-serve").write_text("#!/bin/sh\npwd; ls -d engine\n")
    (bin_dir / "trtllm-serve").chmod(0o755)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "serve").symlink_to(path)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    argv = [str(tmp_path / "elsewhere" / "serve")]
    out = subprocess.run(argv, cwd="/", env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [str(artifact), "engine"]


# --------------------------------------------------------------------------- run_step


def test_run_step_logs_output_and_records_exit_code(tmp_path):
    log, stats = tmp_path / "s.log", tmp_path / "s.stats.json"
    code = run_step.main(
        [
            "--log",
            str(log),
            "--stats",
            str(stats),
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ]
    )
    assert code == 3
    assert log.read_text().splitlines() == ["out", "err"]
    doc = json.loads(stats.read_text())
    assert doc["exit_code"] == 3 and doc["seconds"] >= 0


def test_run_step_reports_a_missing_program_as_127(tmp_path):
    log, stats = tmp_path / "s.log", tmp_path / "s.stats.json"
    assert run_step.main(["--log", str(log), "--stats", str(stats), "--", "no-such-tool-x"]) == 127
    assert "command not found: no-such-tool-x" in log.read_text()

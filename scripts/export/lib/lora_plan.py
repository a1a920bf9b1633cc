"""The plan's pieces for runtime LoRA (issue 16): package step, trtllm-build flags, lora_config.

Library for the planner, the bundle writer and the serve.sh writer:
  package_step(python, lora, staging) -> step          copies every adapter to <staging>/lora/
  build_lora_argv(lora, targets, dtype, lora_root) -> [...]   appended to the trtllm-build argv
  llm_api_lora_config(lora, targets) -> dict            the lora_config block of
                                                        llm_api_options.yaml (PyTorch route)
  plan_part(lora, targets, version, backend) -> dict    what the plan document records
  serve_sh_lines(adapters) -> str                       serve.sh lines that print, per adapter,
                                                        what a client sends (cwd = the artifact)
  request_body(entry, model, prompt) -> dict            one /v1/completions body for an adapter
`lora` is the resolved section (dict or lora_config.LoraSection); `targets` comes from
lora_checks.resolve_targets. Every flag and key emitted is recorded for its version:
trtllm-build --lora_plugin --lora_dir --max_lora_rank --lora_target_modules --lora_ckpt_source
(0.12, 0.16, 1.2 records; none of them has a max-loras flag: those are runtime settings), and
lora_config's keys in tests/contracts/llm_api/llm_args.<1.2|1.4>.json (nested.lora_config).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

LIB_DIR = Path(__file__).resolve().parent
PACKAGE_SCRIPT = LIB_DIR / "lora_package.py"
LORA_DIR = "lora"  # in the artifact and in the staging dir
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")  # an adapter's name: lora/<name>/, lora_name
PLUGIN_DTYPES = ("auto", "float16", "bfloat16", "float32")


def _as_dict(lora) -> dict:
    return lora.model_dump(mode="json") if hasattr(lora, "model_dump") else dict(lora)


def package_step(python: str, lora, staging: str | Path) -> dict:
    """The step that copies the adapters into <staging>/lora/ (before the build reads them)."""
    lora = _as_dict(lora)
    output = Path(staging) / LORA_DIR
    argv = [python, str(PACKAGE_SCRIPT), "--output", str(output)]
    for entry in lora["adapters"]:  # steps run in the staging dir: absolute adapter paths
        argv += ["--adapter", f"{entry['name']}={Path(entry['path']).resolve()}"]
    return {
        "name": "lora",
        "argv": argv,
        "log": "lora.log",
        "output": str(output),
        "description": "adapters -> lora/<name>/ (adapter_config.json, weights, adapters.json)",
    }


def build_lora_argv(lora, targets: dict, dtype: str, lora_root: str | Path) -> list[str]:
    """trtllm-build's LoRA flags: the plugin in the model's dtype (a plugin dtype other than the
    engine's silently disables LoRA, tensorrtllm_backend #791), the packaged adapter dirs, the
    served rank and modules. trtllm-build builds LoRA only with --lora_plugin (build_model)."""
    lora = _as_dict(lora)
    if dtype not in PLUGIN_DTYPES:
        raise ValueError(f"lora plugin dtype {dtype!r} is not one of {', '.join(PLUGIN_DTYPES)}")
    dirs = [str(Path(lora_root) / entry["name"]) for entry in lora["adapters"]]
    return [
        "--lora_plugin",
        dtype,
        "--lora_dir",
        *dirs,
        "--max_lora_rank",
        str(lora["max_rank"]),
        "--lora_target_modules",
        *targets["trtllm"],
        "--lora_ckpt_source",
        "hf",
    ]


def llm_api_lora_config(lora, targets: dict) -> dict:
    """The lora_config block (PyTorch route). lora_dir is relative to the artifact: serve.sh
    runs trtllm-serve from the artifact dir. Adapters are still chosen per request."""
    lora = _as_dict(lora)
    return {
        "lora_dir": [f"{LORA_DIR}/{entry['name']}" for entry in lora["adapters"]],
        "lora_ckpt_source": "hf",
        "max_lora_rank": lora["max_rank"],
        "lora_target_modules": list(targets["trtllm"]),
        "max_loras": lora["max_loras"],
        "max_cpu_loras": lora["max_cpu_loras"],
    }


def plan_part(lora, targets: dict, version: str, backend: str) -> dict:
    """The plan document's "lora" object: what is served, how, and what is not applied."""
    lora = _as_dict(lora)
    notes = [
        'adapters are chosen per request: "lora_request": {"lora_name", "lora_int_id", '
        '"lora_path"} in the /v1/completions or /v1/chat/completions body (lora/adapters.json '
        "has each adapter's id and path)"
    ]
    if backend == "engine":
        notes.append(
            "max_loras / max_cpu_loras are runtime settings (trtllm-build has no flag for them) "
            "and the recorded LLM-API sets list no TensorRT-backend key for them: not applied, "
            "recorded in build.json; the runtime's own PEFT cache default applies"
        )
    return {
        "schema_version": 1,
        "route": backend,
        "trtllm_version": version,
        "adapters": [
            {"name": e["name"], "lora_int_id": i + 1, "source": str(Path(e["path"]).resolve())}
            for i, e in enumerate(lora["adapters"])
        ],
        "max_rank": lora["max_rank"],
        "target_modules": targets,
        "max_loras": lora["max_loras"],
        "max_cpu_loras": lora["max_cpu_loras"],
        "notes": notes,
    }


def request_body(entry: dict, model: str, prompt: str, lora_path: str) -> dict:
    """A /v1/completions body that runs `prompt` through one packaged adapter."""
    return {
        "model": model,
        "prompt": prompt,
        "max_tokens": 32,
        "lora_request": {
            "lora_name": entry["name"],
            "lora_int_id": entry["lora_int_id"],
            "lora_path": lora_path,
        },
    }


def serve_sh_lines(adapters: list[dict]) -> str:
    """serve.sh lines (run with the artifact dir as cwd) that tell what a client sends for each
    adapter: trtllm-serve loads an adapter from the lora_path of the request that names it."""
    lines = [
        "# Runtime LoRA: every adapter in lora/ is served; a request picks one with its",
        '# "lora_request" (lora/adapters.json). Printed at start-up with this machine\'s paths:',
    ]
    for entry in adapters:
        name, uid = entry["name"], int(entry["lora_int_id"])
        text = (
            f'lora adapter {name}: "lora_request": {{"lora_name": "{name}", '
            f'"lora_int_id": {uid}, "lora_path": "%s"}}\\n'
        )
        lines.append(f'printf {shlex.quote(text)} "${{PWD}}/{LORA_DIR}/{name}" >&2')
    return "\n".join(lines) + "\n"

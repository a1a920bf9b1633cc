#!/usr/bin/env python3
"""Strict stand-ins for trtllm-serve and trtllm-bench, checked against the records beside this file.

Usage (through the wrappers tests/fakes/bin/trtllm-serve and tests/fakes/bin/trtllm-bench):
  click_contract.py serve ARGS...     as `trtllm-serve ARGS...`
  click_contract.py bench ARGS...     as `trtllm-bench ARGS...`

Both rebuild the recorded click options (trtllm-serve.1.x.json, trtllm-bench.1.0.json) and reject
what click would reject, with click's exit status 2: an unknown option, a missing or malformed
int/float value, a value outside the choices, a missing required option. The TensorRT-LLM
version is the one the fake dist-info on PYTHONPATH claims (importlib.metadata); none installed
fails like a missing console script would. An --extra_llm_api_options YAML is loaded and its keys
checked against the LLM-API record of that version (llm_args.<line>.json) the way TorchLlmArgs'
extra="forbid" would, exit 1 with a validation error.

trtllm-serve checks the checkpoint (config.json), appends its argv as one JSON line to
$FAKE_TRTLLM_LOG when set, prints what it would serve and exits 0 (no server is started).
trtllm-bench throughput validates the dataset lines (input_ids or prompt, output_tokens) and
writes a plausible --report_json.
"""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2] / "scripts" / "export" / "lib"))

import llm_api_options  # noqa: E402
import yaml  # noqa: E402


class UsageError(Exception):
    """What click reports as 'Error: ...' with exit status 2."""


def _installed_version() -> str:
    for name in ("tensorrt_llm", "tensorrt-llm"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    print(
        "fake: TensorRT-LLM is not installed (no tensorrt_llm dist-info on PYTHONPATH)",
        file=sys.stderr,
    )
    raise SystemExit(127)


def parse(options: list[dict], argv: list[str], positional: list[str]) -> dict:
    """Parse argv as click would for these options; returns {flag or positional name: value}."""
    table = {o["flag"]: o for o in options}
    values: dict = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("-") and arg != "-":
            flag, eq, inline = arg.partition("=")
            spec = table.get(flag)
            if spec is None:
                raise UsageError(f"No such option: {flag}")
            if spec.get("is_flag"):
                if eq:
                    raise UsageError(f"Option '{flag}' does not take a value.")
                values[flag] = True
                i += 1
                continue
            if eq:
                value = inline
            elif i + 1 < len(argv):
                value = argv[i + 1]
                i += 1
            else:
                raise UsageError(f"Option '{flag}' requires an argument.")
            kind = spec.get("type", "str")
            try:
                if kind == "int":
                    int(value)
                elif kind == "float":
                    float(value)
            except ValueError as exc:
                raise UsageError(
                    f"Invalid value for '{flag}': '{value}' is not a valid {kind}."
                ) from exc
            if spec.get("choices") and value not in spec["choices"]:
                raise UsageError(
                    f"Invalid value for '{flag}': '{value}' is not one of "
                    f"{', '.join(spec['choices'])}."
                )
            values[flag] = value
        else:
            rest.append(arg)
        i += 1
    if len(rest) > len(positional):
        raise UsageError(f"Got unexpected extra argument ({rest[len(positional)]})")
    if len(rest) < len(positional):
        raise UsageError(f"Missing argument '{positional[len(rest)].upper()}'.")
    values.update(zip(positional, rest, strict=False))
    for spec in options:
        if spec.get("required") and spec["flag"] not in values:
            raise UsageError(f"Missing option '{spec['flag']}'.")
    return values


def check_options_file(path: str, version: str) -> None:
    try:
        options = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        print(f"fake: cannot load {path}: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    try:
        errors = llm_api_options.check_options(options, llm_api_options.load_record(version))
    except llm_api_options.ExportError as exc:
        print(f"fake: {exc}", file=sys.stderr)
        raise SystemExit(1) from exc
    for lora_dir in (options.get("lora_config") or {}).get("lora_dir") or []:
        if not (Path(lora_dir) / "adapter_config.json").is_file():  # relative to the cwd
            errors.append(f"lora_config.lora_dir: {lora_dir} has no adapter_config.json")
    if errors:
        print(
            f"pydantic_core._pydantic_core.ValidationError: {len(errors)} validation error(s) "
            "for TorchLlmArgs",
            file=sys.stderr,
        )
        for err in errors:
            print(f"  {err} [type=extra_forbidden]", file=sys.stderr)
        raise SystemExit(1)


def _log(tool: str, argv: list[str], version: str) -> None:
    log = os.environ.get("FAKE_TRTLLM_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(json.dumps({"tool": tool, "version": version, "argv": argv}) + "\n")


def serve(argv: list[str]) -> int:
    version = _installed_version()
    record = json.loads((HERE / "trtllm-serve.1.x.json").read_text())
    args = argv[1:] if argv[:1] == ["serve"] else argv
    values = parse(record["options"], args, record["positional"])
    model = Path(values["model"])
    if not (model / "config.json").is_file():
        print(f"fake trtllm-serve: {model} has no config.json", file=sys.stderr)
        return 1
    if "--extra_llm_api_options" in values:
        check_options_file(values["--extra_llm_api_options"], version)
    _log("trtllm-serve", argv, version)
    host, port = values.get("--host", "localhost"), values.get("--port", "8000")
    print(
        f"fake trtllm-serve {version}: would serve {model} on {host}:{port} "
        f"(backend {values.get('--backend', 'pytorch')})"
    )
    return 0


def _check_dataset(path: Path) -> int:
    count = 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            print(f"fake trtllm-bench: {path}:{n}: not JSON", file=sys.stderr)
            raise SystemExit(1) from None
        if not (
            isinstance(row.get("input_ids"), list) or isinstance(row.get("prompt"), str)
        ) or not isinstance(row.get("output_tokens"), int):
            print(
                f"fake trtllm-bench: {path}:{n}: needs input_ids or prompt, and output_tokens",
                file=sys.stderr,
            )
            raise SystemExit(1)
        count += 1
    return count


def bench(argv: list[str]) -> int:
    version = _installed_version()
    record = json.loads((HERE / "trtllm-bench.1.0.json").read_text())
    if record["command"] not in argv:
        raise UsageError("Missing command.")
    split = argv.index(record["command"])
    top = parse(record["global_options"], argv[:split], [])
    if "--model" not in top and "-m" not in top:
        raise UsageError("Missing option '--model' / '-m'.")
    values = parse(record["options"], argv[split + 1 :], [])
    dataset = values.get("--dataset")
    if not dataset or not Path(dataset).is_file():
        raise UsageError(f"Invalid value for '--dataset': Path '{dataset}' does not exist.")
    if "--extra_llm_api_options" in values:
        check_options_file(values["--extra_llm_api_options"], version)
    requests = _check_dataset(Path(dataset))
    _log("trtllm-bench", argv, version)
    if "--report_json" in values:
        report = {
            "engine": {
                "model": top.get("--model"),
                "backend": values.get("--backend", "pytorch"),
                "version": version,
            },
            "request_info": {"num_requests": requests},
            "performance": {
                "request_throughput_req_s": 10.0,
                "output_throughput_tok_s": 1000.0,
                "avg_request_latency_ms": 100.0,
            },
            "fake": True,
        }
        Path(values["--report_json"]).write_text(json.dumps(report, indent=2))
    print(f"fake trtllm-bench {version}: {requests} requests")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tool, rest = (argv[0], argv[1:]) if argv else ("", [])
    try:
        if tool == "serve":
            return serve(rest)
        if tool == "bench":
            return bench(rest)
    except UsageError as exc:
        print(
            f"Usage: trtllm-{tool} [OPTIONS]\nTry 'trtllm-{tool} --help' for help.\n\nError: {exc}",
            file=sys.stderr,
        )
        return 2
    print("usage: click_contract.py serve|bench ARGS...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())

#!/usr/bin/env python3
"""Check a command line against TensorRT-LLM's recorded CLI (the *.json records beside this file).

Usage:
  cli_contract.py check --tool TOOL --version V [--family F] -- ARGS...
  cli_contract.py list

TOOL is `trtllm-build`, `convert_checkpoint` (needs --family) or `quantize`
(examples/quantization/quantize.py). V is a TensorRT-LLM version; the record used is the newest
one at or below V. ARGS are the arguments after the program (no argv[0]).
`check` exits 0 when ARGS parse, 2 with argparse's one-line error on stderr when they do not.

Library (imported by the fakes in tests/fakes/ and by the plan tests):
  load_record(tool, version, family=None) -> dict     (raises RecordNotFound)
  check_argv(record, argv) -> list[str]               (errors; empty when ARGS parse)
  parse_argv(record, argv) -> dict[str, object]       (dest -> value; raises ContractError)
  deprecated_flags(record, argv) -> list[str]         (flags the record marks deprecated)
  records() -> list[dict]                             (one summary per record file)

The parser rebuilt from a record is stricter than TensorRT-LLM's own in three documented ways:
abbreviated long options are refused (allow_abbrev=False), options recorded as
`effectively_required` are required, and string options recorded with `accepted_values` only
take those values. Everything TensorRT-LLM rejects is rejected too: unknown flags, bad int/float
values, values outside the choices, missing values and missing required options.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

CONTRACT_DIR = Path(__file__).resolve().parent
TOOLS = ("trtllm-build", "convert_checkpoint", "quantize")
_TYPES = {"int": int, "float": float, "str": str, "enum": str}


class ContractError(Exception):
    """An argv the recorded CLI rejects; str(err) is argparse's message."""


class RecordNotFound(LookupError):
    """No record for that tool/family at or below that version."""


def version_key(version: str) -> tuple[int, ...]:
    """'1.2.0rc1' -> (1, 2, 0); '0.16.0' -> (0, 16, 0); the leading numeric parts only."""
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", str(version))
    if not match:
        raise RecordNotFound(f"not a version: {version!r}")
    parts = tuple(int(p) for p in match.group(1).split("."))
    return parts + (0,) * (3 - len(parts))


def _file_parts(path: Path) -> tuple[str, str | None, str]:
    """convert_checkpoint.qwen.0.12.0.json -> ('convert_checkpoint', 'qwen', '0.12.0')."""
    stem = path.name[: -len(".json")]
    if stem.startswith("trtllm-build."):
        return "trtllm-build", None, stem[len("trtllm-build.") :]
    _, family, version = stem.split(".", 2)
    if family == "quantize":
        return "quantize", None, version
    return "convert_checkpoint", family, version


def records() -> list[dict]:
    """Summaries of every record file: tool, family, version (from the file name), file."""
    out = []
    for path in sorted(CONTRACT_DIR.glob("*.json")):
        tool, family, version = _file_parts(path)
        out.append({"tool": tool, "family": family, "version": version, "file": path.name})
    return out


def _normalise_tool(tool: str) -> str:
    tool = tool.removesuffix(".py")
    if tool not in TOOLS:
        raise RecordNotFound(f"unknown tool {tool!r}; known: {', '.join(TOOLS)}")
    return tool


def load_record(tool: str, version: str, family: str | None = None) -> dict:
    """The newest record for tool (and family) at or below version, with `record_version` and
    `record_file` added. Raises RecordNotFound when there is none."""
    tool = _normalise_tool(tool)
    if tool == "convert_checkpoint" and not family:
        raise RecordNotFound("convert_checkpoint needs a family")
    want = version_key(version)
    candidates = [
        r
        for r in records()
        if r["tool"] == tool and (tool != "convert_checkpoint" or r["family"] == family)
    ]
    eligible = [r for r in candidates if version_key(r["version"]) <= want]
    if not eligible:
        have = ", ".join(r["version"] for r in candidates) or "none"
        what = f"{tool} ({family})" if family else tool
        raise RecordNotFound(f"no recorded CLI of {what} at or below {version}; recorded: {have}")
    best = max(eligible, key=lambda r: version_key(r["version"]))
    record = json.loads((CONTRACT_DIR / best["file"]).read_text(encoding="utf-8"))
    record["record_version"] = best["version"]
    record["record_file"] = best["file"]
    return record


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse calls this instead of exiting
        raise ContractError(f"{self.prog}: error: {message}")


def _prog(record: dict) -> str:
    if record.get("tool") == "trtllm-build":
        return "trtllm-build"
    return Path(record.get("script_path") or "convert_checkpoint.py").name


def build_parser(record: dict) -> argparse.ArgumentParser:
    """A strict argparse parser equivalent to the record (see the module doc)."""
    parser = _Parser(prog=_prog(record), add_help=False, allow_abbrev=False)
    for arg in record["arguments"]:
        kwargs: dict = {"dest": arg["dest"]}
        if arg["action"] == "store_true" or arg["type"] == "bool_flag":
            kwargs["action"] = "store_true"
        else:
            kwargs["type"] = _TYPES[arg["type"]]
            choices = arg.get("choices") or arg.get("accepted_values")
            if choices:
                kwargs["choices"] = list(choices)
            if arg.get("nargs"):
                kwargs["nargs"] = arg["nargs"]
            if arg.get("nargs") == "?":
                kwargs["const"] = _literal(arg.get("const"))
        if arg.get("required") or arg.get("effectively_required"):
            kwargs["required"] = True
        parser.add_argument(*arg["flags"], **kwargs)
    return parser


def _literal(text):
    """Record defaults/consts are Python source text: "'int8'" -> 'int8'."""
    if isinstance(text, str) and len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_argv(record: dict, argv: list[str]) -> dict:
    """Parse argv (no program name) as the recorded CLI would; dest -> value for the options
    given. Raises ContractError with argparse's message on anything the CLI rejects."""
    argv = [str(a) for a in argv]
    namespace = build_parser(record).parse_args(argv)
    given = {k: v for k, v in vars(namespace).items() if v is not None and v is not False}
    return given


def check_argv(record: dict, argv: list[str]) -> list[str]:
    """Errors for argv against the record; an empty list when it parses."""
    try:
        parse_argv(record, argv)
    except ContractError as err:
        return [str(err)]
    return []


def deprecated_flags(record: dict, argv: list[str]) -> list[str]:
    """The flags in argv that the record marks deprecated (accepted, but warned about)."""
    deprecated = {f for a in record["arguments"] if a.get("deprecated") for f in a["flags"]}
    return [a for a in argv if a.split("=", 1)[0] in deprecated]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tail: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(
        prog="cli_contract.py", description=__doc__.split("\n\n")[0].strip()
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check ARGS (after --) against a recorded CLI")
    check.add_argument("--tool", required=True)
    check.add_argument("--version", required=True)
    check.add_argument("--family")
    sub.add_parser("list", help="print the records as JSON lines")
    args = parser.parse_args(argv)
    if args.command == "list":
        for rec in records():
            print(json.dumps(rec))
        return 0
    try:
        record = load_record(args.tool, args.version, args.family)
    except RecordNotFound as err:
        print(f"cli_contract.py: {err}", file=sys.stderr)
        return 2
    errors = check_argv(record, tail)
    for line in errors:
        print(line, file=sys.stderr)
    return 2 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())

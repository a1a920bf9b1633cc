"""The lock files of requirements/: their inputs from pyproject.toml, their headers, their facts.

Usage:
  lockfile.py inputs --pyproject FILE --set dev|export-helpers   requirement lines for pip-compile
  lockfile.py no-deps --pyproject FILE          pins installed without their own dependencies
  lockfile.py assemble --compiled FILE --name NAME --python X.Y|any [--report FILE]
      the lock file: a header, pip-compile's output, then the no-deps pins with the hashes
      that pip's install report gives

scripts/dev/lock.sh runs them (Python 3.11+: tomllib). The header's "# python: X.Y|any" line says
which Python the lock is for; scripts/dev/setup_venv.sh reads it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

TOOL_KEY = "trtllm-export-toolkit"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)$")


class LockError(Exception):
    """Bad input: the message is the one line the user sees; exit status 2."""


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def load_pyproject(path: Path) -> dict:
    import tomllib  # Python 3.11+; only lock.sh (a developer's tool) reads pyproject.toml

    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LockError(f"cannot read {path}: {exc}") from exc


def pins(data: dict) -> list[str]:
    """Every requirement of [project]: dependencies and all optional groups, each an exact pin."""
    project = data.get("project", {})
    reqs = list(project.get("dependencies", []))
    for group in project.get("optional-dependencies", {}).values():
        reqs.extend(group)
    for req in reqs:
        if not PIN.match(req):
            raise LockError(f"pyproject.toml: {req!r} is not an exact pin (name==version)")
    return reqs


def lock_table(data: dict) -> dict:
    return data.get("tool", {}).get(TOOL_KEY, {}).get("lock", {})


def inputs(data: dict, which: str) -> list[str]:
    no_deps = {normalize(n) for n in lock_table(data).get("install-without-deps", [])}
    reqs = [r for r in pins(data) if normalize(PIN.match(r).group(1)) not in no_deps]
    if which == "dev":
        return reqs
    wanted = {normalize(n) for n in lock_table(data).get(which, [])}
    if not wanted:
        raise LockError(f"pyproject.toml: tool.{TOOL_KEY}.lock.{which} is empty or missing")
    chosen = [r for r in reqs if normalize(PIN.match(r).group(1)) in wanted]
    missing = wanted - {normalize(PIN.match(r).group(1)) for r in chosen}
    if missing:
        raise LockError(
            f"pyproject.toml: {', '.join(sorted(missing))} listed in "
            f"tool.{TOOL_KEY}.lock.{which} but not pinned in [project]"
        )
    return chosen


def no_deps(data: dict) -> list[str]:
    names = {normalize(n) for n in lock_table(data).get("install-without-deps", [])}
    return [r for r in pins(data) if normalize(PIN.match(r).group(1)) in names]


def report_lines(report_path: Path) -> list[str]:
    """Lock entries for what a `pip install --dry-run --report` chose, with their sha256."""
    report = json.loads(report_path.read_text())
    lines = []
    for item in report.get("install", []):
        meta = item["metadata"]
        digest = item["download_info"].get("archive_info", {}).get("hashes", {}).get("sha256")
        if not digest:
            raise LockError(f"pip's report has no sha256 for {meta['name']}")
        lines += [
            f"{normalize(meta['name'])}=={meta['version']} \\",
            f"    --hash=sha256:{digest}",
            "    # installed without its dependencies: see pyproject.toml",
        ]
    return lines


def assemble(compiled: Path, name: str, python: str, report: Path | None) -> str:
    head = [
        f"# {name}: Python packages pinned with their hashes, transitive ones included.",
        "# Made by scripts/dev/lock.sh from pyproject.toml (pip-compile); do not edit by hand.",
        "# Installed by scripts/dev/setup_venv.sh: pip install --require-hashes --no-deps -r FILE",
        f"# python: {python}",
        "",
    ]
    body = compiled.read_text().rstrip("\n").splitlines()
    extra = report_lines(report) if report else []
    return "\n".join(head + body + extra) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("inputs")
    p.add_argument("--pyproject", type=Path, required=True)
    p.add_argument("--set", dest="which", choices=["dev", "export-helpers"], required=True)
    p = sub.add_parser("no-deps")
    p.add_argument("--pyproject", type=Path, required=True)
    p = sub.add_parser("assemble")
    p.add_argument("--compiled", type=Path, required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--python", required=True)
    p.add_argument("--report", type=Path)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.cmd == "inputs":
            out = "\n".join(inputs(load_pyproject(args.pyproject), args.which)) + "\n"
        elif args.cmd == "no-deps":
            out = "\n".join(no_deps(load_pyproject(args.pyproject))) + "\n"
        else:
            out = assemble(args.compiled, args.name, args.python, args.report)
    except (LockError, OSError, ValueError, KeyError) as exc:
        print(f"lockfile: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The one error type and the one check record of the export stages, and how both are printed.

ExportError carries its exit status (2 bad input: nothing was written; 1 a run-time failure);
a command's main() is the only place that turns one into a stderr line and an exit code.
A check is {"id", "status": pass|warn|fail|skip, "message", "fix", "key", "where"}: `key` is the
dotted config key at fault (or null), `where` the "file:line" the config loader found it at.
doctor, the plan, preflight and verify all print their checks with render_checks().
"""

from __future__ import annotations

import sys
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
STATUSES = ("pass", "warn", "fail", "skip")
MARKS = {"pass": "[ok]  ", "warn": "[warn]", "fail": "[FAIL]", "skip": "[skip]"}

Check = dict[str, Any]


class ExportError(Exception):
    """A problem with its exit status; `key` names the config key at fault, `where` its line."""

    def __init__(
        self,
        message: str,
        *,
        code: int = EXIT_BAD_INPUT,
        id: str = "bad_input",
        key: str | None = None,
        fix: str = "",
        where: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.id = id
        self.key = key
        self.fix = fix
        self.where = where

    def line(self) -> str:
        """The one line that says what is wrong and where."""
        return _prefix(self.where, self.key) + self.message + (f" ({self.fix})" if self.fix else "")


def failed(message: str, *, id: str = "failed", fix: str = "") -> ExportError:
    return ExportError(message, code=EXIT_FAILED, id=id, fix=fix)


def check(check_id: str, status: str, message: str, fix: str = "", key: str | None = None) -> Check:
    if status not in STATUSES:
        raise ValueError(f"check {check_id}: status {status!r} is not one of {STATUSES}")
    return {"id": check_id, "status": status, "message": message, "fix": fix, "key": key}


def _prefix(where: str | None, key: str | None) -> str:
    return "".join(f"{part}: " for part in (where, key) if part)


def counts(checks: list[Check]) -> dict[str, int]:
    out = dict.fromkeys(STATUSES, 0)
    for c in checks:
        out[c["status"]] += 1
    return out


def summary_line(checks: list[Check]) -> str:
    n = counts(checks)
    return f"{n['fail']} failed, {n['warn']} warning(s), {n['pass']} passed, {n['skip']} skipped"


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c["status"] == "fail"]


def render_checks(checks: list[Check], indent: str = "  ") -> list[str]:
    """One line per check (mark, id, where and key, message) and a `fix:` line under a fail or
    warn that has one."""
    width = max((len(c["id"]) for c in checks), default=0)
    lines = []
    for c in checks:
        where = _prefix(c.get("where"), c.get("key"))
        lines.append(f"{indent}{MARKS[c['status']]} {c['id']:<{width}}  {where}{c['message']}")
        if c["status"] in ("fail", "warn") and c.get("fix"):
            lines.append(f"{indent}{'':6} {'':<{width}}  fix: {c['fix']}")
    return lines


def check_error_line(prog: str, c: Check) -> str:
    """A failed check as the one stderr line of a command that stops on it."""
    fix = f" (fix: {c['fix']})" if c.get("fix") else ""
    return f"{prog}: error: {_prefix(c.get('where'), c.get('key'))}{c['message']}{fix}"


def report(prog: str, err: ExportError) -> int:
    """Print `err` as one stderr line and return its exit status: the CLI boundary."""
    print(f"{prog}: error: {err.line()}", file=sys.stderr)
    return err.code

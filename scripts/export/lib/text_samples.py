"""The one reader of local sample-text files: calibration data and the quality gate's eval text.

Library (steps/calib_data.py, steps/modelopt_quantize.py, quality.py at run time; quality_gate.py
at plan time, to count what a step will read):
  read_samples(path, limit, what="calibration") -> list[str]    the first `limit` samples

Formats (the suffix decides): .jsonl one JSON object a line with "text", "prompt" (+ "completion"),
"content" or "messages" ([{"role", "content"}], contents joined by newlines); .json a list of such
objects or of strings; .txt one sample per non-empty line. Blank samples are skipped. Nothing is
downloaded. A problem is an ExportError (exit 2) naming the file, and the line where there is one.
"""

from __future__ import annotations

import json
from pathlib import Path

from errors import ExportError

SUFFIXES = (".jsonl", ".json", ".txt")


def _problem(message: str) -> ExportError:
    return ExportError(message, id="sample_text")


def _text(obj: object, where: str) -> str:
    if isinstance(obj, str):
        return obj
    if not isinstance(obj, dict):
        raise _problem(f"{where}: expected a JSON object or a string")
    if isinstance(obj.get("text"), str):
        return obj["text"]
    if isinstance(obj.get("prompt"), str):
        return obj["prompt"] + str(obj.get("completion") or "")
    if isinstance(obj.get("content"), str):
        return obj["content"]
    if isinstance(obj.get("messages"), list):
        parts = [m.get("content") for m in obj["messages"] if isinstance(m, dict)]
        return "\n".join(p for p in parts if isinstance(p, str))
    raise _problem(
        f'{where}: no text in this sample (want "text", "prompt", "content" or "messages")'
    )


def _json_list(path: Path) -> list[str]:
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise _problem(f"{path}: not JSON ({err})") from None
    if not isinstance(items, list):
        raise _problem(f"{path}: expected a JSON list of samples")
    return [_text(item, f"{path}[{n}]") for n, item in enumerate(items)]


def _lines(path: Path, limit: int) -> list[str]:
    out: list[str] = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if len(out) >= limit:
                break
            line = line.strip()
            if not line:
                continue
            if path.suffix == ".jsonl":
                try:
                    obj = json.loads(line)
                except ValueError as err:
                    raise _problem(f"{path}:{number}: not JSON ({err})") from None
                line = _text(obj, f"{path}:{number}")
            if line.strip():
                out.append(line)
    return out


def read_samples(path: Path | str, limit: int, what: str = "calibration") -> list[str]:
    """The first `limit` non-blank samples of a local .jsonl, .json or .txt file."""
    path = Path(path)
    if path.suffix not in SUFFIXES:
        raise _problem(f"{path}: {what} text must be a .jsonl, .json or .txt file")
    if not path.is_file():
        raise _problem(f"{what} file not found: {path}")
    try:
        if path.suffix == ".json":
            texts = [t for t in _json_list(path) if t.strip()][:limit]
        else:
            texts = _lines(path, limit)
    except (OSError, UnicodeDecodeError) as err:
        raise _problem(f"{path}: cannot read it: {err}") from None
    if not texts:
        raise _problem(f"{path}: no {what} samples")
    return texts

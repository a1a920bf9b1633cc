"""device_quality.sh's report: device_quality.json and a markdown table of what each quantization
cost, from the files the runs left in OUT.

Usage: device_quality_report.py --out DIR --formats "fp8 int4_awq ..." LABEL=MODEL_DIR ...

Reads OUT/build-<label>-<fmt>.rc ("exit start end") and OUT/quality-<label>-<fmt>.json (the
build's quality report) for every model and format. Writes OUT/device_quality.json
(schema_version 1) and prints the table. Exit 0 when every run left a quality report, else 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from importlib import metadata
from pathlib import Path

HEADER = (
    "| model | mode | perplexity | increase | agreement | mean KL | gate | calibrate+quantize |"
    " CUDA ext | measure | wall, exit |\n|---|---|---|---|---|---|---|---|---|---|---|"
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _gpu() -> str:
    query = ["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"]
    try:
        found = subprocess.run(query, capture_output=True, text=True, check=False).stdout.strip()
        return found or "a GPU nvidia-smi does not describe"
    except OSError:
        return "no nvidia-smi"


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def row(out: Path, label: str, fmt: str) -> tuple[dict, str]:
    """The run's entry for device_quality.json and its table row."""
    rc, start, end = (out / f"build-{label}-{fmt}.rc").read_text().split()
    path = out / f"quality-{label}-{fmt}.json"
    q = json.loads(path.read_text()) if path.is_file() else None
    entry = {"exit_code": int(rc), "wall_s": round(float(end) - float(start), 1), "quality": q}
    if q is None:
        return (
            entry,
            f"| {label} | {fmt} | exit {rc}: no quality report (build-{label}-{fmt}.log) |",
        )
    t, g = q["durations_s"], q["gate"]
    verdict = "pass" if g["passed"] else ("accepted" if g["accepted_loss"] else "STOPPED")
    route = "direct" if (out / f"direct-{label}-{fmt}.log").is_file() else "front door"
    cells = [
        label,
        fmt,
        _num(q["quantized_perplexity"], ".2f"),
        _num(q["perplexity_increase_pct"], "+.1f") + "%",
        _num(q["token_agreement_pct"], ".1f") + "%",
        _num(q["kl_mean"], ".3f"),
        f"{verdict} (+{g['max_ppl_increase_pct']:g}% / {g['min_token_agreement_pct']:g}%)",
        f"{t.get('calibrate_quantize', 0):.1f} s",
        f"{t.get('cuda_extensions', 0):.1f} s",
        f"{t['reference'] + t['quantized']:.1f} s",
        f"{entry['wall_s']:.0f} s, exit {rc} ({route})",
    ]
    return entry, "| " + " | ".join(cells) + " |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--formats", required=True)
    parser.add_argument("models", nargs="+", help="LABEL=MODEL_DIR")
    args = parser.parse_args(argv)
    packages = {n: _version(n) for n in ("torch", "transformers", "nvidia-modelopt")}
    doc = {"schema_version": 1, "gpu": _gpu(), "packages": packages, "models": {}}
    rows, ok = [], True
    for item in args.models:
        label, _, model = item.partition("=")
        runs = {}
        for fmt in args.formats.split():
            runs[fmt], line = row(args.out, label, fmt)
            ok &= runs[fmt]["quality"] is not None
            rows.append(line)
        reference = next(
            (r["quality"]["reference_perplexity"] for r in runs.values() if r["quality"]), None
        )
        doc["models"][label] = {"dir": model, "reference_perplexity": reference, "formats": runs}
    (args.out / "device_quality.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(f"on {doc['gpu']}; packages {packages}")
    for label, entry in doc["models"].items():
        ppl = _num(entry["reference_perplexity"], ".2f")
        print(f"{label}: reference (unquantized) perplexity {ppl}")
    print(HEADER)
    print("\n".join(rows))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

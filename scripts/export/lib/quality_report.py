"""The quality report of a quantized build: its schema, the gate's verdict, its table, and what
publish and verify make of it.

Library (no torch):
  judge(increase, agreement, max_ppl, min_agree) -> (passed, failures)
  make_report(metrics, data, context, gate, timings) -> dict   (quality.py, in the step)
  load_report(path) -> dict, manifest_entry(staging) -> dict | None    (publish.py)
  table(report) -> str                     the build's output, make verify's
  verify_check(build_json) -> check | None   verify.py's "quality" line (never fails)
The report is <staging>/logs/quality.json, then build.json "quality" (schema: QualityReport).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import manifest
from errors import Check, check, failed
from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1
REPORT_PATH = ("logs", "quality.json")  # under the staging dir, then the artifact


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EvalData(_Doc):
    file: str
    held_out: bool
    first_sample: int
    requested: int
    samples: int
    dropped_short: int
    seq_len: int
    tokens: int
    positions: int


class GateVerdict(_Doc):
    max_ppl_increase_pct: float
    min_token_agreement_pct: float
    passed: bool
    failures: list[str]
    accepted_loss: bool


class QualityReport(_Doc):
    """logs/quality.json of a quantized build, and build.json "quality" once published."""

    schema_version: int = Field(ge=SCHEMA_VERSION, le=SCHEMA_VERSION)
    mode: str
    kv_cache_dtype: str
    device: str
    data: EvalData
    reference_perplexity: float | None
    quantized_perplexity: float | None
    perplexity_increase_pct: float | None
    token_agreement_pct: float | None
    kl_mean: float | None
    kl_top_k: int
    reference_tail_mass_mean: float | None
    durations_s: dict[str, float]
    gate: GateVerdict


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def judge(increase: float | None, agreement: float | None, max_ppl: float, min_agree: float):
    """(passed, failures): a value that is not a finite number fails (a NaN model never passes)."""
    failures = []
    if _finite(increase) is None:
        failures.append("the quantized model's perplexity is not a finite number")
    elif increase > max_ppl:
        failures.append(f"perplexity {increase:+.1f}% is over the gate's +{max_ppl:g}%")
    if _finite(agreement) is None:
        failures.append("token agreement is not a number")
    elif agreement < min_agree:
        failures.append(f"token agreement {agreement:.1f}% is under the gate's {min_agree:g}%")
    return not failures, failures


def make_report(
    metrics: dict, data: dict, context: dict, gate: tuple[float, float, bool], timings=None
) -> dict:
    """The report: metrics from quality.Metrics (as a dict), data from the eval's source and
    batches, context {"mode", "kv_cache_dtype", "device"}, gate (max increase, min agreement,
    accept loss), timings: the step's other durations in seconds (load, calibrate_quantize...)."""
    max_ppl, min_agree, accept = gate
    values = {k: _finite(v) if isinstance(v, float) else v for k, v in metrics.items()}
    passed, failures = judge(
        values["perplexity_increase_pct"], values["token_agreement_pct"], max_ppl, min_agree
    )
    report = {
        "schema_version": SCHEMA_VERSION,
        **context,
        "data": data,
        **{k: v for k, v in values.items() if not k.endswith("_seconds") and k != "positions"},
        "durations_s": {
            **(timings or {}),
            "reference": round(metrics["reference_seconds"], 3),
            "quantized": round(metrics["quantized_seconds"], 3),
        },
        "gate": {
            "max_ppl_increase_pct": max_ppl,
            "min_token_agreement_pct": min_agree,
            "passed": passed,
            "failures": failures,
            "accepted_loss": accept and not passed,
        },
    }
    return QualityReport.model_validate(report).model_dump(mode="json")


def load_report(path: Path) -> dict:
    """A quality.json, validated; ExportError (exit 1: the step wrote it) when it is not one."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        return QualityReport.model_validate(doc).model_dump(mode="json")
    except (OSError, ValueError) as err:  # ValidationError is a ValueError
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise failed(f"{path}: not a quality report ({first})", id="quality_report") from None


def manifest_entry(staging: Path) -> dict | None:
    """build.json "quality": the step's report, or None when nothing was measured."""
    path = Path(staging).joinpath(*REPORT_PATH)
    return load_report(path) if path.is_file() else None


def over_gate_accepted(doc: dict) -> bool:
    """Whether a build.json was published over its quality gate with --accept-quality-loss."""
    gate = (doc.get("quality") or {}).get("gate") or {}
    return bool(gate.get("accepted_loss"))


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None else format(value, fmt)


def table(report: dict) -> str:
    """A short human table of the report (the build's output, make verify's)."""
    d, g = report["data"], report["gate"]
    source = f"{d['samples']} {'held-out ' if d['held_out'] else ''}samples of "
    source += f"{Path(d['file']).name}, {d['positions']:,} positions"
    inc, agree = report["perplexity_increase_pct"], report["token_agreement_pct"]
    ok_ppl = inc is not None and inc <= g["max_ppl_increase_pct"]
    ok_agree = agree is not None and agree >= g["min_token_agreement_pct"]
    lines = [
        f"quality of {report['mode']} (kv {report['kv_cache_dtype']}) vs the unquantized "
        f"model: {source}",
        f"  perplexity       {_num(report['reference_perplexity'], '.2f')} -> "
        f"{_num(report['quantized_perplexity'], '.2f')}  ({_num(inc, '+.1f')}%; gate "
        f"+{g['max_ppl_increase_pct']:g}% at most)  {'pass' if ok_ppl else 'FAIL'}",
        f"  token agreement  {_num(agree, '.1f')}%  (greedy next token; gate "
        f"{g['min_token_agreement_pct']:g}% at least)  {'pass' if ok_agree else 'FAIL'}",
        f"  mean KL          {_num(report['kl_mean'], '.4f')} nats (reference top-"
        f"{report['kl_top_k']} + rest)",
    ]
    t = report["durations_s"]
    if "calibrate_quantize" in t:
        lines.append(
            f"  time             calibrate+quantize {t['calibrate_quantize']:.1f} s, measure "
            f"{t['reference']:.1f} + {t['quantized']:.1f} s"
        )
    if g["passed"]:
        lines.append("  gate             passed")
    elif g["accepted_loss"]:
        lines.append("  gate             FAILED; published anyway (--accept-quality-loss)")
    else:
        lines.append("  gate             FAILED: " + "; ".join(g["failures"]))
    return "\n".join(lines) + "\n"


def verify_check(doc: dict) -> Check | None:
    """verify.py's "quality" line from build.json: what the build measured (never re-measured,
    never a failure: the build decided). None for an unquantized build."""
    mode = manifest.quant_mode(doc)
    report = doc.get("quality")
    if not report:
        if mode in (None, "none"):
            return None
        return check(
            "quality",
            "warn",
            f"{mode}: quality not measured (no quality report in build.json: TensorRT-LLM's "
            "own tools quantized it, or it was built before the quality gate)",
            "build with the ModelOpt route (backend pytorch) to measure it",
        )
    inc, agree, g = report["perplexity_increase_pct"], report["token_agreement_pct"], report["gate"]
    msg = (
        f"{report['mode']}: perplexity {_num(inc, '+.1f')}%, agreement {_num(agree, '.1f')}%, "
        f"KL {_num(report['kl_mean'], '.4f')} at build time"
    )
    if g["passed"]:
        return check("quality", "pass", msg + " (within the gate)")
    return check(
        "quality",
        "warn",
        msg + " (over the gate; published with --accept-quality-loss)",
        "rebuild with a milder quantization.mode or better calibration data",
    )

"""The quality gate in the plan: what a quantized build will be measured on, the flags of its
ModelOpt step, and what --accept-quality-loss changes.

Library (no torch):
  eval_texts(calib_file, calib_size, eval_file, n) -> (texts, source)   plan and step alike
  plan_quality(cfg, steps, staging) -> (entry, checks)     plan.py: adds the eval flags to every
                                                           ModelOpt step (both backends)
  plan_lines(entry) -> [str]                                what a dry run shows
  accept_quality_loss(plan) -> int                          prepare.py --accept-quality-loss
  status_with_gate(status, output, accepted) -> str         prepare.py: an over-gate artifact
The config model is quality_config.py, the report quality_report.py, the measurement quality.py.

Eval text: `quantization.eval.dataset`, else the samples of the calibration file after the ones
calibration uses (calibration reads the first calibration.num_samples samples; evaluation takes
the next eval.num_samples): disjoint and the same on every run. Fewer than MIN_EVAL_SAMPLES is
an error: at plan time (a failed check, exit 2) when the file already has too few, at run time
(exit 1) when too few survive tokenization. Both read with text_samples.read_samples, so what
the plan counts is what the step reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import step_checks
from errors import Check, ExportError, check
from quality_config import MIN_EVAL_SAMPLES, QuantEval, gate_for
from quality_report import REPORT_PATH, over_gate_accepted
from text_samples import read_samples

if TYPE_CHECKING:
    from build_config import BuildConfig

ACCEPT_FLAG = "--accept-quality-loss"
TOO_FEW_FIX = (
    "add samples to the file, lower quantization.calibration.num_samples, or set "
    "quantization.eval.dataset to a file of held-out text"
)


def eval_texts(calib_file, calib_size: int, eval_file, n: int) -> tuple[list[str], dict]:
    """(texts, source): `n` samples of eval_file, else of calib_file after its first calib_size."""
    if eval_file:
        texts = read_samples(eval_file, n, what="eval")
        return texts, {"file": str(eval_file), "held_out": False, "first_sample": 0}
    texts = read_samples(calib_file, calib_size + n)[calib_size:]
    return texts, {"file": str(calib_file), "held_out": True, "first_sample": calib_size}


def too_few_message(file: str, held_out: bool, available: int, calib_size: int) -> str:
    if held_out:
        return (
            f"{Path(file).name} leaves {available} sample(s) for the quality eval after the "
            f"{calib_size} that calibration uses; at least {MIN_EVAL_SAMPLES} are needed"
        )
    return f"{Path(file).name} has {available} eval sample(s); at least {MIN_EVAL_SAMPLES} needed"


def _absolute(path: str | None) -> str | None:
    return str(Path(path).expanduser().absolute()) if path else None


def plan_quality(cfg: BuildConfig, steps: list[dict], staging: str) -> tuple[dict | None, list]:
    """The plan's "quality" entry and its check; adds the eval flags to the ModelOpt step(s)."""
    q = cfg.quantization
    if q.mode == "none":
        return None, []
    gate = gate_for(q.mode, q.eval.gate)
    measured = [s for s in steps if step_checks.step_kind(s) == "modelopt"] if gate else []
    if not measured:
        reason = (
            f"quantization.mode {q.mode} runs in TensorRT-LLM's own tools here; the quality gate "
            "measures ModelOpt steps (fp8, int4_awq, w4a8_awq, nvfp4 on backend pytorch, or the "
            "engine route without TensorRT-LLM)"
        )
        entry = {"measured": False, "mode": q.mode, "reason": reason}
        return entry, [check("quality_eval", "warn", f"quality not measured: {reason}")]
    entry, found = _measured_entry(cfg, gate, staging)
    for step in measured:
        step["argv"] += step_argv(entry)
        step["quality_gate"] = True
    return entry, [found]


def _measured_entry(cfg: BuildConfig, gate: tuple, staging: str) -> tuple[dict, Check]:
    q, settings = cfg.quantization, cfg.quantization.eval
    calib_file, calib_size = _absolute(q.calibration.dataset), q.calibration.num_samples
    eval_file = _absolute(settings.dataset)
    entry = {
        "measured": True,
        "mode": q.mode,
        "dataset": eval_file or calib_file,
        "held_out": not eval_file,
        "first_sample": 0 if eval_file else calib_size,
        "num_samples": settings.num_samples,
        "available": 0,
        "seq_len": settings.seq_len,
        "max_ppl_increase_pct": gate[0],
        "min_token_agreement_pct": gate[1],
        "gate_source": gate[2],
        "report": str(Path(staging).joinpath(*REPORT_PATH)),
    }
    if not eval_file and not (calib_file and Path(calib_file).is_file()):
        return entry, check(
            "quality_eval",
            "skip",
            "the held-out eval samples come from quantization.calibration.dataset, which is not "
            "a readable file yet (see the calibration check)",
        )
    try:
        texts, _ = eval_texts(calib_file, calib_size, eval_file, settings.num_samples)
    except ExportError as err:
        key = "quantization.eval.dataset" if eval_file else "quantization.calibration.dataset"
        return entry, check("quality_eval", "fail", f"quality eval data: {err}", TOO_FEW_FIX, key)
    entry["available"] = len(texts)
    return entry, _data_check(entry, settings, calib_size)


def _data_check(entry: dict, settings: QuantEval, calib_size: int) -> Check:
    available, wanted = entry["available"], settings.num_samples
    key = "quantization.eval.dataset"
    if available < MIN_EVAL_SAMPLES:
        message = too_few_message(entry["dataset"], entry["held_out"], available, calib_size)
        return check("quality_eval", "fail", message, TOO_FEW_FIX, key)
    what = f"{min(available, wanted)} {'held-out ' if entry['held_out'] else ''}samples of "
    what += Path(entry["dataset"]).name
    if available < wanted:
        message = f"quality eval on {what}: quantization.eval.num_samples asks for {wanted}"
        return check("quality_eval", "warn", message, TOO_FEW_FIX, "quantization.eval.num_samples")
    return check("quality_eval", "pass", f"quality eval on {what}, up to {entry['seq_len']} tokens")


def step_argv(entry: dict) -> list[str]:
    """The flags modelopt_quantize.py takes for the measurement and the gate."""
    argv = ["--quality-report", entry["report"]]
    if not entry["held_out"]:
        argv += ["--eval-data", entry["dataset"]]
    return [
        *argv,
        *("--eval-size", str(entry["num_samples"]), "--eval-seq-len", str(entry["seq_len"])),
        *("--max-ppl-increase-pct", f"{entry['max_ppl_increase_pct']:g}"),
        *("--min-token-agreement-pct", f"{entry['min_token_agreement_pct']:g}"),
    ]


def plan_lines(entry: dict | None) -> list[str]:
    """What `--dry-run` shows about the measurement."""
    if not entry:
        return []
    if not entry.get("measured"):
        return ["", f"quality  not measured: {entry['reason']}"]
    data = f"{min(entry['available'], entry['num_samples'])} "
    if entry["held_out"]:
        data += f"held-out samples of {entry['dataset']} (after the {entry['first_sample']} "
        data += "calibration uses)"
    else:
        data += f"samples of {entry['dataset']}"
    return [
        "",
        f"quality  {entry['mode']} vs the unquantized model on {data}, up to "
        f"{entry['seq_len']} tokens each: perplexity, greedy token agreement, KL",
        f"         gate ({entry['gate_source']}): perplexity +{entry['max_ppl_increase_pct']:g}% "
        f"at most, token agreement {entry['min_token_agreement_pct']:g}% at least; over it the "
        f"build stops ({ACCEPT_FLAG} publishes anyway); report logs/quality.json",
        "         note: ModelOpt compiles its CUDA extensions on a machine's first run (about "
        "a minute, shown in the quantize step)",
    ]


# --------------------------------------------------------------------------- --accept-quality-loss


def accept_quality_loss(plan: dict) -> int:
    """Append --accept-quality-loss to every gated step of the plan (after build_id was computed
    from the commands without it: accepting a loss does not make another build). Returns how many
    steps take it."""
    gated = [s for s in plan["steps"] if s.get("quality_gate")]
    for step in gated:
        step["argv"].append(ACCEPT_FLAG)
    return len(gated)


def status_with_gate(status: str, output: Path, accepted: bool) -> str:
    """An artifact of this build published over its gate (--accept-quality-loss) is up to date
    only for a run that accepts the loss again: "over_gate" otherwise."""
    if status != "same" or accepted:
        return status
    try:
        doc = json.loads((Path(output) / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return status
    return "over_gate" if isinstance(doc, dict) and over_gate_accepted(doc) else status

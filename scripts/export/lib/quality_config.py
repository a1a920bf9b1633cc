"""`quantization.eval` of the build config: what a quantized build is measured on and the quality it
must keep. Typed as BuildConfig.quantization.eval (build_config.py); optional in the YAML (the
defaults below apply), so configs written before it keep loading.

Library: QuantEval, QuantGate (the config models), GATE_DEFAULTS (the one table of default gates
per mode), MIN_EVAL_SAMPLES, gate_for(mode, gate). The plan side is quality_gate.py, the report
quality_report.py, the measurement quality.py.
"""

from __future__ import annotations

import re

import text_samples
from pydantic import BaseModel, ConfigDict, Field, field_validator

MIN_EVAL_SAMPLES = 16
# Per mode: (largest perplexity increase in percent, smallest greedy token agreement in percent)
# that publishes by default. Measured on SmolLM2-135M (H200, ModelOpt 0.47 fake quantization,
# 64 x 256-token held-out samples): fp8 +2.5% / 89.3%, int4_awq +30.3% / 73.2%, w4a8_awq
# +35.8% / 71.5%, nvfp4 +54.8% / 66.2%. Models of 7-8B lose several times less (typically under
# +1% at fp8 and +3..10% at 4 bits). The fp8 line passes a sound fp8 build of the smallest real
# model with room to spare; the 4-bit lines pass what 4 bits cost a mid-size model and stop the
# +30..55% of a 135M model (publish those with --accept-quality-loss, or raise the gate).
# Modes not in this table are not measured (TensorRT-LLM's own tools quantize them).
GATE_DEFAULTS: dict[str, tuple[float, float]] = {
    "fp8": (8.0, 80.0),
    "int4_awq": (20.0, 70.0),
    "w4a8_awq": (20.0, 70.0),
    "nvfp4": (20.0, 70.0),
}
EVAL_SUFFIXES = text_samples.SUFFIXES  # what the one reader of sample text reads
URL = re.compile(r"^[a-z][a-z0-9+.-]*://")  # a scheme: settings that take local paths refuse it


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _gate_limit(most: float, what: str):
    return Field(default=None, ge=0, le=most, description=f"{what}; null = the mode's default")


class QuantGate(_Model):
    max_ppl_increase_pct: float | None = _gate_limit(
        1000, "largest perplexity increase (percent) that publishes"
    )
    min_token_agreement_pct: float | None = _gate_limit(
        100, "smallest greedy next-token agreement (percent) that publishes"
    )


class QuantEval(_Model):
    dataset: str | None = Field(
        default=None,
        description="local .jsonl/.json/.txt of held-out text; null = the calibration file's "
        "samples after those calibration uses",
    )
    num_samples: int = Field(default=64, ge=MIN_EVAL_SAMPLES, le=4096, description="samples")
    seq_len: int = Field(default=256, ge=16, le=8192, description="tokens per eval sample (most)")
    gate: QuantGate = Field(default_factory=QuantGate)

    @field_validator("dataset")
    @classmethod
    def _local_text_file(cls, value: str | None) -> str | None:
        return local_file(value, EVAL_SUFFIXES)


def local_file(value: str | None, suffixes: tuple[str, ...]) -> str | None:
    """A dataset setting: null, or a local path ending in one of `suffixes` (never a URL)."""
    if value is None:
        return value
    if URL.match(value):
        raise ValueError(f"must be a local file, not a URL: {value!r}")
    if not value.endswith(suffixes):
        words = ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}"
        raise ValueError(f"must be a {words} file, got {value!r}")
    return value


def gate_for(mode: str, gate: QuantGate) -> tuple[float, float, str] | None:
    """(max increase, min agreement, where they come from) for a mode; None: mode not measured."""
    if mode not in GATE_DEFAULTS:
        return None
    ppl, agree = GATE_DEFAULTS[mode]
    source = f"{mode} defaults"
    given = [v is not None for v in (gate.max_ppl_increase_pct, gate.min_token_agreement_pct)]
    if any(given):
        source = "config" if all(given) else f"config + {mode} defaults"
    ppl = ppl if gate.max_ppl_increase_pct is None else gate.max_ppl_increase_pct
    agree = agree if gate.min_token_agreement_pct is None else gate.min_token_agreement_pct
    return ppl, agree, source

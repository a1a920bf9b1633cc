"""quality.py's metrics against hand-computed values on toy models; the gate's verdicts and report
(quality_config.py, quality_report.py).

The toy models are bigram tables: the logits for the next token depend only on the current token
(logits = TABLE[token]), so every figure can be computed by hand from the table and the text.
"""

from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import pytest
import quality
import quality_config
import quality_report
import torch
from errors import ExportError


class Bigram(torch.nn.Module):
    def __init__(self, table: torch.Tensor):
        super().__init__()
        self.table = table.float()
        self.config = SimpleNamespace(vocab_size=table.shape[1])

    def forward(self, input_ids, attention_mask=None):
        return SimpleNamespace(logits=self.table[input_ids])


def tokenizer(text, truncation=True, max_length=None):
    ids = [int(w) for w in text.split()]
    return {"input_ids": ids[:max_length] if truncation else ids}


def run(ref_model, quant_model, texts, seq_len=16, vocab=None):
    vocab = vocab or ref_model.config.vocab_size
    batches = quality.make_batches(tokenizer, texts, seq_len, vocab)
    ref = quality.reference_pass(ref_model, batches, "cpu")
    return quality.compare_pass(quant_model, batches, ref, "cpu"), batches


TEXTS = ["0 1 2 3 4 5", "5 4 3", "1 1 1 1 1 1 1 1 1", "7 0"]


def test_a_uniform_model_has_the_vocabulary_size_as_perplexity():
    uniform = Bigram(torch.zeros(8, 8))
    metrics, batches = run(uniform, uniform, TEXTS)
    assert metrics.reference_perplexity == pytest.approx(8.0, rel=1e-6)  # float32 logits
    assert metrics.quantized_perplexity == pytest.approx(8.0, rel=1e-6)
    assert batches.positions == 5 + 2 + 8 + 1


def test_identical_models_agree_everywhere_and_diverge_nowhere():
    model = Bigram(torch.randn(8, 8, generator=torch.Generator().manual_seed(0)) * 3)
    metrics, _ = run(model, model, TEXTS)
    assert metrics.perplexity_increase_pct == 0.0
    assert metrics.token_agreement_pct == 100.0
    assert metrics.kl_mean == 0.0


def _hand(table_p, table_q, texts):
    """Perplexities, agreement and KL computed position by position in plain Python."""
    nll_p = nll_q = kl = agree = n = 0
    for text in texts:
        ids = [int(w) for w in text.split()]
        for x, y in itertools.pairwise(ids):
            lp, lq = torch.log_softmax(table_p[x], -1), torch.log_softmax(table_q[x], -1)
            nll_p -= float(lp[y])
            nll_q -= float(lq[y])
            kl += float((lp.exp() * (lp - lq)).sum())
            agree += int(lp.argmax() == lq.argmax())
            n += 1
    return math.exp(nll_p / n), math.exp(nll_q / n), 100 * agree / n, kl / n


def test_the_metrics_equal_the_hand_computed_ones():
    gen = torch.Generator().manual_seed(1)
    p = (torch.randn(8, 8, generator=gen) * 2).double()  # float32 values, as the model has
    q = (p + torch.randn(8, 8, generator=gen) * 0.7).float().double()
    metrics, _ = run(Bigram(p), Bigram(q), TEXTS)
    ppl_p, ppl_q, agreement, kl = _hand(p, q, TEXTS)
    assert metrics.reference_perplexity == pytest.approx(ppl_p, rel=1e-6)
    assert metrics.quantized_perplexity == pytest.approx(ppl_q, rel=1e-6)
    assert metrics.perplexity_increase_pct == pytest.approx((ppl_q / ppl_p - 1) * 100, rel=1e-5)
    assert metrics.token_agreement_pct == pytest.approx(agreement)
    assert metrics.kl_mean == pytest.approx(kl, rel=1e-5)
    assert 0 < metrics.token_agreement_pct < 100 and metrics.kl_mean > 0


def test_kl_of_two_known_distributions():
    # every row of p is [ln 3, 0] -> (3/4, 1/4); every row of q is uniform (1/2, 1/2)
    p = torch.tensor([[math.log(3), 0.0], [math.log(3), 0.0]])
    q = torch.zeros(2, 2)
    metrics, _ = run(Bigram(p), Bigram(q), ["0 1 0 1"])
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert metrics.kl_mean == pytest.approx(expected, rel=1e-6)
    assert metrics.token_agreement_pct == 100.0  # argmax of q: the first of two equal logits


def test_top_k_kl_is_the_coarsened_kl_and_a_lower_bound(monkeypatch):
    gen = torch.Generator().manual_seed(2)
    p = torch.randn(8, 8, generator=gen, dtype=torch.float64) * 2
    q = p + torch.randn(8, 8, generator=gen, dtype=torch.float64)
    exact, _ = run(Bigram(p), Bigram(q), TEXTS)
    monkeypatch.setattr(quality, "TOP_K", 3)
    coarse, _ = run(Bigram(p), Bigram(q), TEXTS)
    assert coarse.kl_top_k == 3 and exact.kl_top_k == 8
    assert 0 < coarse.kl_mean < exact.kl_mean
    assert coarse.reference_tail_mass_mean > 0 and exact.reference_tail_mass_mean < 1e-6
    # by hand for one position: token 0 predicts under p's top 3 plus one bucket
    lp, lq = torch.log_softmax(p[0], -1), torch.log_softmax(q[0], -1)
    top = lp.topk(3).indices
    rest_p, rest_q = 1 - lp[top].exp().sum(), 1 - lq[top].exp().sum()
    want = float((lp[top].exp() * (lp[top] - lq[top])).sum() + rest_p * (rest_p / rest_q).log())
    got = quality.kl_top_k(top[None], lp[top][None].float(), lq[None].float())
    assert float(got) == pytest.approx(want, rel=1e-5)
    # identical models stay at exactly 0 with a truncated reference too
    same, _ = run(Bigram(p), Bigram(p), TEXTS)
    assert same.kl_mean == 0.0


def test_batching_and_padding_do_not_change_the_figures(monkeypatch):
    gen = torch.Generator().manual_seed(3)
    p = torch.randn(8, 8, generator=gen) * 2
    q = p + torch.randn(8, 8, generator=gen) * 0.5
    whole, batches = run(Bigram(p), Bigram(q), TEXTS)
    assert len(batches.items) == 1
    monkeypatch.setattr(quality, "MAX_BATCH_SAMPLES", 1)
    one_by_one, batches = run(Bigram(p), Bigram(q), TEXTS)
    assert len(batches.items) == len(TEXTS)
    for name in ("quantized_perplexity", "token_agreement_pct", "kl_mean"):
        assert getattr(one_by_one, name) == pytest.approx(getattr(whole, name), rel=1e-5)


def test_samples_are_cut_to_seq_len_and_one_token_samples_dropped():
    batches = quality.make_batches(tokenizer, ["1 2 3 4 5 6", "3", "", "2 2"], 4, 8)
    assert (batches.samples, batches.dropped_short) == (2, 2)
    assert (batches.tokens, batches.positions) == (4 + 2, 3 + 1)


def test_a_model_that_outputs_nan_is_reported_as_such_and_fails_the_gate():
    model = Bigram(torch.zeros(8, 8))
    broken = Bigram(torch.full((8, 8), float("nan")))
    metrics, _ = run(model, broken, TEXTS)
    assert math.isnan(metrics.quantized_perplexity)
    passed, failures = quality_report.judge(
        metrics.perplexity_increase_pct, metrics.token_agreement_pct, 1000.0, 0.0
    )
    assert not passed and "not a finite number" in failures[0]


# ------------------------------------------------------------------------- the gate, the report


@pytest.mark.parametrize(
    ("increase", "agreement", "passed"),
    [
        (8.0, 80.0, True),  # on the line publishes
        (8.01, 95.0, False),
        (0.0, 79.99, False),
        (-3.0, 100.0, True),  # a quantized model may score better on some text
        (math.inf, 100.0, False),
        (1.0, math.nan, False),
    ],
)
def test_the_gate_judges_both_limits(increase, agreement, passed):
    assert quality_report.judge(increase, agreement, 8.0, 80.0)[0] is passed


def test_gate_defaults_per_mode_and_config_overrides():
    gate = quality_config.QuantGate
    assert quality_config.gate_for("fp8", gate()) == (8.0, 80.0, "fp8 defaults")
    assert quality_config.gate_for("nvfp4", gate(max_ppl_increase_pct=60)) == (
        60,
        70.0,
        "config + nvfp4 defaults",
    )
    both = gate(max_ppl_increase_pct=1, min_token_agreement_pct=99)
    assert quality_config.gate_for("int4_awq", both) == (1, 99, "config")
    assert quality_config.gate_for("int8_sq", gate()) is None  # not a ModelOpt step: not measured


def _metrics(**over):
    values = {
        "reference_perplexity": 17.83,
        "quantized_perplexity": 18.27,
        "perplexity_increase_pct": 2.47,
        "token_agreement_pct": 89.3,
        "kl_mean": 0.037,
        "kl_top_k": 1024,
        "reference_tail_mass_mean": 0.02,
        "positions": 16320,
        "reference_seconds": 1.0,
        "quantized_seconds": 1.2,
    }
    return values | over


DATA = {
    "file": "/data/calib.jsonl",
    "held_out": True,
    "first_sample": 512,
    "requested": 64,
    "samples": 64,
    "dropped_short": 0,
    "seq_len": 256,
    "tokens": 16384,
    "positions": 16320,
}
CONTEXT = {"mode": "fp8", "kv_cache_dtype": "fp8", "device": "cuda"}


def test_a_report_within_the_gate_and_its_table():
    timings = {"load": 0.4, "calibrate_quantize": 3.04}
    report = quality_report.make_report(_metrics(), DATA, CONTEXT, (8.0, 80.0, False), timings)
    assert report["schema_version"] == 1
    assert report["durations_s"] == timings | {"reference": 1.0, "quantized": 1.2}
    assert report["gate"] == {
        "max_ppl_increase_pct": 8.0,
        "min_token_agreement_pct": 80.0,
        "passed": True,
        "failures": [],
        "accepted_loss": False,
    }
    text = quality_report.table(report)
    assert "17.83 -> 18.27  (+2.5%; gate +8% at most)  pass" in text
    assert "gate             passed" in text
    assert "calibrate+quantize 3.0 s, measure 1.0 + 1.2 s" in text
    assert "64 held-out samples of calib.jsonl" in text


def test_an_accepted_loss_is_recorded_only_when_the_gate_failed():
    bad = _metrics(perplexity_increase_pct=54.8, token_agreement_pct=66.2)
    report = quality_report.make_report(bad, DATA, CONTEXT, (20.0, 70.0, True))
    assert report["gate"]["passed"] is False and report["gate"]["accepted_loss"] is True
    assert "published anyway (--accept-quality-loss)" in quality_report.table(report)
    good = quality_report.make_report(_metrics(), DATA, CONTEXT, (8.0, 80.0, True))
    assert good["gate"]["accepted_loss"] is False


def test_non_finite_figures_become_null_in_the_report():
    metrics = _metrics(quantized_perplexity=math.inf, perplexity_increase_pct=math.inf)
    report = quality_report.make_report(metrics, DATA, CONTEXT, (8.0, 80.0, False))
    assert report["quantized_perplexity"] is None and report["perplexity_increase_pct"] is None
    assert not report["gate"]["passed"]
    assert "n/a" in quality_report.table(report)


def test_load_report_refuses_what_is_not_a_report(tmp_path):
    good = quality_report.make_report(_metrics(), DATA, CONTEXT, (8.0, 80.0, False))
    path = tmp_path / "quality.json"
    quality.write_report(path, good)
    assert quality_report.load_report(path) == good
    path.write_text('{"schema_version": 1, "mode": "fp8"}')
    with pytest.raises(ExportError, match="not a quality report") as err:
        quality_report.load_report(path)
    assert err.value.code == 1  # the step wrote it: a run-time failure, not the user's input
    assert quality_report.manifest_entry(tmp_path / "nothing-measured") is None

"""What quantization cost: the quantized model measured against the unquantized one, in memory.

Library (imported by steps/modelopt_quantize.py; torch is imported by the functions that need it):
  make_batches(tokenizer, texts, seq_len, vocab_size) -> Batches
  reference_pass(model, batches, device) -> Reference      before quantizing (ModelOpt: in place)
  compare_pass(model, batches, reference, device) -> Metrics   after quantizing
  QualityCheck.from_args(args) -> .reference(model, tokenizer, device) -> .measure(model, ...)
                                                             the step's use of the three

Metrics over every predicted position (position t predicts token t+1 of its sample):
  perplexity        exp(mean negative log-likelihood), of the reference and of the quantized model
  increase          (quantized / reference - 1) * 100, in percent
  token agreement   share of positions where both models' greedy (argmax) next token is the same
  mean KL           KL(reference || quantized) of the next-token distributions, in nats

Memory. The reference must be computed before mtq.quantize changes the model in place, and full
next-token distributions do not fit in memory for real models (64 samples x 256 tokens x a 128k
vocabulary is 4 GiB in fp16, and grows with the eval set). Keeping a copy of the model is no
answer either (twice the GPU memory: a 70B model does not fit twice). So the reference pass keeps,
on the CPU, per position: its log-likelihood (summed at once, exact), its argmax, and its top-k
token ids with their log-probabilities (float32). After quantization the same batches run again,
and KL is computed over those k tokens plus one bucket for the rest of the vocabulary:
  KL_k = sum_{v in top-k} p(v) log(p(v)/q(v)) + P_rest log(P_rest/Q_rest)
which equals the exact KL when k covers the vocabulary (small models, the tests) and is otherwise
a lower bound that misses only (P_rest * KL within the rest); the report carries k and the mean
P_rest so a reader knows how tight it is. k = min(vocab, 1024), lowered to keep the stored
reference under REFERENCE_BUDGET_BYTES. Perplexity and agreement are exact either way.
Batches are sized from a logits budget (LOGITS_BUDGET_BYTES of float32 logits at a time), samples
sorted by length so padding is small; both passes run under torch.no_grad() (not inference_mode:
tensors it creates cannot be updated in place later, and calibration comes after the reference).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import manifest
import quality_gate
import quality_report
from errors import ExportError, failed
from quality_config import MIN_EVAL_SAMPLES

TOP_K = 1024
REFERENCE_BUDGET_BYTES = 512 * 1024**2  # top-k ids (int32) + log-probs (float32) on the CPU
LOGITS_BUDGET_BYTES = 512 * 1024**2  # float32 logits of one batch
MAX_BATCH_SAMPLES = 64


@dataclass
class Batches:
    """Tokenized eval samples: (input_ids, attention_mask) pairs, right-padded, on the CPU."""

    items: list[tuple[Any, Any]]
    samples: int
    dropped_short: int
    tokens: int
    positions: int
    vocab_size: int


@dataclass
class Reference:
    """What the unquantized model predicted, per batch, kept on the CPU."""

    nll_sum: float = 0.0
    positions: int = 0
    top_k: int = 0
    argmax: list[Any] = field(default_factory=list)
    top_ids: list[Any] = field(default_factory=list)
    top_logp: list[Any] = field(default_factory=list)
    tail_mass_sum: float = 0.0
    seconds: float = 0.0


@dataclass
class Metrics:
    """The comparison; non-finite values (a model that produces NaN) stay as they are."""

    reference_perplexity: float
    quantized_perplexity: float
    perplexity_increase_pct: float
    token_agreement_pct: float
    kl_mean: float
    kl_top_k: int
    reference_tail_mass_mean: float
    positions: int
    reference_seconds: float
    quantized_seconds: float


def make_batches(tokenizer, texts: list[str], seq_len: int, vocab_size: int) -> Batches:
    """Tokenize each sample (truncated to seq_len tokens); samples under 2 tokens are dropped."""
    import torch

    ids = [tokenizer(t, truncation=True, max_length=seq_len)["input_ids"] for t in texts]
    kept = sorted((s for s in ids if len(s) >= 2), key=len, reverse=True)
    per_batch = max(1, min(MAX_BATCH_SAMPLES, LOGITS_BUDGET_BYTES // (4 * vocab_size * seq_len)))
    items = []
    for start in range(0, len(kept), per_batch):
        group = kept[start : start + per_batch]
        width = len(group[0])
        input_ids = torch.zeros((len(group), width), dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for row, sample in enumerate(group):
            input_ids[row, : len(sample)] = torch.tensor(sample, dtype=torch.long)
            mask[row, : len(sample)] = 1
        items.append((input_ids, mask))
    return Batches(
        items=items,
        samples=len(kept),
        dropped_short=len(ids) - len(kept),
        tokens=sum(len(s) for s in kept),
        positions=sum(len(s) - 1 for s in kept),
        vocab_size=vocab_size,
    )


def _log_probs(model, input_ids, mask, device):
    """Next-token log-probabilities at the valid positions, [n, vocab] float32, and the targets."""
    import torch

    input_ids, mask = input_ids.to(device), mask.to(device)
    logits = model(input_ids=input_ids, attention_mask=mask).logits[:, :-1]
    valid = (mask[:, :-1] * mask[:, 1:]).bool()
    logp = torch.log_softmax(logits[valid].float(), dim=-1)
    return logp, input_ids[:, 1:][valid]


def top_k_for(batches: Batches) -> int:
    per_position = max(1, REFERENCE_BUDGET_BYTES // (8 * max(1, batches.positions)))
    return max(1, min(batches.vocab_size, TOP_K, per_position))


def reference_pass(model, batches: Batches, device) -> Reference:
    """Run the unquantized model once over the batches; keep what compare_pass needs."""
    import torch

    ref = Reference(top_k=top_k_for(batches))
    started = time.monotonic()
    with torch.no_grad():
        for input_ids, mask in batches.items:
            logp, targets = _log_probs(model, input_ids, mask, device)
            k = min(ref.top_k, logp.shape[-1])
            top_logp, top_ids = logp.topk(k, dim=-1)
            ref.nll_sum -= float(logp.gather(1, targets[:, None]).double().sum())
            ref.positions += int(targets.numel())
            ref.tail_mass_sum += float(_tail(top_logp).double().sum())
            ref.argmax.append(logp.argmax(dim=-1).to(torch.int32).cpu())
            ref.top_ids.append(top_ids.to(torch.int32).cpu())
            ref.top_logp.append(top_logp.cpu())
    ref.seconds = time.monotonic() - started
    return ref


def _tail(top_logp):
    """Probability mass outside the top-k tokens, computed without cancellation, >= 0."""
    import torch

    return (-torch.expm1(torch.logsumexp(top_logp.double(), dim=-1))).clamp(min=0.0)


def kl_top_k(ref_ids, ref_logp, logq):
    """Per-position KL(p || q) over p's top-k tokens plus one bucket for the rest (module doc)."""
    import torch

    ref_logp = ref_logp.double()
    q_logp = logq.gather(1, ref_ids.long()).double()
    head = (ref_logp.exp() * (ref_logp - q_logp)).sum(dim=-1)
    p_rest = _tail(ref_logp)
    q_rest = (-torch.expm1(torch.logsumexp(q_logp, dim=-1))).clamp(min=1e-300)
    return head + torch.xlogy(p_rest, p_rest) - torch.xlogy(p_rest, q_rest)


def compare_pass(model, batches: Batches, ref: Reference, device) -> Metrics:
    """Run the quantized model over the same batches and compare it with the reference."""
    import torch

    nll_sum, agree, kl_sum = 0.0, 0, 0.0
    started = time.monotonic()
    with torch.no_grad():
        for i, (input_ids, mask) in enumerate(batches.items):
            logq, targets = _log_probs(model, input_ids, mask, device)
            if logq.shape[0] != ref.argmax[i].shape[0]:
                raise ValueError("the quantized pass saw other positions than the reference")
            nll_sum -= float(logq.gather(1, targets[:, None]).double().sum())
            agree += int((logq.argmax(dim=-1).cpu() == ref.argmax[i].long()).sum())
            kl = kl_top_k(ref.top_ids[i].to(device), ref.top_logp[i].to(device), logq)
            kl_sum += float(kl.sum())
    n = max(1, ref.positions)
    ref_ppl, q_ppl = _exp(ref.nll_sum / n), _exp(nll_sum / n)
    return Metrics(
        reference_perplexity=ref_ppl,
        quantized_perplexity=q_ppl,
        perplexity_increase_pct=(q_ppl / ref_ppl - 1.0) * 100.0,
        token_agreement_pct=100.0 * agree / n,
        kl_mean=kl_sum / n,
        kl_top_k=ref.top_k,
        reference_tail_mass_mean=ref.tail_mass_sum / n,
        positions=ref.positions,
        reference_seconds=ref.seconds,
        quantized_seconds=time.monotonic() - started,
    )


def _exp(x: float) -> float:
    if math.isnan(x):
        return math.nan
    return math.exp(x) if x < 700 else math.inf


# --------------------------------------------------------------------------- the quantize step


def say(message: str) -> None:
    """A progress line of the step: build_tensorrt_llm.sh relays the log lines that start with
    '==> ' as they come (build_step_relay)."""
    print(f"==> {message}", file=sys.stderr, flush=True)


@dataclass
class QualityCheck:
    """The measurement inside modelopt_quantize.py: reference before mtq.quantize, then measure."""

    texts: list[str]
    source: dict
    args: Any
    batches: Batches | None = None
    ref: Reference | None = None

    @classmethod
    def from_args(cls, args) -> QualityCheck:
        """The eval text, read before the model loads (so bad input stops the step early)."""
        texts, source = quality_gate.eval_texts(
            args.calib_data, args.calib_size, args.eval_data, args.eval_size
        )
        if len(texts) < MIN_EVAL_SAMPLES:
            raise failed(
                "quality eval: "
                + quality_gate.too_few_message(
                    source["file"], source["held_out"], len(texts), args.calib_size
                ),
                id="quality_eval",
            )
        return cls(texts=texts, source=source, args=args)

    def reference(self, model, tokenizer, device) -> None:
        a = self.args
        vocab = int(getattr(model.config, "vocab_size", 0) or len(tokenizer))
        self.batches = make_batches(tokenizer, self.texts, a.eval_seq_len, vocab)
        if self.batches.samples < MIN_EVAL_SAMPLES:
            raise failed(
                f"quality eval: {self.batches.samples} of {len(self.texts)} eval samples have 2 "
                f"or more tokens; at least {MIN_EVAL_SAMPLES} are needed",
                id="quality_eval",
            )
        say(
            f"quality: reference pass of the unquantized model over {self.batches.samples} "
            f"samples ({self.batches.positions:,} positions)"
        )
        self.ref = reference_pass(model, self.batches, device)

    def measure(self, model, device, timings: dict | None = None) -> dict:
        """Compare, write the report, print its table; ExportError (exit 1) when over the gate."""
        a, b = self.args, self.batches
        say("quality: the quantized model over the same samples")
        metrics = compare_pass(model, b, self.ref, device)
        data = self.source | {
            "requested": a.eval_size,
            "samples": b.samples,
            "dropped_short": b.dropped_short,
            "seq_len": a.eval_seq_len,
            "tokens": b.tokens,
            "positions": b.positions,
        }
        context = {"mode": a.qformat, "kv_cache_dtype": a.kv_cache_dtype, "device": str(device)}
        gate = (a.max_ppl_increase_pct, a.min_token_agreement_pct, a.accept_quality_loss)
        report = quality_report.make_report(asdict(metrics), data, context, gate, timings)
        write_report(a.quality_report, report)
        for line in quality_report.table(report).splitlines():
            say(line)
        verdict = report["gate"]
        if not verdict["passed"] and not verdict["accepted_loss"]:
            raise ExportError(
                "quality gate failed: " + "; ".join(verdict["failures"]) + f" (report: "
                f"{a.quality_report}); nothing is exported. Publish anyway with "
                "--accept-quality-loss, or see quantization.eval.gate in the build config",
                code=1,
                id="quality_gate",
            )
        return report


def write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_json_atomic(path, report)

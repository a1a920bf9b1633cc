"""--verify's logits check: is the merge rule right, judged against PEFT's unmerged model?

A 16-bit merged model cannot match the unmerged adapter model exactly: every merged weight
is rounded once, and on a 30-layer bf16 model that rounding alone moves logits by a few
percent. So the check separates the two things a merge can get wrong:

- merge rule: the merged model with its merged tensors set to their exact values (the plan
  recomputed in float64, as the tensor check does, not rounded) must give the unmerged
  PeftModel's logits to float32 precision (rms difference <= RULE_TOLERANCE of the rms logit).
  This is where a dropped update, a wrong scale, a transposed update or a wrong tying rule
  shows, however small the adapter, without any bf16 noise in the way.
- output: the written model (rounded) must be within NOISE_MARGIN times the rounding noise
  measured in the same run (written vs exact) of the PeftModel. The tensor check already holds
  every tensor within one ulp; this ties what transformers loads to what was checked.

For PEFT-merged tuners there is no plan: PEFT's own float32 merge is the exact model.
Token ids are random but fixed (seed 0); everything runs in float32 on the CPU.
"""

from __future__ import annotations

import math
from pathlib import Path

SEQUENCES, TOKENS = 3, 16
RULE_TOLERANCE = 1e-4  # float32 arithmetic: merged vs unmerged forward differ by ~1e-6
NOISE_MARGIN = 2.0


def _available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def skip_reason(plan, base_params: int) -> str | None:
    """Why the logits check cannot run here (memory, packages), or None."""
    params = sum(math.prod(t.shape) for t in plan.tensors) if plan else base_params
    need = params * 4 * 2 + (512 << 20)  # one float32 model at a time, plus working memory
    if need > _available_bytes():
        return f"needs about {need / 2**30:.1f} GiB of RAM"
    from lora_merge.engines import missing

    gone = missing("torch", "transformers", "peft")
    return f"cannot import {', '.join(gone)}" if gone else None


def quiet_libraries() -> None:
    """transformers' and PEFT's progress bars, deprecation notices and warnings off: the
    merge's own log lines say what is happening, and the verdict is in merge_info.json."""
    import warnings

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module=r"(transformers|peft)(\.|$)")


def logits(model, ids):
    import torch

    with torch.no_grad():
        return model(input_ids=ids).logits.float()


def _rms(x) -> float:
    return float(x.double().pow(2).mean().sqrt())


def compare(a, b) -> dict:
    """How logits b differ from logits a (the reference)."""
    la, lb = a.log_softmax(-1), b.log_softmax(-1)
    return {
        "rms_diff": _rms(b - a),
        "max_abs_diff": float((b - a).abs().max()),
        "next_token_agreement": float((a.argmax(-1) == b.argmax(-1)).float().mean()),
        "kl": float((la.exp() * (la - lb)).sum(-1).mean()),
    }


def load_merged(out_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32).eval()


def token_ids(vocab: int):
    import torch

    return torch.randint(0, vocab, (SEQUENCES, TOKENS), generator=torch.Generator().manual_seed(0))


class ExactWeights:
    """Sets the loaded merged model's tensors to exact values, by name (the tensor check's
    float64 recomputation, handed over one tensor at a time)."""

    def __init__(self, model) -> None:
        self.params = model.state_dict()
        self.missing: list[str] = []

    def __call__(self, name: str, value) -> None:
        import torch

        target = self.params.get(name)
        if target is None or tuple(target.shape) != tuple(value.shape):
            self.missing.append(name)
            return
        with torch.no_grad():
            target.copy_(value.to(torch.float32))


def reference_model(base_dir: Path, adapters: list[Path], vocab_rows: int | None):
    """Base in float32 with the adapters: all but the last merged, the last one live."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if vocab_rows and ref.get_input_embeddings().weight.shape[0] != vocab_rows:
        ref.resize_token_embeddings(vocab_rows)
    for i, path in enumerate(adapters):
        ref = PeftModel.from_pretrained(ref, path)
        if i < len(adapters) - 1:
            ref = ref.merge_and_unload()
    return ref.eval()


def judge(want, exact, written) -> dict:
    """The verdict from the adapter model's, the exact merge's and the written model's logits."""
    scale = _rms(want)
    rule = {"rms_diff": _rms(exact - want), "tolerance": RULE_TOLERANCE * scale}
    rule["status"] = "pass" if rule["rms_diff"] <= rule["tolerance"] else "fail"
    noise = _rms(written - exact)
    output = compare(want, written)
    output["rounding_noise_rms"] = noise
    output["tolerance"] = NOISE_MARGIN * noise + RULE_TOLERANCE * scale
    output["status"] = "pass" if output["rms_diff"] <= output["tolerance"] else "fail"
    ok = rule["status"] == output["status"] == "pass"
    return {
        "status": "pass" if ok else "fail",
        "sequences": SEQUENCES,
        "tokens": TOKENS,
        "rms_logit": scale,
        "merge_rule": rule,
        "output": output,
    }

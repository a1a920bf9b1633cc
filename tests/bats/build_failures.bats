#!/usr/bin/env bats
# build_tensorrt_llm.sh when things go wrong: bad input exits 2 with nothing written; a failing
# or killed step leaves no output, keeps (then clears) its staging dir; one build per output.

bats_require_minimum_version 1.5.0

load test_helper
load build_helper

setup_file() {
  build_file_setup_on 1.2.0
}

setup() {
  build_setup_on 1.2.0
}

teardown() {
  # a build or fake left running by a failed test must not outlive it
  local pid
  for pid in "${BG_PID:-}" "$(cat "${BATS_TEST_TMPDIR}/build.pid" 2>/dev/null || true)"; do
    [[ -z "${pid}" ]] || kill -KILL "${pid}" 2>/dev/null || true
  done
}

build_pid_gone() { # <pid>
  ! kill -0 "$1" 2>/dev/null
}

build_run() {
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
}

@test "bad NAMEs exit 2 and write nothing: ../x, a/b, -rf, spaces, \$(...), leading dot" {
  local name
  # shellcheck disable=SC2016 # a literal $(...) is the point: it must never run
  for name in '../x' 'a/b' '-rf' 'my model' '$(touch pwned)' '.hidden' 'x;ls' 'a*'; do
    run "${BUILD}" --name "${name}" --config "${CONFIG}"
    assert_failure 2
    assert_output --partial "invalid NAME"
  done
  [[ ! -e pwned && ! -e "${REPO_ROOT}/pwned" ]]
  run "${BUILD}" --name "" --config "${CONFIG}"
  assert_failure 2
  [[ -z "$(build_outputs_listing)" ]]
}

@test "a missing model dir exits 2 naming it, with nothing written" {
  run "${BUILD}" --name no-such-model --config "${CONFIG}"
  assert_failure 2
  assert_output --partial "no merged model at ${OUTPUTS_DIR}/gpu/merged_models/no-such-model"
  run "${BUILD}" --model-dir "${BATS_TEST_TMPDIR}/nowhere" --config "${CONFIG}" --output "${OUT}"
  assert_failure 2
  [[ -z "$(build_outputs_listing)" ]]
}

@test "a model dir without a tokenizer exits 2 before anything runs" {
  local model="${BATS_TEST_TMPDIR}/no tokenizer"
  cp -r "${MODELS}/tiny llama" "${model}"
  rm -f "${model}"/tokenizer*
  run "${BUILD}" --model-dir "${model}" --config "${CONFIG}" --output "${OUT}"
  assert_failure 2
  assert_output --partial "no tokenizer"
  [[ -z "$(build_outputs_listing)" && "$(build_calls convert)" == 0 ]]
}

@test "config errors surface with exit 2 and nothing written" {
  printf 'build:\n  max_batch_sise: 8\n' >"${CONFIG}"
  build_run
  assert_failure 2
  [[ "${stderr}" == *"max_batch_sise"* ]]
  [[ -z "$(build_outputs_listing)" && "$(build_calls convert)" == 0 ]]
  run "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${BATS_TEST_TMPDIR}/missing.yaml" --output "${OUT}"
  assert_failure 2
  assert_output --partial "config file not found"
}

@test "unknown arguments and missing values exit 2 with the usage" {
  run "${BUILD}" --frobnicate
  assert_failure 2
  assert_output --partial "unknown argument: --frobnicate"
  assert_output --partial "Usage:"
  run "${BUILD}" --name
  assert_failure 2
  assert_output --partial "--name needs a value"
}

@test "no trtllm-build on PATH exits 2 before any step runs" {
  local bin="${BATS_TEST_TMPDIR}/only-smi"
  mkdir -p "${bin}"
  ln -s "${REPO_ROOT}/tests/fakes/bin/nvidia-smi" "${bin}/nvidia-smi"
  PATH="${bin}:/usr/local/bin:/usr/bin:/bin" build_run
  assert_failure 2
  [[ "${stderr}" == *"trtllm-build"*"not on PATH"* ]]
  [[ "$(build_calls convert)" == 0 && ! -e "${OUT}" ]]
}

@test "a failing convert leaves no output, prints the log tail and a hint, and keeps the staging dir" {
  local staging
  FAKE_TRTLLM_FAIL=convert:oom build_run
  assert_failure 1
  [[ ! -e "${OUT}" ]]
  [[ "${stderr}" == *"step convert failed with exit code 1"* ]]
  [[ "${stderr}" == *"last 20 lines of"*"convert.log"* ]]
  [[ "${stderr}" == *"CUDA out of memory"* ]]
  [[ "${stderr}" == *"hint: "*"max_num_tokens"*"[gpu_out_of_memory]"* ]]
  [[ "${stderr}" == *"kept the staging dir for inspection"* ]]
  staging="$(compgen -G "${OUTPUTS_DIR}/engines/.my-model.staging-*")"
  [[ -f "${staging}/logs/convert.log" ]]
  [[ "$(build_calls build)" == 0 ]]
  # the next run clears the failed build's staging dir and succeeds
  build_run
  assert_success
  [[ "${stderr}" == *"removing stale ${staging}"* && ! -e "${staging}" ]]
  [[ -f "${OUT}/build.json" ]]
}

@test "a step killed with exit 137 gets the host-memory hint" {
  FAKE_TRTLLM_FAIL=build:killed build_run
  assert_failure 1
  [[ "${stderr}" == *"exit code 137"* && "${stderr}" == *"build.workers"*"[host_out_of_memory]"* ]]
  [[ ! -e "${OUT}" ]]
}

@test "an engine missing a rank fails the publish with no output" {
  build_write_config "${CONFIG}" 1.2.0 2
  FAKE_TRTLLM_FAIL=build:partial build_run
  assert_failure 1
  [[ "${stderr}" == *"no engine for rank(s) 1"* ]]
  [[ ! -e "${OUT}" ]]
}

@test "a second concurrent build of the same output exits 1 and names the holder's pid" {
  FAKE_TRTLLM_FAIL=build:hang BUILD_PROGRESS_SECONDS=1 "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" \
    --output "${OUT}" >"${BATS_TEST_TMPDIR}/first.out" 2>&1 3>&- &
  BG_PID=$!
  build_wait_for "${BATS_TEST_TMPDIR}/build.pid"
  build_run
  assert_failure 1
  [[ "${stderr}" == *"another build of ${OUT} is running (pid ${BG_PID})"* ]]
  # stopping the first build (SIGTERM) stops its step and leaves no output
  local rc=0 i
  for ((i = 0; i < 50; i++)); do
    grep -q "s so far" "${BATS_TEST_TMPDIR}/first.out" && break
    sleep 0.1
  done
  kill -TERM "${BG_PID}"
  wait "${BG_PID}" || rc=$?
  [[ "${rc}" == 143 ]]
  # a long step reported progress with its log's last line
  [[ "$(cat "${BATS_TEST_TMPDIR}/first.out")" == *"build      ... "*"s so far; log: fake: hanging until killed"* ]]
  [[ "$(cat "${BATS_TEST_TMPDIR}/first.out")" == *"interrupted by SIGTERM"* ]]
  [[ ! -e "${OUT}" ]]
  build_pid_gone "$(cat "${BATS_TEST_TMPDIR}/build.pid")"
}

@test "SIGKILL during the build leaves no output; the next run clears the stale staging dir and succeeds" {
  local staging fake_pid i
  FAKE_TRTLLM_FAIL=build:hang "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" \
    --output "${OUT}" >"${BATS_TEST_TMPDIR}/first.out" 2>&1 3>&- &
  BG_PID=$!
  build_wait_for "${BATS_TEST_TMPDIR}/build.pid"
  fake_pid="$(cat "${BATS_TEST_TMPDIR}/build.pid")"
  staging="${OUTPUTS_DIR}/engines/.my-model.staging-${BG_PID}"
  [[ -f "${staging}/engine/rank0.partial" ]]
  kill -KILL "${BG_PID}"
  wait "${BG_PID}" || true
  # the step dies with the build (no orphan holding the GPU or the lock)
  for ((i = 0; i < 50; i++)); do kill -0 "${fake_pid}" 2>/dev/null || break; sleep 0.1; done
  build_pid_gone "${fake_pid}"
  [[ ! -e "${OUT}" && -d "${staging}" ]]
  build_run
  assert_success
  [[ "${stderr}" == *"removing stale ${staging}"* ]]
  [[ ! -e "${staging}" && -f "${OUT}/engine/rank0.engine" && ! -e "${OUT}/engine/rank0.partial" ]]
}

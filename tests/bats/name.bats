#!/usr/bin/env bats
# The NAME rule (scripts/export/_lib/name.sh): 1 to 128 letters, digits, '.', '_', '-', starting
# with a letter or digit; every entry point that takes a NAME says the same line and writes nothing.

load test_helper

setup() {
  common_setup
  export OUTPUTS_DIR="${BATS_TEST_TMPDIR}/outputs"
  mkdir -p "${BATS_TEST_TMPDIR}/adapter"
}

# message_of CMD...: the text after "error: " of CMD's error line; CMD must exit 2.
message_of() {
  local status=0 output
  output="$("$@" 2>&1 >/dev/null)" || status=$?
  ((status == 2)) || fail "exit ${status}, not 2, from: $*"$'\n'"${output}"
  printf '%s\n' "${output}" | sed -n 's/^[^:]*: error: //p' | head -n 1
}

# same_message_everywhere NAME: make engine/merge/verify/serve/bench and the scripts behind them
# refuse NAME with one and the same message.
same_message_everywhere() {
  local name="$1" expected message
  local -a make=(make -s --no-print-directory -C "${REPO_ROOT}" PYTHON="${PYTHON}")
  expected="$(message_of "${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh" --name "${name}")"
  [[ "${expected}" == "invalid NAME "* ]] || fail "unexpected line: ${expected}"
  for message in \
    "$(message_of "${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh" --verify --name "${name}")" \
    "$(message_of "${REPO_ROOT}/scripts/export/bench_tensorrt_llm.sh" --name "${name}")" \
    "$(message_of "${REPO_ROOT}/scripts/make_target.sh" merge)" \
    "$(message_of env NAME="${name}" "${REPO_ROOT}/scripts/make_target.sh" serve)"; do
    [[ "${message}" == "${expected}" ]] || fail "'${message}' != '${expected}'"
  done
  # make prints the script's line, then its own "Error 2" line
  for target in engine verify bench serve "merge ADAPTER=${BATS_TEST_TMPDIR}/adapter"; do
    # shellcheck disable=SC2086 # target holds the target and, for merge, one VAR=value word
    run "${make[@]}" ${target} NAME="${name}"
    assert_line --partial ": error: ${expected}"
  done
}

@test "a NAME with a character outside the set gets the same line from every entry point" {
  local name
  for name in "my model" "a/b" ".hidden" "-x" "é" "a:b" "a\$b"; do
    NAME="${name}" ADAPTER="${BATS_TEST_TMPDIR}/adapter" same_message_everywhere "${name}"
  done
}

@test "a NAME of 129 characters is refused, with its length, before anything is written" {
  local name
  name="$(printf 'a%.0s' {1..129})"
  NAME="${name}" ADAPTER="${BATS_TEST_TMPDIR}/adapter" same_message_everywhere "${name}"
  run "${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh" --name "$(printf 'x%.0s' {1..300})"
  assert_failure 2
  assert_output --partial "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' (300 characters): use 1 to 128 letters"
  [[ ! -e "${OUTPUTS_DIR}" ]]
}

@test "a NAME with a newline is one line naming it, not a syntax error" {
  NAME=$'a\nb' ADAPTER="${BATS_TEST_TMPDIR}/adapter" same_message_everywhere $'a\nb'
  run "${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh" --name $'a\nb'
  assert_output "build_tensorrt_llm: error: invalid NAME \$'a\\nb': use 1 to 128 letters, digits, '.', '_' and '-', starting with a letter or digit"
}

@test "a NAME of 128 characters passes the NAME rule" {
  local name
  name="$(printf 'b%.0s' {1..128})"
  run "${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh" --name "${name}"
  assert_failure 2
  assert_output --partial "no merged model at ${OUTPUTS_DIR}/gpu/merged_models/${name}:"
}

@test "make merge without NAME or with an adapter that is not a directory says so" {
  run make -s --no-print-directory -C "${REPO_ROOT}" merge PYTHON="${PYTHON}" \
    ADAPTER="${BATS_TEST_TMPDIR}/adapter"
  assert_output --partial "make merge: error: set NAME=<model name>, e.g. make merge NAME=my-sft"
  run make -s --no-print-directory -C "${REPO_ROOT}" merge PYTHON="${PYTHON}" ADAPTER=/nonexistent NAME=m
  assert_output --partial "make merge: error: ADAPTER '/nonexistent' is not a directory"
}

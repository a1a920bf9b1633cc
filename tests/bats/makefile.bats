#!/usr/bin/env bats
# The Makefile front door: help lists every target, required variables are explained.

load test_helper

setup() {
  common_setup
}

@test "make help lists every target of the Makefile with a description" {
  local target
  run make -C "${REPO_ROOT}" help
  assert_success
  while IFS= read -r target; do
    assert_line --regexp "^  ${target} +[A-Za-z]"
  done < <(grep -oE '^[a-z][a-z-]*:' "${REPO_ROOT}/Makefile" | tr -d ':')
}

@test "make engine without NAME says how to set it and exits 2" {
  run make -C "${REPO_ROOT}" engine
  assert_failure 2
  assert_output --partial "set NAME="
}

@test "make merge without ADAPTER says how to set it and exits 2" {
  run make -C "${REPO_ROOT}" merge NAME=x
  assert_failure 2
  assert_output --partial "set ADAPTER="
}

@test "a second setup run installs nothing and takes seconds" {
  run "${REPO_ROOT}/scripts/dev/setup_venv.sh"
  assert_success
  assert_output ""
  run "${REPO_ROOT}/scripts/dev/setup_bats.sh"
  assert_success
  assert_output ""
}

@test "make merge FORCE=1 replaces an existing merged model, as make engine FORCE=1 does" {
  "${PYTHON}" "${REPO_ROOT}/scripts/dev/tiny_models.py" demo --out "${BATS_TEST_TMPDIR}/tiny" >/dev/null
  export OUTPUTS_DIR="${BATS_TEST_TMPDIR}/outputs"
  local -a merge=(make -C "${REPO_ROOT}" merge PYTHON="${PYTHON}" ADAPTER="${BATS_TEST_TMPDIR}/tiny/adapter" NAME=m)
  run "${merge[@]}"
  assert_success
  run "${merge[@]}"
  assert_failure
  assert_output --partial "--overwrite"
  run "${merge[@]}" FORCE=1
  assert_success
  [[ -f "${OUTPUTS_DIR}/gpu/merged_models/m/merge_info.json" ]]
}

@test "make help lists the variables the targets take" {
  run make -C "${REPO_ROOT}" help
  assert_success
  local var
  for var in NAME ADAPTER CONFIG PROFILE DRY_RUN FORCE ACCEPT_QUALITY_LOSS FULL ALLOW_SKIP MERGE_ARGS BENCH_ARGS OUTPUTS_DIR PYTHON; do
    assert_line --regexp "^  ${var} +[a-z0-9]"
  done
  assert_line "Development:"
}

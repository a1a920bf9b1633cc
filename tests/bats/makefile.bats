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

#!/usr/bin/env bats
# The Bash libraries of the build: lock.sh (one build per output) and staging.sh (stale staging
# dirs, the swap into place). Sourced and called directly; no Python.

bats_require_minimum_version 1.5.0

load test_helper

setup() {
  common_setup
  PROG="build_lib_test"
  # shellcheck source=../../scripts/export/lib/lock.sh
  source "${REPO_ROOT}/scripts/export/lib/lock.sh"
  # shellcheck source=../../scripts/export/lib/staging.sh
  source "${REPO_ROOT}/scripts/export/lib/staging.sh"
  PARENT="${BATS_TEST_TMPDIR}/out dir"
  mkdir -p "${PARENT}"
}

@test "lock_acquire takes a free lock, records this pid, and a second holder is refused" {
  local fd=""
  lock_acquire "${PARENT}/.x.lock" fd
  [[ -n "${fd}" ]]
  run lock_holder "${PARENT}/.x.lock"
  assert_output "$$"
  # another process cannot take it while this shell holds it
  run flock --nonblock "${PARENT}/.x.lock" true
  assert_failure 1
  lock_release "${fd}"
  run flock --nonblock "${PARENT}/.x.lock" true
  assert_success
}

@test "lock_acquire returns 1 while another process holds the lock" {
  local fd=""
  flock "${PARENT}/.x.lock" sleep 5 3>&- &
  local holder=$!
  sleep 0.3
  run lock_acquire "${PARENT}/.x.lock" fd
  assert_failure 1
  kill "${holder}"
}

@test "lock_acquire returns 3 without flock on PATH, not 1 (another build)" {
  local fd="" old_path="${PATH}"
  mkdir -p "${BATS_TEST_TMPDIR}/empty-bin"
  # shellcheck disable=SC2123 # on purpose: a PATH without flock
  PATH="${BATS_TEST_TMPDIR}/empty-bin"
  run lock_acquire "${PARENT}/.x.lock" fd
  PATH="${old_path}"
  assert_failure 3
}

@test "staging_clear_stale removes staging and .old dirs of dead pids, never a live one's" {
  local dead
  sleep 0 &
  dead=$!
  wait "${dead}"
  mkdir -p "${PARENT}/x" "${PARENT}/.x.staging-${dead}/logs" "${PARENT}/.x.old-${dead}" \
    "${PARENT}/.x.staging-$$" "${PARENT}/.x.staging-1" "${PARENT}/.y.staging-${dead}"
  run staging_clear_stale "${PARENT}/x"
  assert_success
  assert_output --partial "removing stale ${PARENT}/.x.staging-${dead}"
  [[ ! -e "${PARENT}/.x.staging-${dead}" && ! -e "${PARENT}/.x.old-${dead}" ]]
  # this shell's, pid 1's (alive) and another output's staging dirs stay
  [[ -d "${PARENT}/.x.staging-$$" && -d "${PARENT}/.x.staging-1" && -d "${PARENT}/.y.staging-${dead}" ]]
}

@test "staging_clear_stale keeps an old artifact moved aside while its output is missing" {
  local dead
  sleep 0 &
  dead=$!
  wait "${dead}"
  mkdir -p "${PARENT}/.x.old-${dead}"
  run staging_clear_stale "${PARENT}/x"
  assert_success
  [[ -d "${PARENT}/.x.old-${dead}" ]]
}

@test "staging_path puts the staging dir beside the output, named after it and the pid" {
  run staging_path "${PARENT}/my-model" 42
  assert_output "${PARENT}/.my-model.staging-42"
}

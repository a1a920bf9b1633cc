#!/usr/bin/env bats
# scripts/dev/lint.sh finds every shell file, including extension-less ones with a bash shebang.

load test_helper

setup() {
  common_setup
}

@test "the shell file list includes .ci/run, bats files and fakes without an extension" {
  # shellcheck source=../../scripts/dev/lint.sh
  source "${REPO_ROOT}/scripts/dev/lint.sh"
  cd "${REPO_ROOT}"
  run lint_shell_files
  assert_success
  assert_line ".ci/run"
  assert_line "tests/bats/lint.bats"
  assert_line "scripts/dev/lint.sh"
  refute_line --partial "node_modules"
  refute_line --partial ".py"
}

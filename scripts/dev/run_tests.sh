#!/usr/bin/env bash
# Run the whole test suite: lint, pytest, bats. Prints each runner's summary.
#
# Usage: scripts/dev/run_tests.sh
#
# Every part runs even when an earlier one fails; the exit status is non-zero if any failed.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT

tests_run() {
  # Runs one named part, prints its status line, returns its exit status.
  local name="$1" start status=0
  shift
  start=${SECONDS}
  printf '\n== %s\n' "${name}" >&2
  "$@" || status=$?
  printf '== %s: %s (%ds)\n' "${name}" "$([[ ${status} -eq 0 ]] && echo ok || echo "FAILED, exit ${status}")" \
    "$((SECONDS - start))" >&2
  return "${status}"
}

main() {
  local failed=()
  cd "${REPO_ROOT}"
  export PYTHON="${REPO_ROOT}/.venv/bin/python"
  tests_run lint scripts/dev/lint.sh || failed+=(lint)
  tests_run pytest .venv/bin/python -m pytest || failed+=(pytest)
  tests_run bats node_modules/bats/bin/bats --recursive tests/bats || failed+=(bats)
  if ((${#failed[@]} > 0)); then
    printf '\nmake test: FAILED: %s\n' "${failed[*]}" >&2
    return 1
  fi
  printf '\nmake test: all green (lint, pytest, bats)\n' >&2
}

main "$@"

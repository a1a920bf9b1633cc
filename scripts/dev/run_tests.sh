#!/usr/bin/env bash
# Run the whole test suite: lint, then pytest and bats side by side. Prints each runner's summary.
#
# Usage: scripts/dev/run_tests.sh
#
# Every part runs even when another fails; the exit status is non-zero if any failed. The bats
# files are split into two shards that run at the same time as pytest (the suite is mostly
# Python start-up, so two cores finish it in about half the time); each part's full output is
# printed when it ends, so nothing interleaves.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly BATS="${REPO_ROOT}/node_modules/bats/bin/bats"

tests_cleanup() {
  [[ -z "${TESTS_TMP:-}" ]] || rm -rf -- "${TESTS_TMP}"
}

# tests_start NAME CMD...: run CMD in the background, its output into TESTS_TMP/NAME.log and
# its exit status into TESTS_TMP/NAME.rc.
tests_start() {
  local name="$1"
  shift
  (
    status=0
    "$@" >"${TESTS_TMP}/${name}.log" 2>&1 || status=$?
    printf '%s\n' "${status}" >"${TESTS_TMP}/${name}.rc"
  ) &
}

# tests_report NAME: print NAME's output and status line; return its exit status.
tests_report() {
  local name="$1" status
  status="$(<"${TESTS_TMP}/${name}.rc")"
  printf '\n== %s\n' "${name}" >&2
  cat -- "${TESTS_TMP}/${name}.log" >&2
  printf '== %s: %s\n' "${name}" "$([[ ${status} -eq 0 ]] && echo ok || echo "FAILED, exit ${status}")" >&2
  return "${status}"
}

main() {
  local failed=() shard passed=0 not_ok=0 start i
  local -a files shards=("" "")
  cd "${REPO_ROOT}"
  export PYTHON="${REPO_ROOT}/.venv/bin/python"
  TESTS_TMP="$(mktemp -d)"
  trap tests_cleanup EXIT
  start=${SECONDS}

  printf '== lint\n' >&2
  scripts/dev/lint.sh || failed+=(lint)

  mapfile -t files < <(printf '%s\n' tests/bats/*.bats | sort)
  for i in "${!files[@]}"; do
    shards[i % 2]+="${files[i]}"$'\n'
  done
  tests_start pytest .venv/bin/python -m pytest
  for i in 0 1; do
    mapfile -t files <<<"${shards[i]%$'\n'}"
    tests_start "bats-${i}" "${BATS}" --formatter tap "${files[@]}"
  done
  wait

  tests_report pytest || failed+=(pytest)
  for shard in bats-0 bats-1; do
    tests_report "${shard}" || failed+=("${shard}")
    passed=$((passed + $(grep -c '^ok ' "${TESTS_TMP}/${shard}.log" || true)))
    not_ok=$((not_ok + $(grep -c '^not ok ' "${TESTS_TMP}/${shard}.log" || true)))
  done
  printf '\nbats: %d passed, %d failed\n' "${passed}" "${not_ok}"
  if ((${#failed[@]} > 0)); then
    printf 'make test: FAILED: %s (%ds)\n' "${failed[*]}" "$((SECONDS - start))" >&2
    return 1
  fi
  printf 'make test: all green: lint, pytest, bats (%ds)\n' "$((SECONDS - start))" >&2
}

main "$@"

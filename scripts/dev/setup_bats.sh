#!/usr/bin/env bash
# Install the pinned bats-core, bats-support and bats-assert into node_modules/ with npm ci.
#
# Usage: scripts/dev/setup_bats.sh
#
# Idempotent: skipped when node_modules/.installed is newer than package-lock.json.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly STAMP="${REPO_ROOT}/node_modules/.installed"

main() {
  if [[ -f "${STAMP}" && "${STAMP}" -nt "${REPO_ROOT}/package-lock.json" ]]; then
    return 0
  fi
  command -v npm >/dev/null || {
    printf 'setup_bats: npm not found; install Node.js (npm) to run the bats tests\n' >&2
    exit 1
  }
  printf 'setup_bats: npm ci (bats, bats-support, bats-assert)\n' >&2
  (cd "${REPO_ROOT}" && npm ci --no-audit --no-fund --loglevel=error >&2)
  touch "${STAMP}"
}

main "$@"

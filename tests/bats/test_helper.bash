# Shared setup for every .bats file: bats-support/assert, a hermetic HOME, fakes first on PATH.
# shellcheck shell=bash

REPO_ROOT="$(cd "${BATS_TEST_DIRNAME}/../.." && pwd)"
export REPO_ROOT
load "${REPO_ROOT}/node_modules/bats-support/load"
load "${REPO_ROOT}/node_modules/bats-assert/load"

# The interpreter every script under test runs with: the dev venv unless the caller set one.
export PYTHON="${PYTHON:-${REPO_ROOT}/.venv/bin/python}"

common_setup() {
  export HOME="${BATS_TEST_TMPDIR}/home"
  mkdir -p "${HOME}"
  export FAKE_BIN="${BATS_TEST_TMPDIR}/bin"
  mkdir -p "${FAKE_BIN}"
  export PATH="${FAKE_BIN}:${REPO_ROOT}/tests/fakes/bin:/usr/local/bin:/usr/bin:/bin"
  export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
}

# make_tiny FAMILY DIR [extra args]: a tiny random HF model (see scripts/dev/tiny_models.py).
make_tiny() {
  local family="$1" dir="$2"
  shift 2
  "${PYTHON}" "${REPO_ROOT}/scripts/dev/tiny_models.py" model --family "${family}" --out "${dir}" "$@" >/dev/null
}

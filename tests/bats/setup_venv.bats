#!/usr/bin/env bats
# scripts/dev/setup_venv.sh: which interpreter, when the venv is left alone or made anew, the
# progress lines, and the hint when pip fails. No package is downloaded here: a real install is
# in tests/python/test_oldest_python.py (and make setup itself).

bats_require_minimum_version 1.5.0

load test_helper

SETUP="${REPO_ROOT}/scripts/dev/setup_venv.sh"

setup() {
  common_setup
  VENV="${BATS_TEST_TMPDIR}/venv"
  # an interpreter that answers setup_venv's version questions as Python ${FAKE_PY_VERSION}
  cat >"${FAKE_BIN}/fakepy" <<'EOF'
#!/usr/bin/env bash
case "$*" in
  *print*) printf '%s\n' "${FAKE_PY_VERSION}" ;;
  *'sys.version_info < (3, 10)'*) [[ "${FAKE_PY_VERSION}" != 3.9 ]] ;;
  *) printf 'fakepy: unexpected call: %s\n' "$*" >&2 && exit 99 ;;
esac
EOF
  chmod +x "${FAKE_BIN}/fakepy"
  export BOOTSTRAP_PYTHON=fakepy
}

@test "a lock made for another Python stops with exit 2 and says which interpreter to use" {
  FAKE_PY_VERSION=3.10 run --separate-stderr "${SETUP}" --venv "${VENV}"
  assert_failure 2
  assert_stderr --partial "requirements/dev.lock is locked for Python 3.11"
  assert_stderr --partial "fakepy is 3.10: install python3.11 or set BOOTSTRAP_PYTHON"
  [[ ! -e "${VENV}" ]]
}

@test "Python older than 3.10 is refused" {
  FAKE_PY_VERSION=3.9 run --separate-stderr "${SETUP}" --venv "${VENV}"
  assert_failure 2
  assert_stderr "setup_venv: fakepy is Python 3.9; the toolkit needs 3.10 or newer"
}

@test "a venv made from the same lock and Python is left alone, in well under a second" {
  mkdir -p "${VENV}"
  printf '%s python 3.11' "$(sha256sum "${REPO_ROOT}/requirements/dev.lock" | cut -d ' ' -f 1)" \
    >"${VENV}/.installed"
  touch "${VENV}/mine"
  FAKE_PY_VERSION=3.11 run --separate-stderr "${SETUP}" --venv "${VENV}"
  assert_success
  assert_output ""
  [[ -z "${stderr}" && -e "${VENV}/mine" ]]
}

@test "a changed lock makes the venv anew; a pip failure prints its log's tail and a hint, exit 1" {
  local lock="${BATS_TEST_TMPDIR}/test.lock"
  printf '# python: any\ntorch==2.13.0+cpu \\\n    --hash=sha256:%064d\n' 0 >"${lock}"
  mkdir -p "${VENV}" && touch "${VENV}/old"
  # no index, an empty wheel dir and no config: pip finds no torch, at once and offline
  mkdir -p "${BATS_TEST_TMPDIR}/wheels"
  BOOTSTRAP_PYTHON=python3 PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 \
    PIP_FIND_LINKS="${BATS_TEST_TMPDIR}/wheels" \
    run --separate-stderr "${SETUP}" --venv "${VENV}" --lock "${lock}"
  assert_failure 1
  assert_stderr --partial "or the Python changed since"
  assert_stderr --partial "No matching distribution found for torch==2.13.0+cpu"
  assert_stderr --partial "hint: the lock pins torch's CPU build"
  assert_stderr --partial "pip install failed (exit 1); full log: ${VENV}/install.log"
  [[ ! -e "${VENV}/old" && ! -e "${VENV}/.installed" ]]
}

@test "pip's output goes to the log; the terminal gets a line per quarter and the unpacking" {
  # shellcheck source=../../scripts/dev/setup_venv.sh
  source "${SETUP}"
  run setup_progress 4 "${BATS_TEST_TMPDIR}/install.log" < <(printf '%s\n' \
    "Looking in indexes: x" "Collecting a==1 (from -r l (line 1))" "  Downloading a.whl" \
    "Processing /w/b-2-py3-none-any.whl (from -r l (line 2))" "Collecting c==3 (from -r l)" \
    "Collecting d==4 (from -r l)" "Installing collected packages: a, b, c, d")
  assert_success
  assert_output - <<'EOF'
setup_venv: [1/4] fetched or found in pip's cache (last: a==1)
setup_venv: [2/4] fetched or found in pip's cache (last: b-2-py3-none-any.whl)
setup_venv: [3/4] fetched or found in pip's cache (last: c==3)
setup_venv: [4/4] fetched or found in pip's cache (last: d==4)
setup_venv: unpacking 4 packages into the venv
EOF
  run wc -l <"${BATS_TEST_TMPDIR}/install.log"
  assert_output "7"
}

@test "a file that does not match the lock's hash is refused with a hint" {
  local lock="${BATS_TEST_TMPDIR}/test.lock"
  mkdir -p "${BATS_TEST_TMPDIR}/wheels"
  printf 'not the locked file' >"${BATS_TEST_TMPDIR}/wheels/demo_pkg-1.0-py3-none-any.whl"
  printf '# python: any\ndemo-pkg==1.0 \\\n    --hash=sha256:%064d\n' 0 >"${lock}"
  BOOTSTRAP_PYTHON=python3 PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 \
    PIP_FIND_LINKS="${BATS_TEST_TMPDIR}/wheels" \
    run --separate-stderr "${SETUP}" --venv "${VENV}" --lock "${lock}"
  assert_failure 1
  assert_stderr --partial "DO NOT MATCH THE HASHES"
  assert_stderr --partial "hint: a file differs from the one locked"
}

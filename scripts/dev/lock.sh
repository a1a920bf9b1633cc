#!/usr/bin/env bash
# Resolve pyproject.toml's pins, transitive dependencies included, into hash-pinned lock files.
#
# Usage: scripts/dev/lock.sh
#
# Writes requirements/dev.lock (everything .venv/ holds; make setup installs it) and
# requirements/export-helpers.lock (what scripts/export/lib's helpers import, for any Python
# 3.10+). Run it after changing a pin in pyproject.toml and commit both files.
# The resolver is pip-compile (pip-tools), a developer's tool only: pinned below, installed into
# outputs/dev/lock-tools/ on first use. It resolves with pip itself and pip's configuration, so
# it sees the same indexes and wheel directories as the install. The dev lock is made for the
# Python that runs this script: $LOCK_PYTHON (default python3), 3.11 or newer.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="lock.sh"
readonly PIP_TOOLS="pip-tools==7.6.2"
readonly TOOLS_DIR="${REPO_ROOT}/outputs/dev/lock-tools"
readonly LOCKFILE_PY="${REPO_ROOT}/scripts/dev/lockfile.py"
readonly -a COMPILE_ARGS=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-header
  --no-emit-index-url --no-emit-find-links)

die() {
  printf '%s: %s\n' "${PROG}" "$*" >&2
  exit 1
}

log() {
  printf '%s: %s\n' "${PROG}" "$*" >&2
}

lock_cleanup() {
  [[ -z "${LOCK_WORK:-}" ]] || rm -rf -- "${LOCK_WORK}"
}

# lock_tools: a venv with pip-tools at TOOLS_DIR (made once per pip-tools version).
lock_tools() {
  if [[ "$(cat "${TOOLS_DIR}/.installed" 2>/dev/null)" == "${PIP_TOOLS}" ]]; then
    return 0
  fi
  log "installing ${PIP_TOOLS} into ${TOOLS_DIR#"${REPO_ROOT}"/}"
  rm -rf -- "${TOOLS_DIR}"
  "${LOCK_PYTHON:-python3}" -m venv "${TOOLS_DIR}" || die "cannot create ${TOOLS_DIR}"
  "${TOOLS_DIR}/bin/python" -m pip install --quiet "${PIP_TOOLS}" >"${LOCK_WORK}/tools.log" 2>&1 \
    || { tail -n 20 "${LOCK_WORK}/tools.log" >&2; die "pip install ${PIP_TOOLS} failed"; }
  printf '%s' "${PIP_TOOLS}" >"${TOOLS_DIR}/.installed"
}

# lock_compile NAME PYTHON_TAG [--report FILE]: pip-compile LOCK_WORK/NAME.in into
# requirements/NAME.lock (through a temp file: a failed run leaves the old lock).
lock_compile() {
  local name="$1" python_tag="$2" out="${REPO_ROOT}/requirements/$1.lock"
  shift 2
  log "resolving requirements/${name}.lock"
  (cd "${LOCK_WORK}" && CUSTOM_COMPILE_COMMAND=scripts/dev/lock.sh \
    "${TOOLS_DIR}/bin/pip-compile" "${COMPILE_ARGS[@]}" -o "${name}.compiled" "${name}.in") \
    >"${LOCK_WORK}/${name}.log" 2>&1 \
    || { grep -v 'is ignored: it is neither' "${LOCK_WORK}/${name}.log" | tail -n 20 >&2; die "pip-compile failed for ${name}"; }
  "${TOOLS_DIR}/bin/python" "${LOCKFILE_PY}" assemble --compiled "${LOCK_WORK}/${name}.compiled" \
    --name "requirements/${name}.lock" --python "${python_tag}" "$@" >"${out}.tmp"
  mv -- "${out}.tmp" "${out}"
  log "wrote requirements/${name}.lock ($(grep -c '^[a-z0-9]' "${out}") packages)"
}

main() {
  local py version
  (($# == 0)) || { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2; }
  LOCK_WORK="$(mktemp -d)"
  trap lock_cleanup EXIT
  mkdir -p "${REPO_ROOT}/requirements"
  lock_tools
  py="${TOOLS_DIR}/bin/python"
  version="$("${py}" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  "${py}" "${LOCKFILE_PY}" inputs --pyproject "${REPO_ROOT}/pyproject.toml" --set dev >"${LOCK_WORK}/dev.in"
  "${py}" "${LOCKFILE_PY}" no-deps --pyproject "${REPO_ROOT}/pyproject.toml" >"${LOCK_WORK}/no-deps.txt"
  # the hash of each package installed without its dependencies, from pip's own choice of file
  "${py}" -m pip install --quiet --dry-run --ignore-installed --no-deps --only-binary=:all: \
    --report "${LOCK_WORK}/no-deps.json" -r "${LOCK_WORK}/no-deps.txt" 2>"${LOCK_WORK}/no-deps.log" \
    || { tail -n 20 "${LOCK_WORK}/no-deps.log" >&2; die "pip could not find the no-deps packages"; }
  lock_compile dev "${version}" --report "${LOCK_WORK}/no-deps.json"
  # the helpers' subset, at the dev lock's versions, with every wheel's hash (any Python 3.10+)
  cp -- "${REPO_ROOT}/requirements/dev.lock" "${LOCK_WORK}/dev.lock"
  "${py}" "${LOCKFILE_PY}" inputs --pyproject "${REPO_ROOT}/pyproject.toml" --set export-helpers \
    >"${LOCK_WORK}/export-helpers.in"
  printf -- '-c dev.lock\n' >>"${LOCK_WORK}/export-helpers.in"
  lock_compile export-helpers any
}

main "$@"

#!/usr/bin/env bash
# Create or update the development virtualenv at .venv/ from pyproject.toml.
#
# Usage: scripts/dev/setup_venv.sh
#
# Idempotent: the pinned dependencies are installed only when pyproject.toml is newer than
# the stamp .venv/.installed. Uses $BOOTSTRAP_PYTHON (default python3) to create the venv.
# Not for GPU boxes: there, run the scripts with the container's interpreter (PYTHON=python3).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly VENV_DIR="${REPO_ROOT}/.venv"
readonly STAMP="${VENV_DIR}/.installed"

setup_die() {
  printf 'setup_venv: %s\n' "$*" >&2
  exit 1
}

setup_requirements() {
  # pyproject.toml is TOML: Python reads it, Bash only gets one requirement per line.
  "${VENV_DIR}/bin/python" - "${REPO_ROOT}/pyproject.toml" <<'PY'
import sys
import tomllib

with open(sys.argv[1], "rb") as fh:
    project = tomllib.load(fh)["project"]
for req in project["dependencies"] + project["optional-dependencies"]["dev"]:
    print(req)
PY
}

main() {
  local -a reqs
  if [[ -f "${STAMP}" && "${STAMP}" -nt "${REPO_ROOT}/pyproject.toml" ]]; then
    return 0
  fi
  if [[ ! -x "${VENV_DIR}/bin/python" ]]; then
    printf 'setup_venv: creating %s\n' "${VENV_DIR}" >&2
    "${BOOTSTRAP_PYTHON:-python3}" -m venv "${VENV_DIR}" || setup_die "cannot create ${VENV_DIR}"
  fi
  mapfile -t reqs < <(setup_requirements)
  ((${#reqs[@]} > 0)) || setup_die "no requirements read from pyproject.toml"
  printf 'setup_venv: installing %d pinned packages (first run takes a minute)\n' "${#reqs[@]}" >&2
  "${VENV_DIR}/bin/python" -m pip install --quiet --disable-pip-version-check "${reqs[@]}" \
    || setup_die "pip install failed (see above)"
  touch "${STAMP}"
}

main "$@"

#!/usr/bin/env bash
# Lint every shell, bats and Python file of the repository.
#
# Usage: scripts/dev/lint.sh
#
# Runs shellcheck over *.sh, *.bash, *.bats and every file whose shebang names bash or sh;
# ruff check and ruff format --check over the Python. Tools come from .venv/ (make setup).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly VENV_BIN="${REPO_ROOT}/.venv/bin"

lint_shell_files() {
  # Prints the repository's shell and bats files, one per line, relative to the repo root.
  local file first
  while IFS= read -r -d '' file; do
    case "${file}" in
      *.sh | *.bash | *.bats) printf '%s\n' "${file#./}" ;;
      *)
        [[ -x "${file}" ]] || continue
        IFS= read -r first <"${file}" || true
        if [[ "${first}" =~ ^#!.*(bash|/sh|bats) ]]; then printf '%s\n' "${file#./}"; fi
        ;;
    esac
  done < <(find . \( -name .git -o -name .venv -o -name node_modules -o -name outputs \) -prune \
    -o -type f ! -name '*.py' -print0)
}

main() {
  local -a shell_files
  local status=0
  cd "${REPO_ROOT}"
  mapfile -t shell_files < <(lint_shell_files | sort)
  printf 'lint: shellcheck %d shell/bats files\n' "${#shell_files[@]}" >&2
  "${VENV_BIN}/shellcheck" --external-sources --source-path=SCRIPTDIR "${shell_files[@]}" || status=1
  printf 'lint: ruff check + format --check\n' >&2
  "${VENV_BIN}/ruff" check --quiet . || status=1
  "${VENV_BIN}/ruff" format --check --quiet . || status=1
  if ((status == 0)); then printf 'lint: clean\n' >&2; fi
  return "${status}"
}

# Sourcing (tests) defines the functions only.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"

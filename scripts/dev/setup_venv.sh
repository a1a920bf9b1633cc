#!/usr/bin/env bash
# Create the development virtualenv .venv/ from the lock file, exactly (hashes checked).
#
# Usage: scripts/dev/setup_venv.sh [--venv DIR] [--lock FILE]
#
# Installs every package of the lock (default requirements/dev.lock, made by scripts/dev/lock.sh
# from pyproject.toml) with `pip install --require-hashes --no-deps`: the same files on every
# machine and every day, nothing resolved at install time. Idempotent: the venv's stamp holds the
# lock's sha256 and the Python version; when either changes the venv is made anew. Progress goes
# to stderr, pip's own output to DIR/install.log.
# Interpreter: $BOOTSTRAP_PYTHON, else python<X.Y> when the lock says "# python: X.Y" and that is
# on PATH, else python3. Python 3.10 or newer. Not for GPU boxes: there, run the scripts with
# the TensorRT-LLM container's interpreter (PYTHON=python3 make ...).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="setup_venv"

setup_die() {
  printf '%s: %s\n' "${PROG}" "$*" >&2
  exit "${SETUP_EXIT:-1}"
}

setup_log() {
  printf '%s: %s\n' "${PROG}" "$*" >&2
}

setup_usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

# setup_python WANT: the bootstrap interpreter for a lock made for Python WANT ("any" or X.Y).
setup_python() {
  local want="$1"
  if [[ -n "${BOOTSTRAP_PYTHON:-}" ]]; then
    printf '%s' "${BOOTSTRAP_PYTHON}"
  elif [[ "${want}" != any ]] && "python${want}" -c '' 2>/dev/null; then # (a pyenv shim may fail)
    printf 'python%s' "${want}"
  else
    printf 'python3'
  fi
}

# setup_check_python PY WANT: PY runs, is 3.10+, and is the lock's version when it names one.
setup_check_python() {
  local py="$1" want="$2" have
  have="$("${py}" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" \
    || SETUP_EXIT=2 setup_die "cannot run ${py}: install Python 3.10+ or set BOOTSTRAP_PYTHON"
  "${py}" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || SETUP_EXIT=2 setup_die "${py} is Python ${have}; the toolkit needs 3.10 or newer"
  if [[ "${want}" != any && "${have}" != "${want}" ]]; then
    SETUP_EXIT=2 setup_die "${LOCK#"${REPO_ROOT}"/} is locked for Python ${want} (torch's CPU wheel is per Python version) and ${py} is ${have}: install python${want} or set BOOTSTRAP_PYTHON to it. The scripts themselves run on 3.10+: PYTHON=python3 make ... uses your own interpreter and packages"
  fi
  printf '%s' "${have}"
}

# setup_progress TOTAL LOG: pip's output (stdin) into LOG, one status line per stage on stderr;
# on a terminal one line that counts the packages, elsewhere a line at every quarter.
setup_progress() {
  local total="$1" log="$2" line name n=0 quarter=0
  while IFS= read -r line; do
    printf '%s\n' "${line}" >>"${log}"
    case "${line}" in
      Collecting\ * | Processing\ *) # from an index / from a local file
        n=$((n + 1))
        name="${line#* }"
        name="${name%% *}"
        name="${name##*/}"
        if [[ -t 2 ]]; then
          printf '\r\033[K%s: [%d/%d] %s' "${PROG}" "${n}" "${total}" "${name}" >&2
        elif ((n * 4 / total > quarter)); then
          quarter=$((n * 4 / total))
          setup_log "[${n}/${total}] fetched or found in pip's cache (last: ${name})"
        fi
        ;;
      Installing\ collected\ packages*)
        [[ ! -t 2 ]] || printf '\r\033[K' >&2
        setup_log "unpacking ${n} packages into the venv"
        ;;
    esac
  done
}

# setup_hint LOG: one line for a known failure signature of pip's log.
setup_hint() {
  local log="$1"
  if grep -q 'No matching distribution found for torch' "${log}"; then
    setup_log "hint: the lock pins torch's CPU build; pip finds it on PyTorch's CPU index: PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu make setup"
  elif grep -q 'DO NOT MATCH THE HASHES' "${log}"; then
    setup_log "hint: a file differs from the one locked (a mirror or a wheel dir serving another build?); scripts/dev/lock.sh re-locks against what you reach"
  elif grep -qiE 'connection|network|timed out' "${log}"; then
    setup_log "hint: pip could not reach the package index; check the network or pip's proxy settings"
  fi
}

setup_install() {
  local py="$1" total="$2" start=${SECONDS} rc=0
  local log="${VENV_DIR}/install.log"
  setup_log "creating ${VENV_DIR#"${REPO_ROOT}"/} with ${py}"
  "${py}" -m venv "${VENV_DIR}" || setup_die "cannot create ${VENV_DIR}"
  setup_log "installing ${total} locked packages from ${LOCK#"${REPO_ROOT}"/} (log: ${log#"${REPO_ROOT}"/})"
  # --no-compile, then compileall on every core: the same .pyc files in half the time
  "${VENV_DIR}/bin/python" -m pip install --require-hashes --no-deps --disable-pip-version-check \
    --no-input --progress-bar off --no-compile -r "${LOCK}" 2>&1 \
    | setup_progress "${total}" "${log}" || rc=$?
  [[ ! -t 2 ]] || printf '\r\033[K' >&2
  if ((rc != 0)); then
    grep -v 'is ignored: it is neither' "${log}" | tail -n 15 >&2
    setup_hint "${log}"
    setup_die "pip install failed (exit ${rc}); full log: ${log}"
  fi
  setup_log "compiling the packages' Python files on every core"
  # a file that does not compile is not an error (pip does the same): it is logged
  "${VENV_DIR}/bin/python" -m compileall -q -j 0 "$("${VENV_DIR}/bin/python" -c \
    'import sysconfig; print(sysconfig.get_paths()["purelib"])')" >>"${log}" 2>&1 || true
  setup_log "done: ${total} packages in $((SECONDS - start)) s"
}

main() {
  local want total py have stamp
  VENV_DIR="${REPO_ROOT}/.venv"
  LOCK="${REPO_ROOT}/requirements/dev.lock"
  while (($# > 0)); do
    case "$1" in
      --venv) VENV_DIR="${2:?--venv needs a directory}" && shift ;;
      --lock) LOCK="${2:?--lock needs a file}" && shift ;;
      -h | --help) setup_usage && return 0 ;;
      *) setup_usage >&2 && SETUP_EXIT=2 setup_die "unknown argument: $1" ;;
    esac
    shift
  done
  [[ -f "${LOCK}" ]] || SETUP_EXIT=2 setup_die "no lock file at ${LOCK}"
  # the lock's own header line (scripts/dev/lockfile.py writes it) and its requirement lines
  want="$(sed -n 's/^# python: \([0-9.]*\|any\)$/\1/p' "${LOCK}")"
  total="$(grep -c '^[A-Za-z0-9]' "${LOCK}")" || SETUP_EXIT=2 setup_die "${LOCK}: no package in it"
  py="$(setup_python "${want:-any}")"
  have="$(setup_check_python "${py}" "${want:-any}")"
  stamp="$(sha256sum "${LOCK}" | cut -d ' ' -f 1) python ${have}"
  [[ "$(cat "${VENV_DIR}/.installed" 2>/dev/null)" != "${stamp}" ]] || return 0
  if [[ -e "${VENV_DIR}" ]]; then
    setup_log "${LOCK#"${REPO_ROOT}"/} or the Python changed since ${VENV_DIR#"${REPO_ROOT}"/} was made: making it anew"
    rm -rf -- "${VENV_DIR}"
  fi
  setup_install "${py}" "${total}"
  printf '%s' "${stamp}" >"${VENV_DIR}/.installed"
}

# Sourcing (tests) defines the functions only.
[[ "${BASH_SOURCE[0]}" != "$0" ]] || main "$@"

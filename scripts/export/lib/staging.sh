# Staging dirs: a build writes into <parent>/.<name>.staging-<pid> next to its output dir and
# renames it into place when complete. Sourced; defines functions only.
# shellcheck shell=bash

# staging_path OUTPUT [PID]: print the staging dir of OUTPUT for PID (default: this shell).
staging_path() {
  local output="$1" pid="${2:-$$}"
  printf '%s/.%s.staging-%s\n' "$(dirname "${output}")" "$(basename "${output}")" "${pid}"
}

# staging_pid_alive PID: whether a process with that pid exists (ours or another user's).
staging_pid_alive() {
  local pid="$1"
  [[ "${pid}" =~ ^[0-9]+$ ]] || return 1
  kill -0 "${pid}" 2>/dev/null || [[ -d "/proc/${pid}" ]]
}

# staging_clear_stale OUTPUT: remove the staging dirs of OUTPUT left by processes that are gone
# (a failed build keeps its staging dir for inspection; a killed one could not clean up), and an
# old artifact moved aside by a --force build that was killed after its swap (OUTPUT is there;
# when it is not, lib/prepare.py has already put the aside dir back). Call it while holding
# OUTPUT's lock. Prints one line per removed dir on stderr.
staging_clear_stale() {
  local output="$1" dir pid
  local -a dirs=("$(dirname "${output}")/.$(basename "${output}").staging-"*)
  [[ ! -e "${output}" ]] || dirs+=("$(dirname "${output}")/.$(basename "${output}").old-"*)
  for dir in "${dirs[@]}"; do
    [[ -d "${dir}" ]] || continue
    pid="${dir##*-}"
    if [[ "${pid}" == "$$" ]] || staging_pid_alive "${pid}"; then
      continue
    fi
    printf '%s: removing stale %s (its build, pid %s, is gone)\n' \
      "${PROG:-build_tensorrt_llm}" "${dir}" "${pid}" >&2
    rm -rf -- "${dir}"
  done
}

# staging_write_problem DIR: why nothing can be written under DIR, as one line with the fix
# (for a failed mkdir or copy of the build's own files; the steps' tools say it in their logs).
staging_write_problem() {
  local dir="$1" avail
  while [[ ! -d "${dir}" && "${dir}" != / ]]; do dir="$(dirname -- "${dir}")"; done
  avail="$(df -P -k -- "${dir}" 2>/dev/null | awk 'NR == 2 {print $4}')" || avail=""
  if [[ "${avail}" == 0 ]]; then
    printf 'no space left on the disk of %s: free space there (stale .staging dirs of failed builds are safe to delete) or build with --output on a larger disk\n' "${dir}"
  elif [[ ! -w "${dir}" ]]; then
    printf 'cannot write in %s (read-only or no permission): choose --output (or OUTPUTS_DIR) where you can write\n' "${dir}"
  else
    printf 'cannot write in %s: see the error above; free space or choose another --output\n' "${dir}"
  fi
}

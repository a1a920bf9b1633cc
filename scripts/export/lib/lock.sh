# One build per output dir at a time: an exclusive flock(1) on a lock file beside it.
# Sourced; defines functions only. Library functions return; the entry script exits.
# shellcheck shell=bash

# lock_acquire FILE VAR: take the lock on FILE without waiting and store its open fd in VAR.
# Returns 1 when another process holds it (lock_holder FILE names it), 2 when FILE cannot be
# opened, 3 when there is no flock(1) on PATH (util-linux). The holder's pid is written into FILE. The fd stays open (and the lock held) until
# lock_release or the exit of this shell; pass `{VAR}>&-` to children that must not keep it.
lock_acquire() {
  # (locals prefixed so that VAR may be any name the caller likes, "fd" included)
  local _lock_file="$1" _lock_var="$2" _lock_fd
  command -v flock >/dev/null || return 3
  exec {_lock_fd}<>"${_lock_file}" || return 2
  if ! flock --nonblock "${_lock_fd}"; then
    exec {_lock_fd}>&-
    return 1
  fi
  printf '%s\n' "$$" >"${_lock_file}"
  printf -v "${_lock_var}" '%s' "${_lock_fd}"
}

# lock_holder FILE: print the pid recorded in FILE by the process holding the lock ("unknown"
# when it has not written it yet).
lock_holder() {
  local file="$1" pid=""
  if [[ -r "${file}" ]]; then
    IFS= read -r pid <"${file}" || true
  fi
  printf '%s\n' "${pid:-unknown}"
}

# lock_release FD: release the lock and close FD.
lock_release() {
  local fd="$1"
  flock --unlock "${fd}" 2>/dev/null || true
  exec {fd}>&-
}

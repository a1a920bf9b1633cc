# One build per output dir at a time: an exclusive flock(1) on a lock file beside it.
# Sourced; defines functions only. Library functions return; the entry script exits.
# shellcheck shell=bash

# lock_acquire FILE VAR: take the lock on FILE without waiting and store its open fd in VAR.
# Returns 1 when another process holds it (lock_holder FILE names it), 2 when FILE cannot be
# opened. The holder's pid is written into FILE. The fd stays open (and the lock held) until
# lock_release or the exit of this shell; pass `{VAR}>&-` to children that must not keep it.
lock_acquire() {
  local file="$1" var="$2" fd
  exec {fd}<>"${file}" || return 2
  if ! flock --nonblock "${fd}"; then
    exec {fd}>&-
    return 1
  fi
  printf '%s\n' "$$" >"${file}"
  printf -v "${var}" '%s' "${fd}"
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

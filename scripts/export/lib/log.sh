# Logging and the one error path of the export scripts. Sourced; defines functions only.
# shellcheck shell=bash

# log MESSAGE...: one status line on stderr, prefixed with the program name.
log() {
  printf '%s: %s\n' "${PROG:-build_tensorrt_llm}" "$*" >&2
}

# die [--usage] [--code N] MESSAGE...: the one error path. Prints the message as one line
# (a newline in it, from a value it quotes, is shown as \n) and the usage when asked, on
# stderr, and exits with N (default 1; 2 means bad input, nothing written).
die() {
  local code=1 usage=0 message
  while (($# > 0)); do
    case "$1" in
      --usage) usage=1 ;;
      --code) code="$2"; shift ;;
      *) break ;;
    esac
    shift
  done
  message="$*"
  printf '%s: error: %s\n' "${PROG:-build_tensorrt_llm}" "${message//$'\n'/\\n}" >&2
  if ((usage)) && declare -F usage >/dev/null; then
    printf '\n' >&2
    usage >&2
  fi
  exit "${code}"
}

# help_from_header FILE: print the file's leading comment block (after the shebang) as help.
help_from_header() {
  local line
  while IFS= read -r line; do
    case "${line}" in
      '#!'*) continue ;;
      '#'*) line="${line#\#}"; printf '%s\n' "${line# }" ;;
      *) break ;;
    esac
  done <"$1"
}

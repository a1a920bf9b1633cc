# The rule for NAME, the name of a merged model and of its artifact: make merge, engine, verify,
# serve and bench, and the scripts behind them, all judge it here and say the same line.
# Sourced; defines constants and functions only.
# shellcheck shell=bash

readonly NAME_MAX_CHARS=128
readonly NAME_PATTERN='^[A-Za-z0-9][A-Za-z0-9._-]*$'

# name_problem VALUE [WHAT]: when VALUE is not a valid name, print why on stdout (one line that
# calls it WHAT, default NAME) and return 1; print nothing and return 0 for a valid one.
name_problem() {
  local value="$1" what="${2:-NAME}" shown
  local LC_ALL=C # ASCII ranges in the pattern, bytes in the length, whatever the user's locale
  if ((${#value} <= NAME_MAX_CHARS)) && [[ "${value}" =~ ${NAME_PATTERN} ]]; then
    return 0
  fi
  shown="${value:0:40}"
  ((${#value} <= 40)) || shown+="..."
  shown="${shown@Q}"
  ((${#value} <= NAME_MAX_CHARS)) || shown+=" (${#value} characters)"
  printf "invalid %s %s: use 1 to %d letters, digits, '.', '_' and '-', starting with a letter or digit\n" \
    "${what}" "${shown}" "${NAME_MAX_CHARS}"
  return 1
}

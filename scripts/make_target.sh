#!/usr/bin/env bash
# Run one make target: the Makefile's recipes that take values, with the values make exported.
#
# Usage: scripts/make_target.sh TARGET
#   TARGET: merge, doctor, engine, verify, serve, bench, bench-merge, bench-cli
#
# Environment (make exports every variable it was given; no recipe pastes one into shell text):
#   NAME         merged model and artifact name (make merge, engine, verify, serve, bench)
#   ADAPTER      adapter dir (make merge)
#   CONFIG       build config, PROFILE a profile of it (make doctor, engine)
#   DRY_RUN      1: plan only (engine); FORCE 1: replace a different build (engine) or an
#                existing merged model (merge: --overwrite); 0 or empty: off
#   ACCEPT_QUALITY_LOSS  1: publish a quantized build over its quality gate (make engine)
#   FULL         1: hash every file; ALLOW_SKIP 1: accept checks that cannot run (make verify)
#   MERGE_ARGS   more merge_lora.py options (make merge), BENCH_ARGS bench options (bench-*)
#   OUTPUTS_DIR  outputs root (default: outputs/ of this repository); PYTHON the interpreter
# Each value goes to the script as one argument, never through eval; MERGE_ARGS and BENCH_ARGS
# are split at whitespace (spaces, tabs, newlines) into separate arguments, with no quoting,
# globbing or expansion. The scripts judge the values.
# Exit codes: the called script's; 2 for a missing or invalid variable.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly REPO_ROOT="${SCRIPT_DIR%/*}"
readonly BUILD="${SCRIPT_DIR}/export/build_tensorrt_llm.sh"
PROG="make_target"

# shellcheck source=export/lib/log.sh
source "${SCRIPT_DIR}/export/lib/log.sh"
# shellcheck source=export/lib/name.sh
source "${SCRIPT_DIR}/export/lib/name.sh"

usage() {
  help_from_header "${BASH_SOURCE[0]}"
}

# make_words VARIABLE ARRAY: the words of $VARIABLE (split at whitespace only) into ARRAY.
make_words() {
  local -n make_words_out="$2"
  make_words_out=()
  # shellcheck disable=SC2034 # make_words_out is a nameref: this fills the caller's array
  IFS=$' \t\n' read -r -d '' -a make_words_out <<<"${!1:-}" || true
}

# make_switch VARIABLE FLAG ARRAY: append FLAG to ARRAY when $VARIABLE is 1; 0 or empty: nothing.
make_switch() {
  local -n make_switch_out="$3"
  case "${!1:-}" in
    1) make_switch_out+=("$2") ;;
    0 | "") ;;
    *) die --code 2 "$1 must be 1 or 0, got ${!1@Q}" ;;
  esac
}

# make_need_name WHAT: NAME is set, else a line says how (WHAT: what the name names).
make_need_name() {
  [[ -n "${NAME:-}" ]] || die --code 2 "set NAME=<$1>, e.g. make ${PROG#make } NAME=my-sft"
}

# make_valid_name WHAT: NAME is set and follows the NAME rule (for the targets whose script
# takes no NAME of its own: merge, serve).
make_valid_name() {
  local problem
  make_need_name "$1"
  problem="$(name_problem "${NAME}")" || die --code 2 "${problem}"
}

make_config_args() { # <array>: --config and --profile when CONFIG and PROFILE are set
  local -n make_config_out="$1"
  [[ -z "${CONFIG:-}" ]] || make_config_out+=(--config "${CONFIG}")
  [[ -z "${PROFILE:-}" ]] || make_config_out+=(--profile "${PROFILE}")
}

make_merge() {
  local -a extra
  [[ -n "${ADAPTER:-}" ]] ||
    die --code 2 "set ADAPTER=<adapter dir>, e.g. make merge ADAPTER=outputs/gpu/checkpoints/sft/final NAME=my-sft"
  [[ -d "${ADAPTER}" ]] || die --code 2 "ADAPTER ${ADAPTER@Q} is not a directory (the adapter dir with adapter_config.json)"
  make_valid_name "model name"
  make_words MERGE_ARGS extra
  make_switch FORCE --overwrite extra
  exec "${PYTHON}" "${REPO_ROOT}/scripts/gpu/merge_lora.py" --adapter "${ADAPTER}" \
    --output "${OUTPUTS}/gpu/merged_models/${NAME}" "${extra[@]}"
}

make_engine() {
  local -a args
  make_need_name "merged model name"
  args=(--name "${NAME}")
  make_config_args args
  make_switch DRY_RUN --dry-run args
  make_switch FORCE --force args
  make_switch ACCEPT_QUALITY_LOSS --accept-quality-loss args
  exec "${BUILD}" "${args[@]}"
}

make_verify() {
  local -a args
  make_need_name "artifact name"
  args=(--verify --name "${NAME}")
  make_switch FULL --full args
  make_switch ALLOW_SKIP --allow-skip args
  exec "${BUILD}" "${args[@]}"
}

make_serve() {
  local serve
  make_valid_name "artifact name"
  serve="${OUTPUTS}/gpu/tensorrt_llm/${NAME}/serve.sh"
  [[ -x "${serve}" ]] || die --code 2 "no artifact with a serve.sh at ${serve%/serve.sh}: build it first (make engine NAME=${NAME})"
  exec "${serve}"
}

main() {
  local target="${1:-}"
  local -a args
  [[ $# -eq 1 ]] || die --usage --code 2 "give one target"
  PROG="make ${target}"
  PYTHON="${PYTHON:-python3}"
  # serve.sh runs no Python of ours: a GPU box without .venv/ serves as it is
  [[ "${target}" == serve ]] || command -v -- "${PYTHON}" >/dev/null ||
    die --code 2 "PYTHON ${PYTHON@Q} is not a program on PATH"
  OUTPUTS="${OUTPUTS_DIR:-${REPO_ROOT}/outputs}"
  export PYTHON
  case "${target}" in
    merge) make_merge ;;
    doctor) args=(--doctor) && make_config_args args && exec "${BUILD}" "${args[@]}" ;;
    engine) make_engine ;;
    verify) make_verify ;;
    serve) make_serve ;;
    bench) make_need_name "artifact name" && exec "${SCRIPT_DIR}/export/bench_tensorrt_llm.sh" --name "${NAME}" ;;
    bench-merge) make_words BENCH_ARGS args && exec "${SCRIPT_DIR}/dev/bench_merge.sh" "${args[@]}" ;;
    bench-cli) make_words BENCH_ARGS args && exec "${SCRIPT_DIR}/dev/bench_cli.sh" "${args[@]}" ;;
    *) PROG="make_target" && die --usage --code 2 "unknown target: ${target@Q}" ;;
  esac
}

main "$@"

#!/usr/bin/env bash
# Build a TensorRT-LLM artifact from a merged Hugging Face model, checked at every stage.
#
# Usage:
#   build_tensorrt_llm.sh --name NAME [options]      model: outputs/gpu/merged_models/NAME
#   build_tensorrt_llm.sh --model-dir DIR [options]  any merged HF model directory
#   build_tensorrt_llm.sh --doctor [--config FILE] [--profile P] [--json]
#   build_tensorrt_llm.sh --verify --name NAME [--json]
#
# Options:
#   --config FILE     build config (default: configs/export/tensorrt_llm.yaml)
#   --profile P       a named profile of the config (e.g. h100-fp8)
#   --output DIR      artifact dir (default: outputs/gpu/tensorrt_llm/NAME)
#   --dry-run         print the plan (commands, checks, estimates) and stop; no GPU needed
#   --json            machine-readable output (with --dry-run, --doctor, --verify)
#   --force           rebuild even when an identical build exists
#   --keep-staging    keep the staging dir after a successful build
#   --debug           trace every command (set -x with file:line:function)
#   --doctor          check this machine against the config and exit (1 if a check fails)
#   --verify          check a built artifact against this machine, then golden prompts
#   -h, --help        this help
#
# Environment: PYTHON (default python3), TRTLLM_EXAMPLES_DIR (TensorRT-LLM's examples dir).
# Exit codes: 0 ok, 1 a step failed, 2 bad input (nothing written).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly LIB_DIR="${SCRIPT_DIR}/_lib"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="build_tensorrt_llm"
readonly NAME_PATTERN='^[A-Za-z0-9][A-Za-z0-9._-]*$'

# shellcheck source=_lib/log.sh
source "${LIB_DIR}/log.sh"

usage() {
  help_from_header "${BASH_SOURCE[0]}"
}

# Parsed arguments (set once by build_parse_args).
MODE="build"
NAME=""
MODEL_DIR=""
CONFIG_FILE="${REPO_ROOT}/configs/export/tensorrt_llm.yaml"
PROFILE=""
OUTPUT_DIR=""
DRY_RUN=0
JSON=0
FORCE=0
KEEP_STAGING=0

build_need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die --usage --code 2 "$1 needs a value"
}

build_parse_args() {
  while (($# > 0)); do
    case "$1" in
      --name) build_need_value "$@"; NAME="$2"; shift ;;
      --model-dir) build_need_value "$@"; MODEL_DIR="$2"; shift ;;
      --config) build_need_value "$@"; CONFIG_FILE="$2"; shift ;;
      --profile) build_need_value "$@"; PROFILE="$2"; shift ;;
      --output) build_need_value "$@"; OUTPUT_DIR="$2"; shift ;;
      --dry-run) DRY_RUN=1 ;;
      --json) JSON=1 ;;
      --force) FORCE=1 ;;
      --keep-staging) KEEP_STAGING=1 ;;
      --debug)
        export PS4='+ ${BASH_SOURCE[0]##*/}:${LINENO}:${FUNCNAME[0]:-main}: '
        set -x
        ;;
      --doctor) MODE="doctor" ;;
      --verify) MODE="verify" ;;
      -h | --help) usage; exit 0 ;;
      *) die --usage --code 2 "unknown argument: $1" ;;
    esac
    shift
  done
  if [[ -n "${NAME}" && ! "${NAME}" =~ ${NAME_PATTERN} ]]; then
    die --code 2 "invalid NAME '${NAME}': use letters, digits, '.', '_' and '-', starting with a letter or digit"
  fi
}

build_doctor() {
  local -a args=(--config "${CONFIG_FILE}" --output-dir "${OUTPUT_DIR:-${REPO_ROOT}/outputs/gpu/tensorrt_llm}")
  [[ -z "${PROFILE}" ]] || args+=(--profile "${PROFILE}")
  ((JSON == 0)) || args+=(--json)
  exec "${PYTHON}" "${LIB_DIR}/doctor.py" "${args[@]}"
}

build_verify() {
  local artifact="${OUTPUT_DIR}"
  local -a args
  if [[ -z "${artifact}" ]]; then
    [[ -n "${NAME}" ]] || die --usage --code 2 "--verify needs --name NAME or --output DIR"
    artifact="${REPO_ROOT}/outputs/gpu/tensorrt_llm/${NAME}"
  fi
  [[ -d "${artifact}" ]] || die --code 2 "no artifact at ${artifact}: build it first (make engine NAME=${NAME})"
  args=(--artifact "${artifact}")
  ((JSON == 0)) || args+=(--json)
  exec "${PYTHON}" "${LIB_DIR}/verify.py" "${args[@]}"
}

build_main() {
  log "model=${MODEL_DIR:-outputs/gpu/merged_models/${NAME}} dry_run=${DRY_RUN} force=${FORCE} keep_staging=${KEEP_STAGING}"
  die --code 1 "the build stages are not wired yet"
}

main() {
  PYTHON="${PYTHON:-python3}"
  export PYTHON
  build_parse_args "$@"
  case "${MODE}" in
    doctor) build_doctor ;;
    verify) build_verify ;;
    *) build_main ;;
  esac
}

main "$@"

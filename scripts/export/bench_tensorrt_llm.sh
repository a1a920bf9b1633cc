#!/usr/bin/env bash
# Benchmark a built artifact with trtllm-bench on a dataset made locally; results go beside it.
#
# Usage:
#   bench_tensorrt_llm.sh --name NAME [options]     artifact: $OUTPUTS_DIR/gpu/tensorrt_llm/NAME
#   bench_tensorrt_llm.sh --artifact DIR [options]
#
# Options:
#   --num-requests N   requests in the dataset (default 256)
#   --input-len N      prompt tokens per request (default 1024)
#   --output-len N     generated tokens per request (default 256)
#   --concurrency N    requests in flight (default: no limit)
#   -h, --help         this help
#
# Results: <artifact>/bench/<UTC time>/ holds dataset.jsonl (synthetic token ids, fixed seed),
# report.json (trtllm-bench --report_json), bench.log and command.txt; the dir is printed on
# stdout. steps/bench_plan.py reads build.json and writes the dataset and the command: backend
# pytorch runs the bundle's checkpoint with its llm_api_options.yaml; engine runs engine/ with the
# merged model (build.json inputs.model_dir) for the tokenizer and config.
# Environment: PYTHON (default python3), OUTPUTS_DIR (default: outputs/ of this repository).
# Exit codes: 0 ok, 1 trtllm-bench failed, 2 bad input.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="bench_tensorrt_llm"

# shellcheck source=lib/log.sh
source "${SCRIPT_DIR}/lib/log.sh"
# shellcheck source=lib/name.sh
source "${SCRIPT_DIR}/lib/name.sh"

usage() {
  help_from_header "${BASH_SOURCE[0]}"
}

NAME=""
ARTIFACT=""
NUM_REQUESTS=256
INPUT_LEN=1024
OUTPUT_LEN=256
CONCURRENCY=""

bench_need_int() {
  [[ $# -ge 2 && "$2" =~ ^[1-9][0-9]*$ ]] || die --usage --code 2 "$1 needs a positive integer"
}

bench_parse_args() {
  local problem
  while (($# > 0)); do
    case "$1" in
      --name) [[ $# -ge 2 && -n "$2" ]] || die --usage --code 2 "--name needs a value"; NAME="$2"; shift ;;
      --artifact) [[ $# -ge 2 && -n "$2" ]] || die --usage --code 2 "--artifact needs a value"; ARTIFACT="$2"; shift ;;
      --num-requests) bench_need_int "$@"; NUM_REQUESTS="$2"; shift ;;
      --input-len) bench_need_int "$@"; INPUT_LEN="$2"; shift ;;
      --output-len) bench_need_int "$@"; OUTPUT_LEN="$2"; shift ;;
      --concurrency) bench_need_int "$@"; CONCURRENCY="$2"; shift ;;
      -h | --help) usage; exit 0 ;;
      *) die --usage --code 2 "unknown argument: $1" ;;
    esac
    shift
  done
  if [[ -z "${ARTIFACT}" ]]; then
    [[ -n "${NAME}" ]] || die --usage --code 2 "give --name NAME or --artifact DIR"
    problem="$(name_problem "${NAME}")" || die --code 2 "${problem}"
    ARTIFACT="${OUTPUTS_DIR:-${REPO_ROOT}/outputs}/gpu/tensorrt_llm/${NAME}"
  fi
  [[ -n "${NAME}" ]] || NAME="$(basename "${ARTIFACT}")"
}

bench_main() {
  local results started status=0
  local -a args=(--artifact "${ARTIFACT}" --name "${NAME}" --num-requests "${NUM_REQUESTS}"
    --input-len "${INPUT_LEN}" --output-len "${OUTPUT_LEN}")
  [[ -f "${ARTIFACT}/build.json" ]] \
    || die --code 2 "no built artifact at ${ARTIFACT} (no build.json): make engine NAME=${NAME} first"
  command -v trtllm-bench >/dev/null \
    || die --code 2 "trtllm-bench is not on PATH: run inside the TensorRT-LLM release container"
  [[ -z "${CONCURRENCY}" ]] || args+=(--concurrency "${CONCURRENCY}")
  results="${ARTIFACT}/bench/$(date -u +%Y%m%dT%H%M%SZ)"
  # the dataset and the exact command come from build.json (Python reads it; Bash does not)
  "${PYTHON}" "${SCRIPT_DIR}/steps/bench_plan.py" "${args[@]}" --results "${results}" || exit $?
  mapfile -d '' -t args <"${results}/argv"
  printf '%q ' "${args[@]}" >"${results}/command.txt"
  printf '\n' >>"${results}/command.txt"
  log "dataset: ${NUM_REQUESTS} requests, ${INPUT_LEN} in / ${OUTPUT_LEN} out tokens"
  log "${args[0]} on ${ARTIFACT}; log: ${results}/bench.log"
  started="${SECONDS}"
  "${args[@]}" >"${results}/bench.log" 2>&1 || status=$?
  if ((status != 0)); then
    printf '%s: trtllm-bench failed (exit %d) after %ds; last lines of %s:\n' \
      "${PROG}" "${status}" "$((SECONDS - started))" "${results}/bench.log" >&2
    tail -n 20 "${results}/bench.log" >&2
    exit 1
  fi
  log "done in $((SECONDS - started))s: ${results}/report.json"
  printf '%s\n' "${results}"
}

main() {
  PYTHON="${PYTHON:-python3}"
  export PYTHON
  bench_parse_args "$@"
  bench_main
}

main "$@"

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
# stdout. Backend pytorch runs the bundle's checkpoint with its llm_api_options.yaml; engine runs
# engine/ with the merged model (build.json inputs.model_dir) for the tokenizer and config.
# Environment: PYTHON (default python3), OUTPUTS_DIR (default: outputs/ of this repository).
# Exit codes: 0 ok, 1 trtllm-bench failed, 2 bad input.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly LIB_DIR="${SCRIPT_DIR}/_lib"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="bench_tensorrt_llm"

# shellcheck source=_lib/log.sh
source "${LIB_DIR}/log.sh"
# shellcheck source=_lib/name.sh
source "${LIB_DIR}/name.sh"

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

# bench_get KEY: one value of the artifact's build.json (manifest.py parses; Bash does not).
bench_get() {
  "${PYTHON}" "${LIB_DIR}/manifest.py" get --file "${ARTIFACT}/build.json" --key "$1"
}

bench_main() {
  local backend version tp pp results model_path config_json started status=0
  local -a args
  [[ -f "${ARTIFACT}/build.json" ]] \
    || die --code 2 "no built artifact at ${ARTIFACT} (no build.json): make engine NAME=${NAME} first"
  command -v trtllm-bench >/dev/null \
    || die --code 2 "trtllm-bench is not on PATH: run inside the TensorRT-LLM release container"
  backend="$(bench_get backend)"
  version="$(bench_get environment.trtllm_version)"
  args=(trtllm-bench --model "${NAME}")
  if [[ "${backend}" == "pytorch" ]]; then
    tp="$(bench_get parallel.tp_size)"
    pp="$(bench_get parallel.pp_size)"
    model_path="${ARTIFACT}/checkpoint"
    config_json="${model_path}/config.json"
  else
    model_path="$(bench_get inputs.model_dir)"
    config_json="${ARTIFACT}/engine/config.json"
    [[ -f "${model_path}/config.json" ]] \
      || die --code 2 "the engine benchmark needs the merged model for its tokenizer: ${model_path} is gone"
  fi
  [[ -f "${config_json}" ]] || die --code 2 "incomplete artifact: ${config_json} is missing"

  results="${ARTIFACT}/bench/$(date -u +%Y%m%dT%H%M%SZ)"
  mkdir -p "${results}"
  log "dataset: ${NUM_REQUESTS} requests, ${INPUT_LEN} in / ${OUTPUT_LEN} out tokens"
  "${PYTHON}" "${LIB_DIR}/bench_dataset.py" --config-json "${config_json}" \
    --output "${results}/dataset.jsonl" --num-requests "${NUM_REQUESTS}" \
    --input-len "${INPUT_LEN}" --output-len "${OUTPUT_LEN}" >"${results}/dataset.json"

  args+=(--model_path "${model_path}" throughput --dataset "${results}/dataset.jsonl"
    --report_json "${results}/report.json" --num_requests "${NUM_REQUESTS}")
  if [[ "${backend}" == "pytorch" ]]; then
    args+=(--backend pytorch --extra_llm_api_options "${ARTIFACT}/llm_api_options.yaml"
      --tp "${tp}" --pp "${pp}")
  else
    args+=(--engine_dir "${ARTIFACT}/engine")
    # From 1.0 trtllm-bench defaults to the PyTorch backend; an engine needs it named.
    [[ "${version%%.*}" =~ ^[0-9]+$ && "${version%%.*}" -ge 1 ]] && args+=(--backend tensorrt)
  fi
  [[ -z "${CONCURRENCY}" ]] || args+=(--concurrency "${CONCURRENCY}")
  printf '%q ' "${args[@]}" >"${results}/command.txt"
  printf '\n' >>"${results}/command.txt"

  log "trtllm-bench (${backend}, TensorRT-LLM ${version}); log: ${results}/bench.log"
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

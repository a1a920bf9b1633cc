#!/usr/bin/env bash
# Run the plan's ModelOpt quantize step for real on a GPU, on a tiny synthetic llama.
#
# Usage: tests/contracts/gpu_modelopt_step.sh [--profile P] [--work DIR]
#
# Needs a CUDA GPU and, in $PYTHON (default python3): torch with CUDA, transformers,
# nvidia-modelopt (any release with export_tensorrt_llm_checkpoint: < 0.49), pyyaml, pydantic.
# No TensorRT-LLM: that is the case the ModelOpt step is planned for (plan.py, route "modelopt").
# Steps: tiny model + local calibration file -> prepare.py --dry-run (config with PROFILE, default
# h200-fp8; probe; plan) -> the plan's argv.quantize, run as the build would (cwd = staging) ->
# the exported TensorRT-LLM checkpoint's config.json (architecture, dtype, mapping,
# quantization) and rank files on stdout, then the quality table. Exit 1 when a step fails, 2 on
# bad arguments. The quality gate measures the step on the 64 samples after the 64 calibration
# ones; a random model has no quality to keep, so the step runs with --accept-quality-loss.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly LIB="${REPO_ROOT}/scripts/export/lib"
PYTHON="${PYTHON:-python3}"

die() {
  printf 'gpu_modelopt_step: %s\n' "$2" >&2
  exit "$1"
}

main() {
  local profile="h200-fp8" work="${REPO_ROOT}/outputs/dev/gpu-modelopt-step" i
  local -a argv
  while (($# > 0)); do
    case "$1" in
      --profile) profile="${2:?--profile needs a value}" && shift 2 ;;
      --work) work="${2:?--work needs a value}" && shift 2 ;;
      -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' && return 0 ;;
      *) die 2 "unknown argument: $1" ;;
    esac
  done
  rm -rf -- "${work}"
  mkdir -p -- "${work}"
  "${PYTHON}" "${REPO_ROOT}/scripts/dev/tiny_models.py" model --family llama \
    --out "${work}/tiny" --dtype bfloat16 >/dev/null || die 1 "tiny model"
  for i in $(seq 1 128); do
    printf '{"text": "Calibration sample %d: the quick brown fox jumps over the lazy dog."}\n' "${i}"
  done >"${work}/calib.jsonl"
  sed -e "0,/dataset: null/s||dataset: ${work}/calib.jsonl|" -e 's|max_seq_len: 8192|max_seq_len: 256|' \
    -e 's|max_input_len: 4096|max_input_len: 128|' -e 's|num_samples: 512|num_samples: 64|' \
    -e 's|  max_seq_len: 512|  max_seq_len: 64|' \
    "${REPO_ROOT}/configs/export/tensorrt_llm.yaml" >"${work}/cfg.yaml"
  mkdir -p -- "${work}/plan"
  "${PYTHON}" "${LIB}/prepare.py" --config="${work}/cfg.yaml" --profile="${profile}" \
    --model-dir="${work}/tiny" --output="${work}/out/tiny" --staging="${work}/stage" \
    --cache-dir="${work}/cache" --work-dir="${work}/plan" --dry-run --accept-quality-loss >&2 ||
    die 1 "prepare"
  [[ -s "${work}/plan/argv.quantize" ]] ||
    die 1 "the plan has no quantize step (is TensorRT-LLM installed here?)"
  mapfile -d '' -t argv <"${work}/plan/argv.quantize"
  mkdir -p -- "${work}/stage"
  (cd "${work}/stage" && "${argv[@]}") || die 1 "quantize step failed: ${argv[*]}"
  "${PYTHON}" -c 'import json, sys
c = json.load(open(sys.argv[1]))
print(json.dumps({k: c.get(k) for k in ("architecture", "dtype", "mapping", "quantization")}))' \
    "${work}/stage/checkpoint/config.json" || die 1 "no TensorRT-LLM checkpoint config.json"
  ls -l -- "${work}/stage/checkpoint"
  "${PYTHON}" -c 'import sys; sys.path.insert(0, sys.argv[1]); import quality_report as q
print(q.table(q.load_report(sys.argv[2])), end="")' "${LIB}" "${work}/stage/logs/quality.json"
}

main "$@"

#!/usr/bin/env bash
# Run the plan's ModelOpt quantize step for real on a GPU, on a tiny synthetic llama.
#
# Usage: tests/contracts/gpu_modelopt_step.sh [--profile P] [--work DIR]
#
# Needs a CUDA GPU and, in $PYTHON (default python3): torch with CUDA, transformers,
# nvidia-modelopt (any release with export_tensorrt_llm_checkpoint: < 0.49), pyyaml, pydantic.
# No TensorRT-LLM: that is the case the ModelOpt step is planned for (plan.py, route "modelopt").
# Steps: tiny model + local calibration file -> resolved config (PROFILE, default h200-fp8) ->
# probe -> plan.py -> the plan's "quantize" argv, run as the build would (cwd = staging) ->
# the exported TensorRT-LLM checkpoint's config.json (architecture, dtype, mapping,
# quantization) and rank files on stdout. Exit 1 when a step fails, 2 on bad arguments.
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
  for i in $(seq 1 64); do
    printf '{"text": "Calibration sample %d: the quick brown fox jumps over the lazy dog."}\n' "${i}"
  done >"${work}/calib.jsonl"
  sed -e "s|dataset: null|dataset: ${work}/calib.jsonl|" -e 's|max_seq_len: 8192|max_seq_len: 256|' \
    -e 's|max_input_len: 4096|max_input_len: 128|' -e 's|num_samples: 512|num_samples: 64|' \
    -e 's|  max_seq_len: 512|  max_seq_len: 64|' \
    "${REPO_ROOT}/configs/export/tensorrt_llm.yaml" >"${work}/cfg.yaml"
  "${PYTHON}" "${LIB}/build_config.py" --config "${work}/cfg.yaml" --profile "${profile}" \
    >"${work}/config.json" || die 2 "config"
  "${PYTHON}" "${LIB}/probe.py" >"${work}/facts.json" || die 1 "probe"
  "${PYTHON}" "${LIB}/plan.py" --config-json "${work}/config.json" --facts-json "${work}/facts.json" \
    --model-dir "${work}/tiny" --staging "${work}/stage" >"${work}/plan.json" || die 1 "plan"
  "${PYTHON}" "${LIB}/plan.py" show --plan "${work}/plan.json" >&2
  mapfile -d '' -t argv < <("${PYTHON}" "${LIB}/plan.py" argv --plan "${work}/plan.json" --step quantize)
  ((${#argv[@]} > 0)) || die 1 "the plan has no quantize step (is TensorRT-LLM installed here?)"
  mkdir -p -- "${work}/stage"
  (cd "${work}/stage" && "${argv[@]}") || die 1 "quantize step failed: ${argv[*]}"
  "${PYTHON}" -c 'import json, sys
c = json.load(open(sys.argv[1]))
print(json.dumps({k: c.get(k) for k in ("architecture", "dtype", "mapping", "quantization")}))' \
    "${work}/stage/checkpoint/config.json" || die 1 "no TensorRT-LLM checkpoint config.json"
  ls -l -- "${work}/stage/checkpoint"
}

main "$@"

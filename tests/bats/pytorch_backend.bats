#!/usr/bin/env bats
# backend: pytorch end to end with strict fakes: the bundle (hard-linked checkpoint, options YAML
# checked per TensorRT-LLM version, serve.sh, build.json), its refusals, serve.sh through a strict
# trtllm-serve, and make bench's bench_tensorrt_llm.sh for both backends.

bats_require_minimum_version 1.5.0

load test_helper
load build_helper

BENCH="${REPO_ROOT}/scripts/export/bench_tensorrt_llm.sh"

setup_file() {
  cd "${REPO_ROOT}" || return 1
  build_make_models "${BATS_FILE_TMPDIR}/models" llama
  build_make_stacks "${BATS_FILE_TMPDIR}/stacks" 1.0.0 1.2.0 0.16.0
  # One bundle and one engine for the tests that only read or copy them (a build takes seconds).
  (
    export PATH="${REPO_ROOT}/tests/fakes/bin:/usr/local/bin:/usr/bin:/bin" FAKE_NVIDIA_SMI=h200
    export HOME="${BATS_FILE_TMPDIR}/home" FAKE_TRTLLM_STATE="${BATS_FILE_TMPDIR}"
    build_use_stack 1.2.0
    pytorch_config "${BATS_FILE_TMPDIR}/pytorch.yaml" 1.2.0
    build_write_config "${BATS_FILE_TMPDIR}/engine.yaml" 1.2.0
    FAKE_TRTLLM_CALLS="${BATS_FILE_TMPDIR}/bundle-calls.jsonl" \
      "${BUILD}" --model-dir "${BATS_FILE_TMPDIR}/models/tiny llama" --config "${BATS_FILE_TMPDIR}/pytorch.yaml" \
      --output "${BATS_FILE_TMPDIR}/shared/bundle" >"${BATS_FILE_TMPDIR}/bundle.log" 2>&1 \
      || { tail -n 30 "${BATS_FILE_TMPDIR}/bundle.log" >&2; return 1; }
    FAKE_TRTLLM_CALLS="${BATS_FILE_TMPDIR}/engine-calls.jsonl" \
      "${BUILD}" --model-dir "${BATS_FILE_TMPDIR}/models/tiny llama" --config "${BATS_FILE_TMPDIR}/engine.yaml" \
      --output "${BATS_FILE_TMPDIR}/shared/engine" >"${BATS_FILE_TMPDIR}/engine.log" 2>&1 \
      || { tail -n 30 "${BATS_FILE_TMPDIR}/engine.log" >&2; return 1; }
  )
}

setup() {
  build_setup
  export FAKE_TRTLLM_LOG="${BATS_TEST_TMPDIR}/trtllm.jsonl"
  OUT="${OUTPUTS_DIR}/bundles/my-model"
  SHARED="${BATS_FILE_TMPDIR}/shared"
}

# use_shared KIND: a private copy of the shared bundle or engine at OUT.
use_shared() {
  mkdir -p "${OUT%/*}"
  cp -r "${SHARED}/$1" "${OUT}"
}

# pytorch_config FILE VERSION [MODE] [DATASET]: the build config of build_helper, backend pytorch.
pytorch_config() {
  local file="$1" version="$2" mode="${3:-none}" dataset="${4:-null}"
  build_write_config "${file}" "${version}"
  sed -i -e 's/^backend: engine/backend: pytorch/' -e "s/^  mode: none/  mode: ${mode}/" \
    -e "s|dataset: null|dataset: ${dataset}|" "${file}"
}

# build_bundle VERSION: a pytorch bundle of the tiny llama for VERSION into OUT.
build_bundle() {
  build_use_stack "$1"
  pytorch_config "${CONFIG}" "$1"
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
}

@test "a pytorch build publishes the hard-linked checkpoint, the options YAML, serve.sh and build.json" {
  local bundle="${SHARED}/bundle"
  [[ -f "${bundle}/build.json" && -x "${bundle}/serve.sh" && -f "${bundle}/llm_api_options.yaml" ]]
  [[ ! -e "${bundle}/engine" ]]
  # same inode: the checkpoint costs no disk
  [[ "$(stat -c %i "${bundle}/checkpoint/model.safetensors")" == "$(stat -c %i "${MODELS}/tiny llama/model.safetensors")" ]]
  run build_json_get "${bundle}/build.json" backend
  assert_output "pytorch"
  run build_json_get "${bundle}/build.json" bundle.link_mode
  assert_output "hardlink"
  run build_json_get "${bundle}/build.json" bundle.llm_api_record
  assert_output "llm_args.1.2.json"
  run head -n 2 "${bundle}/llm_api_options.yaml"
  assert_output --partial "llm_args.1.2.json (TensorRT-LLM 1.2)"
  # no convert script or trtllm-build ran for the bundle (they did for the engine beside it)
  [[ ! -s "${BATS_FILE_TMPDIR}/bundle-calls.jsonl" ]]
  grep -q '"tool": "build"' "${BATS_FILE_TMPDIR}/engine-calls.jsonl"
}

@test "the options YAML names the LLM-API record of the targeted version" {
  build_bundle 1.3.0rc20
  assert_success
  run head -n 2 "${OUT}/llm_api_options.yaml"
  assert_output --partial "llm_args.1.3.json (TensorRT-LLM 1.3)"
}

@test "serve.sh starts the strict trtllm-serve on the bundle with its options" {
  use_shared bundle
  build_use_stack 1.2.0
  run --separate-stderr "${OUT}/serve.sh" --host 0.0.0.0 --port 8123
  assert_success
  assert_output --partial "would serve checkpoint on 0.0.0.0:8123 (backend pytorch)"
  run grep -c '"tool": "trtllm-serve"' "${FAKE_TRTLLM_LOG}"
  assert_output "1"
}

@test "an options key TensorRT-LLM would reject stops serve.sh, as TorchLlmArgs does" {
  use_shared bundle
  build_use_stack 1.2.0
  printf 'use_cuda_graph: true\n' >>"${OUT}/llm_api_options.yaml"
  run --separate-stderr "${OUT}/serve.sh"
  assert_failure 1
  [[ "${stderr}" == *"use_cuda_graph"*"extra_forbidden"* ]]
}

@test "a flag trtllm-serve does not know fails like click does (exit 2)" {
  use_shared bundle
  build_use_stack 1.2.0
  run --separate-stderr "${OUT}/serve.sh" --kv_cache_fraction 0.5
  assert_failure 2
  [[ "${stderr}" == *"No such option: --kv_cache_fraction"* ]]
}

@test "fp8 without a calibration dataset is refused before anything is written (exit 2)" {
  build_use_stack 1.2.0
  pytorch_config "${CONFIG}" 1.2.0 fp8
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
  assert_failure 2
  [[ "${stderr}" == *"calibration"* ]]
  [[ -z "$(build_outputs_listing)" ]]
}

@test "fp8 with a local dataset plans one ModelOpt step exporting an HF checkpoint (dry run)" {
  build_use_stack 1.2.0
  # 512 samples for calibration, 64 more held out for the quality eval
  for i in $(seq 576); do printf '{"text": "w%d w2 w3"}\n' "${i}"; done >"${BATS_TEST_TMPDIR}/calib.jsonl"
  pytorch_config "${CONFIG}" 1.2.0 fp8 "${BATS_TEST_TMPDIR}/calib.jsonl"
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}" --dry-run
  assert_success
  assert_output --partial "modelopt_quantize.py"
  assert_output --partial "--export hf"
  refute_output --partial "trtllm-build"
  [[ ! -e "${OUT}" ]]
}

@test "TensorRT-LLM 0.16 cannot serve a pytorch bundle: refused with the engine backend named" {
  build_bundle 0.16.0
  assert_failure 2
  [[ "${stderr}" == *"engine"* ]]
  [[ ! -e "${OUT}" ]]
}

@test "make bench's script runs trtllm-bench on a local dataset and keeps the report beside the bundle" {
  use_shared bundle
  build_use_stack 1.2.0
  run --separate-stderr "${BENCH}" --artifact "${OUT}" --num-requests 4 --input-len 16 --output-len 8
  assert_success
  local results="${output}"
  [[ "${results}" == "${OUT}/bench/"* ]]
  [[ -f "${results}/report.json" && -f "${results}/bench.log" ]]
  run wc -l <"${results}/dataset.jsonl"
  assert_output "4"
  run cat "${results}/command.txt"
  assert_output --partial "--backend pytorch --extra_llm_api_options"
  run build_json_get "${results}/report.json" request_info.num_requests
  assert_output "4"
}

@test "bench on an engine artifact passes the engine dir and names the tensorrt backend on 1.x" {
  use_shared engine
  build_use_stack 1.2.0
  run --separate-stderr "${BENCH}" --artifact "${OUT}" --num-requests 2 --input-len 8 --output-len 4
  assert_success
  run cat "${output}/command.txt"
  assert_output --partial "--engine_dir ${OUT// /\\ }/engine"
  assert_output --partial "--backend tensorrt"
}

@test "bench refuses bad input with exit 2 and writes nothing" {
  run --separate-stderr "${BENCH}" --artifact "${BATS_TEST_TMPDIR}/nothing"
  assert_failure 2
  [[ "${stderr}" == *"no built artifact"* ]]
  run --separate-stderr "${BENCH}" --name "../x"
  assert_failure 2
  run --separate-stderr "${BENCH}" --name ok --num-requests 0
  assert_failure 2
}

@test "bench --name finds the artifact under OUTPUTS_DIR, as the build does" {
  mkdir -p "${OUTPUTS_DIR}/gpu/tensorrt_llm"
  cp -r "${SHARED}/bundle" "${OUTPUTS_DIR}/gpu/tensorrt_llm/my-sft"
  build_use_stack 1.2.0
  run --separate-stderr "${BENCH}" --name my-sft --num-requests 2 --input-len 8 --output-len 4
  assert_success
  [[ "${output}" == "${OUTPUTS_DIR}/gpu/tensorrt_llm/my-sft/bench/"* ]]
}

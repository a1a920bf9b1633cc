#!/usr/bin/env bats
# build_tensorrt_llm.sh end to end with strict fakes: a tiny llama and a tiny qwen built for
# TensorRT-LLM 0.12, 0.16 and 1.2, tp=2, re-runs, --force, --dry-run, --name.

bats_require_minimum_version 1.5.0

load test_helper
load build_helper

setup_file() {
  cd "${REPO_ROOT}" || return 1
  build_make_models "${BATS_FILE_TMPDIR}/models" llama qwen2
  build_make_stacks "${BATS_FILE_TMPDIR}/stacks" 0.12.0 0.16.0 1.2.0
}

setup() {
  build_setup
}

# build_and_check FAMILY VERSION: build the tiny FAMILY model for VERSION and check the artifact.
build_and_check() {
  local family="$1" version="$2" layout
  build_use_stack "${version}"
  build_write_config "${CONFIG}" "${version}"
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny ${family}" --config "${CONFIG}" --output "${OUT}"
  assert_success
  assert_output "${OUT}"
  BUILD_STDERR="${stderr}"
  # the engine, its tokenizer beside it, the manifest and the launch script
  [[ -f "${OUT}/engine/config.json" && -f "${OUT}/engine/rank0.engine" ]]
  [[ -f "${OUT}/tokenizer/tokenizer.json" && -f "${OUT}/tokenizer/generation_config.json" ]]
  [[ -x "${OUT}/serve.sh" && -f "${OUT}/build.json" && -f "${OUT}/logs/build.log" ]]
  [[ ! -e "${OUT}/checkpoint" ]]
  # no staging dir or stray file left beside the output
  run ls -A "${OUT%/*}"
  assert_line "my-model"
  refute_output --partial "staging"
  # the convert script of the version's layout ran, then trtllm-build, once each
  [[ "$(build_calls convert)" == 1 && "$(build_calls build)" == 1 ]]
  case "${version}" in 0.*) layout="upto-0.18/${family%2}/" ;; *) layout="from-0.19/models/core/${family%2}/" ;; esac
  grep -q "${layout}convert_checkpoint.py" "${OUT}/logs/convert.log"
  run build_json_get "${OUT}/engine/config.json" version
  assert_output "${version}"
  run build_json_get "${OUT}/build.json" environment.trtllm_version
  assert_output "${version}"
  run build_json_get "${OUT}/build.json" build_id
  assert_output --regexp '^sha256:[0-9a-f]{64}$'
  run build_json_get "${OUT}/build.json" artifact.tokenizer.load_check
  assert_output "ok"
}

@test "builds a tiny llama for TensorRT-LLM 0.12.0; serve.sh runs run.py (no trtllm-serve before 0.15)" {
  build_and_check llama 0.12.0
  run cat "${OUT}/serve.sh"
  assert_output --partial '/run.py" --engine_dir engine --tokenizer_dir tokenizer' 
  refute_output --partial "mpirun"
}

@test "builds a tiny llama for TensorRT-LLM 0.16.0; serve.sh runs trtllm-serve with the tokenizer" {
  build_and_check llama 0.16.0
  run cat "${OUT}/serve.sh"
  assert_output --partial "exec trtllm-serve engine --tokenizer tokenizer \"\$@\""
}

@test "builds a tiny llama for TensorRT-LLM 1.2.0; one status line per stage; serve.sh asks for the tensorrt backend" {
  local stage
  build_and_check llama 1.2.0
  for stage in args config probe plan identity staging convert build publish; do
    [[ "${BUILD_STDERR}" =~ build_tensorrt_llm:\ ${stage}\ +ok\ +[0-9]+\.[0-9]s ]]
  done
  run cat "${OUT}/serve.sh"
  assert_output --partial "exec trtllm-serve engine --tokenizer tokenizer --backend tensorrt \"\$@\""
}

@test "builds a tiny qwen for TensorRT-LLM 0.12.0" {
  build_and_check qwen2 0.12.0
  run build_json_get "${OUT}/build.json" family
  assert_output "qwen"
}

@test "builds a tiny qwen for TensorRT-LLM 0.16.0" {
  build_and_check qwen2 0.16.0
}

@test "builds a tiny qwen for TensorRT-LLM 1.2.0" {
  build_and_check qwen2 1.2.0
}

@test "tp=2 builds one engine per rank and serve.sh passes trtllm-serve the parallel sizes" {
  build_use_stack 1.2.0
  build_write_config "${CONFIG}" 1.2.0 2
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
  assert_success
  [[ -f "${OUT}/engine/rank0.engine" && -f "${OUT}/engine/rank1.engine" ]]
  run build_json_get "${OUT}/build.json" parallel.world_size
  assert_output "2"
  run build_json_get "${OUT}/build.json" serve.argv
  assert_output --partial '"--tp_size", "2", "--pp_size", "1"'
}

@test "tp=2 on TensorRT-LLM 0.12.0 launches under mpirun -n 2; --keep-staging keeps the checkpoint" {
  build_use_stack 0.12.0
  build_write_config "${CONFIG}" 0.12.0 2
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}" --keep-staging
  assert_success
  [[ -f "${OUT}/checkpoint/rank0.safetensors" && -f "${OUT}/checkpoint/rank1.safetensors" ]]
  run cat "${OUT}/serve.sh"
  assert_output --partial "exec mpirun -n 2"
}

@test "fp8 goes through quantize.py with a local calibration file; intermediates are not published" {
  build_use_stack 1.2.0
  build_write_config "${CONFIG}" 1.2.0
  printf '{"text": "w1 w2 w3"}\n{"text": "w4 w5"}\n' >"${BATS_TEST_TMPDIR}/calib.jsonl"
  sed -i -e 's/mode: none/mode: fp8/' -e 's/kv_cache_dtype: auto/kv_cache_dtype: fp8/' \
    -e "s|dataset: null|dataset: \"${BATS_TEST_TMPDIR}/calib.jsonl\"|" "${CONFIG}"
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
  assert_success
  [[ "$(build_calls quantize)" == 1 && "$(build_calls convert)" == 0 && "$(build_calls build)" == 1 ]]
  run build_json_get "${OUT}/engine/config.json" pretrained_config.quantization.quant_algo
  assert_output "FP8"
  [[ ! -e "${OUT}/calib" && ! -e "${OUT}/checkpoint" && -f "${OUT}/logs/quantize.log" ]]
}

@test "--name NAME builds outputs/gpu/merged_models/NAME into outputs/gpu/tensorrt_llm/NAME; a re-run is up to date and runs nothing" {
  local out="${OUTPUTS_DIR}/gpu/tensorrt_llm/my-sft" before
  build_use_stack 1.2.0
  build_write_config "${CONFIG}" 1.2.0
  mkdir -p "${OUTPUTS_DIR}/gpu/merged_models"
  cp -r "${MODELS}/tiny llama" "${OUTPUTS_DIR}/gpu/merged_models/my-sft"
  run --separate-stderr "${BUILD}" --name my-sft --config "${CONFIG}"
  assert_success
  assert_output "${out}"
  run build_json_get "${out}/build.json" name
  assert_output "my-sft"
  before="$(build_json_get "${out}/build.json" created_at)"
  run --separate-stderr "${BUILD}" --name my-sft --config "${CONFIG}"
  assert_success
  assert_output "${out}"
  [[ "${stderr}" == *"up to date"* ]]
  [[ "$(build_json_get "${out}/build.json" created_at)" == "${before}" ]]
  [[ "$(build_calls build)" == 1 ]]
}

@test "a different build over an existing artifact needs --force (exit 2, untouched); --force replaces it whole" {
  local id
  build_use_stack 1.2.0
  build_write_config "${CONFIG}" 1.2.0
  run "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
  assert_success
  id="$(build_json_get "${OUT}/build.json" build_id)"
  touch "${OUT}/marker"
  sed -i 's/max_batch_size: 8/max_batch_size: 16/' "${CONFIG}"
  run "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
  assert_failure 2
  assert_output --partial "--force"
  [[ "$(build_json_get "${OUT}/build.json" build_id)" == "${id}" && -f "${OUT}/marker" ]]
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}" --force
  assert_success
  [[ "$(build_json_get "${OUT}/build.json" build_id)" != "${id}" && ! -e "${OUT}/marker" ]]
  [[ "$(build_json_get "${OUT}/build.json" inputs.config.build.max_batch_size)" == 16 ]]
  [[ "$(build_calls build)" == 2 ]]
  run ls -A "${OUT%/*}"
  refute_output --partial "staging"
  refute_output --partial ".old-"
}

@test "a changed weight changes the build_id, so the old artifact is not reused" {
  local model="${BATS_TEST_TMPDIR}/model copy"
  build_use_stack 1.2.0
  build_write_config "${CONFIG}" 1.2.0
  cp -r "${MODELS}/tiny llama" "${model}"
  run "${BUILD}" --model-dir "${model}" --config "${CONFIG}" --output "${OUT}"
  assert_success
  # flip bytes in the middle of the weights: same size, same safetensors header
  printf '\x01\x02\x03\x04' | dd of="${model}/model.safetensors" bs=1 seek=$(( $(stat -c %s "${model}/model.safetensors") / 2 )) conv=notrunc status=none
  run "${BUILD}" --model-dir "${model}" --config "${CONFIG}" --output "${OUT}"
  assert_failure 2
  assert_output --partial "different build"
}

@test "--dry-run prints the plan and writes nothing under outputs/" {
  build_use_stack 1.2.0
  build_write_config "${CONFIG}" 1.2.0
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}" --dry-run
  assert_success
  assert_output --partial "trtllm-build"
  [[ "${stderr}" == *"the build would create ${OUT}"* ]]
  [[ -z "$(build_outputs_listing)" ]]
  [[ "$(build_calls convert)" == 0 ]]
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}" --dry-run --json
  assert_success
  run build_json_get <(printf '%s' "${output}") schema_version
  assert_output "1"
  [[ -z "$(build_outputs_listing)" ]]
}

@test "backend pytorch publishes bundle.py's deploy bundle with the same manifest, atomically" {
  build_use_stack 1.2.0
  build_write_config "${CONFIG}" 1.2.0
  sed -i 's/^backend: engine/backend: pytorch/' "${CONFIG}"
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
  assert_success
  [[ -f "${OUT}/checkpoint/config.json" && -f "${OUT}/llm_api_options.yaml" && -x "${OUT}/serve.sh" ]]
  [[ "$(build_calls build)" == 0 ]]
  run build_json_get "${OUT}/build.json" backend
  assert_output "pytorch"
  run build_json_get "${OUT}/build.json" serve.argv.2
  assert_output "--backend"
  run build_json_get "${OUT}/build.json" artifact.tokenizer.load_check
  assert_output "ok"
  run ls -A "${OUT%/*}"
  refute_output --partial "staging"
}

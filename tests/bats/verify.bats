#!/usr/bin/env bats
# build_tensorrt_llm.sh --verify (verify.py) on artifacts built with the strict fakes: one verdict
# line per check, matching and mismatching machines (other GPU, other TensorRT-LLM, too few GPUs,
# no GPU), golden prompts through an importable fake of the LLM API, the report in build.json.

bats_require_minimum_version 1.5.0

load test_helper
load build_helper

# shared_build KIND MACHINE: build the tiny llama with BATS_FILE_TMPDIR/KIND.yaml on the fake
# MACHINE into BATS_FILE_TMPDIR/shared/KIND (TensorRT-LLM 1.2.0 installed).
shared_build() {
  local kind="$1" machine="$2"
  PATH="${REPO_ROOT}/tests/fakes/bin:/usr/local/bin:/usr/bin:/bin" FAKE_NVIDIA_SMI="${machine}" \
    HOME="${BATS_FILE_TMPDIR}/home" FAKE_TRTLLM_STATE="${BATS_FILE_TMPDIR}" \
    PYTHONPATH="${BATS_FILE_TMPDIR}/stacks/1.2.0" TRTLLM_EXAMPLES_DIR="${FAKE_EXAMPLES}/from-0.19" \
    "${BUILD}" --model-dir "${BATS_FILE_TMPDIR}/models/tiny llama" --config "${BATS_FILE_TMPDIR}/${kind}.yaml" \
    --output "${BATS_FILE_TMPDIR}/shared/${kind}" >"${BATS_FILE_TMPDIR}/${kind}.log" 2>&1 || {
    printf 'setup: the %s build failed:\n' "${kind}" >&2
    tail -n 30 "${BATS_FILE_TMPDIR}/${kind}.log" >&2
    return 1
  }
}

setup_file() {
  cd "${REPO_ROOT}" || return 1
  mkdir -p "${BATS_FILE_TMPDIR}/home"
  build_make_models "${BATS_FILE_TMPDIR}/models" llama
  build_make_stacks "${BATS_FILE_TMPDIR}/stacks" 1.1.0 1.2.0
  build_write_config "${BATS_FILE_TMPDIR}/engine.yaml" 1.2.0
  build_write_config "${BATS_FILE_TMPDIR}/engine-tp2.yaml" 1.2.0 2
  sed -e 's/^backend: engine/backend: pytorch/' "${BATS_FILE_TMPDIR}/engine.yaml" >"${BATS_FILE_TMPDIR}/pytorch.yaml"
  shared_build engine h200
  shared_build engine-tp2 h200
  shared_build pytorch h200
}

setup() {
  build_setup
  ART="${BATS_TEST_TMPDIR}/artifact"
  export FAKE_TRTLLM_ENGINE_SOURCE="${MODELS}/tiny llama"
}

# verify_on KIND MACHINE VERSION [ARGS...]: verify a copy of the shared KIND artifact on the fake
# MACHINE (nvidia-smi fixture) with TensorRT-LLM VERSION installed (dist-info + fake LLM API).
verify_on() {
  local kind="$1" machine="$2" version="$3"
  shift 3
  rm -rf "${ART}"
  cp -r "${BATS_FILE_TMPDIR}/shared/${kind}" "${ART}"
  export FAKE_NVIDIA_SMI="${machine}"
  export PYTHONPATH="${BATS_FILE_TMPDIR}/stacks/${version}:${REPO_ROOT}/tests/fakes/python_trtllm"
  run --separate-stderr "${BUILD}" --verify --output "${ART}" "$@"
}

# report_get KEY: one value of the verification report written into the artifact's build.json.
report_get() {
  build_json_get "${ART}/build.json" "verification.$1"
}

@test "a bundle on a matching machine passes every check, golden prompts included" {
  verify_on pytorch h200 1.2.0
  assert_success
  assert_line --regexp '^\[ok\] +manifest '
  assert_line --regexp '^\[ok\] +trtllm_version +installed 1\.2\.0, bundle made for 1\.2\.0$'
  refute_line --regexp ' tensorrt '
  assert_line --regexp '^\[ok\] +gpu_count '
  assert_line --regexp '^\[ok\] +golden +4/4 prompts agree'
  [[ "${#lines[@]}" == 7 ]]
  [[ "${stderr}" == *"verify: verified; report in"* ]]
  run report_get ok
  assert_output "true"
  run report_get golden.prompts
  assert_output "4"
}

@test "an engine on the machine it was built for passes, golden prompts through the engine LLM" {
  verify_on engine h200 1.2.0
  assert_success
  assert_line --regexp '^\[ok\] +tensorrt +installed TensorRT 10\.14\.1\.48 = built 10\.14\.1\.48$'
  assert_line --regexp '^\[ok\] +gpu_arch +NVIDIA H200 \(SM 9\.0\) = built for SM 9\.0$'
  assert_line --regexp '^\[ok\] +golden '
}

@test "an artifact that disagrees with the merged model fails the golden check (exit 1)" {
  export FAKE_TRTLLM_GOLDEN_SHIFT=1
  verify_on pytorch h200 1.2.0
  assert_failure 1
  assert_line --regexp '^\[FAIL\] golden +0/4 prompts agree'
  run report_get ok
  assert_output "false"
}

@test "an engine on another GPU fails gpu_arch and skips the golden check" {
  verify_on engine a100 1.2.0
  assert_failure 1
  assert_line --regexp '^\[FAIL\] gpu_arch +engine built for SM 9\.0, this machine has SM 8\.0'
  assert_line --regexp '^\[skip\] golden +an earlier check failed'
}

@test "another TensorRT-LLM version fails trtllm_version: exact for engines, the line for bundles" {
  verify_on engine h200 1.1.0
  assert_failure 1
  assert_line --regexp '^\[FAIL\] trtllm_version +installed 1\.1\.0, engine built with 1\.2\.0'
  assert_line --regexp '^\[FAIL\] tensorrt '
  verify_on pytorch h200 1.1.0
  assert_failure 1
  assert_line --regexp '^\[FAIL\] trtllm_version +installed 1\.1\.0, bundle made for the 1\.2\.0 line'
}

@test "too few GPUs for the world size fails gpu_count; eight pass it, and an old driver fails driver" {
  verify_on engine-tp2 h200 1.2.0
  assert_failure 1
  assert_line --regexp '^\[FAIL\] gpu_count +world size 2 needs 2 GPUs, 1 visible'
  # eight H100s: enough GPUs, though their driver (CUDA 12.8) is too old for this CUDA 13 build
  verify_on engine-tp2 h100x8 1.2.0
  assert_line --regexp '^\[ok\] +gpu_count +8 GPU\(s\) visible for world size 2$'
  assert_line --regexp '^\[FAIL\] driver +driver supports CUDA 12\.8, the build used CUDA 13\.0'
  run report_get checks.5.status
  assert_output "pass"
}

@test "no GPU at all fails instead of passing what it could not check" {
  verify_on pytorch none 1.2.0
  assert_failure 1
  assert_line --regexp '^\[FAIL\] gpu_arch +no NVIDIA GPU visible'
  refute_line --regexp '^\[ok\] +(gpu_count|golden)'
}

@test "--json prints the report with its schema version and writes the same into build.json" {
  verify_on pytorch none 1.2.0 --json
  assert_failure 1
  run "${PYTHON}" -c 'import json, sys; r = json.load(sys.stdin); print(r["schema_version"], r["ok"], len(r["checks"]))' <<<"${output}"
  assert_output "1 False 7"
  run report_get schema_version
  assert_output "1"
  run report_get checks.3.id
  assert_output "gpu_arch"
}

@test "--verify without an artifact is bad input (exit 2)" {
  run --separate-stderr "${BUILD}" --verify --output "${BATS_TEST_TMPDIR}/nothing"
  assert_failure 2
  mkdir -p "${BATS_TEST_TMPDIR}/empty"
  run --separate-stderr "${BUILD}" --verify --output "${BATS_TEST_TMPDIR}/empty"
  assert_failure 2
  [[ "${stderr}" == *"no build.json"* ]]
}

@test "a machine whose nvidia-smi finds no driver is NOT verified (exit 3), and --allow-skip says partial" {
  verify_on pytorch nodriver 1.2.0
  assert_failure 3
  [[ "${stderr}" == *"verify: NOT verified: "*" check(s) could not run here ("*"golden: "* ]]
  run report_get ok
  assert_output "false"
  verify_on pytorch nodriver 1.2.0 --allow-skip
  assert_success
  [[ "${stderr}" == *"partially verified (--allow-skip)"* ]]
  run report_get allow_skip
  assert_output "true"
}

@test "make verify takes FULL and ALLOW_SKIP and finds the artifact under OUTPUTS_DIR" {
  mkdir -p "${OUTPUTS_DIR}/gpu/tensorrt_llm"
  cp -r "${BATS_FILE_TMPDIR}/shared/pytorch" "${OUTPUTS_DIR}/gpu/tensorrt_llm/my-sft"
  export FAKE_NVIDIA_SMI=nodriver
  export PYTHONPATH="${BATS_FILE_TMPDIR}/stacks/1.2.0:${REPO_ROOT}/tests/fakes/python_trtllm"
  run --separate-stderr make -C "${REPO_ROOT}" verify NAME=my-sft FULL=1 ALLOW_SKIP=1 PYTHON="${PYTHON}"
  assert_success
  [[ "${stderr}" == *"partially verified"* ]]
  run build_json_get "${OUTPUTS_DIR}/gpu/tensorrt_llm/my-sft/build.json" verification.full
  assert_output "true"
  run --separate-stderr make -C "${REPO_ROOT}" verify NAME=nope PYTHON="${PYTHON}"
  assert_failure
  [[ "${stderr}" == *"no artifact at ${OUTPUTS_DIR}/gpu/tensorrt_llm/nope"* ]]
}

#!/usr/bin/env bats
# make doctor / build_tensorrt_llm.sh --doctor: facts and checks of this machine, exit 1 on a fail.

load test_helper
bats_require_minimum_version 1.5.0

setup() {
  common_setup
  export CUDA_VERSION=13.0.1
  SITE="${BATS_TEST_TMPDIR}/site"
  "${PYTHON}" "${REPO_ROOT}/tests/fakes/make_dist_info.py" "${SITE}" --stack 1.2.0 >/dev/null
  export PYTHONPATH="${SITE}"
  CONFIG="${REPO_ROOT}/configs/export/tensorrt_llm.yaml"
}

# doctor_on GPU [args]: --doctor on the machine captured in tests/fixtures/nvidia_smi/GPU.*
doctor_on() {
  local gpu="$1"
  shift
  FAKE_NVIDIA_SMI="${gpu}" "${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh" --doctor \
    --config "${CONFIG}" --output "${BATS_TEST_TMPDIR}/out" "$@"
}

@test "doctor on an H200 with TensorRT-LLM 1.2.0 and the h200-fp8 profile passes" {
  run doctor_on h200 --profile h200-fp8
  assert_success
  assert_line --partial "NVIDIA H200 (compute 9.0, 143771 MiB"
  assert_line --regexp '^  \[ok\] +gpu_target +detected NVIDIA H200 matches target H200'
  refute_line --partial "[FAIL]"
}

@test "make doctor runs the same checks through the Makefile" {
  run env FAKE_NVIDIA_SMI=h200 make -C "${REPO_ROOT}" doctor PROFILE=h200-fp8
  assert_success
  assert_line --regexp '^  \[ok\] +backend_window'
}

@test "an FP8 profile on an A100 fails and says what runs there" {
  run doctor_on a100 --profile h100-fp8
  assert_failure 1
  assert_line --regexp '^  \[FAIL\] +gpu_precision .*compute capability 8.0'
  assert_line --regexp 'fix: on NVIDIA A100-SXM4-80GB use dtype: bfloat16'
}

@test "a machine whose driver is not loaded fails with a fix naming the driver" {
  run doctor_on nodriver
  assert_failure 1
  assert_line --regexp '^  \[FAIL\] +gpu_present +NVIDIA-SMI has failed'
  assert_line --partial "fix: load the NVIDIA driver"
}

@test "an old driver for this TensorRT-LLM fails the driver check" {
  run doctor_on h100 --profile h100-fp8
  assert_failure 1
  assert_line --regexp '^  \[FAIL\] +driver_cuda +driver 550.54.15 supports CUDA 12.4'
}

@test "--json prints one document with schema_version, checks and facts" {
  run --separate-stderr doctor_on h100x8 --json
  assert_failure 1 # this driver supports CUDA 12.8; TensorRT-LLM 1.2 needs 13
  run "${PYTHON}" -c 'import json, sys
d = json.loads(sys.argv[1])
print(d["schema_version"], d["ok"], len(d["facts"]["gpu"]["devices"]),
      [c["id"] for c in d["checks"] if c["status"] == "fail"])' "${output}"
  assert_output "1 False 8 ['driver_cuda']"
}

@test "a typo in the config exits 2 naming the file, line and key" {
  run --separate-stderr doctor_on h200 --config "${REPO_ROOT}/tests/fixtures/configs/bad/unknown-key-typo.yaml"
  assert_failure 2
  assert_output ""
  [[ "${stderr}" == *"unknown-key-typo.yaml:23: build.max_seq_length: unknown key; did you mean 'max_seq_len'?"* ]]
}

@test "the fake nvidia-smi refuses a field the real one does not know" {
  run env FAKE_NVIDIA_SMI=h200 nvidia-smi --query-gpu=index,compute_capability --format=csv,noheader,nounits
  assert_failure 2
  assert_output --partial 'Field "compute_capability" is not a valid field to query.'
}

#!/usr/bin/env bats
# The quality gate through the front door (backend pytorch, fp8): the ModelOpt step measures the
# quantized model against the unquantized one and the build publishes only within the gate.
# ModelOpt is tests/fakes/python_modelopt (a stand-in quantizer with known numerics, broken on
# purpose by FAKE_MODELOPT_FAULT) running on the CPU; the model is scripts/dev/tiny_lm.py's and
# the calibration/eval text is sampled from it (32 calibration + 64 held-out samples). A wrong
# calibration set is tested in tests/python/test_quality_step.py, the plan's side in
# tests/python/test_quality_plan.py.

bats_require_minimum_version 1.5.0

load test_helper
load build_helper

setup_file() {
  cd "${REPO_ROOT}" || return 1
  mkdir -p "${BATS_FILE_TMPDIR}/home"
  "${PYTHON}" scripts/dev/tiny_lm.py model --out "${BATS_FILE_TMPDIR}/lm" >/dev/null
  "${PYTHON}" scripts/dev/tiny_lm.py text --model "${BATS_FILE_TMPDIR}/lm" \
    --out "${BATS_FILE_TMPDIR}/text.jsonl" --samples 96 --tokens 48 >/dev/null
  build_make_stacks "${BATS_FILE_TMPDIR}/stacks" 1.2.0
  quality_config "${BATS_FILE_TMPDIR}/fp8.yaml" "${BATS_FILE_TMPDIR}/text.jsonl"
  # one sound fp8 bundle for the tests that only read it
  PATH="${REPO_ROOT}/tests/fakes/bin:/usr/local/bin:/usr/bin:/bin" FAKE_NVIDIA_SMI=h200 \
    HOME="${BATS_FILE_TMPDIR}/home" QUANTIZE_DEVICE=cpu \
    PYTHONPATH="${REPO_ROOT}/tests/fakes/python_modelopt:${BATS_FILE_TMPDIR}/stacks/1.2.0" \
    "${BUILD}" --model-dir "${BATS_FILE_TMPDIR}/lm" --config "${BATS_FILE_TMPDIR}/fp8.yaml" \
    --output "${BATS_FILE_TMPDIR}/shared/fp8" >"${BATS_FILE_TMPDIR}/fp8.log" 2>&1 || {
    tail -n 30 "${BATS_FILE_TMPDIR}/fp8.log" >&2
    return 1
  }
}

setup() {
  build_setup
  build_use_stack 1.2.0
  export PYTHONPATH="${REPO_ROOT}/tests/fakes/python_modelopt:${PYTHONPATH}"
  export QUANTIZE_DEVICE=cpu BUILD_PROGRESS_SECONDS=600
  unset FAKE_MODELOPT_FAULT
  LM="${BATS_FILE_TMPDIR}/lm" TEXT="${BATS_FILE_TMPDIR}/text.jsonl"
}

# quality_config FILE DATASET [MODE]: backend pytorch, MODE (fp8) with an FP8 KV cache, 32
# calibration samples of DATASET and 64 eval samples of 64 tokens held out after them.
quality_config() {
  local file="$1" dataset="$2" mode="${3:-fp8}"
  build_write_config "${file}" 1.2.0
  sed -i -e 's/^backend: engine/backend: pytorch/' -e "s/^  mode: none/  mode: ${mode}/" \
    -e 's/^  kv_cache_dtype: auto/  kv_cache_dtype: fp8/' \
    -e "s|^  calibration: .*|  calibration: {dataset: \"${dataset}\", num_samples: 32, max_seq_len: 64}\n  eval: {num_samples: 64, seq_len: 64}|" \
    "${file}"
}

# staging_dir: the staging dir a failed build kept beside OUT (exactly one).
staging_dir() {
  local -a dirs
  dirs=("${OUT%/*}"/.my-model.staging-*)
  ((${#dirs[@]} == 1)) && [[ -d "${dirs[0]}" ]] || return 1
  printf '%s\n' "${dirs[0]}"
}

@test "a sound fp8 build publishes, its quality table shown as the step runs and kept in build.json" {
  local shared="${BATS_FILE_TMPDIR}/shared/fp8"
  run build_json_get "${shared}/build.json" quality.gate.passed
  assert_output "true"
  run build_json_get "${shared}/build.json" quality.data.held_out
  assert_output "true"
  run build_json_get "${shared}/build.json" quality.data.first_sample
  assert_output "32"
  [[ -f "${shared}/logs/quality.json" ]]
  run cat "${BATS_FILE_TMPDIR}/fp8.log"
  assert_line --partial "quantize   ModelOpt CUDA extensions: loading (a machine's first run compiles them"
  assert_line --partial "quantize   quality of fp8 (kv fp8) vs the unquantized model: 64 held-out samples of text.jsonl"
  assert_line --regexp "quantize     perplexity +[0-9.]+ -> [0-9.]+  \(\+[0-9.]+%; gate \+8% at most\)  pass"
  assert_line --partial "quantize     gate             passed"
}

@test "a broken quantizer stops the build (exit 1): nothing published, the report kept, a hint" {
  local staging
  quality_config "${CONFIG}" "${TEXT}"
  FAKE_MODELOPT_FAULT=noise:0.5 run --separate-stderr "${BUILD}" --model-dir "${LM}" \
    --config "${CONFIG}" --output "${OUT}"
  assert_failure 1
  [[ ! -e "${OUT}" ]]
  staging="$(staging_dir)"
  [[ ! -e "${staging}/checkpoint" && -f "${staging}/logs/quality.json" ]]
  [[ "${stderr}" == *"gate             FAILED: perplexity +"* ]]
  [[ "${stderr}" == *"hint: the quantized model lost more quality than quantization.eval.gate allows"*"--accept-quality-loss"*"[quality_gate]"* ]]
  [[ "${stderr}" == *"kept the staging dir for inspection: ${staging}"* ]]
  run build_json_get "${staging}/logs/quality.json" gate.passed
  assert_output "false"
}

@test "make engine ACCEPT_QUALITY_LOSS=1 publishes over the gate with the same build_id; later runs must accept it again" {
  local -a engine=(make -s --no-print-directory -C "${REPO_ROOT}" engine PYTHON="${PYTHON}" NAME=lm)
  local art="${OUTPUTS_DIR}/gpu/tensorrt_llm/lm" id
  mkdir -p "${OUTPUTS_DIR}/gpu/merged_models"
  cp -r "${LM}" "${OUTPUTS_DIR}/gpu/merged_models/lm"
  quality_config "${CONFIG}" "${TEXT}"
  export CONFIG FAKE_MODELOPT_FAULT=noise:0.5
  run --separate-stderr "${engine[@]}" ACCEPT_QUALITY_LOSS=1
  assert_success
  assert_output "${art}"
  [[ "${stderr}" == *"gate             FAILED; published anyway (--accept-quality-loss)"* ]]
  run build_json_get "${art}/build.json" quality.gate.accepted_loss
  assert_output "true"
  run build_json_get "${art}/build.json" quality.gate.passed
  assert_output "false"
  run build_json_get "${art}/build.json" commands.0.argv
  assert_output --partial '"--accept-quality-loss"'
  # the build_id is the one of the same build without the flag
  "${BUILD}" --name lm --config "${CONFIG}" --dry-run --json >"${BATS_TEST_TMPDIR}/plan.json" 2>/dev/null
  id="$(build_json_get "${BATS_TEST_TMPDIR}/plan.json" inputs.build_id)"
  run build_json_get "${art}/build.json" build_id
  assert_output "${id}"
  # without the flag the over-gate artifact is not up to date: refused, untouched
  run --separate-stderr "${engine[@]}"
  assert_failure 2
  [[ "${stderr}" == *"holds this build, published over its quality gate with --accept-quality-loss"*"rerun with --accept-quality-loss to keep it, or --force"* ]]
  run build_json_get "${art}/build.json" build_id
  assert_output "${id}"
  # accepted again: up to date, nothing rebuilt
  run --separate-stderr "${engine[@]}" ACCEPT_QUALITY_LOSS=1
  assert_success
  [[ "${stderr}" == *"up to date: ${art} already holds build"* ]]
  [[ "${stderr}" != *"quantize   "* ]]
}

@test "too few samples left for the eval are refused at plan time (exit 2, file:line: key), nothing written" {
  local text="${BATS_TEST_TMPDIR}/short.jsonl" line
  head -n 40 "${TEXT}" >"${text}"
  quality_config "${CONFIG}" "${text}"
  run --separate-stderr "${BUILD}" --model-dir "${LM}" --config "${CONFIG}" --output "${OUT}"
  assert_failure 2
  line="$(grep -n '^  eval:' "${CONFIG}" | cut -d: -f1)"
  [[ "${stderr}" == *"build_tensorrt_llm: error: ${CONFIG}:${line}: quantization.eval.dataset: short.jsonl leaves 8 sample(s) for the quality eval after the 32 that calibration uses; at least 16 are needed (fix: "* ]]
  [[ -z "$(build_outputs_listing)" ]]
}

@test "--dry-run shows what will be measured and the gate" {
  quality_config "${CONFIG}" "${TEXT}"
  run --separate-stderr "${BUILD}" --model-dir "${LM}" --config "${CONFIG}" --output "${OUT}" --dry-run
  assert_success
  assert_line "quality  fp8 vs the unquantized model on 64 held-out samples of ${TEXT} (after the 32 calibration uses), up to 64 tokens each: perplexity, greedy token agreement, KL"
  assert_line --partial "gate (fp8 defaults): perplexity +8% at most, token agreement 80% at least"
  assert_line --regexp '^ +--quality-report \\$'
  assert_output --regexp "'${OUT%/*}/\.my-model\.staging-[0-9]+/logs/quality\.json'"
  [[ ! -e "${OUT}" ]]
}

@test "verify prints the quality the build measured" {
  mkdir -p "${OUT%/*}"
  cp -r "${BATS_FILE_TMPDIR}/shared/fp8" "${OUT}"
  export PYTHONPATH="${PYTHONPATH}:${REPO_ROOT}/tests/fakes/python_trtllm"
  run --separate-stderr "${BUILD}" --verify --output "${OUT}"
  assert_line --regexp "^\[ok\]   quality +fp8: perplexity \+[0-9.]+%, agreement [0-9.]+%, KL [0-9.]+ at build time \(within the gate\)$"
  assert_line --partial "quality of fp8 (kv fp8) vs the unquantized model"
}

@test "device_quality.sh --rehearse runs the front door per format (nvfp4 directly on Hopper) and tables them" {
  # as on the GPU box: no TensorRT-LLM installed (backend pytorch plans for target 1.2.0)
  PYTHONPATH="" OUT="${BATS_TEST_TMPDIR}/dq" FORMATS="fp8 nvfp4" SEQ_LEN=64 \
    SITE_DIR="${BATS_TEST_TMPDIR}/site" run --separate-stderr \
    bash "${REPO_ROOT}/scripts/dev/device_quality.sh" --rehearse --model-dir "${LM}"
  assert_success
  assert_line --regexp '^\| base \| fp8 \| [0-9.]+ \| [-+][0-9.]+% \| [0-9.]+% \| [0-9.]+ \| (pass|STOPPED) .*\(front door\) \|$'
  assert_line --regexp '^\| base \| nvfp4 \| [0-9.]+ \| .*, exit [01] \(direct\) \|$'
  [[ "${stderr}" == *"build_tensorrt_llm: error: "*"quantization.mode nvfp4 needs 10.0+"* ]]
  run build_json_get "${BATS_TEST_TMPDIR}/dq/device_quality.json" models.base.formats.nvfp4.quality.mode
  assert_output "nvfp4"
}

#!/usr/bin/env bats
# What makes an artifact trustworthy: one prepare process, a damaged artifact rebuilt, files
# readable by others, a build_id that does not depend on where the toolkit lives, an old artifact
# that survives a kill at any instant of a --force rebuild, a full disk at each stage as one line.

bats_require_minimum_version 1.5.0

load test_helper
load build_helper

setup_file() {
  build_file_setup_on 1.2.0
}

setup() {
  build_setup_on 1.2.0
}

# build ARGS...: the tiny llama built into OUT with the test's config.
build() {
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}" "$@"
}

# counting_python FILE: a PYTHON that records each start in FILE, then runs the real one.
counting_python() {
  cat >"${FAKE_BIN}/counting-python" <<SH
#!/usr/bin/env bash
printf '%s\n' "\${*:1:1}" >>"$1"
exec "${PYTHON}" "\$@"
SH
  chmod +x "${FAKE_BIN}/counting-python"
}

@test "a dry run starts at most 2 Python processes and a 2-step build at most 5" {
  counting_python "${BATS_TEST_TMPDIR}/starts"
  PYTHON="${FAKE_BIN}/counting-python" build --dry-run
  assert_success
  run wc -l <"${BATS_TEST_TMPDIR}/starts"
  ((output <= 2))
  : >"${BATS_TEST_TMPDIR}/starts"
  PYTHON="${FAKE_BIN}/counting-python" build
  assert_success
  [[ "$(build_calls convert)" == 1 && "$(build_calls build)" == 1 ]]
  run wc -l <"${BATS_TEST_TMPDIR}/starts"
  ((output <= 5))
}

@test "an artifact with a file deleted or changed is rebuilt, with a line naming the files" {
  build
  assert_success
  rm "${OUT}/engine/rank0.engine"
  printf 'edited\n' >>"${OUT}/tokenizer/tokenizer_config.json"
  build
  assert_success
  [[ "${stderr}" == *"is damaged (missing: engine/rank0.engine; changed: tokenizer/tokenizer_config.json): it will be rebuilt"* ]]
  [[ -f "${OUT}/engine/rank0.engine" ]]
  [[ "$(build_calls build)" == 2 ]]
  build
  assert_success
  [[ "${stderr}" == *"up to date"* && "$(build_calls build)" == 2 ]]
}

@test "published files are readable by others whatever the writer's umask" {
  umask 077
  build
  assert_success
  run find "${OUT}" -type f ! -perm -0444
  assert_output ""
  run stat -c %a "${OUT}/serve.sh" "${OUT}" "${OUT}/engine/rank0.engine" "${OUT}/build.json"
  assert_output $'755\n755\n644\n644'
}

@test "the build_id is the same from two checkouts in two directories" {
  local other="${BATS_TEST_TMPDIR}/other checkout" first
  mkdir -p "${other}"
  cp -r "${REPO_ROOT}/scripts" "${REPO_ROOT}/configs" "${other}/"
  # without TensorRT-LLM, fp8 is a step of the toolkit's own (steps/modelopt_quantize.py)
  unset PYTHONPATH
  # 512 samples for calibration, 64 more held out for the quality eval
  for i in $(seq 576); do printf '{"text": "w%d w2"}\n' "${i}"; done >"${BATS_TEST_TMPDIR}/calib.jsonl"
  sed -i -e 's/^  mode: none/  mode: fp8/' -e "s|dataset: null|dataset: ${BATS_TEST_TMPDIR}/calib.jsonl|" "${CONFIG}"
  build --dry-run --json
  assert_success
  first="$(build_json_get <(printf '%s' "${output}") inputs.build_id)"
  run --separate-stderr "${other}/scripts/export/build_tensorrt_llm.sh" --model-dir "${MODELS}/tiny llama" \
    --config "${CONFIG}" --output "${OUT}" --dry-run --json
  assert_success
  [[ "$(build_json_get <(printf '%s' "${output}") inputs.build_id)" == "${first}" ]]
  run build_json_get <(printf '%s' "${output}") inputs.identity.commands.0.argv.1
  assert_output "<toolkit>/export/steps/modelopt_quantize.py"
}

# force_rebuild_killed_at POINT [ENV...]: build A, then a different B with --force killed at POINT.
force_rebuild_killed_at() {
  local point="$1" first
  shift
  build
  assert_success
  first="$(build_json_get "${OUT}/build.json" build_id)"
  sed -i 's/max_batch_size: 8/max_batch_size: 4/' "${CONFIG}"
  env EXPORT_KILL_AT="${point}" "$@" "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" \
    --output "${OUT}" --force >/dev/null 2>&1 && return 1
  OLD_ID="${first}"
}

@test "a --force rebuild killed before its swap leaves the old artifact in place" {
  force_rebuild_killed_at before_swap
  [[ "$(build_json_get "${OUT}/build.json" build_id)" == "${OLD_ID}" ]]
  [[ -f "${OUT}/engine/rank0.engine" ]]
}

@test "a --force rebuild killed right after the exchange leaves the new artifact, whole" {
  force_rebuild_killed_at after_exchange
  [[ "$(build_json_get "${OUT}/build.json" build_id)" != "${OLD_ID}" ]]
  [[ -f "${OUT}/engine/rank0.engine" && -f "${OUT}/serve.sh" ]]
  build --force
  assert_success
  run ls -A "${OUT%/*}"
  refute_output --partial "staging"
}

@test "without the exchange, a kill between the two renames is repaired by the next build" {
  force_rebuild_killed_at after_aside EXPORT_NO_EXCHANGE=1
  [[ ! -e "${OUT}" ]]
  ls -d "${OUT%/*}/.my-model.old-"*
  build --dry-run
  [[ ! -e "${OUT}" ]] # a dry run writes nothing, repairs included
  build
  [[ "${stderr}" == *"restored ${OUT} from .my-model.old-"* ]]
  [[ -f "${OUT}/engine/rank0.engine" ]]
  run ls -A "${OUT%/*}"
  refute_output --partial ".old-"
}

# on_small_disk MIB: OUTPUTS_DIR on a tmpfs of MIB MiB (skipped where mounting is not allowed).
on_small_disk() {
  local mnt="${BATS_TEST_TMPDIR}/small disk"
  mkdir -p "${mnt}"
  mount -t tmpfs -o "size=$1m" tmpfs "${mnt}" 2>/dev/null || skip "cannot mount a tmpfs here (needs root)"
  SMALL_DISK="${mnt}"
  export OUTPUTS_DIR="${mnt}/outputs"
  OUT="${OUTPUTS_DIR}/engines/my-model"
  mkdir -p "${OUTPUTS_DIR}/engines"
}

teardown() {
  [[ -z "${SMALL_DISK:-}" ]] || umount "${SMALL_DISK}" 2>/dev/null || true
}

# fill_to FREE_KIB: leave about FREE_KIB KiB free on the small disk.
fill_to() {
  local avail
  avail="$(df -P -k "${SMALL_DISK}" | awk 'NR == 2 {print $4}')"
  ((avail > $1)) || return 0
  head -c "$(((avail - $1) * 1024))" /dev/zero >"${SMALL_DISK}/filler" 2>/dev/null || true
}

@test "a full disk at the staging stage is one line naming the path and the fix" {
  on_small_disk 4
  fill_to 0
  build
  assert_failure 1
  [[ "${stderr}" == *"no space left on the disk of ${OUTPUTS_DIR}"*"--output on a larger disk"* ]]
  [[ "${stderr}" != *"Traceback"* ]]
}

@test "a full disk during a step is the step's failure with the disk-full hint" {
  on_small_disk 4
  FAKE_TRTLLM_FAIL=convert:fill build
  assert_failure 1
  [[ "${stderr}" == *"step convert failed"* && "${stderr}" == *"hint: the disk is full"* ]]
}

@test "a full disk while publishing is one line naming the path and the fix, no traceback" {
  on_small_disk 4
  FAKE_TRTLLM_FILL_AFTER=build build
  assert_failure 1
  [[ "${stderr}" == *"error: cannot write ${OUTPUTS_DIR}/engines/.my-model.staging-"*": No space left on device ("*"larger disk"* ]]
  [[ "${stderr}" != *"Traceback"* ]]
  [[ ! -e "${OUT}" ]]
}

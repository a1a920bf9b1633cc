#!/usr/bin/env bats
# merge_lora.py as a command: help, exit statuses, atomic output under SIGKILL, re-runs.

load test_helper
bats_require_minimum_version 1.5.0

setup_file() {
  # One tiny base + adapter and one ~270 MB synthetic model for the whole file.
  export MERGE_DATA="${BATS_FILE_TMPDIR}/data"
  mkdir -p "${MERGE_DATA}"
  "${PYTHON}" "${REPO_ROOT}/scripts/dev/tiny_models.py" demo --out "${MERGE_DATA}/tiny" >/dev/null
  "${PYTHON}" "${REPO_ROOT}/scripts/dev/bench_merge.py" synth --size small \
    --out "${MERGE_DATA}/small" 2>/dev/null
}

setup() {
  common_setup
  MERGE="${REPO_ROOT}/scripts/gpu/merge_lora.py"
}

@test "--help prints the usage from the header once and exits 0" {
  run "${PYTHON}" "${MERGE}" --help
  assert_success
  assert_line --index 0 "usage: merge_lora.py --adapter DIR [--adapter DIR ...] --output DIR [--base DIR]"
  assert_output --partial "Exit status: 0 merged"
  [[ "$(grep -c -- '--max-shard-size 5GB\]' <<<"${output}")" -eq 1 ]]
}

# merge_fake_python3 [PYTHONPATH]: a python3 first on PATH that sees no site-packages, only
# PYTHONPATH (the shebang of merge_lora.py finds it, as on a machine without the venv).
merge_fake_python3() {
  printf '#!/usr/bin/env bash\nPYTHONPATH=%q exec %q -S "$@"\n' "${1:-}" "${PYTHON}" \
    >"${FAKE_BIN}/python3"
  chmod +x "${FAKE_BIN}/python3"
}

@test "merge_lora.py runs as written under a python3 with numpy and without torch" {
  local site="${BATS_TEST_TMPDIR}/numpy-only" pkg
  mkdir -p "${site}"
  pkg="$("${PYTHON}" -c 'import numpy, os; print(os.path.dirname(os.path.dirname(numpy.__file__)))')"
  ln -s "${pkg}/numpy" "${site}/numpy"
  [[ ! -d "${pkg}/numpy.libs" ]] || ln -s "${pkg}/numpy.libs" "${site}/numpy.libs"
  merge_fake_python3 "${site}"
  run ! python3 -c 'import torch'
  [[ "$(git -C "${REPO_ROOT}" ls-files -s scripts/gpu/merge_lora.py)" == 100755* ]]
  run --separate-stderr "${MERGE}" --adapter "${MERGE_DATA}/tiny/adapter" \
    --output "${BATS_TEST_TMPDIR}/merged"
  assert_success
  assert_output "${BATS_TEST_TMPDIR}/merged"
  run "${PYTHON}" -c 'import json, sys; i = json.load(open(sys.argv[1])); print(i["engine"], i["versions"]["torch"])' \
    "${BATS_TEST_TMPDIR}/merged/merge_info.json"
  assert_output "numpy None"
}

@test "under a python3 without numpy or torch: one line, exit 2, nothing left behind" {
  merge_fake_python3
  run --separate-stderr "${MERGE}" --adapter "${MERGE_DATA}/tiny/adapter" \
    --output "${BATS_TEST_TMPDIR}/merged"
  assert_failure 2
  assert_output ""
  [[ "${stderr}" == "merge_lora: error: the merge needs numpy (or torch), which "*" cannot import; "* ]]
  [[ "${stderr}" != *$'\n'* ]]
  run ls -A "${BATS_TEST_TMPDIR}"
  refute_output --partial "merged"
}

@test "a missing --output is a usage error: exit 2" {
  run "${PYTHON}" "${MERGE}" --adapter "${MERGE_DATA}/tiny/adapter"
  assert_failure 2
  assert_output --partial "--output"
}

@test "a merge prints the output dir on stdout and logs on stderr" {
  run --separate-stderr "${PYTHON}" "${MERGE}" --adapter "${MERGE_DATA}/tiny/adapter" \
    --output "${BATS_TEST_TMPDIR}/merged"
  assert_success
  assert_output "${BATS_TEST_TMPDIR}/merged"
  [[ "${stderr}" == *"tensors merged"* ]]
  [[ -f "${BATS_TEST_TMPDIR}/merged/merge_info.json" ]]
}

@test "an existing output is refused with exit 2 and left untouched" {
  mkdir -p "${BATS_TEST_TMPDIR}/merged"
  printf 'mine\n' >"${BATS_TEST_TMPDIR}/merged/keep.txt"
  run "${PYTHON}" "${MERGE}" --adapter "${MERGE_DATA}/tiny/adapter" \
    --output "${BATS_TEST_TMPDIR}/merged"
  assert_failure 2
  assert_output --partial "--overwrite"
  run ls -A "${BATS_TEST_TMPDIR}/merged"
  assert_output "keep.txt"
}

@test "a merge killed with SIGKILL mid-way leaves nothing that looks complete; a re-run succeeds" {
  local out="${BATS_TEST_TMPDIR}/merged" stage="${BATS_TEST_TMPDIR}/.merged.partial" pid i
  "${PYTHON}" "${MERGE}" --adapter "${MERGE_DATA}/small/adapter" --output "${out}" --quiet \
    >/dev/null 2>&1 &
  pid=$!
  for ((i = 0; i < 1000; i++)); do
    [[ ! -d "${stage}" ]] || break
    sleep 0.01
  done
  [[ -d "${stage}" ]]
  kill -KILL "${pid}"
  wait "${pid}" || true
  [[ ! -e "${out}" ]]
  [[ ! -e "${stage}/config.json" && ! -e "${stage}/model.safetensors.index.json" ]]
  run "${PYTHON}" "${MERGE}" --adapter "${MERGE_DATA}/small/adapter" --output "${out}" --quiet
  assert_success
  [[ ! -e "${stage}" ]]
  [[ -f "${out}/model.safetensors.index.json" && -f "${out}/merge_info.json" ]]
}

@test "make merge writes outputs/gpu/merged_models/NAME with the given interpreter" {
  local name="bats-merge-$$"
  run make -C "${REPO_ROOT}" merge PYTHON="${PYTHON}" ADAPTER="${MERGE_DATA}/tiny/adapter" \
    NAME="${name}" MERGE_ARGS=--quiet
  assert_success
  [[ -f "${REPO_ROOT}/outputs/gpu/merged_models/${name}/merge_info.json" ]]
  rm -rf "${REPO_ROOT}/outputs/gpu/merged_models/${name}"
}

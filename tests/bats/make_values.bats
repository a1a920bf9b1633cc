#!/usr/bin/env bats
# No value of a make variable is ever executed: every payload form (backticks, $$(...) (make's
# spelling of $(...)), ';', quotes, a newline, make's own $(shell ...), an array subscript for
# bash arithmetic) in every variable reaches a script as text, the payload's marker file is never
# created and the script refuses the value with its exit-2 line.

load test_helper

setup() {
  common_setup
  MARKER="${BATS_TEST_TMPDIR}/pwned"
  PAYLOADS=(
    "\`touch ${MARKER}\`"
    "\$\$(touch ${MARKER})"
    "x; touch ${MARKER}"
    "x\"; touch ${MARKER}; echo \""
    "x'; touch ${MARKER}; echo '"
    $'x\ntouch '"${MARKER}"
    "\$(shell touch ${MARKER})"
    "a[\$\$(touch ${MARKER})]" # runs where bash does arithmetic on it
  )
  # a merged-model dir (only its config.json is looked at before the config is read)
  OUT="${BATS_TEST_TMPDIR}/outputs"
  mkdir -p "${OUT}/gpu/merged_models/m" "${BATS_TEST_TMPDIR}/adapter"
  printf '{}\n' >"${OUT}/gpu/merged_models/m/config.json"
}

# refuses VARIABLE TARGET LINE [VAR=VALUE...]: for every payload, `make TARGET VARIABLE=payload`
# creates no marker, and the recipe's script exits 2 with an error line containing LINE.
refuses() {
  local variable="$1" target="$2" line="$3" payload
  shift 3
  for payload in "${PAYLOADS[@]}"; do
    run make --no-print-directory -C "${REPO_ROOT}" "${target}" PYTHON="${PYTHON}" "$@" "${variable}=${payload}"
    [[ ! -e "${MARKER}" ]] || fail "make ${target} ran the payload in ${variable}=${payload}"
    assert_failure 2
    assert_output --partial "${line}"
    assert_output --partial "[Makefile:" # make's line for the recipe that failed ...
    assert_output --regexp "\] Error 2$" # ... with the script's exit status: 2, bad input
  done
}

@test "each payload form runs its command when pasted into a recipe (so the tests below can fail)" {
  local payload where
  # how the Makefile pasted values before: in double quotes, in single quotes, bare
  cat >"${BATS_TEST_TMPDIR}/Makefile" <<'MAKEFILE'
quoted:
	-@true "$(X)"
single:
	-@true '$(X)'
bare:
	-@true $(X)
MAKEFILE
  for payload in "${PAYLOADS[@]}"; do
    rm -f "${MARKER}"
    for where in quoted single bare; do
      make -s -C "${BATS_TEST_TMPDIR}" "${where}" "X=${payload}" >/dev/null 2>&1 || true
    done
    [[ -e "${MARKER}" ]] || fail "payload ran nowhere: ${payload}"
  done
}

@test "NAME is never executed by make engine, merge, verify, serve or bench" {
  refuses NAME engine "build_tensorrt_llm: error: invalid NAME"
  refuses NAME merge "make merge: error: invalid NAME" ADAPTER="${BATS_TEST_TMPDIR}/adapter"
  refuses NAME verify "build_tensorrt_llm: error: invalid NAME"
  refuses NAME serve "make serve: error: invalid NAME"
  refuses NAME bench "bench_tensorrt_llm: error: invalid NAME"
}

@test "CONFIG and PROFILE are never executed by make doctor or make engine" {
  refuses CONFIG doctor "doctor: config error: "
  refuses CONFIG engine "build_tensorrt_llm: error: config file not found: " NAME=m OUTPUTS_DIR="${OUT}"
  refuses PROFILE doctor "doctor: config error: "
  refuses PROFILE engine ": profiles: no profile " NAME=m OUTPUTS_DIR="${OUT}"
}

@test "DRY_RUN, FORCE and ACCEPT_QUALITY_LOSS are never executed: 1 or 0 only" {
  refuses DRY_RUN engine "make engine: error: DRY_RUN must be 1 or 0, got " NAME=m
  refuses FORCE engine "make engine: error: FORCE must be 1 or 0, got " NAME=m
  refuses ACCEPT_QUALITY_LOSS engine "make engine: error: ACCEPT_QUALITY_LOSS must be 1 or 0, got " NAME=m
}

@test "ADAPTER and MERGE_ARGS are never executed by make merge" {
  refuses ADAPTER merge "make merge: error: ADAPTER " NAME=m
  refuses MERGE_ARGS merge "merge_lora.py: error: unrecognized arguments: " NAME=m \
    ADAPTER="${BATS_TEST_TMPDIR}/adapter"
}

@test "BENCH_ARGS is never executed by make bench-merge or bench-cli" {
  refuses BENCH_ARGS bench-merge "bench_merge.sh: unknown argument: "
  refuses BENCH_ARGS bench-cli "bench_cli: error: give one number of runs"
}

@test "OUTPUTS_DIR, PYTHON and BUILD_PROGRESS_SECONDS are never executed" {
  refuses OUTPUTS_DIR engine "build_tensorrt_llm: error: no merged model at " NAME=m
  refuses OUTPUTS_DIR verify "build_tensorrt_llm: error: no artifact at " NAME=m
  refuses OUTPUTS_DIR serve "make serve: error: no artifact with a serve.sh at " NAME=m
  refuses OUTPUTS_DIR bench "bench_tensorrt_llm: error: no built artifact at " NAME=m
  refuses PYTHON doctor "make doctor: error: PYTHON "
  refuses BUILD_PROGRESS_SECONDS engine "BUILD_PROGRESS_SECONDS must be a whole number" NAME=m
}

@test "make serve needs no interpreter: it runs the artifact's serve.sh (no .venv on a GPU box)" {
  mkdir -p "${OUT}/gpu/tensorrt_llm/m"
  printf '#!/usr/bin/env bash\necho served\n' >"${OUT}/gpu/tensorrt_llm/m/serve.sh"
  chmod +x "${OUT}/gpu/tensorrt_llm/m/serve.sh"
  run make -s --no-print-directory -C "${REPO_ROOT}" serve NAME=m OUTPUTS_DIR="${OUT}" \
    PYTHON="${BATS_TEST_TMPDIR}/no-venv/bin/python"
  assert_success
  assert_output "served"
}

@test "a variable no script reads is not executed either" {
  local payload
  for payload in "${PAYLOADS[@]}"; do
    run make -C "${REPO_ROOT}" help "SOME_VARIABLE=${payload}"
    assert_success
    [[ ! -e "${MARKER}" ]] || fail "make help ran SOME_VARIABLE=${payload}"
  done
}

@test "MERGE_ARGS and BENCH_ARGS become separate arguments, split at any whitespace" {
  # a fake interpreter prints the arguments merge_lora.py would get, one per line
  printf '#!/usr/bin/env bash\nprintf "[%%s]\\n" "$@"\n' >"${FAKE_BIN}/py"
  chmod +x "${FAKE_BIN}/py"
  run make -s -C "${REPO_ROOT}" merge PYTHON=py NAME=m ADAPTER="${BATS_TEST_TMPDIR}/adapter" \
    OUTPUTS_DIR="${OUT}" MERGE_ARGS=$' --quiet\t--dtype  bfloat16\n"--verify" *'
  assert_success
  assert_output "[${REPO_ROOT}/scripts/gpu/merge_lora.py]
[--adapter]
[${BATS_TEST_TMPDIR}/adapter]
[--output]
[${OUT}/gpu/merged_models/m]
[--quiet]
[--dtype]
[bfloat16]
[\"--verify\"]
[*]"
  run make -s --no-print-directory -C "${REPO_ROOT}" bench-cli PYTHON="${PYTHON}" BENCH_ARGS=$'3\n 4'
  assert_output --partial "bench_cli: error: give one number of runs (1 to 999), got '3' '4'"
}

@test "CONFIG and PROFILE reach the scripts as one argument each, spaces included" {
  local config="${BATS_TEST_TMPDIR}/my configs/build config.yaml"
  mkdir -p "${config%/*}"
  cp "${REPO_ROOT}/configs/export/tensorrt_llm.yaml" "${config}"
  run make -s --no-print-directory -C "${REPO_ROOT}" doctor PYTHON="${PYTHON}" CONFIG="${config}" \
    PROFILE="h100 fp8"
  assert_output --partial "doctor: config error: ${config}:"
  assert_output --partial ": profiles: no profile 'h100 fp8'; did you mean 'h100-fp8'?"
  run make -s --no-print-directory -C "${REPO_ROOT}" doctor PYTHON="${PYTHON}" CONFIG="${config}" \
    PROFILE=h100-fp8
  refute_output --partial "config error"
  refute_output --partial "Error 2"
}

@test "DRY_RUN and FORCE take 1 or 0; 0 is off, not on" {
  run make -s --no-print-directory -C "${REPO_ROOT}" engine PYTHON="${PYTHON}" NAME=m \
    OUTPUTS_DIR="${OUT}" CONFIG=absent.yaml DRY_RUN=0 FORCE=0
  assert_output --partial "build_tensorrt_llm: error: config file not found: absent.yaml"
  run make -s --no-print-directory -C "${REPO_ROOT}" engine PYTHON="${PYTHON}" NAME=m DRY_RUN=yes
  assert_output --partial "make engine: error: DRY_RUN must be 1 or 0, got 'yes'"
}

@test "values that bash would use in arithmetic are checked as digits first" {
  # in $((...)) or ((...)), a[$(cmd)] runs cmd: these values never get there
  local payload="a[\$(touch\${IFS}${MARKER})]"
  run "${REPO_ROOT}/scripts/dev/bench_cli.sh" "${payload}"
  assert_failure 2
  assert_output --partial "bench_cli: error: give one number of runs (1 to 999), got "
  BUILD_PROGRESS_SECONDS="${payload}" run "${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh" --name m
  assert_failure 2
  assert_output --partial "build_tensorrt_llm: error: BUILD_PROGRESS_SECONDS must be a whole number"
  [[ ! -e "${MARKER}" ]]
  # the payload is live: bash arithmetic on it runs the command
  bash -c "x=\$1; echo \$((x))" _ "${payload}" >/dev/null 2>&1 || true
  [[ -e "${MARKER}" ]]
}

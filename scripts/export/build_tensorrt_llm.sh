#!/usr/bin/env bash
# Build a TensorRT-LLM artifact from a merged Hugging Face model, checked at every stage.
#
# Usage:
#   build_tensorrt_llm.sh --name NAME [options]      model: outputs/gpu/merged_models/NAME
#   build_tensorrt_llm.sh --model-dir DIR [options]  any merged HF model directory
#   build_tensorrt_llm.sh --doctor [--config FILE] [--profile P] [--json]
#   build_tensorrt_llm.sh --verify --name NAME [--json]
#
# Options:
#   --config FILE     build config (default: configs/export/tensorrt_llm.yaml)
#   --profile P       a named profile of the config (e.g. h100-fp8)
#   --output DIR      artifact dir (default: outputs/gpu/tensorrt_llm/NAME)
#   --dry-run         print the plan (commands, checks, estimates) and stop; no GPU needed
#   --json            machine-readable output (with --dry-run, --doctor, --verify)
#   --force           rebuild even when an identical build exists
#   --keep-staging    keep the intermediate TensorRT-LLM checkpoint (checkpoint/) in the artifact
#   --accept-quality-loss
#                     publish a quantized build that is over its quality gate
#                     (quantization.eval.gate); build.json records it; the build_id is the same
#   --debug           trace every command (set -x with file:line:function)
#   --doctor          check this machine against the config and exit (1 if a check fails)
#   --verify          check a built artifact against this machine, then golden prompts
#   --full            (--verify) sha256 of every file, not sizes and sampled content
#   --allow-skip      (--verify) accept checks that cannot run here (exit 0, recorded as partial)
#   -h, --help        this help
#
# Stages: args, then config, probe and plan (one Python process, lib/prepare.py: every check,
# every problem at once), then (not with --dry-run) identity, staging, one stage per planned step
# (convert or quantize, build), publish (lib/publish.py). Each prints one line with its duration;
# the tools' output goes to logs/<step>.log in the staging dir .NAME.staging-<pid> beside the
# output, which takes the output's place when complete: the output dir is either a whole artifact
# or absent. A build whose inputs (model, config, versions, GPU, commands) match the existing
# build.json, and whose files are all there unchanged, is skipped ("up to date"); a different one
# over an existing output needs --force; a damaged one is rebuilt; one published over its quality
# gate is up to date only with --accept-quality-loss again.
# A step's own progress lines (log lines that start with '==> ') are shown as they come; the
# ModelOpt step's include the quality table of a quantized build (over the gate: exit 1, nothing
# published, the report in the kept staging dir's logs/quality.json).
# Stdout: the artifact dir (with --json: build.json; with --dry-run: the plan).
#
# Environment: PYTHON (default python3), TRTLLM_EXAMPLES_DIR (TensorRT-LLM's examples dir),
#   OUTPUTS_DIR (default: outputs/ of this repository), BUILD_PROGRESS_SECONDS (default 60:
#   how often a running step reports).
# Exit codes: 0 ok, 1 a step failed, 2 bad input (nothing written).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
readonly LIB_DIR="${SCRIPT_DIR}/lib"
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="build_tensorrt_llm"
# Seconds between the progress lines of a running step (tests shorten it); checked in main.
readonly PROGRESS_SECONDS="${BUILD_PROGRESS_SECONDS:-60}"

# shellcheck source=lib/log.sh
source "${LIB_DIR}/log.sh"
# shellcheck source=lib/name.sh
source "${LIB_DIR}/name.sh"
# shellcheck source=lib/lock.sh
source "${LIB_DIR}/lock.sh"
# shellcheck source=lib/staging.sh
source "${LIB_DIR}/staging.sh"

usage() {
  help_from_header "${BASH_SOURCE[0]}"
}

# Parsed arguments (set once by build_parse_args).
MODE="build"
NAME=""
MODEL_DIR=""
CONFIG_FILE="${REPO_ROOT}/configs/export/tensorrt_llm.yaml"
PROFILE=""
OUTPUT_DIR=""
DRY_RUN=0
JSON=0
FORCE=0
KEEP_STAGING=0
ACCEPT_QUALITY_LOSS=0
declare -a VERIFY_FLAGS=()

build_need_value() {
  [[ $# -ge 2 && -n "$2" ]] || die --usage --code 2 "$1 needs a value"
}

build_parse_args() {
  while (($# > 0)); do
    case "$1" in
      --name) build_need_value "$@"; NAME="$2"; shift ;;
      --model-dir) build_need_value "$@"; MODEL_DIR="$2"; shift ;;
      --config) build_need_value "$@"; CONFIG_FILE="$2"; shift ;;
      --profile) build_need_value "$@"; PROFILE="$2"; shift ;;
      --output) build_need_value "$@"; OUTPUT_DIR="$2"; shift ;;
      --dry-run) DRY_RUN=1 ;;
      --json) JSON=1 ;;
      --force) FORCE=1 ;;
      --keep-staging) KEEP_STAGING=1 ;;
      --accept-quality-loss) ACCEPT_QUALITY_LOSS=1 ;;
      --full | --allow-skip) VERIFY_FLAGS+=("$1") ;;
      --debug)
        export PS4='+ ${BASH_SOURCE[0]##*/}:${LINENO}:${FUNCNAME[0]:-main}: '
        set -x
        ;;
      --doctor) MODE="doctor" ;;
      --verify) MODE="verify" ;;
      -h | --help) usage; exit 0 ;;
      *) die --usage --code 2 "unknown argument: $1" ;;
    esac
    shift
  done
  local problem
  if [[ -n "${NAME}" ]] && ! problem="$(name_problem "${NAME}")"; then
    die --code 2 "${problem}"
  fi
}

build_doctor() {
  # --opt=VALUE: a value that starts with '-' stays a value for argparse
  local -a args=("--config=${CONFIG_FILE}" "--output-dir=${OUTPUT_DIR:-${OUTPUTS_DIR}/gpu/tensorrt_llm}")
  [[ -z "${PROFILE}" ]] || args+=("--profile=${PROFILE}")
  ((JSON == 0)) || args+=(--json)
  exec "${PYTHON}" "${SCRIPT_DIR}/doctor.py" "${args[@]}"
}

build_verify() {
  local artifact="${OUTPUT_DIR}"
  local -a args
  if [[ -z "${artifact}" ]]; then
    [[ -n "${NAME}" ]] || die --usage --code 2 "--verify needs --name NAME or --output DIR"
    artifact="${OUTPUTS_DIR}/gpu/tensorrt_llm/${NAME}"
  fi
  [[ -d "${artifact}" ]] || die --code 2 "no artifact at ${artifact}: build it first (make engine NAME=${NAME})"
  args=("--artifact=${artifact}" "${VERIFY_FLAGS[@]}")
  ((JSON == 0)) || args+=(--json)
  exec "${PYTHON}" "${SCRIPT_DIR}/verify.py" "${args[@]}"
}

# Set once by the stages.
OUTPUTS_DIR="${OUTPUTS_DIR:-${REPO_ROOT}/outputs}"
ARTIFACT_NAME=""      # NAME, or the output dir's basename
OUTPUT_PARENT=""
LOCK_FILE=""
LOCK_FD=""
WORK_DIR=""           # private temp dir for what prepare.py hands over; removed on exit
STAGING_PLANNED=""    # the staging dir this build will use (the plan's commands name it)
STAGING=""            # set once the staging dir exists; cleared when it is published
BUILD_ID=""
STEP_PID=""
STEP_RELAYED=0        # progress lines of the running step already shown
CUR_STAGE=""
STAGE_START_US=0
declare -a STEP_NAMES=()

build_now_us() { # <variable>
  printf -v "$1" '%s' "${EPOCHREALTIME/./}"
}

build_seconds_since() { # <variable> <start in µs>: elapsed seconds with one decimal
  local now us
  build_now_us now
  us=$((now - $2))
  printf -v "$1" '%d.%d' $((us / 1000000)) $(((us / 100000) % 10))
}

# build_stage NAME [ARGS]: run build_NAME with ARGS as one stage: a status line with its
# duration on stderr, and a NAME<TAB>SECONDS<TAB>ok line in the stages file for build.json.
# Called plainly (never in a condition) so that errexit stays on inside the stage.
build_stage() {
  local name="$1" label="${2:-$1}" secs
  CUR_STAGE="${label}"
  build_now_us STAGE_START_US
  "build_${name}" "${@:2}"
  build_seconds_since secs "${STAGE_START_US}"
  log "$(printf '%-10s ok   %6ss' "${label}" "${secs}")"
  printf '%s\t%s\tok\n' "${label}" "${secs}" >>"${WORK_DIR}/stages.tsv"
  CUR_STAGE=""
}

# build_py SCRIPT [ARGS]: run a Python helper of lib/; on failure exit with its code (its own
# stderr line already says why; 2 means bad input).
build_py() {
  local script="$1" rc=0
  shift
  "${PYTHON}" "${LIB_DIR}/${script}" "$@" || rc=$?
  ((rc == 0)) || exit "${rc}"
}

build_on_exit() {
  local rc=$? secs
  trap - EXIT
  if [[ -n "${STEP_PID}" ]]; then
    kill -TERM "${STEP_PID}" 2>/dev/null || true
    wait "${STEP_PID}" 2>/dev/null || true
  fi
  if ((rc != 0)) && [[ -n "${CUR_STAGE}" ]]; then
    build_seconds_since secs "${STAGE_START_US}"
    log "$(printf '%-10s FAILED %4ss (exit %s)' "${CUR_STAGE}" "${secs}" "${rc}")"
  fi
  if [[ -n "${STAGING}" && -d "${STAGING}" ]]; then
    if ((rc == 0)); then
      rm -rf -- "${STAGING}"
    else
      log "kept the staging dir for inspection: ${STAGING}"
      log "(the next build of ${ARTIFACT_NAME} removes it; ${OUTPUT_DIR} was not touched)"
    fi
  fi
  [[ -z "${WORK_DIR}" ]] || rm -rf -- "${WORK_DIR}"
  exit "${rc}"
}

build_on_signal() { # <signal name> <number>
  log "interrupted by SIG$1"
  exit $((128 + $2))
}

# ---------------------------------------------------------------------------------- stages

build_args() {
  local problem
  if [[ -z "${MODEL_DIR}" ]]; then
    [[ -n "${NAME}" ]] || die --usage --code 2 "give --name NAME or --model-dir DIR"
    MODEL_DIR="${OUTPUTS_DIR}/gpu/merged_models/${NAME}"
  fi
  [[ -d "${MODEL_DIR}" ]] ||
    die --code 2 "no merged model at ${MODEL_DIR}: merge one first (make merge ADAPTER=... NAME=...) or pass --model-dir DIR"
  [[ -f "${MODEL_DIR}/config.json" ]] ||
    die --code 2 "${MODEL_DIR} has no config.json: not a Hugging Face model dir"
  MODEL_DIR="$(cd -- "${MODEL_DIR}" && pwd)"
  [[ -f "${CONFIG_FILE}" ]] || die --code 2 "config file not found: ${CONFIG_FILE}"
  if [[ -z "${OUTPUT_DIR}" ]]; then
    if [[ -z "${NAME}" ]]; then
      NAME="$(basename -- "${MODEL_DIR}")"
      name_problem "${NAME}" >/dev/null ||
        die --code 2 "cannot name the artifact after the model dir ${NAME@Q}: give --name NAME or --output DIR"
    fi
    OUTPUT_DIR="${OUTPUTS_DIR}/gpu/tensorrt_llm/${NAME}"
  fi
  [[ "${OUTPUT_DIR}" == /* ]] || OUTPUT_DIR="${PWD}/${OUTPUT_DIR}"
  while [[ "${OUTPUT_DIR}" == */ && "${OUTPUT_DIR}" != / ]]; do OUTPUT_DIR="${OUTPUT_DIR%/}"; done
  ARTIFACT_NAME="${NAME:-$(basename -- "${OUTPUT_DIR}")}"
  problem="$(name_problem "$(basename -- "${OUTPUT_DIR}")" "output dir name")" || die --code 2 "${problem}"
  [[ "${OUTPUT_DIR}" != "${MODEL_DIR}" && "${OUTPUT_DIR}/" != "${MODEL_DIR}/"* ]] ||
    die --code 2 "the output dir ${OUTPUT_DIR} would overwrite the model it is built from"
  OUTPUT_PARENT="$(dirname -- "${OUTPUT_DIR}")"
  LOCK_FILE="${OUTPUT_PARENT}/.$(basename -- "${OUTPUT_DIR}").lock"
  STAGING_PLANNED="$(staging_path "${OUTPUT_DIR}")"
}

# build_prepare: config, probe and plan in one process (lib/prepare.py), which prints their
# stage lines itself and leaves in WORK_DIR the step argv files, the build_id and the status.
build_prepare() {
  # --opt=VALUE: a value that starts with '-' stays a value for argparse
  local -a args=("--config=${CONFIG_FILE}" "--model-dir=${MODEL_DIR}" "--output=${OUTPUT_DIR}"
    "--staging=${STAGING_PLANNED}" "--cache-dir=${OUTPUT_PARENT}/.cache" "--work-dir=${WORK_DIR}")
  [[ -z "${PROFILE}" ]] || args+=("--profile=${PROFILE}")
  ((DRY_RUN == 0)) || args+=(--dry-run)
  ((JSON == 0)) || args+=(--json)
  ((ACCEPT_QUALITY_LOSS == 0)) || args+=(--accept-quality-loss)
  build_py prepare.py "${args[@]}"
  ((DRY_RUN == 0)) || exit 0
  STEP_NAMES=()
  mapfile -t STEP_NAMES <"${WORK_DIR}/steps"
  IFS= read -r BUILD_ID <"${WORK_DIR}/build_id"
}

build_print_result() {
  if ((JSON)); then
    cat -- "${OUTPUT_DIR}/build.json"
  else
    printf '%s\n' "${OUTPUT_DIR}"
  fi
}

# build_identity: the lock, then whether the output already holds this build (prepare.py judged
# it; a build that published meanwhile makes it stale, so an output that appeared is refused).
build_identity() {
  local status rc=0
  mkdir -p -- "${OUTPUT_PARENT}" || die "$(staging_write_problem "${OUTPUT_PARENT}")"
  lock_acquire "${LOCK_FILE}" LOCK_FD || rc=$?
  case "${rc}" in
    0) ;;
    1) die "another build of ${OUTPUT_DIR} is running (pid $(lock_holder "${LOCK_FILE}")); wait for it to finish or stop that process" ;;
    3) die "flock (util-linux) is not on PATH: it keeps two builds of one output apart; install util-linux" ;;
    *) die "cannot open the lock file ${LOCK_FILE}" ;;
  esac
  IFS= read -r status <"${WORK_DIR}/status"
  case "${status}" in
    absent | damaged)
      [[ ! -e "${OUTPUT_DIR}" || "${status}" == damaged ]] ||
        die "${OUTPUT_DIR} appeared while this build was preparing (another build published it); run again"
      ;;
    same)
      if ((FORCE == 0)); then
        log "up to date: ${OUTPUT_DIR} already holds build ${BUILD_ID:0:19} (--force rebuilds)"
        CUR_STAGE=""
        build_print_result
        exit 0
      fi
      ;;
    different)
      ((FORCE)) || die --code 2 "${OUTPUT_DIR} holds a different build (other model, config or versions): rerun with --force to replace it, or choose another --name/--output"
      ;;
    over_gate)
      ((FORCE)) || die --code 2 "${OUTPUT_DIR} holds this build, published over its quality gate with --accept-quality-loss (build.json \"quality\"): rerun with --accept-quality-loss to keep it, or --force to rebuild and measure again"
      ;;
    *)
      ((FORCE)) || die --code 2 "${OUTPUT_DIR} exists but has no build.json (not made by this tool): move it away or rerun with --force to replace it"
      ;;
  esac
}

build_staging() {
  local dir
  staging_clear_stale "${OUTPUT_DIR}"
  # trtllm-build writes the timing cache but does not create its dir
  while IFS= read -r dir; do
    [[ -z "${dir}" ]] || mkdir -p -- "${dir}" || die "$(staging_write_problem "${dir}")"
  done <"${WORK_DIR}/dirs"
  mkdir -p -- "${STAGING_PLANNED}/logs" || die "$(staging_write_problem "${STAGING_PLANNED}")"
  STAGING="${STAGING_PLANNED}"
  cp -- "${WORK_DIR}/plan.json" "${STAGING}/logs/plan.json" ||
    die "$(staging_write_problem "${STAGING}")"
}

# build_step NAME: run one planned command in the staging dir, its output in logs/NAME.log.
build_step() {
  local name="$1" log="${STAGING}/logs/$1.log" rc=0
  local -a argv
  mapfile -d '' -t argv <"${WORK_DIR}/argv.${name}"
  printf '$ %s\n' "${argv[*]@Q}" >"${log}"
  log "$(printf '%-10s ... (log: %s)' "${name}" "${log}")"
  (cd -- "${STAGING}" && exec "${PYTHON}" "${SCRIPT_DIR}/steps/run_step.py" --log "${log}" \
    --stats "${STAGING}/logs/${name}.stats.json" -- "${argv[@]}") {LOCK_FD}>&- &
  STEP_PID=$!
  build_step_progress "${name}" "${log}"
  wait "${STEP_PID}" || rc=$?
  STEP_PID=""
  ((rc == 0)) || build_step_failed "${name}" "${log}" "${rc}"
}

# build_step_progress NAME LOG: while the step runs, a line every PROGRESS_SECONDS with the time
# so far and the log's last line, so a 40-minute build is visibly alive.
build_step_progress() {
  local name="$1" log="$2" start now next last="" polls=0
  build_now_us start
  next=$((start + PROGRESS_SECONDS * 1000000))
  STEP_RELAYED=0
  while kill -0 "${STEP_PID}" 2>/dev/null; do
    sleep 0.2
    polls=$((polls + 1))
    ((polls % 5)) || build_step_relay "${name}" "${log}"
    build_now_us now
    ((now >= next)) || continue
    next=$((now + PROGRESS_SECONDS * 1000000))
    last="$(tail -n 1 -- "${log}" 2>/dev/null | tr -d '\r' | cut -c 1-100)" || last=""
    log "$(printf '%-10s ... %ds so far; log: %s' "${name}" $(((now - start) / 1000000)) "${last}")"
  done
  build_step_relay "${name}" "${log}"
}

# build_step_relay NAME LOG: show the step's progress lines (log lines that start with '==> ')
# written since the last call; STEP_RELAYED counts those already shown.
build_step_relay() {
  local name="$1" log="$2" i
  local -a lines
  mapfile -t lines < <(grep -a '^==> ' -- "${log}" 2>/dev/null || true)
  for ((i = STEP_RELAYED; i < ${#lines[@]}; i++)); do
    log "$(printf '%-10s %s' "${name}" "${lines[i]#==> }")"
  done
  STEP_RELAYED=${#lines[@]}
}

build_step_failed() { # <step> <log> <exit code>
  local name="$1" log="$2" rc="$3" hint=""
  log "step ${name} failed with exit code ${rc}; its log: ${log}"
  printf -- '---- last 20 lines of %s ----\n' "${log}" >&2
  tail -n 20 -- "${log}" >&2 || true
  printf -- '----\n' >&2
  if hint="$("${PYTHON}" "${LIB_DIR}/hints.py" --log "${log}" --exit-code "${rc}" --step "${name}")"; then
    log "hint: ${hint}"
  else
    log "hint: no known error signature; read the log above (and make doctor for the environment)"
  fi
  exit 1
}

# build_publish: lib/publish.py completes the staging dir (tokenizer, serve.sh, build.json) and
# puts it in the output's place (an exchange with an old one for --force).
build_publish() {
  local -a args=(--work-dir "${WORK_DIR}" --staging "${STAGING}")
  ((KEEP_STAGING == 0)) || args+=(--keep-checkpoint)
  build_py publish.py "${args[@]}" >/dev/null
  STAGING=""
}

build_main() {
  local name
  WORK_DIR="$(mktemp -d "${TMPDIR:-/tmp}/build_tensorrt_llm.XXXXXX")"
  trap build_on_exit EXIT
  trap 'build_on_signal INT 2' INT
  trap 'build_on_signal TERM 15' TERM
  trap 'build_on_signal HUP 1' HUP
  : >"${WORK_DIR}/stages.tsv"
  build_stage args
  build_prepare
  build_stage identity
  build_stage staging
  for name in "${STEP_NAMES[@]}"; do
    build_stage step "${name}"
  done
  build_stage publish
  log "published ${OUTPUT_DIR} (build ${BUILD_ID:0:19}); serve it with ${OUTPUT_DIR}/serve.sh"
  build_print_result
}

main() {
  PYTHON="${PYTHON:-python3}"
  # steps run inside the staging dir: a relative interpreter path must not depend on the cwd
  if [[ "${PYTHON}" == */* && "${PYTHON}" != /* ]]; then
    PYTHON="${PWD}/${PYTHON}"
  fi
  export PYTHON
  [[ "${PROGRESS_SECONDS}" =~ ^[1-9][0-9]{0,5}$ ]] ||
    die --code 2 "BUILD_PROGRESS_SECONDS must be a whole number of seconds (1 to 999999), got ${PROGRESS_SECONDS@Q}"
  build_parse_args "$@"
  case "${MODE}" in
    doctor) build_doctor ;;
    verify) build_verify ;;
    *) build_main ;;
  esac
}

main "$@"

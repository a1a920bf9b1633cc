#!/usr/bin/env bash
# Benchmark merge_lora.py against `cp -r` + sync (the I/O floor) and PEFT's merge.
#
# Usage: scripts/dev/bench_merge.sh [--size 1.5b|8b|0.6b|small] [--rss-size SIZE|none]
#                                   [--small-size SIZE|none] [--runs N] [--peft-runs N]
#                                   [--device cpu|cuda] [--workdir DIR] [--keep]
#
# Synthesises a Llama-shaped bf16 model of --size (default 1.5b: 3 GB in two shards; 8b:
# 15 GiB in four) and an r=16 all-linear LoRA adapter, then times, interleaved, N runs each
# of: cp -r + sync, merge_lora.py (plus merge_lora.py --device cuda with --device cuda), and
# PEFT load + merge_and_unload + save_pretrained (on the GPU too with --device cuda).
# Every run is followed by sync inside its timing. Memory: the maximum RSS of the largest
# process (ru_maxrss: anonymous and file-backed pages) and the peak Pss of the process tree
# (polled; merge_lora.py's worker processes together, shared pages counted once: what a
# container's memory limit sees). merge_lora.py alone also runs on --rss-size (default
# 0.6b: the same layer shapes, fewer layers) to show its memory does not grow with the
# model, and on --small-size (default small: 270 MB) for its start-up. Then merge_lora.py's
# output is compared tensor by tensor with PEFT's (and, with --device cuda, with the CPU's).
# Prints a table and the targets (stdout); progress and logs go to stderr and WORKDIR/logs.
#
# Temp data goes under --workdir, else $BENCH_MERGE_DIR, else a new temp dir; removed at the
# end unless --keep. Runs with $PYTHON (default python3): torch, safetensors, transformers,
# peft, numpy; no venv, pydantic or pytest needed (NVIDIA's TensorRT-LLM container has them).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly HELPER="${REPO_ROOT}/scripts/dev/bench_merge.py"
readonly MERGE="${REPO_ROOT}/scripts/gpu/merge_lora.py"
readonly PROG="bench_merge.sh"

BENCH_WORKDIR=""
BENCH_KEEP=0
BENCH_SIZE="1.5b"
BENCH_RSS_SIZE="0.6b"
BENCH_SMALL_SIZE="small"
BENCH_RUNS=3
BENCH_PEFT_RUNS=""
BENCH_DEVICE="cpu"

die() {
  printf '%s: %s\n' "${PROG}" "$*" >&2
  exit 2
}

bench_usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

bench_cleanup() {
  if [[ -n "${BENCH_WORKDIR}" && "${BENCH_KEEP}" -eq 0 ]]; then
    rm -rf "${BENCH_WORKDIR}"
  elif [[ -n "${BENCH_WORKDIR}" ]]; then
    printf '%s: kept %s\n' "${PROG}" "${BENCH_WORKDIR}" >&2
  fi
}

bench_log() {
  printf '%s: %s\n' "${PROG}" "$*" >&2
}

bench_parse_args() {
  while (($# > 0)); do
    case "$1" in
      --size) BENCH_SIZE="${2:?--size needs a value}" && shift ;;
      --rss-size) BENCH_RSS_SIZE="${2:?--rss-size needs a value}" && shift ;;
      --small-size) BENCH_SMALL_SIZE="${2:?--small-size needs a value}" && shift ;;
      --runs) BENCH_RUNS="${2:?--runs needs a value}" && shift ;;
      --peft-runs) BENCH_PEFT_RUNS="${2:?--peft-runs needs a value}" && shift ;;
      --device) BENCH_DEVICE="${2:?--device needs a value}" && shift ;;
      --workdir) BENCH_WORKDIR="${2:?--workdir needs a value}" && shift ;;
      --keep) BENCH_KEEP=1 ;;
      -h | --help) bench_usage && exit 0 ;;
      *) bench_usage >&2 && die "unknown argument: $1" ;;
    esac
    shift
  done
  [[ "${BENCH_RUNS}" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
  [[ "${BENCH_DEVICE}" == cpu || "${BENCH_DEVICE}" == cuda ]] || die "--device must be cpu or cuda"
  if [[ -z "${BENCH_PEFT_RUNS}" ]]; then
    BENCH_PEFT_RUNS="${BENCH_RUNS}"
    [[ "${BENCH_SIZE}" != 8b ]] || BENCH_PEFT_RUNS=1
  fi
  [[ "${BENCH_PEFT_RUNS}" =~ ^[0-9]+$ ]] || die "--peft-runs must be an integer"
}

# bench_measure LABEL SIZE RUN OUTDIR KEEP CMD...: one timed run appended to results.jsonl;
# OUTDIR is removed afterwards unless KEEP is 1 (disk: an 8B model is 15 GiB per copy).
bench_measure() {
  local label="$1" size="$2" run="$3" outdir="$4" keep="$5"
  shift 5
  rm -rf "${outdir}"
  sync
  "${PYTHON}" "${HELPER}" measure --label "${label}" --size "${size}" --run "${run}" \
    --log "${BENCH_WORKDIR}/logs/${label}-${size}.log" -- "$@" >>"${BENCH_WORKDIR}/results.jsonl"
  bench_log "$(tail -n 1 "${BENCH_WORKDIR}/results.jsonl")"
  [[ "${keep}" == 1 ]] || rm -rf "${outdir}"
}

# bench_free_bytes DIR: free bytes on DIR's filesystem.
bench_free_bytes() {
  df -P -B1 "$1" | awk 'NR == 2 { print $4 }'
}

# bench_synth SIZE: a fresh synthetic model + adapter in WORKDIR/SIZE (the previous one removed).
bench_synth() {
  rm -rf "${BENCH_WORKDIR:?}"/*/base "${BENCH_WORKDIR:?}"/*/adapter
  bench_log "synthesising a $1 model + adapter in ${BENCH_WORKDIR}/$1"
  "${PYTHON}" "${HELPER}" synth --size "$1" --out "${BENCH_WORKDIR}/$1"
  sync
}

# bench_compared_run RUN: copy, merge_lora.py (cpu, and cuda with --device cuda), PEFT.
bench_compared_run() {
  local run="$1" size="${BENCH_SIZE}" data="${BENCH_WORKDIR}/${BENCH_SIZE}"
  local out="${BENCH_WORKDIR}/out" keep
  local -a merge=("${PYTHON}" "${MERGE}" --adapter "${data}/adapter" --output "${out}" --quiet)
  local -a peft=("${PYTHON}" "${HELPER}" peft --base "${data}/base" --adapter "${data}/adapter"
    --output "${out}.peft")
  bench_measure copy "${size}" "${run}" "${out}" 0 cp -r "${data}/base" "${out}"
  bench_measure merge_lora "${size}" "${run}" "${out}" 0 "${merge[@]}"
  if [[ "${BENCH_DEVICE}" == cuda ]]; then
    bench_measure merge_lora_cuda "${size}" "${run}" "${out}" 0 "${merge[@]}" --device cuda
  fi
  ((run <= BENCH_PEFT_RUNS)) || return 0
  # Keep the last PEFT output (the GPU's with --device cuda) for the comparison.
  keep=0
  [[ "${BENCH_DEVICE}" == cuda || "${run}" -ne "${BENCH_PEFT_RUNS}" ]] || keep=1
  bench_measure peft "${size}" "${run}" "${out}.peft" "${keep}" "${peft[@]}"
  if [[ "${BENCH_DEVICE}" == cuda ]]; then
    keep=0
    [[ "${run}" -ne "${BENCH_PEFT_RUNS}" ]] || keep=1
    bench_measure peft_cuda "${size}" "${run}" "${out}.peft" "${keep}" "${peft[@]}" --device cuda
  fi
}

# bench_compare NAME DIR_A DIR_B: tensor-by-tensor comparison into WORKDIR/NAME.json.
bench_compare() {
  bench_log "$1: $2 vs $3, tensor by tensor"
  "${PYTHON}" "${HELPER}" compare "$2" "$3" >"${BENCH_WORKDIR}/$1.json"
  cat "${BENCH_WORKDIR}/$1.json" >&2
}

# bench_compare_outputs: merge_lora.py (--device) vs PEFT, then (cuda) the CPU merge vs cuda.
bench_compare_outputs() {
  local data="${BENCH_WORKDIR}/${BENCH_SIZE}" out="${BENCH_WORKDIR}/out" model_bytes
  local -a merge=("${PYTHON}" "${MERGE}" --adapter "${data}/adapter" --quiet)
  model_bytes="$(du -sb "${data}/base" | awk '{ print $1 }')"
  [[ -d "${out}.peft" ]] || return 0
  if (("$(bench_free_bytes "${BENCH_WORKDIR}")" <= model_bytes * 11 / 10)); then
    bench_log "not enough free disk for the tensor-by-tensor comparison with PEFT; skipped"
    return 0
  fi
  "${merge[@]}" --output "${out}" --device "${BENCH_DEVICE}" >/dev/null
  bench_compare "compare_peft" "${out}" "${out}.peft"
  rm -rf "${out}.peft"
  if [[ "${BENCH_DEVICE}" == cuda ]]; then
    "${merge[@]}" --output "${out}.cpu" --device cpu >/dev/null
    bench_compare "compare_cpu_cuda" "${out}.cpu" "${out}"
  fi
  rm -rf "${out}" "${out}.cpu"
}

# bench_merge_only SIZE: copy and merge_lora.py (cpu) on another size (memory, start-up).
bench_merge_only() {
  local size="$1" run data="${BENCH_WORKDIR}/$1" out="${BENCH_WORKDIR}/out"
  bench_synth "${size}"
  for ((run = 1; run <= BENCH_RUNS; run++)); do
    bench_measure copy "${size}" "${run}" "${out}" 0 cp -r "${data}/base" "${out}"
    bench_measure merge_lora "${size}" "${run}" "${out}" 0 \
      "${PYTHON}" "${MERGE}" --adapter "${data}/adapter" --output "${out}" --quiet
  done
}

main() {
  local run size name
  PYTHON="${PYTHON:-python3}"
  bench_parse_args "$@"
  BENCH_WORKDIR="${BENCH_WORKDIR:-${BENCH_MERGE_DIR:-}}"
  if [[ -n "${BENCH_WORKDIR}" ]]; then
    mkdir -p "${BENCH_WORKDIR}"
    BENCH_WORKDIR="$(mktemp -d "${BENCH_WORKDIR%/}/bench-merge.XXXXXX")"
  else
    BENCH_WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/bench-merge.XXXXXX")"
  fi
  trap bench_cleanup EXIT
  mkdir -p "${BENCH_WORKDIR}/logs"

  bench_synth "${BENCH_SIZE}"
  for ((run = 1; run <= BENCH_RUNS; run++)); do
    bench_compared_run "${run}"
  done
  bench_compare_outputs
  for size in "${BENCH_RSS_SIZE}" "${BENCH_SMALL_SIZE}"; do
    [[ "${size}" == none || "${size}" == "${BENCH_SIZE}" ]] || bench_merge_only "${size}"
  done
  "${PYTHON}" "${HELPER}" table "${BENCH_WORKDIR}/results.jsonl"
  for name in compare_peft compare_cpu_cuda; do
    [[ -f "${BENCH_WORKDIR}/${name}.json" ]] || continue
    printf '\n%s: %s\n' "${name}" "$(cat "${BENCH_WORKDIR}/${name}.json")"
  done
}

main "$@"

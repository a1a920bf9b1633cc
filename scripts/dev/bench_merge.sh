#!/usr/bin/env bash
# Benchmark merge_lora.py against `cp -r` + sync (the I/O floor) and PEFT's merge.
#
# Usage: scripts/dev/bench_merge.sh [--size 1.5b|8b|0.6b|small] [--rss-size SIZE|none]
#                                   [--runs N] [--peft-runs N] [--device cpu|cuda]
#                                   [--workdir DIR] [--keep]
#
# Synthesises a Llama-shaped bf16 model of --size (default 1.5b: 3 GB in two shards; 8b:
# 15 GiB in four) and an r=16 all-linear LoRA adapter, then times, interleaved, N runs each
# of: cp -r + sync, merge_lora.py (plus merge_lora.py --device cuda with --device cuda), and
# PEFT load + merge_and_unload + save_pretrained (on the GPU too with --device cuda).
# Every run is followed by sync inside its timing. Peak memory is RssAnon of the process
# tree (polled) and ru_maxrss. merge_lora.py alone also runs on --rss-size (default 0.6b:
# the same layer shapes, fewer layers) to show its memory does not grow with the model.
# Prints a table and the targets (stdout); progress and logs go to stderr and WORKDIR/logs.
#
# Temp data goes under --workdir, else $BENCH_MERGE_DIR, else a new temp dir; removed at the
# end unless --keep. Runs with $PYTHON (default python3): torch, safetensors, transformers,
# peft; no venv, pydantic or pytest needed (NVIDIA's TensorRT-LLM container has them all).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly HELPER="${REPO_ROOT}/scripts/dev/bench_merge.py"
readonly MERGE="${REPO_ROOT}/scripts/gpu/merge_lora.py"
readonly PROG="bench_merge.sh"

BENCH_WORKDIR=""
BENCH_KEEP=0

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

main() {
  local size="1.5b" rss_size="0.6b" runs=3 peft_runs="" device="cpu" run data out keep
  local model_bytes
  PYTHON="${PYTHON:-python3}"
  while (($# > 0)); do
    case "$1" in
      --size) size="${2:?--size needs a value}" && shift ;;
      --rss-size) rss_size="${2:?--rss-size needs a value}" && shift ;;
      --runs) runs="${2:?--runs needs a value}" && shift ;;
      --peft-runs) peft_runs="${2:?--peft-runs needs a value}" && shift ;;
      --device) device="${2:?--device needs a value}" && shift ;;
      --workdir) BENCH_WORKDIR="${2:?--workdir needs a value}" && shift ;;
      --keep) BENCH_KEEP=1 ;;
      -h | --help) bench_usage && return 0 ;;
      *) bench_usage >&2 && die "unknown argument: $1" ;;
    esac
    shift
  done
  [[ "${runs}" =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer"
  [[ "${device}" == cpu || "${device}" == cuda ]] || die "--device must be cpu or cuda"
  if [[ -z "${peft_runs}" ]]; then
    peft_runs="${runs}"
    [[ "${size}" != 8b ]] || peft_runs=1
  fi
  [[ "${peft_runs}" =~ ^[0-9]+$ ]] || die "--peft-runs must be an integer"

  BENCH_WORKDIR="${BENCH_WORKDIR:-${BENCH_MERGE_DIR:-}}"
  if [[ -n "${BENCH_WORKDIR}" ]]; then
    mkdir -p "${BENCH_WORKDIR}"
    BENCH_WORKDIR="$(mktemp -d "${BENCH_WORKDIR%/}/bench-merge.XXXXXX")"
  else
    BENCH_WORKDIR="$(mktemp -d "${TMPDIR:-/tmp}/bench-merge.XXXXXX")"
  fi
  trap bench_cleanup EXIT
  mkdir -p "${BENCH_WORKDIR}/logs"
  data="${BENCH_WORKDIR}/${size}"
  out="${BENCH_WORKDIR}/out"

  bench_log "synthesising a ${size} model + adapter in ${data}"
  "${PYTHON}" "${HELPER}" synth --size "${size}" --out "${data}"
  sync
  model_bytes="$(du -sb "${data}/base" | awk '{ print $1 }')"
  for ((run = 1; run <= runs; run++)); do
    bench_measure copy "${size}" "${run}" "${out}" 0 cp -r "${data}/base" "${out}"
    bench_measure merge_lora "${size}" "${run}" "${out}" 0 \
      "${PYTHON}" "${MERGE}" --adapter "${data}/adapter" --output "${out}" --quiet
    if [[ "${device}" == cuda ]]; then
      bench_measure merge_lora_cuda "${size}" "${run}" "${out}" 0 \
        "${PYTHON}" "${MERGE}" --adapter "${data}/adapter" --output "${out}" --quiet --device cuda
    fi
    if ((run <= peft_runs)); then
      keep=0
      [[ "${device}" == cuda || "${run}" -ne "${peft_runs}" ]] || keep=1
      bench_measure peft "${size}" "${run}" "${out}.peft" "${keep}" \
        "${PYTHON}" "${HELPER}" peft --base "${data}/base" --adapter "${data}/adapter" \
        --output "${out}.peft"
      if [[ "${device}" == cuda ]]; then
        keep=0
        [[ "${run}" -ne "${peft_runs}" ]] || keep=1
        bench_measure peft_cuda "${size}" "${run}" "${out}.peft" "${keep}" \
          "${PYTHON}" "${HELPER}" peft --base "${data}/base" --adapter "${data}/adapter" \
          --output "${out}.peft" --device cuda
      fi
    fi
  done
  if [[ -d "${out}.peft" ]] && (("$(bench_free_bytes "${BENCH_WORKDIR}")" > model_bytes * 11 / 10)); then
    "${PYTHON}" "${MERGE}" --adapter "${data}/adapter" --output "${out}" --quiet \
      --device "${device}" >/dev/null
    bench_log "merge_lora (${device}) vs PEFT (${device}), tensor by tensor:"
    "${PYTHON}" "${HELPER}" compare "${out}" "${out}.peft" >"${BENCH_WORKDIR}/compare.json"
    cat "${BENCH_WORKDIR}/compare.json" >&2
  elif [[ -d "${out}.peft" ]]; then
    bench_log "not enough free disk for the tensor-by-tensor comparison with PEFT; skipped"
  fi
  rm -rf "${out}" "${out}.peft"
  if [[ "${rss_size}" != none && "${rss_size}" != "${size}" ]]; then
    rm -rf "${data}"
    data="${BENCH_WORKDIR}/${rss_size}"
    bench_log "synthesising a ${rss_size} model + adapter for the memory comparison"
    "${PYTHON}" "${HELPER}" synth --size "${rss_size}" --out "${data}"
    sync
    for ((run = 1; run <= runs; run++)); do
      bench_measure copy "${rss_size}" "${run}" "${out}" 0 cp -r "${data}/base" "${out}"
      bench_measure merge_lora "${rss_size}" "${run}" "${out}" 0 \
        "${PYTHON}" "${MERGE}" --adapter "${data}/adapter" --output "${out}" --quiet
    done
    rm -rf "${out}"
  fi
  "${PYTHON}" "${HELPER}" table "${BENCH_WORKDIR}/results.jsonl" \
    --target-ratio "$([[ "${size}" == 8b ]] && printf 1.5 || printf 2.0)"
  if [[ -f "${BENCH_WORKDIR}/compare.json" ]]; then
    printf '\nmerge_lora vs PEFT, tensor by tensor: %s\n' "$(cat "${BENCH_WORKDIR}/compare.json")"
  fi
}

main "$@"

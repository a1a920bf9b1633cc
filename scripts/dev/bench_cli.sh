#!/usr/bin/env bash
# Benchmark the quick commands: make doctor and an 8B --dry-run, on this (CPU) machine.
#
# Usage: scripts/dev/bench_cli.sh [RUNS]
#
# Targets (issue texts): doctor under 1 s, --dry-run of an 8B model under 2 s, a bad config (10 MiB,
# billion laughs) refused under 1 s, Python start included. Prints the median
# and the range of RUNS runs (default 5) of each, wall clock. Uses $PYTHON (the Makefile sets it).
# The 8B model is Llama-3.1-8B's published config.json (tests/fixtures/hf_configs), no weights.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly BUILD="${REPO_ROOT}/scripts/export/build_tensorrt_llm.sh"
readonly CONFIG_HELPER="${REPO_ROOT}/scripts/export/check_config.py"

bench_cleanup() {
  [[ -z "${BENCH_TMP:-}" ]] || rm -rf -- "${BENCH_TMP}"
}

# bench_time LABEL OK_CODES CMD...: run CMD RUNS times (output discarded), print median and
# range; an exit status outside OK_CODES (e.g. "0 1") stops the benchmark.
bench_time() {
  local label="$1" ok_codes="$2" i start end status
  local -a ms=()
  shift 2
  for ((i = 0; i < RUNS; i++)); do
    start="$(date +%s%N)"
    status=0
    "$@" >/dev/null 2>"${BENCH_TMP}/stderr" || status=$?
    end="$(date +%s%N)"
    if [[ " ${ok_codes} " != *" ${status} "* ]]; then
      cat "${BENCH_TMP}/stderr" >&2
      printf 'bench_cli: %s exited %d\n' "${label}" "${status}" >&2
      return 1
    fi
    ms+=("$(((end - start) / 1000000))")
  done
  mapfile -t ms < <(printf '%s\n' "${ms[@]}" | sort -n)
  printf '%-34s median %5d ms   min %5d ms   max %5d ms   (%d runs)\n' "${label}" \
    "${ms[$((RUNS / 2))]}" "${ms[0]}" "${ms[$((RUNS - 1))]}" "${RUNS}"
}

main() {
  RUNS="${1:-5}"
  # RUNS goes into arithmetic, where a[$(cmd)] would run cmd: digits only
  if [[ $# -gt 1 || ! "${RUNS}" =~ ^[1-9][0-9]{0,2}$ ]]; then
    printf 'bench_cli: error: give one number of runs (1 to 999), got %s\n' "${*@Q}" >&2
    exit 2
  fi
  BENCH_TMP="$(mktemp -d)"
  trap bench_cleanup EXIT
  mkdir -p "${BENCH_TMP}/llama-3.1-8b"
  cp "${REPO_ROOT}/tests/fixtures/hf_configs/llama-3.1-8b.json" "${BENCH_TMP}/llama-3.1-8b/config.json"
  # the build wants the tokenizer beside the weights: borrow a tiny one
  "${PYTHON:-python3}" "${REPO_ROOT}/scripts/dev/tiny_models.py" model --out "${BENCH_TMP}/tiny" >/dev/null 2>&1
  cp "${BENCH_TMP}/tiny/"tokenizer* "${BENCH_TMP}/llama-3.1-8b/"
  cd "${REPO_ROOT}"
  # doctor exits 1 on a machine without a GPU or TensorRT-LLM; the time is what is measured
  bench_time "make doctor" "0 1 2" make --no-print-directory doctor
  bench_time "build --dry-run (Llama-3.1-8B)" 0 "${BUILD}" --model-dir "${BENCH_TMP}/llama-3.1-8b" \
    --output "${BENCH_TMP}/out" --dry-run
  # bad configs are refused fast, whatever their size or shape (exit 2)
  head -c $((10 * 1024 * 1024)) /dev/zero | tr '\0' '#' >"${BENCH_TMP}/ten-mib.yaml"
  bench_time "refuse a 10 MiB config" 2 "${PYTHON:-python3}" "${CONFIG_HELPER}" \
    --config "${BENCH_TMP}/ten-mib.yaml"
  bench_time "refuse a billion-laughs config" 2 "${PYTHON:-python3}" "${CONFIG_HELPER}" \
    --config "${REPO_ROOT}/tests/fixtures/configs/bad/billion-laughs.yaml"
}

main "$@"

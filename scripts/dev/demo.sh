#!/usr/bin/env bash
# Run the toolkit on a built-in tiny example, end to end, under outputs/demo/.
#
# Usage: scripts/dev/demo.sh
#
# Makes a tiny random Llama-shaped base model and a LoRA adapter for it (no download),
# then prints where everything went. Uses $PYTHON (the Makefile sets it).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
readonly REPO_ROOT
readonly DEMO_DIR="${REPO_ROOT}/outputs/demo"

demo_step() {
  printf '\n== demo: %s\n' "$*" >&2
}

main() {
  local python="${PYTHON:-python3}"
  cd "${REPO_ROOT}"
  rm -rf "${DEMO_DIR}"
  mkdir -p "${DEMO_DIR}"
  demo_step "tiny base model and LoRA adapter"
  "${python}" scripts/dev/tiny_models.py demo --out "${DEMO_DIR}" >/dev/null
  printf '\ndemo: done. What went where:\n' >&2
  printf '  base model     %s\n' "outputs/demo/base"
  printf '  adapter        %s\n' "outputs/demo/adapter"
}

main "$@"

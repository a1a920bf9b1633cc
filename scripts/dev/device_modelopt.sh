#!/usr/bin/env bash
# GPU run: ModelOpt FP8 PTQ + export_hf_checkpoint on a synthetic ~120M-parameter Llama, then the
# exported layout checked with modelopt_quantize.py check-layout; figures and a JSON report.
#
# Usage (from the repository root, on the GPU machine; wheels for ModelOpt and its needs in .whl/):
#   bash scripts/dev/device_modelopt.sh
#
# Environment:
#   OUT          where the report and logs go (default: outputs/dev/device_modelopt)
#   PYTHON       interpreter with torch (CUDA) and transformers (default: python3)
#   SITE_DIR     where the .whl/ wheels are installed (default: /tmp/site; added to PYTHONPATH)
#   FORMATS      space-separated qformats to run (default: "fp8"; e.g. "fp8 nvfp4")
#   CALIB_SIZE   calibration samples (default 64), CALIB_LEN tokens per sample (default 256)
#
# Writes to OUT: device_modelopt.json (schema_version 1: environment, model, per-format timings,
# sizes, peak GPU memory, layout checks), one log per step, the exported checkpoints' config.json
# and hf_quant_config.json. Exit 0 when every format quantized, exported and passed its checks.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly SCRIPT_DIR
REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
readonly REPO_ROOT
readonly PROG="device_modelopt"
readonly QUANTIZE="${REPO_ROOT}/scripts/export/steps/modelopt_quantize.py"

# shellcheck source=../export/lib/log.sh
source "${REPO_ROOT}/scripts/export/lib/log.sh" # log, die
# shellcheck source=carried_wheels.sh
source "${SCRIPT_DIR}/carried_wheels.sh"

# dm_make_model DIR CALIB: a random Llama (hidden 768, 12 layers, GQA 12/4, vocab 32000, bf16)
# with a word-level tokenizer, and a calibration .jsonl of random words from its vocabulary.
dm_make_model() {
  local dir="$1" calib="$2"
  "${PYTHON}" - "${dir}" "${calib}" "${CALIB_SIZE}" <<'PY'
import json, random, sys
from pathlib import Path
import torch
from transformers import AutoModelForCausalLM, GenerationConfig, LlamaConfig
import tiny_models

out, calib, n = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
vocab = 32000
config = LlamaConfig(hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
                     num_attention_heads=12, num_key_value_heads=4, vocab_size=vocab,
                     max_position_embeddings=2048, bos_token_id=1, eos_token_id=2)
torch.manual_seed(0)
model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
model.save_pretrained(out)
GenerationConfig(bos_token_id=1, eos_token_id=2, pad_token_id=3).save_pretrained(out)
tiny_models.make_tokenizer(out, vocab)
rng = random.Random(0)
with calib.open("w") as fh:
    for _ in range(n):
        fh.write(json.dumps({"text": " ".join(f"w{rng.randrange(vocab - 16)}" for _ in range(400))}) + "\n")
print(sum(p.numel() for p in model.parameters()))
PY
}

# dm_run_format FORMAT: quantize + export (hf), then the layout check; both reports into OUT.
dm_run_format() {
  local fmt="$1" start end rc=0
  local export_dir="${WORK}/export-${fmt}"
  log "quantize ${fmt}: ModelOpt PTQ, calibration ${CALIB_SIZE} x ${CALIB_LEN} tokens, export hf"
  start="$(date +%s.%N)"
  "${PYTHON}" "${QUANTIZE}" --model-dir "${WORK}/model" --output-dir "${export_dir}" \
    --qformat "${fmt}" --kv-cache-dtype fp8 --calib-data "${WORK}/calib.jsonl" \
    --calib-size "${CALIB_SIZE}" --calib-max-seq-len "${CALIB_LEN}" --export hf \
    --tp-size 1 --pp-size 1 --dtype bfloat16 \
    >"${OUT}/quantize-${fmt}.json" 2>"${OUT}/quantize-${fmt}.log" || rc=$?
  end="$(date +%s.%N)"
  printf '%s %s\n' "${start}" "${end}" >"${OUT}/quantize-${fmt}.wall"
  if ((rc != 0)); then
    tail -n 30 "${OUT}/quantize-${fmt}.log" >&2
    log "quantize ${fmt} failed (exit ${rc}); log: ${OUT}/quantize-${fmt}.log"
    return 1
  fi
  log "check-layout ${fmt}"
  "${PYTHON}" "${QUANTIZE}" check-layout "${export_dir}" --qformat "${fmt}" --kv-cache-dtype fp8 \
    --json >"${OUT}/layout-${fmt}.json" || rc=$?
  cp "${export_dir}/config.json" "${OUT}/export-${fmt}.config.json"
  [[ ! -f "${export_dir}/hf_quant_config.json" ]] \
    || cp "${export_dir}/hf_quant_config.json" "${OUT}/export-${fmt}.hf_quant_config.json"
  "${PYTHON}" "${QUANTIZE}" check-layout "${export_dir}" --qformat "${fmt}" --kv-cache-dtype fp8 >&2 || true
  return "${rc}"
}

# dm_report PARAMS FORMATS...: device_modelopt.json from the per-step files; figures on stdout.
dm_report() {
  "${PYTHON}" - "${OUT}" "${WORK}" "$@" <<'PY'
import json, subprocess, sys
from importlib import metadata
from pathlib import Path

out, work, params, formats = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]

def size(p):
    return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file())

def load(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None

def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

try:
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version,memory.total",
                          "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
except OSError as exc:
    smi = f"nvidia-smi: {exc}"
report = {"schema_version": 1, "gpu": smi, "python": sys.version.split()[0],
          "packages": {n: version(n) for n in ("torch", "transformers", "nvidia-modelopt", "safetensors", "pydantic")},
          "model": {"parameters": params, "bytes": size(work / "model"), "dtype": "bfloat16"}, "formats": {}}
ok = True
for fmt in formats:
    entry = {}
    q = out / f"quantize-{fmt}.json"
    entry["quantize"] = load(q)
    wall = (out / f"quantize-{fmt}.wall").read_text().split() if (out / f"quantize-{fmt}.wall").is_file() else None
    entry["wall_s"] = round(float(wall[1]) - float(wall[0]), 2) if wall else None
    lay = out / f"layout-{fmt}.json"
    entry["layout"] = load(lay)
    entry["ok"] = bool(entry["quantize"]) and bool(entry["layout"] and entry["layout"]["ok"])
    ok &= entry["ok"]
    report["formats"][fmt] = entry
    qr = entry["quantize"] or {}
    print(f"{fmt}: ok={entry['ok']} wall={entry['wall_s']}s "
          f"durations={qr.get('durations_s')} peak_gpu={qr.get('peak_gpu_memory_bytes', 0) / 2**20:.0f} MiB "
          f"bytes in={qr.get('bytes', {}).get('input')} out={qr.get('bytes', {}).get('output')}")
report["ok"] = ok
(out / "device_modelopt.json").write_text(json.dumps(report, indent=2) + "\n")
print(f"model: {params / 1e6:.1f}M parameters, {report['model']['bytes'] / 2**20:.0f} MiB; gpu: {smi}")
print(f"packages: {report['packages']}")
sys.exit(0 if ok else 1)
PY
}

dm_cleanup() {
  [[ -z "${WORK:-}" ]] || rm -rf -- "${WORK}"
}

main() {
  local fmt params failed=0
  local -a formats
  PYTHON="${PYTHON:-python3}"
  OUT="${OUT:-${REPO_ROOT}/outputs/dev/device_modelopt}"
  SITE_DIR="${SITE_DIR:-/tmp/site}"
  CALIB_SIZE="${CALIB_SIZE:-64}"
  CALIB_LEN="${CALIB_LEN:-256}"
  read -r -a formats <<<"${FORMATS:-fp8}"
  mkdir -p "${OUT}"
  WORK="$(mktemp -d)"
  trap dm_cleanup EXIT
  install_carried_wheels 1
  export PYTHONPATH="${REPO_ROOT}/scripts/dev:${PYTHONPATH}"
  "${PYTHON}" -c 'import modelopt, torch, modelopt.torch.quantization, modelopt.torch.export
assert torch.cuda.is_available(), "no CUDA device visible to torch"
print("modelopt", modelopt.__version__, "torch", torch.__version__, torch.cuda.get_device_name(0))' >&2 \
    || die "ModelOpt (quantization + export) or CUDA torch does not import with PYTHONPATH=${PYTHONPATH}"
  log "build the synthetic model"
  params="$(dm_make_model "${WORK}/model" "${WORK}/calib.jsonl")"
  log "model: ${params} parameters"
  for fmt in "${formats[@]}"; do
    dm_run_format "${fmt}" || failed=1
  done
  dm_report "${params}" "${formats[@]}" || failed=1
  log "report: ${OUT}/device_modelopt.json"
  return "${failed}"
}

main "$@"

#!/usr/bin/env bats
# Runtime LoRA (the lora: section) end to end with the strict fakes: an engine built with the
# recorded trtllm-build LoRA flags (0.16 and 1.2), a PyTorch bundle whose lora_config is checked
# per version, every refusal before anything is written, a changed adapter is another build, and
# verify per adapter (PEFT effect, golden prompts through the stand-in LLM API).

bats_require_minimum_version 1.5.0

load test_helper
load build_helper

# lora_make_models DIR: tiny bases and adapters, made by one Python process.
lora_make_models() {
  "${PYTHON}" - "$1" <<'PY' >/dev/null 2>&1
import sys
from pathlib import Path
sys.path.insert(0, str(Path.cwd() / "scripts" / "dev"))
import tiny_models as t
out = Path(sys.argv[1])
base = t.make_model("llama", out / "tiny llama")
t.make_adapter(base, out / "sft")
t.make_adapter(base, out / "dpo", seed=2, r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"])
t.make_adapter(base, out / "dora", use_dora=True)
t.make_adapter(base, out / "r16", r=16)
t.make_adapter(base, out / "mts", target_modules=["q_proj"], modules_to_save=["lm_head"])
t.make_adapter(t.make_model("mistral", out / "mistral"), out / "other-base")
t.make_adapter(t.make_model("gpt2", out / "gpt2"), out / "gpt2-lora")
PY
}

# lora_config FILE VERSION BACKEND NAME... : the build_helper config with a lora: section that
# serves the named adapters of MODELS (max_rank 8).
lora_config() {
  local file="$1" version="$2" backend="$3" name
  shift 3
  build_write_config "${file}" "${version}"
  sed -i -e "s/^backend: engine/backend: ${backend}/" "${file}"
  printf 'lora:\n  adapters:\n' >>"${file}"
  for name in "$@"; do
    printf '    - {name: %s, path: "%s/%s"}\n' "${name}" "${MODELS}" "${name}" >>"${file}"
  done
  printf '  max_rank: 8\n  target_modules: auto\n  max_loras: 2\n  max_cpu_loras: 4\n' >>"${file}"
}

# lora_build VERSION BACKEND NAME...: build the tiny llama with those adapters into OUT.
lora_build() {
  local version="$1" backend="$2"
  shift 2
  build_use_stack "${version}"
  lora_config "${CONFIG}" "${version}" "${backend}" "$@"
  run --separate-stderr "${BUILD}" --model-dir "${MODELS}/tiny llama" --config "${CONFIG}" --output "${OUT}"
}

setup_file() {
  cd "${REPO_ROOT}" || return 1
  lora_make_models "${BATS_FILE_TMPDIR}/models"
  build_make_stacks "${BATS_FILE_TMPDIR}/stacks" 0.16.0 1.1.0 1.2.0
}

setup() {
  build_setup
  export FAKE_TRTLLM_LOG="${BATS_TEST_TMPDIR}/serve.jsonl"
}

@test "an engine build packages every adapter and builds with the recorded LoRA flags (0.16, 1.2)" {
  local version argv
  for version in 0.16.0 1.2.0; do
    rm -rf "${OUT}" "${FAKE_TRTLLM_CALLS}"
    lora_build "${version}" engine sft dpo
    assert_success
    argv="$(grep '"tool": "build"' "${FAKE_TRTLLM_CALLS}")"
    [[ "${argv}" == *'"--lora_plugin", "float16", "--lora_dir", "'*'/lora/sft", "'*'/lora/dpo", "--max_lora_rank", "8"'* ]]
    [[ "${argv}" == *'"--lora_target_modules", "attn_dense", "attn_k", "attn_q", "attn_v", "mlp_4h_to_h", "mlp_gate", "mlp_h_to_4h", "--lora_ckpt_source", "hf"'* ]]
    cmp "${OUT}/lora/dpo/adapter_model.safetensors" "${MODELS}/dpo/adapter_model.safetensors"
    run build_json_get "${OUT}/build.json" lora.adapters.1.name
    assert_output "dpo"
    grep -q '"lora/dpo/adapter_model.safetensors": {' "${OUT}/build.json"  # artifact.files
    run build_json_get "${OUT}/engine/config.json" build_config.lora_config.max_lora_rank
    assert_output "8"
  done
}

@test "serve.sh prints each adapter's lora_request and starts the strict trtllm-serve on the engine" {
  lora_build 1.2.0 engine sft dpo
  assert_success
  run --separate-stderr "${OUT}/serve.sh" --port 8123
  assert_success
  [[ "${stderr}" == *"lora adapter sft: \"lora_request\": {\"lora_name\": \"sft\", \"lora_int_id\": 1, \"lora_path\": \"${OUT}/lora/sft\"}"* ]]
  [[ "${stderr}" == *"\"lora_name\": \"dpo\", \"lora_int_id\": 2"* ]]
  assert_output --partial "would serve engine on localhost:8123 (backend tensorrt)"
}

@test "a pytorch bundle carries lora_config checked against the 1.2 record; serve.sh starts with it" {
  lora_build 1.2.0 pytorch sft dpo
  assert_success
  [[ ! -s "${FAKE_TRTLLM_CALLS}" ]]  # no converter, no trtllm-build
  run grep -A 3 '^lora_config:' "${OUT}/llm_api_options.yaml"
  assert_line "  lora_dir:"
  assert_line "  - lora/sft"
  assert_line "  - lora/dpo"
  run build_json_get "${OUT}/build.json" bundle.options.lora_config.max_cpu_loras
  assert_output "4"
  run --separate-stderr "${OUT}/serve.sh"
  assert_success
  assert_output --partial "would serve checkpoint"
  rm -r "${OUT}/lora/dpo"  # the strict trtllm-serve looks for every lora_dir
  run --separate-stderr "${OUT}/serve.sh"
  assert_failure 1
  [[ "${stderr}" == *"lora/dpo has no adapter_config.json"* ]]
}

@test "TensorRT-LLM 1.1 has no recorded lora_config: a pytorch build is refused, nothing written" {
  lora_build 1.1.0 pytorch sft
  assert_failure 2
  [[ "${stderr}" == *"target.trtllm_version: the LLM-API record llm_args.1.1.json (a partial record) lists no lora_config"* ]]
  [[ -z "$(build_outputs_listing)" ]]
}

@test "every adapter problem is one line with file:line, adapter and reason; nothing is written" {
  local line
  lora_build 1.2.0 engine sft other-base r16 gpt2-lora dora mts
  assert_failure 2
  line="$(grep -n 'name: other-base' "${CONFIG}" | cut -d: -f1)"
  [[ "${stderr}" == *"error: ${CONFIG}:${line}: lora.adapters[1]: other-base: trained on another base, "*"(model_type mistral vs llama"* ]]
  [[ "${stderr}" == *": lora.adapters[2]: r16: rank 16 of "*" is above lora.max_rank 8 "*"(fix: lora.max_rank: 16)"* ]]
  [[ "${stderr}" == *": lora.adapters[3]: gpt2-lora: c_attn, c_fc, c_proj: not mapped by the runtime LoRA of TensorRT-LLM 1.2.0 (trtllm-build --lora_target_modules), which maps down_proj, gate, gate_proj"* ]]
  [[ "${stderr}" == *": lora.adapters[4]: dora: cannot be served unmerged: DoRA (magnitude vectors) (fix: merge it instead"* ]]
  [[ "${stderr}" == *": lora.adapters[5]: mts: cannot be served unmerged: modules_to_save"*"(fix: merge it instead"* ]]
  [[ "${stderr}" != *"lora.adapters[0]"* ]]
  [[ -z "$(build_outputs_listing)" ]]
  [[ ! -s "${FAKE_TRTLLM_CALLS}" ]]
}

@test "a LoRA build is up to date until an adapter changes; then it is another build" {
  lora_build 1.2.0 engine sft dpo
  assert_success
  lora_build 1.2.0 engine sft dpo
  assert_success
  [[ "${stderr}" == *"up to date"* ]]
  cp -r "${MODELS}/dpo" "${BATS_TEST_TMPDIR}/dpo-saved"
  cp "${MODELS}/sft/adapter_model.safetensors" "${MODELS}/dpo/adapter_model.safetensors"
  cp "${MODELS}/sft/adapter_config.json" "${MODELS}/dpo/adapter_config.json"
  lora_build 1.2.0 engine sft dpo
  rm -rf "${MODELS}/dpo" && cp -r "${BATS_TEST_TMPDIR}/dpo-saved" "${MODELS}/dpo"
  assert_failure 2
  [[ "${stderr}" == *"--force"* ]]
}

@test "verify loads each adapter with PEFT and compares golden prompts per adapter" {
  local -a verify
  lora_build 1.2.0 engine sft dpo
  assert_success
  printf 'w1 w2 w3\nw7 w8\n' >"${BATS_TEST_TMPDIR}/prompts.txt"
  export PYTHONPATH="${PYTHONPATH}:${REPO_ROOT}/tests/fakes/python_trtllm"
  export FAKE_TRTLLM_ENGINE_SOURCE="${MODELS}/tiny llama"
  verify=("${PYTHON}" "${REPO_ROOT}/scripts/export/verify.py" --artifact "${OUT}"
    --prompts "${BATS_TEST_TMPDIR}/prompts.txt" --max-new-tokens 4 --min-match 4)
  run --separate-stderr "${verify[@]}"
  assert_success
  assert_line --regexp '^\[ok\] +lora_effect +sft: loads onto the base with PEFT and changes its output'
  assert_line --regexp '^\[ok\] +lora_effect +dpo: '
  assert_line --regexp '^\[ok\] +lora_golden +sft: 2/2 prompts agree'
  assert_line --regexp '^\[ok\] +lora_golden +dpo: 2/2 prompts agree'
  # a runtime that silently serves the base (e.g. a LoRA plugin in another dtype) fails
  FAKE_TRTLLM_LORA_IGNORED=1 run --separate-stderr "${verify[@]}"
  assert_failure 1
  assert_line --regexp '^\[ok\] +golden +2/2'
  assert_line --regexp '^\[FAIL\] lora_golden +sft: 0/2 prompts agree'
}

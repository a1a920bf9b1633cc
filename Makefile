# Front door of the toolkit. `make help` lists the targets; each recipe calls one script.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# Every variable given on the command line (NAME=..., CONFIG=..., MERGE_ARGS=..., any other)
# reaches the recipes as the text it was given, through the environment: make neither expands it
# ($(shell ...) in a value stays text) nor pastes it into a recipe (backticks, $(...), quotes, ';'
# and newlines stay text too). scripts/make_target.sh passes each as one argument and the
# scripts judge them (exit 2). Variables from make's environment are passed on as they are.
$(foreach v,$(.VARIABLES),$(if $(filter command line,$(origin $(v))),$(eval override $(v) := $$(value $(v)))$(eval export $(v))))

# PYTHON given by the caller (e.g. PYTHON=python3 inside NVIDIA's TensorRT-LLM container) is used
# as it is, and no venv is made. Otherwise the pinned development venv in .venv/ is made on demand.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(CURDIR)/.venv/bin/python
PY_SETUP := venv
else
PY_SETUP :=
endif
export PYTHON

.PHONY: help setup venv bats test lint test-python test-bats demo merge bench-merge bench-cli doctor \
	engine verify serve bench clean

help: ## List the targets and the variables they take
	@printf 'The pipeline (adapter -> merged model -> artifact):\n'
	@grep -E '^[a-zA-Z_-]+:.*## ' Makefile | awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'
	@printf '\nDevelopment:\n'
	@grep -E '^[a-zA-Z_-]+:.*#dev ' Makefile | awk 'BEGIN {FS = ":.*#dev "}; {printf "  %-12s %s\n", $$1, $$2}'
	@printf '\nVariables (VAR=value on the command line; each reaches the scripts as text):\n'
	@printf '  %-20s %s\n' \
		NAME 'merged model / artifact name (merge, engine, verify, serve, bench)' \
		ADAPTER 'adapter dir (merge)' \
		CONFIG 'build config (doctor, engine; default configs/export/tensorrt_llm.yaml)' \
		PROFILE 'a profile of the build config (doctor, engine)' \
		DRY_RUN '1: print the plan only (engine)' \
		FORCE '1: replace what is there (engine: a different build; merge: the output)' \
		ACCEPT_QUALITY_LOSS '1: publish a quantized build over its quality gate (engine)' \
		FULL '1: hash every file of the artifact (verify)' \
		ALLOW_SKIP '1: accept checks that cannot run here (verify)' \
		MERGE_ARGS 'more merge_lora.py options, e.g. "--dtype bfloat16 --verify" (merge)' \
		BENCH_ARGS 'benchmark options (bench-merge, bench-cli)' \
		OUTPUTS_DIR 'where everything is written (default outputs/)' \
		PYTHON 'the interpreter (default the dev venv; python3 in NVIDIA containers)'

setup: venv bats #dev Install the pinned dev tools: .venv/ (Python) and node_modules/ (bats)

venv: #dev Create .venv/ from the hash-checked lock requirements/dev.lock (idempotent)
	@scripts/dev/setup_venv.sh

bats: #dev Install bats-core, bats-support, bats-assert with npm ci (idempotent)
	@scripts/dev/setup_bats.sh

test: setup #dev Lint, then pytest and bats; non-zero on any failure
	@scripts/dev/run_tests.sh

lint: venv #dev shellcheck every shell/bats file, ruff check + format check
	@scripts/dev/lint.sh

test-python: venv #dev Run the pytest suite only
	@.venv/bin/python -m pytest

test-bats: setup #dev Run the bats suite only
	@node_modules/bats/bin/bats --recursive tests/bats

demo: $(PY_SETUP) ## A real chat model end to end: train a LoRA on the CPU, merge, bundle, plan
	@scripts/dev/demo.sh

merge: $(PY_SETUP) ## Merge ADAPTER=dir into its base as outputs/gpu/merged_models/NAME [MERGE_ARGS=..]
	@scripts/make_target.sh merge

bench-merge: $(PY_SETUP) #dev Benchmark the merge vs cp -r and PEFT (synthetic 1.5B) [BENCH_ARGS=--size 8b]
	@scripts/make_target.sh bench-merge

bench-cli: $(PY_SETUP) #dev Time make doctor and an 8B --dry-run (targets: 1 s and 2 s)
	@scripts/make_target.sh bench-cli

doctor: $(PY_SETUP) ## Check this machine against the build config (versions, GPU, disk) [CONFIG=..] [PROFILE=..]
	@scripts/make_target.sh doctor

engine: $(PY_SETUP) ## Build NAME's TensorRT-LLM artifact [CONFIG=..] [PROFILE=..] [DRY_RUN=1] [FORCE=1]
	@scripts/make_target.sh engine

verify: $(PY_SETUP) ## Check NAME's artifact against this machine, then golden prompts [FULL=1] [ALLOW_SKIP=1]
	@scripts/make_target.sh verify

serve: ## Start trtllm-serve for NAME's artifact (runs its serve.sh)
	@scripts/make_target.sh serve

bench: $(PY_SETUP) ## Run trtllm-bench on NAME's artifact with a locally made dataset
	@scripts/make_target.sh bench

clean: #dev Remove outputs/demo (never the real outputs)
	@rm -rf outputs/demo

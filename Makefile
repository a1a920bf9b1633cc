# Front door of the toolkit. `make help` lists the targets; each recipe calls one script.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# PYTHON given by the caller (e.g. PYTHON=python3 inside NVIDIA's TensorRT-LLM container) is used
# as it is, and no venv is made. Otherwise the pinned development venv in .venv/ is made on demand.
ifeq ($(origin PYTHON),undefined)
PYTHON := $(CURDIR)/.venv/bin/python
PY_SETUP := venv
else
PY_SETUP :=
endif
export PYTHON

CONFIG ?= configs/export/tensorrt_llm.yaml
BUILD := scripts/export/build_tensorrt_llm.sh

.PHONY: help setup venv bats test lint test-python test-bats demo merge bench-merge bench-cli doctor \
	engine verify serve bench clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sort \
		| awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

setup: venv bats ## Install the pinned dev tools: .venv/ (Python) and node_modules/ (bats)

venv: ## Create .venv/ from the hash-checked lock requirements/dev.lock (idempotent)
	@scripts/dev/setup_venv.sh

bats: ## Install bats-core, bats-support, bats-assert with npm ci (idempotent)
	@scripts/dev/setup_bats.sh

test: setup ## Lint, then pytest and bats; non-zero on any failure
	@scripts/dev/run_tests.sh

lint: venv ## shellcheck every shell/bats file, ruff check + format check
	@scripts/dev/lint.sh

test-python: venv ## Run the pytest suite only
	@.venv/bin/python -m pytest

test-bats: setup ## Run the bats suite only
	@node_modules/bats/bin/bats --recursive tests/bats

demo: $(PY_SETUP) ## A real chat model end to end: train a LoRA on the CPU, merge, bundle, plan
	@scripts/dev/demo.sh

merge: $(PY_SETUP) ## Merge ADAPTER=dir into its base as outputs/gpu/merged_models/NAME
	@test -n "$(ADAPTER)" || { echo "make merge: set ADAPTER=<adapter dir>, e.g. make merge ADAPTER=outputs/gpu/checkpoints/sft/final NAME=my-sft" >&2; exit 2; }
	@test -n "$(NAME)" || { echo "make merge: set NAME=<model name>, e.g. make merge ADAPTER=$(ADAPTER) NAME=my-sft" >&2; exit 2; }
	@"$(PYTHON)" scripts/gpu/merge_lora.py --adapter "$(ADAPTER)" --output "outputs/gpu/merged_models/$(NAME)" $(MERGE_ARGS)

bench-merge: $(PY_SETUP) ## Benchmark the merge vs cp -r and PEFT (synthetic 1.5B) [BENCH_ARGS=--size 8b]
	@scripts/dev/bench_merge.sh $(BENCH_ARGS)

bench-cli: $(PY_SETUP) ## Time make doctor and an 8B --dry-run (targets: 1 s and 2 s)
	@scripts/dev/bench_cli.sh $(BENCH_ARGS)

doctor: $(PY_SETUP) ## Check this machine against the build config (versions, GPU, disk)
	@$(BUILD) --doctor --config "$(CONFIG)" $(if $(PROFILE),--profile "$(PROFILE)")

engine: $(PY_SETUP) ## Build NAME's TensorRT-LLM artifact [CONFIG=..] [PROFILE=..] [DRY_RUN=1] [FORCE=1]
	@test -n "$(NAME)" || { echo "make engine: set NAME=<merged model name>, e.g. make engine NAME=my-sft" >&2; exit 2; }
	@$(BUILD) --name "$(NAME)" --config "$(CONFIG)" $(if $(PROFILE),--profile "$(PROFILE)") $(if $(DRY_RUN),--dry-run) $(if $(FORCE),--force)

verify: $(PY_SETUP) ## Check NAME's artifact against this machine, then golden prompts
	@test -n "$(NAME)" || { echo "make verify: set NAME=<artifact name>" >&2; exit 2; }
	@$(BUILD) --verify --name "$(NAME)"

serve: ## Start trtllm-serve for NAME's artifact (runs its serve.sh)
	@test -n "$(NAME)" || { echo "make serve: set NAME=<artifact name>" >&2; exit 2; }
	@outputs/gpu/tensorrt_llm/$(NAME)/serve.sh

bench: $(PY_SETUP) ## Run trtllm-bench on NAME's artifact with a locally made dataset
	@test -n "$(NAME)" || { echo "make bench: set NAME=<artifact name>" >&2; exit 2; }
	@scripts/export/bench_tensorrt_llm.sh --name "$(NAME)"

clean: ## Remove outputs/demo (never the real outputs)
	@rm -rf outputs/demo

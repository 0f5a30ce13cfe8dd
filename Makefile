# Volley — one entry point for humans and CI. `make help` lists the targets.
#
# Every target installs what it needs (Rust components, cargo tools) by itself.

SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
# Tests, clippy, doc-tests, benches and the demo share one target directory.
export CARGO_TARGET_DIR ?= $(CURDIR)/target

.PHONY: help demo test lint fmt-check clippy layers unit-tests doc-tests bench tools venv

VENV := $(CURDIR)/.venv
export VOLLEY_MOTO_SERVER := $(VENV)/bin/moto_server

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  make %-16s %s\n", $$1, $$2}'

tools: ## Install the Rust components and cargo tools the targets use
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@command -v cargo-nextest >/dev/null || $(CARGO) install --locked cargo-nextest

venv: $(VENV)/.installed ## Python virtualenv with the test servers (moto for S3)

$(VENV)/.installed:
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet 'moto[server]==5.2.5'
	touch $@

demo: tools ## Run the main job: fan-out/fan-in over generated Arrow blocks (optimized build)
	$(CARGO) run --profile bench -p volley --example demo

test: lint unit-tests doc-tests ## fmt check, clippy, layer check, every test and doc-test

lint: tools fmt-check clippy layers ## fmt check, clippy (warnings are errors), layer check

fmt-check:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

layers: ## Dependencies run one way: python -> engine -> flight; core never imports data/train/jobs
	@if $(CARGO) tree -p volley-flight --edges normal --prefix none | grep -q '^volley v'; then \
	  echo "layer violation: volley-flight depends on the engine"; exit 1; fi
	@if grep -rnE 'crate::(data|train|jobs)\b' engine/src/core; then \
	  echo "layer violation: engine/src/core imports data/train/jobs"; exit 1; fi
	@if grep -rn 'pyo3' engine/Cargo.toml flight/Cargo.toml; then \
	  echo "layer violation: PyO3 outside the binding crate"; exit 1; fi
	@echo "layers: ok"

unit-tests: tools venv ## Unit and integration tests (nextest: one process per test)
	$(CARGO) nextest run --workspace --no-fail-fast

doc-tests: ## Doc examples, including the README quick start
	$(CARGO) test --workspace --doc

bench: tools ## Core micro-benchmarks, criterion benches, and the data pipelines on generated data
	$(CARGO) run --profile bench -p volley --bin volley -- microbenchmark
	$(CARGO) bench -p volley-benches
	benches/run_data.sh

# One Makefile drives everything; .ci/run and the README call these targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed
export VIRTUAL_ENV := $(abspath $(VENV))
export PATH := $(abspath $(VENV))/bin:$(PATH)

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

.PHONY: venv  ## create .venv with the pinned dev requirements
venv: $(STAMP)

# The test build: the extension with fault injection (the `failpoints` feature); `pip install .` leaves it out.
.PHONY: build-dev  ## build the extension (release profile, with fault points for the tests) into .venv
build-dev: $(STAMP)
	$(VENV)/bin/maturin develop --release --quiet --features python,failpoints

.PHONY: format  ## format Rust and Python
format: $(STAMP)
	cargo fmt --all
	$(VENV)/bin/ruff format python tests bench torture
	$(VENV)/bin/ruff check --fix python tests bench torture

.PHONY: lint-rust  ## rustfmt, clippy (-D warnings), and "pyo3 only in src/py/"
lint-rust: $(STAMP)
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python,failpoints -- -D warnings
	@if grep -rln 'pyo3' src --include='*.rs' | grep -v '^src/py/'; then \
		echo "pyo3 is imported outside src/py/ (the core must stay pure Rust)"; exit 1; fi

.PHONY: lint-python  ## ruff check + format check, and the stubs against the built module
lint-python: build-dev
	$(VENV)/bin/ruff check python tests bench torture
	$(VENV)/bin/ruff format --check python tests bench torture
	$(PY) -m mypy.stubtest ferrolock._ferrolock --allowlist .mypy-stubtest-allowlist
	$(PY) -m mypy python/ferrolock

.PHONY: lint  ## all linters
lint: lint-rust lint-python

.PHONY: test-rust  ## Rust unit and integration tests of the pure core
test-rust:
	cargo test --quiet --features failpoints

.PHONY: test-python  ## pytest (cross-process tests use real processes)
test-python: build-dev
	$(PY) -m pytest -q tests

.PHONY: test  ## every test: Rust core, then Python
test: test-rust test-python

BENCHES := $(sort $(wildcard bench/bench_*.py))

.PHONY: bench  ## every benchmark in bench/ (locks vs fcntl.flock/filelock/portalocker, state, scopes, todo2)
bench: build-dev
	@set -e; for b in $(BENCHES); do echo "== $$b"; $(PY) $$b; done

.PHONY: bench-ci  ## every benchmark, shortened (CI checks they run; a loaded CI box's numbers mean little)
bench-ci: build-dev
	@set -e; for b in $(BENCHES); do echo "== $$b"; timeout 600 $(PY) $$b --quick; done

TORTURE_SECONDS ?= 120

.PHONY: torture  ## the torture suite: kill storms, crash points, hostile input, load (TORTURE_SECONDS per storm)
torture: build-dev
	FERROLOCK_TORTURE_SECONDS=$(TORTURE_SECONDS) $(PY) -m pytest -q torture

.PHONY: torture-ci  ## the torture suite, bounded to a few seconds per storm
torture-ci: build-dev
	FERROLOCK_TORTURE_SECONDS=5 FERROLOCK_TORTURE_FIGURES=/dev/null $(PY) -m pytest -q torture

.PHONY: clean  ## remove build products and the venv
clean:
	cargo clean
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache python/ferrolock/*.so

.PHONY: help  ## list targets
help:
	@grep -E '^\.PHONY: [a-z-]+ +## ' $(MAKEFILE_LIST) | sed -E 's/^\.PHONY: ([a-z-]+) +## (.*)/  \1\t\2/' | expand -t 16

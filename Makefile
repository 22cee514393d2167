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

PYTHON_DIRS := python tests bench torture tools

.PHONY: format  ## format Rust and Python
format: $(STAMP)
	cargo fmt --all
	$(VENV)/bin/ruff format $(PYTHON_DIRS)
	$(VENV)/bin/ruff check --fix $(PYTHON_DIRS)

.PHONY: lint-rust  ## rustfmt, clippy (-D warnings), and "pyo3 only in src/py/"
lint-rust: $(STAMP)
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --all-targets --features python,failpoints -- -D warnings
	@if grep -rln 'pyo3' src --include='*.rs' | grep -v '^src/py/'; then \
		echo "pyo3 is imported outside src/py/ (the core must stay pure Rust)"; exit 1; fi

.PHONY: lint-python  ## ruff check + format check, and the stubs against the built module
lint-python: build-dev
	$(VENV)/bin/ruff check $(PYTHON_DIRS)
	$(VENV)/bin/ruff format --check $(PYTHON_DIRS)
	$(PY) -m mypy.stubtest ferrolock._ferrolock --allowlist .mypy-stubtest-allowlist
	$(PY) -m mypy python/ferrolock

.PHONY: doc  ## the Rust API docs; warnings (a broken link, an undocumented public item) are errors
doc:
	RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --features failpoints

.PHONY: lint  ## all linters, and the docs build
lint: lint-rust lint-python doc

.PHONY: test-rust  ## Rust unit and integration tests of the pure core
test-rust:
	cargo test --quiet --features failpoints

.PHONY: test-python  ## pytest (cross-process tests use real processes)
test-python: build-dev
	$(PY) -m pytest -q tests

.PHONY: test  ## every test: Rust core, then Python
test: test-rust test-python

# The tests that wait for locks, run again with the wake mechanism that needs no signal.
WAKE_THREAD_TESTS := tests/test_file_lock.py tests/test_multiprocess.py tests/test_async.py tests/test_job_lock.py \
	tests/test_scope_lock.py tests/test_run_once.py tests/test_state_file.py tests/test_wake_signals.py \
	tests/test_descriptors.py tests/test_thread_owners.py tests/compat

.PHONY: test-wake-thread  ## Rust tests and Python lock tests with FERROLOCK_WAKE=thread (helper threads, no signal)
test-wake-thread: build-dev
	FERROLOCK_WAKE=thread cargo test --quiet
	FERROLOCK_WAKE=thread $(PY) -m pytest -q $(WAKE_THREAD_TESTS)

BENCHES := $(sort $(wildcard bench/bench_*.py))

.PHONY: bench  ## every benchmark in bench/ (locks vs fcntl.flock/filelock/portalocker, state, scopes, todo2)
bench: build-dev
	@set -e; for b in $(BENCHES); do echo "== $$b"; $(PY) $$b; done

.PHONY: bench-tasks  ## coord.tasks: a queue of 100,000 tasks drained by 16 worker processes (PostgreSQL; 10,000 on file://)
bench-tasks: build-dev
	$(PY) bench/bench_coord_tasks.py

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

.PHONY: filelock-suite  ## py-filelock's own tests run on filelock and on ferrolock, compared (FERROLOCK_MIRRORS=DIR)
filelock-suite: build-dev
	$(PY) tools/filelock_suite/run.py $(FILELOCK_SUITE_ARGS)

WHEEL_DIR := dist

.PHONY: wheel  ## abi3 manylinux wheel (release profile) in dist/, checked and repaired with auditwheel
wheel: $(STAMP)
	rm -rf $(WHEEL_DIR) && mkdir -p $(WHEEL_DIR)/raw
	$(VENV)/bin/maturin build --release --locked --out $(WHEEL_DIR)/raw
	$(VENV)/bin/auditwheel show $(WHEEL_DIR)/raw/ferrolock-*.whl
	$(VENV)/bin/auditwheel repair --wheel-dir $(WHEEL_DIR) $(WHEEL_DIR)/raw/ferrolock-*.whl
	rm -rf $(WHEEL_DIR)/raw
	$(VENV)/bin/auditwheel show $(WHEEL_DIR)/ferrolock-*.whl

.PHONY: wheel-test  ## install the wheel into fresh venvs of every Python >= 3.10 here, no compiler on PATH; smoke test
wheel-test: wheel
	$(PY) tools/wheel/test_wheel.py $(WHEEL_DIR)

.PHONY: clean  ## remove build products and the venv
clean:
	cargo clean
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache python/ferrolock/*.so $(WHEEL_DIR) .filelock-suite

.PHONY: help  ## list targets
help:
	@grep -E '^\.PHONY: [a-z-]+ +## ' $(MAKEFILE_LIST) | sed -E 's/^\.PHONY: ([a-z-]+) +## (.*)/  \1\t\2/' | expand -t 16

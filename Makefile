# make demo  — set up (idempotent) and run the built-in demo
# make test  — set up (idempotent) and run the test suite
PYTHON ?= python3
export PYTHON

.PHONY: setup demo test bench
setup:
	bash scripts/setup_env.sh

demo: setup
	$(PYTHON) -m fastsegadv demo

test: setup
	$(PYTHON) -m pytest -q tests

bench: setup
	$(PYTHON) -m pytest -q benchmarks --benchmark-only

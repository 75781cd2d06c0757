# make demo  — set up (idempotent) and run the built-in demo
# make test  — set up (idempotent) and run the test suite
PYTHON ?= python3
export PYTHON

.PHONY: setup demo test lint bench cuda-check gpu-check venv-check at-study
setup:
	bash scripts/setup_env.sh

demo: setup
	$(PYTHON) -m fastsegadv demo

test: setup
	TRITON_INTERPRET=1 $(PYTHON) -m pytest -q tests

lint: setup
	$(PYTHON) -m ruff check .

cuda-check: setup
	bash scripts/compile_cuda.sh

# on a machine with an NVIDIA GPU: build, CUDA/Triton tests, GPU benchmarks -> benchmarks/results/<gpu>/
# (no `setup`: it uses the machine's own CUDA torch; stops at once without a GPU). OUT=dir to choose the folder.
gpu-check:
	$(PYTHON) scripts/gpu_check.py $(OUT)

# the README's own-environment commands in a fresh venv (its own pip, setuptools >= 80, wheel)
venv-check: setup
	bash scripts/check_venv_install.sh

bench: setup
	$(PYTHON) benchmarks/run_benchmarks.py

at-study: setup
	bash scripts/at_study.sh

# make demo  — set up (idempotent) and run the built-in demo
# make test  — set up (idempotent) and run the test suite
PYTHON ?= python3
export PYTHON

.PHONY: setup demo test lint docs bench cuda-check gpu-check gpu-twin venv-check at-study
setup:
	bash scripts/setup_env.sh

demo: setup
	$(PYTHON) -m fastsegadv demo

test: setup
	TRITON_INTERPRET=1 $(PYTHON) -m pytest -q tests

lint: setup
	$(PYTHON) -m ruff check .

# the documentation site (mkdocs-material + mkdocstrings) -> site/index.html; strict: a broken link or
# reference fails it
docs: setup
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict

cuda-check: setup
	bash scripts/compile_cuda.sh

# on a machine with an NVIDIA GPU, one command of <= 540 s: build, CUDA/Triton vs eager, GPU benchmarks ->
# benchmarks/results/<gpu>/ (no `setup`: it uses the machine's own CUDA torch; stops at once without a GPU).
# OUT=dir chooses the folder, PART=2 runs the second call (the rest of the CUDA tests, upsample, bf16).
gpu-check:
	$(PYTHON) scripts/gpu_check.py $(if $(OUT),$(abspath $(OUT))) $(if $(PART),--part $(PART))

# the GPU machine's software (Python 3.12, torch 2.11 CUDA 13.0, Triton 3.6) rebuilt here in a venv, and
# every GPU-path check that needs no GPU -> benchmarks/results/gpu_twin/summary.json (issue 20)
gpu-twin:
	bash scripts/gpu_twin.sh

# the README's own-environment commands in a fresh venv (its own pip, setuptools >= 80, wheel)
venv-check: setup
	bash scripts/check_venv_install.sh

bench: setup
	$(PYTHON) benchmarks/run_benchmarks.py

at-study: setup
	bash scripts/at_study.sh

#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: torch first (CPU build), then the project without build
# isolation, then the test and parity packages. Fast when everything is already there.
set -euo pipefail
PY=${PYTHON:-python3}
cd "$(dirname "$0")/.."

have() { "$PY" -c "$1" >/dev/null 2>&1; }

have "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '2.13.0' else 1)" \
  || "$PY" -m pip install -q torch==2.13.0
have "import fastsegadv, pytest, pytest_benchmark, triton, sklearn, tqdm, matplotlib, scipy, ninja, yaml, PIL, transformers, ruff; import fastsegadv._C" \
  && [ "$("$PY" -c 'import fastsegadv, os; print(os.path.realpath(os.path.dirname(fastsegadv.__file__)))')" = "$(realpath fastsegadv)" ] \
  || "$PY" -m pip install -q --no-build-isolation -e ".[test]"
have "import cospgd, torchattacks" || "$PY" -m pip install -q --no-deps cospgd torchattacks
# the documentation site's tools (make docs, tests/test_docs.py)
have "import mkdocs, material, mkdocstrings, mkdocstrings_handlers.python" \
  || "$PY" -m pip install -q "mkdocs>=1.6,<2" "mkdocs-material>=9.5,<10" "mkdocstrings[python]>=0.26"

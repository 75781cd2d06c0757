#!/usr/bin/env bash
# The README's own-environment commands, run as a user would in an ordinary venv: the venv's own pip (23.2
# on Python 3.11), setuptools >= 80 and wheel installed, then `pip install torch==2.13.0` and
# `pip install --no-build-isolation -e ".[test]"` on a copy of the working tree, then a smoke run of the
# installed package (the compiled ops against the eager reference, the CLI). The venv sees the system's
# site-packages so nothing is downloaded twice; its own pip and setuptools come first, which is what
# decides the install path (pip 23 + setuptools >= 80 without pyproject.toml failed: issue 11).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PY" -m venv --system-site-packages "$work/venv"
V="$work/venv/bin"
echo "venv: $("$V/pip" --version)"
"$V/pip" install -q "setuptools>=80" wheel
mkdir "$work/src"
tar --exclude=./build --exclude='*.so' --exclude=./.git --exclude='*.egg-info' -cf - . | tar -xf - -C "$work/src"
cd "$work/src"
"$V/pip" install -q torch==2.13.0
"$V/pip" install -q --no-build-isolation -e ".[test]"
"$V/python" - <<'PY'
import os
import torch
import fastsegadv
from fastsegadv import losses
from fastsegadv.reference.weighted import weighted_cross_entropy_reference
import fastsegadv._C  # the compiled ops were built in this venv
import fastsegadv.kernels.weighted_ce  # kernels/ installed as fastsegadv.kernels (package_dir)

assert os.path.realpath(fastsegadv.__file__).startswith(os.path.realpath(os.getcwd())), fastsegadv.__file__
z = torch.randn(2, 5, 6, 7)
y = torch.randint(0, 5, (2, 6, 7))
w = losses.Weighting(segpgd="linear")
fused = losses.weighted_cross_entropy(z, y, weighting=w, step=2, steps=5, backend="cpp")
ref = weighted_cross_entropy_reference(z, y, weighting=w, step=2, steps=5)
torch.testing.assert_close(fused, ref)
import setuptools, pip
print(f"venv install ok: pip {pip.__version__}, setuptools {setuptools.__version__}, torch {torch.__version__}")
PY
"$V/fastsegadv" --help >/dev/null
echo "check_venv_install: the README's own-environment commands work"

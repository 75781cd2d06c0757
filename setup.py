"""Install with ``pip install --no-build-isolation -e .`` after ``pip install torch==2.13.0`` (metadata:
pyproject.toml; this file adds the packages and the compiled ops).

- ``kernels/`` is installed as ``fastsegadv.kernels`` (package_dir), never as a top-level package.
- The C++ ops (``csrc/``) are compiled into ``fastsegadv._C``: the CPU kernels always, the CUDA kernels
  where torch has CUDA. ``FASTSEGADV_NO_EXTENSIONS=1`` installs pure Python (eager reference only);
  ``FASTSEGADV_PORTABLE=1`` builds without ``-march=native``.
"""
import glob
import os

from setuptools import find_packages, setup

packages = find_packages(include=["fastsegadv", "fastsegadv.*"]) + ["fastsegadv.kernels"]


def extensions():
    if os.environ.get("FASTSEGADV_NO_EXTENSIONS") == "1":
        return [], {}
    import torch
    from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

    # -ffinite-math-only -fno-trapping-math let GCC vectorise the exp/min/max loops (csrc/cpu/fast_math.h);
    # the kernels never rely on NaN/inf semantics (the reference defines behaviour on finite logits).
    cxx = ["-O3", "-fopenmp", "-std=c++17", "-ffinite-math-only", "-fno-trapping-math", "-fno-math-errno"]
    if os.environ.get("FASTSEGADV_PORTABLE") != "1":
        cxx.append("-march=native")
    sources = ["csrc/ops.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    with_cuda = torch.cuda.is_available() or (CUDA_HOME is not None and torch.version.cuda is not None)
    if with_cuda and os.environ.get("FASTSEGADV_NO_CUDA") != "1":
        ext = CUDAExtension(
            "fastsegadv._C", sources + sorted(glob.glob("csrc/cuda/*.cu")),
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "--use_fast_math", "-std=c++20"]},
            extra_link_args=["-fopenmp"],
        )
    else:
        ext = CppExtension("fastsegadv._C", sources, extra_compile_args=cxx, extra_link_args=["-fopenmp"])
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


ext_modules, cmdclass = extensions()

# name, version, dependencies, extras and the console script: pyproject.toml ([project])
setup(
    packages=packages,
    package_dir={"fastsegadv.kernels": "kernels"},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
)

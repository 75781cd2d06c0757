"""Install with ``pip install --no-build-isolation -e .`` after ``pip install torch==2.13.0`` (metadata:
pyproject.toml; this file adds the packages and the compiled ops).

- ``kernels/`` is installed as ``fastsegadv.kernels`` (package_dir), never as a top-level package.
- The C++ ops (``csrc/``) are compiled into ``fastsegadv._C``: the CPU kernels always, the CUDA kernels
  where torch has CUDA and a CUDA toolkit is found (:func:`find_cuda_home`). ``FASTSEGADV_NO_EXTENSIONS=1``
  installs pure Python (eager reference only); ``FASTSEGADV_NO_CUDA=1`` builds the CPU kernels only;
  ``FASTSEGADV_PORTABLE=1`` builds without ``-march=native``; ``TORCH_CUDA_ARCH_LIST`` chooses the GPU
  architectures (``9.0`` for H100/H200).
"""
import glob
import os
import re
import shutil
import subprocess

from setuptools import find_packages, setup

packages = find_packages(include=["fastsegadv", "fastsegadv.*"]) + ["fastsegadv.kernels"]


def is_cuda_toolkit(path: str) -> bool:
    """A CUDA toolkit folder: ``bin/nvcc`` and the runtime library (``lib64``, ``lib`` or ``targets/*/lib``)."""
    if not path or not os.path.isfile(os.path.join(path, "bin", "nvcc")):
        return False
    libs = ("lib64", "lib", os.path.join("targets", "*", "lib"))
    return any(glob.glob(os.path.join(path, d, "libcudart.so*")) for d in libs)


def nvcc_top(nvcc: str) -> str | None:
    """The toolkit the ``nvcc`` on PATH really runs, from its own ``--dryrun`` (``#$ TOP=<toolkit>/bin/..``):
    right also when that ``nvcc`` is a wrapper script or a link outside the toolkit."""
    try:
        out = subprocess.run([nvcc, "--dryrun", "-c", "-x", "cu", os.devnull, "-o", os.devnull],
                             capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"^#\$ TOP=(.+)$", out.stdout + out.stderr, re.MULTILINE)
    return os.path.realpath(match.group(1).strip()) if match else None


def find_cuda_home(environ=os.environ) -> str | None:
    """The CUDA toolkit to build with, or None. ``CUDA_HOME`` / ``CUDA_PATH`` when set (an error if they do not
    name a toolkit); else the toolkit of the ``nvcc`` on PATH, asked with ``--dryrun`` and then through its real
    path; else ``/usr/local/cuda`` and ``/usr/local/cuda-*`` (newest first). torch's own guess,
    ``dirname(dirname(which nvcc))``, is ``/usr/local`` for a wrapper ``/usr/local/bin/nvcc``, and the link then
    fails with ``cannot find -lcudart``."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if environ.get(var):
            if not is_cuda_toolkit(environ[var]):
                raise SystemExit(f"setup.py: {var}={environ[var]} is not a CUDA toolkit (no bin/nvcc with "
                                 "lib64/libcudart.so beside it); point it at the folder that holds bin/nvcc")
            return os.path.realpath(environ[var])
    candidates = []
    nvcc = shutil.which("nvcc", path=environ.get("PATH"))
    if nvcc:
        candidates += [nvcc_top(nvcc), os.path.dirname(os.path.dirname(os.path.realpath(nvcc)))]
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True)
    return next((os.path.realpath(c) for c in candidates if c and is_cuda_toolkit(c)), None)


def extensions():
    if os.environ.get("FASTSEGADV_NO_EXTENSIONS") == "1":
        return [], {}
    import torch

    cuda_home = None
    if torch.version.cuda is not None and os.environ.get("FASTSEGADV_NO_CUDA") != "1":
        cuda_home = find_cuda_home()
        if cuda_home is not None:
            os.environ["CUDA_HOME"] = cuda_home  # read once, when torch.utils.cpp_extension is imported
    from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension

    # -ffinite-math-only -fno-trapping-math let GCC vectorise the exp/min/max loops (csrc/cpu/fast_math.h);
    # the kernels never rely on NaN/inf semantics (the reference defines behaviour on finite logits).
    # torch >= 2.14's headers need C++20 (ATen.h: "C++20 or later compatible compiler is required");
    # older releases build as they always have, with C++17
    major_minor = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2])
    std = "-std=c++20" if major_minor >= (2, 14) else "-std=c++17"
    cxx = ["-O3", "-fopenmp", std, "-ffinite-math-only", "-fno-trapping-math", "-fno-math-errno"]
    if os.environ.get("FASTSEGADV_PORTABLE") != "1":
        cxx.append("-march=native")
    sources = ["csrc/ops.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    if cuda_home is not None:
        ext = CUDAExtension(
            "fastsegadv._C", sources + sorted(glob.glob("csrc/cuda/*.cu")),
            extra_compile_args={"cxx": cxx, "nvcc": ["-O3", "--use_fast_math", "-std=c++20"]},
            extra_link_args=["-fopenmp"],
        )
    else:
        ext = CppExtension("fastsegadv._C", sources, extra_compile_args=cxx, extra_link_args=["-fopenmp"])
    return [ext], {"build_ext": BuildExtension.with_options(use_ninja=True)}


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import find_cuda_home
    ext_modules, cmdclass = extensions()
    # name, version, dependencies, extras and the console script: pyproject.toml ([project])
    setup(
        packages=packages,
        package_dir={"fastsegadv.kernels": "kernels"},
        ext_modules=ext_modules,
        cmdclass=cmdclass,
    )

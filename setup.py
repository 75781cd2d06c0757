"""Install with ``pip install --no-build-isolation -e .`` after ``pip install torch==2.13.0``.

``kernels/`` is installed as ``fastsegadv.kernels`` (package_dir), never as a top-level package.
"""
from setuptools import find_packages, setup

packages = find_packages(include=["fastsegadv", "fastsegadv.*"]) + ["fastsegadv.kernels"]

setup(
    name="fastsegadv",
    version="0.1.0",
    description="Adversarial attacks, adversarial training and fused losses for semantic segmentation",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=packages,
    package_dir={"fastsegadv.kernels": "kernels"},
    package_data={"fastsegadv": ["weights/*.pt"]},
    install_requires=["torch>=2.4", "numpy", "tqdm", "matplotlib", "scikit-learn"],
    extras_require={
        "test": ["pytest", "pytest-benchmark", "ninja", "triton", "scipy"],
    },
    entry_points={"console_scripts": ["fastsegadv=fastsegadv.cli:main"]},
)

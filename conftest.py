"""Shared by tests/ and benchmarks/: importing fastsegadv first makes the Hugging Face ``kernels`` package
win over this checkout's ``kernels/`` folder, which pytest's root-on-``sys.path`` would otherwise expose as
a top-level ``kernels`` to ``transformers`` (see ``fastsegadv._prefer_hub_kernels``)."""
import fastsegadv  # noqa: F401

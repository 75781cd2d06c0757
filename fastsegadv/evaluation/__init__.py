"""Robustness evaluation: the harness (:func:`evaluate_model`, :class:`EvalConfig`) and the report
folder it writes (:func:`write_report`, checked by :func:`verify_report`)."""
from ..distributed.sharding import batch_ranges, clean_confusion
from .harness import DEFAULT_ATTACKS, TIERS, EvalConfig, ModelResult, evaluate_model, evaluate_models
from .report import IncompleteReport, markdown_table, verify_report, write_report

__all__ = ["EvalConfig", "ModelResult", "evaluate_model", "evaluate_models", "write_report", "verify_report",
           "IncompleteReport", "markdown_table",
           "batch_ranges", "clean_confusion", "DEFAULT_ATTACKS", "TIERS"]

"""The robustness studies of Arnab et al. (002): ε sweeps, multiscale, transfer, CRF."""
from .crf_study import crf_study
from .eps_sweep import eps_sweep, sweep_tables
from .run import findings, run_study
from .transfer import matrix_rows, transfer_matrix

__all__ = ["eps_sweep", "sweep_tables", "transfer_matrix", "matrix_rows", "crf_study", "run_study", "findings"]

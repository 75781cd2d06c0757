"""Eager reference losses: one file per concept, each citing its equation (DESIGN.md §2-3)."""
from .cospgd import cospgd_loss, cospgd_weight
from .cross_entropy import cross_entropy
from .prototypes import class_prototypes, masked_class_sums_reference, prototype_loss
from .regions import (
    BOUNDARY,
    FALSE,
    TRUE,
    init_region_state,
    region_counts,
    region_lambdas,
    region_loss,
    region_weight,
    update_region_state,
)
from .segpgd import segpgd_lambda, segpgd_loss, segpgd_weight
from .uncertainty import uncertainty_loss, uncertainty_measure, uncertainty_weight
from .weighted import Weighting, weighted_cross_entropy_reference
from .zero_out import zero_out_loss, zero_out_weight



def weighted_cross_entropy(*args, **kwargs):
    """Weighted per-pixel CE on the chosen backend; see :func:`fastsegadv.fused.weighted_cross_entropy`."""
    from ..fused import weighted_cross_entropy as dispatch

    return dispatch(*args, **kwargs)


__all__ = [
    "Weighting", "weighted_cross_entropy", "weighted_cross_entropy_reference", "cross_entropy", "segpgd_loss", "segpgd_lambda", "segpgd_weight",
    "region_loss", "region_weight", "region_lambdas", "region_counts", "init_region_state",
    "update_region_state", "TRUE", "BOUNDARY", "FALSE", "prototype_loss", "class_prototypes",
    "masked_class_sums_reference", "cospgd_loss", "cospgd_weight", "uncertainty_loss", "uncertainty_measure",
    "uncertainty_weight", "zero_out_loss", "zero_out_weight",
]

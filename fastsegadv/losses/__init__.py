"""The public losses, one file per paper, each a thin function with the paper's signature on the fused
ops (:func:`fastsegadv.ops.weighted_cross_entropy`). Their per-pixel weights and schedules, and the eager
reference the value tests check, live one layer down in :mod:`fastsegadv.reference`."""
from ..ops.weighted_ce import weighted_cross_entropy
from ..reference.cospgd import cospgd_weight
from ..reference.prototypes import masked_class_sums_reference
from ..reference.regions import (
    BOUNDARY,
    FALSE,
    TRUE,
    init_region_state,
    region_counts,
    region_lambdas,
    region_weight,
    update_region_state,
)
from ..reference.segpgd import segpgd_lambda, segpgd_weight
from ..reference.uncertainty import uncertainty_measure, uncertainty_weight
from ..reference.weighted import Weighting, weighted_cross_entropy_reference
from ..reference.zero_out import zero_out_weight
from .cospgd import cospgd_loss
from .cross_entropy import cross_entropy
from .prototypes import class_prototypes, prototype_loss
from .regions import region_loss
from .segpgd import segpgd_loss
from .uncertainty import uncertainty_loss
from .zero_out import zero_out_loss

__all__ = [
    "Weighting", "weighted_cross_entropy", "weighted_cross_entropy_reference", "cross_entropy", "segpgd_loss",
    "segpgd_lambda", "segpgd_weight", "region_loss", "region_weight", "region_lambdas", "region_counts",
    "init_region_state", "update_region_state", "TRUE", "BOUNDARY", "FALSE", "prototype_loss", "class_prototypes",
    "masked_class_sums_reference", "cospgd_loss", "cospgd_weight", "uncertainty_loss", "uncertainty_measure",
    "uncertainty_weight", "zero_out_loss", "zero_out_weight",
]

"""Attacks as plain functions ``attack(model, images, labels, *, eps, alpha, steps, ...) -> adv_images``.

Images in [0, 1]; eps/alpha on that scale (a budget stated on a normalised scale converts with
:func:`budget_from_normalized`). Options every attack takes (forwarded to
:func:`~fastsegadv.attacks.driver.run_attack`): ``best_iterate``, ``trace``, ``seed``, ``normalization``,
``eval_mode``, ``ignore_index``.

``eval_mode=True`` (default): the attack runs with the model in eval mode (dropout off, BatchNorm on its
running statistics), as the papers do. ``eval_mode=False`` runs it in the model's current mode (e.g. train
mode, as some AT codebases do); BatchNorm's running statistics are restored afterwards. Either way every
module's mode and every parameter's ``requires_grad`` are as before, and no weight gradient is computed.
"""
from .apgd import apgd
from .best_iterate import BestIterate, mis_ratio_per_image
from .cospgd import cospgd
from .cw import cw_l2
from .dag import dag
from .deepfool import deepfool
from .driver import run_attack
from .fgsm import fgsm, fgsm_ll, ifgsm, ifgsm_iterations, ifgsm_ll, least_likely_labels
from .model_io import (
    FeatureHook,
    NonFiniteLogitsError,
    NormalizedModel,
    extract_logits,
    frozen_for_attack,
    logits_at,
)
from .normalized_budget import IMAGENET_MEAN, IMAGENET_STD, budget_from_normalized
from .objectives import DagMargin, Objective, RegionPrototype, WeightedCE
from .padam import padam
from .perturbation import perturbation_norms
from .pgd import bim_l2, pgd
from .registry import ATTACKS, REGISTRY, AttackSpec, get_attack
from .rppgd import rp_pgd
from .sea import sea, sea_apgd, tsallis_pgd
from .segpgd import segfgsm, segpgd
from .trace import AttackTrace
from .uncertainty import pixel_subset_ifgsm, random_pixel_mask, uncertainty_fgsm, uncertainty_ifgsm, uncertainty_pgd

__all__ = [
    "fgsm",
    "fgsm_ll",
    "ifgsm",
    "ifgsm_ll",
    "pgd",
    "bim_l2",
    "segpgd",
    "segfgsm",
    "cospgd",
    "rp_pgd",
    "uncertainty_fgsm",
    "uncertainty_ifgsm",
    "uncertainty_pgd",
    "pixel_subset_ifgsm",
    "dag",
    "cw_l2",
    "deepfool",
    "apgd",
    "padam",
    "sea",
    "sea_apgd",
    "tsallis_pgd",
    "ATTACKS",
    "REGISTRY",
    "BestIterate",
    "AttackSpec",
    "get_attack",
    "AttackTrace",
    "run_attack",
    "mis_ratio_per_image",
    "ifgsm_iterations",
    "least_likely_labels",
    "NormalizedModel",
    "FeatureHook",
    "extract_logits",
    "logits_at",
    "frozen_for_attack",
    "NonFiniteLogitsError",
    "budget_from_normalized",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Objective",
    "WeightedCE",
    "RegionPrototype",
    "DagMargin",
    "random_pixel_mask",
    "perturbation_norms",
]

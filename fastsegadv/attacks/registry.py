"""Attacks by name, and ``"name@steps"`` specs for training and evaluation configs.

    >>> spec = AttackSpec.parse("segpgd@20")            # SegPGD, 20 iterations
    >>> spec = AttackSpec.parse("rp_pgd:beta=1.0@10")   # options as key=value (Python literals)
    >>> adv = spec.run(model, images, labels, eps=8 / 255, alpha=0.01, seed=0)
"""
from __future__ import annotations

import ast
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field

from .apgd import apgd
from .cospgd import cospgd
from .cw import cw_l2
from .dag import dag
from .deepfool import deepfool
from .fgsm import fgsm, fgsm_ll, ifgsm, ifgsm_ll
from .padam import padam
from .pgd import bim_l2, pgd
from .rppgd import rp_pgd
from .sea import sea, sea_apgd, tsallis_pgd
from .segpgd import segfgsm, segpgd
from .uncertainty import pixel_subset_ifgsm, uncertainty_fgsm, uncertainty_ifgsm, uncertainty_pgd


@dataclass(frozen=True)
class AttackInfo:
    """What the harness, specs and reports need to know of an attack, in one table."""

    fn: Callable
    display: str  # column name in the layout of 001 Table 1
    single_step: bool = False  # no steps/alpha
    # its budget is not the shared ℓ∞ eps: BIM-ℓ2 needs its own ℓ2 radius (``bim_l2:eps=...,alpha=...``);
    # CW and DeepFool look for a minimal perturbation. The harness's ℓ∞ eps and alpha never reach them.
    own_budget: bool = False


REGISTRY: dict[str, AttackInfo] = {
    "fgsm": AttackInfo(fgsm, "FGSM", single_step=True),
    "fgsm_ll": AttackInfo(fgsm_ll, "FGSM-II", single_step=True),
    "ifgsm": AttackInfo(ifgsm, "I-FGSM"),
    "ifgsm_ll": AttackInfo(ifgsm_ll, "I-FGSM-II"),
    "pgd": AttackInfo(pgd, "PGD"),
    "bim_l2": AttackInfo(bim_l2, "BIM-L2", own_budget=True),
    "segpgd": AttackInfo(segpgd, "SegPGD"),
    "segfgsm": AttackInfo(segfgsm, "SegFGSM", single_step=True),
    "cospgd": AttackInfo(cospgd, "CosPGD"),
    "rp_pgd": AttackInfo(rp_pgd, "RP-PGD"),
    "uncertainty_fgsm": AttackInfo(uncertainty_fgsm, "FGSM-L", single_step=True),
    "uncertainty_ifgsm": AttackInfo(uncertainty_ifgsm, "I-FGSM-L"),
    "uncertainty_pgd": AttackInfo(uncertainty_pgd, "PGD-L"),
    "pixel_subset_ifgsm": AttackInfo(pixel_subset_ifgsm, "I-FGSM-subset"),
    "dag": AttackInfo(dag, "DAG"),
    "cw_l2": AttackInfo(cw_l2, "CW", own_budget=True),
    "deepfool": AttackInfo(deepfool, "DeepFool", own_budget=True),
    "apgd": AttackInfo(apgd, "APGD"),
    "padam": AttackInfo(padam, "PAdam"),  # projected Adam (AMSGrad) on δ, loss="ce" or "cos"
    "sea_apgd": AttackInfo(sea_apgd, "SEA-APGD"),  # one loss of SEA, with radius reduction
    "sea": AttackInfo(sea, "SEA"),  # all three losses, per-image worst case (the harness expands sea@N)
    "tsallis_pgd": AttackInfo(tsallis_pgd, "TsallisPGD"),  # Tsallis-CE gradient, q from -2 to 1 per stage
}
# views of the one table
ATTACKS = {name: info.fn for name, info in REGISTRY.items()}
DISPLAY_NAMES = {name: info.display for name, info in REGISTRY.items()}
SINGLE_STEP = tuple(name for name, info in REGISTRY.items() if info.single_step)
L2_ATTACKS = tuple(name for name, info in REGISTRY.items() if info.own_budget)


def get_attack(name: str):
    """The attack function registered as ``name`` (see :data:`REGISTRY`)."""
    if name not in ATTACKS:
        close = difflib.get_close_matches(name, list(ATTACKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown attack {name!r}{hint}; known attacks: {', '.join(sorted(ATTACKS))}")
    return ATTACKS[name]


@dataclass(frozen=True)
class AttackSpec:
    """One attack at one iteration budget, with fixed options (e.g. ``beta`` of RP-PGD)."""

    name: str
    steps: int | None = None  # None: the attack's own (paper) iteration count, e.g. I-FGSM's min(eps+4, 1.25 eps)
    options: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        get_attack(self.name)  # unknown names fail here, before any work
        if self.name in SINGLE_STEP and self.steps not in (None, 1):
            raise ValueError(f"{self.name} is a single-step attack; use {self.name}@1")
        if self.steps is not None and (not isinstance(self.steps, int) or isinstance(self.steps, bool)
                                       or self.steps < 1):
            raise ValueError(f"attack steps must be an integer >= 1, got {self.steps!r}")
        if self.name == "bim_l2" and "eps" not in self.options:
            raise ValueError("bim_l2 needs its own ℓ2 radius (the shared eps is an ℓ∞ budget): "
                             "e.g. 'bim_l2:eps=1.0,alpha=0.1@10'")

    @classmethod
    def parse(cls, text: str) -> "AttackSpec":
        """``"pgd@10"``, ``"rp_pgd:beta=1.0@20"``, ``"fgsm"`` (one step), ``"ifgsm"`` (the attack's own step count:
        here the 002/004 rule n = min(eps + 4, floor(1.25 eps)))."""
        body, _, steps = text.partition("@")
        name, _, opts = body.partition(":")
        options = {}
        for item in filter(None, (o.strip() for o in opts.split(","))):
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"attack option {item!r} in {text!r} is not key=value")
            try:
                options[key.strip()] = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                options[key.strip()] = value.strip()
        if steps:
            try:
                n = int(steps)
            except ValueError:
                raise ValueError(f"attack spec {text!r}: steps after '@' must be an integer") from None
        else:
            n = 1 if name.strip() in SINGLE_STEP else None
        return cls(name.strip(), n, options)

    @property
    def label(self) -> str:
        """Column name in the layout of 001 Table 1: ``PGD10``, ``SegPGD20``, ``RP-PGD(beta=1.0)10``."""
        base = DISPLAY_NAMES.get(self.name, self.name)
        if self.options:
            base += "(" + ",".join(f"{k}={v}" for k, v in sorted(self.options.items())) + ")"
        return base if self.name in SINGLE_STEP or self.steps is None else f"{base}{self.steps}"

    def __str__(self) -> str:
        opts = ":" + ",".join(f"{k}={v!r}" for k, v in sorted(self.options.items())) if self.options else ""
        return f"{self.name}{opts}" + ("" if self.steps is None else f"@{self.steps}")

    def run(self, model, images, labels, **kwargs):
        """``attack(model, images, labels, **kwargs, **options)`` with ``steps`` when the spec sets them.

        The paper's settings apply unless the spec (or the caller) sets a value: a shared ``alpha=None``
        is dropped, so I-FGSM keeps alpha = 1/255 and SegPGD 0.01; a spec without ``@steps`` keeps the
        attack's own count. The spec's own options win over the shared ``kwargs`` (``dag:alpha=0.002``);
        single-step attacks get no ``steps``/``alpha``; ℓ2 and minimal-perturbation attacks
        (:data:`L2_ATTACKS`) never receive the shared ℓ∞ ``eps``/``alpha``."""
        fn = get_attack(self.name)
        kw = {k: v for k, v in kwargs.items() if not (k == "alpha" and v is None)}
        if self.name in L2_ATTACKS:
            kw.pop("eps", None)
            kw.pop("alpha", None)
        kw.update(self.options)
        if self.name in SINGLE_STEP:
            kw.pop("alpha", None)
        elif self.steps is not None:
            kw["steps"] = self.steps
        return fn(model, images, labels, **kw)

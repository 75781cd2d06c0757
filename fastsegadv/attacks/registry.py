"""Attacks by name, and ``"name@steps"`` specs for training and evaluation configs.

    >>> spec = AttackSpec.parse("segpgd@20")            # SegPGD, 20 iterations
    >>> spec = AttackSpec.parse("rp_pgd:beta=1.0@10")   # options as key=value (Python literals)
    >>> adv = spec.run(model, images, labels, eps=8 / 255, alpha=0.01, seed=0)
"""
from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field

DISPLAY_NAMES = {
    "fgsm": "FGSM", "fgsm_ll": "FGSM-II", "ifgsm": "I-FGSM", "ifgsm_ll": "I-FGSM-II", "pgd": "PGD",
    "bim_l2": "BIM-L2", "segpgd": "SegPGD", "segfgsm": "SegFGSM", "cospgd": "CosPGD", "rp_pgd": "RP-PGD",
    "uncertainty_fgsm": "FGSM-L", "uncertainty_ifgsm": "I-FGSM-L", "uncertainty_pgd": "PGD-L",
    "pixel_subset_ifgsm": "I-FGSM-subset", "dag": "DAG", "cw_l2": "CW", "deepfool": "DeepFool",
    "apgd": "APGD",
}
SINGLE_STEP = ("fgsm", "fgsm_ll", "segfgsm", "uncertainty_fgsm")


def get_attack(name: str):
    """The attack function registered as ``name`` (see ``fastsegadv.attacks.ATTACKS``)."""
    from . import ATTACKS

    if name not in ATTACKS:
        close = difflib.get_close_matches(name, list(ATTACKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown attack {name!r}{hint}; known attacks: {', '.join(sorted(ATTACKS))}")
    return ATTACKS[name]


@dataclass(frozen=True)
class AttackSpec:
    """One attack at one iteration budget, with fixed options (e.g. ``beta`` of RP-PGD)."""

    name: str
    steps: int
    options: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        get_attack(self.name)  # unknown names fail here, before any work
        if self.name in SINGLE_STEP and self.steps != 1:
            raise ValueError(f"{self.name} is a single-step attack; use {self.name}@1")
        if not isinstance(self.steps, int) or self.steps < 1:
            raise ValueError(f"attack steps must be an integer >= 1, got {self.steps!r}")

    @classmethod
    def parse(cls, text: str) -> "AttackSpec":
        """``"pgd@10"``, ``"rp_pgd:beta=1.0@20"``, ``"fgsm"`` (one step)."""
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
            n = 1 if name.strip() in SINGLE_STEP else 10
        return cls(name.strip(), n, options)

    @property
    def label(self) -> str:
        """Column name in the layout of 001 Table 1: ``PGD10``, ``SegPGD20``, ``RP-PGD(beta=1.0)10``."""
        base = DISPLAY_NAMES.get(self.name, self.name)
        if self.options:
            base += "(" + ",".join(f"{k}={v}" for k, v in sorted(self.options.items())) + ")"
        return base if self.name in SINGLE_STEP else f"{base}{self.steps}"

    def __str__(self) -> str:
        opts = ":" + ",".join(f"{k}={v!r}" for k, v in sorted(self.options.items())) if self.options else ""
        return f"{self.name}{opts}@{self.steps}"

    def run(self, model, images, labels, **kwargs):
        """``attack(model, images, labels, steps=..., **kwargs, **options)``: the spec's own options win over
        the shared ``kwargs`` (e.g. ``dag:alpha=0.002``); single-step attacks get no ``steps``/``alpha``."""
        fn = get_attack(self.name)
        kw = dict(kwargs)
        kw.update(self.options)
        if self.name in SINGLE_STEP:
            kw.pop("alpha", None)
        else:
            kw["steps"] = self.steps
        return fn(model, images, labels, **kw)

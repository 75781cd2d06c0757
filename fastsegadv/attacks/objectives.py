"""What an attack ascends, step by step. An objective sees this forward's logits (at label resolution),
the labels it attacks, t of T, and (if it asks) the hooked features; it may keep per-pixel state on the
device (RP-PGD regions).

A graph-captured attack step (driver.py, ``compile_step``) calls an objective with ``step=None`` and the
kernel parameters of t as a tensor (``params = objective.kernel_params(t, T)``), so one graph serves every
t: an objective must let t reach its loss only through those parameters."""
from __future__ import annotations

import torch

from ..losses import Weighting, init_region_state, prototype_loss, region_counts, weighted_cross_entropy
from ..ops.upsample_weighted_ce import upsample_weighted_cross_entropy
from ..ops.weighted_ce import encode


class Objective:
    """Base: plain CE (PGD, FGSM, I-FGSM)."""

    needs_features = False
    needs_clean_prediction = False
    # can take logits below the label resolution (``low_res=True``) and upsample them inside the loss
    supports_low_res = True

    def __init__(self, *, ignore_index: int = 255):
        self.ignore_index = ignore_index

    def begin(self, labels: torch.Tensor, clean_prediction: torch.Tensor | None) -> None:
        """Called before the first step of each restart."""

    def kernel_params(self, step: int, steps: int) -> torch.Tensor | None:
        """The fused kernels' parameters at t of T (a CPU float32 ``[6]`` tensor), or None if constant."""
        return None

    def __call__(self, logits, labels, *, step: int | None, steps: int, features=None, low_res: bool = False,
                 params: torch.Tensor | None = None) -> torch.Tensor:
        if low_res:  # logits [B, C, h, w] upsampled bilinearly to the labels inside the fused loss
            return upsample_weighted_cross_entropy(logits, labels, ignore_index=self.ignore_index)
        return weighted_cross_entropy(logits, labels, ignore_index=self.ignore_index, validate=False)

    def per_image(self, logits, labels, *, step: int | None, steps: int, features=None, low_res: bool = False,
                  params: torch.Tensor | None = None) -> torch.Tensor:
        """``[B]``: image b's part of the ascended loss over its own valid pixels (``best_iterate="loss"``
        ranks one image's iterates by it, as Croce et al.'s APGD keeps its highest-loss iterate). A subclass
        that defines its own ``__call__`` must define this too."""
        if type(self).__call__ is not Objective.__call__ and type(self)._per_pixel is Objective._per_pixel:
            raise NotImplementedError(f"{type(self).__name__} defines __call__ but not per_image: "
                                      "best_iterate='loss' needs the objective's value per image")
        per_pixel = self._per_pixel(logits, labels, step=step, steps=steps, low_res=low_res, params=params)
        n_valid = (labels != self.ignore_index).flatten(1).sum(1).clamp_min(1)  # [B]
        return per_pixel.float().flatten(1).sum(1) / n_valid

    def _per_pixel(self, logits, labels, *, step, steps, low_res, params) -> torch.Tensor:
        """``[B, H, W]`` per-pixel loss at label resolution, 0 where ignored."""
        if low_res:
            return upsample_weighted_cross_entropy(logits, labels, ignore_index=self.ignore_index, validate=False,
                                                   reduction="none")
        return weighted_cross_entropy(logits, labels, ignore_index=self.ignore_index, validate=False,
                                      reduction="none")

    def region_counts(self, labels: torch.Tensor) -> torch.Tensor | None:
        return None


class WeightedCE(Objective):
    """``(1/N_v) sum_i w_i CE_i`` with the weight terms of a :class:`~fastsegadv.losses.Weighting`."""

    def __init__(self, weighting: Weighting, *, ignore_index: int = 255):
        super().__init__(ignore_index=ignore_index)
        self.weighting = weighting
        self.needs_clean_prediction = weighting.regions
        self.state: torch.Tensor | None = None

    def begin(self, labels, clean_prediction):
        if self.weighting.regions:
            self.state = init_region_state(clean_prediction, labels, ignore_index=self.ignore_index)

    def kernel_params(self, step, steps):
        if not self.weighting.needs_step:
            return None
        return torch.tensor(encode(self.weighting, step, steps, True)[1], dtype=torch.float32)

    def __call__(self, logits, labels, *, step, steps, features=None, low_res=False, params=None):
        return self._weighted(logits, labels, step=step, steps=steps, low_res=low_res, params=params, reduction="mean")

    def _per_pixel(self, logits, labels, *, step, steps, low_res, params):
        # scoring: on a copy of the region state brought up to this iterate's prediction (as the attack's own
        # loss sees it), the attack's state untouched
        return self._weighted(logits, labels, step=step, steps=steps, low_res=low_res, params=params, reduction="none",
                              state=self.scoring_state())

    def scoring_state(self) -> torch.Tensor | None:
        """A copy of the region state for scoring an iterate (updated by the scoring pass, then dropped)."""
        return None if self.state is None else self.state.clone()

    def _weighted(self, logits, labels, *, step, steps, low_res, params, reduction, state=None):
        kw = dict(weighting=self.weighting, step=step, steps=steps,
                  region_state=self.state if state is None else state, ignore_index=self.ignore_index,
                  params=params, reduction=reduction)
        # the attack checked the labels and made the region state once, before its first step
        if low_res:
            return upsample_weighted_cross_entropy(logits, labels, validate=False, **kw)
        return weighted_cross_entropy(logits, labels, validate=False, **kw)

    def region_counts(self, labels):
        if self.state is None:
            return None
        return region_counts(self.state, labels != self.ignore_index).sum(0)


class RegionPrototype(WeightedCE):
    """RP-PGD hybrid ``L_RP = beta * L_R + (1 - beta) * L_P`` (003 Eq. 7); beta = 1 is regions only.

    Eq. 3 and 7 are per image: ``L_RP,b = beta * L_R,b + (1 - beta) * L_P,b`` with
    ``L_R,b = (1 / N_b) sum_i lambda_{r(i)} CE_i`` over image b's pixels, ``N_b`` its valid (not ignored)
    pixels (Eq. 3's H*W when none is ignored), and ``L_P,b`` Eq. 6 on image b's prototypes; the ascended
    value is their mean over the images. So the balance between the two terms, and an image's adversarial
    example, do not depend on the other images of the batch or on their ignore fraction.
    With beta = 1 the loss is the batch mean over valid pixels: a positive rescaling per step, which the
    sign step removes, so that case is batch-independent too (and can use low-resolution logits)."""

    def __init__(self, *, beta: float = 0.75, ignore_index: int = 255):
        super().__init__(Weighting(regions=True), ignore_index=ignore_index)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta!r}")
        self.beta = beta
        self.needs_features = beta < 1.0
        self.supports_low_res = beta == 1.0  # the prototype term wants labels at the logits' resolution

    def __call__(self, logits, labels, *, step, steps, features=None, low_res=False, params=None):
        if self.beta == 1.0:
            return super().__call__(logits, labels, step=step, steps=steps, low_res=low_res, params=params)
        return self._eq7(logits, labels, step=step, steps=steps, features=features, params=params,
                         state=self.state).mean()

    def per_image(self, logits, labels, *, step, steps, features=None, low_res=False, params=None):
        """``[B]``: Eq. 7 per image (the mean over the images is the ascended value)."""
        if self.beta == 1.0:
            return super().per_image(logits, labels, step=step, steps=steps, low_res=low_res, params=params)
        return self._eq7(logits, labels, step=step, steps=steps, features=features, params=params,
                         state=self.scoring_state())

    def _eq7(self, logits, labels, *, step, steps, features, params, state):
        """``[B]`` Eq. 7 per image; ``state``: the region state it reads and updates (T -> B where wrong)."""
        if features is None:
            raise ValueError("RP-PGD's prototype term saw no features: the feature_layer did not run in the "
                               "forward that produced the logits; name one that does with feature_layer=")
        if features.shape[0] != labels.shape[0]:
            raise ValueError(f"RP-PGD's prototype term got the features of {features.shape[0]} inputs for "
                             f"{labels.shape[0]} images: the model runs its input in pieces (a SlidingWindow?), so "
                             "no layer holds the whole image's features; use beta=1 (the region loss alone)")
        per_pixel = weighted_cross_entropy(  # [B, H, W]: lambda_{r(i)} * CE_i, 0 where ignored
            logits, labels, weighting=self.weighting, step=step, steps=steps, region_state=state,
            ignore_index=self.ignore_index, params=params, validate=False, reduction="none")
        n_valid = (labels != self.ignore_index).flatten(1).sum(1).clamp_min(1)  # [B]
        l_r = per_pixel.float().flatten(1).sum(1) / n_valid  # [B], Eq. 3 per image
        l_p = prototype_loss(features, labels, state, num_classes=logits.shape[1],
                             ignore_index=self.ignore_index, reduction="none")  # [B], Eq. 6 per image
        return self.beta * l_r + (1.0 - self.beta) * l_p.float()  # [B], Eq. 7 per image


class DagMargin(Objective):
    """DAG (Xie et al., ICCV 2017), untargeted as in adv-lib: push down ``z_y - max_{k != y} z_k`` on the
    pixels still correctly classified (the ascended value is its negative sum)."""

    supports_low_res = False

    def __call__(self, logits, labels, *, step, steps, features=None, low_res=False, params=None):
        return self.per_image(logits, labels, step=step, steps=steps).sum()

    def per_image(self, logits, labels, *, step, steps, features=None, low_res=False, params=None):
        """``[B]``: minus image b's sum of positive margins (the ascended value is their sum)."""
        z = logits.float()
        valid = labels != self.ignore_index
        safe = torch.where(valid, labels, torch.zeros_like(labels))
        z_y = z.gather(1, safe.unsqueeze(1)).squeeze(1)  # [B, H, W]
        others = z.scatter(1, safe.unsqueeze(1), float("-inf")).amax(1)  # [B, H, W]
        margin = z_y - others
        active = valid & (margin.detach() > 0)
        return -(margin * active).flatten(1).sum(1)

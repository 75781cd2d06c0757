"""The CRF study of 002 §7 / §A5: a model with a dense CRF appended, attacked end to end (white box),
attacked with perturbations computed on the model alone (transfer: exposes gradient masking), with
untargeted (FGSM, I-FGSM) and targeted (FGSM II, Iterative FGSM II) attacks, and the mean confidence and
entropy of the predictions against the IoU Ratio."""
from __future__ import annotations

from functools import partial

import torch.nn as nn
from tqdm import tqdm

from ..attacks import fgsm, fgsm_ll, ifgsm, ifgsm_ll
from ..models.crf import DenseCRF, WithCRF
from .common import attacked_confusions

CRF_ATTACKS = {"FGSM": (fgsm, False), "I-FGSM": (ifgsm, False), "FGSM II": (fgsm_ll, True),
               "Iterative FGSM II": (ifgsm_ll, True)}


def crf_study(model: nn.Module, images, labels, *, num_classes: int, crf: DenseCRF | None = None,
              eps_list=(2, 4, 8), batch_size: int = 16, ignore_index: int = 255, progress: bool = True) -> list[dict]:
    """Rows ``{"attack", "targeted", "eps", "network", "source", "miou", "iou_ratio", "confidence", "entropy"}``
    for network in {model, model+CRF} and source in {white-box, model (transfer to model+CRF)}; ``eps``
    on the 0-255 scale (0 = clean)."""
    with_crf = WithCRF(model, crf or DenseCRF()).eval()
    nets = {"model": model, "model+CRF": with_crf}
    kw = dict(num_classes=num_classes, batch_size=batch_size, ignore_index=ignore_index)
    st: dict = {}
    cms = attacked_confusions(nets, images, labels, attack=None, stats=st, **kw)
    rows = [{"attack": "clean", "targeted": False, "eps": 0, "network": name, "source": "-",
             "miou": cms[name].miou(), "iou_ratio": 1.0, **st[name]} for name in nets]
    clean = {r["network"]: r["miou"] for r in rows}

    def row(attack, targeted, eps, name, source, cm, stats):
        m = cm.miou()
        return {"attack": attack, "targeted": targeted, "eps": eps, "network": name, "source": source, "miou": m,
                "iou_ratio": m / clean[name] if clean[name] > 0 else float("nan"), **stats}

    jobs = [(a, e) for a in CRF_ATTACKS for e in eps_list]
    bar = tqdm(total=len(jobs), desc="CRF study", disable=not progress)
    for attack, eps in jobs:
        fn, targeted = CRF_ATTACKS[attack]
        atk = partial(fn, eps=eps / 255, ignore_index=ignore_index)
        # examples from the model alone: white box on the model, transferred to model+CRF
        st_m: dict = {}
        from_model = attacked_confusions(nets, images, labels, attack=atk, source=model, stats=st_m, **kw)
        st_c: dict = {}
        white_crf = attacked_confusions({"model+CRF": with_crf}, images, labels, attack=atk, stats=st_c, **kw)
        rows += [row(attack, targeted, eps, "model", "white-box", from_model["model"], st_m["model"]),
                 row(attack, targeted, eps, "model+CRF", "white-box", white_crf["model+CRF"], st_c["model+CRF"]),
                 row(attack, targeted, eps, "model+CRF", "model", from_model["model+CRF"], st_m["model+CRF"])]
        bar.update(1)
    bar.close()
    return rows

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
from .common import attacked_confusion

CRF_ATTACKS = {"FGSM": (fgsm, False), "I-FGSM": (ifgsm, False), "FGSM II": (fgsm_ll, True),
               "Iterative FGSM II": (ifgsm_ll, True)}


def crf_study(model: nn.Module, images, labels, *, num_classes: int, crf: DenseCRF | None = None,
              eps_list=(2, 4, 8), batch_size: int = 16, ignore_index: int = 255, progress: bool = True) -> list[dict]:
    """Rows ``{"attack", "targeted", "eps", "network", "source", "miou", "iou_ratio", "confidence", "entropy"}``
    for network in {model, model+CRF} and source in {white-box, model (transfer to model+CRF)}; ``eps``
    on the 0-255 scale (0 = clean)."""
    with_crf = WithCRF(model, crf or DenseCRF()).eval()
    nets = {"model": model, "model+CRF": with_crf}
    rows = []
    for name, net in nets.items():
        st: dict = {}
        cm = attacked_confusion(net, images, labels, num_classes=num_classes, attack=None, batch_size=batch_size,
                                ignore_index=ignore_index, stats=st)
        rows.append({"attack": "clean", "targeted": False, "eps": 0, "network": name, "source": "-",
                     "miou": cm.miou(), "iou_ratio": 1.0, **st})
    clean = {r["network"]: r["miou"] for r in rows}
    jobs = [(a, e, n, s) for a in CRF_ATTACKS for e in eps_list
            for n, s in (("model", "white-box"), ("model+CRF", "white-box"), ("model+CRF", "model"))]
    bar = tqdm(total=len(jobs), desc="CRF study", disable=not progress)
    for attack, eps, name, source in jobs:
        fn, targeted = CRF_ATTACKS[attack]
        atk = partial(fn, eps=eps / 255, ignore_index=ignore_index)
        st = {}
        cm = attacked_confusion(nets[name], images, labels, num_classes=num_classes, attack=atk,
                                source=model if source == "model" else None, batch_size=batch_size,
                                ignore_index=ignore_index, stats=st)
        rows.append({"attack": attack, "targeted": targeted, "eps": eps, "network": name, "source": source,
                     "miou": cm.miou(), "iou_ratio": cm.miou() / clean[name] if clean[name] > 0 else float("nan"),
                     **st})
        bar.update(1)
    bar.close()
    return rows

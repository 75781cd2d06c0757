"""fastsegadv.models.SlidingWindow against mmseg's slide_inference written out here independently
(windows, F.pad of each window's resized logits, division by the count map): same windows, same
logits, same input gradient; chunking and recomputation change nothing; attacks run through it on
full-resolution images and leave the model as it was."""
import json
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastsegadv import attacks as A
from fastsegadv.models import SlidingWindow, TinyDeepLab, window_grid


def mmseg_windows(h_img, w_img, crop, stride):
    """mmseg 1.x EncoderDecoder.slide_inference's loop, transcribed."""
    (h_crop, w_crop), (h_stride, w_stride) = crop, stride
    h_grids = max(h_img - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(w_img - w_crop + w_stride - 1, 0) // w_stride + 1
    out = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y1 = h_idx * h_stride
            x1 = w_idx * w_stride
            y2 = min(y1 + h_crop, h_img)
            x2 = min(x1 + w_crop, w_img)
            y1 = max(y2 - h_crop, 0)
            x1 = max(x2 - w_crop, 0)
            out.append((y1, y2, x1, x2))
    return out


def mmseg_slide(model, inputs, crop, stride, num_classes):
    """mmseg's stitching: preds += F.pad(crop logits), count_mat += 1, preds / count_mat."""
    b, _, h_img, w_img = inputs.shape
    preds = inputs.new_zeros((b, num_classes, h_img, w_img))
    count_mat = inputs.new_zeros((b, 1, h_img, w_img))
    for y1, y2, x1, x2 in mmseg_windows(h_img, w_img, crop, stride):
        crop_img = inputs[:, :, y1:y2, x1:x2]
        logit = model(crop_img)
        logit = F.interpolate(logit, size=crop_img.shape[2:], mode="bilinear", align_corners=False)
        preds = preds + F.pad(logit, (int(x1), int(preds.shape[3] - x2), int(y1), int(preds.shape[2] - y2)))
        count_mat[:, :, y1:y2, x1:x2] += 1
    assert (count_mat == 0).sum() == 0
    return preds / count_mat


class QuarterResolution(nn.Module):
    """Logits at 1/4 of the input, like SegFormer's head."""

    def __init__(self, classes=5):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
                                  nn.Conv2d(8, classes, 3, stride=2, padding=1))

    def forward(self, x):
        return {"logits": self.body(x)}


@pytest.mark.parametrize("size, crop, stride", [((64, 96), (32, 48), (21, 32)), ((50, 70), (32, 32), (32, 32)),
                                                ((20, 30), (32, 48), (16, 16)), ((1024, 2048), (512, 1024),
                                                                                   (341, 683))])
def test_windows_are_mmseg_slide_windows(size, crop, stride):
    assert window_grid(size, crop, stride) == mmseg_windows(*size, crop, stride)


@pytest.mark.parametrize("model_kind", ["full", "quarter"])
def test_logits_and_input_gradient_equal_eager_stitching(model_kind):
    torch.manual_seed(0)
    model = (TinyDeepLab(5, width=8) if model_kind == "full" else QuarterResolution()).eval()
    plain = model if model_kind == "full" else (lambda x: model(x)["logits"])
    crop, stride = (32, 48), (21, 32)
    x = torch.rand(2, 3, 64, 96, requires_grad=True)
    upstream = torch.randn(2, 5, 64, 96)  # a non-unit upstream gradient
    ref = mmseg_slide(plain, x, crop, stride, 5)
    (g_ref,) = torch.autograd.grad((ref * upstream).sum(), x)
    for chunk, ckpt in ((1, False), (3, False), (100, False), (2, True)):
        got = SlidingWindow(model, crop, stride, chunk=chunk, checkpoint=ckpt)(x)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
        (g,) = torch.autograd.grad((got * upstream).sum(), x)
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6)


def test_attacks_run_through_it_on_full_resolution_images_and_leave_the_model():
    torch.manual_seed(0)
    model = TinyDeepLab(5, width=8).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    slide = SlidingWindow(model, crop=32, stride=24, chunk=2)
    x = torch.rand(2, 3, 56, 80)
    y = torch.randint(0, 5, (2, 56, 80))
    for attack in (A.pgd, A.segpgd, A.cospgd):
        adv = attack(slide, x, y, eps=4 / 255, steps=2, seed=[0, 1])
        assert (adv - x).abs().max() <= 4 / 255 + 1e-6
        one = attack(slide, x[1:], y[1:], eps=4 / 255, steps=2, seed=[1])  # batch-invariant
        torch.testing.assert_close(one, adv[1:], rtol=0, atol=1e-6)
    adv = A.sea_apgd(slide, x, y, eps=4 / 255, steps=3, seed=[0, 1])
    assert (adv - x).abs().max() <= 4 / 255 + 1e-6
    assert not model.training and all(p.requires_grad for p in model.parameters())
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())


def test_bad_windows_are_refused():
    model = TinyDeepLab(5, width=8)
    with pytest.raises(ValueError, match="stride"):
        SlidingWindow(model, crop=32, stride=48)
    with pytest.raises(ValueError, match="crop"):
        SlidingWindow(model, crop=(32, 0), stride=16)
    with pytest.raises(ValueError, match="chunk"):
        SlidingWindow(model, crop=32, stride=16, chunk=0)


def test_evaluate_slide_option(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run([sys.executable, "-m", "fastsegadv", "evaluate", "--models", "standard", "--attacks",
                           "pgd@1", "--num-images", "2", "--slide", "32", "24", "--no-progress", "--no-curves",
                           "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    table = json.loads((out / "robustness.json").read_text())["table"][0]
    assert 0 <= table["PGD1"] <= table["Clean"] <= 100
    bad = subprocess.run([sys.executable, "-m", "fastsegadv", "evaluate", "--slide", "32x0", "16",
                          "--output", str(out)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "--slide: must be N or HxW" in bad.stderr

import math

import numpy as np
import pytest
import torch

from fastsegadv import metrics as M


def test_confusion_matrix_hand():
    y = torch.tensor([[0, 0, 1, 1, 2, 255]])
    p = torch.tensor([[0, 1, 1, 1, 0, 2]])
    cm = M.confusion_matrix(p, y, 4)
    expected = np.zeros((4, 4), dtype=np.int64)
    for a, b in [(0, 0), (0, 1), (1, 1), (1, 1), (2, 0)]:
        expected[a, b] += 1
    assert cm.matrix.numpy().tolist() == expected.tolist()
    iou = cm.iou()
    assert iou[0].item() == pytest.approx(1 / 3)  # tp 1, union 2 + 2 - 1
    assert iou[1].item() == pytest.approx(2 / 3)
    assert iou[2].item() == 0.0
    assert math.isnan(iou[3].item())  # absent from labels and predictions: excluded
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    assert cm.mis_ratio() == pytest.approx(2 / 5)
    assert M.mis_ratio(p, y) == pytest.approx(2 / 5)


def test_streaming_equals_one_shot():
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 6, (4, 10, 12), generator=g)
    y[:, 0] = 255
    p = torch.randint(0, 6, (4, 10, 12), generator=g)
    whole = M.confusion_matrix(p, y, 6)
    stream = M.ConfusionMatrix(6)
    for i in range(4):
        stream.update(p[i:i + 1], y[i:i + 1])
    assert torch.equal(whole.matrix, stream.matrix)
    merged = M.confusion_matrix(p[:2], y[:2], 6).merge(M.confusion_matrix(p[2:], y[2:], 6))
    assert torch.equal(whole.matrix, merged.matrix)


def test_ratios():
    assert M.delta_miou(0.8, 0.2) == pytest.approx(0.6)
    assert M.iou_ratio(0.8, 0.2) == pytest.approx(0.25)
    assert math.isnan(M.iou_ratio(0.0, 0.1))


def test_all_ignored_and_errors():
    cm = M.ConfusionMatrix(3)
    cm.update(torch.zeros(2, 2, dtype=torch.long), torch.full((2, 2), 255))
    assert math.isnan(cm.miou()) and math.isnan(cm.pixel_accuracy())
    with pytest.raises(ValueError, match="labels outside"):
        cm.update(torch.zeros(1, 2, dtype=torch.long), torch.tensor([[0, 3]]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 2, dtype=torch.long))

import os

# Triton kernels run on CPU tensors in the interpreter; it must be set before a @triton.jit kernel is defined.
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch

from fastsegadv.models import TinyDeepLab


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def tiny_model():
    """A small random TinyDeepLab (5 classes) whose BatchNorm statistics are not the defaults."""
    torch.manual_seed(1)
    model = TinyDeepLab(num_classes=5, width=8)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.rand(4, 3, 20, 24))
    return model.eval()


@pytest.fixture
def batch():
    """Images [2, 3, 20, 24] in [0, 1] and labels [2, 20, 24] with an ignore stripe."""
    g = torch.Generator().manual_seed(2)
    images = torch.rand(2, 3, 20, 24, generator=g)
    labels = torch.randint(0, 5, (2, 20, 24), generator=g)
    labels[:, 5:8] = 255
    return images, labels

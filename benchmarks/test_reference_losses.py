"""Forward+backward of the eager reference losses per mode against a clone() of the logits (the
bandwidth floor of any fused kernel), side by side in one run:

    pytest benchmarks --benchmark-only --benchmark-columns=median,iqr,rounds

The fused kernels (fastsegadv.kernels, csrc/) will be added to this suite as further providers.
"""
import pytest
import torch

from fastsegadv import losses as L

SHAPES = [(4, 21, 128, 128), (2, 21, 256, 256)]
MODES = {
    "ce": L.Weighting(),
    "segpgd": L.Weighting(segpgd="linear"),
    "regions": L.Weighting(regions=True),
    "cospgd": L.Weighting(cospgd="softmax"),
    "entropy": L.Weighting(uncertainty="entropy"),
    "zero_out": L.Weighting(zero_out=0.75),
}


def make(shape):
    b, c, h, w = shape
    g = torch.Generator().manual_seed(0)
    z = torch.randn(shape, generator=g)
    y = torch.randint(0, c, (b, h, w), generator=g)
    y[:, : h // 8] = 255
    state = torch.randint(0, 3, (b, h, w), generator=g).to(torch.uint8)
    return z, y, state


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_clone_roofline(benchmark, shape):
    z, _, _ = make(shape)
    benchmark.extra_info.update(shape=list(shape), bytes=z.numel() * z.element_size() * 2)
    benchmark(z.clone)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_reference_forward_backward(benchmark, shape, mode):
    z, y, state = make(shape)
    z.requires_grad_(True)
    w = MODES[mode]

    def step():
        loss = L.weighted_cross_entropy(z, y, weighting=w, step=2, steps=10, region_state=state,
                                        update_region_state=False)
        (g,) = torch.autograd.grad(loss, z)
        return g

    benchmark.extra_info.update(shape=list(shape), mode=w.describe(), provider="reference")
    g = benchmark(step)
    assert torch.isfinite(g).all()

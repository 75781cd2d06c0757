"""Shared cases for the fused-kernel parity tests: every mode, odd shapes, ignore variants."""
import torch

from fastsegadv import losses as L

MODES = {
    "ce": L.Weighting(),
    "segpgd_linear": L.Weighting(segpgd="linear"),
    "segpgd_log": L.Weighting(segpgd="log"),
    "segpgd_exp": L.Weighting(segpgd="exp"),
    "segpgd_constant": L.Weighting(segpgd="constant", lam=0.3),
    "only_correct": L.Weighting(segpgd="only_correct"),
    "regions": L.Weighting(regions=True),
    "cospgd": L.Weighting(cospgd="softmax"),
    "cospgd_targeted": L.Weighting(cospgd="softmax", cospgd_targeted=True),
    "cospgd_sigmoid": L.Weighting(cospgd="sigmoid"),
    "margin": L.Weighting(uncertainty="margin"),
    "max_min": L.Weighting(uncertainty="max_min"),
    "mean_margin": L.Weighting(uncertainty="mean_margin"),
    "entropy": L.Weighting(uncertainty="entropy"),
    "entropy_detached": L.Weighting(uncertainty="entropy", detach_uncertainty=True),
    "zero_out": L.Weighting(zero_out=0.75),
    "segpgd_x_zero_out": L.Weighting(segpgd="linear", zero_out=0.75),
    "entropy_x_zero_out": L.Weighting(uncertainty="entropy", zero_out=0.75),
    "regions_x_cospgd": L.Weighting(regions=True, cospgd="softmax"),
}


def make_case(b, c, h, w, *, ignore_index=255, dtype=torch.float32, seed=0, channels_last=False, device="cpu"):
    """logits [B,C,H,W] (scale 3, some argmax-correct pixels), labels with an ignore stripe, an all-ignored
    last image when B > 1, and a random region state."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(b, c, h, w, generator=g) * 3
    y = torch.randint(0, c, (b, h, w), generator=g)
    take = torch.rand(b, h, w, generator=g) < 0.4
    y = torch.where(take, z.argmax(1), y)  # ~40% correct: SegPGD / regions / zero-out see both cases
    if ignore_index not in range(c):
        y[:, h // 3: h // 3 + 2] = ignore_index
        if b > 1:
            y[-1] = ignore_index
    state = torch.randint(0, 3, (b, h, w), generator=g).to(torch.uint8)
    z = z.to(dtype)
    if channels_last:
        z = z.contiguous(memory_format=torch.channels_last)
    return z.to(device), y.to(device), state.to(device)


def run(backend, z, y, weighting, *, state, reduction="mean", ignore_index=255, grad_out=None):
    """Loss, gradient and the updated state of one backend."""
    zz = z.detach().clone().requires_grad_(True)
    st = state.clone()
    loss = L.weighted_cross_entropy(zz, y, weighting=weighting, step=3, steps=7, region_state=st,
                                    ignore_index=ignore_index, reduction=reduction, backend=backend)
    g = torch.randn(loss.shape, generator=torch.Generator().manual_seed(9)) * 3 if grad_out is None else grad_out
    (grad,) = torch.autograd.grad(loss, zz, g.to(loss.device, loss.dtype))
    return loss.detach(), grad, st

"""A dense CRF as a differentiable layer (CRF-RNN, Zheng et al. 2015; 002 §7 / §A5), with the pairwise
term of 002 Eq. (1) (Krähenbühl & Koltun 2011), Potts compatibility, and mean-field inference. As in
ConvCRF (Teichmann & Cipolla 2019) the Gaussian kernels are truncated to a ``window × window``
neighbourhood, so it runs at useful resolutions with plain tensor ops (and gradients flow through).

Mean field, for T iterations, with unaries U = the network's logits:

    Q = softmax(U)
    m_i(l) = sum_{j in N(i), j != i} [w1 k_bilateral(i, j) + w2 k_spatial(i, j)] Q_j(l)
    Q = softmax(U - mu * m),  mu(l, l') = [l != l'] (Potts):  (mu * m)(l) = sum_l' m(l') - m(l)

    k_bilateral(i, j) = exp(-|p_i - p_j|^2 / (2 theta_alpha^2) - |I_i - I_j|^2 / (2 theta_beta^2))
    k_spatial(i, j)   = exp(-|p_i - p_j|^2 / (2 theta_gamma^2))

Positions in pixels, colours on the 0-255 scale (the CRF-RNN convention); the layer returns the final
logits ``U - mu * m`` (their softmax is Q). With w1 = w2 = 0 it returns the unaries."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..outputs import logits_at


class DenseCRF(nn.Module):
    def __init__(self, *, iterations: int = 5, w_bilateral: float = 4.0, w_spatial: float = 3.0,
                 theta_alpha: float = 20.0, theta_beta: float = 13.0, theta_gamma: float = 1.0, window: int = 5):
        super().__init__()
        if window < 1 or window % 2 == 0:
            raise ValueError(f"window must be a positive odd number, got {window}")
        if iterations < 0:
            raise ValueError(f"iterations must be >= 0, got {iterations}")
        for name, v in (("theta_alpha", theta_alpha), ("theta_beta", theta_beta), ("theta_gamma", theta_gamma)):
            if v <= 0:
                raise ValueError(f"{name} must be > 0, got {v}")
        self.iterations, self.window = iterations, window
        self.w_bilateral, self.w_spatial = float(w_bilateral), float(w_spatial)
        self.theta_alpha, self.theta_beta, self.theta_gamma = float(theta_alpha), float(theta_beta), float(theta_gamma)

    def kernel(self, image: torch.Tensor) -> torch.Tensor:
        """``[B, K, H, W]``: the combined pairwise weight of every pixel with each of its K = window² - 1
        neighbours (0 outside the image). image ``[B, 3, H, W]`` in [0, 1]."""
        b, _, h, w = image.shape
        r = self.window // 2
        dy, dx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
        d2 = (dy ** 2 + dx ** 2).flatten().to(image)  # [window²]
        keep = d2 > 0  # no self-message
        rgb = image * 255.0
        nb = F.unfold(rgb, self.window, padding=r).view(b, 3, -1, h, w)  # [B, 3, window², H, W]
        inside = F.unfold(torch.ones_like(image[:, :1]), self.window, padding=r).view(b, 1, -1, h, w)[:, 0]
        c2 = ((nb - rgb[:, :, None]) ** 2).sum(1)  # [B, window², H, W]
        d2v = d2.view(1, -1, 1, 1)
        k = (self.w_bilateral * torch.exp(-d2v / (2 * self.theta_alpha ** 2) - c2 / (2 * self.theta_beta ** 2))
             + self.w_spatial * torch.exp(-d2v / (2 * self.theta_gamma ** 2)))
        return (k * inside)[:, keep]

    def forward(self, unaries: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """unaries ``[B, C, H, W]`` (logits), image ``[B, 3, H, W]`` in [0, 1] -> refined logits ``[B, C, H, W]``."""
        if unaries.shape[-2:] != image.shape[-2:] or unaries.shape[0] != image.shape[0]:
            raise ValueError(f"unaries {tuple(unaries.shape)} and image {tuple(image.shape)} must share B, H, W")
        if self.iterations == 0 or (self.w_bilateral == 0 and self.w_spatial == 0):
            return unaries
        h, w = unaries.shape[-2:]
        r = self.window // 2
        k = self.kernel(image.to(unaries.dtype))  # [B, K, H, W]
        offsets = [(dy, dx) for dy in range(-r, r + 1) for dx in range(-r, r + 1) if (dy, dx) != (0, 0)]
        logits = unaries
        for _ in range(self.iterations):
            q = F.pad(torch.softmax(logits, 1), (r, r, r, r))  # [B, C, H + 2r, W + 2r], zero outside
            m = torch.zeros_like(unaries)  # [B, C, H, W] message: one shifted multiply-add per neighbour
            for n, (dy, dx) in enumerate(offsets):
                m = m + k[:, n:n + 1] * q[:, :, r + dy:r + dy + h, r + dx:r + dx + w]
            logits = unaries - (m.sum(1, keepdim=True) - m)  # Potts: sum over l' != l
        return logits

    def marginals(self, unaries: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Q ``[B, C, H, W]``: the mean-field distribution per pixel."""
        return torch.softmax(self.forward(unaries, image), 1)


class WithCRF(nn.Module):
    """``model`` followed by a :class:`DenseCRF` on its logits (upsampled to the input) and the input image
    (002 §A5.3: the CRF appended to DeepLab, attacked end to end)."""

    def __init__(self, model: nn.Module, crf: DenseCRF | None = None):
        super().__init__()
        self.model, self.crf = model, crf or DenseCRF()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.crf(logits_at(self.model(x), x.shape[-2:]), x)

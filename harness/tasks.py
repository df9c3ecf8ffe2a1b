"""Tasks beyond plain generation, measured the same way for every method.

`inpaint` (SPEC M6): the first n test images x are observed through y = A(x) + n with
A(x) = mask * x; a method restores them from `Observation(y, mask)`, and the error on the
hidden pixels is reported as `mse_hidden` and `psnr_hidden`.
"""

from __future__ import annotations

import torch

from harness.method import Observation

MASKS = ("center", "half", "random", "none")


def make_inpainting(x: torch.Tensor, kind: str, noise_std: float, seed: int) -> Observation:
    """The observation of images x (N, C, H, W) under a mask `kind`:
    `center` hides the central half-side square, `half` hides the right half,
    `random` hides each pixel with probability 1/2, `none` hides nothing."""
    N, C, H, W = x.shape
    mask = torch.ones(N, 1, H, W)
    if kind == "center":
        mask[:, :, H // 4:H // 4 + H // 2, W // 4:W // 4 + W // 2] = 0
    elif kind == "half":
        mask[:, :, :, W // 2:] = 0
    elif kind == "random":
        g = torch.Generator().manual_seed(seed)
        mask = (torch.rand(N, 1, H, W, generator=g) < 0.5).float()
    elif kind != "none":
        raise ValueError(f"unknown mask {kind!r}; valid: {', '.join(MASKS)}")
    g = torch.Generator().manual_seed(seed + 1)
    y = mask * (x + noise_std * torch.randn(x.shape, generator=g))
    return Observation(y=y, mask=mask)


def hidden_error(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(MSE, PSNR in dB) over the hidden pixels; images in [-1, 1], so the peak-to-peak is 2."""
    hidden = (1 - mask).expand_as(x)
    n = hidden.sum().clamp(min=1)
    mse = float(((x_hat - x) ** 2 * hidden).sum() / n)
    psnr = 10 * torch.log10(torch.tensor(4.0 / max(mse, 1e-12))).item()
    return mse, psnr

"""Differentiable Augmentation (Zhao, Liu, Lin, Zhu, Han 2020, "Differentiable Augmentation for
Data-Efficient GAN Training", arXiv 2006.10738; docs/methods.md M8), after the authors'
`DiffAugment_pytorch.py`, with the randomness drawn from an explicit generator so a run is
reproducible from its seed.

The same random transform family is applied to real and generated images every time the
discriminator sees them (its own step and the generator's), and every operation is
differentiable in the images, so the generator's gradient passes through the augmentation.
A policy is a comma-separated list of:

- `color`: brightness `x + (u - 0.5)`, saturation `(x - mean_c) * 2u + mean_c` (the mean over
  channels; the identity on one channel), contrast `(x - mean) * (u + 0.5) + mean` (the mean over
  the image), with a fresh `u ~ U[0, 1)` per image and operation.
- `translation`: an integer shift of up to 1/8 of the side in each direction, zero-filled.
- `cutout`: zeroes a box of half the height and width centred at a uniformly random pixel and
  clipped to the image, so it covers 25 % to 50 % of the height and of the width.

The empty policy is the identity and draws no random numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from genbench.harness.errors import GenbenchError, unknown
from genbench.methods.training import to_device


def _uniform(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return to_device(torch.rand((x.shape[0], 1, 1, 1), generator=g), x.device, x.dtype)


def rand_brightness(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return x + (_uniform(x, g) - 0.5)


def rand_saturation(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)
    return (x - mean) * (_uniform(x, g) * 2) + mean


def rand_contrast(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_uniform(x, g) + 0.5) + mean


def _randint(low: int, high: int, n: int, g: torch.Generator, device) -> torch.Tensor:
    """(n, 1, 1) integers in [low, high)."""
    return to_device(torch.randint(low, high, (n, 1, 1), generator=g), device)


def rand_translation(x: torch.Tensor, g: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    B, _, H, W = x.shape
    sh, sw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    ty = _randint(-sh, sh + 1, B, g, x.device)
    tx = _randint(-sw, sw + 1, B, g, x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(B, device=x.device), torch.arange(H, device=x.device),
                                torch.arange(W, device=x.device), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, H + 1)  # index into the one-pixel zero-padded image
    gx = torch.clamp(gx + tx + 1, 0, W + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    return padded.permute(0, 2, 3, 1)[gb, gy, gx].permute(0, 3, 1, 2)


def rand_cutout(x: torch.Tensor, g: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    B, _, H, W = x.shape
    ch, cw = int(H * ratio + 0.5), int(W * ratio + 0.5)
    oy = _randint(0, H + (1 - ch % 2), B, g, x.device)
    ox = _randint(0, W + (1 - cw % 2), B, g, x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(B, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, H - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, W - 1)
    mask = torch.ones(B, H, W, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    return x * mask.unsqueeze(1)


AUGMENTS = {
    "color": (rand_brightness, rand_saturation, rand_contrast),
    "translation": (rand_translation,),
    "cutout": (rand_cutout,),
}


def parse_policy(policy: str) -> tuple[str, ...]:
    """The operations of a policy string; unknown names fail in one line listing the valid."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    for p in names:
        if p not in AUGMENTS:
            raise GenbenchError(unknown("DiffAugment operation", p, AUGMENTS,
                                        where=f" in policy {policy!r}"))
    return names


def diff_augment(x: torch.Tensor, policy: str, g: torch.Generator) -> torch.Tensor:
    """Apply `policy` to the (B, C, H, W) batch `x`, drawing parameters from `g` (a CPU
    generator). The empty policy returns `x` itself."""
    for name in parse_policy(policy):
        for op in AUGMENTS[name]:
            x = op(x, g)
    return x

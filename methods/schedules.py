"""Discrete diffusion noise schedules and strided respacing.

- Linear betas (Ho et al. 2020, docs/methods.md M1): `beta_t = beta_min + t (beta_max - beta_min)/(T - 1)`;
  optionally rescaled by 1000/T (improved-diffusion `get_named_beta_schedule("linear")`) so
  that a timesteps ablation keeps the terminal noise level.
- Cosine (Nichol & Dhariwal 2021, docs/methods.md M2): `alphabar(t) = f(t)/f(0)`,
  `f(t) = cos^2(((t/T + s)/(1 + s)) pi/2)`, `s = 0.008`, betas clipped to 0.999. As in
  improved-diffusion's `betas_for_alpha_bar`, code index i (0-based) ends at time (i+1)/T.
- Respacing (improved-diffusion `respace.py`): keep K timesteps `s_0 < ... < s_{K-1}` of T and
  recompute `beta'_k = 1 - alphabar_{s_k} / alphabar_{s_{k-1}}` (with `alphabar_{s_{-1}} = 1`).
  The network is still conditioned on the original index `s_k`.

A `NoiseSchedule` holds `alphabar` (float64) and the original timestep of each of its steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch

Spacing = Literal["linspace", "leading", "trailing"]


def linear_betas(T: int, beta_min: float = 1e-4, beta_max: float = 0.02,
                 rescale: bool = False) -> torch.Tensor:
    """(T,) float64 linear betas; `rescale` multiplies both ends by 1000/T."""
    if rescale:
        beta_min, beta_max = beta_min * 1000 / T, beta_max * 1000 / T
    if T == 1:
        return torch.tensor([beta_min], dtype=torch.float64)
    t = torch.arange(T, dtype=torch.float64)
    return beta_min + t * (beta_max - beta_min) / (T - 1)


def cosine_f(t: torch.Tensor, T: int, s: float = 0.008) -> torch.Tensor:
    """`f(t) = cos^2(((t/T + s)/(1 + s)) pi/2)` of docs/methods.md M2."""
    return torch.cos(((t / T + s) / (1 + s)) * math.pi / 2) ** 2


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """(T,) float64 betas with `alpha_t = clip(alphabar_t / alphabar_{t-1}, 1 - max_beta, 1)`."""
    t = torch.arange(T + 1, dtype=torch.float64)
    f = cosine_f(t, T, s)
    return (1 - f[1:] / f[:-1]).clamp(max=max_beta)


@dataclass(frozen=True)
class NoiseSchedule:
    """alphabar over the steps a sampler visits, and the original timestep of each step."""

    alphabar: torch.Tensor  # (K,) float64, decreasing
    timesteps: torch.Tensor  # (K,) int64 original indices the network is conditioned on

    @classmethod
    def from_betas(cls, betas: torch.Tensor) -> "NoiseSchedule":
        alphabar = torch.cumprod(1 - betas.double(), dim=0)
        return cls(alphabar, torch.arange(len(betas), dtype=torch.int64))

    def __len__(self) -> int:
        return len(self.alphabar)

    @property
    def alphabar_prev(self) -> torch.Tensor:
        """alphabar_{t-1}, with alphabar_{-1} = 1."""
        return torch.cat([self.alphabar.new_ones(1), self.alphabar[:-1]])

    @property
    def betas(self) -> torch.Tensor:
        """beta_t = 1 - alphabar_t / alphabar_{t-1} (the respaced betas when respaced)."""
        return 1 - self.alphabar / self.alphabar_prev

    @property
    def posterior_variance(self) -> torch.Tensor:
        """beta~_t = (1 - alphabar_{t-1}) / (1 - alphabar_t) beta_t (docs/methods.md M2)."""
        return (1 - self.alphabar_prev) / (1 - self.alphabar) * self.betas

    @property
    def terminal_snr(self) -> float:
        """alphabar_{T-1} / (1 - alphabar_{T-1}): the signal left at the start of sampling."""
        a = float(self.alphabar[-1])
        return a / (1 - a)

    def respace(self, K: int, spacing: Spacing = "linspace") -> "NoiseSchedule":
        """K of these steps (see `timestep_subsequence`), betas recomputed from alphabar."""
        keep = timestep_subsequence(len(self), K, spacing)
        return NoiseSchedule(self.alphabar[keep], self.timesteps[keep])


def timestep_subsequence(T: int, K: int, spacing: Spacing = "linspace") -> torch.Tensor:
    """(K,) increasing indices into 0..T-1.

    `linspace`: round(linspace(0, T-1, K)); `leading`: 0, T//K, 2T//K, ... (the first step of
    50 of 1000 is 980); `trailing`: round(T - j T/K) - 1 for j = 0..K-1 (always includes T-1).
    """
    if not 1 <= K <= T:
        raise ValueError(f"cannot respace {T} timesteps to {K}: need 1 <= K <= T")
    if spacing == "linspace":
        idx = torch.linspace(0, T - 1, K, dtype=torch.float64).round().long()
    elif spacing == "leading":
        idx = torch.arange(K, dtype=torch.int64) * (T // K)
    elif spacing == "trailing":
        idx = (T - torch.arange(K, dtype=torch.float64) * (T / K)).round().long() - 1
    else:
        raise ValueError(f"unknown spacing {spacing!r}; valid: linspace, leading, trailing")
    idx = torch.unique(idx.clamp(0, T - 1))  # sorted
    if len(idx) != K:
        raise ValueError(f"spacing {spacing!r} gives repeated timesteps for T={T}, K={K}")
    return idx

"""Reverse-process steps on a trained eps-network, kept apart from the network (after diffusers'
`scheduling_ddpm.py`). Every step takes a `NoiseSchedule` and a step index k, so respaced
schedules use their recomputed betas automatically.

- `ddpm_step`, SPEC M1 (direct form):
  `x_{t-1} = (x_t - (1 - alpha_t)/sqrt(1 - alphabar_t) eps) / sqrt(alpha_t) + sigma_t z`.
- with `clip_x0`, SPEC M2 (through the posterior mean):
  `x0_hat = clamp((x_t - sqrt(1 - alphabar_t) eps) / sqrt(alphabar_t), -1, 1)`,
  `mu~ = sqrt(alpha_t)(1 - alphabar_{t-1})/(1 - alphabar_t) x_t + sqrt(alphabar_{t-1}) beta_t/(1 - alphabar_t) x0_hat`.
- `sigma_t^2` is `beta_t` (variance="beta") or `beta~_t` (variance="posterior"); no noise is
  added at the last step.
"""

from __future__ import annotations

from typing import Literal

import torch

from methods.schedules import NoiseSchedule

Variance = Literal["beta", "posterior"]


def predict_x0(sched: NoiseSchedule, k: int, x_t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x0_hat = (x_t - sqrt(1 - alphabar_t) eps) / sqrt(alphabar_t)."""
    ab = float(sched.alphabar[k])
    return (x_t - (1 - ab) ** 0.5 * eps) / ab ** 0.5


def ddpm_sigma(sched: NoiseSchedule, k: int, variance: Variance) -> float:
    """sigma_t of step k: sqrt(beta_t) or sqrt(beta~_t)."""
    var = sched.betas[k] if variance == "beta" else sched.posterior_variance[k]
    return float(var) ** 0.5


def ddpm_step(sched: NoiseSchedule, k: int, x_t: torch.Tensor, eps: torch.Tensor,
              z: torch.Tensor, *, variance: Variance = "beta",
              clip_x0: bool = False) -> torch.Tensor:
    """One ancestral step from step k to k-1 (k = 0 returns the noiseless final sample)."""
    ab, ab_prev = float(sched.alphabar[k]), float(sched.alphabar_prev[k])
    beta = float(sched.betas[k])
    alpha = 1 - beta
    if clip_x0:
        x0_hat = predict_x0(sched, k, x_t, eps).clamp(-1, 1)
        mean = (alpha ** 0.5 * (1 - ab_prev) / (1 - ab)) * x_t + (ab_prev ** 0.5 * beta / (1 - ab)) * x0_hat
    else:
        mean = (x_t - (beta / (1 - ab) ** 0.5) * eps) / alpha ** 0.5
    if k == 0:
        return mean
    return mean + ddpm_sigma(sched, k, variance) * z

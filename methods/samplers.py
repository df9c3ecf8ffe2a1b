"""Reverse-process steps on a trained eps-network, kept apart from the network (after diffusers'
`scheduling_ddpm.py`). Every step takes a `NoiseSchedule` and a step index k, so respaced
schedules use their recomputed betas automatically.

- `ddpm_step`, docs/methods.md M1 (direct form):
  `x_{t-1} = (x_t - (1 - alpha_t)/sqrt(1 - alphabar_t) eps) / sqrt(alpha_t) + sigma_t z`.
- with `clip_x0`, docs/methods.md M2 (through the posterior mean):
  `x0_hat = clamp((x_t - sqrt(1 - alphabar_t) eps) / sqrt(alphabar_t), -1, 1)`,
  `mu~ = sqrt(alpha_t)(1 - alphabar_{t-1})/(1 - alphabar_t) x_t + sqrt(alphabar_{t-1}) beta_t/(1 - alphabar_t) x0_hat`.
- `sigma_t^2` is `beta_t` (variance="beta") or `beta~_t` (variance="posterior"); no noise is
  added at the last step.
- `ddim_step`, docs/methods.md M3 (Song et al. 2021, arXiv 2010.02502; diffusers `scheduling_ddim.py`):
  `x_prev = sqrt(alphabar_prev) x0_hat + sqrt(1 - alphabar_prev - sigma^2) eps + sigma z`,
  `sigma = eta sqrt((1 - alphabar_prev)/(1 - alphabar_t)) sqrt(1 - alphabar_t/alphabar_prev)`;
  eta = 0 is deterministic and eta = 1 has the DDPM posterior variance.
- `guided_eps`, docs/methods.md M5 (Ho & Salimans 2022): `(1 + w) eps(x, t, c) - w eps(x, t, null)`; with
  w = 0 the unconditional pass is skipped, so the result is the conditional model bit for bit.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch

from genbench.methods.schedules import NoiseSchedule

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


def ddim_sigma(sched: NoiseSchedule, k: int, eta: float) -> float:
    """sigma of DDIM step k: eta times the DDPM posterior standard deviation."""
    ab, ab_prev = float(sched.alphabar[k]), float(sched.alphabar_prev[k])
    return eta * ((1 - ab_prev) / (1 - ab)) ** 0.5 * (1 - ab / ab_prev) ** 0.5


def ddim_step(sched: NoiseSchedule, k: int, x_t: torch.Tensor, eps: torch.Tensor,
              z: torch.Tensor, *, eta: float = 0.0, clip_x0: bool = False) -> torch.Tensor:
    """One DDIM step from step k to k-1 (k = 0 returns x0_hat)."""
    ab_prev = float(sched.alphabar_prev[k])
    x0_hat = predict_x0(sched, k, x_t, eps)
    if clip_x0:
        x0_hat = x0_hat.clamp(-1, 1)
    sigma = ddim_sigma(sched, k, eta)
    # 1 - alphabar_prev - sigma^2 >= 0 for every eta <= 1 (at eta = 1 it equals
    # (1 - ab_prev)^2 ab / (ab_prev (1 - ab))) and the knobs refuse eta > 1, so max() only
    # absorbs float rounding; it never hides a bad eta
    direction = max(0.0, 1 - ab_prev - sigma ** 2) ** 0.5 * eps
    out = ab_prev ** 0.5 * x0_hat + direction
    return out + sigma * z if sigma > 0 else out


EpsFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def guided_eps(eps_fn: EpsFn, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None,
               w: float) -> torch.Tensor:
    """Classifier-free guidance: (1 + w) eps(x, t, c) - w eps(x, t, null); null = zeros.

    `c` is (B, K) one-hot rows (or None for an unconditional model); for w != 0 both passes
    run as one batch."""
    if w == 0 or c is None:
        return eps_fn(x, t, c)
    both = eps_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([c, torch.zeros_like(c)]))
    eps_c, eps_null = both.chunk(2)
    return (1 + w) * eps_c - w * eps_null

"""Diffusion posterior sampling for inpainting (Chung et al. 2023, arXiv 2209.14687; docs/methods.md M6).

After each DDIM step from x_t:
    x_{t-1} <- x_{t-1} - zeta * grad_{x_t} || y - A(x0_hat(x_t)) ||_2,
with A(x) = mask * x the inpainting operator and y = A(x) + n the observation. The gradient
goes through the eps-network, so each step costs one forward and one backward pass.
"""

from __future__ import annotations

import torch

from genbench.harness.method import Observation
from genbench.methods.samplers import EpsFn, ddim_step, guided_eps, predict_x0
from genbench.methods.schedules import NoiseSchedule


def inpaint_operator(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A(x) = mask * x: keep the observed pixels."""
    return mask * x


def dps_step(eps_fn: EpsFn, sched: NoiseSchedule, k: int, x_t: torch.Tensor, t: torch.Tensor,
             c: torch.Tensor | None, z: torch.Tensor, obs: Observation, *, zeta: float,
             eta: float, guidance: float, clip_x0: bool) -> torch.Tensor:
    """One DDIM step followed by the DPS measurement-gradient correction."""
    with torch.enable_grad():
        x_in = x_t.detach().requires_grad_(True)
        eps = guided_eps(eps_fn, x_in, t, c, guidance)
        x0_hat = predict_x0(sched, k, x_in, eps)
        residual = (obs.y - inpaint_operator(x0_hat, obs.mask)).flatten(1).norm(dim=1)  # (B,)
        grad = torch.autograd.grad(residual.sum(), x_in)[0]  # each sample's own gradient
    x_prev = ddim_step(sched, k, x_t, eps.detach(), z, eta=eta, clip_x0=clip_x0)
    return x_prev - zeta * grad

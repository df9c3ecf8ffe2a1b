"""Score distillation in image space with the harness's own conditional prior (docs/methods.md M7).

- SDS (Poole et al. 2022, arXiv 2209.14988): optimise an image x directly (dx/dtheta = 1) with
  the gradient `w(t) (eps_phi(x_t; y, t) - eps)`, `w(t) = sigma_t^2 = 1 - alphabar_t`,
  `x_t = sqrt(alphabar_t) x + sigma_t eps`, eps_phi the guided conditional eps-net (M5).
- VSD (Wang et al. 2023, ProlificDreamer, arXiv 2305.16213): replace eps by the prediction of a
  second eps-network fitted online to the current particles, here a copy of the prior
  (ProlificDreamer starts its LoRA from the prior too) trained with the diffusion loss.

Noise, timesteps and the initial image come from per-sample generators, so a sample does not
depend on the batch it is optimised in (up to the shared VSD network).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genbench.harness.seeding import PerSampleNoise
from genbench.methods.samplers import EpsFn, guided_eps
from genbench.methods.schedules import NoiseSchedule


@dataclass(frozen=True)
class DistillOptions:
    mode: str  # "sds" or "vsd"
    iters: int  # optimisation steps on each image
    lr: float  # Adam step size on the image
    guidance: float  # classifier-free guidance scale w of the prior
    t_min: float  # timesteps drawn uniformly from [t_min, t_max] * (T - 1)
    t_max: float
    vsd_lr: float  # Adam step size of the online network (VSD)


def distill(net: torch.nn.Module, eps_fn: EpsFn, sched: NoiseSchedule, noise: PerSampleNoise,
            shape: tuple[int, ...], c: torch.Tensor | None, opt: DistillOptions) -> torch.Tensor:
    """Optimise len(noise.generators) images of `shape` against the prior; returns (B, *shape)."""
    T = len(sched)
    alphabar = sched.alphabar.to(noise.device).float()
    x = (0.5 * noise.randn(*shape)).clamp(-1, 1).requires_grad_(True)
    opt_x = torch.optim.Adam([x], lr=opt.lr)
    phi = opt_phi = None
    if opt.mode == "vsd":
        phi = copy.deepcopy(net).train().requires_grad_(True)
        opt_phi = torch.optim.Adam(phi.parameters(), lr=opt.vsd_lr)
    for _ in range(opt.iters):
        u = noise.rand(1).squeeze(1)  # (B,)
        t = ((opt.t_min + (opt.t_max - opt.t_min) * u) * (T - 1)).round().long()
        eps = noise.randn(*shape)
        ab = alphabar[t].view(-1, *[1] * len(shape))
        x_t = ab.sqrt() * x.detach() + (1 - ab).sqrt() * eps
        with torch.no_grad():
            eps_prior = guided_eps(eps_fn, x_t, t, c, opt.guidance)
            eps_ref = eps if phi is None else phi(x_t, t, c)
        opt_x.zero_grad(set_to_none=True)
        x.grad = (1 - ab) * (eps_prior - eps_ref)  # w(t) (eps_phi - eps), dx/dtheta = 1
        opt_x.step()
        if phi is not None:  # fit the online network to the current particles
            t2 = (noise.rand(1).squeeze(1) * (T - 1)).round().long()
            e2 = noise.randn(*shape)
            ab2 = alphabar[t2].view(-1, *[1] * len(shape))
            loss = F.mse_loss(phi(ab2.sqrt() * x.detach() + (1 - ab2).sqrt() * e2, t2, c), e2)
            opt_phi.zero_grad(set_to_none=True)
            loss.backward()
            opt_phi.step()
    return x.detach().clamp(-1, 1)

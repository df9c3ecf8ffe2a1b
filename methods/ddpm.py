"""Denoising diffusion probabilistic models (Ho et al. 2020, arXiv 2006.11239; SPEC M1, M2).

An eps-prediction U-Net trained with the L2 (or L1) loss on `x_t = sqrt(alphabar_t) x_0 +
sqrt(1 - alphabar_t) eps` under a linear, T-rescaled linear or cosine schedule. Everything about
sampling is a knob on the trained network: the number of steps (strided respacing, improved-
diffusion `respace.py`), timestep spacing, the variance (`beta_t` or the posterior `beta~_t`),
x0 clamping, and whether the EMA weights sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from harness.config import build_config, to_dict
from harness.method import Budget, Method, TrainData, register
from harness.seeding import PerSampleNoise
from methods.nets.unet import UNet
from methods.samplers import Variance, ddpm_step
from methods.schedules import NoiseSchedule, Spacing, cosine_betas, linear_betas
from methods.training import EMA, LossLog, autocast, minibatches


@dataclass(frozen=True)
class DDPMConfig:
    T: int = 1000  # diffusion steps
    schedule: Literal["linear", "cosine"] = "linear"  # beta schedule (SPEC M1 / M2)
    beta_min: float = 1e-4  # linear schedule: beta_0
    beta_max: float = 0.02  # linear schedule: beta_{T-1}
    rescale_betas: bool = False  # linear: scale beta_min, beta_max by 1000/T (keeps terminal SNR)
    cosine_s: float = 0.008  # cosine schedule offset s
    loss: Literal["l2", "l1"] = "l2"  # ||eps - eps_theta||^2 or |eps - eps_theta|
    n_feat: int = 64  # U-Net base width
    ch_mult: tuple[int, ...] = (1, 2, 2)  # width multiplier per U-Net level
    num_res_blocks: int = 1  # residual blocks per level
    attention: bool = True  # self-attention at the lowest resolution
    dropout: float = 0.0  # dropout inside residual blocks
    lr: float = 2e-4  # Adam learning rate
    batch_size: int = 64  # training minibatch
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    ema_decay: float = 0.0  # EMA of the weights for sampling; 0 = off
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)

    def __post_init__(self):
        if self.T < 1:
            raise ValueError(f"T must be >= 1, got {self.T}")
        if not 0 < self.beta_min <= self.beta_max < 1:
            raise ValueError("need 0 < beta_min <= beta_max < 1")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.n_feat < 1 or self.batch_size < 1:
            raise ValueError("n_feat and batch_size must be >= 1")


@dataclass(frozen=True)
class DDPMKnobs:
    steps: int = 0  # sampling steps K; 0 = all T, K < T respaces (recomputed betas)
    spacing: Spacing = "linspace"  # which K of the T timesteps are kept
    variance: Variance = "beta"  # sigma_t^2 = beta_t or the posterior beta~_t
    clip_x0: bool = False  # clamp x0_hat to [-1, 1] and step through the posterior mean
    ema: bool = True  # sample with the EMA weights when trained with ema_decay > 0
    batch_size: int = 256  # samples per forward pass (does not change the samples)


def make_schedule(cfg: DDPMConfig) -> NoiseSchedule:
    """The training schedule of `cfg`: T steps of the configured betas."""
    if cfg.schedule == "cosine":
        betas = cosine_betas(cfg.T, cfg.cosine_s)
    else:
        betas = linear_betas(cfg.T, cfg.beta_min, cfg.beta_max, rescale=cfg.rescale_betas)
    return NoiseSchedule.from_betas(betas)


@register("ddpm")
class DDPM(Method):
    Config = DDPMConfig
    Knobs = DDPMKnobs

    def __init__(self, config: DDPMConfig | None = None):
        super().__init__(config)
        self.schedule = make_schedule(self.config)
        self.net: UNet | None = None
        self.ema: EMA | None = None
        self.data_shape: tuple[int, ...] = ()
        self.num_classes = 0
        self.device = torch.device("cpu")

    def _build(self, data_shape: tuple[int, ...], device: torch.device) -> None:
        cfg = self.config
        self.data_shape, self.device = tuple(data_shape), device
        self.net = UNet(in_ch=data_shape[0], n_feat=cfg.n_feat, ch_mult=cfg.ch_mult,
                        num_res_blocks=cfg.num_res_blocks, attention=cfg.attention,
                        dropout=cfg.dropout, num_classes=self.num_classes).to(device)
        self.ema = EMA(self.net, cfg.ema_decay) if cfg.ema_decay > 0 else None

    def loss(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """The training loss at given timesteps and noise (SPEC M1/M2)."""
        ab = self.schedule.alphabar.to(x0.device)[t].float()[:, None, None, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        eps_hat = self.net(x_t, t)
        if self.config.loss == "l1":
            return F.l1_loss(eps_hat.float(), eps)
        return F.mse_loss(eps_hat.float(), eps)

    def fit(self, data: TrainData, budget: Budget, *, seed: int, device: torch.device) -> None:
        cfg = self.config
        torch.manual_seed(seed)  # weight init
        self._build(data.shape, device)
        g = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        x_all = data.x.to(device)
        log = LossLog(budget)
        batches = minibatches(len(x_all), cfg.batch_size, g)
        self.net.train()
        for step in range(1, budget.steps + 1):
            x0 = x_all[next(batches).to(device)]
            t = torch.randint(0, cfg.T, (len(x0),), generator=g).to(device)
            eps = torch.randn(x0.shape, generator=g).to(device)
            with autocast(device, cfg.amp):
                loss = self.loss(x0, t, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
            opt.step()
            if self.ema is not None:
                self.ema.update(self.net)
            log.add(step, loss)
        self.net.eval()

    def sampling_schedule(self, k: DDPMKnobs) -> NoiseSchedule:
        """The schedule the sampler walks: the full chain or its respaced subsequence."""
        if k.steps in (0, self.config.T):
            return self.schedule
        return self.schedule.respace(k.steps, k.spacing)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, labels: torch.Tensor | None = None,
               **knobs: Any) -> torch.Tensor:
        k = self.knobs(**knobs)
        sched = self.sampling_schedule(k)
        net = self.ema.net if (k.ema and self.ema is not None) else self.net
        was_training = net.training  # sample() may be called along training
        net.eval()
        out = []
        for start in range(0, n, k.batch_size):
            noise = PerSampleNoise(seed, range(start, min(n, start + k.batch_size)), self.device)
            x = noise.randn(*self.data_shape)  # (B, C, H, W) x_T
            for i in reversed(range(len(sched))):
                t = sched.timesteps[i].to(self.device).expand(len(x))
                with autocast(self.device, self.config.amp):
                    eps = net(x, t).float()
                x = ddpm_step(sched, i, x, eps, noise.randn(*self.data_shape),
                              variance=k.variance, clip_x0=k.clip_x0)
            out.append(x.clamp(-1, 1).cpu())
        net.train(was_training)
        return torch.cat(out)

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        sched = self.sampling_schedule(self.knobs(**knobs))
        return {"nfe": len(sched), "t_first": int(sched.timesteps[-1]),
                "t_last": int(sched.timesteps[0])}

    def info(self) -> dict[str, float]:
        return {"terminal_snr": self.schedule.terminal_snr,
                "sqrt_alphabar_T": math.sqrt(float(self.schedule.alphabar[-1]))}

    def n_params(self) -> int:
        return sum(p.numel() for p in self.net.parameters()) if self.net is not None else 0

    def state_dict(self) -> dict[str, Any]:
        return {"config": to_dict(self.config), "data_shape": list(self.data_shape),
                "num_classes": self.num_classes,
                "net": {k: v.cpu() for k, v in self.net.state_dict().items()},
                "ema": None if self.ema is None else
                {k: v.cpu() for k, v in self.ema.net.state_dict().items()}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.config = build_config(DDPMConfig, state["config"], what="DDPM config")
        self.schedule = make_schedule(self.config)
        self.num_classes = state["num_classes"]
        self._build(tuple(state["data_shape"]), self.device)
        self.net.load_state_dict(state["net"])
        if state["ema"] is not None:
            self.ema.net.load_state_dict(state["ema"])
        self.net.eval()

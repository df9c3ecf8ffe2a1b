"""Denoising diffusion probabilistic models and their sampling family (docs/methods.md M1, M2, M3, M5,
M6, M7).

Training (Ho et al. 2020, arXiv 2006.11239): an eps-prediction U-Net with the L2 (or L1) loss
on `x_t = sqrt(alphabar_t) x_0 + sqrt(1 - alphabar_t) eps` under a linear, T-rescaled linear or
cosine schedule; optionally class-conditional with label dropout to the zero null token
(classifier-free guidance, Ho & Salimans 2022).

Everything about sampling is a knob on the trained network (diffusers' schedulers, improved-
diffusion's `respace.py`): the sampler (`ddpm` ancestral, `ddim`, `dps` inpainting, `sds`/`vsd`
score distillation), the number of steps (strided respacing), their spacing, the variance, eta,
guidance, x0 thresholding, and whether the EMA weights sample.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
import typing
from typing import Any, Callable, Literal

import torch
import torch.nn.functional as F

from genbench.harness.errors import GenbenchError
from genbench.harness.method import Budget, Method, Observation, TrainData, register
from genbench.harness.seeding import PerSampleNoise
from genbench.methods.dps import dps_step
from genbench.methods.nets.unet import UNet, UNetTraining
from genbench.methods.samplers import Variance, ddim_step, ddpm_step, guided_eps
from genbench.methods.schedules import NoiseSchedule, Spacing, cosine_betas, linear_betas
from genbench.methods.score_distillation import DistillOptions, distill
from genbench.methods.training import (EMA, LossLog, TrainState, autocast, make_adam,
                                       minibatches, to_device)

Sampler = Literal["ddpm", "ddim", "dps", "sds", "vsd"]


@dataclass(frozen=True)
class DDPMConfig(UNetTraining):
    T: int = 1000  # diffusion steps
    schedule: Literal["linear", "cosine"] = "linear"  # beta schedule (docs/methods.md M1 / M2)
    beta_min: float = 1e-4  # linear schedule: beta_0
    beta_max: float = 0.02  # linear schedule: beta_{T-1}
    rescale_betas: bool = False  # linear: scale beta_min, beta_max by 1000/T (keeps terminal SNR)
    cosine_s: float = 0.008  # cosine schedule offset s
    loss: Literal["l2", "l1"] = "l2"  # ||eps - eps_theta||^2 or |eps - eps_theta|
    class_cond: bool = False  # condition on labels (needs a labelled data set)
    p_uncond: float = 0.1  # class_cond: probability a label is replaced by the null token
    # the network, its optimiser and the fast paths: see UNetTraining

    def __post_init__(self):
        super().__post_init__()
        if self.T < 2:
            raise ValueError(f"T must be >= 2, got {self.T}")
        if not 0 < self.beta_min <= self.beta_max < 1:
            raise ValueError("need 0 < beta_min <= beta_max < 1")
        if self.rescale_betas and self.schedule == "linear" and self.beta_max * 1000 / self.T >= 1:
            raise ValueError(f"rescale_betas scales beta_max by 1000/T to {self.beta_max * 1000 / self.T:g}"
                             f" >= 1 at T={self.T}; use T > {self.beta_max * 1000:g}")
        if not 0 <= self.p_uncond <= 1:
            raise ValueError(f"p_uncond must be in [0, 1], got {self.p_uncond}")


@dataclass(frozen=True)
class DDPMKnobs:
    sampler: Sampler = "ddpm"  # ancestral (M1/M2), DDIM (M3), DPS (M6), SDS / VSD (M7)
    steps: int = 0  # sampling steps K; 0 = all T; K < T respaces (recomputed betas)
    spacing: Spacing = "linspace"  # which K of the T timesteps are kept
    variance: Variance = "beta"  # ddpm: sigma_t^2 = beta_t or the posterior beta~_t
    eta: float = 0.0  # ddim/dps: 0 deterministic, 1 = the DDPM posterior variance
    clip_x0: bool = False  # thresholding: clamp x0_hat to [-1, 1] (posterior-mean step)
    guidance: float = 0.0  # classifier-free guidance w; 0 = the conditional model exactly
    dps_zeta: float = 1.0  # dps: step size on grad ||y - A(x0_hat)||
    sds_iters: int = 200  # sds/vsd: optimisation steps per image
    sds_lr: float = 0.05  # sds/vsd: Adam step size on the image
    sds_t_min: float = 0.02  # sds/vsd: timesteps drawn from [t_min, t_max] * (T - 1)
    sds_t_max: float = 0.98
    vsd_lr: float = 1e-3  # vsd: Adam step size of the online eps-network
    ema: bool = True  # sample with the EMA weights when trained with ema_decay > 0
    batch_size: int = 256  # samples per forward pass (does not change the samples)

    def __post_init__(self):
        if self.steps < 0 or self.sds_iters < 1 or self.batch_size < 1:
            raise ValueError("steps must be >= 0, sds_iters and batch_size >= 1")
        if not 0 <= self.eta <= 1:
            raise ValueError(f"eta must be in [0, 1], got {self.eta}")
        if not 0 <= self.sds_t_min < self.sds_t_max <= 1:
            raise ValueError("need 0 <= sds_t_min < sds_t_max <= 1")


def make_schedule(cfg: DDPMConfig) -> NoiseSchedule:
    """The training schedule of `cfg`: T steps of the configured betas."""
    if cfg.schedule == "cosine":
        betas = cosine_betas(cfg.T, cfg.cosine_s)
    else:
        betas = linear_betas(cfg.T, cfg.beta_min, cfg.beta_max, rescale=cfg.rescale_betas)
    return NoiseSchedule.from_betas(betas)


FIGURE_FRACTIONS = (0.0, 0.25, 0.5, 0.75, 0.99)  # of T, for the forward/backward figures


@register("ddpm")
class DDPM(Method):
    Config = DDPMConfig
    Knobs = DDPMKnobs
    tiny_config = dict(T=10, n_feat=8, ch_mult=(1, 2), attention=True, batch_size=8, ema_decay=0.9)
    resumable = True
    modules = {"net": "net", "ema": "ema.net"}  # eps_theta and its sampling EMA
    trained = ("net",)

    def __init__(self, config: DDPMConfig | None = None):
        super().__init__(config)
        self.schedule = make_schedule(self.config)
        self.net: UNet | None = None
        self.ema: EMA | None = None
        self.data_shape: tuple[int, ...] = ()

    @classmethod
    def check(cls, config: DDPMConfig, knobs: DDPMKnobs, *, task: str, num_classes: int) -> None:
        if config.class_cond and not num_classes:
            raise GenbenchError("class_cond needs a labelled data set")
        if knobs.guidance != 0 and not config.class_cond:
            raise GenbenchError("guidance needs a class-conditional model (class_cond=true)")
        if task not in ("generate", "inpaint"):
            raise GenbenchError(f"ddpm does not support task {task!r}")
        if knobs.sampler == "dps" and task != "inpaint":
            raise GenbenchError("sampler 'dps' needs task='inpaint' (an observation to condition on)")
        if task == "inpaint" and knobs.sampler not in ("dps", "ddim"):
            raise GenbenchError("task 'inpaint' runs sampler 'dps' (or 'ddim' as its baseline)")
        if knobs.steps > config.T:
            raise GenbenchError(f"steps={knobs.steps} exceeds T={config.T}")

    def _build(self, data_shape: tuple[int, ...], device: torch.device) -> None:
        cfg = self.config
        self.data_shape = tuple(data_shape)
        self.net = cfg.unet(data_shape, self.num_classes)
        self.ema = EMA(self.net, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.to(device)  # the one placement: after a fit's build and a reload alike

    def on_device(self) -> None:
        self.alphabar = self.schedule.alphabar.to(self.device)  # read by every training step

    def loss(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
             c: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss at given timesteps, noise and (one-hot, possibly null) labels."""
        ab = self.alphabar[t].float()[:, None, None, None]
        x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
        eps_hat = self.net(x_t, t, c)
        if self.config.loss == "l1":
            return F.l1_loss(eps_hat.float(), eps)
        return F.mse_loss(eps_hat.float(), eps)

    def fit(self, data: TrainData, budget: Budget, *, seed: int, device: torch.device) -> None:
        cfg = self.config
        if cfg.class_cond and data.y is None:
            raise GenbenchError(f"class_cond needs labels; data set {data.name!r} has none")
        self.num_classes = data.num_classes if cfg.class_cond else 0
        torch.manual_seed(seed)  # weight init
        self._build(data.shape, device)
        if cfg.compile:  # after the EMA copy: it stays eager
            self.net.compile()
        g = torch.Generator().manual_seed(seed)
        opt = make_adam(self.net.parameters(), cfg.lr, device)
        x_all = data.x.to(device)  # the data set lives on the device; labels stay on the host
        log = LossLog(budget)
        batches = minibatches(len(x_all), cfg.batch_size, g)
        self.net.train()
        state = TrainState(budget, net=self.net, opt=opt, gen=g, batches=batches,
                           **({"ema": self.ema} if self.ema is not None else {}))
        for step in range(state.start(), budget.steps + 1):
            idx = next(batches)
            x0 = x_all[to_device(idx, device)]
            t = to_device(torch.randint(0, cfg.T, (len(x0),), generator=g), device)
            eps = to_device(torch.randn(x0.shape, generator=g), device)
            c = None
            if self.num_classes:  # label dropout to the null token (zeros)
                keep = (torch.rand(len(x0), generator=g) >= cfg.p_uncond).float()
                c = to_device(F.one_hot(data.y[idx], self.num_classes).float() * keep[:, None], device)
            with autocast(device, cfg.amp):
                loss = self.loss(x0, t, eps, c)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
            opt.step()
            if self.ema is not None:
                self.ema.update(self.net)
            log.add(step, loss)
            state.after(step)
        self.net.eval()

    def sampling_schedule(self, k: DDPMKnobs) -> NoiseSchedule:
        """The schedule the sampler walks: the full chain or its respaced subsequence."""
        if k.steps in (0, self.config.T):
            return self.schedule
        return self.schedule.respace(k.steps, k.spacing)

    def _eps_fn(self, net: UNet):
        def eps_fn(x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
            with autocast(self.device, self.config.amp):
                return net(x, t, c).float()
        return eps_fn

    def _one_hot(self, labels: torch.Tensor | None) -> torch.Tensor | None:
        if not self.num_classes or labels is None:
            return None  # unconditional model, or the null token for every sample
        return F.one_hot(labels.to(self.device), self.num_classes).float()

    def sample(self, n: int, *, seed: int, labels: torch.Tensor | None = None,
               observation: Observation | None = None, **knobs: Any) -> torch.Tensor:
        k = self.knobs(**knobs)
        if k.guidance != 0 and not self.num_classes:
            raise GenbenchError("guidance needs a class-conditional model (class_cond=true)")
        if k.sampler == "dps" and observation is None:
            raise GenbenchError("sampler 'dps' needs an observation (a study with task='inpaint')")
        net = self.ema.net if (k.ema and self.ema is not None) else self.net
        was_training = net.training  # sample() may be called along training
        net.eval()
        eps_fn = self._eps_fn(net)
        draw = SAMPLERS[k.sampler].draw
        out = []
        for start in range(0, n, k.batch_size):
            idx = range(start, min(n, start + k.batch_size))
            noise = PerSampleNoise(seed, idx, self.device)
            c = self._one_hot(None if labels is None else labels[start:idx.stop])
            obs = None
            if observation is not None:
                sl = slice(start, idx.stop)
                obs = Observation(observation.y[sl].to(self.device),
                                  observation.mask[sl].to(self.device))
            out.append(draw(self, net, eps_fn, noise, c, obs, k).clamp(-1, 1).cpu())
        net.train(was_training)
        return torch.cat(out)

    def _reverse(self, eps_fn, noise: PerSampleNoise, c, obs: Observation | None,
                 k: DDPMKnobs, x: torch.Tensor | None = None,
                 start: int | None = None) -> torch.Tensor:
        """The reverse chain of a chain sampler (ddpm/ddim/dps) from x (default: fresh x_T
        noise) at step index `start` (default: the last) down to 0."""
        step = SAMPLERS[k.sampler].step
        sched = self.sampling_schedule(k)
        x = noise.randn(*self.data_shape) if x is None else x  # (B, C, H, W)
        top = len(sched) - 1 if start is None else start
        timesteps = sched.timesteps.to(self.device)  # once per chain, not once per step
        for i in reversed(range(top + 1)):
            t = timesteps[i].expand(len(x))
            z = noise.randn(*self.data_shape)
            x = step(eps_fn, sched, i, x, t, c, z, obs, k)
        return x

    @torch.no_grad()
    def figures(self, data: TrainData, *, seed: int,
                **knobs: Any) -> dict[str, tuple[torch.Tensor, int]]:
        """The forward process of one batch at 0, 25, 50, 75, 99 % of T (step round(f (T - 1)))
        and the backward process from each of those noised images (docs/methods.md M2): the
        full ancestral chain from that step, with the trial's variance, thresholding, guidance
        and EMA knobs (whatever its sampler and step count: a respaced chain has no step t)."""
        k = replace(self.knobs(**knobs), sampler="ddpm", steps=0)
        n = min(8, len(data.x))
        x0 = data.x[:n].to(self.device)
        noise = PerSampleNoise(seed, range(n), self.device)
        eps = noise.randn(*self.data_shape)
        c = self._one_hot(None if data.y is None else data.y[:n])
        net = self.ema.net if (k.ema and self.ema is not None) else self.net
        was_training = net.training
        net.eval()
        eps_fn = self._eps_fn(net)
        forward, backward = [], []
        try:
            for frac in FIGURE_FRACTIONS:
                if frac == 0:  # 0 % of T: the clean batch itself
                    forward.append(x0)
                    backward.append(x0)
                    continue
                t = round(frac * (self.config.T - 1))
                ab = float(self.schedule.alphabar[t])
                x_t = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps
                forward.append(x_t)
                backward.append(self._reverse(eps_fn, noise, c, None, k, x=x_t, start=t))
        finally:
            net.train(was_training)
        # rows are images, columns the fractions of T
        grid = lambda cols: torch.stack(cols, 1).flatten(0, 1).clamp(-1, 1).cpu()  # noqa: E731
        return {"forward_process": (grid(forward), len(FIGURE_FRACTIONS)),
                "backward_process": (grid(backward), len(FIGURE_FRACTIONS))}

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        k = self.knobs(**knobs)
        evals = 2 if (k.guidance != 0 and self.num_classes) else 1  # guided: cond + null pass
        return SAMPLERS[k.sampler].info(self, k, evals)

    @classmethod
    def ignored_knobs(cls, knobs: DDPMKnobs) -> dict[str, tuple[str, str]]:
        reads = SAMPLERS[knobs.sampler].reads
        out = {}
        for name in sorted({r for spec in SAMPLERS.values() for r in spec.reads} - set(reads)):
            users = ", ".join(s for s, spec in SAMPLERS.items() if name in spec.reads)
            out[name] = (f"sampler {knobs.sampler!r}", f"sampler {users}")
        return out

    facts = ("terminal_snr", "sqrt_alphabar_T")  # what info() returns

    def info(self) -> dict[str, float]:
        return {"terminal_snr": self.schedule.terminal_snr,
                "sqrt_alphabar_T": math.sqrt(float(self.schedule.alphabar[-1]))}

    def extra_state(self) -> dict[str, Any]:
        return {"data_shape": list(self.data_shape), "num_classes": self.num_classes}

    def rebuild(self, state: dict[str, Any]) -> None:
        self.schedule = make_schedule(self.config)
        self.num_classes = state["num_classes"]
        self._build(tuple(state["data_shape"]), self.device)


# -- the samplers, looked up by the `sampler` knob ---------------------------------------------
# A chain sampler walks the (respaced) reverse chain with one `step` per timestep; a distillation
# sampler optimises images against the trained prior. `reads` lists the sampler-specific knobs
# it uses (`guidance`, `ema` and `batch_size` apply to every sampler); the others cannot be
# grid axes under it.

def _ancestral(eps_fn, sched, i, x, t, c, z, obs, k: DDPMKnobs) -> torch.Tensor:
    """docs/methods.md M1/M2: ancestral step, beta or posterior variance, optional x0 clamping."""
    with torch.no_grad():
        eps = guided_eps(eps_fn, x, t, c, k.guidance)
        return ddpm_step(sched, i, x, eps, z, variance=k.variance, clip_x0=k.clip_x0)


def _ddim(eps_fn, sched, i, x, t, c, z, obs, k: DDPMKnobs) -> torch.Tensor:
    """docs/methods.md M3: DDIM step with eta."""
    with torch.no_grad():
        eps = guided_eps(eps_fn, x, t, c, k.guidance)
        return ddim_step(sched, i, x, eps, z, eta=k.eta, clip_x0=k.clip_x0)


def _dps(eps_fn, sched, i, x, t, c, z, obs, k: DDPMKnobs) -> torch.Tensor:
    """docs/methods.md M6: DDIM step, then the DPS measurement-gradient correction."""
    return dps_step(eps_fn, sched, i, x, t, c, z, obs, zeta=k.dps_zeta, eta=k.eta,
                    guidance=k.guidance, clip_x0=k.clip_x0).detach()


def _draw_chain(model: DDPM, net, eps_fn, noise, c, obs, k: DDPMKnobs) -> torch.Tensor:
    return model._reverse(eps_fn, noise, c, obs, k)


def _draw_distill(model: DDPM, net, eps_fn, noise, c, obs, k: DDPMKnobs) -> torch.Tensor:
    """docs/methods.md M7: score distillation (SDS or VSD) with the trained model as the prior."""
    opts = DistillOptions(k.sampler, k.sds_iters, k.sds_lr, k.guidance, k.sds_t_min,
                          k.sds_t_max, k.vsd_lr)
    return distill(net, eps_fn, model.schedule, noise, model.data_shape, c, opts)


def _chain_info(model: DDPM, k: DDPMKnobs, evals: int) -> dict[str, Any]:
    sched = model.sampling_schedule(k)
    return {"nfe": len(sched) * evals, "t_first": int(sched.timesteps[-1]),
            "t_last": int(sched.timesteps[0])}


def _distill_info(model: DDPM, k: DDPMKnobs, evals: int) -> dict[str, Any]:
    per_iter = evals + (2 if k.sampler == "vsd" else 0)  # VSD: phi eval + phi update
    return {"nfe": k.sds_iters * per_iter}


@dataclass(frozen=True)
class SamplerSpec:
    draw: Callable[..., torch.Tensor]  # (model, net, eps_fn, noise, c, obs, knobs) -> x_0
    info: Callable[..., dict[str, Any]]  # (model, knobs, evals per step) -> nfe and facts
    reads: tuple[str, ...]  # the sampler-specific knobs it uses
    step: Callable[..., torch.Tensor] | None = None  # chain samplers: one reverse step


_CHAIN = ("steps", "spacing", "clip_x0")
_DISTILL = ("sds_iters", "sds_lr", "sds_t_min", "sds_t_max")
SAMPLERS: dict[str, SamplerSpec] = {
    "ddpm": SamplerSpec(_draw_chain, _chain_info, (*_CHAIN, "variance"), _ancestral),
    "ddim": SamplerSpec(_draw_chain, _chain_info, (*_CHAIN, "eta"), _ddim),
    "dps": SamplerSpec(_draw_chain, _chain_info, (*_CHAIN, "eta", "dps_zeta"), _dps),
    "sds": SamplerSpec(_draw_distill, _distill_info, _DISTILL),
    "vsd": SamplerSpec(_draw_distill, _distill_info, (*_DISTILL, "vsd_lr")),
}
assert set(SAMPLERS) == set(typing.get_args(Sampler))

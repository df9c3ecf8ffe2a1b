"""Consistency models trained by consistency training (CT): Song, Dhariwal, Chen, Sutskever
2023, "Consistency Models", arXiv 2303.01469 (docs/methods.md M4).

- Parameterisation (paper Eq. 5 and Appendix C), with the preconditioning of the official code
  (`karras_diffusion.py`: `c_in` and the noise embedding):
  `f_theta(x, t) = c_skip(t) x + c_out(t) F_theta(c_in(t) x, 250 log t)`,
  `c_skip(t) = sigma_data^2 / ((t - eps)^2 + sigma_data^2)`,
  `c_out(t) = sigma_data (t - eps) / sqrt(sigma_data^2 + t^2)`,
  `c_in(t) = 1 / sqrt(t^2 + sigma_data^2)`, so `f_theta(x, eps) = x` exactly. `F_theta` is the
  shared U-Net (`methods/nets/unet.py`) of width `n_feat`; it sees the noise level through its
  sinusoidal embedding of `250 log t` (EDM's `c_noise = log(t)/4`, times 1000).
- Karras discretisation: `t_i = (eps^(1/rho) + (i-1)/(N-1) (T^(1/rho) - eps^(1/rho)))^rho`,
  `i = 1..N`, `rho = 7`.
- Schedules over training step k of K: `N(k) = ceil(sqrt(k/K ((s1+1)^2 - s0^2) + s0^2) - 1) + 1`
  and `mu(k) = exp(s0 log(mu0) / N(k))` (paper Appendix C; s0 = 2, s1 = 150, mu0 = 0.9).
- CT loss: `d(f_theta(x + t_{n+1} z, t_{n+1}), f_{theta^-}(x + t_n z, t_n))`, `n ~ U{1..N(k)-1}`,
  `lambda = 1`; `theta^-` is an EMA of `theta` with rate `mu(k)` (no gradient). `d` is L2, L1,
  or pseudo-Huber `sqrt(||x - y||^2 + c^2) - c` with `c = 0.00054 sqrt(dim)` (Song & Dhariwal
  2023, "Improved Techniques for Training Consistency Models", arXiv 2310.14189).
- Sampling (Algorithm 1): `x = f(T z, T)`; then for each later time `tau` of a decreasing list,
  `x = f(x + sqrt(tau^2 - eps^2) z, tau)`. One step is a single network evaluation. The times
  are a knob (`times`, or `steps` times evenly spaced in the Karras index of N = s1 + 1).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from genbench.harness.errors import GenbenchError
from genbench.harness.method import Budget, Method, Observation, TrainData, register
from genbench.harness.seeding import PerSampleNoise
from genbench.methods.nets.unet import UNet, UNetTraining
from genbench.methods.training import (EMA, LossLog, TrainState, autocast, make_adam,
                                       minibatches, to_device)

Distance = Literal["l2", "l1", "pseudo_huber", "lpips"]


@dataclass(frozen=True)
class CMConfig(UNetTraining):
    sigma_data: float = 0.5  # data standard deviation of Appendix C (not 0.25)
    eps: float = 0.002  # smallest time; f(x, eps) = x
    T: float = 80.0  # largest time
    rho: float = 7.0  # Karras discretisation exponent
    s0: int = 2  # N(k) at the start of training
    s1: int = 150  # N(k) at the end is s1 + 1
    mu0: float = 0.9  # EMA rate of the target network at N = s0
    distance: Distance = "l2"  # d: l2, l1, pseudo_huber (lpips: needs local weights)
    # F_theta, its optimiser and the fast paths: see UNetTraining (ema_decay: a separate EMA
    # of theta for sampling, apart from the target theta^-)

    def __post_init__(self):
        super().__post_init__()
        if not 0 < self.eps < self.T:
            raise ValueError("need 0 < eps < T")
        if self.s0 < 2 or self.s1 < self.s0:
            raise ValueError("need 2 <= s0 <= s1")
        if not 0 < self.mu0 < 1:
            raise ValueError("need 0 < mu0 < 1")
        if self.sigma_data <= 0:
            raise ValueError("sigma_data must be positive")


@dataclass(frozen=True)
class CMKnobs:
    steps: int = 1  # network evaluations per sample (Algorithm 1)
    times: tuple[float, ...] = ()  # explicit decreasing times, the first T; () = evenly spaced
    weights: Literal["target", "online", "ema"] = "target"  # theta^-, theta, or the sampling EMA
    batch_size: int = 256  # samples per forward pass (does not change the samples)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")
        if self.times and list(self.times) != sorted(self.times, reverse=True):
            raise ValueError(f"times must decrease, got {list(self.times)}")


def c_skip(t: torch.Tensor, cfg: CMConfig) -> torch.Tensor:
    return cfg.sigma_data ** 2 / ((t - cfg.eps) ** 2 + cfg.sigma_data ** 2)


def c_out(t: torch.Tensor, cfg: CMConfig) -> torch.Tensor:
    return cfg.sigma_data * (t - cfg.eps) / torch.sqrt(cfg.sigma_data ** 2 + t ** 2)


def c_in(t: torch.Tensor, cfg: CMConfig) -> torch.Tensor:
    return 1 / torch.sqrt(t ** 2 + cfg.sigma_data ** 2)


def karras_times(N: int, eps: float, T: float, rho: float) -> torch.Tensor:
    """(N,) float64 t_1 < ... < t_N from eps to T."""
    i = torch.arange(N, dtype=torch.float64)
    return (eps ** (1 / rho) + i / (N - 1) * (T ** (1 / rho) - eps ** (1 / rho))) ** rho


def n_schedule(k: int, K: int, s0: int, s1: int) -> int:
    """N(k): discretisation steps at training step k of K."""
    return math.ceil(math.sqrt(k / K * ((s1 + 1) ** 2 - s0 ** 2) + s0 ** 2) - 1) + 1


def mu_schedule(N: int, s0: int, mu0: float) -> float:
    """mu(k) = exp(s0 log(mu0) / N(k)): the target network's EMA rate."""
    return math.exp(s0 * math.log(mu0) / N)


def distance(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    """(B,) d(a, b) per sample."""
    diff = (a - b).flatten(1).float()
    if kind == "l2":
        return diff.pow(2).mean(1)
    if kind == "l1":
        return diff.abs().mean(1)
    if kind == "pseudo_huber":
        c = 0.00054 * math.sqrt(diff.shape[1])
        return torch.sqrt(diff.pow(2).sum(1) + c ** 2) - c
    raise GenbenchError(f"distance {kind!r} is not available")


@register("consistency")
class ConsistencyModel(Method):
    Config = CMConfig
    Knobs = CMKnobs
    tiny_config = dict(n_feat=8, ch_mult=(1, 2), attention=True, batch_size=8, s1=10, ema_decay=0.9)
    resumable = True
    modules = {"net": "net", "target": "target", "ema": "ema.net"}  # F_theta, theta^-, EMA
    trained = ("net",)

    def __init__(self, config: CMConfig | None = None):
        super().__init__(config)
        self.net: UNet | None = None
        self.target: UNet | None = None
        self.ema: EMA | None = None
        self.data_shape: tuple[int, ...] = ()

    @classmethod
    def check(cls, config: CMConfig, knobs: CMKnobs, *, task: str, num_classes: int) -> None:
        super().check(config, knobs, task=task, num_classes=num_classes)
        if config.distance == "lpips":
            raise GenbenchError("distance 'lpips' needs LPIPS's VGG weights, which genbench does "
                                "not ship or download; use l2, l1 or pseudo_huber")
        if knobs.weights == "ema" and config.ema_decay == 0:
            raise GenbenchError("weights='ema' needs a sampling EMA (ema_decay > 0)")
        if knobs.times and knobs.times[0] != config.T:
            raise GenbenchError(f"times must start at T={config.T:g}, got {knobs.times[0]:g}")
        if knobs.times and len(knobs.times) != knobs.steps:
            raise GenbenchError(f"times has {len(knobs.times)} entries but steps={knobs.steps}")

    def _build(self, data_shape: tuple[int, ...], device: torch.device) -> None:
        cfg = self.config
        self.data_shape = tuple(data_shape)
        self.net = cfg.unet(data_shape)
        self.target = copy.deepcopy(self.net).eval().requires_grad_(False)  # theta^-
        self.ema = EMA(self.net, cfg.ema_decay) if cfg.ema_decay > 0 else None
        self.to(device)  # the one placement: after a fit's build and a reload alike

    def f(self, net: UNet, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The consistency function f_theta(x, t); t is (B,) times."""
        cfg = self.config
        tb = t.float()[:, None, None, None]
        with autocast(self.device, cfg.amp):
            out = net(c_in(tb, cfg) * x, 250 * torch.log(t.float())).float()
        return c_skip(tb, cfg) * x + c_out(tb, cfg) * out

    def fit(self, data: TrainData, budget: Budget, *, seed: int, device: torch.device) -> None:
        cfg = self.config
        if cfg.distance == "lpips":
            raise GenbenchError("distance 'lpips' needs LPIPS's VGG weights (not available)")
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self._build(data.shape, device)
        if cfg.compile:  # after the target and EMA copies: they stay eager
            self.net.compile()
        opt = make_adam(self.net.parameters(), cfg.lr, device)
        batches = minibatches(len(data.x), cfg.batch_size, g)
        x_all = data.x.to(device)
        log = LossLog(budget)
        K = budget.steps
        state = TrainState(budget, net=self.net, target=self.target, opt=opt, gen=g,
                           batches=batches, **({"ema": self.ema} if self.ema is not None else {}))
        for step in range(state.start(), K + 1):
            N = n_schedule(step - 1, K, cfg.s0, cfg.s1)
            mu = mu_schedule(N, cfg.s0, cfg.mu0)
            ts = karras_times(N, cfg.eps, cfg.T, cfg.rho)
            x0 = x_all[to_device(next(batches), device)]
            n = torch.randint(0, N - 1, (len(x0),), generator=g)  # 0-based: t_n, t_{n+1}
            t_n, t_next = to_device(ts[n], device), to_device(ts[n + 1], device)
            z = to_device(torch.randn(x0.shape, generator=g), device)
            online = self.f(self.net, x0 + t_next.float()[:, None, None, None] * z, t_next)
            with torch.no_grad():
                target = self.f(self.target, x0 + t_n.float()[:, None, None, None] * z, t_n)
            loss = distance(online, target, cfg.distance).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
            opt.step()
            with torch.no_grad():  # theta^- <- mu theta^- + (1 - mu) theta
                torch._foreach_lerp_(list(self.target.parameters()),
                                     [p.detach() for p in self.net.parameters()], 1 - mu)
            if self.ema is not None:
                self.ema.update(self.net)
            log.add(step, loss, N=N, mu=mu)
            state.after(step)
        self.net.eval()

    def _weights(self, k: CMKnobs) -> UNet:
        if k.weights == "online":
            return self.net
        if k.weights == "ema":
            if self.ema is None:
                raise GenbenchError("weights='ema' needs a sampling EMA (ema_decay > 0)")
            return self.ema.net
        return self.target

    def sample_times(self, k: CMKnobs) -> list[float]:
        """The decreasing times of Algorithm 1: `times`, or `steps` times evenly spaced in the
        Karras index of the final discretisation (N = s1 + 1), starting at T."""
        if k.times:
            return list(k.times)
        cfg = self.config
        N = cfg.s1 + 1
        ts = karras_times(N, cfg.eps, cfg.T, cfg.rho)
        idx = [round((N - 1) * (1 - j / k.steps)) for j in range(k.steps)]
        return [float(ts[i]) for i in idx]

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, labels: torch.Tensor | None = None,
               observation: Observation | None = None, **knobs: Any) -> torch.Tensor:
        k = self.knobs(**knobs)
        cfg = self.config
        net = self._weights(k)
        was_training = net.training
        net.eval()
        times = self.sample_times(k)
        out = []
        for start in range(0, n, k.batch_size):
            idx = range(start, min(n, start + k.batch_size))
            noise = PerSampleNoise(seed, idx, self.device)
            B = len(idx)
            x = self.f(net, times[0] * noise.randn(*self.data_shape),
                       torch.full((B,), times[0], device=self.device))
            for tau in times[1:]:
                z = noise.randn(*self.data_shape)
                x_tau = x + math.sqrt(max(tau ** 2 - cfg.eps ** 2, 0.0)) * z
                x = self.f(net, x_tau, torch.full((B,), tau, device=self.device))
            out.append(x.clamp(-1, 1).cpu())
        net.train(was_training)
        return torch.cat(out)

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        k = self.knobs(**knobs)
        times = self.sample_times(k)
        return {"nfe": len(times), "times": [round(t, 4) for t in times], "weights": k.weights}

    def extra_state(self) -> dict[str, Any]:
        return {"data_shape": list(self.data_shape)}

    def rebuild(self, state: dict[str, Any]) -> None:
        self._build(tuple(state["data_shape"]), self.device)

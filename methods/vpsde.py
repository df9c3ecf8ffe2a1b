"""The VP-SDE toy on a 1-D Gaussian mixture (docs/methods.md M10; Song, Sohl-Dickstein, Kingma,
Kumar, Ermon, Poole 2021, "Score-Based Generative Modeling through Stochastic Differential
Equations", arXiv 2011.13456, Eq. 11 and Appendix C).

- Forward SDE `dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw`, `t in [0, 1]`,
  `beta(t) = beta_min + t (beta_max - beta_min)`. With
  `B(t) = beta_min t + (beta_max - beta_min) t^2 / 2` and `m_t = exp(-B(t)/2)`, the transition is
  `x_t | x_0 ~ N(m_t x_0, 1 - m_t^2)`, so the marginal of a mixture stays a mixture with means
  `m_t mu_i` and variances `v_i(t) = m_t^2 s_i^2 + 1 - m_t^2` (`genbench.harness.mixture`).
- Exact score: `grad_x log p_t(x) = sum_i r_i(x) (-(x - m_t mu_i) / v_i(t))`, `r_i` the posterior
  responsibility of component i at x.
- Learned score (`score="learned"`): an MLP `eps_theta(x, t)` trained by denoising score matching
  with the noise-prediction weighting `lambda(t) = 1 - m_t^2`:
  `E_{t ~ U[eps, 1], x_0, z} ||eps_theta(m_t x_0 + sigma_t z, t) - z||^2`, `sigma_t^2 = 1 - m_t^2`,
  and `score = -eps_theta / sigma_t` (Ho et al. 2020's parameterisation, Song et al. 2021 §3.3).
- Reverse SDE `dx = [-1/2 beta x - beta score] dt + sqrt(beta) dw_bar` by Euler-Maruyama on a
  uniform grid from t = 1 to t = eps; as in Song et al.'s sampler (`noise_removal`), the last
  step adds no noise. Probability-flow ODE `dx/dt = -1/2 beta (x + score)` by Euler (one
  evaluation per step) or Heun (two). Both start at `x_1 ~ N(0, 1)`. The process, solver and
  step count are sampling knobs; the noise of every step comes from per-sample generators,
  drawn in one call per sample, so a sample is the same at any batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
import torch.nn as nn

from genbench.harness.errors import GenbenchError
from genbench.harness.method import Budget, Method, Observation, TrainData, register
from genbench.harness.mixture import Mixture, score as mixture_score
from genbench.harness.seeding import PerSampleNoise
from genbench.methods.training import (LossLog, TrainState, check_adam, make_adam, minibatches,
                                       to_device)


@dataclass(frozen=True)
class VPSDEConfig:
    beta_min: float = 0.1
    beta_max: float = 20.0
    eps: float = 1e-3  # smallest time, for training and where sampling stops
    score: Literal["exact", "learned"] = "exact"  # the analytic score, or an MLP trained by DSM
    hidden: int = 128  # MLP width (learned score)
    layers: int = 3  # hidden layers of the MLP
    lr: float = 1e-3  # Adam learning rate (learned score)
    batch_size: int = 512  # points per step (learned score; the exact one logs its DSM loss)

    def __post_init__(self):
        if not 0 < self.beta_min < self.beta_max:
            raise ValueError("need 0 < beta_min < beta_max")
        if not 0 < self.eps < 1:
            raise ValueError("need 0 < eps < 1")
        if self.hidden < 1 or self.layers < 1 or self.batch_size < 1:
            raise ValueError("hidden, layers and batch_size must be >= 1")
        check_adam(self.lr)


@dataclass(frozen=True)
class VPSDEKnobs:
    process: Literal["sde", "ode"] = "sde"  # the reverse SDE or the probability-flow ODE
    solver: Literal["euler", "heun"] = "euler"  # Euler(-Maruyama) or Heun (ODE only)
    steps: int = 1000  # integration steps from t = 1 to t = eps
    batch_size: int = 20_000  # points per pass (does not change the samples)

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be >= 1")


class ScoreMLP(nn.Module):
    """eps_theta(x, t): an MLP on (x, sinusoidal features of t) with SiLU."""

    def __init__(self, hidden: int, layers: int, n_freq: int = 16):
        super().__init__()
        self.register_buffer("freqs", torch.exp(torch.linspace(0, math.log(1000), n_freq)))
        dims = [1 + 2 * n_freq] + [hidden] * layers
        body: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            body += [nn.Linear(a, b), nn.SiLU()]
        self.net = nn.Sequential(*body, nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        args = t[:, None] * self.freqs[None]
        return self.net(torch.cat([x, torch.sin(args), torch.cos(args)], dim=1))


@register("vpsde")
class VPSDE(Method):
    Config = VPSDEConfig
    Knobs = VPSDEKnobs
    tiny_config = dict(score="learned", hidden=8, layers=1, batch_size=8)
    output = "points"
    resumable = True
    modules = {"net": "net"}  # s_theta(x, t); the exact score needs no network
    trained = ("net",)

    def __init__(self, config: VPSDEConfig | None = None):
        super().__init__(config)
        self.law: Mixture | None = None
        self.net: ScoreMLP | None = None

    @classmethod
    def check(cls, config: VPSDEConfig, knobs: VPSDEKnobs, *, task: str, num_classes: int) -> None:
        super().check(config, knobs, task=task, num_classes=num_classes)
        if knobs.process == "sde" and knobs.solver == "heun":
            raise GenbenchError("solver 'heun' integrates the probability-flow ODE; the reverse "
                                "SDE uses euler (Euler-Maruyama)")

    @classmethod
    def ignored_knobs(cls, knobs: VPSDEKnobs) -> dict[str, tuple[str, str]]:
        if knobs.process == "sde":
            return {"solver": ("process 'sde' (always Euler-Maruyama)", "process ode")}
        return {}

    # -- the SDE in closed form -----------------------------------------------------------
    def beta(self, t: torch.Tensor) -> torch.Tensor:
        c = self.config
        return c.beta_min + t * (c.beta_max - c.beta_min)

    def mean_coef(self, t: torch.Tensor) -> torch.Tensor:
        """m_t = exp(-B(t)/2), B(t) = beta_min t + (beta_max - beta_min) t^2 / 2."""
        c = self.config
        return torch.exp(-0.5 * (c.beta_min * t + 0.5 * (c.beta_max - c.beta_min) * t * t))

    def marginal(self, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-time (B, K) means and variances and (1, K) log weights of p_t."""
        m = self.mean_coef(t)[:, None]
        mu, s2, logw = (v.to(t.dtype) for v in self._law_rows())
        return m * mu, m * m * s2 + 1 - m * m, logw

    def on_device(self) -> None:
        if getattr(self, "law", None) is not None:
            self._law_rows()

    def _law_rows(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The law's (1, K) means, variances and log weights, float64, on the device: made once
        per law and device (by `on_device`), not at every step of the exact score."""
        key = (self.law, self.device)
        cached = getattr(self, "_law_cache", None)
        if cached is None or cached[0] != key:
            row = lambda v: torch.tensor(v, dtype=torch.float64)[None].to(self.device)  # noqa: E731
            law = self.law
            cached = self._law_cache = (key, (row(law.means), row(law.stds) ** 2,
                                              torch.log(row(law.weights))))
        return cached[1]

    def exact_score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        means, variances, log_weights = self.marginal(t)
        return mixture_score(means, variances, log_weights, x)

    def score(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """(B, 1) score of p_t at x (B, 1), t (B,): exact, or -eps_theta / sigma_t."""
        if self.config.score == "exact":
            return self.exact_score(x, t)
        sigma = torch.sqrt(1 - self.mean_coef(t) ** 2)[:, None]
        return -self.net(x.float(), t.float()).to(x.dtype) / sigma

    # -- training -------------------------------------------------------------------------
    def fit(self, data: TrainData, budget: Budget, *, seed: int, device: torch.device) -> None:
        cfg = self.config
        if data.law is None:
            raise GenbenchError(f"vpsde needs a data set with an exact law (mixture), got {data.name!r}")
        self.law = data.law
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.net = ScoreMLP(cfg.hidden, cfg.layers)
        self.to(device)
        opt = make_adam(self.net.parameters(), cfg.lr, device)
        x_all = data.x.to(device)
        batches = minibatches(len(x_all), cfg.batch_size, g)
        log = LossLog(budget)
        state = TrainState(budget, net=self.net, opt=opt, gen=g, batches=batches)
        for step in range(state.start(), budget.steps + 1):
            x0 = x_all[to_device(next(batches), device)]
            t = to_device(cfg.eps + (1 - cfg.eps) * torch.rand(len(x0), generator=g), device)
            z = to_device(torch.randn(x0.shape, generator=g), device)
            m = self.mean_coef(t)[:, None]
            sigma = torch.sqrt(1 - m * m)
            xt = m * x0 + sigma * z
            if cfg.score == "exact":  # the loss floor the learned score approaches
                with torch.no_grad():
                    loss = (-sigma * self.exact_score(xt, t) - z).pow(2).mean()
            else:
                loss = (self.net(xt, t) - z).pow(2).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            log.add(step, loss)
            state.after(step)
        self.net.eval()

    # -- sampling -------------------------------------------------------------------------
    def _drift(self, x: torch.Tensor, t: torch.Tensor, ode: bool) -> torch.Tensor:
        """dx/dt of the reverse SDE (without its noise) or of the probability-flow ODE."""
        b = self.beta(t)[:, None]
        return -0.5 * b * x - (0.5 if ode else 1.0) * b * self.score(x, t)

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, labels: torch.Tensor | None = None,
               observation: Observation | None = None, **knobs: Any) -> torch.Tensor:
        k = self.knobs(**knobs)
        ts = torch.linspace(1.0, self.config.eps, k.steps + 1, dtype=torch.float64)
        out = []
        for start in range(0, n, k.batch_size):
            noise = PerSampleNoise(seed, range(start, min(n, start + k.batch_size)), self.device)
            draws = noise.randn(k.steps + 1, 1, dtype=torch.float64)  # one call per sample
            out.append(self._integrate(draws, ts, k).float().cpu())
        return torch.cat(out)

    def _integrate(self, draws: torch.Tensor, ts: torch.Tensor, k: VPSDEKnobs,
                   path: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Integrate from x_1 = draws[:, 0] over the grid `ts` (float64), appending every
        state to `path` when given."""
        x = draws[:, 0]
        B = len(x)
        ode = k.process == "ode"
        dts = (ts[1:] - ts[:-1]).tolist()  # host floats (negative), and
        ts = ts.to(x.device)  # the grid on the device: once, not once per step
        for i in range(k.steps):
            if path is not None:
                path.append(x)
            t = ts[i].expand(B)
            dt = dts[i]
            d1 = self._drift(x, t, ode)
            if not ode:
                x = x + d1 * dt
                if i < k.steps - 1:  # the last step is the noise-free mean
                    x = x + torch.sqrt(self.beta(t)[:, None] * -dt) * draws[:, i + 1]
            elif k.solver == "heun":
                x_next = x + d1 * dt
                d2 = self._drift(x_next, ts[i + 1].expand(B), ode)
                x = x + 0.5 * (d1 + d2) * dt
            else:
                x = x + d1 * dt
        if path is not None:
            path.append(x)
        return x

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        k = self.knobs(**knobs)
        heun = k.process == "ode" and k.solver == "heun"
        return {"nfe": k.steps * (2 if heun else 1), "t_end": self.config.eps,
                "score": self.config.score}

    # -- figures --------------------------------------------------------------------------
    @torch.no_grad()
    def figures(self, data: TrainData, *, seed: int,
                **knobs: Any) -> dict[str, tuple[torch.Tensor, int]]:
        """Trajectories of the forward SDE (Euler-Maruyama from training points), the reverse
        SDE and the probability-flow ODE (from x_1 ~ N(0, 1)), 500 Euler steps each whatever
        the sampling knobs, over the heat map of the exact p_t(x). The forward SDE needs no
        network and runs on the CPU."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n, steps = 12, 500
        ts = torch.linspace(1.0, self.config.eps, steps + 1, dtype=torch.float64)
        g = torch.Generator().manual_seed(seed)
        x = data.x.cpu()[torch.randperm(len(data.x), generator=g)[:n]].double()
        forward = [x]
        for i in range(steps):  # forward in time over the reversed grid
            t, dt = ts[steps - i].expand(n), float(ts[steps - i - 1] - ts[steps - i])
            b = self.beta(t)[:, None]
            x = x + (-0.5 * b * x) * dt + torch.sqrt(b * dt) * torch.randn(x.shape, generator=g,
                                                                           dtype=torch.float64)
            forward.append(x)
        draws = PerSampleNoise(seed, range(n), self.device).randn(steps + 1, 1, dtype=torch.float64)
        paths = {}
        for name, knobs in (("reverse SDE", VPSDEKnobs("sde", "euler", steps)),
                            ("probability-flow ODE", VPSDEKnobs("ode", "euler", steps))):
            path: list[torch.Tensor] = []
            self._integrate(draws, ts, knobs, path)
            paths[name] = (ts.numpy(), torch.stack(path)[:, :, 0].cpu().numpy())
        grid_t = np.linspace(0, 1, 200)
        grid_x = np.linspace(-4, 4, 200)
        m = self.mean_coef(torch.tensor(grid_t)).numpy()
        density = np.stack([self.law.diffused(float(mt)).pdf(grid_x) for mt in m], axis=1)
        fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), dpi=100, sharey=True)
        panels = [("forward SDE", (ts.flip(0).numpy(), torch.stack(forward)[:, :, 0].cpu().numpy())),
                  *paths.items()]
        for ax, (title, (t, xs)) in zip(axes, panels):
            ax.imshow(density, origin="lower", aspect="auto", extent=(0, 1, -4, 4), cmap="magma")
            ax.plot(t, xs, color="white", lw=0.7, alpha=0.85)
            ax.set_title(f"{title} ({self.config.score} score)", fontsize=9)
            ax.set_xlabel("t")
            ax.set_xlim(0, 1)
            ax.set_ylim(-4, 4)
        axes[0].set_ylabel("x")
        fig.tight_layout()
        fig.canvas.draw()
        rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
        plt.close(fig)
        image = torch.from_numpy(rgb).permute(2, 0, 1).float().div(127.5).sub(1)
        return {"trajectories": (image[None], 1)}

    facts = ("m_1",)  # what info() returns

    def info(self) -> dict[str, float]:
        m1 = float(self.mean_coef(torch.tensor(1.0, dtype=torch.float64)))
        return {"m_1": m1}

    def n_params(self) -> int:
        return 0 if self.config.score == "exact" else super().n_params()  # the law has none

    def extra_state(self) -> dict[str, Any]:
        law = self.law
        return {"law": [list(law.weights), list(law.means), list(law.stds)]}

    def rebuild(self, state: dict[str, Any]) -> None:
        w, mu, s = state["law"]
        self.law = Mixture(tuple(w), tuple(mu), tuple(s))
        self.net = ScoreMLP(self.config.hidden, self.config.layers)
        self.to(self.device)


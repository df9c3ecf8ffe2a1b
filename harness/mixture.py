"""One-dimensional Gaussian mixtures with exact densities: the `mixture` data set family
(docs/methods.md M10), and what the point metrics and the VP-SDE toy compute against.

`p_0(x) = sum_i pi_i N(x; mu_i, s_i^2)`. A mixture is written `w,mean,std;w,mean,std;...`
(weights are normalised to sum to 1); `mixture` alone is `DEFAULT`, the two-component mixture
of the VP-SDE toy. Under the VP forward process `x_t = m_t x_0 + sqrt(1 - m_t^2) z` every
component stays Gaussian: `diffused(m_t)` is the mixture with means `m_t mu_i` and variances
`m_t^2 s_i^2 + 1 - m_t^2` (Song et al. 2021, arXiv 2011.13456, Appendix C), so `p_t` and its
score are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from typing import TYPE_CHECKING

import numpy as np
from scipy.special import ndtr

from genbench.harness.errors import GenbenchError

if TYPE_CHECKING:  # torch loads when points are drawn or scored: naming a mixture needs none
    import torch

DEFAULT = "0.3,-2,0.5;0.7,1.5,0.3"  # the toy's two components: (weight, mean, std)


@dataclass(frozen=True)
class Mixture:
    weights: tuple[float, ...]
    means: tuple[float, ...]
    stds: tuple[float, ...]

    @classmethod
    def parse(cls, spec: str) -> "Mixture":
        """`w,mean,std;...` (or "" for DEFAULT); a malformed spec fails in one line."""
        spec = spec or DEFAULT
        try:
            comps = [tuple(float(v) for v in c.split(",")) for c in spec.split(";") if c.strip()]
        except ValueError:
            comps = []
        if not comps or any(len(c) != 3 or c[0] <= 0 or c[2] <= 0 or not all(map(math.isfinite, c))
                            for c in comps):
            raise GenbenchError(f"malformed mixture {spec!r}: write weight,mean,std per component, "
                                "components separated by ';', weights and stds > 0 "
                                f"(e.g. mixture:{DEFAULT})")
        total = sum(c[0] for c in comps)
        return cls(tuple(c[0] / total for c in comps), tuple(c[1] for c in comps),
                   tuple(c[2] for c in comps))

    def diffused(self, m: float) -> "Mixture":
        """The law of `m x_0 + sqrt(1 - m^2) z` for x_0 from this mixture (VP marginal)."""
        return Mixture(self.weights, tuple(m * mu for mu in self.means),
                       tuple(math.sqrt(m * m * s * s + 1 - m * m) for s in self.stds))

    def sample(self, n: int, seed: int) -> torch.Tensor:
        """(n, 1) float32 draws, reproducible from `seed`."""
        import torch

        rng = np.random.default_rng(seed)
        comp = rng.choice(len(self.weights), size=n, p=np.asarray(self.weights))
        x = rng.normal(np.asarray(self.means)[comp], np.asarray(self.stds)[comp])
        return torch.from_numpy(x.astype(np.float32)).view(n, 1)

    def cdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)[..., None]
        return (np.asarray(self.weights) * ndtr((x - np.asarray(self.means)) /
                                               np.asarray(self.stds))).sum(-1)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)[..., None]
        s = np.asarray(self.stds)
        z = (x - np.asarray(self.means)) / s
        return (np.asarray(self.weights) * np.exp(-0.5 * z * z) / (s * math.sqrt(2 * math.pi))).sum(-1)

    def quantile(self, q: np.ndarray) -> np.ndarray:
        """Inverse CDF by bisection (float64, to 1e-12)."""
        q = np.asarray(q, dtype=np.float64)
        lo = np.full_like(q, min(self.means) - 12 * max(self.stds))
        hi = np.full_like(q, max(self.means) + 12 * max(self.stds))
        for _ in range(80):
            mid = (lo + hi) / 2
            below = self.cdf(mid) < q
            lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
        return (lo + hi) / 2


def log_prob(mix_means: torch.Tensor, mix_vars: torch.Tensor, log_weights: torch.Tensor,
             x: torch.Tensor) -> torch.Tensor:
    """log sum_i w_i N(x; mean_i, var_i) for x (B, 1) and per-sample (B, K) means and variances."""
    import torch

    return torch.logsumexp(log_weights - 0.5 * (x - mix_means) ** 2 / mix_vars
                           - 0.5 * torch.log(2 * math.pi * mix_vars), dim=1, keepdim=True)


def score(mix_means: torch.Tensor, mix_vars: torch.Tensor, log_weights: torch.Tensor,
          x: torch.Tensor) -> torch.Tensor:
    """d/dx log p(x) = sum_i r_i(x) (-(x - mean_i) / var_i), r_i the posterior responsibility
    of component i at x; shapes as `log_prob`."""
    import torch

    logits = log_weights - 0.5 * (x - mix_means) ** 2 / mix_vars - 0.5 * torch.log(mix_vars)
    r = torch.softmax(logits, dim=1)
    return (r * (-(x - mix_means) / mix_vars)).sum(1, keepdim=True)


def wasserstein1(samples: np.ndarray, mix: Mixture, grid: int = 20_000) -> float:
    """W1 between the empirical law of `samples` and `mix`: the integral of |F_n - F| over a
    fine grid covering both (exact CDF, not a second sample)."""
    s = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    lo = min(s[0], min(mix.means) - 10 * max(mix.stds))
    hi = max(s[-1], max(mix.means) + 10 * max(mix.stds))
    x = np.linspace(lo, hi, grid)
    f_n = np.searchsorted(s, x, side="right") / len(s)
    return float(np.trapezoid(np.abs(f_n - mix.cdf(x)), x))


def ks_statistic(samples: np.ndarray, mix: Mixture) -> float:
    """sup_x |F_n(x) - F(x)|, evaluated at the jumps of the empirical CDF."""
    s = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = len(s)
    f = mix.cdf(s)
    return float(max((np.arange(1, n + 1) / n - f).max(), (f - np.arange(n) / n).max()))

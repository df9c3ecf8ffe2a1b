"""Metrics of 1-D point samples against the data set's exact law (docs/methods.md M10, §8):
the samples are compared with the law's CDF itself, never with a second finite sample, so the
only noise is the samples' own.

- `w1_exact`: Wasserstein-1 distance `integral |F_n(x) - F(x)| dx` (F_n the empirical CDF),
  by the trapezoidal rule on a 20,000-point grid covering the samples and the law.
- `ks_exact`: Kolmogorov-Smirnov statistic `sup_x |F_n(x) - F(x)|`, exact (at the jumps of F_n).
"""

from __future__ import annotations

from typing import Any

from genbench.harness.metrics import register_metric
from genbench.harness.mixture import ks_statistic, wasserstein1


@register_metric("w1_exact", space="exact", higher_is_better=False, needs_labels=False,
                 description="Wasserstein-1 distance of 1-D samples to the exact data law")
def w1_exact(m) -> dict[str, Any]:
    return {"value": wasserstein1(m.feats[:, 0], m.law),
            "protocol": "integral |F_n - F| dx, exact CDF, trapezoid on 20,000 points"}


@register_metric("ks_exact", space="exact", higher_is_better=False, needs_labels=False,
                 description="Kolmogorov-Smirnov statistic of 1-D samples against the exact law")
def ks_exact(m) -> dict[str, Any]:
    return {"value": ks_statistic(m.feats[:, 0], m.law),
            "protocol": "sup |F_n - F| at the jumps of F_n, exact CDF"}

"""The statistics behind genbench's verdicts (`genbench claims` and `genbench compare`): the
difference of two sets of per-seed measurements with its interval, paired by seed wherever both
sides share seeds (Student's paired t) and Welch's unequal-variance t where they do not; Holm's
step-down correction across a family of tests (Holm 1979); and the seeds a comparison needs to
be decided with a given power (the noncentral t distribution; Cohen 1988, ch. 2).

Pairing is what makes seed-level studies decidable: two sample settings of one fit share the
fit and the per-sample noise, and two train cells with the same seed share the data order and
the initial draws, so most of the seed-to-seed noise cancels in the per-seed difference
(Bouthillier et al. 2021, "Accounting for variance in machine learning benchmarks"). See
docs/statistics.md for what each number means.

Pure numpy and scipy: no torch, no pandas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_SEEDS = 10_000  # seeds_needed looks no further: beyond it a claim is not decidable by seeds


@dataclass(frozen=True)
class Estimate:
    """The difference `x - y` of two sets of per-seed measurements, with its interval."""

    diff: float  # paired: mean of the per-seed differences; Welch: difference of the means
    lo: float  # the (1 - alpha) two-sided interval of the difference (NaN without one)
    hi: float
    se: float  # its standard error (0: no noise either side; NaN: unknown)
    dof: float  # degrees of freedom of the t distribution (NaN without one)
    test: str  # "paired t" | "welch" | "exact" (no spread: every pair the same) | "none"
    n: int  # pairs (paired, exact), or the smaller side's seeds (welch, none)
    n_x: int  # seeds with a value on each side
    n_y: int
    mean_x: float
    mean_y: float
    sd: float  # paired: spread of the per-seed differences; welch: NaN
    sd_x: float  # welch: spread of each side; paired: NaN
    sd_y: float

    @property
    def decidable(self) -> bool:
        """Whether the data carry a spread at all (two or more seeds on what is compared)."""
        return self.test != "none"

    def p_greater(self, threshold: float) -> float:
        """One-sided p-value of 'the difference exceeds `threshold`' (H0: it does not)."""
        return self._p((self.diff - threshold), upper=True)

    def p_less(self, threshold: float) -> float:
        """One-sided p-value of 'the difference is below `threshold`' (H0: it is not)."""
        return self._p((self.diff - threshold), upper=False)

    def _p(self, distance: float, *, upper: bool) -> float:
        if self.test == "none" or not math.isfinite(distance):
            return float("nan")
        if self.se == 0:  # exact: the same difference at every seed
            return 0.0 if (distance > 0 if upper else distance < 0) else 1.0
        t = distance / self.se
        from scipy import stats  # (a second to import: loaded where a number is asked for)

        return float(stats.t.sf(t, self.dof) if upper else stats.t.cdf(t, self.dof))

    def p_two_sided(self) -> float:
        """Two-sided p-value of 'the difference is zero'."""
        if self.test == "none":
            return float("nan")
        return min(1.0, 2 * min(self.p_greater(0.0), self.p_less(0.0)))


def _nan() -> float:
    return float("nan")


def estimate(x: dict[int, float], y: dict[int, float], *, alpha: float = 0.05) -> Estimate:
    """The difference `x - y` of measurements keyed by seed: paired on the seeds both sides
    have when there are two or more of them (the seeds only one side has are left out), else
    Welch's t on all seeds when each side has two or more, else no interval (`test="none"`).
    Non-finite values are left out. The interval is two-sided at level 1 - alpha."""
    from scipy import stats

    x = {s: float(v) for s, v in x.items() if v is not None and math.isfinite(v)}
    y = {s: float(v) for s, v in y.items() if v is not None and math.isfinite(v)}
    xs, ys = np.array(list(x.values())), np.array(list(y.values()))
    mean_x = float(xs.mean()) if len(xs) else _nan()
    mean_y = float(ys.mean()) if len(ys) else _nan()
    common = sorted(set(x) & set(y))
    q = 1 - alpha / 2
    if len(common) >= 2:
        d = np.array([x[s] - y[s] for s in common])
        diff, sd = float(d.mean()), float(d.std(ddof=1))
        se, dof = sd / math.sqrt(len(d)), len(d) - 1
        if se == 0:
            return Estimate(diff, diff, diff, 0.0, dof, "exact", len(d), len(x), len(y), mean_x,
                            mean_y, 0.0, _nan(), _nan())
        half = float(stats.t.ppf(q, dof)) * se
        return Estimate(diff, diff - half, diff + half, se, dof, "paired t", len(d), len(x),
                        len(y), mean_x, mean_y, sd, _nan(), _nan())
    diff = mean_x - mean_y
    if len(xs) >= 2 and len(ys) >= 2:
        sd_x, sd_y = float(xs.std(ddof=1)), float(ys.std(ddof=1))
        vx, vy = sd_x ** 2 / len(xs), sd_y ** 2 / len(ys)
        se = math.sqrt(vx + vy)
        if se == 0:
            return Estimate(diff, diff, diff, 0.0, _nan(), "exact", min(len(xs), len(ys)), len(xs),
                            len(ys), mean_x, mean_y, _nan(), 0.0, 0.0)
        dof = welch_dof(vx, vy, len(xs), len(ys))
        half = float(stats.t.ppf(q, dof)) * se
        return Estimate(diff, diff - half, diff + half, se, dof, "welch", min(len(xs), len(ys)),
                        len(xs), len(ys), mean_x, mean_y, _nan(), sd_x, sd_y)
    return Estimate(diff, _nan(), _nan(), _nan(), _nan(), "none", min(len(xs), len(ys)), len(xs),
                    len(ys), mean_x, mean_y, _nan(), _nan(), _nan())


def welch_dof(vx: float, vy: float, nx: int, ny: int) -> float:
    """Welch-Satterthwaite degrees of freedom for squared standard errors vx, vy of the means
    of nx and ny values."""
    denom = vx ** 2 / (nx - 1) + vy ** 2 / (ny - 1)
    return (vx + vy) ** 2 / denom if denom > 0 else float(nx + ny - 2)


def holm(pvalues) -> list[float]:
    """Holm's step-down adjusted p-values (Holm 1979): reject test i at family-wise error rate
    alpha when its adjusted p is at most alpha. NaN (not a test) stays NaN and is not counted
    in the family. Ties keep their order; column-wise, for a family of a million tests."""
    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full(len(p), np.nan)
    idx = np.flatnonzero(np.isfinite(p))
    order = idx[np.lexsort((idx, p[idx]))]  # by p, then by position
    m = len(order)
    out[order] = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    return out.tolist()


def seeds_needed(distance: float, *, sd: float = float("nan"), sd_x: float = float("nan"),
                 sd_y: float = float("nan"), alpha: float = 0.05, power: float = 0.8) -> int | None:
    """The smallest number of seeds (pairs for a paired comparison with spread `sd` of the
    per-seed differences; seeds per side for Welch with spreads `sd_x`, `sd_y`) at which a
    two-sided level-alpha t interval excludes a true difference of `distance` from its
    threshold with probability `power`, from the noncentral t distribution. None when no number
    up to MAX_SEEDS does, or the spread is unknown."""
    from scipy import stats

    distance = abs(distance)
    if distance == 0 or not math.isfinite(distance):
        return None
    if math.isfinite(sd):
        if sd == 0:
            return 2

        def se_dof(n: int) -> tuple[float, float]:
            return sd / math.sqrt(n), n - 1
    elif math.isfinite(sd_x) and math.isfinite(sd_y):
        if sd_x == sd_y == 0:
            return 2

        def se_dof(n: int) -> tuple[float, float]:
            vx, vy = sd_x ** 2 / n, sd_y ** 2 / n
            return math.sqrt(vx + vy), welch_dof(vx, vy, n, n)
    else:
        return None

    def reaches(n: int) -> bool:  # the power at n seeds
        se, dof = se_dof(n)
        return stats.nct.sf(stats.t.ppf(1 - alpha / 2, dof), dof, distance / se) >= power

    if not reaches(MAX_SEEDS):
        return None
    lo, hi = 1, MAX_SEEDS  # reaches(hi); not reaches(lo) (one seed has no interval)
    while hi - lo > 1:  # the power grows with n: bisect
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    return hi

"""The one statistics core behind genbench's verdicts: `genbench claims`, `genbench compare` and
the intervals of the report's tables all call it, column-wise (one array entry per comparison,
so that a comparison of a million rows is a few array operations).

- **Estimates.** The difference `x - y` of two sets of per-seed measurements: Student's paired t
  on the seeds both sides share (two sides of one seed share the fit or the data order and the
  initial draws, so most seed-to-seed noise cancels; Bouthillier et al. 2021), Welch's
  unequal-variance t where they share fewer than two (Welch 1947), `exact` where nothing varies.
  Intervals are two-sided at the level asked for (`alpha`).
- **Scales.** A metric that is positive and multiplicative by nature (FID, KID, times, memory)
  is compared on the log scale: the per-seed log ratio, shown as a % change (`change`); an
  additive one (precision, recall, accuracy, W1) on its own scale. Each metric declares its
  scale (`genbench.harness.metrics.scale`); a side with a value <= 0 falls back to the linear
  scale, and says so.
- **Families.** Holm's step-down method (Holm 1979) controls the family-wise error rate (claims);
  Benjamini-Hochberg (1995, `scipy.stats.false_discovery_control`) the false discovery rate,
  and so the family-wise rate when nothing changed (the regression gate).
- **Power.** The seeds a comparison needs, and the smallest effect it detects (the minimum
  detectable effect), at a power, from the noncentral t distribution (Cohen 1988, ch. 2).
- **Sequential looks.** `--until-decided` tests after each round of seeds. Testing every round at
  the same alpha inflates the error (optional stopping: 11 % at 10 seeds for a nominal 5 %), so
  the rounds follow a group-sequential design: alpha is spent over the looks by Lan and DeMets'
  (1983) O'Brien-Fleming-type function of the information fraction (seeds / --max-seeds), and
  each look's boundary is set for the paired t statistic itself (its joint law under no effect
  is free of the noise level, so it is simulated once per schedule of looks) instead of the
  normal approximation, which is anticonservative at a handful of seeds (5.5 % for 5 % at
  2 and 3 seeds). docs/statistics.md says why this design, and shows its error rates.

Pure numpy and scipy: no torch, no pandas.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

MAX_SEEDS = 10_000  # seeds_needed looks no further: beyond it a claim is not decidable by seeds
POWER = 0.8  # the power seeds_needed and the minimum detectable effect aim for
# the names of the tests, as verdicts print them
PAIRED, WELCH, EXACT, Z, TOLERANCE, NONE = "paired t", "welch", "exact", "z", "tolerance", "none"
NULL_PATHS = 200_000  # simulated null paths behind each sequential boundary (error ~0.0005)


def t_sf(t, dof):
    """Student's t survival function P(T > t) (scipy.special's ufunc: no per-call checks, so a
    simulation of a million looks spends its time on the looks)."""
    from scipy.special import stdtr  # (scipy takes a second to import: loaded where needed)

    return stdtr(dof, -np.asarray(t, dtype=float))


def t_ppf(q, dof):
    """Student's t quantile function."""
    from scipy.special import stdtrit

    return stdtrit(dof, q)


def change_text(log_ratio: float, sign: bool = True) -> str:
    """A change on the log scale as a person reads it: a signed percentage below +100 %
    (`+45%`, `-83%`), a factor from twice on (`x3.2`); "<1%" for a tiny one, never "-0%"."""
    if log_ratio != log_ratio:
        return "?"
    ratio = math.exp(min(log_ratio, 700.0))
    if ratio >= 2.0:
        return "x>1e6" if ratio >= 1e6 else f"x{ratio:.0f}" if ratio >= 10 else f"x{ratio:.2g}"
    text = f"{ratio - 1:+.0%}"
    if text in ("+0%", "-0%") and ratio != 1:
        text = f"{text[0]}<1%"
    return text if sign else text.lstrip("+")


# -- estimates ---------------------------------------------------------------------------------

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
    mean_x: float  # each side's mean in the metric's own units, whatever the scale
    mean_y: float
    sd: float  # paired: spread of the per-seed differences; welch: NaN
    sd_x: float  # welch: spread of each side; paired: NaN
    sd_y: float
    scale: str = "linear"  # "log": diff, lo, hi and the spreads are of log values (log ratios)

    @property
    def decidable(self) -> bool:
        """Whether the data carry a spread at all (two or more seeds on what is compared)."""
        return self.test != NONE

    def change(self, value: float | None = None) -> float:
        """`diff` (or `value` on the same scale) as a relative change of `y`: exp - 1 on the
        log scale; against `y`'s mean on the linear one (NaN where that mean is 0)."""
        value = self.diff if value is None else value
        if self.scale == "log":
            return math.expm1(min(value, 700.0))
        return value / abs(self.mean_y) if math.isfinite(self.mean_y) and self.mean_y else float("nan")

    def p_greater(self, threshold: float) -> float:
        """One-sided p-value of 'the difference exceeds `threshold`' (H0: it does not)."""
        return self._p(self.diff - threshold, upper=True)

    def p_less(self, threshold: float) -> float:
        """One-sided p-value of 'the difference is below `threshold`' (H0: it is not)."""
        return self._p(self.diff - threshold, upper=False)

    def _p(self, distance: float, *, upper: bool) -> float:
        if self.test == NONE or not math.isfinite(distance):
            return float("nan")
        if self.se == 0:  # exact: the same difference at every seed
            return 0.0 if (distance > 0 if upper else distance < 0) else 1.0
        t = distance / self.se
        return float(t_sf(t, self.dof) if upper else t_sf(-t, self.dof))

    def p_two_sided(self) -> float:
        """Two-sided p-value of 'the difference is zero'."""
        if self.test == NONE:
            return float("nan")
        return min(1.0, 2 * min(self.p_greater(0.0), self.p_less(0.0)))


@dataclass(frozen=True)
class Estimates:
    """`Estimate`s of many comparisons at once, as arrays (entry i is comparison i)."""

    diff: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    se: np.ndarray
    dof: np.ndarray
    test: np.ndarray  # object: the test names
    n: np.ndarray
    n_x: np.ndarray
    n_y: np.ndarray
    sd: np.ndarray
    sd_x: np.ndarray
    sd_y: np.ndarray

    def __len__(self) -> int:
        return len(self.diff)

    def p_two_sided(self) -> np.ndarray:
        """Two-sided p-values of 'the difference is zero' (NaN where there is no t test; 0 or
        1 for an exact one)."""
        out = np.full(len(self), np.nan)
        t_test = np.isin(self.test, (PAIRED, WELCH))
        if t_test.any():
            out[t_test] = np.minimum(1.0, 2 * t_sf(np.abs(self.diff[t_test]) / self.se[t_test],
                                                        self.dof[t_test]))
        exact = self.test == EXACT
        out[exact] = np.where(self.diff[exact] != 0, 0.0, 1.0)
        return out

    def at(self, i: int, mean_x: float, mean_y: float, scale: str = "linear") -> Estimate:
        return Estimate(float(self.diff[i]), float(self.lo[i]), float(self.hi[i]),
                        float(self.se[i]), float(self.dof[i]), str(self.test[i]), int(self.n[i]),
                        int(self.n_x[i]), int(self.n_y[i]), mean_x, mean_y, float(self.sd[i]),
                        float(self.sd_x[i]), float(self.sd_y[i]), scale)


def moments(group: np.ndarray, x: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count, mean, sample standard deviation) of `x` per group id in [0, size): two passes,
    as numpy's own mean and std compute them (so an exact tie gives a spread of exactly 0)."""
    k = np.bincount(group, minlength=size)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = np.bincount(group, weights=x, minlength=size) / k
        ss = np.bincount(group, weights=(x - mu[group]) ** 2, minlength=size)
        return k, mu, np.sqrt(ss / (k - 1))


def estimates(pairs, x, y, *, alpha: float = 0.05) -> Estimates:
    """Column-wise estimates of `x - y` from moments (count, mean, sd per comparison, as
    `moments` gives them): `pairs` of the per-seed differences on the seeds both sides share,
    `x` and `y` of each side's own seeds. Paired t where two or more seeds are shared, else
    Welch's t where each side has two or more, else no test (`none`); `exact` where the
    standard error is 0 up to rounding (1e-12 of the difference). Intervals two-sided at level
    1 - alpha."""
    (n_pair, d_mean, d_sd), (nx, mx, sx), (ny, my, sy) = (
        tuple(np.asarray(a, dtype=float) for a in m) for m in (pairs, x, y))
    paired = n_pair >= 2
    welch = ~paired & (nx >= 2) & (ny >= 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        vx, vy = sx ** 2 / nx, sy ** 2 / ny
        se = np.where(paired, d_sd / np.sqrt(n_pair), np.where(welch, np.sqrt(vx + vy), np.nan))
        wdof = (vx + vy) ** 2 / (vx ** 2 / (nx - 1) + vy ** 2 / (ny - 1))
        wdof = np.where(np.isfinite(wdof) & (wdof > 0), wdof, nx + ny - 2.0)
        dof = np.where(paired, n_pair - 1.0, np.where(welch, wdof, np.nan))
    diff = np.where(paired, d_mean, mx - my)
    test = np.full(len(diff), NONE, dtype=object)
    test[paired], test[welch] = PAIRED, WELCH
    # no spread up to rounding (the log of a value made 3x at every seed differs by 1e-16)
    exact = (paired | welch) & (se <= 1e-12 * np.abs(diff))
    test[exact] = EXACT
    t_test = (paired | welch) & ~exact
    lo, hi = np.full(len(diff), np.nan), np.full(len(diff), np.nan)
    if t_test.any():
        half = t_ppf(1 - alpha / 2, dof[t_test]) * se[t_test]
        lo[t_test], hi[t_test] = diff[t_test] - half, diff[t_test] + half
    lo[exact], hi[exact] = diff[exact], diff[exact]
    se = np.where(exact, 0.0, se)
    n = np.where(paired, n_pair, np.minimum(nx, ny)).astype(int)
    nan = np.full(len(diff), np.nan)
    return Estimates(diff, lo, hi, se, dof, test, n, nx.astype(int), ny.astype(int),
                     np.where(paired, d_sd, nan), np.where(paired, nan, sx),
                     np.where(paired, nan, sy))


def log_scale_applies(*values) -> bool:
    """Whether values can be compared on the log scale: every finite one positive."""
    return all(v > 0 for vs in values for v in vs if math.isfinite(v))


def estimate(x: dict[int, float], y: dict[int, float], *, alpha: float = 0.05,
             scale: str = "linear") -> Estimate:
    """The difference `x - y` of measurements keyed by seed: paired on the seeds both sides
    have when there are two or more of them (the seeds only one side has are left out), else
    Welch's t on all seeds when each side has two or more, else no interval (`test="none"`).
    Non-finite values are left out. On the `log` scale (where every value is positive) the
    difference is of log values: the mean per-seed log ratio. The interval is two-sided at
    level 1 - alpha."""
    x = {s: float(v) for s, v in x.items() if v is not None and math.isfinite(v)}
    y = {s: float(v) for s, v in y.items() if v is not None and math.isfinite(v)}
    if scale == "log" and not log_scale_applies(x.values(), y.values()):
        scale = "linear"
    f = np.log if scale == "log" else np.asarray
    common = sorted(set(x) & set(y))
    xs, ys = f(np.array(list(x.values()))), f(np.array(list(y.values())))
    d = f(np.array([x[s] for s in common])) - f(np.array([y[s] for s in common]))
    est = estimates(*(moments(np.zeros(len(v), dtype=int), v, 1) for v in (d, xs, ys)),
                    alpha=alpha)
    mean_x = float(np.mean(list(x.values()))) if x else float("nan")
    mean_y = float(np.mean(list(y.values()))) if y else float("nan")
    return est.at(0, mean_x, mean_y, scale)


def mean_interval(n, sd, *, alpha: float = 0.05) -> np.ndarray:
    """Half-widths of the two-sided (1 - alpha) Student-t intervals of means of `n` values with
    spread `sd`, column-wise; NaN where n < 2."""
    n, sd = np.asarray(n, dtype=float), np.asarray(sd, dtype=float)
    out = np.full(n.shape, np.nan)
    ok = n >= 2
    if ok.any():
        out[ok] = t_ppf(1 - alpha / 2, n[ok] - 1) * sd[ok] / np.sqrt(n[ok])
    return out


# -- families ----------------------------------------------------------------------------------

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


def bh(pvalues) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values (Benjamini & Hochberg 1995, through scipy's
    `false_discovery_control`): rejecting where they are at most alpha keeps the false
    discovery rate at alpha, and the chance of any false rejection at alpha when every null
    holds. NaN (not a test) stays NaN and is not counted in the family."""
    from scipy.stats import false_discovery_control

    p = np.asarray(pvalues, dtype=float).ravel()
    out = np.full(len(p), np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out


# -- power -------------------------------------------------------------------------------------

def _power(ncp: np.ndarray, dof: np.ndarray, alpha: float) -> np.ndarray:
    """Power of a two-sided level-alpha t test with `dof` degrees of freedom at noncentrality
    `ncp` (the far tail only: the near one is negligible where power matters)."""
    from scipy import stats

    return stats.nct.sf(stats.t.ppf(1 - alpha / 2, dof), dof, ncp)


@functools.lru_cache(maxsize=4096)
def _ncp_for(dof: float, alpha: float, power: float) -> float:
    """The noncentrality at which a two-sided level-alpha t test with `dof` degrees of freedom
    has `power`."""
    from scipy.optimize import brentq

    f = lambda ncp: float(_power(np.array(ncp), np.array(dof), alpha)) - power  # noqa: E731
    hi = 4.0
    while f(hi) < 0:
        hi *= 2
        if hi > 1e6:
            return float("inf")
    return brentq(f, 0.0, hi, xtol=1e-9)


def detectable(n, sd, *, alpha: float, power: float = POWER) -> np.ndarray:
    """The smallest true difference a paired t test of `n` pairs with spread `sd` of the
    per-pair differences detects at level alpha (two-sided) with `power`: the minimum
    detectable effect, column-wise (on the scale of `sd`). 0 where sd is 0 (no noise: any
    change shows); NaN where n < 2 (no test)."""
    n, sd = np.asarray(n, dtype=float), np.asarray(sd, dtype=float)
    out = np.full(np.broadcast(n, sd).shape, np.nan)
    n, sd = np.broadcast_arrays(n, sd)
    ok = (n >= 2) & np.isfinite(sd)
    ncp = {k: _ncp_for(k - 1.0, alpha, power) for k in np.unique(n[ok])}
    out[ok] = [ncp[k] * s / math.sqrt(k) for k, s in zip(n[ok], sd[ok])]
    return out


def detectable_se(se, dof, *, alpha: float, power: float = POWER) -> np.ndarray:
    """The smallest true difference a two-sided level-alpha t test whose estimate has standard
    error `se` with `dof` degrees of freedom detects with `power` (column-wise; inf where
    dof < 1)."""
    se, dof = np.broadcast_arrays(np.asarray(se, dtype=float), np.asarray(dof, dtype=float))
    ncp = {k: _ncp_for(k, alpha, power) if k >= 1 else math.inf for k in np.unique(np.round(dof, 3))}
    return np.array([ncp[k] * s for k, s in zip(np.round(dof, 3), se)], dtype=float).reshape(se.shape)


def seeds_needed(distance: float, *, sd: float = float("nan"), sd_x: float = float("nan"),
                 sd_y: float = float("nan"), alpha: float = 0.05, power: float = POWER) -> int | None:
    """The smallest number of seeds (pairs for a paired comparison with spread `sd` of the
    per-seed differences; seeds per side for Welch with spreads `sd_x`, `sd_y`) at which a
    two-sided level-alpha t test detects a true difference of `distance` with probability
    `power`, from the noncentral t distribution. None when no number up to MAX_SEEDS does, or
    the spread is unknown."""
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
            return math.sqrt(vx + vy), (vx + vy) ** 2 / (vx ** 2 / (n - 1) + vy ** 2 / (n - 1))
    else:
        return None

    def reaches(n: int) -> bool:  # the power at n seeds
        se, dof = se_dof(n)
        return float(_power(np.array(distance / se), np.array(dof), alpha)) >= power

    if not reaches(MAX_SEEDS):
        return None
    lo, hi = 1, MAX_SEEDS  # reaches(hi); not reaches(lo) (one seed has no interval)
    while hi - lo > 1:  # the power grows with n: bisect
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    return hi


# -- sequential looks (group-sequential design) ------------------------------------------------

def spending(t, alpha: float) -> np.ndarray:
    """The alpha spent by information fraction `t` (0 < t <= 1) by Lan and DeMets' (1983)
    O'Brien-Fleming-type function, for two-sided symmetric boundaries (each side spends half:
    `2 - 2 Phi(z_{1 - alpha/4} / sqrt(t))` per side, as gsDesign's `sfLDOF` with one-sided
    alpha / 2): almost nothing at the first looks, alpha at t = 1."""
    from scipy import stats

    t = np.minimum(np.asarray(t, dtype=float), 1.0)
    with np.errstate(divide="ignore"):
        return 4 * stats.norm.sf(stats.norm.ppf(1 - alpha / 4) / np.sqrt(t))


def z_boundaries(info, alpha: float, grid: int = 401) -> np.ndarray:
    """Two-sided boundaries |Z_k| >= c_k of a normal statistic with independent increments
    observed at information fractions `info` (increasing, at most 1), spending `spending`:
    the numerical integration of Armitage, McPherson and Rowe (1969) as Jennison and
    Turnbull (2000, ch. 19) give it. With five equal looks at alpha 0.05 this is 4.877, 3.357,
    2.680, 2.290, 2.031 (Lan & DeMets 1983; DeMets & Lan 1994)."""
    return np.array(_z_boundaries(tuple(float(t) for t in info), float(alpha), grid))


@functools.lru_cache(maxsize=1024)
def _z_boundaries(info: tuple[float, ...], alpha: float, grid: int) -> tuple[float, ...]:
    from scipy.optimize import brentq
    from scipy.special import ndtr

    def pdf(x: np.ndarray) -> np.ndarray:
        return np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    cum = spending(info, alpha)
    out, spent, xs, f, prev = [], 0.0, None, None, 0.0
    for k, t in enumerate(info):
        target, dt = cum[k] - spent, t - prev
        if k == 0:
            def exit_p(c: float) -> float:
                return float(2 * ndtr(-c))
        else:
            sd = math.sqrt(dt)

            def exit_p(c: float, xs=xs, f=f, sd=sd, t=t) -> float:
                b = c * math.sqrt(t)  # on the scale of the sum, B(t) = Z sqrt(t)
                q = ndtr((-b - xs) / sd) + ndtr((xs - b) / sd)
                return float(np.trapezoid(f * q, xs))
        c = 40.0 if target <= 1e-300 else brentq(lambda c: exit_p(c) - target, 0.0, 40.0, xtol=1e-10)
        out.append(c)
        spent += exit_p(c)
        b = c * math.sqrt(t)
        nx = np.linspace(-b, b, grid)  # the density of B(t) on the region that goes on
        if k == 0:
            nf = pdf(nx / math.sqrt(t)) / math.sqrt(t)
        else:
            sd = math.sqrt(dt)
            nf = np.trapezoid(f[None, :] * pdf((nx[:, None] - xs[None, :]) / sd) / sd, xs, axis=1)
        xs, f, prev = nx, nf, t
    return tuple(out)


def planned_looks(first: int, max_seeds: int) -> tuple[int, ...]:
    """The seeds at which `--until-decided` looks, fixed before any data: the seeds it starts
    with, then doubling (at least 3, the first number with two degrees of freedom), up to
    `max_seeds`: 2, 4, 8, 10 for 2 and 10; 1, 3, 6, 10 for 1 and 10."""
    looks = [first]
    while looks[-1] < max_seeds:
        looks.append(min(max_seeds, max(3, 2 * looks[-1])))
    return tuple(looks)


def next_look(n: int, max_seeds: int) -> int:
    """The look after one at `n` seeds (`planned_looks`); `n` itself at `max_seeds` or beyond."""
    return n if n >= max_seeds else min(max_seeds, max(3, 2 * n))


@functools.lru_cache(maxsize=32)
def _null_t(looks: tuple[int, ...]) -> np.ndarray:
    """|T| of the one-sample t statistic at each look, over NULL_PATHS simulated paths of
    standard normal per-seed differences (its law is free of the noise level). Seed c of every
    path comes from its own generator, so a schedule's paths are those of any other sharing
    its first seeds: boundaries already used never move when a look is added."""
    s, ss = np.zeros(NULL_PATHS), np.zeros(NULL_PATHS)
    out = np.empty((len(looks), NULL_PATHS))
    n = 0
    for j, m in enumerate(looks):
        for c in range(n, m):
            z = np.random.default_rng([20261207, c]).standard_normal(NULL_PATHS)
            s += z
            ss += z * z
        n = m
        mean = s / m
        out[j] = np.abs(mean) / np.sqrt(np.maximum(ss - m * mean * mean, 1e-300) / (m - 1) / m)
    return out


@functools.lru_cache(maxsize=4096)
def sequential_levels(looks: tuple[int, ...], max_seeds: int, alpha: float) -> tuple[float, ...]:
    """Two-sided nominal p-value levels of the paired t test at each look of `looks` (seeds,
    increasing, each at least 2) so that the probability of any rejection with no true effect
    is `spending(n / max_seeds, alpha)` by each look, and alpha by the look at `max_seeds`
    (Lan & DeMets 1983, O'Brien-Fleming type). One look at max_seeds or beyond is the fixed
    test at alpha. The first look's level is exact (the t distribution); later ones are set on
    NULL_PATHS simulated null paths of the t statistic (so the heavy tails of a t with one or
    two degrees of freedom are in them, which the normal boundaries of `z_boundaries` leave
    out); a level too small to simulate takes the spending of its look alone, which errs on
    the safe side (Bonferroni)."""
    cum = spending([min(1.0, n / max_seeds) for n in looks], alpha)
    levels, crossed = [], 0.0
    alive = None
    for j, m in enumerate(looks):
        step = cum[j] - (cum[j - 1] if j else 0.0)
        if j == 0:
            levels.append(float(cum[0]))
            if len(looks) > 1:
                c = t_ppf(1 - cum[0] / 2, m - 1)
                tt = _null_t(tuple(looks))
                alive = tt[0] < c
                crossed = (~alive).sum()
            continue
        tt = _null_t(tuple(looks))
        target = cum[j] * NULL_PATHS - crossed
        if step <= 0:
            levels.append(0.0)
            continue
        if target < 50:  # too few paths to place it: the look's own spending (conservative)
            c = t_ppf(1 - step / 2, m - 1)
        else:
            k = int(round(target))
            live = np.sort(tt[j][alive])[::-1]
            c = live[k - 1] if k <= len(live) else 0.0
        hit = alive & (tt[j] >= c)
        crossed += hit.sum()
        alive &= ~hit
        levels.append(float(2 * t_sf(c, m - 1)))
    return tuple(levels)


def sequential_seeds_needed(distance: float, sd: float, *, first: int, alpha: float,
                            power: float = POWER) -> int | None:
    """The `--max-seeds` N at which `--until-decided`, starting from `first` seeds, decides a
    paired comparison with power `power` if its true effect and spread were `distance` and
    `sd`. Its last look is tested at a level below alpha (the O'Brien-Fleming boundary of the
    planned looks, from `z_boundaries`), so N is at least the fixed test's. The power counted
    is that of the last look alone: a lower bound, since an earlier look may decide too."""
    need = seeds_needed(distance, sd=sd, alpha=alpha, power=power)
    if need is None or not math.isfinite(sd) or sd == 0:
        return need
    from scipy import stats

    for _ in range(8):  # the last look's level falls as looks are added: a few fixed points
        looks = [n for n in planned_looks(max(first, 1), need) if n >= 2]
        final = float(2 * stats.norm.sf(z_boundaries([n / need for n in looks], alpha, grid=101)[-1]))
        more = seeds_needed(distance, sd=sd, alpha=final, power=power)
        if more is None:
            return None
        if more <= need:  # N = need reaches the power at its own last look
            return need
        need = more
    return need

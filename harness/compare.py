"""`genbench compare BASE CUR`: is CUR a regression of BASE beyond the noise between seeds?
(After Go's benchstat and asv's `compare`: intervals, not single numbers; refuse to compare
runs of different environments.)

Rows are joined on `cell_key` (stable across commits: study, scale, arm, method and grid
values) and metric, after leaving out on each side the rows that later measurements of the same
point replaced (`harness.results.current_rows`). For each pair:

- two or more seeds both runs share: the paired t-test on the per-seed differences and its
  interval (the same statistics as claims, `harness.stats`): base and current of one seed share
  the data order, initial draws and sampling noise, so pairing removes the seed-to-seed noise;
- two or more seeds on both sides but not shared: Welch's t-test and its interval
  (`exact` when nothing varies: a deterministic metric, or the same shift at every seed);
- one seed, and the metric has a within-run standard deviation (KID's `std`): a z-test on it;
- otherwise the metric's declared tolerance (`harness.metrics.tolerance`): a relative change
  beyond it counts as a change.

KID's `std` is the spread of the estimate over its random subsets (of at most 1,000 images a
side): the noise of the estimator on these samples, not the noise between seeds, which can be as
large as the effect. With one seed the z-test can only make a verdict more cautious (a change
must exceed the tolerance either way); only seeds measure the seed-to-seed noise.

A fit that diverged or failed writes a status row instead of its metrics, so its seed would
simply drop out of the means. Each train cell both runs have is therefore also judged on its
`unfinished_seeds` (seeds whose fit diverged or whose last attempt failed): more in CUR than in
BASE is a regression, fewer an improvement.

The p-values of all tests are corrected together with Holm's step-down method (family-wise
error rate `alpha`). A difference that is significant and larger than the metric's tolerance
is a `regression` or an `improvement` in the metric's own good direction; one within the
tolerance that is significant, or whose interval lies within the tolerance, is `no change`, and
so is a run compared with itself (the same values); anything else is `inconclusive`. Facts
without a direction (a method's `terminal_snr`) are not judged.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness import stats
from harness.errors import GenbenchError
from harness.metrics import WALL_CLOCK_METRICS, higher_is_better, tolerance
from harness.results import STATUS_METRICS, read_current, read_plan

# library versions that change numbers; others (pandas, ray) do not
NUMERIC_LIBRARIES = ("torch", "torchvision", "numpy", "clean-fid", "torch_cuda")


@dataclass
class Verdict:
    study: str
    arm: str
    cell: str  # train-grid values
    setting: str  # sample-grid values ("" for per-fit metrics)
    metric: str
    base: float  # mean over seeds
    cur: float
    diff: float  # cur - base
    lo: float  # 95 % interval of the difference (NaN where none)
    hi: float
    n_base: int
    n_cur: int
    test: str  # paired (by seed) | welch | exact (no noise) | z (within-run std) | tolerance | count
    p: float  # raw p-value (NaN for tolerance)
    verdict: str  # regression | improvement | no change | inconclusive


@dataclass
class Comparison:
    base: str
    cur: str
    verdicts: list[Verdict] = field(default_factory=list)
    only_base: int = 0  # (cell, metric) pairs missing from CUR
    only_cur: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict == "regression"]


def _device_kind(device: str) -> str:
    return re.sub(r"x\d+$", "", device or "")  # "cpu:x86_64x2" -> "cpu:x86_64": threads vary


def _fingerprint(rows: pd.DataFrame) -> dict[str, set]:
    versions = rows.versions_json.dropna().map(json.loads)
    out = {"dataset": set(rows.dataset.dropna()),
           "device": set(rows.device.dropna().map(_device_kind))}
    for lib in NUMERIC_LIBRARIES:
        out[f"{lib} version"] = {v.get(lib) for v in versions}
    return out


def _protocols(rows: pd.DataFrame) -> dict[str, set]:
    """Per metric: how it was measured (protocol, feature extractor, reference, sample count);
    status rows are left out (a failure's protocol column holds its kind)."""
    cols = ["protocol", "feature_extractor", "ref_split", "n_samples"]
    out = {}
    for metric, g in rows[~rows.metric.isin(STATUS_METRICS)].groupby("metric"):
        for col in cols:
            vals = {v for v in g[col].tolist() if v is not None and not (isinstance(v, float) and math.isnan(v))}
            out[(metric, col)] = vals
    return out


def check_comparable(base: pd.DataFrame, cur: pd.DataFrame) -> list[str]:
    """The differences that make BASE and CUR not comparable, one line each."""
    problems = []
    fb, fc = _fingerprint(base), _fingerprint(cur)
    for key in fb:
        if fb[key] != fc[key]:
            problems.append(f"{key} differs: {sorted(map(str, fb[key]))} vs {sorted(map(str, fc[key]))}")
    pb, pc = _protocols(base), _protocols(cur)
    for key in sorted(set(pb) & set(pc)):
        if pb[key] and pc[key] and pb[key] != pc[key]:
            metric, col = key
            problems.append(f"{metric} {col} differs: {sorted(map(str, pb[key]))} vs "
                            f"{sorted(map(str, pc[key]))}")
    return problems


def compare(base_dir: Path, cur_dir: Path, *, alpha: float = 0.05, force: bool = False,
            timings: bool = True) -> Comparison:
    """Verdicts of every (cell, setting, metric) both runs measured; `timings=False` leaves the
    wall-clock metrics out (`WALL_CLOCK_METRICS`: they depend on the machine and its load, so a
    gate on a shared or different machine judges quality and deterministic costs only)."""
    quiet = []
    base, cur = (read_current(d, read_plan(d), warn=quiet.append)[0] for d in (base_dir, cur_dir))
    if base.empty or cur.empty:
        raise GenbenchError(f"nothing to compare: {base_dir if base.empty else cur_dir} has no rows")
    result = Comparison(str(base_dir), str(cur_dir), warnings=quiet)
    problems = check_comparable(base, cur)
    if problems and not force:
        raise GenbenchError(f"not comparable: {problems[0]} (--force compares anyway)")
    result.warnings += [f"not comparable (--force): {p}" for p in problems]
    keyless = [f"{d}: {int(r.cell_key.isna().sum())} rows without a cell_key (schema version 1) "
               "are not compared" for d, r in ((base_dir, base), (cur_dir, cur)) if r.cell_key.isna().any()]
    result.warnings += keyless
    base, cur = base.dropna(subset=["cell_key"]), cur.dropna(subset=["cell_key"])
    result.verdicts += _unfinished(base, cur)
    left_out = STATUS_METRICS if timings else (*STATUS_METRICS, *WALL_CLOCK_METRICS)
    base, cur = (r[~r.metric.isin(left_out)] for r in (base, cur))
    keys = ["cell_key", "metric"]
    gb = {k: g for k, g in base.groupby(keys)}
    gc = {k: g for k, g in cur.groupby(keys)}
    result.only_base, result.only_cur = len(set(gb) - set(gc)), len(set(gc) - set(gb))
    pending = []
    for key in sorted(set(gb) & set(gc)):
        b, c = gb[key], gc[key]
        direction = b.higher_is_better.dropna()  # rows before it was recorded: the registry
        higher = bool(direction.iloc[0]) if len(direction) else higher_is_better(key[1])
        vb, vc = b.value.to_numpy(dtype=float), c.value.to_numpy(dtype=float)
        vb, vc = vb[np.isfinite(vb)], vc[np.isfinite(vc)]
        if higher is None or not len(vb) or not len(vc):
            continue  # a fact without a good direction, or a metric that was skipped
        pending.append((b, c, vb, vc, higher))
    tested = [_test(b, c, vb, vc) for b, c, vb, vc, _ in pending]
    rejected = [p <= alpha for p in stats.holm([t[0] for t in tested])]
    for (b, c, vb, vc, higher), (p, lo, hi, test), reject in zip(pending, tested, rejected):
        metric = b.metric.iloc[0]
        diff = (lo + hi) / 2 if test == "paired" else vc.mean() - vb.mean()  # paired: common seeds
        tol = tolerance(metric) * max(abs(vb.mean()), 1e-12)
        # a change must be beyond the noise (the test) and beyond the metric's tolerance
        changed = abs(diff) > tol and (test in ("tolerance", "exact") or reject)
        if changed:
            verdict = "improvement" if (diff > 0) == higher else "regression"
        elif (test in ("tolerance", "exact") or sorted(vb) == sorted(vc)
              or (abs(diff) <= tol and (reject or max(abs(lo), abs(hi)) <= tol))):
            verdict = "no change"
        else:
            verdict = "inconclusive"
        result.verdicts.append(Verdict(
            study=str(b.study.iloc[0]), arm=str(b.arm.iloc[0]), cell=_axes(b.cell_json.iloc[0]),
            setting=_axes(b.setting_json.iloc[0]), metric=metric, base=float(vb.mean()),
            cur=float(vc.mean()), diff=float(diff), lo=float(lo), hi=float(hi), n_base=len(vb),
            n_cur=len(vc), test=test, p=float(p), verdict=verdict))
    fewer = [v for v in result.verdicts if v.n_cur < v.n_base and v.test != "count"]
    if fewer:
        result.warnings.append(f"{len(fewer)} comparisons have fewer seeds in current than in "
                               f"base (first: {fewer[0].arm} {fewer[0].cell or '(base)'} "
                               f"{fewer[0].metric}, {fewer[0].n_base} against {fewer[0].n_cur})")
    result.warnings = list(dict.fromkeys(result.warnings))  # (a run compared with itself: once)
    order = {"regression": 0, "inconclusive": 1, "improvement": 2, "no change": 3}
    result.verdicts.sort(key=lambda v: (order[v.verdict], v.arm, v.cell, v.setting, v.metric))
    return result


def _unfinished(base: pd.DataFrame, cur: pd.DataFrame) -> list[Verdict]:
    """`unfinished_seeds` verdicts of the train cells both runs have and either left
    unfinished: the seeds whose fit diverged or whose last attempt failed."""
    def seeds(rows: pd.DataFrame) -> dict[str, tuple[set, set, pd.Series]]:
        out = {}
        for key, g in rows.groupby("cell_key"):
            fits = g[g.setting_json.isna()]  # the fit's own rows name the cell's seeds
            out[key] = (set(fits.seed), set(fits[fits.metric.isin(STATUS_METRICS)].seed), g.iloc[0])
        return out

    sb, sc = seeds(base), seeds(cur)
    out = []
    for key in sorted(set(sb) & set(sc)):
        (all_b, bad_b, row), (all_c, bad_c, _) = sb[key], sc[key]
        if not bad_b and not bad_c:
            continue
        nb, nc = len(bad_b), len(bad_c)
        verdict = "regression" if nc > nb else "improvement" if nc < nb else "no change"
        out.append(Verdict(study=str(row.study), arm=str(row.arm), cell=_axes(row.cell_json),
                           setting="", metric="unfinished_seeds", base=nb, cur=nc,
                           diff=nc - nb, lo=float("nan"), hi=float("nan"), n_base=len(all_b),
                           n_cur=len(all_c), test="count", p=float("nan"), verdict=verdict))
    return out


def _test(b: pd.DataFrame, c: pd.DataFrame, vb: np.ndarray, vc: np.ndarray):
    """(p, interval low, interval high, test name) for the difference CUR - BASE, by the same
    statistics as claims (`harness.stats.estimate`): paired by seed where both runs have two
    or more seeds in common, Welch otherwise, `exact` when nothing varies."""
    from scipy import stats as sps

    est = stats.estimate(_by_seed(c), _by_seed(b))
    if est.test == "exact":  # no noise: exact, and not part of the corrected family
        return float("nan"), est.diff, est.diff, "exact"
    if est.test in ("paired t", "welch"):
        return est.p_two_sided(), est.lo, est.hi, "paired" if est.test == "paired t" else "welch"
    diff = vc.mean() - vb.mean()
    sd_b, sd_c = b["std"].dropna().to_numpy(dtype=float), c["std"].dropna().to_numpy(dtype=float)
    if len(vb) == len(vc) == 1 and len(sd_b) and len(sd_c):
        se = math.sqrt(sd_b[0] ** 2 + sd_c[0] ** 2)
        if se > 0:
            return 2 * sps.norm.sf(abs(diff) / se), diff - 1.96 * se, diff + 1.96 * se, "z"
    return float("nan"), float("nan"), float("nan"), "tolerance"


def _by_seed(rows: pd.DataFrame) -> dict[int, float]:
    """A point's finite values keyed by seed."""
    v = rows.value.to_numpy(dtype=float)
    return {int(s): float(x) for s, x in zip(rows.seed, v) if np.isfinite(x)}


def _axes(text) -> str:
    if not isinstance(text, str) or not text:
        return ""
    return ", ".join(f"{k}={v}" for k, v in json.loads(text).items()) or "(base)"


def render_markdown(result: Comparison) -> str:
    counts = {v: sum(x.verdict == v for x in result.verdicts)
              for v in ("regression", "improvement", "inconclusive", "no change")}
    head = (f"**genbench compare** `{result.base}` → `{result.cur}`: "
            + ", ".join(f"{n} {k}" for k, n in counts.items())
            + (f"; {result.only_base} only in base, {result.only_cur} only in current"
               if result.only_base or result.only_cur else ""))
    lines = [head, "", "| verdict | arm | cell | setting | metric | base | current | diff "
             "(95 % CI) | seeds | test |", "|---|---|---|---|---|---|---|---|---|---|"]
    for v in result.verdicts:
        ci = f" [{v.lo:+.3g}, {v.hi:+.3g}]" if np.isfinite(v.lo) else ""
        lines.append(f"| {v.verdict} | {v.arm} | {v.cell or '-'} | {v.setting or '-'} | {v.metric} "
                     f"| {v.base:.4g} | {v.cur:.4g} | {v.diff:+.3g}{ci} | {v.n_base}/{v.n_cur} "
                     f"| {v.test}{'' if not np.isfinite(v.p) else f' p={v.p:.2g}'} |")
    return "\n".join(lines)


def render_json(result: Comparison) -> str:
    """The comparison as JSON: valid JSON, with null where a number is missing (never NaN)."""
    from harness.claims import json_safe

    d = asdict(result)
    d["regressions"] = len(result.regressions)
    return json.dumps(json_safe(d), indent=1, default=float, allow_nan=False)

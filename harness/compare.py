"""`genbench compare BASE CUR`: is CUR a regression of BASE beyond the noise between seeds?
(After Go's benchstat and asv's `compare`: intervals, not single numbers; refuse to compare
runs of different environments.)

Rows are joined on `cell_key` (stable across commits: study, scale, arm, method and grid
values) and metric, after leaving out on each side the rows that later measurements of the same
point replaced (`genbench.harness.results.current_rows`). For each pair:

- two or more seeds both runs share: the paired t-test on the per-seed differences and its
  interval (the same statistics as claims, `genbench.harness.stats`): base and current of one seed share
  the data order, initial draws and sampling noise, so pairing removes the seed-to-seed noise;
- two or more seeds on both sides but not shared: Welch's t-test and its interval
  (`exact` when nothing varies: a deterministic metric, or the same shift at every seed);
- one seed, and the metric has a within-run standard deviation (KID's `std`): a z-test on it;
- otherwise the metric's declared tolerance (`genbench.harness.metrics.tolerance`): a relative change
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

import functools
import json
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genbench.harness import stats
from genbench.harness.errors import GenbenchError
from genbench.harness.metrics import WALL_CLOCK_METRICS, higher_is_better, tolerance
from genbench.harness.results import STATUS_METRICS, read_current, read_plan

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
    test: str  # paired (by seed) | welch | exact (no noise) | z (within-run std) | tolerance |
    #            count | none (a point not judged: missing, no values, new)
    p: float  # raw p-value (NaN for tolerance)
    verdict: str  # regression | improvement | no change | inconclusive | missing | new
    note: str = ""  # why a point is not judged; how the two configs differ


@dataclass
class Unjudged:
    """Points of BASE (and CUR) compare does not judge, counted by reason (never silently)."""

    reason: str
    count: int
    example: str  # the first such point


@dataclass
class Comparison:
    base: str
    cur: str
    verdicts: list[Verdict] = field(default_factory=list)
    only_base: int = 0  # (cell, metric) pairs missing from CUR
    only_cur: int = 0
    warnings: list[str] = field(default_factory=list)
    unjudged: list[Unjudged] = field(default_factory=list)  # facts, metrics skipped on both sides
    missing_is_regression: bool = True  # a BASE point CUR lacks fails the gate (--allow-missing)
    timings: bool = False  # whether wall-clock metrics were judged

    @property
    def regressions(self) -> list[Verdict]:
        """What fails the gate: regressions, and BASE points CUR lacks (unless allowed)."""
        return [v for v in self.verdicts if v.verdict == "regression"
                or (v.verdict == "missing" and self.missing_is_regression)]

    @property
    def judged(self) -> int:
        return sum(v.test != "none" for v in self.verdicts)


def _device_kind(device: str) -> str:
    return re.sub(r"x\d+$", "", device or "")  # "cpu:x86_64x2" -> "cpu:x86_64": threads vary


def _fingerprint(rows: pd.DataFrame) -> dict[str, set]:
    versions = rows.versions_json.dropna().map(json.loads)
    out = {"dataset": set(rows.dataset.dropna()),
           "device": set(rows.device.dropna().map(_device_kind))}
    for lib in NUMERIC_LIBRARIES:
        out[f"{lib} version"] = {v.get(lib) for v in versions}
    return out


def _protocols(rows: pd.DataFrame, keys: set) -> dict[str, set]:
    """Per metric: how it was measured (protocol, feature extractor, reference, sample count)
    at the points `keys` (those both runs have: a cell one run lacks is missing, not another
    protocol); status rows are left out (a failure's protocol column holds its kind)."""
    cols = ["protocol", "feature_extractor", "ref_split", "n_samples"]
    out = {}
    rows = rows[rows.cell_key.isin(keys) | rows.cell_key.isna()]
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
    common = set(base.cell_key.dropna()) & set(cur.cell_key.dropna())
    pb, pc = _protocols(base, common), _protocols(cur, common)
    for key in sorted(set(pb) & set(pc)):
        if pb[key] and pc[key] and pb[key] != pc[key]:
            metric, col = key
            problems.append(f"{metric} {col} differs: {sorted(map(str, pb[key]))} vs "
                            f"{sorted(map(str, pc[key]))}")
    return problems


def compare(base_dir: Path, cur_dir: Path, *, alpha: float = 0.05, force: bool = False,
            timings: bool = False, allow_missing: bool = False) -> Comparison:
    """Verdicts of every (cell, setting, metric) of BASE: judged where CUR measured it too,
    else listed with its reason (missing in CUR, no values in CUR, new in CUR; facts without a
    direction and metrics skipped on both sides are counted). Runs of different studies, or of
    different environments, are refused unless `force`; a comparison that judged nothing is
    refused even then. Wall-clock metrics (`WALL_CLOCK_METRICS`) measure the machine and its
    load as much as the code: judged only with `timings`."""
    quiet = []
    base, cur = (read_current(d, read_plan(d), warn=quiet.append)[0] for d in (base_dir, cur_dir))
    if base.empty or cur.empty:
        raise GenbenchError(f"nothing to compare: {base_dir if base.empty else cur_dir} has no rows")
    result = Comparison(str(base_dir), str(cur_dir), warnings=quiet,
                        missing_is_regression=not allow_missing, timings=timings)
    sb, sc = (sorted(set(r.study.dropna())) for r in (base, cur))
    if sb != sc:
        if not force:
            raise GenbenchError(f"different studies: BASE is {', '.join(sb)} and CUR is "
                                f"{', '.join(sc)} (--force compares anyway)")
        result.warnings.append(f"different studies (--force): {', '.join(sb)} vs {', '.join(sc)}")
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
    pending, unjudged = [], {}

    def skip(reason: str, rows: pd.DataFrame) -> None:
        n, example = unjudged.get(reason, (0, ""))
        unjudged[reason] = (n + 1, example or _where(rows))

    for key in sorted(set(gb) | set(gc)):
        b, c = gb.get(key), gc.get(key)
        some = b if b is not None else c
        direction = some.higher_is_better.dropna()  # rows before it was recorded: the registry
        higher = bool(direction.iloc[0]) if len(direction) else higher_is_better(key[1])
        if higher is None:
            skip("facts without a good direction (not judged)", some)
            continue
        vb = b.value.to_numpy(dtype=float) if b is not None else np.array([])
        vc = c.value.to_numpy(dtype=float) if c is not None else np.array([])
        vb, vc = vb[np.isfinite(vb)], vc[np.isfinite(vc)]
        if b is None:
            result.verdicts.append(_point(c, "new", "new in current: not in base", vb, vc))
        elif not len(vb):
            if len(vc):
                result.verdicts.append(_point(b, "new", "measured in current only (no values "
                                              "in base: " + _why_none(b) + ")", vb, vc))
            else:
                skip("metrics with no values on either side (skipped: " + _why_none(b) + ")", b)
        elif c is None:
            result.verdicts.append(_point(b, "missing", "missing in current", vb, vc))
        elif not len(vc):
            result.verdicts.append(_point(b, "regression", "no values in current: "
                                          + _why_none(c), vb, vc))
        else:
            pending.append((b, c, vb, vc, higher))
    result.unjudged = [Unjudged(r, n, e) for r, (n, e) in unjudged.items()]
    tested = [_test(b, c, vb, vc) for b, c, vb, vc, _ in pending]
    rejected = [p <= alpha for p in stats.holm([t[1] for t in tested])]
    for (b, c, vb, vc, higher), (diff, p, lo, hi, test), reject in zip(pending, tested, rejected):
        metric = b.metric.iloc[0]
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
            n_cur=len(vc), test=test, p=float(p), verdict=verdict, note=_config_diff(b, c)))
    if not result.judged:
        raise GenbenchError(f"compared nothing: no metric of {base_dir} has values in {cur_dir} "
                            f"at the same points ({result.only_base} points only in base, "
                            f"{result.only_cur} only in current); a gate that judged nothing "
                            "does not pass")
    fewer = [v for v in result.verdicts if v.n_cur < v.n_base and v.test not in ("count", "none")]
    if fewer:
        result.warnings.append(f"{len(fewer)} comparisons have fewer seeds in current than in "
                               f"base (first: {fewer[0].arm} {fewer[0].cell or '(base)'} "
                               f"{fewer[0].metric}, {fewer[0].n_base} against {fewer[0].n_cur})")
    result.warnings = list(dict.fromkeys(result.warnings))  # (a run compared with itself: once)
    order = {"regression": 0, "missing": 1, "inconclusive": 2, "improvement": 3, "new": 4,
             "no change": 5}
    result.verdicts.sort(key=lambda v: (order[v.verdict], v.arm, v.cell, v.setting, v.metric))
    return result


def _where(rows: pd.DataFrame) -> str:
    r = rows.iloc[0]
    return f"{r.arm} {_axes(r.cell_json) or '(base)'} {_axes(r.setting_json) or '-'} {r.metric}"


def _why_none(rows: pd.DataFrame) -> str:
    """Why a point has no finite value: its rows' note (a skipped metric), else NaN."""
    notes = [n for n in rows.note.dropna().tolist() if n]
    return notes[0] if notes else "NaN"


def _point(rows: pd.DataFrame, verdict: str, note: str, vb: np.ndarray, vc: np.ndarray) -> Verdict:
    """A point that is not judged by a test: missing, new, or without values on one side."""
    nan = float("nan")
    return Verdict(study=str(rows.study.iloc[0]), arm=str(rows.arm.iloc[0]),
                   cell=_axes(rows.cell_json.iloc[0]), setting=_axes(rows.setting_json.iloc[0]),
                   metric=str(rows.metric.iloc[0]),
                   base=float(vb.mean()) if len(vb) else nan, cur=float(vc.mean()) if len(vc) else nan,
                   diff=nan, lo=nan, hi=nan, n_base=len(vb), n_cur=len(vc), test="none", p=nan,
                   verdict=verdict, note=note)


def _config_diff(b: pd.DataFrame, c: pd.DataFrame) -> str:
    """How the two sides' configs differ (a deliberate change reads as one), or ""."""
    first = [r.config_json.dropna() for r in (b, c)]
    return _configs_differ(*(t.iloc[0] if len(t) else "" for t in first))


@functools.lru_cache(maxsize=4096)  # many points share one config: parsed once per pair
def _configs_differ(text_b: str, text_c: str) -> str:
    def cfg(text: str) -> dict:
        try:
            d = json.loads(text) if text else {}
        except ValueError:
            return {}
        flat = dict(d.get("config", {}))
        flat.update({k: v for k, v in d.items() if k not in ("config", "cell")})
        return flat

    cb, cc = cfg(text_b), cfg(text_c)
    keys = sorted(k for k in set(cb) | set(cc) if cb.get(k, "-") != cc.get(k, "-"))
    if not keys:
        return ""
    shown = ", ".join(f"{k} {json.dumps(cb.get(k, '-'))} -> {json.dumps(cc.get(k, '-'))}"
                      for k in keys[:4])
    return f"config differs: {shown}" + (f" (+{len(keys) - 4} more)" if len(keys) > 4 else "")


def _unfinished(base: pd.DataFrame, cur: pd.DataFrame) -> list[Verdict]:
    """`unfinished_seeds` verdicts of the train cells both runs have and either left
    unfinished: the seeds whose fit diverged or whose last attempt failed."""
    fits = [r[r.setting_json.isna()] for r in (base, cur)]  # a fit's own rows name its seeds
    bad = [f[f.metric.isin(STATUS_METRICS)] for f in fits]
    cells = (set(bad[0].cell_key) | set(bad[1].cell_key)) & set(base.cell_key) & set(cur.cell_key)

    def seeds(rows: pd.DataFrame) -> dict[str, tuple[set, set, pd.Series]]:
        rows = rows[rows.cell_key.isin(cells)]  # only the cells with an unfinished seed
        out = {}
        for key, g in rows.groupby("cell_key"):
            fits = g[g.setting_json.isna()]
            out[key] = (set(fits.seed), set(fits[fits.metric.isin(STATUS_METRICS)].seed), g.iloc[0])
        return out

    sb, sc = seeds(base), seeds(cur)
    out = []
    for key in sorted(set(sb) & set(sc)):
        (all_b, bad_b, row), (all_c, bad_c, _) = sb[key], sc[key]
        nb, nc = len(bad_b), len(bad_c)
        verdict = "regression" if nc > nb else "improvement" if nc < nb else "no change"
        out.append(Verdict(study=str(row.study), arm=str(row.arm), cell=_axes(row.cell_json),
                           setting="", metric="unfinished_seeds", base=nb, cur=nc,
                           diff=nc - nb, lo=float("nan"), hi=float("nan"), n_base=len(all_b),
                           n_cur=len(all_c), test="count", p=float("nan"), verdict=verdict))
    return out


def _test(b: pd.DataFrame, c: pd.DataFrame, vb: np.ndarray, vc: np.ndarray):
    """(difference CUR - BASE, p, interval low, interval high, test name), by the statistics of
    claims (`genbench.harness.stats.estimate`): paired by seed where both runs have two or more seeds in
    common (the difference on those seeds), Welch otherwise, `exact` when nothing varies."""
    from scipy import stats as sps

    est = stats.estimate(_by_seed(c), _by_seed(b))
    if est.test == "exact":  # no noise: exact, and not part of the corrected family
        return est.diff, float("nan"), est.diff, est.diff, "exact"
    if est.test in ("paired t", "welch"):
        return (est.diff, est.p_two_sided(), est.lo, est.hi,
                "paired" if est.test == "paired t" else "welch")
    diff = vc.mean() - vb.mean()
    sd_b, sd_c = b["std"].dropna().to_numpy(dtype=float), c["std"].dropna().to_numpy(dtype=float)
    if len(vb) == len(vc) == 1 and len(sd_b) and len(sd_c):
        se = math.sqrt(sd_b[0] ** 2 + sd_c[0] ** 2)
        if se > 0:
            return diff, 2 * sps.norm.sf(abs(diff) / se), diff - 1.96 * se, diff + 1.96 * se, "z"
    return diff, float("nan"), float("nan"), float("nan"), "tolerance"


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
              for v in ("regression", "missing", "improvement", "inconclusive", "new", "no change")}
    head = (f"**genbench compare** `{result.base}` → `{result.cur}`: "
            + ", ".join(f"{n} {k}" for k, n in counts.items() if n or k in ("regression", "no change")))
    lines = [head, ""]
    if counts["missing"]:
        lines.append(f"{counts['missing']} points of base are missing in current: "
                     + ("they fail the gate (--allow-missing reports them only)."
                        if result.missing_is_regression else "reported only (--allow-missing)."))
    for u in result.unjudged:
        lines.append(f"Not judged: {u.count} {u.reason}; e.g. {u.example}.")
    if not result.timings:
        lines.append("Wall-clock metrics (train_s, train_images_per_s, sample_s_per_image) are "
                     "left out: --timings judges them, on a dedicated machine.")
    lines += ["", "| verdict | arm | cell | setting | metric | base | current | diff (95 % CI) "
              "| seeds | test | note |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in result.verdicts:
        ci = f" [{v.lo:+.3g}, {v.hi:+.3g}]" if np.isfinite(v.lo) else ""
        diff = f"{v.diff:+.3g}{ci}" if np.isfinite(v.diff) else "-"
        lines.append(f"| {v.verdict} | {v.arm} | {v.cell or '-'} | {v.setting or '-'} | {v.metric} "
                     f"| {_num(v.base)} | {_num(v.cur)} | {diff} | {v.n_base}/{v.n_cur} "
                     f"| {v.test}{'' if not np.isfinite(v.p) else f' p={v.p:.2g}'} | {v.note or '-'} |")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.4g}" if np.isfinite(x) else "-"


def render_json(result: Comparison) -> str:
    """The comparison as JSON: valid JSON, with null where a number is missing (never NaN)."""
    from genbench.harness.claims import json_safe

    d = asdict(result)
    d["regressions"] = len(result.regressions)
    return json.dumps(json_safe(d), indent=1, default=float, allow_nan=False)

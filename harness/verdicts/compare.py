"""`genbench compare BASE CUR`: is CUR a regression of BASE beyond the noise between seeds, and
what could the comparison have caught? (After Go's benchstat and asv's `compare`: intervals and
ratios, not single numbers; refuse to compare runs of different environments.)

Rows are joined on `cell_key` (stable across commits: study, scale, arm, method and grid
values) and metric, after leaving out on each side the rows that later measurements of the same
point replaced (`genbench.harness.store.results.current_rows`). Each pair is compared on its metric's
scale (`genbench.harness.metrics.scale`): FID, KID, times and memory as per-seed log ratios
(shown as % change), the others by their difference; with the statistics claims use
(`genbench.harness.verdicts.stats`):

- two or more seeds both runs share: the paired t-test on the per-seed differences and its
  interval: base and current of one seed share the data order, initial draws and sampling
  noise, so pairing removes the seed-to-seed noise;
- two or more seeds on both sides but not shared: Welch's t-test and its interval
  (`exact` when nothing varies: a deterministic metric, or the same change at every seed);
- one seed, and the metric has a within-run standard deviation (KID's `std`): a z-test on it;
- one seed of an exact count (a metric whose tolerance is 0: `nfe`, `n_params`): its change
  alone (`tolerance`); of any other metric, no test (`none`).

KID's `std` is the spread of the estimate over its random subsets (of at most 1,000 images a
side): the noise of the estimator on these samples, not the noise between seeds, which can be as
large as the effect. Only seeds measure the seed-to-seed noise.

The family: the p-values of all tests are corrected together with Benjamini and Hochberg's
method at `alpha`, which keeps the expected share of false alarms among the points flagged at
alpha, and so the chance of any false alarm at alpha when nothing changed (the A/A case a gate
must keep quiet in); when something did change it flags more of it than Holm would (a change
moves several points at once). docs/statistics.md says why this family.

A change that is significant and beyond its metric's tolerance (relative: as a ratio on the log
scale; with a floor in the metric's own unit, `tolerance_floor`: memory increases of a phase
below 128 MiB are the allocator's noise) is a `regression` or an `improvement` in the metric's
own good direction; one beyond the tolerance that the test cannot decide is `inconclusive`
(exit 3); anything within the tolerance, and a run compared with itself, is `no change`. Facts
without a direction (a method's `terminal_snr`) are not judged. Every judged point carries its
minimum detectable effect (`mde`): the smallest change that would have been flagged there with
power 0.8 (`stats.detectable_se` at the family's first Benjamini-Hochberg level, never below
the tolerance), and `Comparison.power_line` says per metric what the comparison could catch.

A fit that diverged or failed writes a status row instead of its metrics, so its seed would
simply drop out of the means. Each train cell both runs have is therefore also judged on its
`unfinished_seeds` (seeds whose fit diverged or whose last attempt failed): more in CUR than in
BASE is a regression, fewer an improvement.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genbench.harness.verdicts import stats
from genbench.harness.config import grid_text
from genbench.harness.errors import GenbenchError
from genbench.harness.metrics import (MEMORY_BASELINES, MEMORY_PEAKS, WALL_CLOCK_METRICS,
                                      higher_is_better, tolerance, tolerance_floor)
from genbench.harness.metrics import scale as metric_scale
from genbench.harness.metrics import STATUS_METRICS
from genbench.harness.store.results import REAL_ARM, read_current

# a point's grid values as text; the points of one cell share them: parsed once
_axes = functools.lru_cache(maxsize=65536)(grid_text)

# what compare reads of each run (its checks, its joins and what a verdict shows)
COLUMNS = ["study", "dataset", "device", "versions_json", "protocol", "feature_extractor",
           "ref_split", "n_samples", "cell_key", "metric", "seed", "value", "std", "arm",
           "cell_json", "setting_json", "higher_is_better", "note", "config_json"]
JUDGED = ["study", "arm", "cell_key", "cell_json", "setting_json", "metric", "seed", "value",
          "std", "higher_is_better", "note"]
MAX_UNCHANGED = 200  # the markdown lists every change and at most this many unchanged points
LOG_BLIND = math.log(1000.0)  # a point that cannot detect a 1,000-fold change detects "none"

# library versions that change numbers; others (pandas, ray) do not
NUMERIC_LIBRARIES = ("torch", "torchvision", "numpy", "clean-fid", "torch_cuda")


@dataclass
class Verdict:
    study: str
    arm: str
    cell: str  # train-grid values
    setting: str  # sample-grid values ("" for per-fit metrics)
    metric: str
    base: float  # mean over seeds, in the metric's units
    cur: float
    diff: float  # cur - base, in units
    lo: float  # the (1 - alpha) interval of `effect` (NaN where none)
    hi: float
    n_base: int
    n_cur: int
    test: str  # paired t (by seed) | welch | exact (no noise) | z (within-run std) | tolerance
    #            (an exact count, one seed) | count | none (no test: one seed, or not judged)
    p: float  # raw p-value (NaN where there is no test)
    verdict: str  # regression | improvement | no change | inconclusive | missing | new
    note: str = ""  # why a point is not judged; how the two configs differ
    effect: float = float("nan")  # cur - base on the test's scale: a mean log ratio, or units
    scale: str = "linear"  # "log": compared as per-seed log ratios (shown as % change)
    mde: float = float("nan")  # the smallest change (on the test's scale) it detects at power
    #                            0.8: the minimum detectable effect; inf where it detects none

    def change(self, value: float | None = None) -> float:
        """`effect` (or `value` on its scale) as a relative change of base."""
        value = self.effect if value is None else value
        if self.scale == "log":
            return math.expm1(min(value, 700.0)) if math.isfinite(value) else value
        return value / abs(self.base) if self.base else float("nan")

    def shown(self, value: float | None = None, sign: bool = True) -> str:
        """`effect` (or `value`) as a person reads it: a % change or a factor on the log scale
        (`stats.change_text`), else in units."""
        value = self.effect if value is None else value
        if not math.isfinite(value):
            return "-" if value != value else "none"
        if self.scale == "log":
            return stats.change_text(value, sign)
        return f"{value:+.3g}" if sign else f"{value:.3g}"

    def detectable_text(self) -> str:
        """The minimum detectable change as a person reads it: `any` (no noise, no tolerance),
        `none` (no test, or beyond a factor of 1,000), else a % or a factor, or units."""
        if self.mde != self.mde:
            return "-"
        if self.mde == 0:
            return "any"
        if self.mde > (LOG_BLIND if self.scale == "log" else math.inf):
            return "none"
        return self.shown(self.mde, sign=False) if self.scale == "log" else f"±{self.mde:.3g}"


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
    inconclusive_fails: bool = True  # a large change it cannot decide exits 3 (--allow-inconclusive)
    timings: bool = False  # whether wall-clock metrics were judged
    alpha: float = 0.05
    judged: int = 0  # points given a verdict by a test or a tolerance
    memory_left_out: bool = False  # the runs' processes differ in history: peaks not judged
    mde_level: float = float("nan")  # the level each point's detectable effect is computed at

    @property
    def regressions(self) -> list[Verdict]:
        """What fails the gate: regressions, and BASE points CUR lacks (unless allowed)."""
        return [v for v in self.verdicts if v.verdict == "regression"
                or (v.verdict == "missing" and self.missing_is_regression)]

    @property
    def inconclusive(self) -> list[Verdict]:
        """Changes beyond their metric's tolerance that the seeds could not decide."""
        return [v for v in self.verdicts if v.verdict == "inconclusive"]

    @property
    def exit_status(self) -> int:
        """`genbench compare`: 1 a regression (or a missing point), 3 an undecided large change
        (unless allowed), else 0."""
        if self.regressions:
            return 1
        return 3 if self.inconclusive and self.inconclusive_fails else 0

    def to_markdown(self) -> str:
        """`genbench compare`'s page: the verdicts as Markdown tables (`render_markdown`)."""
        return render_markdown(self)

    def to_json(self) -> str:
        """`genbench compare --json` (`render_json`)."""
        return render_json(self)

    def to_frame(self) -> pd.DataFrame:
        """One row per point: its verdict and numbers (`Verdict`'s fields)."""
        return pd.DataFrame([vars(v) for v in self.verdicts])

    def power_line(self) -> str:
        """One line: what this comparison could and could not have caught (power 0.8), per
        metric the smallest detectable change over its points and the points that detect none."""
        by_metric: dict[str, list[Verdict]] = {}
        for v in self.verdicts:
            if v.mde == v.mde:  # (judged by compare's statistics)
                by_metric.setdefault(v.metric, []).append(v)
        if not by_metric:
            return ""
        seeds = sorted({min(v.n_base, v.n_cur) for vs in by_metric.values() for v in vs})
        parts, blind_only = [], []
        for metric, vs in sorted(by_metric.items()):
            seen = [v for v in vs if v.detectable_text() != "none"]
            if not seen:
                blind_only.append(metric)
                continue
            best, worst = min(seen, key=lambda v: v.mde), max(seen, key=lambda v: v.mde)
            text = f"{metric} {best.detectable_text()}"
            if worst.detectable_text() != best.detectable_text():
                text += f" to {worst.detectable_text()}"
            if len(seen) < len(vs):
                text += f" (none at {len(vs) - len(seen)} of {len(vs)} points)"
            parts.append(text)
        seeds_text = "-".join(map(str, (seeds[0], seeds[-1]) if len(seeds) > 1 else seeds))
        caught = ("could have caught, with power 0.8 (each change alone): " + ", ".join(parts)
                  if parts else "could have caught no change")
        missed = (f"; nothing at all in {', '.join(blind_only)} (too few seeds for its noise)"
                  if blind_only else "")
        return f"With {seeds_text} seed{'s' * (seeds != [1])} a side, this comparison {caught}{missed}."


def _device_kind(device: str) -> str:
    return re.sub(r"x\d+$", "", device or "")  # "cpu:x86_64x2" -> "cpu:x86_64": threads vary


def _fingerprint(rows: pd.DataFrame) -> dict[str, set]:
    versions = [json.loads(v) for v in rows.versions_json.dropna().unique()]
    out = {"dataset": set(rows.dataset.dropna().unique()),
           "device": {_device_kind(d) for d in rows.device.dropna().unique()}}
    for lib in NUMERIC_LIBRARIES:
        out[f"{lib} version"] = {v.get(lib) for v in versions}
    return out


def _protocols(rows: pd.DataFrame, keys: set) -> dict[str, set]:
    """Per metric: how it was measured (protocol, feature extractor, reference, sample count)
    at the points `keys` (those both runs have: a cell one run lacks is missing, not another
    protocol); status rows are left out (a failure's protocol column holds its kind)."""
    cols = ["protocol", "feature_extractor", "ref_split", "n_samples"]
    out = {}
    others = set(rows.cell_key.dropna().unique()) - keys  # (rows of points both runs have
    rows = rows[[*cols, "metric", "cell_key"]]                # are most: filtered only if not)
    if others:
        rows = rows[~rows.cell_key.isin(others)]
    rows = rows[~rows.metric.isin(STATUS_METRICS)]
    for col in cols:
        for metric, g in rows[["metric", col]].dropna().drop_duplicates().groupby("metric"):
            out[(metric, col)] = set(g[col].tolist())
    for metric in rows.metric.unique():
        for col in cols:
            out.setdefault((metric, col), set())
    return out


def check_comparable(base: pd.DataFrame, cur: pd.DataFrame, left_out=()) -> list[str]:
    """The differences that make BASE and CUR not comparable, one line each; a metric
    `left_out` of the judgement (wall-clock ones without --timings) cannot make them so."""
    problems = []
    fb, fc = _fingerprint(base), _fingerprint(cur)
    for key in fb:
        if fb[key] != fc[key]:
            problems.append(f"{key} differs: {sorted(map(str, fb[key]))} vs {sorted(map(str, fc[key]))}")
    common = set(base.cell_key.dropna().unique()) & set(cur.cell_key.dropna().unique())
    pb, pc = _protocols(base, common), _protocols(cur, common)
    for key in sorted(set(pb) & set(pc)):
        if key[0] in left_out:
            continue
        if pb[key] and pc[key] and pb[key] != pc[key]:
            metric, col = key
            problems.append(f"{metric} {col} differs: {sorted(map(str, pb[key]))} vs "
                            f"{sorted(map(str, pc[key]))}")
    return problems


def compare(base_dir: Path, cur_dir: Path, *, plans=(None, None), alpha: float = 0.05,
            force: bool = False, timings: bool = False, allow_missing: bool = False,
            allow_inconclusive: bool = False) -> Comparison:
    """Verdicts of every (cell, setting, metric) of BASE: judged where CUR measured it too,
    else listed with its reason (missing in CUR, no values in CUR, new in CUR; facts without a
    direction and metrics skipped on both sides are counted). Runs of different studies, or of
    different environments, are refused unless `force`; a comparison that judged nothing is
    refused even then. Wall-clock metrics (`WALL_CLOCK_METRICS`) measure the machine and its
    load as much as the code: judged only with `timings`. `plans`: each run's latest plan
    (`genbench.harness.plan.plan.read_plan`; None, a run without study.json), which decides
    its current rows."""
    quiet = []
    base, cur = (read_current(d, p, warn=quiet.append, columns=COLUMNS,
                              dictionary=("config_json", "versions_json", "protocol"))[0]
                 for d, p in zip((base_dir, cur_dir), plans))
    if base.empty or cur.empty:
        raise GenbenchError(f"nothing to compare: {base_dir if base.empty else cur_dir} has no rows")
    result = Comparison(str(base_dir), str(cur_dir), warnings=quiet,
                        missing_is_regression=not allow_missing, timings=timings, alpha=alpha,
                        inconclusive_fails=not allow_inconclusive)
    sb, sc = (sorted(set(r.study.dropna().unique())) for r in (base, cur))
    if sb != sc:
        if not force:
            raise GenbenchError(f"different studies: BASE is {', '.join(sb)} and CUR is "
                                f"{', '.join(sc)} (--force compares anyway)")
        result.warnings.append(f"different studies (--force): {', '.join(sb)} vs {', '.join(sc)}")
    # (the memory baselines are facts, never judged: how a process came to hold them, e.g.
    # a shared worker's earlier trials, cannot make two runs incomparable; but the peaks above
    # them are judged only where both runs measured them in processes of the same history)
    left_out = (*STATUS_METRICS, *MEMORY_BASELINES, *(() if timings else WALL_CLOCK_METRICS))
    histories = [set(r.protocol[r.metric.isin(list(MEMORY_BASELINES))].dropna()) for r in (base, cur)]
    if histories[0] and histories[1] and histories[0] != histories[1]:
        left_out = (*left_out, *MEMORY_PEAKS)
        result.memory_left_out = True
    problems = check_comparable(base, cur, left_out)
    if problems and not force:
        raise GenbenchError(f"not comparable: {problems[0]} (--force compares anyway)")
    result.warnings += [f"not comparable (--force): {p}" for p in problems]
    keyless = [f"{d}: {int(r.cell_key.isna().sum())} rows without a cell_key (schema version 1) "
               "are not compared" for d, r in ((base_dir, base), (cur_dir, cur)) if r.cell_key.isna().any()]
    result.warnings += keyless
    # a train cell's config, once (the largest column: it goes with what the checks alone read)
    configs = [_first_of_cell(r, "config_json") for r in (base, cur)]
    base, cur = (r[JUDGED] for r in (base, cur))
    base, cur = (r.dropna(subset=["cell_key"]) if r.cell_key.isna().any() else r
                 for r in (base, cur))
    floor = [r.arm == REAL_ARM for r in (base, cur)]  # the real-data floor: in no family
    points = {(k, m) for f, r in zip(floor, (base, cur))
              for k, m in zip(r.cell_key[f].tolist(), r.metric[f].tolist())}
    if points:
        result.unjudged.append(Unjudged("points of the real-data floor (held-out data measured "
                                        "as samples, not a method: never judged)", len(points),
                                        f"{REAL_ARM} {sorted(points)[0][1]}"))
        base, cur = (r[~f] for r, f in zip((base, cur), floor))
    unfinished = _unfinished(base, cur)
    result.verdicts += unfinished
    result.judged += len(unfinished)
    base, cur = (r[~r.metric.isin(left_out)] for r in (base, cur))
    _judge(base, cur, alpha, result, configs)
    del base, cur
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


@functools.lru_cache(maxsize=4096)  # many points share one config: parsed once per pair
def _configs_differ(text_b: str, text_c: str) -> str:
    if text_b == text_c:
        return ""

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
    status = [r[r.metric.isin(STATUS_METRICS)] for r in (base, cur)]  # (few: filtered first)
    bad = [f[f.setting_json.isna()] for f in status]  # a fit's own rows name its seeds
    bad_cells = set(bad[0].cell_key.unique()) | set(bad[1].cell_key.unique())
    if not bad_cells:
        return []
    cells = bad_cells.intersection(*(r.cell_key[r.cell_key.isin(bad_cells)].unique()
                                     for r in (base, cur)))

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


_POINT = ["cell_key", "metric"]
_ESTIMATE_FIELDS = [f.name for f in dataclasses.fields(stats.Estimates)]
_SHOWN = ["study", "arm", "cell_key", "cell_json", "setting_json", "metric"]  # what a verdict names
_NULL = (None, "")


def _first_of_cell(rows: pd.DataFrame, col: str) -> dict[str, str]:
    """cell_key -> the first value of `col` there (a config: the same for each of its rows)."""
    first = rows[["cell_key", col]].dropna().drop_duplicates("cell_key")
    return dict(zip(first.cell_key.tolist(), first[col].tolist()))


def _judge(base: pd.DataFrame, cur: pd.DataFrame, alpha: float, result: Comparison,
           configs: tuple[dict[str, str], dict[str, str]] = ({}, {})) -> None:
    """Every (cell_key, metric) point of BASE and CUR judged or listed, into `result`:
    column-wise over all points at once (no frame per point), so that a run of a million rows
    compares in seconds; `tests/test_compare.py` checks it against `stats.estimate` point by
    point."""
    from scipy import stats as sps

    keys = pd.concat([base[_POINT], cur[_POINT]], ignore_index=True)  # (the keys only: a
    point = keys.groupby(_POINT, sort=True).ngroup().to_numpy()  # run's other columns stay put)
    del keys
    if not len(point):  # nothing but status and wall-clock rows: nothing to judge (said above)
        return
    n_points = int(point.max()) + 1  # points in (cell_key, metric) order
    side = np.repeat(np.array([0, 1]), [len(base), len(cur)])
    sides = (base, cur)
    both = pd.DataFrame({"_p": point, "_side": side,
                         "seed": np.concatenate([r.seed.to_numpy() for r in sides]),
                         "value": np.concatenate([r.value.to_numpy(dtype=float) for r in sides])})
    value = both["value"].to_numpy()
    finite = np.isfinite(value)

    def per_point(k: int, cols: list[str], only: np.ndarray | None = None) -> pd.DataFrame:
        """The first non-null value of each column per point, over the rows of side `k` (of
        the points `only`, where given)."""
        rows = sides[k][cols].assign(_p=point[side == k])
        if only is not None:
            rows = rows[only[rows._p.to_numpy()]]
        if "note" in cols:
            rows["note"] = rows["note"].where(~rows["note"].isin(_NULL))
        return rows.groupby("_p")[cols].first().reindex(range(n_points))

    def count(mask: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(point[mask], weights=None if weights is None else weights[mask],
                           minlength=n_points)

    has = [count(side == k) > 0 for k in (0, 1)]  # rows at the point, finite or not
    shown = per_point(0, _SHOWN).combine_first(per_point(1, _SHOWN, only=~has[0]))
    own = [per_point(k, ["higher_is_better", "note", "std"]) for k in (0, 1)]
    n = [count((side == k) & finite) for k in (0, 1)]  # finite values (a verdict's seeds)
    mean = [count((side == k) & finite, value) / np.maximum(n[k], 1) for k in (0, 1)]
    higher = own[0]["higher_is_better"].combine_first(own[1]["higher_is_better"])
    metric = shown["metric"].to_numpy(dtype=object)
    higher = np.array([bool(h) if h is not None and h == h else higher_is_better(m)
                       for h, m in zip(higher.tolist(), metric)], dtype=object)
    result.only_base = int((has[0] & ~has[1]).sum())
    result.only_cur = int((has[1] & ~has[0]).sum())

    col = {c: shown[c].tolist() for c in _SHOWN}  # (lists: a row of a frame costs 50 us)

    def where(i: int) -> str:
        return (f"{col['arm'][i]} {_axes(col['cell_json'][i]) or '(base)'} "
                f"{_axes(col['setting_json'][i]) or '-'} {col['metric'][i]}")

    def why_none(k: int, i: int) -> str:  # why a side has no finite value: its note, else NaN
        note = own[k]["note"].iat[i]
        return note if isinstance(note, str) else "NaN"

    def listed(i: int, verdict: str, note: str) -> Verdict:  # a point no test judges
        nan = float("nan")
        return Verdict(study=str(col["study"][i]), arm=str(col["arm"][i]),
                       cell=_axes(col["cell_json"][i]), setting=_axes(col["setting_json"][i]),
                       metric=str(col["metric"][i]),
                       base=float(mean[0][i]) if n[0][i] else nan,
                       cur=float(mean[1][i]) if n[1][i] else nan, diff=nan, lo=nan, hi=nan,
                       n_base=int(n[0][i]), n_cur=int(n[1][i]), test="none", p=nan,
                       verdict=verdict, note=note)

    unjudged: dict[str, tuple[int, str]] = {}
    fact = np.array([h is None for h in higher], dtype=bool)
    pending = ~fact & has[0] & has[1] & (n[0] > 0) & (n[1] > 0)
    for i in np.flatnonzero(~pending).tolist():  # the few points no test judges, in order
        if fact[i]:
            reason = "facts without a good direction (not judged)"
        elif not has[0][i]:
            result.verdicts.append(listed(i, "new", "new in current: not in base"))
            continue
        elif not n[0][i]:
            if n[1][i]:
                result.verdicts.append(listed(i, "new", "measured in current only (no values "
                                              f"in base: {why_none(0, i)})"))
                continue
            reason = f"metrics with no values on either side (skipped: {why_none(0, i)})"
        elif not has[1][i]:
            result.verdicts.append(listed(i, "missing", "missing in current"))
            continue
        else:
            result.verdicts.append(listed(i, "regression", f"no values in current: "
                                          f"{why_none(1, i)}"))
            continue
        k, example = unjudged.get(reason, (0, ""))
        unjudged[reason] = (k + 1, example or where(i))
    result.unjudged += [Unjudged(r, k, e) for r, (k, e) in unjudged.items()]

    # the estimate of `stats.estimate` (CUR - BASE by seed), for every pending point at once:
    # each side's finite values, the last per seed, as `stats.estimate`'s dicts keep them, on
    # the metric's scale (log where it is declared so and every value of the point is positive)
    rows = both.loc[finite & pending[point], ["_p", "_side", "seed", "value"]]
    rows = rows.drop_duplicates(["_p", "_side", "seed"], keep="last")
    scale_of = {x: metric_scale(x) for x in set(metric)}
    declared_log = np.array([scale_of[x] == "log" for x in metric], dtype=bool)
    nonpositive = np.bincount(rows._p.to_numpy(), weights=(rows.value.to_numpy() <= 0).astype(float),
                              minlength=n_points) > 0
    log = declared_log & ~nonpositive
    by_side = [rows[rows._side == k] for k in (0, 1)]
    pairs = by_side[0].merge(by_side[1], on=["_p", "seed"], suffixes=("_b", "_c"))
    pairs = pairs.sort_values(["_p", "seed"], kind="stable")  # (the seeds in order, as there)

    def estimate(f) -> stats.Estimates:  # CUR - BASE of the values under `f`, every point
        m = [stats.moments(s._p.to_numpy(), f(s.value.to_numpy(dtype=float)), n_points)
             for s in by_side]
        d = stats.moments(pairs._p.to_numpy(), f(pairs.value_c.to_numpy(dtype=float))
                          - f(pairs.value_b.to_numpy(dtype=float)), n_points)
        return stats.estimates(d, m[1], m[0], alpha=alpha), m

    unit, m = estimate(lambda v: v)  # in units: the tolerance's floor and the direction
    if log.any():  # on the log scale where it applies (a value <= 0 is never logged)
        logged, m_log = estimate(lambda v: np.log(np.where(v > 0, v, 1.0)))
        est = stats.Estimates(*(np.where(log, a, b) for a, b in zip(
            (getattr(logged, f) for f in _ESTIMATE_FIELDS), (getattr(unit, f) for f in _ESTIMATE_FIELDS))))
        m = [tuple(np.where(log, a, b) for a, b in zip(ml, mu)) for ml, mu in zip(m_log, m)]
    else:
        est = unit
    effect = est.diff
    test = np.where(pending, est.test, "").astype(object)
    paired, welch = test == stats.PAIRED, test == stats.WELCH
    exact = test == stats.EXACT
    lo, hi, p = est.lo.copy(), est.hi.copy(), est.p_two_sided()
    p[exact] = np.nan  # (an exact difference needs no test: it is not in the family)
    # one seed a side: a z-test on the metric's within-run spread (KID's std), on its own
    # scale; an exact count (tolerance 0) by its change alone; anything else has no test
    std = [pd.to_numeric(o["std"], errors="coerce").to_numpy(dtype=float) for o in own]
    z_se = np.sqrt(std[0] ** 2 + std[1] ** 2)
    none = pending & (test == stats.NONE)
    rel = np.array([tolerance(x) for x in metric], dtype=float)
    floor = np.array([tolerance_floor(x) for x in metric], dtype=float)
    z_test = none & (n[0] == 1) & (n[1] == 1) & (z_se > 0)
    log &= ~z_test
    counted = none & ~z_test & (rel == 0)
    test[z_test], test[counted] = stats.Z, stats.TOLERANCE
    effect = np.where(z_test | (none & ~log), unit.diff, effect)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((mean[0] > 0) & (mean[1] > 0), mean[1] / mean[0], 1.0)
    effect = np.where(none & log, np.log(ratio), effect)
    if z_test.any():
        from scipy import stats as sps

        s_, q = z_se[z_test], sps.norm.ppf(1 - alpha / 2)
        p[z_test] = 2 * sps.norm.sf(np.abs(effect[z_test]) / s_)
        lo[z_test], hi[z_test] = effect[z_test] - q * s_, effect[z_test] + q * s_
    idx = np.flatnonzero(pending)
    result.judged += len(idx)
    reject = np.zeros(n_points, dtype=bool)
    reject[idx] = stats.bh(p[idx]) <= alpha  # (NaN: False)

    # the tolerance: relative (on the log scale, as a ratio) with an absolute floor in units,
    # on the change at the seeds compared (paired: the mean of the per-seed changes)
    diff = unit.diff
    with np.errstate(divide="ignore", invalid="ignore"):
        beyond = np.where(log, np.abs(effect) > np.log1p(rel),
                          np.abs(diff) > rel * np.maximum(np.abs(mean[0]), 1e-12)) & (np.abs(diff) > floor)
    decided = exact | (test == stats.TOLERANCE) | reject
    same = _same_values(both.loc[finite & pending[point]], n, n_points)
    changed = pending & beyond & decided & ~same
    up = (effect > 0) == higher.astype(bool) if len(idx) else np.zeros(n_points, dtype=bool)
    verdict = np.where(changed, np.where(up, "improvement", "regression"),
                       np.where(pending & beyond & ~decided & ~same, "inconclusive", "no change"))

    # what the comparison could have caught: the minimum detectable effect of each point at
    # power POWER, tested alone at the family's first Benjamini-Hochberg level (alpha / tests).
    # Its noise is the spread of the per-seed differences, or, where they are all equal (the
    # same code on the same seeds), that of two independent seeds (sqrt 2 x the spread between
    # seeds): what a change that moves the training would add
    between = np.sqrt(np.nan_to_num(m[0][2] ** 2 + m[1][2] ** 2) / 2)
    noise = np.where(paired | exact, np.where(est.sd > 0, est.sd, math.sqrt(2) * between), np.nan)
    n_eff = np.where(paired | exact, est.n, np.minimum(n[0], n[1]))
    se = np.where(paired | exact, noise / np.sqrt(np.maximum(n_eff, 1)),
                  np.sqrt(np.nan_to_num(m[0][2] ** 2) / np.maximum(n[0], 1)
                          + np.nan_to_num(m[1][2] ** 2) / np.maximum(n[1], 1)))
    dof = np.where(paired | exact, n_eff - 1.0, est.dof)
    noisy = pending & (paired | exact | welch) & (se > 0)
    level = alpha / max(1, int(noisy.sum() + z_test.sum()))
    tol_scale = np.where(log, np.log1p(rel), rel * np.abs(mean[0]))
    mde = np.full(n_points, np.inf)
    mde[noisy] = stats.detectable_se(se[noisy], dof[noisy], alpha=level)
    if z_test.any():  # (the normal's detectable effect: z_{1 - level/2} + z_{power} errors)
        from scipy.stats import norm

        mde[z_test] = (norm.ppf(1 - level / 2) + norm.ppf(stats.POWER)) * z_se[z_test]
    mde = np.where(pending & ~noisy & (exact | paired | welch | (test == stats.TOLERANCE)),
                   tol_scale, mde)  # no noise: any change beyond the tolerance shows
    mde = np.maximum(mde, tol_scale)
    result.mde_level = level

    cfg = [[c.get(k, "") for k in col["cell_key"]] for c in configs]
    # what a verdict shows as base and current: the means of the seeds it compared (a paired
    # test compares the seeds both runs have, which may be fewer than either has)
    pair_mean = [stats.moments(pairs._p.to_numpy(), pairs[c].to_numpy(dtype=float), n_points)[1]
                 for c in ("value_b", "value_c")]
    on_pairs = np.isin(test, (stats.PAIRED, stats.EXACT)) & (unit.n >= 2) & (est.n_x > 0)
    shown_mean = [np.where(on_pairs, pair_mean[k], mean[k]) for k in (0, 1)]
    num = {k: a.tolist() for k, a in (("base", shown_mean[0]), ("cur", shown_mean[1]), ("diff", diff),
                                      ("effect", effect), ("lo", lo), ("hi", hi), ("p", p),
                                      ("nb", n[0]), ("nc", n[1]), ("verdict", verdict),
                                      ("test", test), ("mde", mde), ("log", log))}
    result.verdicts += [Verdict(
        study=str(col["study"][i]), arm=str(col["arm"][i]), cell=_axes(col["cell_json"][i]),
        setting=_axes(col["setting_json"][i]), metric=str(col["metric"][i]), base=num["base"][i],
        cur=num["cur"][i], diff=num["diff"][i], effect=num["effect"][i], lo=num["lo"][i],
        hi=num["hi"][i], n_base=num["nb"][i], n_cur=num["nc"][i], test=num["test"][i],
        p=num["p"][i], verdict=num["verdict"][i], scale="log" if num["log"][i] else "linear",
        mde=num["mde"][i], note=_configs_differ(cfg[0][i], cfg[1][i]))
        for i in idx.tolist()]


def _same_values(rows: pd.DataFrame, n: list[np.ndarray], size: int) -> np.ndarray:
    """Per point: whether both sides hold the same finite values (a run compared with itself),
    as multisets: with equal counts, each side sorted by (point, value) lines up row by row."""
    equal_n = n[0] == n[1]
    point, side = rows._p.to_numpy(), rows._side.to_numpy()
    value = rows.value.to_numpy(dtype=float)
    sorted_values = []
    for k in (0, 1):
        mask = (side == k) & equal_n[point]
        p, v = point[mask], value[mask]
        order = np.lexsort((v, p))
        sorted_values.append((p[order], v[order]))
    differs = sorted_values[0][1] != sorted_values[1][1]
    bad = np.bincount(sorted_values[0][0], weights=differs.astype(float), minlength=size)
    return equal_n & (bad == 0)


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
    if counts["inconclusive"]:
        k = counts["inconclusive"]
        lines.append(f"{k} change{'s' * (k != 1)} beyond {'their' if k != 1 else 'its'} metric's "
                     "tolerance could not be decided by the seeds both runs have: "
                     + ("they exit 3 (--allow-inconclusive reports them only); more seeds in both "
                        "runs would decide them." if result.inconclusive_fails else
                        "reported only (--allow-inconclusive)."))
    for u in result.unjudged:
        lines.append(f"Not judged: {u.count} {u.reason}; e.g. {u.example}.")
    if not result.timings:
        lines.append("Wall-clock metrics (train_s, train_images_per_s, sample_s_per_image) are "
                     "left out: --timings judges them, on a dedicated machine.")
    if result.memory_left_out:
        lines.append(f"Memory peaks ({', '.join(MEMORY_PEAKS)}) are left out: the two runs measured "
                     "them in processes of different histories (a fresh worker per trial against "
                     "one that ran earlier trials: --in-process, --reuse-workers), which alone "
                     "moves a fit's peak by about 150 MB.")
    power = result.power_line()
    if power:
        lines.append(power)
    tested = sum(v.p == v.p for v in result.verdicts)
    family = (f"Benjamini-Hochberg across the {tested} tested point{'s' * (tested != 1)} at "
              f"alpha {result.alpha:g}" if tested else "no point needed a test (each change "
              "the same at every seed, or no seeds to test)")
    lines.append("Tests: paired by seed on each metric's scale (% change: per-seed log ratios; "
                 f"base and current are the means of the seeds compared); {family}; a change must "
                 "also exceed its metric's tolerance (docs/statistics.md).")
    shown = result.verdicts
    if counts["no change"] > MAX_UNCHANGED:  # a huge run: every change, a sample of the rest
        quiet = [v for v in shown if v.verdict == "no change"]
        shown = [v for v in shown if v.verdict != "no change"] + quiet[:MAX_UNCHANGED]
        lines.append(f"{len(quiet) - MAX_UNCHANGED} more points with no change are not listed "
                     "below (--json lists every point).")
    level = f"{1 - result.alpha:.0%}"
    lines += ["", f"| verdict | arm | cell | setting | metric | base | current | change ({level} CI) "
              "| detectable | seeds | test | note |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in shown:
        ci = f" [{v.shown(v.lo)}, {v.shown(v.hi)}]" if np.isfinite(v.lo) and v.test != "exact" else ""
        change = f"{v.shown()}{ci}" if np.isfinite(v.effect) else (
            f"{v.diff:+.3g}" if np.isfinite(v.diff) else "-")
        mde = v.detectable_text()
        lines.append(f"| {v.verdict} | {v.arm} | {v.cell or '-'} | {v.setting or '-'} | {v.metric} "
                     f"| {_num(v.base)} | {_num(v.cur)} | {change} | {mde} | {v.n_base}/{v.n_cur} "
                     f"| {v.test}{'' if not np.isfinite(v.p) else f' p={v.p:.2g}'} | {v.note or '-'} |")
    return "\n".join(lines)


def _num(x: float) -> str:
    return f"{x:.4g}" if np.isfinite(x) else "-"


def render_json(result: Comparison) -> str:
    """The comparison as JSON: valid JSON, with null where a number is missing (never NaN);
    one verdict per line (a run of a million rows has a few hundred thousand points)."""
    from genbench.harness.store.files import json_safe

    def line(v) -> str:
        return json.dumps({k: (None if isinstance(x, float) and not math.isfinite(x) else x)
                           for k, x in vars(v).items()}, allow_nan=False)

    head = {k: json_safe(getattr(result, k)) for k in (
        "base", "cur", "only_base", "only_cur", "missing_is_regression", "inconclusive_fails",
        "timings", "memory_left_out", "alpha", "judged", "mde_level")}
    head["warnings"] = list(result.warnings)
    head["unjudged"] = [vars(u) for u in result.unjudged]
    head["regressions"] = len(result.regressions)
    head["inconclusive"] = len(result.inconclusive)
    head["exit_status"] = result.exit_status
    head["power"] = result.power_line()
    text = json.dumps(head, indent=1, allow_nan=False)
    rows = ",\n  ".join(line(v) for v in result.verdicts)
    return text[:-2] + f',\n "verdicts": [\n  {rows}\n ]\n}}' if rows else \
        text[:-2] + ',\n "verdicts": []\n}'

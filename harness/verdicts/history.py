"""`genbench history`: regression benchmarking over time. Runs of one study and scale, in the
order they were made, and for every point (arm, cell, sample setting, metric) its series of
per-run levels and the change points where the level shifted beyond noise and beyond the
metric's tolerance, each attributed to the first run after the shift (its commit).

The method: binary segmentation (Scott & Knott 1974; Vostrikova 1981), each candidate split
tested with the statistics core compare uses (`stats.estimate`: a paired t over the seeds both
segments measured, on each seed's mean over the segment's runs, on the metric's scale; per-seed
log ratios for FID, KID, times and memory), so that the history of two runs is exactly their
`genbench compare`. Within a segment the best split (the smallest p) is tested at alpha /
(candidate splits) (Bonferroni), and must exceed the metric's tolerance, as compare's verdicts
must; the family of points is held to a false discovery rate of alpha by Benjamini-Hochberg over
each point's first split, as compare's gate is; a point that shifted is segmented further on
both sides. A change whose own step (the run before against the run after) stays within
tolerance while the segments differ beyond it is a **drift**: several small steps that add up.

A run's commit is its rows' `git_sha`; its time their first `created_at`. Acknowledged shifts
(`Ack`: a commit prefix, a metric or "*", a reason) are shown, labelled, and never fail.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from genbench.harness.config import grid_text
from genbench.harness.errors import GenbenchError
from genbench.harness.metrics import (MEMORY_BASELINES, STATUS_METRICS, WALL_CLOCK_METRICS,
                                      tolerance, tolerance_floor)
from genbench.harness.metrics import scale as metric_scale
from genbench.harness.store.results import REAL_ARM, read_current
from genbench.harness.verdicts import stats

COLUMNS = ["study", "arm", "cell_json", "setting_json", "metric", "seed", "value",
           "higher_is_better", "git_sha", "created_at"]


@dataclass(frozen=True)
class Ack:
    """A known, accepted shift: at a commit (a prefix of it), of a metric ("*": any)."""

    commit: str
    metric: str
    reason: str

    def matches(self, commit: str, metric: str) -> bool:
        return bool(self.commit) and commit.startswith(self.commit) and self.metric in ("*", metric)


def read_acks(path: Path) -> list[Ack]:
    """The acknowledged shifts of an acks file (JSON: a list of {commit, metric, reason});
    none where it does not exist; one line on a file that is not such a list."""
    if not path.is_file():
        return []
    try:
        return [Ack(str(a["commit"]), str(a["metric"]), str(a.get("reason", "")))
                for a in json.loads(path.read_text())]
    except (ValueError, KeyError, TypeError) as e:
        raise GenbenchError(f"{path} is not an acks file (a JSON list of commit, metric, "
                            f"reason): {e}") from None


def add_ack(path: Path, ack: Ack) -> list[Ack]:
    """Record `ack` in the acks file (created if absent), once; returns every ack it holds."""
    from genbench.harness.store.files import atomic_write_bytes

    acks = read_acks(path)
    if ack not in acks:
        acks.append(ack)
        atomic_write_bytes(path, (json.dumps([asdict(a) for a in acks], indent=1) + "\n").encode())
    return acks


@dataclass(frozen=True)
class RunInfo:
    path: str
    commit: str
    created_at: str


@dataclass
class Series:
    """One point's level at each run: the mean of its seeds, with its (1 - alpha) interval."""

    arm: str
    cell: str
    setting: str
    metric: str
    scale: str
    mean: list[float]
    lo: list[float]
    hi: list[float]
    n: list[int]


@dataclass
class Change:
    arm: str
    cell: str
    setting: str
    metric: str
    run: int  # index (in order) of the first run after the shift
    commit: str
    kind: str  # "step" | "drift"
    verdict: str  # "regression" | "improvement"
    effect: float  # after - before on the metric's scale (a log ratio on the log scale)
    lo: float
    hi: float
    p: float  # Bonferroni-adjusted over the segment's candidate splits
    scale: str
    before: float  # the segments' means in the metric's units
    after: float
    since: int = 0  # a drift's first run (its segment's start)
    acknowledged: str = ""  # the reason, where an ack matches
    newest: bool = False  # the newest run still sits in the level this change moved to

    def where(self) -> str:
        return f"{self.arm} {self.cell} {self.setting or '-'} {self.metric}"

    def change_text(self) -> str:
        if self.scale == "log":
            return (f"{stats.change_text(self.effect)} [{stats.change_text(self.lo)}, "
                    f"{stats.change_text(self.hi)}]")
        return f"{self.effect:+.3g} [{self.lo:+.3g}, {self.hi:+.3g}]"


@dataclass
class History:
    study: str
    scale: str
    runs: list[RunInfo]
    alpha: float
    points: int = 0
    changes: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    _points: list = field(default_factory=list, repr=False)

    @property
    def series(self) -> list[Series]:
        """Every point's level at each run (what the page draws), made when asked for."""
        return [t.series() for t in self._points]

    @property
    def failing(self) -> list[Change]:
        """Regressions nobody acknowledged that the newest run still sits in."""
        return [c for c in self.changes if c.verdict == "regression" and c.newest
                and not c.acknowledged]

    def exit_status(self) -> int:
        return 1 if self.failing else 0

    def summary(self) -> str:
        n = len(self.runs)
        regress = sum(c.verdict == "regression" for c in self.changes)
        acked = sum(bool(c.acknowledged) for c in self.changes)
        tail = (f"; FAIL: the newest run sits in {len(self.failing)} unacknowledged regression(s)"
                if self.failing else "; the newest run sits in no unacknowledged regression")
        return (f"history of {self.study} [{self.scale}]: {n} runs, {self.points} points, "
                f"{len(self.changes)} change(s) ({regress} regression(s), {acked} acknowledged)"
                f"{tail}")

    def lines(self) -> list[str]:
        out = [f"run {i}: {r.commit[:10]} {r.created_at[:19]} {r.path}" for i, r in enumerate(self.runs)]
        for c in self.changes:
            what = f"{c.kind} since run {c.since}" if c.kind == "drift" else c.kind
            ack = f"  (acknowledged: {c.acknowledged})" if c.acknowledged else ""
            out.append(f"{c.verdict:<11} {c.where()} at run {c.run} ({c.commit[:10]}): "
                       f"{c.change_text()}, p={c.p:.2g}, {what}{ack}")
        return [*out, *[f"warning: {w}" for w in self.warnings], self.summary()]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([asdict(c) for c in self.changes])

    def to_json(self) -> str:
        return json.dumps({"study": self.study, "scale": self.scale, "alpha": self.alpha,
                           "runs": [asdict(r) for r in self.runs], "points": self.points,
                           "changes": [asdict(c) for c in self.changes],
                           "failing": len(self.failing), "warnings": self.warnings},
                          indent=1, default=str)

    def to_markdown(self) -> str:
        head = (f"**genbench history** {self.study} [{self.scale}]: {len(self.runs)} runs, "
                f"{self.points} points, {len(self.changes)} change(s), "
                f"{len(self.failing)} failing")
        lines = [head, ""]
        if self.changes:
            lines += ["| verdict | arm | cell | setting | metric | at run | commit | change (CI) | p | kind |",
                      "|---|---|---|---|---|---|---|---|---|---|"]
            for c in self.changes:
                verdict = f"{c.verdict} (acknowledged: {c.acknowledged})" if c.acknowledged else c.verdict
                lines.append(f"| {verdict} | {c.arm} | {c.cell} | {c.setting or '-'} | {c.metric} | "
                             f"{c.run} | `{c.commit[:10]}` | {c.change_text()} | {c.p:.2g} | {c.kind} |")
        else:
            lines.append("No level shifted beyond noise and tolerance.")
        return "\n".join(lines) + "\n"


def _run_info(path: Path, rows: pd.DataFrame) -> RunInfo:
    shas = rows.git_sha.dropna()
    made = rows.created_at.dropna()
    return RunInfo(str(path), str(shas.iloc[0]) if len(shas) else "?",
                   made.min().isoformat() if len(made) else "")


def history(run_dirs: list[Path], *, plans: list | None = None, order: str = "created",
            alpha: float = 0.05, acks: list[Ack] = (), timings: bool = False) -> History:
    """The history of `run_dirs` (runs of one study and scale; `plans`, each one's latest plan
    or None) in the order they were made (`order="given"`: as given)."""
    if len(run_dirs) < 2:
        raise GenbenchError("history needs two or more runs of one study")
    plans = plans or [None] * len(run_dirs)
    quiet: list[str] = []
    from concurrent.futures import ThreadPoolExecutor

    left_out = (*STATUS_METRICS, *MEMORY_BASELINES, *(() if timings else WALL_CLOCK_METRICS))
    keys = ["arm", "cell_json", "setting_json", "metric"]
    index: dict[tuple, int] = {}  # a point's key -> its code, over every run
    meta: list[tuple] = []  # code -> (arm, cell_json, setting_json, metric, higher_is_better)

    def read(d, p):
        """One run reduced to what a history keeps: its study, commit and time, and its values
        as (point code, seed, value) arrays; the frame itself is let go at once."""
        rows = read_current(d, p, warn=quiet.append, columns=COLUMNS)[0]
        if rows.empty:
            raise GenbenchError(f"{d} has no rows")
        info = _run_info(Path(d), rows)
        study = getattr(p, "study", None) or ",".join(sorted(rows.study.dropna().unique()))
        keep = (rows.arm != REAL_ARM) & ~rows.metric.isin(left_out) & rows.higher_is_better.notna()
        r = rows.loc[keep, [*keys, "seed", "value", "higher_is_better"]]
        r["setting_json"] = r["setting_json"].fillna("")
        group = r.groupby(keys, sort=False)
        local = group.ngroup().to_numpy()
        first = group["higher_is_better"].first()
        return info, (study, getattr(p, "scale", None)), first, local, r.seed.to_numpy(), \
            r.value.to_numpy(dtype=float)

    loaded = []
    with ThreadPoolExecutor(max_workers=2) as pool:  # (pyarrow reads without the GIL)
        for start in range(0, len(run_dirs), 4):  # a few runs in memory at a time
            for got in pool.map(read, run_dirs[start:start + 4], plans[start:start + 4]):
                info, which, first, local, seed, value = got
                codes = np.array([index.setdefault(k, len(index)) for k in first.index], dtype=np.int64)
                if len(index) > len(meta):  # new points: their keys and direction
                    known = dict(zip(first.index, first.to_numpy()))
                    meta += [(*k, known[k]) for k in list(index)[len(meta):]]
                loaded.append((info, which, codes[local] if len(local) else local, seed, value))
    studies = {which for _, which, *_ in loaded}
    if len({s for s, _ in studies}) > 1 or len({c for _, c in studies if c}) > 1:
        raise GenbenchError("history compares runs of one study and scale; these are of "
                            + ", ".join(sorted(f"{s} [{c}]" for s, c in studies)))
    if order == "created":
        loaded.sort(key=lambda x: x[0].created_at)
    infos = [x[0] for x in loaded]
    study, scale = next(iter(studies))
    result = History(study=study, scale=scale or "?", runs=infos, alpha=alpha, warnings=quiet)
    # every value in one array, points (in key order) x runs x seeds: no frame per point
    order_of = sorted(range(len(meta)), key=lambda j: tuple(str(x) for x in meta[j][:4]))
    rank = np.empty(len(meta), dtype=np.int64)
    rank[order_of] = np.arange(len(meta))
    all_seeds = np.concatenate([x[3] for x in loaded]) if loaded else np.zeros(0)
    seed_code, seeds = pd.factorize(all_seeds, sort=True)
    grid = np.full((len(meta), len(loaded), len(seeds)), np.nan)
    at = 0
    for run, (_, _, point, _, value) in enumerate(loaded):
        grid[rank[point], run, seed_code[at:at + len(value)]] = value
        at += len(value)
    del loaded
    first = pd.DataFrame([meta[j] for j in order_of], columns=[*keys, "higher_is_better"])
    seeds = seeds.tolist()
    finite = np.isfinite(grid)
    present = finite.any(axis=2)  # (point, run): measured there
    tests = []
    for i, (arm, cell_json, setting_json, metric, higher) in enumerate(first.itertuples(index=False)):
        runs_of = np.flatnonzero(present[i]).tolist()
        if len(runs_of) < 2:
            continue
        scale_of = metric_scale(metric)
        if scale_of == "log" and not (grid[i][finite[i]] > 0).all():
            scale_of = "linear"
        tests.append(_Point(arm, grid_text(cell_json), grid_text(setting_json, base=""), metric,
                            scale_of, bool(higher), runs_of, grid[i, runs_of], seeds, alpha))
    result._points = tests
    result.points = len(tests)
    result.changes = find_changes(tests, infos, acks, alpha)
    return result


def find_changes(tests: list["_Point"], infos: list[RunInfo], acks, alpha: float) -> list[Change]:
    """The change points of a family of points: each point's first split column-wise,
    Benjamini-Hochberg over them, the points that shifted segmented further (what `history`
    decides, and what benchmarks/bench_calibration.py simulates)."""
    first_splits(tests)
    first = np.array([t.first_p() for t in tests])
    reject = stats.bh(first) <= alpha if len(first) else np.zeros(0, dtype=bool)
    changes: list[Change] = []
    for t, r in zip(tests, reject):
        if r:
            changes += t.changes(infos, acks)
    changes.sort(key=lambda c: (c.run, c.metric, c.arm, c.cell, c.setting))
    return changes


def first_splits(points: list["_Point"]) -> None:
    """Every point's first split at once, column-wise (points x splits x seeds), as `_best`
    finds it one point at a time: the same paired t on each seed's segment means. Points
    measured in fewer than all runs, or where a split shares fewer than two seeds (Welch's
    case), keep the per-point path."""
    most = max((len(q.runs) for q in points), default=0)
    full = [pt for pt in points if len(pt.runs) == most]
    if not full or len(full[0].runs) < 2:
        return
    n_runs = len(full[0].runs)
    v = np.stack([pt.grid for pt in full])  # points x runs x seeds
    log = np.array([pt.scale == "log" for pt in full])
    v = np.where(np.isfinite(v), v, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        v[log] = np.log(v[log])
        has = np.isfinite(v)
        cs, cnt = np.cumsum(np.nan_to_num(v), axis=1), np.cumsum(has, axis=1)
        left, left_n = cs[:, :-1], cnt[:, :-1]  # runs before split k (k = 1 .. R-1)
        right, right_n = cs[:, -1:] - left, cnt[:, -1:] - left_n
        lm, rm = left / left_n, right / right_n
        both = (left_n > 0) & (right_n > 0)
        d = np.where(both, rm - lm, np.nan)
        n = both.sum(-1)
        mean = np.nanmean(np.where(n[..., None] > 0, d, 0.0), axis=-1)
        sd = np.sqrt(np.nansum((d - mean[..., None]) ** 2, axis=-1) / np.maximum(n - 1, 1))
        se = sd / np.sqrt(n)
        exact = se <= 1e-12 * np.abs(mean)
        p = np.where(exact, np.where(mean != 0, 0.0, 1.0),
                     np.minimum(1.0, 2 * stats.t_sf(np.abs(mean) / se, n - 1.0)))
        back = lambda a: np.where(log[:, None, None], np.exp(a), a)  # noqa: E731
        units = np.abs(np.nanmean(np.where(right_n > 0, back(rm), np.nan), -1)
                       - np.nanmean(np.where(left_n > 0, back(lm), np.nan), -1))
        mean_y = np.nanmean(np.where(left_n > 0, back(lm), np.nan), -1)
    tol = np.array([pt.tol for pt in full])[:, None]
    floor = np.array([pt.floor for pt in full])[:, None]
    beyond = np.where(log[:, None], np.abs(mean) > tol,
                      np.abs(mean) > tol * np.maximum(np.abs(mean_y), 1e-12)) & (units > floor)
    padj = np.where(beyond & np.isfinite(p), np.minimum(1.0, p * (n_runs - 1)), np.inf)
    best = np.argmin(padj, axis=1)
    welch = (n < 2).any(axis=1)  # a split sharing fewer than two seeds: the per-point path
    for i, pt in enumerate(full):
        if welch[i]:
            continue
        b = padj[i, best[i]]
        pt._first = (int(best[i]) + 1, float(b), None) if np.isfinite(b) else (-1, 1.0, None)


class _Point:
    """One point's series across runs, and its segmentation."""

    def __init__(self, arm, cell, setting, metric, scale, higher, runs, grid, seeds, alpha):
        self.arm, self.cell, self.setting, self.metric = arm, cell, setting, metric
        self.scale, self.higher, self.runs, self.alpha = scale, higher, runs, alpha
        self.grid, self.seeds = grid, seeds  # values: the point's runs x seeds (NaN: none)
        self._values: dict[int, dict[int, float]] | None = None
        rel = tolerance(metric)
        self.tol = math.log1p(rel) if scale == "log" else rel
        self.floor = tolerance_floor(metric)
        self._first: tuple[int, float, Any] | None = None

    @property
    def values(self) -> dict[int, dict[int, float]]:
        """run -> seed -> value (finite ones), for the per-point path."""
        if self._values is None:
            self._values = {r: {s: float(x) for s, x in zip(self.seeds, row) if math.isfinite(x)}
                            for r, row in zip(self.runs, self.grid)}
        return self._values

    def series(self) -> Series:
        g = self.grid
        n = np.isfinite(g).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nanmean(np.where(n[:, None] > 0, g, 0.0), axis=1)
            mean = np.where(n > 0, mean, np.nan)
            sd = np.sqrt(np.nansum((g - mean[:, None]) ** 2, axis=1) / np.maximum(n - 1, 1))
        half = stats.mean_interval(n, sd, alpha=self.alpha)
        return Series(self.arm, self.cell, self.setting, self.metric, self.scale, mean.tolist(),
                      (mean - half).tolist(), (mean + half).tolist(), n.tolist())

    def _pooled(self, a: int, b: int) -> dict[int, float]:
        """Each seed's mean over runs a..b-1 (positions in `runs`), on the metric's scale and
        back (a geometric mean on the log scale), for `stats.estimate` to compare."""
        seeds: dict[int, list[float]] = {}
        for r in self.runs[a:b]:
            for s, x in self.values[r].items():
                if math.isfinite(x):
                    seeds.setdefault(s, []).append(x)
        if self.scale == "log":
            return {s: float(np.exp(np.mean(np.log(v)))) for s, v in seeds.items()}
        return {s: float(np.mean(v)) for s, v in seeds.items()}

    def _between(self, a: int, k: int, b: int):
        return stats.estimate(self._pooled(k, b), self._pooled(a, k), alpha=self.alpha,
                              scale=self.scale)

    def _beyond(self, est) -> bool:
        if not math.isfinite(est.diff):
            return False
        units = abs(est.mean_x - est.mean_y)
        if self.scale == "log" and est.scale == "log":
            return abs(est.diff) > self.tol and units > self.floor
        return abs(est.diff) > self.tol * max(abs(est.mean_y), 1e-12) and units > self.floor

    def _best(self, a: int, b: int) -> tuple[int, float, Any]:
        """The split of runs a..b-1 with the smallest p (Bonferroni-adjusted), among those
        beyond tolerance; (-1, 1.0, None) where none is."""
        best = (-1, 1.0, None)
        m = b - a - 1
        for k in range(a + 1, b):
            est = self._between(a, k, b)
            p = est.p_two_sided()
            if p == p and self._beyond(est) and min(1.0, p * m) < best[1]:
                best = (k, min(1.0, p * m), est)
        return best

    def _level(self, i: int) -> float:
        v = [x for x in self.values[self.runs[i]].values() if math.isfinite(x)]
        v = np.log(v) if self.scale == "log" else np.asarray(v)
        return float(v.mean()) if len(v) else float("nan")

    def _rise(self, a: int, k: int, up: bool) -> int:
        """The first run i of a..k from which every run up to k lies beyond the mean level of
        the runs a..i-1, in the direction `up` (a drift's start)."""
        since = k
        for i in range(k, a, -1):
            before = np.nanmean([self._level(j) for j in range(a, i)])
            if all((self._level(j) > before) == up for j in range(i, k + 1)):
                since = i
            else:
                break
        return since

    def first_p(self) -> float:
        if self._first is None:
            self._first = self._best(0, len(self.runs))
        return self._first[1]

    def first_split(self) -> tuple[int, float, Any]:
        """The first split (`_best` over every run; `first_splits` may have found it for many
        points at once, leaving its estimate to be made here)."""
        if self._first is None:
            self._first = self._best(0, len(self.runs))
        k, p, est = self._first
        if est is None and k >= 0:
            self._first = (k, p, self._between(0, k, len(self.runs)))
        return self._first

    def changes(self, infos: list[RunInfo], acks) -> list[Change]:
        splits: list[tuple[int, float, Any]] = []

        def segment(a: int, b: int, first: bool) -> None:
            k, p, est = self.first_split() if first else self._best(a, b)
            if est is None or (not first and p > self.alpha):
                return
            splits.append((k, p, est))
            segment(a, k, False)
            segment(k, b, False)

        segment(0, len(self.runs), True)
        splits.sort(key=lambda s: s[0])
        bounds = [0, *[k for k, _, _ in splits], len(self.runs)]
        kinds = ["step" if self._beyond(self._between(k - 1, k, k + 1)) else "drift"
                 for k, _, _ in splits]
        # a drift segmented at several runs is one change: its splits of one direction merge
        # into the first, measured from the segment before it to the segment after the last
        merged: list[tuple[int, float, int]] = []  # (split index, p, index of its last split)
        for j, (k, p, _) in enumerate(splits):
            if merged and kinds[j] == "drift" == kinds[merged[-1][0]] and merged[-1][2] == j - 1 \
                    and (self._between(bounds[j], k, bounds[j + 2]).diff > 0) == \
                    (self._between(bounds[merged[-1][0]], splits[merged[-1][0]][0],
                                   bounds[merged[-1][0] + 2]).diff > 0):
                first, p0, _ = merged[-1]
                merged[-1] = (first, max(p0, p), j)
            else:
                merged.append((j, p, j))
        out = []
        for j, p, last in merged:
            k = splits[j][0]
            a, b = bounds[j], bounds[last + 2]  # the segments before the first and after the last
            kind = kinds[j]
            est = stats.estimate(self._pooled(splits[last][0], b), self._pooled(a, k),
                                 alpha=self.alpha, scale=self.scale)
            up = est.diff > 0
            since = k
            if kind == "drift":  # the first run of the rise: from it on, every run's level lies
                since = self._rise(a, k, up)  # beyond the level before it, the change's way
            commit = infos[self.runs[k]].commit
            ack = next((x.reason or "acknowledged" for x in acks if x.matches(commit, self.metric)), "")
            # the newest run still sits in the level this change moved to: its level against
            # the segment before the change is still beyond tolerance, the same way
            now = stats.estimate(self._pooled(len(self.runs) - 1, len(self.runs)),
                                 self._pooled(a, k), alpha=self.alpha, scale=self.scale)
            newest = self._beyond(now) and (now.diff > 0) == up
            out.append(Change(
                arm=self.arm, cell=self.cell, setting=self.setting, metric=self.metric,
                run=self.runs[k], commit=commit, kind=kind,
                verdict="improvement" if up == self.higher else "regression",
                effect=est.diff, lo=est.lo, hi=est.hi, p=p, scale=est.scale,
                before=est.mean_y, after=est.mean_x, since=self.runs[since], acknowledged=ack,
                newest=newest))
        return out

"""From run directories to the tables a report shows: every row and curve, the plan each run
followed, what is still missing, and per-cell summaries with an interval over seeds (95 % by default;
Student's t on the mean: seeds are few and their metrics roughly normal; Go's benchstat
reports medians with a non-parametric interval instead, which needs more samples than an
ablation's seeds).

Pure pandas: no torch, no methods. Its genbench imports are `genbench.harness.store.results`, the
schema, and `genbench.harness.verdicts.stats`, the statistics every verdict and interval shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genbench.harness.verdicts.stats import mean_interval
from genbench.harness.config import canonical_json
from genbench.harness.metrics import STATUS_METRICS
from genbench.harness.plan.plan import Plan, read_plan
from genbench.harness.store.results import read_current, read_curves

# the metrics a summary table leads with, when present: these quality and task metrics, then
# any other quality metric in the rows (a row with a feature extractor), then these costs
MAIN_QUALITY = ("fid_domain", "kid_domain", "fid_inception", "kid_inception", "precision_domain",
                "recall_domain", "class_match", "mse_hidden", "psnr_hidden")
MAIN_COST = ("nfe", "sample_s_per_image", "train_s", "final_loss")
# what a page reads of the results (a million rows: each column left out is memory saved)
COLUMNS = ["study", "scale", "arm", "method", "trial_id", "seed", "cell_key", "cell_json",
           "setting_json", "sample_json", "metric", "value", "std", "higher_is_better", "note",
           "feature_extractor", "device", "dataset", "git_sha", "n_samples"]
QUALITY_PREFERENCE = ("fid_domain", "fid_inception", "kid_domain", "kid_inception", "mse_hidden")


@dataclass
class Run:
    """One output directory: its rows, curves and latest plan."""

    index: int  # position on the command line: several runs give one comparison page
    path: Path
    rows: pd.DataFrame
    curves: pd.DataFrame
    plan: Plan | None  # study.json (None when absent or unreadable)
    warnings: list[str] = field(default_factory=list)  # unreadable files, rows left out

    @property
    def trials(self) -> tuple:
        """The latest plan's trials (`genbench.harness.plan.plan.Trial`; none without a plan)."""
        return self.plan.trials if self.plan else ()

    @property
    def samples(self) -> tuple:
        """The latest plan's sample settings (none without a plan)."""
        return self.plan.samples if self.plan else ()

    def planned(self, name: str, default="?"):
        """A field of the latest plan (`Plan.<name>`), `default` without a plan."""
        return getattr(self.plan, name) if self.plan else default

    @property
    def commits(self) -> list[str]:
        """The commits that wrote the rows, shortened to 10 hex digits, keeping `-dirty` (a tree
        with uncommitted changes: the commit alone does not reproduce it)."""
        if not len(self.rows):
            return []
        return sorted({s[:10] + ("-dirty" if s.endswith("-dirty") else "")
                       for s in self.rows.git_sha.dropna().unique()})

    @property
    def label(self) -> str:
        """How the page names this run: the study and scale, and which commit wrote it."""
        sha = self.commits
        study = (self.plan.study if self.plan else None) or (
            self.rows.study.iloc[0] if len(self.rows) else "?")
        scale = self.plan.scale if self.plan else ""
        return f"{study} [{scale}] @ {', '.join(sha) or 'no rows yet'}"

    @property
    def location(self) -> str:
        """Where the run lives: its URI for a local mirror of one, else its directory."""
        from genbench.harness.store.rundir import RunDir

        return RunDir(self.path).mirrored_uri() or str(self.path)

    def rerun_location(self) -> str:
        """A fresh place beside this run for a rerun: DIR-rerun, or the URI's path plus -rerun
        (its query, such as ?region=, kept)."""
        where, q, query = self.location.partition("?")
        return f"{where.rstrip('/')}-rerun{q}{query}"

    def missing(self) -> list[str]:
        """Fits and sample settings of the latest plan that have no rows yet."""
        out = []
        status = self.rows.metric.isin(STATUS_METRICS)
        done_fits = set(self.rows[self.rows.setting_json.isna() & ~status].trial_id.unique())
        ended = set(self.rows[self.rows.metric == "diverged_at_step"].trial_id.unique())
        done = self.rows[["trial_id", "setting_json"]].fillna({"setting_json": ""}).drop_duplicates()
        done_settings = set(zip(done.trial_id.tolist(), done.setting_json.tolist()))
        if self.plan is None:
            return out
        settings = [(s.arm, s.key, canonical_json(s.cell)) for s in self.samples]
        for t in self.trials:
            if t.trial_id in ended:  # diverged: final, listed under failures
                continue
            if t.trial_id not in done_fits:
                out.append(f"fit {t.trial_id} ({t.arm} seed {t.seed} {t.cell})")
                continue
            for arm, key, cell in settings:
                if arm not in (None, t.arm):
                    continue
                if (t.trial_id, cell) not in done_settings:
                    out.append(f"setting {key} of {t.trial_id}")
        return out

    def failures(self) -> list[str]:
        """Trials of the latest plan that diverged or whose last attempt failed, with why."""
        ids = {t.trial_id for t in self.trials}
        rows = self.rows[self.rows.metric.isin(STATUS_METRICS) & self.rows.trial_id.isin(ids)]
        return [f"{r.trial_id} ({r.arm} seed {r.seed}): "
                + (f"diverged at step {int(r.value)}" if r.metric == "diverged_at_step"
                   else f"setting {r.setting}: {r.note}" if r.metric == "diverged"
                   else f"failed after {int(r.value)} attempts: {r.note}")
                for r in rows.itertuples()]

    def study_ref(self) -> str:
        """How to name this run's study on the command line (a name or a file path)."""
        for ref in self.planned("imports", ()):
            if ref.startswith("path:"):
                return ref.removeprefix("path:")
            for shipped in ("genbench.studies.", "studies."):  # (the second: runs before 0.1's
                if ref.startswith(shipped):                      # one namespace)
                    return ref.removeprefix(shipped)
        return self.planned("study", "STUDY")


def load_runs(paths: list[Path], plans: list[Plan | None] | None = None) -> list[Run]:
    """The runs in `paths`, each with its current rows, curves and latest plan: `plans[i]`
    where given (the driver read it already), else its study.json."""
    runs = []
    for i, p in enumerate(paths):
        p = Path(p)
        warnings: list[str] = []
        plan = plans[i] if plans is not None and plans[i] is not None else read_plan(p)
        rows, gone = read_current(p, plan, warn=warnings.append, columns=COLUMNS)
        curves = read_curves(p)
        runs.append(Run(i, p, with_axes(rows), curves[~curves.trial_id.isin(gone)], plan,
                        warnings))
    return runs


def with_axes(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with one column per grid axis (`train.<axis>`, `sample.<axis>`) and a `run`
    position, so metrics can be plotted against any axis. Each distinct cell's text is parsed
    once (a million rows share a few thousand cells)."""
    rows = rows.copy()
    for prefix, col in (("train.", "cell_json"), ("sample.", "setting_json")):
        codes, texts = pd.factorize(rows[col])
        parsed = [json.loads(t) if isinstance(t, str) and t else {} for t in texts]
        for axis in sorted({k for d in parsed for k in d}):  # a list value (betas) as its text
            shown = np.array([json.dumps(d.get(axis)) if isinstance(d.get(axis), (list, dict))
                              else d.get(axis) for d in parsed] + [None], dtype=object)
            rows[prefix + axis] = pd.Series(shown[codes], index=rows.index).infer_objects()
    codes, texts = pd.factorize(rows["sample_json"])
    names = np.array([json.loads(t).get("setting", "") if isinstance(t, str) else ""
                      for t in texts] + [""], dtype=object)
    rows["setting"] = names[codes]
    return rows


def axes_of(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c.startswith(("train.", "sample."))]


def summarize(rows: pd.DataFrame, keys: list[str], *, alpha: float = 0.05) -> pd.DataFrame:
    """Mean, the half-width `ci` of its (1 - alpha) Student-t interval over seeds
    (`genbench.harness.verdicts.stats.mean_interval`, for every group at once) and seed count of every
    metric per group of `keys`. NaN values are left out, as pandas' mean and count leave them
    out; an infinite one makes the mean infinite, with no interval around it."""
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "metric", "mean", "ci", "n", "higher_is_better"])
    rows = rows.assign(_inf=np.isinf(rows.value.to_numpy(dtype=float)))
    grouped = rows.groupby([*keys, "metric"], dropna=False, sort=False)
    out = grouped.value.agg(mean="mean", n="count", sd="std").reset_index()
    inf = grouped._inf.any().to_numpy()
    ci = mean_interval(out.n.to_numpy(dtype=float), out.sd.to_numpy(dtype=float), alpha=alpha)
    out["ci"] = np.where(inf, np.nan, ci)
    out["higher_is_better"] = grouped.higher_is_better.first().to_numpy()
    return out.drop(columns="sd")


def moves(rows: pd.DataFrame, axis: str) -> bool:
    """Whether grid axis `axis` moves the metric of `rows` beyond the noise between seeds: on
    some line (a run, an arm and the other axes' values held), the 95 % intervals of the
    highest and the lowest mean along the axis do not overlap; on a line of single seeds (no
    interval), any difference but rounding's. A constant (`nfe` against `temperature`) and
    timing jitter within the seeds' spread do not move."""
    d = rows[rows[axis].notna() & rows.value.notna()]
    if d.empty:
        return False
    others = [c for c in d.columns if c.startswith(("train.", "sample.")) and c != axis
              and d[c].notna().any()]
    line = ["run", "arm", *others]
    s = summarize(d, [*line, axis])
    s = s.assign(_line=s.groupby(line, dropna=False, sort=False).ngroup(),
                 mean=s["mean"].astype(float), ci=s.ci.astype(float))
    s = s.sort_values(["_line", "mean"], kind="stable")
    lo = s.drop_duplicates("_line", keep="first").set_index("_line")  # (NaN kept, as
    hi = s.drop_duplicates("_line", keep="last").set_index("_line")   # first() would not)
    size = s.groupby("_line").size()
    floor = 1e-9 * np.maximum(1.0, np.maximum(lo["mean"].abs(), hi["mean"].abs()))
    noise = (lo.ci + hi.ci).where(lo.ci.notna() & hi.ci.notna(), floor)
    return bool(((size > 1) & (hi["mean"] - lo["mean"] > noise)).any())


def _other_quality(rows: pd.DataFrame) -> list[str]:
    """Quality metrics in the rows beyond MAIN_QUALITY (registered by plugins, or for points
    such as `w1_exact`), known by their feature-extractor column."""
    measured = rows.loc[rows.feature_extractor.notna(), "metric"].unique()
    return sorted(m for m in measured if m not in MAIN_QUALITY)


def main_metrics(rows: pd.DataFrame) -> list[str]:
    """The metrics summary tables and per-axis figures show, in order."""
    present = set(rows.metric.unique())
    return ([m for m in MAIN_QUALITY if m in present] + _other_quality(rows)
            + [m for m in MAIN_COST if m in present])


def quality_metrics(rows: pd.DataFrame) -> list[str]:
    """The quality metrics quality-against-cost figures use: the first present and finite of
    QUALITY_PREFERENCE, else every other quality metric present (e.g. W1 and KS for points)."""
    present = set(rows[rows.value.notna()].metric.unique())
    first = next((m for m in QUALITY_PREFERENCE if m in present), None)
    return [first] if first else [m for m in _other_quality(rows) if m in present]


def pareto(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats in both cost (lower) and quality: no other
    point is at most as costly and at least as good, unless it is the same point. One sort
    and a sweep (O(n log n)); NaN neither beats nor is beaten."""
    if not points:
        return []
    c, q = (np.asarray(v, dtype=float) for v in zip(*points))
    q = -q if higher_is_better else q  # lower is better from here on
    ok = ~(np.isnan(c) | np.isnan(q))
    idx = np.flatnonzero(ok)
    order = idx[np.lexsort((q[idx], c[idx]))]  # by cost, then quality
    cs, qs = c[order], q[order]
    start = np.r_[True, cs[1:] != cs[:-1]]  # each run of equal cost
    group = np.cumsum(start) - 1
    group_min = np.minimum.reduceat(qs, np.flatnonzero(start))  # its best quality
    before = np.r_[np.inf, np.minimum.accumulate(group_min)[:-1]]  # best of every cheaper cost
    beaten = (before[group] <= qs) | (group_min[group] < qs)
    keep = np.zeros(len(c), dtype=bool)
    keep[order[~beaten]] = True
    keep[~ok] = True
    return np.flatnonzero(keep).tolist()

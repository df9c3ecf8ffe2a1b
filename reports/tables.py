"""From run directories to the tables a report shows: every row and curve, the plan each run
followed, what is still missing, and per-cell summaries with a 95 % interval over seeds
(Student's t on the mean: seeds are few and their metrics roughly normal; Go's benchstat
reports medians with a non-parametric interval instead, which needs more samples than an
ablation's seeds).

Pure pandas: no torch, no methods. The only genbench import is `genbench.harness.results`, the schema.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from genbench.harness.config import canonical_json
from genbench.harness.results import STATUS_METRICS, read_current, read_curves, read_plan

# the metrics a summary table leads with, when present: these quality and task metrics, then
# any other quality metric in the rows (a row with a feature extractor), then these costs
MAIN_QUALITY = ("fid_domain", "kid_domain", "fid_inception", "kid_inception", "precision_domain",
                "recall_domain", "class_match", "mse_hidden", "psnr_hidden")
MAIN_COST = ("nfe", "sample_s_per_image", "train_s", "final_loss")
QUALITY_PREFERENCE = ("fid_domain", "fid_inception", "kid_domain", "kid_inception", "mse_hidden")


@dataclass
class Run:
    """One output directory: its rows, curves and latest plan."""

    index: int  # position on the command line: several runs give one comparison page
    path: Path
    rows: pd.DataFrame
    curves: pd.DataFrame
    plan: dict  # study.json ({} when absent)
    warnings: list[str] = field(default_factory=list)  # unreadable files, rows left out

    @property
    def label(self) -> str:
        """How the page names this run: the study and scale, and which commit wrote it."""
        sha = sorted({s[:10] for s in self.rows.git_sha.dropna()}) if len(self.rows) else []
        study = self.plan.get("study") or (self.rows.study.iloc[0] if len(self.rows) else "?")
        scale = self.plan.get("scale", "")
        return f"{study} [{scale}] @ {', '.join(sha) or 'no rows yet'}"

    @property
    def location(self) -> str:
        """Where the run lives: its URI for a local mirror of one, else its directory."""
        from genbench.harness.rundir import RunDir

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
        done_fits = set(self.rows[self.rows.setting_json.isna() & ~status].trial_id)
        ended = set(self.rows[self.rows.metric == "diverged_at_step"].trial_id)
        done_settings = set(zip(self.rows.trial_id, self.rows.setting_json.fillna("")))
        for t in self.plan.get("trials", []):
            if t["trial_id"] in ended:  # diverged: final, listed under failures
                continue
            if t["trial_id"] not in done_fits:
                out.append(f"fit {t['trial_id']} ({t.get('arm', '')} seed {t['seed']} {t['cell']})")
                continue
            for s in self.plan.get("samples", []):
                if s.get("arm", t.get("arm")) != t.get("arm"):
                    continue
                if (t["trial_id"], canonical_json(s["cell"])) not in done_settings:
                    out.append(f"setting {s['key']} of {t['trial_id']}")
        return out

    def failures(self) -> list[str]:
        """Trials of the latest plan that diverged or whose last attempt failed, with why."""
        ids = {t["trial_id"] for t in self.plan.get("trials", [])}
        rows = self.rows[self.rows.metric.isin(STATUS_METRICS) & self.rows.trial_id.isin(ids)]
        return [f"{r.trial_id} ({r.arm} seed {r.seed}): "
                + (f"diverged at step {int(r.value)}" if r.metric == "diverged_at_step"
                   else f"setting {r.setting}: {r.note}" if r.metric == "diverged"
                   else f"failed after {int(r.value)} attempts: {r.note}")
                for r in rows.itertuples()]

    def study_ref(self) -> str:
        """How to name this run's study on the command line (a name or a file path)."""
        for ref in self.plan.get("imports", []):
            if ref.startswith("path:"):
                return ref.removeprefix("path:")
            for shipped in ("genbench.studies.", "studies."):  # (the second: runs before 0.1's
                if ref.startswith(shipped):                      # one namespace)
                    return ref.removeprefix(shipped)
        return self.plan.get("study", "STUDY")


def load_runs(paths: list[Path]) -> list[Run]:
    runs = []
    for i, p in enumerate(paths):
        p = Path(p)
        warnings: list[str] = []
        plan = read_plan(p)
        rows, gone = read_current(p, plan, warn=warnings.append)
        curves = read_curves(p)
        runs.append(Run(i, p, with_axes(rows), curves[~curves.trial_id.isin(gone)], plan,
                        warnings))
    return runs


def with_axes(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows with one column per grid axis (`train.<axis>`, `sample.<axis>`) and a `run`
    position, so metrics can be plotted against any axis."""
    rows = rows.copy()
    for prefix, col in (("train.", "cell_json"), ("sample.", "setting_json")):
        parsed = rows[col].map(lambda s: json.loads(s) if isinstance(s, str) and s else {})
        for axis in sorted({k for d in parsed for k in d}):  # a list value (betas) as its text
            rows[prefix + axis] = parsed.map(
                lambda d, a=axis: json.dumps(d.get(a)) if isinstance(d.get(a), (list, dict)) else d.get(a))
    rows["setting"] = rows["sample_json"].map(
        lambda s: json.loads(s).get("setting", "") if isinstance(s, str) else "")
    return rows


def axes_of(rows: pd.DataFrame) -> list[str]:
    return [c for c in rows.columns if c.startswith(("train.", "sample."))]


def ci95(values: np.ndarray) -> float:
    """Half-width of the 95 % Student-t interval of the mean; NaN for fewer than two values or
    an infinite one. NaN values are left out, as pandas' mean and count leave them out; an
    infinite one makes the mean infinite, with no interval around it."""
    values = values[~np.isnan(values)]
    if len(values) < 2 or np.isinf(values).any():
        return float("nan")
    from scipy import stats

    return float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values)))


def summarize(rows: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean, 95 % interval and seed count of every metric per group of `keys`."""
    if rows.empty:
        return pd.DataFrame(columns=[*keys, "metric", "mean", "ci", "n", "higher_is_better"])
    grouped = rows.groupby([*keys, "metric"], dropna=False, sort=False)
    out = grouped.value.agg(mean="mean", n="count").reset_index()
    out["ci"] = grouped.value.apply(lambda v: ci95(v.to_numpy(dtype=float))).to_numpy()
    hib = grouped.higher_is_better.first().to_numpy()
    out["higher_is_better"] = hib
    return out


def _other_quality(rows: pd.DataFrame) -> list[str]:
    """Quality metrics in the rows beyond MAIN_QUALITY (registered by plugins, or for points
    such as `w1_exact`), known by their feature-extractor column."""
    measured = rows.loc[rows.feature_extractor.notna(), "metric"].unique()
    return sorted(m for m in measured if m not in MAIN_QUALITY)


def main_metrics(rows: pd.DataFrame) -> list[str]:
    """The metrics summary tables and per-axis figures show, in order."""
    present = set(rows.metric)
    return ([m for m in MAIN_QUALITY if m in present] + _other_quality(rows)
            + [m for m in MAIN_COST if m in present])


def quality_metrics(rows: pd.DataFrame) -> list[str]:
    """The quality metrics quality-against-cost figures use: the first present and finite of
    QUALITY_PREFERENCE, else every other quality metric present (e.g. W1 and KS for points)."""
    present = set(rows[rows.value.notna()].metric)
    first = next((m for m in QUALITY_PREFERENCE if m in present), None)
    return [first] if first else [m for m in _other_quality(rows) if m in present]


def pareto(points: list[tuple[float, float]], higher_is_better: bool) -> list[int]:
    """Indices of the points no other point beats in both cost (lower) and quality."""
    front = []
    for i, (c, q) in enumerate(points):
        beaten = any((c2 <= c and (q2 >= q if higher_is_better else q2 <= q))
                     and (c2, q2) != (c, q) for j, (c2, q2) in enumerate(points) if j != i)
        if not beaten:
            front.append(i)
    return front

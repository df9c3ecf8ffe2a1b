"""The report page: `write_report(runs, dest)` turns one or more run directories into
`dest/index.html` with its figures and images beside it in `dest/img/`, a self-contained page
that opens from disk with no network (after lm-evaluation-harness's `make_table`, kept apart
from the evaluator).

Per study, in order: the claims the study tests and their verdicts (`genbench.harness.verdicts.claims`); what was
asked and the answer in one table (mean ± 95 % interval over
seeds, the best value of each metric marked); each metric against each ablation axis; quality
against cost across arms; training curves; the sample grid of every setting side by side; the
method figures; the command that reruns each cell; and what of the plan is still missing.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from genbench.harness.config import grid_text
from genbench.harness.errors import GenbenchError
from genbench.harness.store.results import REAL_ARM
from genbench.harness.store.files import atomic_write_bytes
from genbench.harness.store.rundir import RunDir, within
from genbench.reports.interactive import SORTABLE, chart, plotly_available, write_plotly_js
from genbench.reports import figures
from genbench.reports.tables import (Run, axes_of, load_runs, main_metrics, moves, quality_metrics,
                                     summarize)

MAX_ROWS = 200  # a huge study's summary and rerun tables show this many rows and say so
MAX_GRID_CELLS = 48  # sample grids shown per run (the first train cells of its plan)

COST_AXES = ("nfe", "sample_s_per_image")
STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;padding:0 1em}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1.5em;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} .l{text-align:left} .best{font-weight:bold;background:#e6f4e6}
table.hold td:first-child,table.hold th:first-child{position:sticky;left:0;z-index:1}
table.hold td:first-child{background:#fff}
img{max-width:100%} figure{display:inline-block;margin:.3em;vertical-align:top}
figure .chart{width:560px;max-width:100%} th{cursor:pointer}
figure img{width:560px} figure.wide{display:block} figure.wide img{width:100%}
figcaption{font-size:12px;color:#555;max-width:300px;overflow-wrap:anywhere}
.grids img{width:180px;image-rendering:pixelated} code{background:#f5f5f5;padding:1px 3px}
.glance{display:flex;flex-wrap:wrap;gap:4px} .glance figure{margin:0}
.glance img{width:264px;image-rendering:pixelated}
.note{color:#8a5a00} .flat{color:#555;font-size:13px}
td.reproduced{background:#e6f4e6;font-weight:bold} td.contradicted{background:#f9e0e0;font-weight:bold}
td.inconclusive{background:#f5f0dc}
"""
# a self-check a browser runs, for tests and for readers: how many images loaded, and how wide
# the page is against its window (a table wider than the window scrolls inside itself)
CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = [...document.images], ok = imgs.filter(i => i.complete && i.naturalWidth > 0);
  document.body.dataset.images = ok.length + '/' + imgs.length;
  document.body.dataset.width = document.documentElement.scrollWidth + '/' + window.innerWidth;
});
</script>"""


HEAD = "<!doctype html><html><head><meta charset='utf-8'><title>genbench report</title>"


def _check_dest(dest: Path) -> None:
    """Refuse, before anything is written, a report directory that is a file or holds anything
    but an earlier genbench report: writing one replaces index.html and img/."""
    if dest.exists() and not dest.is_dir():
        raise GenbenchError(f"{dest} is a file; give the report a directory")
    if not dest.is_dir() or not any(dest.iterdir()):
        return
    try:
        ours = (dest / "index.html").read_text(errors="replace").startswith(HEAD)
    except OSError:
        ours = False
    if not ours:
        raise GenbenchError(f"{dest} holds files that are not a genbench report, and a report "
                            "replaces index.html and img/ there; give a new or empty directory")


def write_report(paths: list[Path], dest: Path | None = None, plans: list | None = None, *,
                 static: bool = False) -> Path:
    """Write the report of the run directories `paths` (one comparison page for several) to
    `dest` (default `paths[0]/report`); return the path of index.html. `plans`: each run's
    latest plan where the caller holds it already (`load_runs`). The charts against each axis
    are interactive where plotly is installed (`genbench.reports.interactive`), each with its
    PNG beside it; `static` draws the PNGs alone."""
    dest = Path(dest) if dest else RunDir(paths[0]).report
    _check_dest(dest)
    runs = load_runs([Path(p) for p in paths], plans)
    img = dest / "img"
    try:
        if img.is_dir():
            shutil.rmtree(img)  # figures of an earlier report (`_check_dest` made sure)
        img.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise GenbenchError(f"cannot write a report to {dest}: {err.strerror or err}") from None
    rows = pd.concat([r.rows.assign(run=r.index) for r in runs], ignore_index=True)
    curves = pd.concat([r.curves.assign(run=r.index) for r in runs], ignore_index=True)
    colors = figures.palette(_arm_order(runs, rows))
    multi = len(runs) > 1
    interactive = not static and plotly_available()
    script = f"<script src='{write_plotly_js(dest)}'></script>" if interactive else ""
    parts = [f"<h1>genbench report: {html.escape(', '.join(sorted({r.label.split(' @')[0] for r in runs})))}</h1>"]
    parts.append(_claims(runs))
    parts.append(_glance(runs, img, dest))
    parts.append(_runs_table(runs))
    if rows.empty:
        parts.append("<p>No results yet.</p>")
    else:
        parts.append(_summary(rows, runs))
        parts.append(_axes_section(rows, colors, img, multi, interactive))
        parts.append(_cost_section(rows, colors, img, multi))
        fits = rows[["trial_id", "arm"]].drop_duplicates("trial_id")
        arms_of = dict(zip(fits.trial_id.tolist(), fits.arm.tolist()))
        paths = figures.training_curves(curves, arms_of, colors, img)
        parts.append("<h2>Training curves</h2>" + ("".join(
            _fig(p, dest, "every trial's curve, one colour per arm", wide=True) for p in paths)
            or "<p>No curves.</p>"))
    parts.append(_grids(runs, img, dest))
    parts.append(_rerun(runs))
    parts.append(_missing(runs))
    page = (f"{HEAD}{script}<style>{STYLE}</style></head><body>{''.join(parts)}{CHECK}{SORTABLE}"
            "</body></html>")
    atomic_write_bytes(dest / "index.html", page.encode())
    return dest / "index.html"


def _fig(path: Path, dest: Path, caption: str, wide: bool = False) -> str:
    rel = path.relative_to(dest).as_posix()
    return (f"<figure{' class=wide' if wide else ''}><img src='{html.escape(rel)}' "
            f"alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _claims(runs: list[Run]) -> str:
    """The claims each run's study tests, with their verdicts: first on the page, since they are
    the question the study asks. A run that `--until-decided` decided shows the verdicts of
    its recorded looks, as `genbench claims` does."""
    from genbench.harness.verdicts.judge import judge
    from genbench.harness.verdicts.sequential import Design, Looks

    out = ["<h2>Claims</h2>"]
    for r in runs:
        try:
            claims = r.plan.stored_claims() if r.plan else []
            looks = Looks.read(r.path) if claims else None
            results = judge(claims, r.plan, r.rows, looks=looks) if claims else []
        except GenbenchError as err:
            out.append(f"<p class='note'>run {r.index}: its claims cannot be tested: "
                       f"{html.escape(str(err))}</p>")
            continue
        if not results:
            continue
        design = looks.design if looks else Design()
        taken = f", {len(looks.looks)} looks taken" if looks else ""
        out.append(f"<p>run {r.index}: each claim is tested on the seeds both sides share "
                   "(paired t; Welch where they share none; FID, KID, times and memory as "
                   f"per-seed log ratios, shown as % change): {html.escape(design.text())}{taken}. "
                   "p must reach the level shown; the interval is the effect's "
                   f"{1 - design.alpha:.0%} interval. <code>genbench claims</code> prints the "
                   "same.</p>"
                   "<table><tr><th class='l'>claim</th><th class='l'>source</th><th>verdict</th>"
                   f"<th>effect</th><th>{1 - design.alpha:.0%} interval</th><th>p / level</th>"
                   "<th>seeds</th><th class='l'>test</th><th class='l'>what would decide it / note"
                   "</th></tr>")
        for c in results:
            if c.scale == "log":
                effect = f"{c.change:+.0%}" if pd.notna(c.change) else "-"
                ci = (f"[{c.ci_change[0]:+.0%}, {c.ci_change[1]:+.0%}]" if pd.notna(c.ci[0])
                      else "-")
            else:
                rel = f" ({c.change:+.0%})" if pd.notna(c.change) else ""
                effect = f"{c.effect:+.3g}{rel}" if pd.notna(c.effect) else "-"
                ci = f"[{c.ci[0]:+.3g}, {c.ci[1]:+.3g}]" if pd.notna(c.ci[0]) else "-"
            p = f"{c.p:.2g} / {c.level:.2g}" if pd.notna(c.p) else "-"
            test = c.test + (" (log ratio)" if c.scale == "log" and c.test != "none" else "")
            out.append(f"<tr><td class='l'>{html.escape(c.claim)}</td>"
                       f"<td class='l'>{html.escape(c.source or '-')}</td>"
                       f"<td class='{c.verdict}'>{c.verdict}</td><td>{effect}</td><td>{ci}</td>"
                       f"<td>{p}</td><td>{c.seeds}</td><td class='l'>{html.escape(test)}</td>"
                       f"<td class='l'>{html.escape(c.why or '-')}</td></tr>")
        out.append("</table>")
    if len(out) == 1:
        return out[0] + ("<p>No claims: a study states the results it tests with "
                         "<code>Study(claims=...)</code>, or a run adds them with "
                         "<code>--claim</code>.</p>")
    return "".join(out)


def _runs_table(runs: list[Run]) -> str:
    out = ["<h2>Runs</h2><table><tr><th>run</th><th class='l'>study</th><th class='l'>directory"
           "</th><th>rows</th><th class='l'>device</th><th class='l'>data</th></tr>"]
    for r in runs:
        devices = ", ".join(sorted(r.rows.device.dropna().unique())) or "-"
        data = ", ".join(sorted(r.rows.dataset.dropna().unique())) or r.planned("data", "-")
        out.append(f"<tr><td>{r.index}</td><td class='l'>{html.escape(r.label)}</td>"
                   f"<td class='l'><code>{html.escape(r.location)}</code></td><td>{len(r.rows)}</td>"
                   f"<td class='l'>{html.escape(devices)}</td><td class='l'>{html.escape(data)}</td></tr>")
    out.append("</table>")
    if len(runs) > 1:
        out.append(_differences(runs))
    for r in runs:
        for w in r.warnings:
            out.append(f"<p class='note'>{html.escape(w)}</p>")
    return "".join(out)


def _differences(runs: list[Run]) -> str:
    """What differs between the runs of a comparison page, as genbench recorded it: the
    commit, the study and scale, the --set overrides and --arm, the data, and each arm's base
    config (the fields outside its grid), field by field."""
    def each(values: list[str]) -> str:
        return "; ".join(f"run {r.index}: {v}" for r, v in zip(runs, values))

    lines = []
    facts = {
        "commit": [", ".join(r.commits) or "-" for r in runs],
        "study": [f"{r.planned('study')} [{r.planned('scale')}]" for r in runs],
        "overrides": [_set_args(r.planned("sets", ()))
                      + "".join(f" --arm {a}" for a in r.planned("only_arms", ())) or "none"
                      for r in runs],
        "data": [f"{r.planned('data')} at {r.planned('resolution')} px, "
                 f"{r.planned('n_samples')} samples per setting" for r in runs],
    }
    for name, values in facts.items():
        if len(set(values)) > 1:
            lines.append(f"{name}: {each(values)}")
    configs: dict[str, list[dict]] = {}
    for pos, r in enumerate(runs):
        first: dict[str, dict] = {}
        for t in r.trials:
            first.setdefault(t.arm or t.method or "?",
                             {k: v for k, v in t.config.items() if k not in t.cell})
        for arm, config in first.items():
            configs.setdefault(arm, [None] * len(runs))[pos] = config
    for arm, per_run in configs.items():
        present = [c for c in per_run if c is not None]
        if len(present) < 2:
            continue
        fields = sorted({k for c in present for k in c})
        for k in fields:
            values = [json.dumps(c.get(k)) if c is not None else "-" for c in per_run]
            if len({v for v, c in zip(values, per_run) if c is not None}) > 1:
                lines.append(f"{arm} config {k}: {each(values)}")
    if not lines:
        return ("<p>What differs: nothing genbench records but the rows (the same commit, "
                "study, overrides, data and configs).</p>")
    return ("<p>What differs between the runs:</p><ul>"
            + "".join(f"<li>{html.escape(x)}</li>" for x in lines) + "</ul>")


def _arm_order(runs: list[Run], rows: pd.DataFrame) -> list[str]:
    """The arms in the order their studies declare them (the plans' trials), then any other
    arm of the rows by name: every page of a study gives an arm the same place and colour."""
    order = [t.arm for r in runs for t in r.trials if t.arm]
    extra = sorted(set(rows.arm.dropna().unique().tolist()) - set(order)) if len(rows) else []
    return list(dict.fromkeys(order + extra))


def _fmt(mean: float, ci: float) -> str:
    """A mean and its interval to the same decimal place, the interval's two significant
    figures deciding it ("231 ± 230", "0.0123 ± 0.0045"); four significant figures without
    an interval; scientific notation only past 10^6 or below 10^-4."""
    if pd.isna(mean):
        return "n/a"
    if not np.isfinite(mean):
        return str(mean)
    if pd.isna(ci) or not np.isfinite(ci):
        return f"{mean:.4g}"
    if ci == 0:
        return f"{mean:.4g} ± 0"
    big = max(abs(mean), ci)
    if big >= 1e6 or big < 1e-4:
        return f"{mean:.3g} ± {ci:.2g}"
    decimals = min(8, max(0, 1 - int(np.floor(np.log10(ci)))))
    return f"{mean:.{decimals}f} ± {ci:.{decimals}f}"


def _summary(rows: pd.DataFrame, runs: list[Run]) -> str:
    """Every cell and setting with its main metrics, mean ± 95 % interval over seeds; the best
    value of each metric (in its good direction) marked."""
    settings = rows[rows.setting_json.notna()]
    fits = rows[rows.setting_json.isna()]
    s = summarize(settings, ["run", "arm", "cell_json", "setting_json"])
    f = summarize(fits, ["run", "arm", "cell_json"])
    stats = dict(zip(zip(s.run, s.arm, s.cell_json, s.setting_json, s.metric),
                     zip(s["mean"], s.ci, s.n)))
    stats.update(zip(zip(f.run, f.arm, f.cell_json, [None] * len(f), f.metric),
                     zip(f["mean"], f.ci, f.n)))
    metrics = main_metrics(rows)
    measured = set(s.dropna(subset=["mean"]).metric) | set(f.dropna(subset=["mean"]).metric)
    blank = [m for m in metrics if m not in measured]  # all n/a: a column of nothing
    metrics = [m for m in metrics if m in measured]
    best, higher_of = {}, {}
    quality = set(rows.loc[rows.feature_extractor.notna(), "metric"].unique())  # (measured on samples)
    for m in metrics:  # (the real-data floor is no contender)
        d = pd.concat([s[s.metric == m], f[f.metric == m]]).dropna(subset=["mean"])
        d = d[d.arm != REAL_ARM]
        # a best only where the values differ (a constant, `1 ± 0` everywhere, has none)
        if d["mean"].nunique() > 1 and d.higher_is_better.notna().any():
            higher_of[m] = bool(d.higher_is_better.dropna().iloc[0])
            best[m] = d["mean"].max() if higher_of[m] else d["mean"].min()
    out = ["<h2>Summary</h2><p>Mean ± 95 % interval over seeds; bold: the best value of each "
           "metric in its good direction. Training metrics belong to the fit and repeat on each "
           "of its settings. The row <code>real</code> is the real-data floor: held-out real "
           "images measured as if they were samples, as many as each setting draws."
           + (f" Not measured in any row, so not shown: {', '.join(blank)}." if blank else "")
           + "</p><table class='hold sortable'><tr><th class='l'>arm</th><th>run</th><th class='l'>"
           "train cell</th><th class='l'>sample setting</th><th>seeds</th>"]
    out += [f"<th>{html.escape(m)}</th>" for m in metrics] + ["</tr>"]
    seeds: dict[tuple, float] = {}  # the most seeds behind any metric of the row
    for k, v in stats.items():
        seeds[k[:4]] = max(seeds.get(k[:4], 0), v[2])
    groups = settings[["run", "arm", "cell_json", "setting_json"]].drop_duplicates()
    floor = groups[groups.arm == REAL_ARM]  # (the floor first, always, never ranked)
    groups = groups[groups.arm != REAL_ARM]
    left_out = 0
    if len(groups) > MAX_ROWS:  # a huge study: its best rows by the first main metric
        first = next((m for m in metrics if m in best and (s.metric == m).any()), None)
        if first is not None:
            order = s[(s.metric == first) & (s.arm != REAL_ARM)].sort_values(
                "mean", ascending=not higher_of[first], kind="stable", na_position="last")
            groups = order[["run", "arm", "cell_json", "setting_json"]].drop_duplicates()
        left_out = len(groups) - MAX_ROWS
        groups = groups.head(MAX_ROWS)
        out[0] = out[0].replace("</p>", f" The {MAX_ROWS} rows best by {first or 'plan order'} "
                                f"of {MAX_ROWS + left_out} are shown; every value is in results/ "
                                "(<code>genbench.load</code>).</p>", 1)
    for run, arm, cell, setting in pd.concat([floor, groups]).itertuples(index=False):
        n = seeds.get((run, arm, cell, setting), 0)
        cells = [f"<td class='l'>{html.escape(str(arm))}</td><td>{run}</td>"
                 f"<td class='l'>{html.escape(_axes_text(cell))}</td>"
                 f"<td class='l'>{html.escape(_axes_text(setting))}</td><td>{int(n)}</td>"]
        for m in metrics:
            if arm == REAL_ARM and m not in quality:  # (held-out data has no cost)
                cells.append("<td>-</td>")
                continue
            mean, ci, _ = stats.get((run, arm, cell, setting, m),
                                    stats.get((run, arm, cell, None, m), (float("nan"),) * 3))
            cls = " class='best'" if m in best and pd.notna(mean) and mean == best[m] else ""
            cells.append(f"<td{cls}>{_fmt(mean, ci)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


def _axes_text(text) -> str:
    return grid_text(text) or "-"


def floor_of(rows: pd.DataFrame, metric: str, multi: bool) -> list[tuple[str, float]]:
    """The real-data floor of `metric` on each run: (legend text, mean over seeds)."""
    real = rows[(rows.arm == REAL_ARM) & (rows.metric == metric) & rows.value.notna()]
    out = []
    for run, g in real.groupby("run", sort=True):
        n = int(g.n_samples.max()) if g.n_samples.notna().any() else 0
        out.append((f"{'run ' + str(run) + ': ' if multi else ''}real data ({n} held-out)",
                    float(g.value.mean())))
    return out


def _axes_section(rows: pd.DataFrame, colors, img: Path, multi: bool, interactive: bool = False) -> str:
    out = ["<h2>Metrics against each ablation axis</h2>"]
    real = rows[rows.arm == REAL_ARM]
    rows = rows[rows.arm != REAL_ARM]  # (the floor has no axis: a dashed line on each chart)
    metrics = main_metrics(rows)
    axes = [a for a in axes_of(rows)
            if pd.Series(rows[a].dropna().unique()).astype(str).nunique() > 1]
    if not axes:
        return out[0] + "<p>The study has no axis with more than one value.</p>"
    rows = rows[["run", "arm", "seed", "metric", "value", "higher_is_better", *axes_of(rows)]]
    of_metric = {m: g for m, g in rows.groupby("metric", sort=False) if m in metrics}
    floors = {m: floor_of(real, m, multi) for m in metrics}
    for axis in axes:
        figs, flat = [], []
        for m in metrics:
            of_m = of_metric.get(m, rows.iloc[:0])
            if not of_m[axis].notna().any():
                continue
            if not moves(of_m, axis):  # a chart of a constant or of noise shows nothing
                flat.append(m)
                continue
            figure: dict | None = {} if interactive else None
            path = figures.metric_vs_axis(of_m, m, axis, colors,
                                          within(img, f"{m}_vs_{axis}.png"), multi, floors[m],
                                          figure=figure)
            caption = (f"{m} against {axis}: mean over seeds, 95 % interval (none with one "
                       "seed), seeds as points")
            if path and figure:
                rel = html.escape(path.relative_to(img.parent).as_posix())
                div = re.sub(r"\W", "_", f"c_{axis}_{m}")
                figs.append(f"<figure>{chart(div, figure)}"
                            f"<figcaption>{html.escape(caption)}; hover for values, click the "
                            f"legend to hide a line (<a href='{rel}'>PNG</a>)</figcaption></figure>")
            elif path:
                figs.append(_fig(path, img.parent, caption))
        note = (f"<p class='flat'>Not moved by {html.escape(axis)} beyond the noise between seeds "
                f"(no chart): {html.escape(', '.join(flat))}.</p>" if flat else "")
        out.append(f"<h3>{html.escape(axis)}</h3>" + "".join(figs) + note)
    return "".join(out)


def _cost_section(rows: pd.DataFrame, colors, img: Path, multi: bool) -> str:
    real = rows[rows.arm == REAL_ARM]
    rows = rows[rows.arm != REAL_ARM]  # (the floor costs nothing: a dashed line)
    qualities = quality_metrics(rows)
    rows = rows[["run", "arm", "cell_key", "metric", "value", "higher_is_better", "setting_json",
                 "cell_json"]]
    out = ["<h2>Quality against cost</h2>"]
    if not qualities:
        return out[0] + "<p>No quality metric was measured.</p>"
    for quality in qualities:
        for cost in COST_AXES:
            path = figures.quality_vs_cost(rows, quality, cost, colors,
                                           within(img, f"{quality}_vs_{cost}.png"), multi,
                                           floor_of(real, quality, multi))
            if path:
                out.append(_fig(path, img.parent, f"{quality} against {cost} for every arm, cell "
                                "and setting; circled and dashed: the Pareto front"))
    return "".join(out)


def _grids(runs: list[Run], img: Path, dest: Path) -> str:
    """Sample grids of every setting side by side (first seed of each cell), and the figures
    the methods saved, copied next to the page so it stands alone."""
    out = ["<h2>Samples</h2>"]
    for r in runs:
        real = RunDir(r.path).real_grid
        if real.is_file():  # what the samples are measured against, first
            split = r.planned("ref_split", "reference")
            caption = f"real images ({split} split) of run {r.index}"
            out.append("<div class='grids'>" + _copy(real, within(img, f"run{r.index}", "real.png"),
                                                     dest, caption) + "</div>")
        firsts = {}
        for t in r.trials:
            firsts.setdefault((t.arm, t.config_hash or json.dumps(t.cell, sort_keys=True)), t)
        if len(firsts) > MAX_GRID_CELLS:  # a huge study: the first cells, and the rest counted
            out.append(f"<p>Run {r.index}: the grids of the first {MAX_GRID_CELLS} of "
                       f"{len(firsts)} train cells; the others are in {html.escape(str(r.path))}"
                       "/samples/.</p>")
        for t in list(firsts.values())[:MAX_GRID_CELLS]:
            arm, cell = t.arm, json.dumps(t.cell, sort_keys=True)
            # names from study.json: made safe, so neither what is read nor what is written
            # can lie outside the run or the report (`genbench.harness.store.rundir.within`)
            tdir = within(RunDir(r.path).samples, t.trial_id)
            files = [within(tdir, f"{s.key}.png") for s in r.samples if s.arm in (None, arm)]
            files = ([tdir / "observation.png"] if (tdir / "observation.png").is_file() else []) + files
            figs = [_copy(p, within(img, f"run{r.index}", t.trial_id, p.name), dest,
                          p.stem.replace("_", " ")) for p in files if p.is_file()]
            if figs:
                out.append(f"<h3>run {r.index}, {html.escape(arm)}, {html.escape(_axes_text(cell))}, "
                           f"seed {t.seed}</h3><div class='grids'>{''.join(figs)}</div>")
            fdir = within(RunDir(r.path).figures, t.trial_id)
            method_figs = [_copy(p, within(img, f"run{r.index}", t.trial_id, f"fig_{p.name}"),
                                 dest, p.stem.replace("_", " ")) for p in sorted(fdir.glob("*.png"))]
            if method_figs:
                out.append(f"<h4>method figures</h4>{''.join(method_figs)}")
    return "".join(out) if len(out) > 1 else out[0] + "<p>No sample grids yet.</p>"


def _glance(runs: list[Run], img: Path, dest: Path) -> str:
    """One row of sample grids right under the verdicts: per run, the first seed's grid of every
    arm and setting side by side (the same initial noise in each), the real-data floor's held-out
    images first, large enough to judge."""
    out = []
    for r in runs:
        trials = r.trials
        if not trials:
            continue
        seed = min(t.seed for t in trials)
        figs = []
        for t in sorted((t for t in trials if t.seed == seed),
                        key=lambda t: t.arm != REAL_ARM):  # (the real images first)
            arm = t.arm
            tdir = within(RunDir(r.path).samples, t.trial_id)
            for setting in r.samples:
                src = within(tdir, f"{setting.key}.png")
                if setting.arm not in (None, arm) or not src.is_file():
                    continue
                label = "real data (held-out)" if arm == REAL_ARM else ", ".join(filter(None, (
                    arm, grid_text(t.cell, base=""), grid_text(setting.cell, base=""))))
                figs.append(_copy(src, within(img, f"run{r.index}", "glance", t.trial_id,
                                              src.name), dest, label))
        if figs:
            head = f"run {r.index}, " if len(runs) > 1 else ""
            out.append(f"<p>{head}seed {seed}: the same initial noise in every setting</p>"
                       f"<div class='glance'>{''.join(figs)}</div>")
    return ("<h2>Samples at a glance</h2>" + "".join(out)) if out else ""


def _copy(src: Path, dst: Path, dest: Path, caption: str) -> str:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return _fig(dst, dest, caption)


def _rerun(runs: list[Run]) -> str:
    """The command that reruns each cell exactly, into a fresh directory: the run's own
    overrides (study.json keeps them), the cell's grid values and seeds pinned with --set, and
    in an arms study its arm alone (--arm; the trial ids are the whole study's)."""
    out = ["<h2>Rerun a cell</h2><table><tr><th>run</th><th class='l'>arm</th>"
           "<th class='l'>cell</th><th class='l'>command</th></tr>"]
    for r in runs:
        trials = [t for t in r.trials if t.arm != REAL_ARM]  # (no cell)
        multi_arm = len({t.arm for t in trials}) > 1
        cells: dict[tuple, tuple] = {}  # (arm, cell) -> (a trial, its seeds)
        for t in trials:
            key = (t.arm, json.dumps(t.cell, sort_keys=True))
            cells.setdefault(key, (t, []))[1].append(t.seed)
        shown = list(cells.items())[:MAX_ROWS]
        overrides = [(k, v) for k, v in r.planned("sets", ()) if k != "seeds"]
        for key, (t, seeds) in shown:
            prefix = f"{t.arm}." if multi_arm else ""
            seeds = sorted(seeds)
            own = _set_args((k, v) for k, v in overrides
                            if k.rpartition(".")[2] not in t.cell)  # (the cell's value wins)
            sets = _set_args((prefix + k, v) for k, v in t.cell.items())
            arm = f"--arm {t.arm}" if multi_arm else ""
            cmd = " ".join(f"genbench run {r.study_ref()} --scale {r.planned('scale', 'smoke')} "
                           f"{arm} {own} {sets} --set seeds={_cli(seeds)} "
                           f"--out {r.rerun_location()}".split())
            out.append(f"<tr><td>{r.index}</td><td class='l'>{html.escape(str(t.arm))}</td>"
                       f"<td class='l'>{html.escape(_axes_text(key[1]))}</td>"
                       f"<td class='l'><code>{html.escape(cmd)}</code></td></tr>")
        if len(cells) > len(shown):
            out.append(f"<tr><td>{r.index}</td><td class='l' colspan='3'>... and "
                       f"{len(cells) - len(shown)} more cells: their commands take the same form"
                       "</td></tr>")
    return "".join(out) + "</table>"


def _set_args(pairs) -> str:
    """(key, value) pairs as the command line's `--set KEY=VALUE` arguments."""
    return " ".join(f"--set {k}={_cli(v)}" for k, v in pairs)


def _cli(value) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_cli(v) for v in value) + "]"
    return str(value)


def _missing(runs: list[Run]) -> str:
    out = ["<h2>Still to run</h2>"]
    for r in runs:
        if not r.plan:  # nothing says what the run should hold: never "done"
            out.append(f"<p class='note'>run {r.index}: its plan (study.json) is missing or "
                       "unreadable, so what is still to run is unknown; rerunning the study's "
                       "command writes it again.</p>")
            continue
        failures = r.failures()
        if failures:
            out.append(f"<p class='note'>run {r.index}: {len(failures)} failed or diverged "
                       "(a failed trial runs again on the next run; its traceback is under "
                       "errors/):</p><ul>" +
                       "".join(f"<li>{html.escape(f)}</li>" for f in failures) + "</ul>")
        missing = r.missing()
        if missing:
            out.append(f"<p class='note'>run {r.index}: {len(missing)} missing (rerun the same "
                       "command to resume):</p><ul>" +
                       "".join(f"<li>{html.escape(m)}</li>" for m in missing) + "</ul>")
        else:
            out.append(f"<p>run {r.index}: everything in its plan is done.</p>")
    return "".join(out)

"""The history page of `genbench history --page DIR`: the table of changes first (sortable),
then one small chart per point (small multiples): each run's level with its seed interval
shaded, the change points marked and labelled with their commit. Interactive where plotly is
installed (`pip install genbench[pages]`): values on hover, series that toggle, zoom; plotly.js
is written beside the page (DIR/plotly.min.js), so the page works offline from a file:// URL
and nothing is fetched. `static=True` (or no plotly) draws PNGs inlined into the one HTML file
instead, which can be mailed.

Points that changed are all drawn; of the others, the first `MAX_QUIET` (a history of 10,000
points would otherwise be a wall of charts: the table and `--json` hold every one).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from genbench.reports.interactive import SORTABLE, chart, plotly_available, write_plotly_js

MAX_QUIET = 12  # unchanged points drawn after every changed one
COLS = 3


def _chart(series, changes) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(series.mean))
    fig, ax = plt.subplots(figsize=(4.2, 2.6), dpi=100)
    mean, lo, hi = (np.array(v, dtype=float) for v in (series.mean, series.lo, series.hi))
    ax.fill_between(x, lo, hi, alpha=0.25, color="tab:blue", linewidth=0, label="seed interval")
    ax.plot(x, mean, "o-", color="tab:blue", markersize=3, linewidth=1, label="mean of seeds")
    for c in changes:
        color = "tab:red" if c.verdict == "regression" and not c.acknowledged else \
            "tab:gray" if c.acknowledged else "tab:green"
        ax.axvline(c.run - 0.5, color=color, linestyle="--", linewidth=1)
        ax.annotate(c.commit[:7], (c.run - 0.5, 1.0), xycoords=("data", "axes fraction"),
                    fontsize=7, color=color, ha="left", va="top", rotation=90)
    ax.set_title(f"{series.arm} {series.cell} {series.setting}".strip() + f"\n{series.metric}",
                 fontsize=8)
    ax.set_xlabel("run", fontsize=7)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _figure(series, changes) -> dict:
    """One point's chart as plotly's figure: the interval band, the means, the change lines."""
    import math

    x = list(range(len(series.mean)))
    clean = [[v if v == v and not math.isinf(v) else None for v in a]
             for a in (series.mean, series.lo, series.hi)]
    mean, lo, hi = clean
    band_x = x + x[::-1]
    band_y = hi + lo[::-1]
    data = [{"x": band_x, "y": band_y, "fill": "toself", "mode": "lines", "line": {"width": 0},
             "fillcolor": "rgba(31,119,180,0.2)", "name": "seed interval", "hoverinfo": "skip"},
            {"x": x, "y": mean, "mode": "lines+markers", "name": "mean of seeds",
             "text": [f"n={k}" for k in series.n],
             "hovertemplate": "run %{x}: %{y:.4g} (%{text})<extra></extra>",
             "line": {"color": "rgb(31,119,180)"}}]
    shapes, notes = [], []
    for c in changes:
        color = "gray" if c.acknowledged else "red" if c.verdict == "regression" else "green"
        shapes.append({"type": "line", "x0": c.run - 0.5, "x1": c.run - 0.5, "yref": "paper",
                       "y0": 0, "y1": 1, "line": {"color": color, "dash": "dash"}})
        notes.append({"x": c.run - 0.5, "yref": "paper", "y": 1, "text": c.commit[:7],
                      "showarrow": False, "font": {"size": 9, "color": color}, "xanchor": "left"})
    title = f"{series.arm} {series.cell} {series.setting}".strip() + f"<br>{series.metric}"
    layout = {"title": {"text": title, "font": {"size": 11}}, "height": 260,
              "margin": {"l": 45, "r": 10, "t": 40, "b": 30}, "showlegend": False,
              "shapes": shapes, "annotations": notes, "xaxis": {"title": {"text": "run"}}}
    return {"data": data, "layout": layout}


def write_history_page(result, dest: str | Path, *, static: bool = False) -> Path:
    """Write `result` (a `History`) as DEST/index.html; returns its path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    by_point: dict[tuple, list] = {}
    for c in result.changes:
        by_point.setdefault((c.arm, c.cell, c.setting, c.metric), []).append(c)
    series = result.series
    changed = [s for s in series if (s.arm, s.cell, s.setting, s.metric) in by_point]
    quiet = [s for s in series if (s.arm, s.cell, s.setting, s.metric) not in by_point]
    rows = "".join(
        f"<tr><td>{esc(c.verdict)}{' (acknowledged: ' + esc(c.acknowledged) + ')' if c.acknowledged else ''}"
        f"</td><td>{esc(c.arm)}</td><td>{esc(c.cell)}</td><td>{esc(c.setting or '-')}</td>"
        f"<td>{esc(c.metric)}</td><td>{c.run}</td><td><code>{esc(c.commit[:10])}</code></td>"
        f"<td>{esc(c.change_text())}</td><td>{c.p:.2g}</td><td>{esc(c.kind)}</td></tr>"
        for c in result.changes)
    table = ("<table class=\"sortable\"><tr><th>verdict</th><th>arm</th><th>cell</th><th>setting</th><th>metric</th>"
             "<th>at run</th><th>commit</th><th>change (CI)</th><th>p</th><th>kind</th></tr>"
             f"{rows}</table>") if result.changes else "<p>No level shifted beyond noise and tolerance.</p>"
    runs = "".join(f"<tr><td>{i}</td><td><code>{esc(r.commit[:10])}</code></td><td>{esc(r.created_at[:19])}</td>"
                   f"<td>{esc(r.path)}</td></tr>" for i, r in enumerate(result.runs))
    drawn = [*changed, *quiet[:MAX_QUIET]]
    interactive = not static and plotly_available()
    if interactive:
        script = f'<script src="{write_plotly_js(dest)}"></script>'
        charts = "".join(chart(f"c{i}", _figure(s, by_point.get((s.arm, s.cell, s.setting, s.metric), [])))
                         for i, s in enumerate(drawn))
    else:
        script = ""
        charts = "".join(
            f'<figure><img alt="{esc(s.metric)}" src="data:image/png;base64,'
            f'{_chart(s, by_point.get((s.arm, s.cell, s.setting, s.metric), []))}"></figure>'
            for s in drawn)
    more = (f"<p>{len(quiet) - MAX_QUIET} more points without a change are not drawn "
            "(`genbench history --json` lists every series).</p>") if len(quiet) > MAX_QUIET else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>genbench history: {esc(result.study)}</title>{script}
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px}}
.grid{{display:grid;grid-template-columns:repeat({COLS},1fr);gap:8px}}figure{{margin:0}}
img{{width:100%}}th{{cursor:pointer}}</style></head><body>
<h1>History of {esc(result.study)} [{esc(result.scale)}]</h1>
<p>{esc(result.summary())}</p>
<h2>Changes</h2>{table}
<h2>Points</h2><p>Each run's mean of seeds, its {1 - result.alpha:.0%} interval shaded; dashed
lines mark the change points (red: regression, green: improvement, gray: acknowledged), labelled
with the commit of the first run after the shift.</p><div class="grid">{charts}</div>{more}
<h2>Runs</h2><table class="sortable"><tr><th>run</th><th>commit</th><th>made</th><th>path</th></tr>{runs}</table>
{SORTABLE}</body></html>
"""
    path = dest / "index.html"
    path.write_text(page)
    return path

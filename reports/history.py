"""The history page of `genbench history --page DIR`: the table of changes first, then one
small chart per point (small multiples): each run's level with its seed interval shaded, the
change points marked and labelled with their commit. One self-contained HTML file (the charts
inlined as PNG), which works from a file:// URL and can be mailed.

Points that changed are all drawn; of the others, the first `MAX_QUIET` (a history of 10,000
points would otherwise be a wall of charts: the table and `--json` hold every one).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

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


def write_history_page(result, dest: str | Path) -> Path:
    """Write `result` (a `History`) as DEST/index.html; returns its path."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    esc = html.escape
    by_point: dict[tuple, list] = {}
    for c in result.changes:
        by_point.setdefault((c.arm, c.cell, c.setting, c.metric), []).append(c)
    changed = [s for s in result.series if (s.arm, s.cell, s.setting, s.metric) in by_point]
    quiet = [s for s in result.series if (s.arm, s.cell, s.setting, s.metric) not in by_point]
    rows = "".join(
        f"<tr><td>{esc(c.verdict)}{' (acknowledged: ' + esc(c.acknowledged) + ')' if c.acknowledged else ''}"
        f"</td><td>{esc(c.arm)}</td><td>{esc(c.cell)}</td><td>{esc(c.setting or '-')}</td>"
        f"<td>{esc(c.metric)}</td><td>{c.run}</td><td><code>{esc(c.commit[:10])}</code></td>"
        f"<td>{esc(c.change_text())}</td><td>{c.p:.2g}</td><td>{esc(c.kind)}</td></tr>"
        for c in result.changes)
    table = ("<table><tr><th>verdict</th><th>arm</th><th>cell</th><th>setting</th><th>metric</th>"
             "<th>at run</th><th>commit</th><th>change (CI)</th><th>p</th><th>kind</th></tr>"
             f"{rows}</table>") if result.changes else "<p>No level shifted beyond noise and tolerance.</p>"
    runs = "".join(f"<tr><td>{i}</td><td><code>{esc(r.commit[:10])}</code></td><td>{esc(r.created_at[:19])}</td>"
                   f"<td>{esc(r.path)}</td></tr>" for i, r in enumerate(result.runs))
    charts = "".join(
        f'<figure><img alt="{esc(s.metric)}" src="data:image/png;base64,'
        f'{_chart(s, by_point.get((s.arm, s.cell, s.setting, s.metric), []))}"></figure>'
        for s in [*changed, *quiet[:MAX_QUIET]])
    more = (f"<p>{len(quiet) - MAX_QUIET} more points without a change are not drawn "
            "(`genbench history --json` lists every series).</p>") if len(quiet) > MAX_QUIET else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>genbench history: {esc(result.study)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 6px}}
.grid{{display:grid;grid-template-columns:repeat({COLS},1fr);gap:8px}}figure{{margin:0}}
img{{width:100%}}</style></head><body>
<h1>History of {esc(result.study)} [{esc(result.scale)}]</h1>
<p>{esc(result.summary())}</p>
<h2>Changes</h2>{table}
<h2>Points</h2><p>Each run's mean of seeds, its {1 - result.alpha:.0%} interval shaded; dashed
lines mark the change points (red: regression, green: improvement, gray: acknowledged), labelled
with the commit of the first run after the shift.</p><div class="grid">{charts}</div>{more}
<h2>Runs</h2><table><tr><th>run</th><th>commit</th><th>made</th><th>path</th></tr>{runs}</table>
</body></html>
"""
    path = dest / "index.html"
    path.write_text(page)
    return path

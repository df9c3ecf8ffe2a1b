"""Report figures as PNG files, with matplotlib's Agg backend (no display): each metric against
each ablation axis (mean over seeds with 95 % intervals, the seeds as points), quality against
cost with the Pareto front marked, and training curves. One colour per arm throughout a page;
log axes where values span decades; every axis labelled.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from genbench.harness.config import axis_value, grid_text  # noqa: E402
from genbench.harness.errors import count  # noqa: E402
from genbench.harness.store.rundir import safe_name  # noqa: E402
from genbench.reports.tables import pareto, summarize  # noqa: E402

UNITS = {"train_s": "s", "sample_s_per_image": "s / image", "peak_mem_mb": "MiB",
         "sample_peak_mem_mb": "MiB", "train_images_per_s": "images / s", "nfe": "evaluations",
         "psnr_hidden": "dB", "kid_domain": "as is, not x10^3", "kid_inception": "as is, not x10^3",
         "precision_domain": "fraction", "recall_domain": "fraction",
         "precision_inception": "fraction", "recall_inception": "fraction",
         "duplicate_rate_domain": "fraction", "duplicate_rate_inception": "fraction"}
MARKERS = ("o", "s", "^", "D", "v", "P")
LINESTYLES = ("-", "--", ":", "-.")
# a huge study's figures summarise: at most this many lines per metric-against-axis figure (the
# best ones) and labelled points per quality-against-cost figure (the Pareto front); the title
# says what was left out, and the summary table keeps every value
MAX_LINES = 10
MAX_LABELS = 24
MAX_DOTS = 5_000  # seeds drawn as points up to this many values in one figure
MAX_BARS = 100  # a line of more x values shows its 95 % interval as a band


def palette(arms: list[str]) -> dict[str, str]:
    """One colour per arm (or method), the same in every figure of a page."""
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {arm: colors[i % len(colors)] for i, arm in enumerate(arms)}


def label(metric: str) -> str:
    unit = UNITS.get(metric)
    return f"{metric} ({unit})" if unit else metric


def _numeric(values) -> bool:
    return all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
               for v in values)


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v))


def _spans_decades(values, factor: float = 10.0) -> bool:
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    return len(v) > 1 and (v > 0).all() and v.max() / v.min() >= factor


def _finish(fig, ax, path: Path | None, *, title: str, xlabel: str, ylabel: str, xs,
            ys, floor=()) -> Path | None:
    """Labels, log axes where the values span decades (x: 10x, y: 100x), grid, the real-data
    floor (`floor`: (label, value) pairs) as dashed lines, legend; save (unless `path` is None:
    the caller adds more first)."""
    for i, (text, y) in enumerate(floor):
        ax.axhline(y, color="0.25", linestyle=LINESTYLES[1 + i % 3], linewidth=1.2, label=text,
                   zorder=1)
    ys = [*ys, *(y for _, y in floor)]
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if _spans_decades(xs):
        ax.set_xscale("log")
    if _spans_decades(ys, 100.0):
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    # matplotlib's "best" place weighs every point drawn: beyond a few thousand, a fixed corner
    ax.legend(fontsize=7, loc="best" if len(ys) <= MAX_DOTS else "upper right")
    return None if path is None else _save(fig, path)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def metric_vs_axis(rows: pd.DataFrame, metric: str, axis: str, colors: dict[str, str],
                   path: Path, multi_run: bool, floor=(), figure: dict | None = None) -> Path | None:
    """`metric` against grid axis `axis`: one line per arm and combination of the other axes
    (and run, on a comparison page), mean over seeds with 95 % intervals, seeds as points; the
    real-data floor (`floor`: (label, value) pairs) dashed. `figure` (a dict), where given,
    receives the same chart as plotly's figure (`genbench.reports.interactive.chart`)."""
    traces: list[dict] = []
    d = rows[(rows.metric == metric) & rows[axis].notna() & rows.value.notna()]
    if d.empty:
        return None
    others = [c for c in rows.columns if c.startswith(("train.", "sample.")) and c != axis
              and d[c].notna().any()]
    xs_all = sorted(d[axis].unique().tolist(), key=lambda v: (str(type(v)), v))
    numeric = _numeric(xs_all)
    pos = {v: (float(v) if numeric else i) for i, v in enumerate(xs_all)}
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    line = ["run", "arm", *others]
    d = d.assign(_x=d[axis].map(pos).astype(float))
    # the lines: mean over each line's values, column-wise, before any line is drawn
    of_line = d.groupby(line, dropna=False, sort=True).ngroup()
    lines = d.value.groupby(of_line).mean()
    title = f"{metric} against {axis.split('.', 1)[1]}"
    if len(lines) > MAX_LINES:  # a huge study: its best lines, and the title says so
        hib = d.higher_is_better.dropna()
        sign = -1.0 if len(hib) and bool(hib.iloc[0]) else 1.0
        title += f" (the {MAX_LINES} best of {len(lines)} lines)"
        best = (sign * lines).sort_values(kind="stable").head(MAX_LINES).index
        d = d[of_line.isin(best)]
    dots = len(d) <= MAX_DOTS  # seeds as points, unless they would bury the lines
    if not dots:
        title += f"\n(seeds not drawn: {len(d)} values)"
    points = summarize(d, [*line, "_x"]).sort_values("_x", kind="stable")
    styles = itertools.cycle(LINESTYLES)
    style_of: dict[tuple, str] = {}
    for key, g in points.groupby(line, dropna=False, sort=True):
        run, arm, *rest = key
        rest_key = tuple(rest)
        style_of.setdefault(rest_key, next(styles))
        if dots:
            seeds = d
            for c, v in zip(line, key):
                seeds = seeds[seeds[c].isna()] if _missing(v) else seeds[seeds[c] == v]
            jitter = 0.0
            if not numeric:  # the seeds of one x side by side
                jitter = (seeds.groupby("_x").cumcount() / seeds.groupby("_x")._x.transform(
                    "size").clip(lower=2).sub(1) * 0.08 - 0.04).to_numpy()
            ax.scatter(seeds._x.to_numpy() + jitter, seeds.value.to_numpy(dtype=float), s=10,
                       alpha=0.35, color=colors.get(arm, "k"), linewidths=0)
            seed_xy = ((seeds._x.to_numpy() + jitter).tolist(), seeds.value.astype(float).tolist(),
                       seeds.seed.tolist() if "seed" in seeds else None)
        name = ", ".join([arm] + [f"{o.split('.', 1)[1]}={axis_value(v)}" for o, v in zip(others, rest)
                                  if not _missing(v)])
        if multi_run:
            name = f"run {run}: {name}"
        x, mean, ci = g._x.to_numpy(), g["mean"].to_numpy(), g.ci.to_numpy()
        color = to_hex(colors.get(arm, "k"))  # (a CSS colour for plotly)
        traces.append({"x": x.tolist(), "y": mean.tolist(), "name": name, "legendgroup": name,
                       "mode": "lines+markers", "line": {"color": color},
                       "error_y": {"type": "data", "array": np.nan_to_num(ci).tolist()},
                       "hovertemplate": "%{x}: %{y:.4g} ± %{error_y.array:.3g}<extra>" + name + "</extra>"})
        if dots:
            sx, sy, sseed = seed_xy
            traces.append({"x": sx, "y": sy, "mode": "markers", "legendgroup": name, "showlegend": False,
                           "marker": {"color": color, "opacity": 0.35, "size": 5}, "name": name,
                           "text": [f"seed {k}" for k in sseed] if sseed else None,
                           "hovertemplate": "%{text}: %{y:.4g}<extra>" + name + "</extra>"})
        if len(g) <= MAX_BARS:
            ax.errorbar(x, mean, yerr=ci, color=colors.get(arm, "k"),
                        linestyle=style_of[rest_key], marker=MARKERS[run % len(MARKERS)],
                        capsize=3, label=name)
        else:  # hundreds of values: a line and a band, not a forest of bars
            ax.plot(x, mean, color=colors.get(arm, "k"), linestyle=style_of[rest_key],
                    linewidth=1, label=name)
            ax.fill_between(x, mean - ci, mean + ci, color=colors.get(arm, "k"), alpha=0.2,
                            linewidth=0)
    if not numeric:
        ax.set_xticks(range(len(xs_all)), [axis_value(v) for v in xs_all])
    if figure is not None:
        shown = [*d.value.tolist(), *(y for _, y in floor)]
        xaxis = {"title": {"text": axis.replace(".", " axis: ", 1)},
                 "type": "log" if numeric and _spans_decades(xs_all) else "linear"}
        if not numeric:
            xaxis.update(tickvals=list(range(len(xs_all))), ticktext=[axis_value(v) for v in xs_all])
        figure.update(data=traces + [
            {"x": [min(pos.values()), max(pos.values())], "y": [y, y], "mode": "lines", "name": text,
             "line": {"color": "#404040", "dash": "dash"}} for text, y in floor],
            layout={"title": {"text": title.replace("\n", "<br>"), "font": {"size": 13}}, "height": 380,
                    "xaxis": xaxis, "margin": {"l": 60, "r": 10, "t": 50, "b": 45},
                    "yaxis": {"title": {"text": label(metric)},
                              "type": "log" if _spans_decades(shown, 100.0) else "linear"},
                    "legend": {"font": {"size": 10}}})
    return _finish(fig, ax, path, title=title,
                   xlabel=axis.replace(".", " axis: ", 1), ylabel=label(metric),
                   xs=xs_all if numeric else [], ys=d.value, floor=floor)


def quality_vs_cost(rows: pd.DataFrame, quality: str, cost: str, colors: dict[str, str],
                    path: Path, multi_run: bool, floor=()) -> Path | None:
    """Mean quality against mean cost of every (run, arm, cell and setting), the Pareto front
    (nothing cheaper is better) marked: method families compared at matched compute; the
    real-data floor (`floor`) dashed."""
    keys = ["run", "arm", "cell_key"]
    q = rows[rows.metric == quality].groupby(keys).agg(q=("value", "mean"),
                                                      hib=("higher_is_better", "first"),
                                                      setting_json=("setting_json", "first"),
                                                      cell_json=("cell_json", "first"))
    c = rows[rows.metric == cost].groupby(keys).value.mean().rename("c")
    d = q.join(c, how="inner").dropna(subset=["q", "c"]).reset_index()
    if d.empty:
        return None
    higher = bool(d.hib.iloc[0]) if d.hib.notna().any() else False
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    for (run, arm), g in d.groupby(["run", "arm"]):
        name = f"run {run}: {arm}" if multi_run else arm
        ax.scatter(g.c, g.q, color=colors.get(arm, "k"), marker=MARKERS[run % len(MARKERS)],
                   label=name, zorder=3)
    front = d.iloc[pareto(list(zip(d.c, d.q)), higher)].sort_values("c")
    ax.plot(front.c, front.q, color="0.3", linestyle="--", linewidth=1, zorder=2)
    ax.scatter(front.c, front.q, s=140, facecolors="none", edgecolors="0.3", zorder=4,
               label="Pareto front")
    ax.margins(x=0.3, y=0.15)  # room for the labels
    labelled = d.index if len(d) <= MAX_LABELS else front.index[:MAX_LABELS]
    title = f"{quality} against {cost}" + ("" if len(d) <= MAX_LABELS else
                                           f"\n(labels on the Pareto front of {len(d)} points)")
    out = _finish(fig, ax, None, title=title, xlabel=label(cost),
                  ylabel=f"{label(quality)} ({'higher' if higher else 'lower'} is better)",
                  xs=d.c, ys=d.q, floor=floor)
    _place_labels(fig, ax, [(d.c[i], d.q[i]) for i in labelled],
                  [", ".join(filter(None, (grid_text(d.cell_json[i], base=""),
                                           grid_text(d.setting_json[i], base=""))))
                   for i in labelled], others=list(zip(d.c, d.q)))
    return _save(fig, path) if out is None else out


def _place_labels(fig, ax, points, texts, others=()) -> None:
    """Annotate points so that no label overlaps a marker (of `points` and `others`), another
    label or the axes' edge: each label takes the first free position around its point (right
    side first); a point with no free position stays unlabelled (the summary table has every
    value)."""
    fig.tight_layout()
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    from matplotlib.text import Text

    xy = np.array(list(dict.fromkeys([*points, *others])), dtype=float).reshape(-1, 2)
    px = ax.transData.transform(xy)  # the markers, ring included, as one array of boxes
    boxes = np.column_stack([px - 10, px + 10])  # x0, y0, x1, y1
    placed: list = []  # each label placed

    def free(box) -> bool:  # touches no marker and no label placed (as Bbox.overlaps counts)
        hit = ((boxes[:, 0] <= box.x1) & (box.x0 <= boxes[:, 2]) & (boxes[:, 1] <= box.y1)
               & (box.y0 <= boxes[:, 3]))
        return not hit.any() and not any(box.overlaps(other) for other in placed)

    offsets = [(9, 2), (9, -8), (9, 10), (9, -16), (-9, 2), (-9, -8), (-9, 10), (-9, -16),
               (9, 18), (-9, 18), (9, -24), (-9, -24)]
    for (x, y), text in zip(points, texts):
        if not text:
            continue
        for dx, dy in offsets:
            ann = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points",
                              fontsize=6, ha="left" if dx > 0 else "right", va="center",
                              arrowprops=dict(arrowstyle="-", lw=0.5, color="0.45",
                                              shrinkA=0, shrinkB=4))
            ann.update_positions(renderer)
            box = Text.get_window_extent(ann, renderer)  # the text alone, not its leader line
            inside = (box.x0 >= frame.x0 and box.x1 <= frame.x1 and box.y0 >= frame.y0
                      and box.y1 <= frame.y1)
            if inside and free(box):
                placed.append(box)
                break
            ann.remove()


def training_curves(curves: pd.DataFrame, arms_of: dict[str, str], colors: dict[str, str],
                    folder: Path) -> list[Path]:
    """One wide figure per metric along training (the loss first, then metrics measured along
    it), every trial a line in its arm's colour, in the arms' order; a trial logged at one or
    two steps (budget_steps <= log_every) is drawn as markers, so it shows."""
    if curves.empty:
        return []
    metrics = ["loss"] + sorted(m for m in curves.metric.unique() if m != "loss")
    metrics = [m for m in metrics if (curves.metric == m).any()]
    order = {arm: i for i, arm in enumerate(colors)}
    paths = []
    for metric in metrics:
        d = curves[curves.metric == metric]
        fig, ax = plt.subplots(figsize=(11.0, 3.6))
        seen = set()
        groups = sorted(d.groupby("trial_id"), key=lambda kv: order.get(arms_of.get(kv[0], "?"), 1 << 30))
        for trial_id, g in groups:
            arm = arms_of.get(trial_id, "?")
            ax.plot(g.step, g.value, color=colors.get(arm, "k"), alpha=0.8, linewidth=1,
                    marker="o" if len(g) <= 2 else None, markersize=4,
                    label=None if arm in seen else arm)
            seen.add(arm)
        ax.set_xlabel("training step")
        ax.set_ylabel(label(metric))
        if _spans_decades(d.value, 100.0):
            ax.set_yscale("log")
        ax.set_title(f"{metric} along training ({count(d.trial_id.nunique(), 'trial')})")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        paths.append(_save(fig, folder / f"curves_{safe_name(metric)}.png"))
    return paths

"""The verdicts of a run's claims: each comparison tested on its seeds, on its metric's scale,
at the level its look gives it (`genbench.harness.verdicts.sequential`: Holm at one look, the
group-sequential design over `--until-decided`'s looks), and what would decide the undecided
ones; the claims of a run directory, its looks replayed; the next round of `--until-decided`
(docs/statistics.md).

Each comparison is paired by seed where both sides share seeds, on the metric's scale (a
per-seed log ratio for FID, KID, times and memory: `genbench.harness.verdicts.stats.estimate`):

- `reproduced`: the difference is beyond `by` in the claimed direction (p at most the level its
  look gives it; a single claim at one look: its (1 - alpha) interval lies beyond `by`);
- `contradicted`: it is on the other side of zero, by the same test;
- `inconclusive`: anything else, with the seeds that would decide it at the observed effect and
  spread (power 0.8, with `--until-decided`), or why more seeds will not.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genbench.harness.errors import GenbenchError, count
from genbench.harness.store.files import json_safe
from genbench.harness.verdicts import stats
from genbench.harness.verdicts.claims import ALPHA, POWER, Claim, as_claim
from genbench.harness.verdicts.points import Catalog, Point, Resolved, resolve, row_points
from genbench.harness.verdicts.sequential import (Design, Hypothesis, Looks, check_same_design,
                                                  share, step_down)

# -- verdicts ----------------------------------------------------------------------------------

@dataclass
class Test:
    """One comparison of a claim at one look: the better side's points against the other
    side's, on the seeds of that look."""

    key: str  # its name in the record of looks: the claim, and its pair's number under (all)
    better: str
    than: str
    estimate: stats.Estimate
    higher: bool
    threshold: float  # the minimum effect on the estimate's scale (from by or by_abs)
    seeds: tuple[int, ...]  # the seeds behind the estimate
    hyp: Hypothesis
    seeds_needed: int | None = None
    stuck: bool = False  # more seeds will not decide it
    why: str = ""  # what decides an inconclusive comparison, or what to know about it

    @property
    def verdict(self) -> str:
        return self.hyp.verdict

    @property
    def p(self) -> float:
        """Two-sided p of the nearer verdict (unadjusted)."""
        h = self.hyp
        return min(1.0, 2 * min(h.p_rep, h.p_con)) if h.testable else float("nan")

    @property
    def oriented(self) -> float:
        """The effect in the claimed direction (positive: the claim's side is better)."""
        return self.estimate.diff if self.higher else -self.estimate.diff


@dataclass
class Result:
    """The verdict of one claim on one run."""

    claim: str
    source: str
    metric: str
    verdict: str
    effect: float  # better - than on the test's scale: a mean log ratio (scale "log") or units
    change: float  # the same as a relative change of `than` (-0.3: 30 % lower)
    ci: tuple[float, float]  # its (1 - alpha) interval, on the test's scale
    ci_change: tuple[float, float]  # the interval as relative changes
    p: float  # two-sided p of the test behind the verdict (unadjusted)
    level: float  # the level p had to reach at its look: alpha / (comparisons left), lower at
    #               an early look of --until-decided (docs/statistics.md)
    seeds: int  # seeds behind the numbers (pairs for a paired test)
    seeds_needed: int | None  # for an inconclusive claim: seeds that would decide it (power 0.8)
    test: str  # paired t | welch | exact | none
    scale: str = "linear"  # "log": compared as per-seed log ratios
    means: tuple[float, float] = (float("nan"), float("nan"))  # each side's mean, in units
    look: int = 1  # the look that decided it (or the last one taken)
    why: str = ""  # what would decide it, or what else the reader should know
    comparisons: list[dict[str, Any]] = field(default_factory=list)  # `all`: one per pair
    cells: tuple[tuple[str, str], ...] = ()  # the train cells (arm, cell JSON) it involves
    stuck: bool = False  # inconclusive, and more seeds will not decide it

    def line(self) -> str:
        """One line for the console: verdict, claim, effect and interval, p and the level it
        had to reach, seeds, test."""
        return f"{self.verdict:<13} {self.claim}: {self.numbers()}" + (f"; {self.why}" if self.why else "")

    def numbers(self) -> str:
        if not math.isfinite(self.effect):
            return "no values"
        if self.scale == "log":
            ci = (f" [{stats.change_text(self.ci[0])}, {stats.change_text(self.ci[1])}]"
                  if math.isfinite(self.ci[0]) and self.test != stats.EXACT else "")
            effect = (f"effect {stats.change_text(self.effect)}{ci} ({_g(self.means[0])} vs "
                      f"{_g(self.means[1])})")
        else:
            rel = f" ({_pct(self.change)})" if math.isfinite(self.change) else ""
            ci = (f" [{_g(self.ci[0], sign=True)}, {_g(self.ci[1], sign=True)}]"
                  if math.isfinite(self.ci[0]) and self.test != stats.EXACT else "")
            effect = f"effect {_g(self.effect, sign=True)}{rel}{ci}"
        p = ""
        if math.isfinite(self.p):
            p = f", p={self.p:.2g} {'<=' if self.p <= self.level else '>'} {self.level:.2g}"
        test = self.test + (" of log ratios" if self.scale == "log" and self.test != "none" else "")
        look = f", look {self.look}" if self.look > 1 else ""
        return f"{effect}{p}, {self.seeds} seed{'s' * (self.seeds != 1)}, {test}{look}"

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("cells")
        return json_safe(d)


def _g(x: float, sign: bool = False) -> str:
    return f"{x:+.3g}" if sign else f"{x:.3g}"


def _pct(x: float) -> str:
    """A relative change as a signed percentage; a tiny one as "<1%", never "-0%"."""
    if not math.isfinite(x):
        return "?"
    text = f"{x:+.0%}"
    return f"{text[0]}<1%" if text in ("+0%", "-0%") and x != 0 else text


def _values(table: dict, points: tuple[Point, ...], metric: str,
            seeds: list[int] | None = None) -> dict[int, float]:
    """Per seed, the mean of the points' values, at the seeds where every point has one (of
    `seeds` where given: a recorded look's)."""
    per = [table.get((p.arm, p.cell_json, p.setting_json, metric), {}) for p in points]
    common = set(per[0]).intersection(*per[1:]) if per else set()
    if seeds is not None:
        common &= set(seeds)
    return {s: sum(d[s] for d in per) / len(per) for s in sorted(common)}


# what claims read of a run's rows (its table, catalog and points)
COLUMNS = ["arm", "cell_json", "setting_json", "metric", "seed", "value", "higher_is_better",
           "note"]


def _table(rows, metrics: set[str] | None = None) -> tuple[dict, dict, dict]:
    """(arm, cell, setting, metric) -> {seed: finite value}; metric -> direction; notes of the
    metrics that have none (why a metric was skipped); of the rows of `metrics` where given
    (the claims' own: a million rows hold far more)."""
    table: dict = {}
    notes: dict[str, str] = {}
    direction: dict[str, bool] = {}
    if rows is None or rows.empty:
        return table, direction, notes
    if metrics is not None:
        rows = rows[rows.metric.isin(sorted(metrics))]
    for arm, cell, setting, metric, seed, value, hib, note in zip(*(rows[c].tolist()
                                                                     for c in COLUMNS)):
        setting = setting if isinstance(setting, str) else None
        if hib is not None and hib == hib and metric not in direction:
            direction[metric] = bool(hib)
        if value is not None and math.isfinite(value):
            table.setdefault((arm, cell, setting, metric), {})[int(seed)] = float(value)
        elif isinstance(note, str) and note:
            notes.setdefault(metric, note)
    return table, direction, notes


@dataclass(frozen=True)
class _Comparison:
    key: str
    claim: Claim
    better: tuple[Point, ...]
    than: tuple[Point, ...]
    label_b: str
    label_t: str


def _comparisons(resolved: list[Resolved]) -> list[list[_Comparison]]:
    out = []
    for r in resolved:
        many = len(r.comparisons) > 1
        out.append([_Comparison(r.claim.text + (f" [{i}]" if many else ""), r.claim, b, t,
                                _label(b, r.multi_arm), _label(t, r.multi_arm))
                    for i, (b, t) in enumerate(r.comparisons)])
    return out


def evaluate(resolved: list[Resolved], rows, *, alpha: float = ALPHA,
             directions: dict[str, bool] | None = None, design: Design | None = None,
             looks: Looks | None = None, new_look: bool = True,
             explain: bool = True) -> list[Result]:
    """The verdict of every resolved claim on `rows` (the run's current rows). The direction
    of a metric comes from the rows (the registry's `directions` for one with no rows yet).

    `design` says how the run spends its error rate (default: one fixed-sample look at
    `alpha`, Holm across every comparison); `looks`, the looks it took before (replayed in
    order, each on the seeds it recorded). `new_look` tests the current rows as one more look
    where they hold other seeds than a comparison's last look, and appends it to `looks`;
    without it, where the rows hold more seeds than the last look, the verdict says so.
    `explain` False leaves out what would decide an inconclusive claim (the seeds it needs:
    the slow part, which no decision depends on; for simulations of the procedure)."""
    table, direction, notes = _table(rows, {r.claim.metric for r in resolved})
    return decide(resolved, table, {**(directions or {}), **direction}, notes, alpha=alpha,
                  design=design, looks=looks, new_look=new_look, explain=explain)


def decide(resolved: list[Resolved], table: dict, direction: dict[str, bool],
           notes: dict[str, str], *, alpha: float = ALPHA, design: Design | None = None,
           looks: Looks | None = None, new_look: bool = True, explain: bool = True) -> list[Result]:
    """`evaluate` on a run's values already gathered (`_table`): (arm, cell, setting, metric)
    -> {seed: value}, each metric's direction and the notes of metrics without values. The
    decisions of every claim and look are made here (simulations of the procedure call it
    directly, on values they draw)."""
    from genbench.harness.metrics import scale as metric_scale

    design = design or (looks.design if looks else Design(alpha))
    groups = _comparisons(resolved)
    family = [c for g in groups for c in g]
    scales = {m: metric_scale(m) for m in {c.claim.metric for c in family}}
    past: dict[str, tuple[int, ...]] = {}
    decided: dict[str, Test] = {}
    shown: dict[str, Test] = {}
    taken = 0  # looks taken so far
    look_of: dict[str, int] = {}

    def take(seeds: dict[str, list[int] | None]) -> None:
        """One look: the comparisons named, each on its seeds (None: every seed it has)."""
        nonlocal taken
        taken += 1
        tests = []
        for c in family:
            if c.key not in seeds:
                continue
            m = c.claim.metric
            x = _values(table, c.better, m, seeds[c.key])
            y = _values(table, c.than, m, seeds[c.key])
            t = _test(c, x, y, direction.get(m), scales[m], alpha)
            t.hyp.past = past.get(c.key, ())
            t.hyp.decided = decided[c.key].verdict if c.key in decided else None
            if not x or not y:
                none = "no values yet" if m not in notes else notes[m]
                t.why = f"{'better' if not x else 'than'} side has {none}"
            tests.append(t)
        step_down([t.hyp for t in tests], design)
        for t in tests:
            if t.key in decided:
                continue
            shown[t.key], look_of[t.key] = t, taken
            if t.verdict != "inconclusive":
                decided[t.key] = t
            elif t.hyp.testable:
                past[t.key] = t.hyp.looks

    for record in (looks.looks if looks else []):
        take({k: v["seeds"] for k, v in record.items()})
    current = {c.key: sorted(set(_values(table, c.better, c.claim.metric))
                             | set(_values(table, c.than, c.claim.metric))) for c in family}
    last = looks.last_seeds() if looks else {}
    changed = [k for k in current if k not in decided and current[k] != last.get(k)]
    if new_look and (changed or not looks or not looks.looks):
        take({k: None for k in current})
        if looks is not None:
            looks.looks.append({k: {"seeds": list(shown[k].seeds), "verdict": shown[k].verdict}
                                for k in current})
    elif changed:
        for k in changed:
            if k in shown:
                shown[k].why = _join(shown[k].why, f"the rows hold seeds the last look did not "
                                     f"({len(current[k])} against {len(shown[k].seeds)}): "
                                     "`genbench run ... --until-decided` takes that look")
    hyps = [shown[c.key].hyp for c in family if c.key in shown]
    left = share(hyps, design)
    for c in family:
        if c.key in shown and shown[c.key].verdict == "inconclusive":
            _explain(shown[c.key], left, design, alpha, seeds=explain)
    return [_combine(r, [shown[c.key] for c in g], [look_of.get(c.key, 1) for c in g])
            for r, g in zip(resolved, groups)]


def _join(a: str, b: str) -> str:
    return f"{a}; {b}" if a else b


def _test(c: _Comparison, x: dict[int, float], y: dict[int, float], higher: bool | None,
          scale: str, alpha: float) -> Test:
    """The comparison on the seeds of `x` and `y`, with its one-sided p-values."""
    claim = c.claim
    est = stats.estimate(x, y, alpha=alpha, scale=scale if claim.by_abs is None else "linear")
    higher = higher is not False
    if claim.by_abs is not None:
        thr = claim.by_abs
    elif est.scale == "log":  # a relative `by` is a ratio: beyond 1 + by, or below 1 - by
        thr = math.log1p(claim.by) if higher else (-math.log1p(-claim.by) if claim.by < 1 else math.inf)
    else:
        thr = claim.by * abs(est.mean_y) if math.isfinite(est.mean_y) else 0.0
    p_rep = est.p_greater(thr) if higher else est.p_less(-thr)
    p_con = est.p_less(0.0) if higher else est.p_greater(0.0)
    seeds = tuple(sorted(set(x) | set(y)))
    return Test(c.key, c.label_b, c.label_t, est, higher, thr, seeds,
                Hypothesis(c.key, est.n if est.decidable else min(est.n, 1), p_rep, p_con))


def _label(points: tuple[Point, ...], with_arm: bool) -> str:
    return " + ".join(p.label(with_arm) for p in points)


def _explain(t: Test, share: float, design: Design, alpha: float, seeds: bool = True) -> None:
    """What would decide an inconclusive comparison: seeds (how many, at the power POWER, under
    the procedure that decides it; `seeds` False: not counted), or why more seeds will not."""
    est = t.estimate
    if not est.decidable:
        if not t.why:
            t.why = ("one seed decides nothing (the spread between seeds is unknown): "
                     "add seeds (--until-decided, or --set seeds=[0,1,2])")
        return
    od = t.oriented
    lo, hi = sorted((est.lo, est.hi) if t.higher else (-est.hi, -est.lo))
    if est.test == stats.EXACT or (t.threshold > 0 and 0 <= lo and hi <= t.threshold):
        t.stuck = True
        t.why = _join(t.why, "the effect is within `by`: more seeds will not decide it"
                      if od != 0 else "the two sides measure the same: more seeds will not decide it")
        return
    if not seeds:
        return
    distance = od - t.threshold if od > t.threshold else od
    if est.test == stats.WELCH:
        need = stats.seeds_needed(distance, sd_x=est.sd_x, sd_y=est.sd_y, alpha=share)
    else:
        need = stats.sequential_seeds_needed(distance, est.sd, first=est.n,
                                             alpha=share)
    h = t.hyp
    if math.isfinite(t.p) and t.p <= alpha:
        where = ("an early look of --until-decided spends little of alpha"
                 if design.sequential and h.level < share * 0.999 else
                 f"alpha is shared by the {round(design.alpha / share)} comparisons left (Holm)")
        t.why = _join(t.why, f"p is within alpha alone, not within this look's {h.level:.2g} ({where})")
    if need is None:
        t.why = _join(t.why, f"more than {stats.MAX_SEEDS} seeds would be needed at this effect "
                      "and spread")
        return
    t.seeds_needed = max(need, est.n + 1)
    per = " per side" if est.test == stats.WELCH else ""
    beyond = (f", beyond --max-seeds {design.max_seeds}"
              if design.sequential and t.seeds_needed > design.max_seeds else "")
    t.why = _join(t.why, f"about {t.seeds_needed} seeds{per} would decide it (power {POWER:g}, "
                  f"with --until-decided{beyond})")


def _combine(r: Resolved, ts: list[Test], looks: list[int]) -> Result:
    """A claim's verdict from its comparisons: one, or (`all`) every pair must hold: contradicted
    if any pair is, reproduced if all are, else inconclusive; the numbers shown are those of the
    comparison that decides (the weakest)."""
    verdicts = [t.verdict for t in ts]
    weakest = lambda t: (t.p / t.hyp.level) if math.isfinite(t.p) and t.hyp.level > 0 else math.inf  # noqa: E731
    if "contradicted" in verdicts:
        shown = next(t for t in ts if t.verdict == "contradicted")
        verdict = "contradicted"
    elif all(v == "reproduced" for v in verdicts):
        verdict, shown = "reproduced", max(ts, key=weakest)
    else:
        verdict = "inconclusive"
        shown = max((t for t in ts if t.verdict != "reproduced"), key=weakest)
    needs = [t.seeds_needed for t in ts if t.verdict == "inconclusive"]
    need = max(needs) if needs and all(n is not None for n in needs) else None
    est = shown.estimate
    why = shown.why
    if len(ts) > 1:
        why = (f"{verdicts.count('reproduced')} of {len(ts)} pairs reproduced; shown: "
               f"{shown.better} vs {shown.than}" + (f"; {why}" if why else ""))
    return Result(
        claim=r.claim.text, source=r.claim.source, metric=r.claim.metric, verdict=verdict,
        effect=est.diff, change=est.change(), ci=(est.lo, est.hi),
        ci_change=(est.change(est.lo), est.change(est.hi)), p=shown.p, level=shown.hyp.level,
        seeds=est.n, seeds_needed=need if verdict == "inconclusive" else None, test=est.test,
        scale=est.scale, means=(est.mean_x, est.mean_y), look=looks[ts.index(shown)],
        why=why if verdict == "inconclusive" or len(ts) > 1 else "",
        comparisons=[dict(better=t.better, than=t.than, verdict=t.verdict, effect=t.estimate.diff,
                          change=t.estimate.change(), ci=[t.estimate.lo, t.estimate.hi], p=t.p,
                          level=t.hyp.level, seeds=t.estimate.n, test=t.estimate.test)
                     for t in ts],
        cells=tuple(dict.fromkeys((p.arm, p.cell_json) for b, t in r.comparisons for p in (*b, *t))),
        stuck=verdict == "inconclusive" and all(t.stuck for t in ts if t.verdict == "inconclusive"))


def exit_status(results: list[Result]) -> int:
    """`genbench claims`: 0 every claim reproduced, 1 any contradicted, 3 otherwise."""
    verdicts = {r.verdict for r in results}
    if "contradicted" in verdicts:
        return 1
    return 0 if verdicts <= {"reproduced"} else 3


def render_json(results: list[Result]) -> str:
    return json.dumps([r.to_json() for r in results], indent=1, allow_nan=False)


# -- claims of a run directory -----------------------------------------------------------------

def run_catalog(rows, plan) -> Catalog:
    """What a run measured (its rows) beside what its plan (`Plan`, or None for a directory
    without one) measures (`Plan.catalog`), for claims given after the fact (`genbench claims
    OUT --claim ...`): a metric's level and direction from its rows where it has some; a metric
    whose rows carry no direction is a fact."""
    from genbench.harness.metrics import STATUS_METRICS, metric_names

    measured: dict[str, tuple[str, bool | None]] = {}
    facts = []
    if rows is not None and not rows.empty:
        for metric, g in rows.groupby("metric", sort=True):
            if metric in STATUS_METRICS:
                continue
            hib = g.higher_is_better.dropna()
            level = "setting" if g.setting_json.notna().any() else "fit"
            if len(hib):
                measured[metric] = (level, bool(hib.iloc[0]))
            else:
                facts.append(metric)
    for m, how in (plan.catalog().measured.items() if plan is not None else ()):
        measured.setdefault(m, how)  # (no rows yet: measured once they are written)

    def known() -> tuple[str, ...]:  # (loading the registries costs imports: on demand)
        return (*measured, *metric_names())

    return Catalog(measured, known=known, facts=tuple(facts))


def judge_run(out_dir, plan, claims=None, *, alpha: float | None = None,
              warn=None) -> list[Result]:
    """The verdicts of `claims` (default: those of `plan`, the run's study.json as a `Plan`, or
    None where it has none) on the run in `out_dir`, from its current rows; the points are
    those of the plan and of the rows (a run made before claims existed has rows only). The
    study's own claims of a run that `--until-decided` decided are replayed over the looks it
    recorded (OUT/looks.json), so they read as the run printed them; claims given here are one
    fixed-sample look at the current rows. `alpha` None: the run's own (its record's, else
    0.05)."""
    from genbench.harness.store.results import read_current

    looks = Looks.read(out_dir) if claims is None else None
    if claims is None:
        claims = plan.stored_claims() if plan is not None else []
    claims = [as_claim(c) for c in claims]
    if not claims:
        return []
    rows, _ = read_current(out_dir, plan, warn=warn or (lambda _: None), columns=COLUMNS)
    if rows.empty and (plan is None or not plan.trials):
        raise GenbenchError(f"{out_dir} has no plan and no rows: nothing to test claims on")
    if looks is not None and alpha is not None and alpha != looks.design.alpha:
        looks = Looks(Design(alpha, looks.design.max_seeds), looks.looks)
    return judge(claims, plan, rows, alpha=ALPHA if alpha is None else alpha, looks=looks)


def judge(claims, plan, rows, *, alpha: float = ALPHA, looks: Looks | None = None,
          new_look: bool = False) -> list[Result]:
    """The verdicts of `claims` on a run's current `rows` and its `plan` (a `Plan`, or None):
    one fixed-sample look, or the replay of the run's `looks` (and, `new_look`, one more on the
    current rows, appended to them)."""
    points = list(dict.fromkeys([*(plan.points if plan is not None else ()), *row_points(rows)]))
    resolved = resolve([as_claim(c) for c in claims], points, run_catalog(rows, plan))
    return evaluate(resolved, rows, alpha=looks.design.alpha if looks else alpha, looks=looks,
                    new_look=new_look or looks is None)


def look(out_dir: Path, plan, design: Design) -> list[Result]:
    """One look of `--until-decided` at the run in `out_dir` (a local directory) of `plan`: the
    verdicts of its claims over the looks recorded before and the current rows, which are
    recorded as a new look where they hold seeds the last look did not (OUT/looks.json). A
    record made with another design is refused (`check_same_design`)."""
    from genbench.harness.store.results import read_current

    looks = Looks.read(out_dir)
    if looks is None:
        looks = Looks(design)
    check_same_design(looks, design, str(out_dir))
    before = len(looks.looks)
    rows, _ = read_current(out_dir, plan, warn=lambda _: None, columns=COLUMNS)
    results = judge(plan.stored_claims(), plan, rows, looks=looks, new_look=True)
    if len(looks.looks) > before:
        looks.write(out_dir)
    return results


def more_seeds(have: dict[tuple[str, str], set[int]], results: list[Result], max_seeds: int):
    """The next round of `--until-decided` for a plan whose train cells hold seeds `have`
    ((arm, cell JSON) -> seeds: `Plan.cell_seeds`): (train cells, seeds, line). The cells are
    those of the undecided claims that more seeds can decide; the seeds, the plan's first N integers and
    the next ones, N the next planned look (`stats.next_look`: doubling, at most `max_seeds`)
    of the fewest seeds those cells have. The looks are planned, not sized by the data, so the
    error rate of the whole procedure is the design's (docs/statistics.md). Cells None: no
    round; the line says why."""
    undecided = [r for r in results if r.verdict == "inconclusive"]
    if not undecided:
        return None, (), f"every claim is decided ({len(results)})"
    target, cells, why, stuck = 0, set(), [], []
    for r in undecided:
        current = min((len(have.get(c, ())) for c in r.cells), default=0)
        if r.stuck:
            stuck.append(f"{r.claim} ({r.why})")
            continue
        n = stats.next_look(current, max_seeds)
        if n <= current:
            stuck.append(f"{r.claim} (--max-seeds {max_seeds} reached)")
            continue
        target = max(target, n)
        cells.update(r.cells)
        need = ("spread unknown" if r.seeds_needed is None
                else f"about {count(r.seeds_needed, 'seed')} would decide it")
        why.append(f"{r.claim} ({need})")
    if not cells:
        return None, (), (f"{count(len(stuck), 'claim')} stay{'s' * (len(stuck) == 1)} "
                          "inconclusive: " + "; ".join(stuck))
    seeds = sorted({s for v in have.values() for s in v})
    nxt = (max(seeds) + 1) if seeds else 0
    while len(seeds) < target:
        seeds.append(nxt)
        nxt += 1
    seeds = seeds[:max(target, 0)]
    added = sorted({s for c in cells for s in seeds if s not in have.get(c, set())})
    span = f"{added[0]}-{added[-1]}" if len(added) > 1 else str(added[0]) if added else "none"
    line = (f"until decided: next look at {count(target, 'seed')}: adding "
            f"{'seeds' if len(added) > 1 else 'seed'} {span} to {count(len(cells), 'train cell')} "
            f"for {count(len(why), 'undecided claim')}: " + "; ".join(why))
    return cells, tuple(seeds), line

"""The error rates of genbench's verdicts, measured by running the procedures themselves on
data drawn with a known truth: `--until-decided` (`genbench.harness.verdicts.judge.decide` at each
look, `more_seeds` between looks) and the regression gate (`genbench.harness.verdicts.compare`'s
column-wise judgement). An error rate is a property of the whole procedure, not of one test
(the optional-stopping error only shows when the stopping is simulated too), so these drive
the same code a run does, on values drawn instead of measured.

benchmarks/bench_calibration.py prints the table docs/statistics.md shows;
tests/test_calibration.py holds the rates to their bounds.

Pure numpy and pandas: no torch, no Ray.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from genbench.harness.verdicts.claims import Claim
from genbench.harness.verdicts.points import Catalog, Point, resolve
from genbench.harness.verdicts.judge import decide, more_seeds
from genbench.harness.verdicts.sequential import Design, Looks

METRIC = "score"  # what the simulated claims compare: linear, lower is better


@dataclass
class Outcome:
    """One simulated run of a procedure: its verdicts and the seeds it used."""

    verdicts: list[str]
    seeds: int  # seeds per cell at the end (the most any cell got)


def until_decided(values: np.ndarray, *, first: int, max_seeds: int | None,
                  alpha: float = 0.05, design: type[Design] = Design) -> Outcome:
    """`--until-decided --max-seeds max_seeds` (None: one fixed-sample look) on claims whose
    per-seed values are drawn: `values[c, s]` holds, for claim c and seed s, the values of its
    better side and of its other side (shape (claims, seeds, 2), seeds >= max_seeds). Claim c
    reads "score: k=2c better than k=2c+1"; the run starts with `first` seeds per cell.
    `design`: the class of design (another to measure a procedure genbench does not use)."""
    n_claims = values.shape[0]
    points = [Point("m", json.dumps({"k": k}, separators=(",", ":")), "{}")
              for k in range(2 * n_claims)]
    claims = [Claim(METRIC, f"k={2 * c}", f"k={2 * c + 1}") for c in range(n_claims)]
    resolved = resolve(claims, points, Catalog({METRIC: ("setting", False)}))
    seeds = {p.cell_json: first for p in points}
    design = design(alpha, max_seeds)
    looks = Looks(design) if max_seeds is not None else None
    while True:
        table = {("m", p.cell_json, "{}", METRIC):
                 {s: float(values[k // 2, s, k % 2]) for s in range(seeds[p.cell_json])}
                 for k, p in enumerate(points)}
        results = decide(resolved, table, {METRIC: False}, {}, design=design, looks=looks,
                         explain=False)
        if max_seeds is None:
            return Outcome([r.verdict for r in results], max(seeds.values()))
        have = {("m", p.cell_json): set(range(seeds[p.cell_json])) for p in points}
        cells, grown, _ = more_seeds(have, results, max_seeds)
        if not cells:
            return Outcome([r.verdict for r in results], max(seeds.values()))
        for _, cell in cells:
            seeds[cell] = len(grown)


def paired_values(rng: np.random.Generator, claims: int, seeds: int, effect: float,
                  sd_seed: float = 3.0) -> np.ndarray:
    """Per-seed values of `claims` claims: both sides share a seed's effect (noise pairing
    removes, of spread `sd_seed`) and each has its own noise of spread 1/sqrt(2), so the
    per-seed difference has spread 1; the better side is lower by `effect` (in units of that
    spread; negative: the claim is false the other way)."""
    shared = rng.normal(0.0, sd_seed, (claims, seeds, 1))
    own = rng.normal(0.0, 1 / math.sqrt(2), (claims, seeds, 2))
    return shared + own - np.array([effect, 0.0])


@dataclass
class Rates:
    """A procedure's rates over simulated runs, with their Monte-Carlo standard errors."""

    runs: int
    decided: float  # runs where any claim was decided (A/A: a false verdict)
    reproduced: float  # runs where every claim was reproduced (a true effect: the power)
    seeds: float  # mean seeds per cell at the end

    def se(self, rate: float) -> float:
        return math.sqrt(max(rate * (1 - rate), 1e-12) / self.runs)


def claim_rates(*, effect: float, max_seeds: int | None, first: int = 2, claims: int = 1,
                runs: int = 1000, alpha: float = 0.05, seed: int = 0,
                design: type[Design] = Design) -> Rates:
    """The rates of `until_decided` over `runs` simulated runs of `claims` claims, each with a
    true paired effect of `effect` standard deviations (0: an A/A run, where any decided claim
    is a false verdict)."""
    rng = np.random.default_rng(seed)
    width = max(max_seeds or first, first)
    decided = reproduced = seeds = 0
    for _ in range(runs):
        out = until_decided(paired_values(rng, claims, width, effect), first=first,
                            max_seeds=max_seeds, alpha=alpha, design=design)
        decided += any(v != "inconclusive" for v in out.verdicts)
        reproduced += all(v == "reproduced" for v in out.verdicts)
        seeds += out.seeds
    return Rates(runs, decided / runs, reproduced / runs, seeds / runs)


# -- the regression gate ------------------------------------------------------------------------

GATE_METRIC = "fid_domain"  # a log-scale metric, lower is better, tolerance 10 %


def gate_runs(rng: np.random.Generator, *, points: int, seeds: int, sd: float,
              regressed: tuple[int, ...] = (), ratio: float = 1.0, level: float = 100.0):
    """Rows of a base run and a current run of `points` points of a log-scale metric, paired by
    seed: each point's log value at a seed is a shared seed effect plus noise whose per-seed log
    ratio between the runs has spread `sd`; the points `regressed` are `ratio` times worse in
    the current run. Returns (base, cur) in the columns compare judges."""
    shared = rng.normal(math.log(level), 0.3, (points, seeds))
    noise = rng.normal(0.0, sd / math.sqrt(2), (2, points, seeds))
    shift = np.zeros((points, 1))
    shift[list(regressed)] = math.log(ratio)
    frames = []
    for side in (0, 1):
        value = np.exp(shared + noise[side] + (shift if side else 0.0))
        p, s = np.meshgrid(np.arange(points), np.arange(seeds), indexing="ij")
        frames.append(pd.DataFrame({
            "study": "sim", "arm": "a", "cell_key": [f"p{i:04d}" for i in p.ravel()],
            "cell_json": [f'{{"p":{i}}}' for i in p.ravel()], "setting_json": "{}",
            "metric": GATE_METRIC, "seed": s.ravel(), "value": value.ravel(), "std": np.nan,
            "higher_is_better": False, "note": None}))
    return frames[0], frames[1]


def gate_rates(*, points: int, seeds: int, sd: float, regressed: tuple[int, ...] = (),
               ratio: float = 1.0, runs: int = 500, alpha: float = 0.05, seed: int = 0) -> Rates:
    """The regression gate over `runs` simulated comparisons (`gate_runs`): `decided` is the
    rate of comparisons that flag any point not regressed (a false alarm); `reproduced`, of
    those that flag a regression at one of the `regressed` points (the power)."""
    from genbench.harness.verdicts.compare import Comparison, _judge

    rng = np.random.default_rng(seed)
    alarms = caught = 0
    for _ in range(runs):
        base, cur = gate_runs(rng, points=points, seeds=seeds, sd=sd, regressed=regressed,
                              ratio=ratio)
        result = Comparison("base", "cur", alpha=alpha)
        _judge(base, cur, alpha, result)
        flagged = {int(v.cell.removeprefix("p=")) for v in result.verdicts
                   if v.verdict in ("regression", "improvement")}
        alarms += bool(flagged - set(regressed))
        caught += any(v.verdict == "regression" and int(v.cell.removeprefix("p=")) in regressed
                      for v in result.verdicts)
    return Rates(runs, alarms / runs, caught / runs, float(seeds))

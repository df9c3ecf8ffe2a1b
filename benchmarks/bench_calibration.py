"""The error rates of genbench's verdicts, by simulation of the procedures themselves
(`genbench.harness.verdicts.calibration`: the real `claims.decide`, `more_seeds` and `compare._judge` on
per-seed values drawn with a known truth). Prints, for `--until-decided` at each --max-seeds,
the false-verdict rate of A/A runs, the power at a true paired effect of one standard deviation
and the mean seeds each used, beside the same simulation of the rule it replaced (every round
tested at alpha: the optional-stopping error); then the regression gate's false-alarm rate on
A/A suites and its power on a 1.5x regression at the regression study's seeds.

    python benchmarks/bench_calibration.py                 # 4,000 runs a row (~10 min on 2 cores)
    python benchmarks/bench_calibration.py --runs 500      # a quick look
    python benchmarks/bench_calibration.py --e2e 200 --runs 0   # 200 real runs of two_streams.py

docs/statistics.md shows the table.
"""

from __future__ import annotations

import argparse
import math
import time

from genbench.harness.verdicts.calibration import claim_rates, gate_rates
from genbench.harness.verdicts.sequential import Design


class EveryLookAtAlpha(Design):
    """The rule before the group-sequential design: every round tested at the full alpha."""

    def level(self, looks, alpha):
        return alpha


def pct(rate: float, se: float, digits: int = 1) -> str:
    return f"{rate:6.{digits}%} ± {se:.{digits}%}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=4000, help="simulated runs per row")
    p.add_argument("--max-seeds", type=int, nargs="+", default=[3, 5, 10, 20])
    p.add_argument("--first", type=int, default=2, help="seeds of the first look")
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                   help="which tables of simulations to print (default: all)")
    p.add_argument("--e2e", type=int, default=0, metavar="N",
                   help="also run benchmarks/two_streams.py N times under --until-decided (in this "
                        "process, disjoint seeds, --max-seeds 10), A/A and with stream b shifted")
    args = p.parse_args(argv)
    runs, alpha = args.runs, args.alpha
    started = time.perf_counter()
    if args.e2e:
        end_to_end(args.e2e, alpha)
    if runs:
        simulated(args, runs, alpha)
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


def end_to_end(n: int, alpha: float) -> None:
    """Real runs of a study with a known truth, through `genbench.run(..., until_decided=True)`."""
    import tempfile
    from pathlib import Path

    import genbench

    study = str(Path(__file__).with_name("two_streams.py"))
    print(f"two_streams.py under --until-decided --max-seeds 10, {n} real runs a row, disjoint seeds")
    print("| streams | runs | decided (A/A: false verdicts) | reproduced | mean seeds |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for label, shift, k in (("same law (A/A)", 0.0, n), ("b shifted by 0.15", 0.15, n // 4)):
            decided = reproduced = seeds = 0
            for r in range(k):
                out = Path(tmp) / f"{shift}-{r}"
                genbench.run(study, out=out, sets={"seeds": [100 * r, 100 * r + 1], "shift": shift},
                             until_decided=True, max_seeds=10, in_process=True,
                             echo=lambda line: None)
                (v,) = genbench.claims(out)
                decided += v.verdict != "inconclusive"
                reproduced += v.verdict == "reproduced"
                seeds += v.seeds
            se = math.sqrt(max(decided / k * (1 - decided / k), 1e-12) / k)
            print(f"| {label} | {k} | {pct(decided / k, se)} | {reproduced / k:.1%} | "
                  f"{seeds / k:.1f} |", flush=True)


PATHS = 400_000


def boundary_rate(first: int, max_seeds: int, alpha: float) -> tuple[tuple[int, ...], float]:
    """The A/A rate of the planned looks' boundaries alone, on PATHS paths of standard normal
    per-seed differences (fresh random numbers, not the ones the boundaries were placed on)."""
    import numpy as np

    from genbench.harness.verdicts import stats

    looks = tuple(n for n in stats.planned_looks(first, max_seeds) if n >= 2)
    levels = stats.sequential_levels(looks, max(max_seeds, looks[0]), alpha)
    d = np.random.default_rng(12345).standard_normal((PATHS, looks[-1]))
    decided = np.zeros(PATHS, dtype=bool)
    for n, level in zip(looks, levels):
        x = d[:, :n]
        t = x.mean(1) / (x.std(1, ddof=1) / math.sqrt(n))
        decided |= 2 * stats.t_sf(np.abs(t), n - 1) <= level
    return looks, float(decided.mean())


PARTS = ("claims", "boundaries", "three", "gate", "history")


def history_rates(histories: int, *, points: int = 20, n_runs: int = 8, seeds: int = 4,
                  spread: float = 0.1, shift: float = 1.0, alpha: float = 0.05) -> tuple[float, float]:
    """`genbench history`'s own decision (`history.find_changes`) on simulated histories of
    `points` log-scale fid points over `n_runs` runs of `seeds` seeds, per-seed log spread
    `spread`: the rate of histories with any change, and the rate where exactly the shifted
    point (x `shift` from run n_runs // 2 on) is named at that run and nothing else."""
    import numpy as np

    from genbench.harness.verdicts.history import RunInfo, _Point, find_changes

    rng = np.random.default_rng(0)
    infos = [RunInfo(f"run{i}", f"{i:040d}", str(i)) for i in range(n_runs)]
    any_change = exact = 0
    for _ in range(histories):
        log = np.log(100.0) + spread * rng.standard_normal((points, n_runs, seeds))
        log[0, n_runs // 2:] += np.log(shift)
        tests = [_Point("a", f"c{i}", "", "fid_domain", "log", False, list(range(n_runs)),
                        np.exp(log[i]), list(range(seeds)), alpha) for i in range(points)]
        found = find_changes(tests, infos, [], alpha)
        any_change += bool(found)
        exact += [(c.cell, c.run) for c in found] == [("c0", n_runs // 2)]
    return any_change / histories, exact / histories


def simulated(args, runs: int, alpha: float) -> None:
    if "claims" in args.parts:
        claims_table(args, runs, alpha)
    if "boundaries" in args.parts:
        boundaries_table(args, alpha)
    if "three" in args.parts:
        three = claim_rates(effect=0.0, max_seeds=10, first=args.first, claims=3, runs=runs,
                            alpha=alpha, seed=40)
        print(f"\nthree claims of one run, A/A, --max-seeds 10: any false verdict in "
              f"{pct(three.decided, three.se(three.decided))} of runs (Holm over the looks)")
    if "history" in args.parts:
        n = max(200, runs // 4)
        aa, _ = history_rates(n, alpha=alpha)
        any_change, exact = history_rates(n, shift=1.6, alpha=alpha)
        se = lambda r: math.sqrt(r * (1 - r) / n)  # noqa: E731
        print(f"\ngenbench history (binary segmentation, BH over 20 points, 8 runs of 4 seeds, "
              f"per-seed log spread 0.1), {n} simulated histories a row:\n"
              "| truth | histories with any change | exactly the shifted point, at its run |\n"
              "|---|---|---|\n"
              f"| nothing changed | {pct(aa, se(aa))} | - |\n"
              f"| one point x1.6 from run 4 | {pct(any_change, se(any_change))} | "
              f"{pct(exact, se(exact))} |", flush=True)
    if "gate" in args.parts:
        gate_table(runs, alpha)
    print(f"\nthe Monte-Carlo error of a rate r over n runs is sqrt(r (1 - r) / n): "
          f"{math.sqrt(alpha * (1 - alpha) / runs):.2%} at {alpha:g} over {runs}")


def claims_table(args, runs: int, alpha: float) -> None:
    print(f"--until-decided, one claim, paired t, alpha {alpha:g}, first look at {args.first} "
          f"seeds, {runs} simulated runs a row (± one Monte-Carlo standard error)")
    print("| max seeds | false verdicts, A/A (design) | power at 1 sd | mean seeds (A/A, 1 sd) "
          "| false verdicts, every round at alpha (before) | ratio |")
    print("|---|---|---|---|---|---|")
    for k, max_seeds in enumerate(args.max_seeds):
        aa = claim_rates(effect=0.0, max_seeds=max_seeds, first=args.first, runs=runs,
                         alpha=alpha, seed=10 + k)
        hit = claim_rates(effect=1.0, max_seeds=max_seeds, first=args.first, runs=runs // 2,
                          alpha=alpha, seed=20 + k)
        naive = claim_rates(effect=0.0, max_seeds=max_seeds, first=args.first, runs=runs,
                            alpha=alpha, seed=30 + k, design=EveryLookAtAlpha)
        print(f"| {max_seeds} | {pct(aa.decided, aa.se(aa.decided))} | "
              f"{pct(hit.reproduced, hit.se(hit.reproduced))} | {aa.seeds:.1f}, {hit.seeds:.1f} | "
              f"{pct(naive.decided, naive.se(naive.decided))} | "
              f"x{naive.decided / max(aa.decided, 1e-9):.2f} |", flush=True)


def boundaries_table(args, alpha: float) -> None:
    print(f"\nthe same boundaries (stats.sequential_levels) on {PATHS:,} simulated A/A paths at once "
          "(the paired t of each planned look, column-wise: the Monte-Carlo error of the rows "
          "above, a hundredth of it):")
    print("| max seeds | looks | false verdicts, A/A |\n|---|---|---|")
    for max_seeds in args.max_seeds:
        looks, rate = boundary_rate(args.first, max_seeds, alpha)
        print(f"| {max_seeds} | {', '.join(map(str, looks))} | "
              f"{pct(rate, math.sqrt(rate * (1 - rate) / PATHS), 2)} |", flush=True)


def gate_table(runs: int, alpha: float) -> None:
    from genbench.studies.regression import PLANNING_NOISE, POINTS, SEEDS

    n = runs // 4
    print(f"\nthe regression gate: points of a log-scale metric paired by seed, per-seed "
          f"log-ratio spread {PLANNING_NOISE:g}, Benjamini-Hochberg at alpha {alpha:g}, {n} "
          "simulated comparisons a cell; power: one point regressed among the regression "
          f"study's {POINTS} (its largest arm's)")
    print("| seeds | false alarms, A/A, 50 points | false alarms, A/A, "
          f"{POINTS} points | power, 1.5x worse | power, 3x worse |")
    print("|---|---|---|---|---|")
    for seeds in sorted({2, 5, len(SEEDS)}):
        aa50 = gate_rates(points=50, seeds=seeds, sd=PLANNING_NOISE, runs=n, alpha=alpha,
                          seed=40 + seeds)
        aa = gate_rates(points=POINTS, seeds=seeds, sd=PLANNING_NOISE, runs=n,
                        alpha=alpha, seed=50 + seeds)
        x15 = gate_rates(points=POINTS, seeds=seeds, sd=PLANNING_NOISE, regressed=(0,),
                         ratio=1.5, runs=n, alpha=alpha, seed=60 + seeds)
        x3 = gate_rates(points=POINTS, seeds=seeds, sd=PLANNING_NOISE, regressed=(0,), ratio=3.0,
                        runs=n, alpha=alpha, seed=70 + seeds)
        mark = " (the regression study)" if seeds == len(SEEDS) else ""
        print(f"| {seeds}{mark} | {pct(aa50.decided, aa50.se(aa50.decided))} | "
              f"{pct(aa.decided, aa.se(aa.decided))} | "
              f"{pct(x15.reproduced, x15.se(x15.reproduced))} | "
              f"{pct(x3.reproduced, x3.se(x3.reproduced))} |", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())

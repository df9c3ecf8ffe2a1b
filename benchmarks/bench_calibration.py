"""The error rates of genbench's verdicts, by simulation of the procedures themselves
(`genbench.harness.calibration`: the real `claims.decide`, `more_seeds` and `compare._judge` on
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

from genbench.harness.calibration import claim_rates, gate_rates
from genbench.harness.sequential import Design


class EveryLookAtAlpha(Design):
    """The rule before the group-sequential design: every round tested at the full alpha."""

    def level(self, looks, alpha):
        return alpha


def pct(rate: float, se: float) -> str:
    return f"{rate:6.1%} ± {se:.1%}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=4000, help="simulated runs per row")
    p.add_argument("--max-seeds", type=int, nargs="+", default=[3, 5, 10, 20])
    p.add_argument("--first", type=int, default=2, help="seeds of the first look")
    p.add_argument("--alpha", type=float, default=0.05)
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


def simulated(args, runs: int, alpha: float) -> None:
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
    three = claim_rates(effect=0.0, max_seeds=10, first=args.first, claims=3, runs=runs,
                        alpha=alpha, seed=40)
    print(f"\nthree claims of one run, A/A, --max-seeds 10: any false verdict in "
          f"{pct(three.decided, three.se(three.decided))} of runs (Holm over the looks)")

    from genbench.studies.regression import PLANNING_NOISE, POINTS, SEEDS

    print(f"\nthe regression gate, {POINTS} points of a log-scale metric paired by seed, "
          f"per-seed log-ratio spread {PLANNING_NOISE:g}, Benjamini-Hochberg at alpha {alpha:g}, "
          f"{runs // 4} simulated comparisons a row")
    print("| seeds | false alarms, A/A | power, one point 1.5x worse | power, one point 3x worse |")
    print("|---|---|---|---|")
    for seeds in sorted({2, 5, len(SEEDS)}):
        aa = gate_rates(points=POINTS, seeds=seeds, sd=PLANNING_NOISE, runs=runs // 4,
                        alpha=alpha, seed=50 + seeds)
        x15 = gate_rates(points=POINTS, seeds=seeds, sd=PLANNING_NOISE, regressed=(0,),
                         ratio=1.5, runs=runs // 4, alpha=alpha, seed=60 + seeds)
        x3 = gate_rates(points=POINTS, seeds=seeds, sd=PLANNING_NOISE, regressed=(0,), ratio=3.0,
                        runs=runs // 4, alpha=alpha, seed=70 + seeds)
        mark = " (the regression study)" if seeds == len(SEEDS) else ""
        print(f"| {seeds}{mark} | {pct(aa.decided, aa.se(aa.decided))} | "
              f"{pct(x15.reproduced, x15.se(x15.reproduced))} | "
              f"{pct(x3.reproduced, x3.se(x3.reproduced))} |", flush=True)
    print(f"\nthe Monte-Carlo error of a rate r over n runs is sqrt(r (1 - r) / n): "
          f"{math.sqrt(alpha * (1 - alpha) / runs):.2%} at {alpha:g}")


if __name__ == "__main__":
    raise SystemExit(main())

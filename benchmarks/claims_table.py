"""The claims table of docs/compare-and-claims.md from real runs: for each run directory, every claim its study
declares with its verdict as `genbench claims` gives it, the seeds behind it and the run's wall
time (from its rows: the first fit's start to the last row written; `--wall NAME=SECONDS`
gives a measured one instead).

    python benchmarks/claims_table.py /tmp/meas/sde_toy /tmp/meas/cm_steps --wall sde_toy=180

prints markdown rows: study | claim | source | scale | seeds | wall time | verdict.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from genbench.harness.verdicts.judge import judge_run
from genbench.harness.plan.plan import read_plan
from genbench.harness.store.results import read_results


def wall_from_rows(out: Path) -> float:
    """Seconds from the first fit's start (its first row minus its train time) to the last row."""
    rows = read_results(out, warn=lambda _: None)
    if rows.empty:
        return float("nan")
    train = rows[rows.metric == "train_s"]
    start = (train.created_at - pd.to_timedelta(train.value, unit="s")).min()
    return (rows.created_at.max() - start).total_seconds()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--wall", action="append", default=[], metavar="NAME=SECONDS",
                   help="measured wall time of a run (its directory name)")
    args = p.parse_args(argv)
    walls = {k: float(v) for k, v in (w.split("=", 1) for w in args.wall)}
    print("| study | claim | source | seeds | wall time (2 cores) | verdict |")
    print("| --- | --- | --- | --- | --- | --- |")
    for out in args.runs:
        plan = read_plan(out)
        wall = walls.get(out.name, wall_from_rows(out))
        for r in judge_run(out, plan):
            verdict = f"**{r.verdict}**"
            if r.ci[0] == r.ci[0]:  # an interval: the numbers `genbench claims` prints
                verdict += " " + r.numbers().removeprefix("effect ")
            if r.verdict == "inconclusive":
                verdict += f"; {r.why.split('; ')[-1]}"
            print(f"| {plan.study if plan else out.name} | `{r.claim}` | {r.source} | {r.seeds} | "
                  f"{wall / 60:.1f} min | {verdict} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

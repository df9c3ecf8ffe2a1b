"""The README's quickstart figure and quoted claim lines, made from a run, never typed.

    make quickstart                                             # a fresh run
    python benchmarks/readme_figures.py results/quickstart/smoke           # figure + lines
    python benchmarks/readme_figures.py results/quickstart/smoke --check   # README == run?

Writes docs/img/quickstart_fid_domain_vs_nfe.png with the report's own figure function from the
run's Parquet tables (`genbench.reports.figures.quality_vs_cost`, the real-data floor dashed),
and prints the run's claim
lines as `genbench run` prints them. With --check it writes nothing and exits 1 naming each
claim line the README quotes that the run does not give.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURE = "quickstart_fid_domain_vs_nfe.png"


def claim_lines(run: Path) -> list[str]:
    from genbench.harness.plan.plan import read_plan
    from genbench.harness.verdicts.judge import judge_run

    return [f"claim {r.line()}" for r in judge_run(run, read_plan(run))]


def write_figure(run: Path, img: Path) -> Path | None:
    """The report's quality-against-NFE figure of the run, its real-data floor dashed."""
    from genbench.harness.store.results import REAL_ARM
    from genbench.reports import figures
    from genbench.reports.page import floor_of
    from genbench.reports.tables import load_runs

    (r,) = load_runs([run])
    rows = r.rows.assign(run=0)
    arms = list(dict.fromkeys(t.arm for t in (r.plan.trials if r.plan else ()) if t.arm))
    img.mkdir(parents=True, exist_ok=True)
    return figures.quality_vs_cost(rows[rows.arm != REAL_ARM], "fid_domain", "nfe",
                                   figures.palette(arms), img / FIGURE, multi_run=False,
                                   floor=floor_of(rows, "fid_domain", multi=False))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a quickstart run directory")
    p.add_argument("--img", type=Path, default=ROOT / "docs" / "img", help="where the figure goes")
    p.add_argument("--readme", type=Path, default=ROOT / "README.md")
    p.add_argument("--check", action="store_true", help="only compare the README's claim lines")
    args = p.parse_args(argv)
    lines = claim_lines(args.run)
    if args.check:
        quoted = [x for x in args.readme.read_text().splitlines() if x.startswith("claim ")]
        wrong = [x for x in quoted if x not in lines]
        for x in wrong:
            print(f"the README quotes a line this run does not give: {x}", file=sys.stderr)
        return 1 if wrong else 0
    path = write_figure(args.run, args.img)
    print(f"figure: {path}" if path else "no figure: the run has no fid_domain or nfe rows")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

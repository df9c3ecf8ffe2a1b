"""The test suite's and the quickstart's wall time, measured in a fresh clone of the current
commit, as docs/performance.md shows them (the README keeps no seconds: they change with the
machine, not with the product).

    python benchmarks/bench_suite.py                     # both, in one fresh clone
    python benchmarks/bench_suite.py --only suite        # `make test` alone
    python benchmarks/bench_suite.py --write docs/performance.md

Each part runs the README's own command in the clone (`make test`; `make quickstart`, which
installs the clone's virtual environment first: the install is part of a newcomer's time) and
prints one markdown row: what, seconds, commit, date, cores. `--write FILE` replaces the rows
between FILE's `<!-- bench_suite -->` markers with the new ones.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PARTS = {"quickstart": ["make", "quickstart"], "suite": ["make", "test"]}
MARK = "<!-- bench_suite -->"
HEADER = "| what | wall time | outcome | commit | date | cores |\n|---|---|---|---|---|---|"


def timed(cmd: list[str], cwd: Path) -> tuple[float, str]:
    """Seconds a command took in `cwd`, and its outcome: its last pytest summary line, else
    its exit status."""
    start = time.monotonic()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "CI": "true"})
    seconds = time.monotonic() - start
    summary = [ln.strip("= ") for ln in proc.stdout.splitlines() if re.search(r"\d+ passed", ln)]
    return seconds, (summary[-1] if summary else f"exit {proc.returncode}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=sorted(PARTS), nargs="+", default=list(PARTS))
    p.add_argument("--write", type=Path, metavar="FILE",
                   help=f"replace the rows between FILE's {MARK} markers")
    args = p.parse_args(argv)
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory(prefix="genbench-clone-") as tmp:
        clone = Path(tmp) / "genbench"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        for part in args.only:  # (the quickstart first: its time includes the install)
            seconds, outcome = timed(PARTS[part], clone)
            row = (f"| `{' '.join(PARTS[part])}` in a fresh clone | {seconds:.0f} s | {outcome} | "
                   f"{sha} | {datetime.date.today()} | {os.cpu_count()} |")
            print(row, flush=True)
            rows.append(row)
    if args.write:
        text = args.write.read_text()
        if text.count(MARK) != 2:
            print(f"bench_suite: {args.write} lacks two {MARK} markers", file=sys.stderr)
            return 2
        head, _, tail = text.split(MARK)
        args.write.write_text(f"{head}{MARK}\n{HEADER}\n" + "\n".join(rows) + f"\n{MARK}{tail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: a study of many tiny trials through `genbench run` (Ray Tune on a local Ray):
every row present, wall time per trial, and the driver's memory. The driver's peak RSS is
sampled from /proc while the run goes, and its growth per trial shows whether it stays bounded.

    .venv/bin/python benchmarks/bench_load.py [--trials 200] [--reuse-workers]

Each trial is the `dummy` method (milliseconds of work), so the figures are the harness's
fixed cost per trial: Ray worker start, imports, ledger, Parquet writes.
"""

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

STUDY = """
from genbench.harness.plan.study import Scale, Study
STUDY = Study(name="load", method="dummy", data="mnist5k", seeds=tuple(range({seeds})),
              train_grid={{"lr": [0.25, 0.5]}},
              scales={{"smoke": Scale(budget_steps=20, n_samples=4, log_every=10)}})
"""


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200, help="an even number (2 cells x seeds)")
    ap.add_argument("--reuse-workers", action="store_true",
                    help="run with --reuse-workers (one Ray worker process for many trials)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        study = Path(tmp) / "load.py"
        study.write_text(STUDY.format(seeds=args.trials // 2))
        out = Path(tmp) / "out"
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "genbench", "run", str(study), "--out",
                                 str(out), "--no-report",
                                 *(["--reuse-workers"] if args.reuse_workers else [])],
                                stdout=subprocess.PIPE, text=True)
        samples: list[tuple[int, float]] = []  # (trials done, driver RSS MB)
        done = 0

        def sample() -> None:
            while proc.poll() is None:
                samples.append((done, rss_mb(proc.pid)))
                time.sleep(0.5)

        threading.Thread(target=sample, daemon=True).start()
        for line in proc.stdout:
            if line.lstrip().startswith("["):
                done += 1
        proc.wait()
        wall = time.perf_counter() - t0
        from genbench.harness.store.results import read_results

        df = read_results(out)
        peak = max(m for _, m in samples)
        early = max((m for d, m in samples if d <= args.trials // 10), default=float("nan"))
        print(f"trials: {args.trials}; exit status {proc.returncode}; trials with rows: "
              f"{df.trial_id.nunique()}; rows: {len(df)}")
        print(f"wall: {wall:.0f} s, {wall / args.trials:.2f} s per trial (2 CPUs, 1 CPU each)")
        half = args.trials // 2
        first = max((m for d, m in samples if d <= half), default=float("nan"))
        second = max((m for d, m in samples if d > half), default=float("nan"))
        print(f"driver RSS: {early:.0f} MB after 10 % of the trials, {peak:.0f} MB peak; growth "
              f"{(peak - early) / max(1, args.trials * 0.9) * 1024:.0f} KB per trial; peak over "
              f"the first half of the trials {first:.0f} MB, over the second {second:.0f} MB")
        return {"trials": df.trial_id.nunique(), "rows": len(df), "status": proc.returncode,
                "early_mb": early, "peak_mb": peak, "wall_s": wall}


if __name__ == "__main__":
    main()

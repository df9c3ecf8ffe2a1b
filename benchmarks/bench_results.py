"""How genbench's readers grow with the number of trials in a run directory.

It writes a run directory of N trials through genbench's own writers (`Rows`, the rows a trial
of the dummy method writes: five cost rows per fit; per sample setting, two of them, nfe, time,
memory and fid_domain), with the plan that matches (study.json, plans/), for each N asked. Then
it times, each in a fresh process with its peak memory: the ledger's check of the plan
(`genbench.harness.run.ledger.scan`), `genbench report`, `genbench compare` of the run with itself,
`genbench claims`, and `pandas.read_parquet(OUT/results)`; before compaction (one small file
per trial and unit, as trials write them) and after it (`genbench.harness.store.compaction.compact`,
which the driver runs at the end of a run). It prints a table and the growth factor per 10x
of trials.

    python benchmarks/bench_results.py                       # N = 1,000 and 10,000
    python benchmarks/bench_results.py --trials 1000 10000 100000 --skip-small 100000
    python benchmarks/bench_results.py --trials 1000 --reference /tmp/old-genbench
    python benchmarks/bench_results.py --trials 100000 --skip-small 100000 --keep /tmp/runs

`--keep DIR` writes the run directories under DIR (run-N) and leaves them there; a later call
with the same DIR reuses them instead of writing them again (to profile one reader).

`--reference DIR` also times an older genbench's readers (DIR/genbench, e.g. a git worktree
of an earlier commit linked there) on the same small files: the before of a change.

`--skip-small N` writes run N straight into compacted parts (writing 300,000 small files, each
synced, takes most of an hour on 2 cores) and measures only the compacted directory.

`--history RUNS --trials N` times `genbench history` over RUNS runs of N trials each (one run
written, compacted, then copied with its own noise, commit and time per run; each run of N
trials holds about 2.5 N points), in a fresh process with its peak memory:

    python benchmarks/bench_results.py --history 200 --trials 4000    # 200 runs x ~10,000 points
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEEDS = 4
LIMIT_S = 600  # a step still running after this is stopped (shown as inf)
SETTINGS = (0.1, 0.5)  # the dummy's `noise` knob: two sample settings per fit


def study(n_trials: int):
    from genbench import Scale, Study

    cells = max(1, n_trials // SEEDS)
    return Study(name="growth", method="dummy", data="mnist5k", seeds=tuple(range(SEEDS)),
                 train_grid={"lr": [round(1e-4 * (i + 1), 6) for i in range(cells)]},
                 sample_grid={"noise": list(SETTINGS)}, metrics=("fid_domain",),
                 claims=("fid_domain: noise=0.1 better than noise=0.5 (mean)",),
                 scales={"smoke": Scale(budget_steps=10, n_samples=64)})


def write_run(out: Path, n_trials: int, compacted: bool, *, git_sha: str = "bench",
              noise_seed: int = 0, shift: dict | None = None) -> tuple[int, float]:
    """The run directory: every trial's rows through `Rows`; returns (rows, seconds). A
    history's runs (`benchmarks/bench_results.py --history`, tests/test_history.py) differ by
    commit (`git_sha`), by their own noise (`noise_seed`) and by `shift`: {(lr, noise): factor}
    multiplies that point's fid_domain."""
    import random
    from datetime import datetime, timezone

    import pyarrow as pa
    import pyarrow.parquet as pq
    import torch

    import genbench
    from genbench.harness.config import canonical_json
    from genbench.harness.run.ledger import Unit, record_plan
    from genbench.harness.metrics import higher_is_better
    from genbench.harness.store.files import atomic_write_bytes
    from genbench.harness.store.results import PART_PREFIX, SOURCES_KEY, rows_to_table
    from genbench.harness.run.rows import Env, Rows
    from genbench.harness.store.rundir import RunDir

    start = time.perf_counter()
    plan = genbench.plan(study(n_trials), scale="smoke")
    record_plan(out, plan)
    env = Env(git_sha=git_sha, versions_json="{}", assets_dir="/tmp")
    run, rng, total = RunDir(out), random.Random(noise_seed), 0
    batch: list[dict] = []
    sources: list[list] = []
    for i, trial in enumerate(plan.trials):
        rows = Rows(plan, trial, env, torch.device("cpu"))
        rows.per_step = 64
        lr = trial.config.get("lr", 0.0)  # (the real-data floor's trials have none)
        fit = [rows.fit_row(m, v, 10) for m, v in (
            ("train_s", rng.uniform(1, 2)), ("train_images_per_s", rng.uniform(400, 500)),
            ("n_params", 1), ("final_loss", lr + rng.gauss(0, 1e-5)),
            ("peak_mem_mb", rng.uniform(900, 950)))]
        files = [(run.fit_file(trial.trial_id), fit)]
        for setting in plan.settings_for(trial):
            key = plan.sampling_key(trial, setting)
            unit = Unit(setting.key, key, plan.measured())
            common = {"sample_json": canonical_json({**setting.knobs, "nfe": 1}),
                      "setting_json": canonical_json(setting.cell), "n_samples": plan.n_samples,
                      "cell_key": plan.cell_key(trial, setting), "run_key": key}
            fid = 100 * setting.cell.get("noise", 0.0) + 1e5 * lr + rng.gauss(0, 1)
            fid *= (shift or {}).get((lr, setting.cell.get("noise")), 1.0)
            files.append((run.unit_file(trial.trial_id, key, unit.metrics_key), [
                {"metric": m, "value": v, **common} for m, v in (
                    ("nfe", 1.0), ("sample_s_per_image", rng.uniform(1e-4, 2e-4)),
                    ("sample_peak_mem_mb", rng.uniform(900, 950)), ("fid_domain", fid))]))
        for path, part in files:
            total += len(part)
            if compacted:  # the rows `Rows.write` would write, batched into parts that
                batch += [{**rows.base, "created_at": datetime.now(timezone.utc),  # list them
                           "higher_is_better": higher_is_better(r["metric"]), **r} for r in part]
                sources.append([path.name, 0, 0, len(part)])
            else:
                rows.write(path, part)
        if compacted and (len(batch) >= 200_000 or i == len(plan.trials) - 1):
            table = rows_to_table(batch).replace_schema_metadata(
                {SOURCES_KEY: json.dumps(sources).encode()})
            sink = pa.BufferOutputStream()
            pq.write_table(table, sink)
            atomic_write_bytes(run.results / f"{PART_PREFIX}bench{i:08d}.parquet",
                               sink.getvalue().to_pybytes())
            batch, sources = [], []
    return total, time.perf_counter() - start


STEPS = {
    "ledger check": "from genbench.harness.run.ledger import scan; from genbench.harness.plan.plan import Plan; "
                    "p = Plan.from_json(open('{out}/study.json').read()); "
                    "l = scan('{out}', p, echo=lambda _: None); assert not l.work, len(l.work)",
    "report": "from genbench.harness.cli import main; assert main(['report', '{out}', '--out', '{tmp}/page']) == 0",
    "compare": "from genbench.harness.cli import main; assert main(['compare', '{out}', '{out}']) == 0",
    "claims": "from genbench.harness.cli import main; main(['claims', '{out}'])",
    "pandas read": "import pandas as pd; pd.read_parquet('{out}/results')",
    "history": "import contextlib, io; from genbench.harness.cli import main; "
               "f = io.StringIO(); c = contextlib.redirect_stdout(f); c.__enter__(); "
               "main(['history', '{out}', '--json', '--acks', '{tmp}/acks.json'])",
}


def write_history(root: Path, runs: int, n_trials: int) -> int:
    """RUNS copies of one compacted run of N trials under ROOT, each with its own noise on every
    value (1 %), its own commit and a later time; returns the points of one run."""
    import shutil
    from datetime import datetime, timedelta, timezone

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    write_run(root / "run0", n_trials, compacted=True, git_sha="0" * 40)
    files = sorted((root / "run0" / "results").glob("*.parquet"))
    points = len(pq.read_table(files, columns=["cell_key", "metric"]).to_pandas().drop_duplicates())
    rng = np.random.default_rng(0)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(1, runs):
        run = root / f"run{i}"
        shutil.copytree(root / "run0", run)
        for f in sorted((run / "results").glob("*.parquet")):
            t = pq.read_table(f)
            value = t.column("value").to_numpy() * (1 + 0.01 * rng.standard_normal(t.num_rows))
            t = t.set_column(t.schema.get_field_index("value"), "value", pa.array(value))
            t = t.set_column(t.schema.get_field_index("git_sha"), "git_sha",
                             pa.array([f"{i:040d}"] * t.num_rows))
            made = pa.array([start + timedelta(days=i)] * t.num_rows, t.schema.field("created_at").type)
            t = t.set_column(t.schema.get_field_index("created_at"), "created_at", made)
            pq.write_table(t, f)
    return points


def measure(name: str, out: Path, tmp: Path, reference: str | None = None) -> tuple[float, float]:
    """(seconds, peak MB) of one step in a fresh Python process, imports included; with
    `reference`, the genbench found there (PYTHONPATH) instead of this one."""
    import os

    code = STEPS[name].format(out=out, tmp=tmp)
    env = {**os.environ, "PYTHONPATH": reference} if reference else None
    start = time.perf_counter()
    try:
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", sys.executable, "-c", code],
                              capture_output=True, text=True, timeout=LIMIT_S, env=env)
    except subprocess.TimeoutExpired:
        print(f"    {name}: stopped after {LIMIT_S} s", file=sys.stderr)
        return float("inf"), float("nan")
    wall = time.perf_counter() - start
    if proc.returncode:
        tail = proc.stderr.strip().splitlines()[-2:]
        print(f"    {name} failed: {' | '.join(tail)}", file=sys.stderr)
        return float("nan"), float("nan")
    return wall, int(proc.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--skip-small", type=int, nargs="*", default=[],
                    help="sizes written straight into compacted parts")
    ap.add_argument("--steps", nargs="+", default=list(STEPS), choices=list(STEPS))
    ap.add_argument("--keep", metavar="DIR", help="write the run directories under DIR and keep "
                    "them (reused when there already)")
    ap.add_argument("--reference", metavar="DIR",
                    help="a directory whose genbench/ is an older genbench (a git worktree linked "
                         "as DIR/genbench): its readers are timed too, on the small files")
    ap.add_argument("--history", type=int, metavar="RUNS",
                    help="time `genbench history` over RUNS runs of each --trials size instead")
    args = ap.parse_args()
    import pandas as pd

    if args.history:
        for n in args.trials:
            with tempfile.TemporaryDirectory(prefix="bench_history_") as tmp:
                root = Path(args.keep or tmp) / f"history-{args.history}x{n}"
                t = time.perf_counter()
                points = write_history(root, args.history, n) if not (root / "run0").is_dir() else -1
                print(f"  (wrote {args.history} runs of {n} trials, {points} points each, in "
                      f"{time.perf_counter() - t:.0f} s)", file=sys.stderr)
                wall, mb = measure("history", root, Path(tmp))
                print(f"history of {args.history} runs x {points} points: {wall:.1f} s, {mb:.0f} MB",
                      flush=True)
        return

    from genbench.harness.store.compaction import compact
    from genbench.harness.store.results import results_files

    results: dict[tuple[str, str, int], tuple[float, float]] = {}
    print(f"{'trials':>8} {'rows':>9} {'layout':>10} {'files':>7} " +
          " ".join(f"{s:>20}" for s in args.steps))
    for n in args.trials:
        with tempfile.TemporaryDirectory(prefix="bench_results_") as tmp:
            out = Path(args.keep) / f"run-{n}" if args.keep else Path(tmp) / "run"
            direct = n in args.skip_small
            if (out / "study.json").is_file():
                n_rows = len(pd.read_parquet(out / "results", columns=["metric"]))
                print(f"  (reused {out}: {n_rows} rows)", file=sys.stderr)
            else:
                n_rows, write_s = write_run(out, n, compacted=direct)
                print(f"  (wrote {n} trials, {n_rows} rows in {write_s:.0f} s)", file=sys.stderr)
            layouts = ["compacted"] if direct else ["small", "compacted"]
            if args.reference and not direct:
                layouts.insert(0, "reference")
            for layout in layouts:
                if layout == "compacted" and not direct:
                    t = time.perf_counter()
                    compact(out)
                    print(f"  (compacted in {time.perf_counter() - t:.1f} s)", file=sys.stderr)
                cells = []
                for step in args.steps:
                    wall, mb = measure(step, out, Path(tmp),
                                       args.reference if layout == "reference" else None)
                    results[(step, layout, n)] = (wall, mb)
                    cells.append(f"{wall:7.1f} s {mb:7.0f} MB" if wall < LIMIT_S else f"> {LIMIT_S} s")
                print(f"{n:>8} {n_rows:>9} {layout:>10} {len(results_files(out)):>7} "
                      + " ".join(f"{c:>20}" for c in cells), flush=True)
    sizes = sorted(args.trials)
    for layout in ("reference", "small", "compacted"):
        for a, b in zip(sizes, sizes[1:]):
            if (args.steps[0], layout, a) in results and (args.steps[0], layout, b) in results:
                growth = [results[(s, layout, b)][0] / results[(s, layout, a)][0] for s in args.steps]
                print(f"growth {a} -> {b} trials ({layout}, x{b / a:g}): " +
                      ", ".join(f"{s} x{g:.1f}" for s, g in zip(args.steps, growth)))


if __name__ == "__main__":
    main()

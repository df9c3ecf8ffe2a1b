"""Benchmark 2: harness overhead. The same smoke trials run through `genbench run` (Ray Tune:
one fresh worker process per trial, and `--reuse-workers`) and in this process without Ray
(`execute_trial` in a loop), one trial at a time with the same threads, in interleaved rounds;
prints each round's wall times, the median ratios (target at most 1.10 for trials of a minute
or more) and the fixed cost per trial, and splits the difference into the fits and samplings
themselves (timed inside the trials: slower where Ray's processes share the cores) and the time
around them (process start, Tune's bookkeeping, file staging).

    .venv/bin/python benchmarks/bench_overhead.py [--study ddpm_timesteps] [--rounds 2]
                                                  [--set KEY=VALUE ...]

`make bench` passes `--set budget_steps=400`: trials of about a minute on a 2-core CPU, the
length target 2 speaks of (the smoke scale's 300 steps give about 50 s).

All paths write full run directories (rows, curves, checkpoints, sample grids) and must
write the same rows; the quality metrics' assets are prepared before anything is timed, and
Ray's own start (once per run) is timed apart.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

PATHS = {"alone": "in one process, no Ray", "fresh": "genbench run, a fresh process per trial",
         "reuse": "genbench run, --reuse-workers"}


def main() -> None:
    from genbench.harness.run.cluster import connect
    from genbench.harness.run.ledger import scan
    from genbench.harness.store.results import read_results
    from genbench.harness.run.driver import prepare_metrics, run_study, trial_env as _env
    import genbench
    from genbench.harness.plan.study import parse_sets
    from genbench.harness.run.trial import execute_trial

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="ddpm_timesteps")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    # one trial at a time with every core, in every path
    sets = {"seeds": [0], **parse_sets(args.sets), "cpu": cpus}
    plan = genbench.plan(args.study, scale="smoke", sets=sets)
    prepare_metrics(plan, echo=lambda _: None)
    n = len(plan.trials)
    t0 = time.perf_counter()
    connect(None)  # Ray's start: once per run, apart
    t_ray = time.perf_counter() - t0
    wall: dict[str, list[float]] = {k: [] for k in PATHS}
    inside: dict[str, list[float]] = {k: [] for k in PATHS}
    same = True
    print(f"{plan.study} [smoke], {n} trials one at a time, {cpus} threads each; "
          f"{args.rounds} interleaved rounds")
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            for key in PATHS:
                out = Path(tmp) / key
                t0 = time.perf_counter()
                if key == "alone":
                    torch.set_num_threads(cpus)
                    env, device = _env(), torch.device("cpu")
                    for work in scan(out, plan, echo=lambda _: None).work:
                        execute_trial(plan, work, out, env, device)
                else:
                    run_study(plan, out, echo=lambda _: None, reuse_workers=key == "reuse")
                wall[key].append(time.perf_counter() - t0)
                inside[key].append(_inside(out))
            rows = {key: sorted(zip(df.trial_id, df.metric)) for key, df in
                    ((k, read_results(Path(tmp) / k)) for k in PATHS)}
            same &= rows["alone"] == rows["fresh"] == rows["reuse"]
        print(f"  round {r + 1}: " + ", ".join(f"{k} {wall[k][-1]:.1f} s" for k in PATHS))
    med = {k: statistics.median(v) for k, v in wall.items()}
    ins = {k: statistics.median(v) for k, v in inside.items()}
    print(f"  {PATHS['alone'] + ':':<42} {med['alone']:7.1f} s ({med['alone'] / n:.1f} s per trial)")
    for key in ("fresh", "reuse"):
        ratios = [w / a for w, a in zip(wall[key], wall["alone"])]
        print(f"  {PATHS[key] + ':':<42} {med[key]:7.1f} s  x{statistics.median(ratios):.3f} "
              f"(rounds: {', '.join(f'x{x:.3f}' for x in ratios)}; target <= 1.10 for trials of "
              f"a minute or more); fixed cost {(med[key] - med['alone']) / n:.2f} s per trial")
    for key in ("fresh", "reuse"):
        print(f"  {key}: the fits and samplings {ins[key]:.1f} s against {ins['alone']:.1f} s "
              f"alone (x{ins[key] / ins['alone']:.3f}); around them {(med[key] - ins[key]) / n:.2f} s "
              f"per trial against {(med['alone'] - ins['alone']) / n:.2f} s")
    print(f"  (medians; Tune's start included, Ray's, {t_ray:.1f} s once per run, not; the same "
          f"rows in every path: {same})")


def _inside(out: Path) -> float:
    """Seconds the trials spent fitting and sampling, from their own rows."""
    from genbench.harness.store.results import read_results

    df = read_results(out)
    fit = df[df.metric == "train_s"].value.sum()
    per_image = df[df.metric == "sample_s_per_image"]
    return float(fit + (per_image.value * per_image.n_samples).sum())


if __name__ == "__main__":
    main()

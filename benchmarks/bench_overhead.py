"""Benchmark 2: harness overhead. The same smoke trials run through `genbench run` (Ray Tune:
one fresh worker process per trial, and `--reuse-workers`) and in this process without Ray
(`execute_trial` in a loop), one trial at a time with the same threads; prints the wall times,
their ratios (target at most 1.10 for trials of a minute or more) and the fixed cost per trial.

    .venv/bin/python benchmarks/bench_overhead.py [--study ddpm_timesteps] [--set KEY=VALUE ...]

Both paths write full run directories (rows, curves, checkpoints, sample grids) and must
write the same rows; the quality metrics' assets are prepared before either is timed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    from harness.ledger import scan
    from harness.results import read_results
    from harness.runner import _env, prepare_metrics, run_study
    from harness.study import load_study, parse_sets
    from harness.trial import execute_trial

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", default="ddpm_timesteps")
    ap.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    cpus = os.cpu_count() or 1
    # one trial at a time with every core, in both paths
    sets = {"seeds": [0], **parse_sets(args.sets), "cpu": cpus}
    plan = load_study(args.study).resolve("smoke", sets)
    prepare_metrics(plan, echo=lambda _: None)
    with tempfile.TemporaryDirectory() as tmp:
        alone = Path(tmp) / "alone"
        torch.set_num_threads(cpus)
        t0 = time.perf_counter()
        env, device = _env(), torch.device("cpu")
        for work in scan(alone, plan, echo=lambda _: None).work:
            execute_trial(plan, work, alone, env, device)
        t_alone = time.perf_counter() - t0
        from harness.cluster import connect

        t0 = time.perf_counter()
        connect(None)  # Ray's start: once per run, apart
        t_ray = time.perf_counter() - t0
        tuned = {}
        for reuse in (False, True):
            t0 = time.perf_counter()
            run_study(plan, Path(tmp) / f"tune-{reuse}", echo=lambda _: None, reuse_workers=reuse)
            tuned[reuse] = time.perf_counter() - t0
        a = read_results(alone)
        same = all(sorted(zip(a.trial_id, a.metric)) ==
                   sorted(zip(b.trial_id, b.metric)) for b in
                   (read_results(Path(tmp) / f"tune-{reuse}") for reuse in (False, True)))
    n = len(plan.trials)
    print(f"{plan.study} [smoke], {n} trials one at a time, {cpus} threads each")
    print(f"  in one process, no Ray: {t_alone:7.1f} s ({t_alone / n:.1f} s per trial)")
    for reuse, label in ((False, "a fresh process per trial"), (True, "--reuse-workers")):
        t = tuned[reuse]
        print(f"  genbench run, {label + ':':<27} {t:7.1f} s  x{t / t_alone:.3f} "
              f"(target <= 1.10 for trials of a minute or more); fixed cost "
              f"{(t - t_alone) / n:.2f} s per trial")
    print(f"  (Tune's start included; Ray's, {t_ray:.1f} s once per run, not; the same rows in "
          f"all three: {same})")
    # where the difference goes: the fits and samplings themselves (timed inside the trials,
    # slower when Ray's processes share the cores) against everything around them
    inside = {"alone": _inside(alone), **{reuse: _inside(Path(tmp) / f"tune-{reuse}")
                                          for reuse in (False, True)}}
    for key, label in ((False, "a fresh process per trial"), (True, "--reuse-workers")):
        t = tuned[key]
        print(f"  {label}: fits and samplings {inside[key]:.1f} s against {inside['alone']:.1f} s "
              f"alone (x{inside[key] / inside['alone']:.3f}); around them "
              f"{(t - inside[key]) / n:.2f} s per trial against {(t_alone - inside['alone']) / n:.2f} s")


def _inside(out: Path) -> float:
    """Seconds the trials spent fitting and sampling, from their own rows."""
    from harness.results import read_results

    df = read_results(out)
    fit = df[df.metric == "train_s"].value.sum()
    per_image = df[df.metric == "sample_s_per_image"]
    return float(fit + (per_image.value * per_image.n_samples).sum())


if __name__ == "__main__":
    main()

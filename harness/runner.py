"""The Ray Tune adapter (after Ray Tune's `tune_basic_example.py` and `mnist_pytorch.py`): one
trial per train-grid cell and seed, `tune.with_resources` with fractional GPUs, `grid_search`
over the pending trials. Everything a trial does is `harness.trial.execute_trial`, plain Python.

Resuming uses genbench's own ledger (a trial whose results file exists is done), not
`Tuner.restore`, so a rerun with the same study picks up exactly the unfinished cells.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from harness.assets import assets_dir
from harness.provenance import git_sha, versions_json
from harness.results import atomic_write_bytes, finished_trials
from harness.study import Plan
from harness.trial import Env, TrialOutcome


def run_trial(config: dict, *, plan_json: str, out_dir: str, env: dict, use_gpu: bool) -> None:
    """The Tune trainable: `config["trial"]` is one trial of the plan; execute it, report."""
    import torch
    from ray import tune

    from harness.provenance import pick_device
    from harness.study import Trial
    from harness.trial import execute_trial

    plan = Plan.from_json(plan_json)
    trial = Trial(**config["trial"])
    torch.set_num_threads(max(1, int(plan.resources.cpu)))
    device = pick_device("cuda" if use_gpu else "cpu")
    outcome = execute_trial(plan, trial, Path(out_dir), Env(**env), device)
    tune.report({"status": outcome.status, "rows": outcome.n_rows, "message": outcome.message})


def _trial_id(trial) -> str:
    return trial.config["trial"]["trial_id"]


def _progress_callback(total: int, echo):
    """A Tune callback printing one line as each trial starts and ends (Tune itself is
    silenced with verbose=0, so logs stay readable with hundreds of trials)."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self):
            self.ended = 0

        def on_trial_start(self, iteration, trials, trial, **info):
            echo(f"  started  {_trial_id(trial)}  {trial.config['trial']['cell'] or ''}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.ended += 1
            res = trial.last_result or {}
            extra = f": {res['message']}" if res.get("message") else ""
            echo(f"  [{self.ended}/{total}] {_trial_id(trial)} {res.get('status', '?')} "
                 f"in {res.get('time_total_s', 0):.0f}s{extra}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self.ended += 1
            echo(f"  [{self.ended}/{total}] {_trial_id(trial)} error")

    return Progress()


def prepare_metrics(plan: Plan, echo=print) -> None:
    """Build or load, in the driver, every asset the plan's quality metrics need (domain
    extractor, reference statistics), so trials only read them; fail early when one is missing
    and the study does not allow skipping it."""
    if not plan.metrics:
        return
    from harness.metrics.quality import Evaluator

    skipped = Evaluator(plan.data, plan.resolution, ref_split=plan.ref_split,
                        missing_assets=plan.missing_assets).prepare(plan.metrics, echo=echo)
    if skipped:
        echo(f"skipping {', '.join(skipped)}: Inception weights missing "
             "(see `genbench assets`); rows record the reason")


def concurrency(plan: Plan, cpus: float, gpus: float) -> int:
    """How many trials of `plan` run at once on `cpus` CPUs and `gpus` GPUs."""
    res = plan.resources
    by_cpu = math.floor(cpus / res.cpu) if res.cpu > 0 else len(plan.trials)
    by_gpu = math.floor(gpus / res.gpu + 1e-9) if (res.gpu > 0 and gpus > 0) else by_cpu
    return max(1, min(len(plan.trials) or 1, by_cpu, by_gpu))


def init_ray(address: str | None) -> None:
    """Join the cluster at `address`, or start a local Ray sized to this machine."""
    import ray

    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=os.cpu_count(), **kwargs)


def run_study(plan: Plan, out_dir: Path, *, address: str | None = None,
              storage: str | None = None, echo=None) -> list[TrialOutcome]:
    """Run every unfinished trial of `plan` on Ray Tune; return one outcome per trial run."""
    import ray
    from ray import tune

    echo = echo or (lambda line: print(line, flush=True))
    out_dir = Path(out_dir).resolve()  # trials chdir into their own directory
    done = finished_trials(out_dir)
    pending = [t for t in plan.trials if t.trial_id not in done]
    if pending:
        prepare_metrics(plan, echo)  # may fail: before anything is written to out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out_dir / "study.json", plan.to_json().encode())
    if done:
        echo(f"{len(plan.trials) - len(pending)} of {len(plan.trials)} trials already finished "
             f"in {out_dir}; running the other {len(pending)}")
    if not pending:
        return []
    init_ray(address)
    cluster = ray.cluster_resources()
    gpus = cluster.get("GPU", 0.0)
    use_gpu = plan.resources.gpu > 0 and gpus > 0
    resources = {"cpu": plan.resources.cpu, "gpu": plan.resources.gpu if use_gpu else 0}
    echo(f"{plan.study} [{plan.scale}]: {len(pending)} trials x {len(plan.samples)} sample "
         f"settings, {resources} per trial, "
         f"{concurrency(plan, cluster.get('CPU', 1), gpus)} at once")
    env = Env(git_sha=git_sha(), versions_json=versions_json(),
              assets_dir=str(assets_dir().resolve()))
    trainable = tune.with_parameters(run_trial, plan_json=plan.to_json(), out_dir=str(out_dir),
                                     env=dataclasses.asdict(env), use_gpu=use_gpu)
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={"trial": tune.grid_search([dataclasses.asdict(t) for t in pending])},
        tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=_trial_id,
                                    trial_dirname_creator=_trial_id),
        run_config=tune.RunConfig(name=f"{plan.study}-{plan.scale}",
                                  storage_path=storage or str(out_dir / "ray"), verbose=0,
                                  callbacks=[_progress_callback(len(pending), echo)],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    grid = tuner.fit()
    outcomes = []
    for result in grid:
        trial_id = result.config["trial"]["trial_id"]
        if result.error is not None:
            lines = str(result.error).strip().splitlines()
            outcomes.append(TrialOutcome(trial_id, "error", lines[-1] if lines else "error", 0))
        else:
            m = result.metrics
            outcomes.append(TrialOutcome(trial_id, m.get("status", "error"),
                                         m.get("message", ""), m.get("rows", 0)))
    return outcomes

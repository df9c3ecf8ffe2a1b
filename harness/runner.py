"""The Ray Tune adapter (after Ray Tune's `tune_basic_example.py` and `mnist_pytorch.py`): one
trial per train-grid cell and seed, `tune.with_resources` with fractional GPUs, `grid_search`
over the trials with work left. Everything a trial does is `harness.trial.execute_trial`, plain
Python.

Resuming uses genbench's own ledger (`harness.ledger`), not `Tuner.restore`: a rerun runs
exactly the fits and sample-setting measurements that are missing or stale, and one driver at a
time holds the output directory.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

from harness.assets import assets_dir
from harness.provenance import git_sha, versions_json
from harness.results import current_umask
from harness.ledger import OutputLock, Work, check_study, record_plan, scan
from harness.study import Plan
from harness.trial import Env, TrialOutcome


def run_trial(config: dict, *, plan_json: str, out_dir: str, env: dict, use_gpu: bool) -> None:
    """The Tune trainable: `config["cell"]` holds one trial of the plan and the work the ledger
    says it must still do; execute it, report."""
    import torch
    from ray import tune

    from harness.provenance import pick_device
    from harness.study import Trial
    from harness.trial import execute_trial

    plan = Plan.from_json(plan_json)
    work = Work.from_dict(Trial(**config["cell"]["trial"]), config["cell"]["work"])
    torch.set_num_threads(max(1, int(plan.resources.cpu)))
    device = pick_device("cuda" if use_gpu else "cpu")
    outcome = execute_trial(plan, work, Path(out_dir), Env(**env), device)
    tune.report({"status": outcome.status, "rows": outcome.n_rows, "message": outcome.message})


def _trial_id(trial) -> str:
    return trial.config["cell"]["trial"]["trial_id"]


def _progress_callback(total: int, echo):
    """A Tune callback printing one line as each trial starts and ends (Tune itself is
    silenced with verbose=0, so logs stay readable with hundreds of trials)."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self):
            self.ended = 0

        def on_trial_start(self, iteration, trials, trial, **info):
            echo(f"  started  {_trial_id(trial)}  {trial.config['cell']['trial']['cell'] or ''}")

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
    """Run what the ledger says is missing of `plan` on Ray Tune; one outcome per trial run.
    Refuses, before writing anything, a directory of another study or one in use."""
    echo = echo or (lambda line: print(line, flush=True))
    out_dir = Path(out_dir).resolve()  # trials chdir into their own directory
    check_study(out_dir, plan)
    created = not out_dir.exists()
    lock = OutputLock(out_dir)
    lock.acquire(echo)
    try:
        ledger = scan(out_dir, plan, echo)
        if any(w.units for w in ledger.work):
            try:
                prepare_metrics(plan, echo)  # may fail: before any row is written
            except BaseException:
                lock.release()
                if created and not any(out_dir.iterdir()):
                    out_dir.rmdir()
                raise
        echo(ledger.summary(plan))
        if not ledger.work and not ledger.cross:
            return []
        record_plan(out_dir, plan)
        outcomes = _tune(plan, ledger.work, out_dir, address, storage, echo) if ledger.work else []
        _cross(plan, ledger.cross, out_dir, echo)
        return outcomes
    finally:
        lock.release()


def _env() -> Env:
    return Env(git_sha=git_sha(), versions_json=versions_json(),
               assets_dir=str(assets_dir().resolve()), umask=current_umask())


def _cross(plan: Plan, pairs: list, out_dir: Path, echo) -> None:
    """Cross-seed evaluations (`Method.cross_evaluate`), in the driver on its CPU once every
    fit is done: small models judged on a few thousand images at most."""
    if not pairs:
        return
    import torch

    from harness.trial import execute_cross

    env, done = _env(), 0
    for trial, partner in pairs:
        done += bool(execute_cross(plan, trial, partner, out_dir, env, torch.device("cpu")))
    echo(f"cross-seed evaluations: {done} of {len(pairs)} written"
         + ("" if done == len(pairs) else " (the others lack a fit: diverged or failed)"))


def _tune(plan: Plan, work: list[Work], out_dir: Path, address: str | None,
          storage: str | None, echo) -> list[TrialOutcome]:
    import ray
    from ray import tune

    init_ray(address)
    cluster = ray.cluster_resources()
    gpus = cluster.get("GPU", 0.0)
    use_gpu = plan.resources.gpu > 0 and gpus > 0
    resources = {"cpu": plan.resources.cpu, "gpu": plan.resources.gpu if use_gpu else 0}
    echo(f"{plan.study} [{plan.scale}]: {len(work)} trials with work left, {resources} per "
         f"trial, {concurrency(plan, cluster.get('CPU', 1), gpus)} at once")
    env = _env()
    trainable = tune.with_parameters(run_trial, plan_json=plan.to_json(), out_dir=str(out_dir),
                                     env=dataclasses.asdict(env), use_gpu=use_gpu)
    cells = [{"trial": dataclasses.asdict(w.trial), "work": w.to_dict()} for w in work]
    tuner = tune.Tuner(
        tune.with_resources(trainable, resources),
        param_space={"cell": tune.grid_search(cells)},
        tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=_trial_id,
                                    trial_dirname_creator=_trial_id),
        run_config=tune.RunConfig(name=f"{plan.study}-{plan.scale}",
                                  storage_path=storage or str(out_dir / "ray"), verbose=0,
                                  callbacks=[_progress_callback(len(work), echo)],
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    grid = tuner.fit()
    outcomes = []
    for result in grid:
        trial_id = result.config["cell"]["trial"]["trial_id"]
        if result.error is not None:
            lines = str(result.error).strip().splitlines()
            outcomes.append(TrialOutcome(trial_id, "error", lines[-1] if lines else "error", 0))
        else:
            m = result.metrics
            outcomes.append(TrialOutcome(trial_id, m.get("status", "error"),
                                         m.get("message", ""), m.get("rows", 0)))
    return outcomes

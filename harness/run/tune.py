"""The Ray Tune adapter, the only module that imports Ray Tune (after Ray Tune's
`tune_basic_example.py` and `mnist_pytorch.py`): one Tune trial per train-grid cell and seed with
work left, `tune.with_resources` with fractional GPUs, `grid_search` over those trials, a
progress callback that tells `genbench.harness.run.progress` of each event, and the function each
Tune trial runs (`run_trial`): heartbeats to the driver and the hard stop of a trial stuck past
its timeout, around `genbench.harness.run.trial.attempt_trial` (retries, the timeout, failures
recorded), plain Python. `genbench.harness.run.inprocess` runs the same trials without Ray.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import uuid
from pathlib import Path

from genbench.harness.run.cluster import connect
from genbench.harness.run.ledger import Work
from genbench.harness.plan.packing import effective, simulate
from genbench.harness.run.cluster import cluster_nodes
from genbench.harness.plan.plan import Plan, Trial
from genbench.harness.errors import count
from genbench.harness.run.progress import Progress, duration_text, heartbeat_seconds
from genbench.harness.run.rows import Env
from genbench.harness.store.rundir import RunDir
from genbench.harness.store.storage import Stage, progress_file
from genbench.harness.run.trial import TrialOutcome, attempt_trial, recorded


def ray_device():
    """The device of this Ray worker: a GPU share when Ray gave one (none on a cluster without
    GPUs: then the CPU), chosen once per trial and passed in."""
    import ray
    import torch

    return torch.device("cuda" if ray.get_gpu_ids() else "cpu")


def run_trial(config: dict, *, plan_json: str, plan_id: str, out_dir: str, env: dict,
              max_failures: int = 1) -> None:
    """The Tune trainable: `config["cell"]` holds one trial's work (the plan's shared part is
    `plan_json`, `Plan.shared_json`), done by
    `genbench.harness.run.trial.attempt_trial` (what is left of it, retried, recorded when it fails:
    Tune prints nothing and the other trials go on), and reported. Along the way it reports
    where it is (a heartbeat, at most every `heartbeat_s / 2`); a trial still running past its
    timeout's grace (stuck in C) has its worker ended, after a marker tells the trial Tune starts
    again to stay stopped."""
    import socket
    import time

    import ray
    import torch
    from ray import tune

    planned = Work.from_dict(config["cell"]["work"])
    trial = planned.trial
    plan = Plan.for_trial(plan_json, plan_id, trial)
    run_env = Env(**env)
    torch.set_num_threads(max(1, int(trial.resources.cpu)))
    # a GPU share when Ray gave one (none on a cluster without GPUs: then the CPU)
    device = ray_device()
    os.environ["GENBENCH_NODE"] = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"
    stage = Stage(out_dir, trial.trial_id)  # the run directory, or this trial's part of a URI's
    marker = RunDir(stage.path).timeout_marker(trial.trial_id)
    if run_env.run_id and _read(marker) == run_env.run_id:  # it timed out in this run and its
        # worker was ended: Tune started it again, but it stays stopped
        stage.finish()
        tune.report({"status": "timeout", "rows": 0,
                     "message": f"ran past {duration_text(plan.trial_timeout_s)}"})
        return
    last = [time.monotonic()]

    def heartbeat(info: dict) -> None:  # to the driver, which prints it after a silence
        now = time.monotonic()
        if now - last[0] >= run_env.heartbeat_s / 2:
            last[0] = now
            tune.report({"heartbeat": json.dumps(info)})

    def stuck() -> None:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(run_env.run_id)
        os._exit(1)  # Tune sees the worker die and starts the trial again: it stays stopped

    try:
        outcome = attempt_trial(plan, trial, stage.path, run_env, device, planned=planned,
                                max_failures=max_failures, sync=stage.sync, progress=heartbeat,
                                stuck=stuck)
    finally:
        try:
            stage.finish()
        except OSError as err:  # (a full disk at a URI's stage): said in the result, not raised
            outcome = TrialOutcome(trial.trial_id, "error", f"could not finish writing: {err}", 0)
    tune.report({"status": outcome.status, "rows": outcome.n_rows, "message": outcome.message})


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


TUNE_BATCH = 1_000  # trials per Tune run (`tune_batch`)


def _trial_id(trial) -> str:
    return trial.config["cell"]["work"]["trial"]["trial_id"]


def _progress_callback(trials: list, echo, max_failures: int = 1, heartbeat_s: float = 60.0,
                       after=lambda trial_id: None, snapshot=None):
    """A Tune callback that tells `genbench.harness.run.progress.Progress` of each trial's start,
    heartbeat, end and restart (Tune itself is silenced, so logs stay readable with hundreds of
    trials), and `after(trial_id)` of each trial's end."""
    from ray import tune

    class Callback(tune.Callback):
        def __init__(self):
            self.progress = Progress(trials, echo, max_failures, heartbeat_s, snapshot)

        def on_trial_start(self, iteration, trials, trial, **info):
            self.progress.started(_trial_id(trial))

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "heartbeat" in result:
                self.progress.heard(_trial_id(trial), json.loads(result["heartbeat"]))

        def on_step_end(self, iteration, trials, **info):
            self.progress.tick()

        def on_trial_complete(self, iteration, trials, trial, **info):
            res = trial.last_result or {}
            self.progress.finished(_trial_id(trial), res.get("status", "?"), res.get("message", ""))
            after(_trial_id(trial))

        def on_trial_recover(self, iteration, trials, trial, **info):
            # Tune starts it again and the trial resumes from its own files; Ray's own lines
            # stay off the console (log_to_driver=False)
            self.progress.restarted(_trial_id(trial))

        def on_trial_error(self, iteration, trials, trial, **info):
            self.progress.finished(_trial_id(trial), "error",
                                   "its worker died every attempt (see the failed row)")
            after(_trial_id(trial))

    return Callback()


def run_tune(plan: Plan, work: list[Work], out_dir: str, address: str | None,
             storage: str | None, echo, max_failures: int, env: Env,
             after=lambda trial_id: None) -> list[TrialOutcome]:
    """Run `work` as Tune runs of at most `tune_batch()` trials each, one after another, one
    trial per fit in the order given (Tune starts a grid's trials in order), each with its own
    resources; `env` is what every trial needs from the driver (`reuse_workers` shares worker
    processes); `after(trial_id)` hears of each end."""
    from ray import tune

    cluster = connect(address)
    nodes = cluster_nodes()
    trials = [w.trial for w in work]
    kinds = sorted({str(effective(t.resources, nodes)) for t in trials})
    echo(f"{plan.study} [{plan.scale}]: {count(len(work), 'trial')} with work left, "
         f"{' or '.join(kinds)} per trial, {simulate(trials, nodes).at_once} at once on "
         f"{count(cluster.nodes, 'node')}")
    env = dataclasses.replace(env, run_id=uuid.uuid4().hex, heartbeat_s=heartbeat_seconds())
    trainable = tune.with_parameters(run_trial, plan_json=plan.shared_json(),
                                     plan_id=plan.plan_id, out_dir=str(out_dir),
                                     env=dataclasses.asdict(env), max_failures=max_failures)
    asks = {t.trial_id: dataclasses.asdict(effective(t.resources, nodes)) for t in trials}
    progress = _progress_callback(trials, echo, max_failures, heartbeat_seconds(), after,
                                  progress_file(out_dir))
    size = tune_batch()
    batches = [work[i:i + size] for i in range(0, len(work), size)]
    outcomes = []
    for k, batch in enumerate(batches):  # one Tune run per batch: Tune keeps every trial of a
        name = f"{plan.study}-{plan.scale}"  # run in the driver (about 84 KB each), so a huge
        if len(batches) > 1:                 # study runs in batches and the driver stays small
            name += f"-{k + 1}"
        # a trial works out what is left itself (work_left): after a restart it is less
        cells = [{"work": dataclasses.asdict(w)} for w in batch]
        tuner = tune.Tuner(
            # each trial asks for its own resources (Arm.resources): a bigger cell, a bigger share
            tune.with_resources(trainable,
                                lambda config: asks[config["cell"]["work"]["trial"]["trial_id"]]),
            param_space={"cell": tune.grid_search(cells)},
            tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=_trial_id,
                                        trial_dirname_creator=_trial_id,
                                        # a fresh process per trial (its memory rows are its
                                        # own), or shared ones: no process start and imports
                                        reuse_actors=env.reuse_workers),
            run_config=tune.RunConfig(name=name, storage_path=storage or f"{out_dir}/ray",
                                      verbose=0, callbacks=[progress],
                                      # a worker that dies (killed, lost node) starts again
                                      failure_config=tune.FailureConfig(max_failures=max_failures)),
        )
        with _no_callback_census():
            grid = tuner.fit()
        outcomes += _outcomes(plan, grid, out_dir, env, max_failures)
    return outcomes


@contextlib.contextmanager
def _no_callback_census():
    """Ray Tune counts the callbacks a run is given, for its usage statistics, by importing its
    MLflow, Weights & Biases and Comet integrations, and with them `mlflow` and `wandb` where
    they are installed (as genbench's tracker extras install them): 1.6 s of CPU and about
    60 MB in the driver of every run, for a count of genbench's one callback. The count is
    skipped while genbench's Tune run starts (Ray's private module; where it is not found,
    nothing changes)."""
    try:
        from ray.air._internal import usage
    except ImportError:
        usage = None
    census = getattr(usage, "tag_callbacks", None)
    if census is not None:
        usage.tag_callbacks = lambda callbacks: False
    try:
        yield
    finally:
        if census is not None:
            usage.tag_callbacks = census


def tune_batch() -> int:
    """Trials per Tune run (GENBENCH_TUNE_BATCH, default 1,000): a bigger study runs as several
    Tune runs one after another, so that the driver's memory stays bounded."""
    try:
        return max(1, int(os.environ.get("GENBENCH_TUNE_BATCH", TUNE_BATCH)))
    except ValueError:
        return TUNE_BATCH


def _outcomes(plan: Plan, grid, out_dir: str, env: Env, max_failures: int) -> list[TrialOutcome]:
    """One outcome per trial of a finished Tune run; a trial whose worker died every attempt
    is recorded as failed (its row says why)."""
    import torch

    outcomes = []
    for result in grid:
        trial = Trial.from_dict(result.config["cell"]["work"]["trial"])
        if result.error is not None:  # the worker itself died, every attempt
            err = result.error
            stage = Stage(out_dir, trial.trial_id)
            try:
                outcomes.append(recorded(plan, trial, stage.path, env, torch.device("cpu"), err,
                                         max_failures + 1, str(err)))
            finally:
                stage.finish()
        else:
            m = result.metrics
            outcomes.append(TrialOutcome(trial.trial_id, m.get("status", "error"),
                                         m.get("message", ""), m.get("rows", 0)))
    return outcomes

"""The Ray Tune adapter, the only module that imports Ray Tune (after Ray Tune's
`tune_basic_example.py` and `mnist_pytorch.py`): one Tune trial per train-grid cell and seed with
work left, `tune.with_resources` with fractional GPUs, `grid_search` over those trials, a
progress callback that prints one line per event, and the function each Tune trial runs
(`run_trial`): a watchdog for `--trial-timeout`, heartbeats, retries from checkpoints, and
everything else in `genbench.harness.trial.execute_trial`, plain Python.
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from pathlib import Path

from genbench.harness.errors import first_line
from genbench.harness.cluster import connect
from genbench.harness.ledger import Work, scan
from genbench.harness.rundir import RunDir
from genbench.harness.packing import cluster_nodes, effective, simulate
from genbench.harness.storage import Stage
from genbench.harness.plan import Plan, Trial
from genbench.harness.rows import Env
from genbench.harness.trial import TrialOutcome


def ray_device():
    """The device of this Ray worker: a GPU share when Ray gave one (none on a cluster without
    GPUs: then the CPU), chosen once per trial and passed in."""
    import ray
    import torch

    return torch.device("cuda" if ray.get_gpu_ids() else "cpu")


def run_trial(config: dict, *, plan_json: str, out_dir: str, env: dict,
              max_failures: int = 1) -> None:
    """The Tune trainable: `config["cell"]` holds one trial of the plan; do what the ledger
    says is still missing from its files (so a trial Tune restarts after its process died
    does not redo finished work), retrying up to `max_failures` times what is still
    missing, and report. A failure is recorded (status row, traceback file) and reported as
    a result, never raised: Tune prints nothing and the other trials go on. Along the way it
    reports where it is (a heartbeat, at most every `heartbeat_s / 2`), and past the plan's
    `trial_timeout_s` it stops with a `timeout` failure."""
    import socket
    import time
    import traceback

    import ray
    import torch
    from ray import tune

    from genbench.harness.trial import TrialTimeout, execute_trial

    plan = Plan.from_json(plan_json)
    trial = Trial.from_dict(config["cell"]["trial"])
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

    watchdog = _Watchdog(plan.trial_timeout_s, marker, run_env.run_id)
    try:
        for attempt in range(1, max_failures + 2):
            # what is left: all the driver planned, or less where an attempt (this process's,
            # or one Tune restarts after its process died) finished some of it
            work = work_left(plan, trial, stage.path)
            if work is None:
                outcome = TrialOutcome(trial.trial_id, "ok", "", 0)
                break
            try:
                outcome = execute_trial(plan, work, stage.path, run_env, device, stage.sync,
                                        heartbeat)
                break
            except TrialTimeout:  # never retried: it would only time out again
                watchdog.cancel()
                why = TrialTimeout(f"ran past the trial timeout of "
                                   f"{duration_text(plan.trial_timeout_s)}")
                outcome = _recorded(plan, trial, stage.path, run_env, device, why, attempt,
                                    traceback.format_exc())
                break
            except Exception as err:  # noqa: BLE001 - recorded with its traceback
                if attempt > max_failures:
                    outcome = _recorded(plan, trial, stage.path, run_env, device, err, attempt,
                                        traceback.format_exc())
                    break
    finally:
        watchdog.cancel()
        try:
            stage.finish()
        except OSError as err:  # (a full disk at a URI's stage): said in the result, not raised
            outcome = TrialOutcome(trial.trial_id, "error", f"could not finish writing: {err}", 0)
    tune.report({"status": outcome.status, "rows": outcome.n_rows, "message": outcome.message})


def _recorded(plan, trial, out_dir, env, device, err, attempts, trace):
    """`record_failure`, or, when even that cannot be written (a full disk, a vanished
    directory), an outcome that says both: never an exception, which Tune would print as a
    long traceback of its own."""
    from genbench.harness.trial import classify, record_failure

    try:
        return record_failure(plan, trial, out_dir, env, device, err, attempts, trace)
    except OSError as also:
        return TrialOutcome(trial.trial_id, classify(err),
                            f"{type(err).__name__}: {first_line(err)}; not recorded either: "
                            f"{also.strerror or also}: {also.filename or out_dir}", 0)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


class _Watchdog:
    """Raises TrialTimeout in the thread that made it once `seconds` have passed (between two
    Python bytecodes: a step in C finishes first). A trial still running `GRACE_S` later (stuck
    in C) has its worker process ended, after a marker tells the restarted trial to stay
    stopped."""

    GRACE_S = 30.0

    def __init__(self, seconds: float, marker: Path, run_id: str):
        import ctypes
        import threading

        self.done = threading.Event()
        if not seconds:
            return
        target = threading.get_ident()

        def watch() -> None:
            if self.done.wait(seconds):
                return
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target),
                                                       ctypes.py_object(_timeout_class()))
            if self.done.wait(self.GRACE_S):
                return
            marker.parent.mkdir(parents=True, exist_ok=True)
            marker.write_text(run_id)
            os._exit(1)  # Tune sees the worker die and starts the trial again: it stays stopped

        threading.Thread(target=watch, name="genbench-trial-timeout", daemon=True).start()

    def cancel(self) -> None:
        self.done.set()


def _timeout_class():
    from genbench.harness.trial import TrialTimeout

    return TrialTimeout


def work_left(plan: Plan, trial: Trial, out_dir: Path) -> Work | None:
    """The ledger's work for `trial` in `out_dir`, from its own files alone; None when done."""
    left = scan(out_dir, plan, echo=lambda _: None, only=trial.trial_id).work
    return left[0] if left else None


def _trial_id(trial) -> str:
    return trial.config["cell"]["trial"]["trial_id"]


def _where(info: dict | None) -> str:
    """A trial's last heartbeat as a console line."""
    if not info:
        return "still running (no progress reported yet)"
    if info.get("phase") == "fit":
        losses = ", ".join(f"{k} {v:.4g}" for k, v in info.items()
                           if k not in ("phase", "step", "steps", "wall_s"))
        return (f"still training: step {info['step']}/{info['steps']}"
                + (f", {losses}" if losses else "") + f" ({duration_text(info.get('wall_s', 0))} in)")
    return f"still sampling: setting {info.get('setting')} ({info.get('done', 0) + 1} of {info.get('of', '?')})"


def heartbeat_seconds() -> float:
    """How long a trial may be silent before the console says where it is (GENBENCH_HEARTBEAT_S,
    default 60)."""
    try:
        return max(0.5, float(os.environ.get("GENBENCH_HEARTBEAT_S", "60")))
    except ValueError:
        return 60.0


def duration_text(seconds: float) -> str:
    """A duration as people say it: 42s, 17 min, 3.5 h."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _progress_callback(total: int, echo, max_failures: int = 1, heartbeat_s: float = 60.0):
    """A Tune callback printing one line as each trial starts and ends, the ending line with
    how many are done, running and pending and an estimate of the time left (Tune itself is
    silenced, so logs stay readable with hundreds of trials)."""
    import time

    from ray import tune

    class Progress(tune.Callback):
        def __init__(self):
            self.ended, self.running, self.start = set(), set(), time.monotonic()
            self.restarts: dict[str, int] = {}
            self.said: dict[str, float] = {}  # when the console last heard of each trial
            self.where: dict[str, dict] = {}  # each trial's last heartbeat

        def on_trial_start(self, iteration, trials, trial, **info):
            self.running.add(_trial_id(trial))
            self.said[_trial_id(trial)] = time.monotonic()
            echo(f"  started  {_trial_id(trial)}  {trial.config['cell']['trial']['cell'] or ''}")

        def on_trial_result(self, iteration, trials, trial, result, **info):
            if "heartbeat" in result:  # where the trial is; said only after a silence
                self.where[_trial_id(trial)] = json.loads(result["heartbeat"])

        def on_step_end(self, iteration, trials, **info):
            now = time.monotonic()
            for tid in sorted(self.running):
                if now - self.said.get(tid, now) >= heartbeat_s:
                    self.said[tid] = now
                    echo(f"  {tid}: {_where(self.where.get(tid))}")

        def _end(self, trial, status: str, message: str) -> None:
            tid = _trial_id(trial)
            self.running.discard(tid)
            self.ended.add(tid)  # (a set: a trial Tune reports twice is counted once)
            done, left = len(self.ended), max(0, total - len(self.ended))
            pending = max(0, left - len(self.running))
            elapsed = time.monotonic() - self.start
            eta = elapsed / done * left if done else 0.0
            extra = f": {message}" if message else ""
            echo(f"  [{done}/{total}] {tid} {status}{extra} | "
                 f"{len(self.running)} running, {pending} pending, ~{duration_text(eta)} left")

        def on_trial_complete(self, iteration, trials, trial, **info):
            res = trial.last_result or {}
            self._end(trial, res.get("status", "?"), res.get("message", ""))

        def on_trial_recover(self, iteration, trials, trial, **info):
            # the worker process died (killed, out of memory, a lost node); Tune starts it
            # again and the trial resumes from its own files. Ray's own lines stay off the
            # console (log_to_driver=False): one line here
            tid = _trial_id(trial)
            self.running.discard(tid)
            self.restarts[tid] = self.restarts.get(tid, 0) + 1
            echo(f"  {tid}: its worker died; retrying {self.restarts[tid]}/{max_failures}")

        def on_trial_error(self, iteration, trials, trial, **info):
            self._end(trial, "error", "its worker died every attempt (see the failed row)")

    return Progress()


def run_tune(plan: Plan, work: list[Work], out_dir: str, address: str | None,
             storage: str | None, echo, max_failures: int, env: Env) -> list[TrialOutcome]:
    """Run `work` as one Tune run, one trial per fit, each with its own resources; `env` is
    what every trial needs from the driver (`reuse_workers` shares worker processes)."""
    import torch
    from ray import tune

    cluster = connect(address)
    nodes = cluster_nodes()
    trials = [w.trial for w in work]
    kinds = sorted({str(effective(t.resources, nodes)) for t in trials})
    echo(f"{plan.study} [{plan.scale}]: {len(work)} trials with work left, {' or '.join(kinds)} "
         f"per trial, {simulate(trials, nodes).at_once} at once on "
         f"{cluster.nodes} node{'s' * (cluster.nodes != 1)}")
    env = dataclasses.replace(env, run_id=uuid.uuid4().hex, heartbeat_s=heartbeat_seconds())
    # seed-major: seed 0 of every cell before any seed 1, so an interrupted study is balanced
    # across its cells (Tune starts a grid's trials in order)
    work = sorted(work, key=lambda w: w.trial.seed)
    trainable = tune.with_parameters(run_trial, plan_json=plan.to_json(), out_dir=str(out_dir),
                                     env=dataclasses.asdict(env), max_failures=max_failures)
    # a trial works out what is left itself (work_left): after a restart it is less
    cells = [{"trial": dataclasses.asdict(w.trial)} for w in work]
    asks = {t.trial_id: dataclasses.asdict(effective(t.resources, nodes)) for t in trials}
    tuner = tune.Tuner(
        # each trial asks for its own resources (Arm.resources): a bigger cell, a bigger share
        tune.with_resources(trainable, lambda config: asks[config["cell"]["trial"]["trial_id"]]),
        param_space={"cell": tune.grid_search(cells)},
        tune_config=tune.TuneConfig(num_samples=1, trial_name_creator=_trial_id,
                                    trial_dirname_creator=_trial_id,
                                    # a fresh process per trial (its memory rows are its own),
                                    # or shared ones, which saves process start and imports
                                    reuse_actors=env.reuse_workers),
        run_config=tune.RunConfig(name=f"{plan.study}-{plan.scale}",
                                  storage_path=storage or f"{out_dir}/ray", verbose=0,
                                  callbacks=[_progress_callback(len(work), echo, max_failures,
                                                                heartbeat_seconds())],
                                  # a worker that dies (killed, lost node) is started again
                                  failure_config=tune.FailureConfig(max_failures=max_failures)),
    )
    grid = tuner.fit()
    outcomes = []
    for result in grid:
        trial = Trial.from_dict(result.config["cell"]["trial"])
        if result.error is not None:  # the worker itself died, every attempt
            err = result.error
            stage = Stage(out_dir, trial.trial_id)
            try:
                outcomes.append(_recorded(plan, trial, stage.path, env, torch.device("cpu"), err,
                                          max_failures + 1, str(err)))
            finally:
                stage.finish()
        else:
            m = result.metrics
            outcomes.append(TrialOutcome(trial.trial_id, m.get("status", "error"),
                                         m.get("message", ""), m.get("rows", 0)))
    return outcomes

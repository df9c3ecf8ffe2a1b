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
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

from harness.assets import assets_dir
from harness.errors import GenbenchError, first_line
from harness.cluster import check_shared, connect, requested_address
from harness.provenance import git_sha, versions_json
from harness.results import current_umask, failed_file
from harness.ledger import OutputLock, Work, check_study, heal_plan, record_plan, scan
from harness.packing import (cluster_nodes, effective, refuse_unplaceable, simulate,
                             this_machine)
from harness.storage import (Remote, Stage, has_checkpoint, is_uri, mirror, mirror_dir,
                             publishing, pull_checkpoints)
from harness.study import Plan, Trial
from harness.trial import Env, TrialOutcome


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

    from harness.provenance import pick_device
    from harness.trial import TrialTimeout, execute_trial

    plan = Plan.from_json(plan_json)
    trial = Trial.from_dict(config["cell"]["trial"])
    run_env = Env(**env)
    torch.set_num_threads(max(1, int(trial.resources.cpu)))
    # a GPU share when Ray gave one (none on a cluster without GPUs: then the CPU)
    device = pick_device("cuda" if ray.get_gpu_ids() else "cpu")
    os.environ["GENBENCH_NODE"] = f"{socket.gethostname()}/{ray.get_runtime_context().get_node_id()[:12]}"
    stage = Stage(out_dir, trial.trial_id)  # the run directory, or this trial's part of a URI's
    marker = stage.path / "errors" / f"{trial.trial_id}.timeout"
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
    from harness.trial import classify, record_failure

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
    from harness.trial import TrialTimeout

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


def duration_text(seconds: float) -> str:
    """A duration as people say it: 42s, 17 min, 3.5 h."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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


def calibrate(plan: Plan, address: str | None, *, steps: int = 20, n: int = 64,
              echo=None) -> dict[str, dict[str, float]]:
    """Time a short run of each train cell (`harness.trial.calibrate_trial`): on the cluster at
    `address` as Ray tasks with the trial's resources, else here in this process. Returns the
    timings by config hash; a cell whose calibration fails stops it, in one line."""
    import torch

    from harness.trial import calibrate_trial

    firsts = plan.cells().values()
    if address:
        import ray

        nodes = cluster_nodes()

        def remote(plan_json: str, trial: dict, steps: int, n: int, env: dict) -> dict:
            from harness.provenance import pick_device

            Env(**env).apply()
            trial = Trial.from_dict(trial)
            torch.set_num_threads(max(1, int(trial.resources.cpu)))
            device = pick_device("cuda" if ray.get_gpu_ids() else "cpu")
            return calibrate_trial(Plan.from_json(plan_json), trial, device, steps, n)

        env = dataclasses.asdict(_env())
        refs = {t.config_hash: ray.remote(remote).options(
            num_cpus=effective(t.resources, nodes).cpu, num_gpus=effective(t.resources, nodes).gpu,
            max_retries=0).remote(plan.to_json(), dataclasses.asdict(t), steps, n, env)
            for t in firsts}
        timing, where = (lambda t: await_task(refs[t.config_hash], f"trial {t.trial_id}",
                                              echo)), " on the cluster"
    else:
        def timing(t: Trial) -> dict[str, float]:
            torch.set_num_threads(max(1, int(t.resources.cpu)))
            use_gpu = t.resources.gpu > 0 and torch.cuda.is_available()
            return calibrate_trial(plan, t, torch.device("cuda" if use_gpu else "cpu"), steps, n)
        where = ""
    out: dict[str, dict[str, float]] = {}
    for t in firsts:
        try:
            out[t.config_hash] = timing(t)
        except Exception as err:  # noqa: BLE001 - one line
            cause = getattr(err, "cause", None) or err  # a Ray task's error carries the original
            if isinstance(cause, GenbenchError) and not address:
                raise cause from None
            first = first_line(cause)
            kind = "" if isinstance(cause, GenbenchError) else f"{type(cause).__name__}: "
            raise GenbenchError(f"calibrating trial {t.trial_id} (arm {t.arm}) failed{where}: "
                                f"{kind}{first}") from None
        if echo:
            echo(f"  calibrated {t.arm} {t.cell or '(base config)'}")
    return out


WAIT_NOTE_S = 60.0  # how often a calibration waiting for a node says so


def await_task(ref, what: str, echo=None, every: float = WAIT_NOTE_S):
    """`ray.get(ref)`, saying every `every` seconds that `what` has no result yet: on a busy
    cluster a task may legitimately wait for a node with its resources (no timeout), and a
    full-scale calibration may run for minutes, but never in silence."""
    import time

    import ray

    start = time.monotonic()
    while not ray.wait([ref], timeout=every)[0]:
        if echo:
            echo(f"  {what}: no result after {time.monotonic() - start:.0f} s (still running, or "
                 "waiting for a node with its resources: `ray status` shows which; Ctrl-C stops)")
    return ray.get(ref)


def init_ray(address: str | None) -> None:
    """Join the cluster at `address`, or start a local Ray sized to this machine
    (`harness.cluster.connect`)."""
    connect(address)


def run_study(plan: Plan, out_dir: Path, *, address: str | None = None,
              storage: str | None = None, echo=None, max_failures: int = 1,
              reuse_workers: bool = False) -> list[TrialOutcome]:
    """Run what the ledger says is missing of `plan` on Ray Tune; one outcome per trial run.
    Refuses, before writing anything, a directory of another study or one in use, and an
    address where no cluster answers (`--address` or `RAY_ADDRESS`). For a URI, its local
    mirror (`harness.storage.mirror_dir`) holds everything the run wrote when this returns."""
    echo = echo or (lambda line: print(line, flush=True))
    uri = str(out_dir).rstrip("/") if is_uri(out_dir) else None
    address = requested_address(address)
    if uri:
        Remote(uri)  # a URI pyarrow cannot open fails here, in one line
    if storage and is_uri(storage):
        Remote(storage, "--storage")
    for path, what in ((None if uri else out_dir, "--out"),
                       (None if not storage or is_uri(storage) else storage, "--storage")):
        if path is not None and Path(path).exists() and not Path(path).is_dir():
            raise GenbenchError(f"{what} {path} is a file; give a directory")
    if address:
        connect(address)  # one line within seconds when it cannot: before anything is written
        check_shared(out_dir if uri else Path(out_dir).resolve(), "--out")
        if storage:
            check_shared(storage, "--storage")
    # a trial no node can hold would wait forever: refused now, in one line
    refuse_unplaceable(plan, cluster_nodes() if address else this_machine(),
                       f"the cluster at {address}" if address else "this machine")
    # trials chdir into their own directory: an absolute path, or the URI's local mirror,
    # refreshed once this driver holds its lock (a second driver's refresh would remove what
    # the first has only locally)
    local = mirror_dir(Remote(uri).uri) if uri else Path(out_dir).resolve()
    if not uri:
        check_study(local, plan)
    created = not local.exists()
    lock = OutputLock(local)
    lock.acquire(echo)
    try:
        if uri:
            mirror(uri)  # (refuses a URI holding something else before copying it)
            check_study(local, plan)
        ledger = scan(local, plan, echo)
        if any(w.units for w in ledger.work):
            try:
                prepare_metrics(plan, echo)  # may fail: before any row is written
            except BaseException:
                lock.release()
                if created and not any(local.iterdir()):
                    local.rmdir()
                raise
        echo(ledger.summary(plan))
        if not ledger.work and not ledger.cross:
            if any(local.iterdir()):  # nothing to run; a damaged or lost study.json heals
                with publishing(local):
                    heal_plan(local, plan, echo)
            return []
        with publishing(local):
            record_plan(local, plan)
        outcomes = (_tune(plan, ledger.work, uri or str(local), address, storage, echo,
                          max_failures, reuse_workers) if ledger.work else [])
        if uri and ledger.work:
            mirror(uri)  # what the trials pushed: the mirror is up to date from here on
        with publishing(local):
            _cross(plan, ledger.cross, local, echo)
        return outcomes
    finally:
        lock.release()


@dataclass(frozen=True)
class StudyStatus:
    """Where every trial of a plan stands in an output directory."""

    ok: list[str]
    diverged: list[str]
    failed: list[str]  # their last attempt raised (a status row says why)
    missing: list[str]  # never ran, or interrupted
    cross_missing: int = 0  # measurable cross-seed pairs still unmeasured (one failed)
    settings_diverged: tuple[str, ...] = ()  # sample settings whose samples were not finite

    @property
    def complete(self) -> bool:
        return not (self.diverged or self.failed or self.missing or self.cross_missing
                    or self.settings_diverged)

    def line(self) -> str:
        return (f"{len(self.ok)} ok, {len(self.diverged)} diverged, {len(self.failed)} failed, "
                f"{len(self.missing)} missing"
                + (f", {self.cross_missing} cross-seed evaluations missing"
                   if self.cross_missing else "")
                + (f", {len(self.settings_diverged)} sample settings with non-finite samples"
                   if self.settings_diverged else ""))


def study_status(plan: Plan, out_dir: Path) -> StudyStatus:
    """The whole study's status in `out_dir`, whatever this run did."""
    ledger = scan(Path(out_dir), plan, echo=lambda _: None)
    left = {w.trial.trial_id for w in ledger.work}
    failed = sorted(t for t in left if failed_file(out_dir, t).is_file())
    ids = [t.trial_id for t in plan.trials]
    # pairs of two finished fits whose checkpoints exist: a pair one of them lacks (deleted to
    # save disk) cannot be measured, and `_cross` says so; it must not fail every rerun
    cross = sum(not {a.trial_id, b.trial_id} & left
                and all(has_checkpoint(out_dir, f"{t.trial_id}.pt") for t in (a, b))
                for a, b in ledger.cross)
    return StudyStatus(ok=[t for t in ids if t not in left and t not in ledger.diverged],
                       diverged=list(ledger.diverged), failed=failed,
                       missing=sorted(left - set(failed)), cross_missing=cross,
                       settings_diverged=tuple(ledger.settings_diverged))


def _env(reuse_workers: bool = False) -> Env:
    data = os.environ.get("GENBENCH_DATA")
    return Env(git_sha=git_sha(), versions_json=versions_json(),
               assets_dir=str(assets_dir().resolve()), umask=current_umask(),
               reuse_workers=reuse_workers, data_dir=str(Path(data).resolve()) if data else "")


def _cross(plan: Plan, pairs: list, out_dir: Path, echo) -> None:
    """Cross-seed evaluations (`Method.cross_evaluate`), in the driver on its CPU once every
    fit is done: small models judged on a few thousand images at most."""
    if not pairs:
        return
    import torch

    from harness.trial import execute_cross

    env, done, failed = _env(), 0, 0
    pull_checkpoints(out_dir, sorted({f"{t.trial_id}.pt" for pair in pairs for t in pair}))
    for trial, partner in pairs:
        try:
            done += bool(execute_cross(plan, trial, partner, out_dir, env, torch.device("cpu")))
        except Exception as err:  # noqa: BLE001 - one pair's error never stops the others
            failed += 1
            echo(f"  cross-seed evaluation {trial.trial_id} x {partner.trial_id} failed: "
                 f"{type(err).__name__}: {first_line(err)} (the next run tries it again)")
    lacking = len(pairs) - done - failed
    echo(f"cross-seed evaluations: {done} of {len(pairs)} written"
         + (f"; {failed} failed" if failed else "")
         + (f"; {lacking} lack a fit (diverged or failed)" if lacking else ""))


def _tune(plan: Plan, work: list[Work], out_dir: str, address: str | None,
          storage: str | None, echo, max_failures: int,
          reuse_workers: bool = False) -> list[TrialOutcome]:
    import torch
    from ray import tune

    cluster = connect(address)
    nodes = cluster_nodes()
    trials = [w.trial for w in work]
    kinds = sorted({str(effective(t.resources, nodes)) for t in trials})
    echo(f"{plan.study} [{plan.scale}]: {len(work)} trials with work left, {' or '.join(kinds)} "
         f"per trial, {simulate(trials, nodes).at_once} at once on "
         f"{cluster.nodes} node{'s' * (cluster.nodes != 1)}")
    env = dataclasses.replace(_env(reuse_workers), run_id=uuid.uuid4().hex,
                              heartbeat_s=heartbeat_seconds())
    # seed-major: seed 0 of every cell before any seed 1, so an interrupted study is balanced
    # across its cells (Tune starts a grid's trials in order)
    work = sorted(work, key=lambda w: w.trial.seed)
    trainable = tune.with_parameters(run_trial, plan_json=plan.to_json(), out_dir=str(out_dir),
                                     env=dataclasses.asdict(env), max_failures=max_failures)
    # a trial works out what is left itself (runner.work_left): after a restart it is less
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
                                    reuse_actors=reuse_workers),
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

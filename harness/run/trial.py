"""One trial, in plain Python, as the ledger (`genbench.harness.run.ledger.Work`) asks: fit a method on a
train-grid cell (or load the fit's checkpoint), then draw each sample setting still to measure
from the same fitted model and the same initial noise, measure cost, task and quality metrics,
and write rows, curve, sample grids and checkpoint atomically; and, once every seed is fitted,
measure fits against each other (`execute_cross`). `attempt_trial` adds retries and the trial timeout;
`genbench.harness.run.tune` runs it in Ray Tune, `genbench.harness.run.inprocess` here; tests call it directly.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from genbench.harness import data as datasets
from genbench.harness.config import build_config, canonical_json
from genbench.harness.errors import DivergedError, GenbenchError, count, first_line
from genbench.harness.method import Budget, Method, Observation, get_method
from genbench.harness.run.ledger import Unit, Work, scan
from genbench.harness.store.results import write_curve
from genbench.harness.store.files import atomic_write_bytes
from genbench.harness.run.progress import duration_text
from genbench.harness.store.rundir import RunDir
from genbench.harness.seeding import seed_everything
from genbench.harness.registry import import_code
from genbench.harness.plan.tasks import TaskInputs, get_task
from genbench.harness.plan.plan import Plan, SampleSetting, Trial
from genbench.harness.run.artefacts import (DamagedCheckpoint, checkpoint_every, load_fit, load_resume,
                                        save_checkpoint, save_grid, save_histogram)
from genbench.harness.run.rows import Env, MemPhase, Rows


@dataclass(frozen=True)
class TrialOutcome:
    trial_id: str
    status: str  # "ok", "diverged", or a failure class (`FAILURE_CLASSES`)
    message: str
    n_rows: int


def execute_trial(plan: Plan, work: Work, out_dir: Path, env: Env, device: torch.device,
                  sync: Callable[[], None] = lambda: None,
                  progress: Callable[[dict[str, Any]], None] = lambda info: None) -> TrialOutcome:
    """Do `work` (one trial of `plan`); write everything under `out_dir` (an absolute path).
    `sync()` runs after each training checkpoint, the fit and each sample setting (a run at a
    URI pushes what the trial wrote so far: a process that dies loses no finished work);
    `progress(info)` hears where the trial is (its step and losses, the setting it samples)."""
    out_dir = Path(out_dir)
    env.apply()
    os.umask(env.umask)
    import_code(plan.imports)  # methods defined in study files or uninstalled modules
    trial = work.trial
    seed_everything(trial.seed)
    rows = Rows(plan, trial, env, device)
    evaluator = make_evaluator(plan, device)
    method = None
    if not work.fit:
        try:
            method = load_fit(plan, trial, out_dir, device)
        except DamagedCheckpoint as err:  # fit again, and measure every setting of the new fit
            print(f"genbench: trial {trial.trial_id}: {err}; its fit runs again", file=sys.stderr)
            work = Work(trial, True, tuple(Unit(s.key, plan.sampling_key(trial, s), plan.measured())
                                           for s in plan.settings_for(trial)))
    if work.fit:
        if evaluator is not None and plan.eval_every:
            evaluator.load(plan.metrics)  # before the fit's memory is measured
        method = _fit(plan, trial, out_dir, rows, evaluator, device, sync, progress)
        if method is None:  # diverged: final, and an earlier attempt's failure is over
            _failure_over(out_dir, trial.trial_id)
            return TrialOutcome(trial.trial_id, "diverged", rows.note, rows.count)
        sync()
    labels = labels_for(method, plan.n_samples)
    inputs = _task_inputs(plan, trial, out_dir, method)
    settings = {s.key: s for s in plan.settings_for(trial)}
    if evaluator is not None and work.units:  # the metric networks before any setting's
        evaluator.load(plan.metrics)         # memory is measured: none carries them alone
    diverged = []
    for i, unit in enumerate(work.units):
        progress({"phase": "sampling", "setting": unit.setting, "done": i, "of": len(work.units)})
        bad = _measure(plan, trial, settings[unit.setting], unit, method, evaluator, labels,
                       inputs, out_dir, rows, device)
        if bad:  # recorded; the other settings go on
            diverged.append(f"setting {unit.setting}: {bad} of {plan.n_samples} samples not finite")
        sync()
    _failure_over(out_dir, trial.trial_id)
    if diverged:
        return TrialOutcome(trial.trial_id, "diverged", "; ".join(diverged), rows.count)
    return TrialOutcome(trial.trial_id, "ok", "", rows.count)


FAILURE_CLASSES = ("out of memory", "data", "timeout", "error")


class TrialTimeout(BaseException):
    """Raised in a trial that ran past its plan's `trial_timeout_s` (a BaseException, so that a
    method's own `except Exception` cannot swallow it)."""


def classify(err: BaseException) -> str:
    """The class of a trial's failure: out of memory (host or GPU), data (a missing or bad input,
    reported by genbench in one line), timeout (ran past the plan's trial_timeout_s), or error
    (anything else: a bug, a lost worker)."""
    if isinstance(err, TrialTimeout):
        return "timeout"
    text = f"{type(err).__name__}: {err}".lower()
    if isinstance(err, MemoryError) or "outofmemory" in text or "out of memory" in text:
        return "out of memory"
    if isinstance(err, (GenbenchError, FileNotFoundError)):
        return "data"
    return "error"


def _failure_over(out_dir: Path, trial_id: str) -> None:
    """An earlier attempt's failure is over: its status row and its traceback file go."""
    run = RunDir(out_dir)
    for path in (run.failed_file(trial_id), run.traceback(trial_id), run.timeout_marker(trial_id)):
        path.unlink(missing_ok=True)


def record_failure(plan: Plan, trial: Trial, out_dir: Path, env: Env, device: torch.device,
                   err: BaseException, attempts: int, trace: str) -> TrialOutcome:
    """Keep the full traceback under errors/ and a status row (class, message, attempts) in
    results/, so tables and reports show the failure; the trial runs again on the next run."""
    out_dir = Path(out_dir)
    kind = classify(err)
    first = first_line(err)
    message = f"{type(err).__name__}: {first}" if first else type(err).__name__
    trace_path = RunDir(out_dir).traceback(trial.trial_id)
    atomic_write_bytes(trace_path, trace.encode())
    rows = Rows(plan, trial, env, device)
    rows.write(RunDir(out_dir).failed_file(trial.trial_id),
               [{**rows.fit_row("failed", attempts, 0, protocol=kind,
                                note=f"{kind}: {message}; traceback: {trace_path}")}])
    return TrialOutcome(trial.trial_id, kind, f"{message} (traceback: {trace_path})", rows.count)


def work_left(plan: Plan, trial: Trial, out_dir: Path, planned: Work | None = None) -> Work | None:
    """What is left of `planned` (the driver's ledger work for `trial`; None: everything) once
    the trial's own files are looked at, and nothing else (an earlier attempt's, or a dead
    process's, finished work); None when done. Both views can only overstate what is missing
    (the driver's is older; the trial's own misses the compacted parts), so what both call
    missing is."""
    left = scan(out_dir, plan, echo=lambda _: None, only=trial.trial_id).work
    own = left[0] if left else None
    if own is None or planned is None:
        return own
    still = {u.setting: set(u.metrics) for u in own.units}
    units = tuple(Unit(u.setting, u.sampling_key, tuple(m for m in u.metrics if m in still[u.setting]))
                  for u in planned.units if u.setting in still)
    units = tuple(u for u in units if u.metrics)
    fit = planned.fit and own.fit
    return Work(trial, fit, units) if fit or units else None


def attempt_trial(plan: Plan, trial: Trial, out_dir: Path, env: Env, device: torch.device, *,
                  planned: Work | None = None, max_failures: int = 1,
                  sync: Callable[[], None] = lambda: None,
                  progress: Callable[[dict[str, Any]], None] = lambda info: None,
                  stuck: Callable[[], None] | None = None) -> TrialOutcome:
    """Do what is still missing of `trial` in `out_dir` (all the driver `planned`, or less where
    an earlier attempt, this process's or a dead one's, finished some of it), retrying up to
    `max_failures` times what is left. A failure is recorded (status row, traceback file) and
    returned, never raised. Past the plan's `trial_timeout_s` the trial stops with a `timeout`
    failure, never retried; `stuck()` is called if it is still running `Watchdog.GRACE_S` later
    (stuck in C code: the Tune adapter ends its worker process)."""
    import traceback

    watchdog = Watchdog(plan.trial_timeout_s, stuck)
    try:
        with TrialLog(RunDir(out_dir).log(trial.trial_id), trial.name) as log:
            for attempt in range(1, max_failures + 2):
                work = work_left(plan, trial, out_dir, planned)
                if work is None:
                    return TrialOutcome(trial.trial_id, "ok", "", 0)
                log.attempt(attempt)
                try:
                    return execute_trial(plan, work, out_dir, env, device, sync, progress)
                except TrialTimeout:  # never retried: it would only time out again
                    watchdog.cancel()
                    why = TrialTimeout(f"ran past the trial timeout of "
                                       f"{duration_text(plan.trial_timeout_s)}")
                    log.write(traceback.format_exc())
                    return recorded(plan, trial, out_dir, env, device, why, attempt,
                                    traceback.format_exc())
                except Exception as err:  # noqa: BLE001 - recorded with its traceback
                    log.write(traceback.format_exc())
                    if attempt > max_failures:
                        return recorded(plan, trial, out_dir, env, device, err, attempt,
                                        traceback.format_exc())
        raise AssertionError("unreachable: the last attempt returns")
    finally:
        watchdog.cancel()


class TrialLog:
    """OUT/logs/<trial>.log: what a trial prints (Python's sys.stdout and sys.stderr, warnings
    included), every attempt after a header, and each failure's traceback; the output still
    goes where it went (a Ray worker's log, or this console with --in-process). Output a C
    library writes to the file descriptors directly is not in it. Never fails a trial: a log
    that cannot be written is skipped."""

    def __init__(self, path: Path, name: str):
        self.path, self.name, self.file, self.saved = path, name, None, None

    def __enter__(self) -> "TrialLog":
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(self.path, "a", buffering=1)
        except OSError:
            return self
        self.saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Tee(sys.stdout, self.file), _Tee(sys.stderr, self.file)
        return self

    def attempt(self, n: int) -> None:
        stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
        self.write(f"== {self.name}: attempt {n}, {stamp}, host {socket.gethostname()}, "
                   f"pid {os.getpid()} ==\n")

    def write(self, text: str) -> None:
        if self.file is not None:
            try:
                self.file.write(text)
            except (OSError, ValueError):
                pass

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            sys.stdout, sys.stderr = self.saved
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass


class _Tee:
    """A text stream that writes to `stream` and to `copy` (the copy never raises)."""

    def __init__(self, stream, copy):
        self.stream, self.copy = stream, copy

    def write(self, text: str) -> int:
        try:
            self.copy.write(text)
        except (OSError, ValueError):
            pass
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str):
        return getattr(self.stream, name)


def recorded(plan: Plan, trial: Trial, out_dir: Path, env: Env, device: torch.device,
             err: BaseException, attempts: int, trace: str) -> TrialOutcome:
    """`record_failure`, or, when even that cannot be written (a full disk, a vanished
    directory), an outcome that says both: never an exception (Tune would print its own long
    traceback)."""
    try:
        return record_failure(plan, trial, out_dir, env, device, err, attempts, trace)
    except OSError as also:
        return TrialOutcome(trial.trial_id, classify(err),
                            f"{type(err).__name__}: {first_line(err)}; not recorded either: "
                            f"{also.strerror or also}: {also.filename or out_dir}", 0)


class Watchdog:
    """Raises TrialTimeout in the thread that made it once `seconds` have passed (between two
    Python bytecodes: a step in C finishes first); calls `stuck()` if the trial is still running
    `GRACE_S` later. 0 seconds: no watchdog."""

    GRACE_S = 30.0

    def __init__(self, seconds: float, stuck: Callable[[], None] | None = None):
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
                                                       ctypes.py_object(TrialTimeout))
            if self.done.wait(self.GRACE_S) or stuck is None:
                return
            stuck()

        threading.Thread(target=watch, name="genbench-trial-timeout", daemon=True).start()

    def cancel(self) -> None:
        self.done.set()


def execute_cross(plan: Plan, trial: Trial, partner: Trial, out_dir: Path, env: Env,
                  device: torch.device) -> int:
    """Measure `trial`'s fit against `partner`'s (`Method.cross_evaluate`) on the data set's
    test images and write the rows; returns their count (0 when a checkpoint is missing)."""
    out_dir = Path(out_dir)
    if not all(RunDir(out_dir).checkpoint(t.trial_id).is_file() for t in (trial, partner)):
        return 0
    import_code(plan.imports)
    seed_everything(trial.seed)
    method, other = load_fit(plan, trial, out_dir, device), load_fit(plan, partner, out_dir, device)
    real = datasets.load(plan.data, "test", plan.resolution).x[:plan.n_samples]
    values = method.cross_evaluate(other, real, seed=partner.seed)
    rows = Rows(plan, trial, env, device).of(method)
    note = f"against the fit of seed {partner.seed} ({partner.trial_id})"
    rows.write(RunDir(out_dir).cross_file(trial.trial_id, partner.trial_id),
               [{**rows.fit_row(name, v["value"], trial.budget_steps, note=note),
                 "protocol": v.get("protocol"), "n_samples": len(real),
                 "run_key": f"{trial.trial_id}x{partner.trial_id}"}
                for name, v in values.items()])
    return rows.count


def make_evaluator(plan: Plan, device: torch.device):
    if not plan.metrics:
        return None
    from genbench.harness.metrics.quality import Evaluator

    return Evaluator(plan.data, plan.resolution, ref_split=plan.ref_split, device=device,
                     missing_assets=plan.missing_assets)


def _fit(plan: Plan, trial: Trial, out_dir: Path, rows: Rows, evaluator,
         device: torch.device, sync: Callable[[], None],
         progress: Callable[[dict[str, Any]], None] = lambda info: None) -> Method | None:
    """Train the trial's method; write its fit rows, curve, checkpoint and figures. None when
    the loss turned non-finite (the rows then record where)."""
    if trial.pretrained:
        return _load_pretrained(trial, out_dir, rows, device)
    train = datasets.load(plan.data, "train", plan.resolution)
    method_cls = get_method(trial.method)
    method = method_cls(build_config(method_cls.Config, trial.config))  # once per trial
    rows.of(method)
    memory = MemPhase(device, "fit()", rows.env)  # the data and the method in its baseline
    curve: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    eval_s = 0.0  # time spent evaluating along training, kept out of train_s
    resume_path = RunDir(out_dir).resume_checkpoint(trial.trial_id)
    resume = load_resume(resume_path, trial) if method_cls.resumable else None
    if resume is not None:  # an earlier attempt's progress: its curve and time count too
        curve = resume.pop("curve")
        t_start -= resume["train_s"]
        eval_s = resume["eval_s"]

    reported = [0]  # the last step the method reported: the steps it took

    def on_log(step: int, values: dict[str, float]) -> None:
        nonlocal eval_s
        reported[0] = max(reported[0], step)
        wall = time.perf_counter() - t_start
        rate = {"images_per_s": step * rows.per_step / (wall - eval_s)} \
            if rows.per_step and wall > eval_s else {}
        progress({"phase": "fit", "step": step, "steps": trial.budget_steps, "wall_s": wall,
                  **rate, **{k: float(v) for k, v in values.items()}})
        for name, v in values.items():
            curve.append({"trial_id": trial.trial_id, "step": step, "metric": name,
                          "value": float(v), "wall_s": wall})
        if evaluator is not None and plan.eval_every and step % plan.eval_every == 0:
            t0 = time.perf_counter()
            labels = labels_for(method, plan.eval_samples)
            samples = method.sample(plan.eval_samples, seed=trial.seed, labels=labels,
                                    **plan.settings_for(trial)[0].knobs)  # (a generation task: no observation)
            for r in evaluator.evaluate(plan.metrics, samples, labels):
                curve.append({"trial_id": trial.trial_id, "step": step, "metric": r["metric"],
                              "value": r["value"], "wall_s": wall})
            eval_s += time.perf_counter() - t0

    def save(step: int, state: dict[str, Any]) -> None:
        buf = io.BytesIO()
        torch.save({"trial_id": trial.trial_id, "step": step, "state": state, "curve": curve,
                    "train_s": time.perf_counter() - t_start, "eval_s": eval_s}, buf)
        atomic_write_bytes(resume_path, buf.getvalue())
        sync()

    budget = Budget(trial.budget_steps, log_every=plan.log_every, callback=on_log,
                    checkpoint_every=checkpoint_every(trial.budget_steps, plan.log_every),
                    save=save if method_cls.resumable else None, resume=resume)
    try:
        method.fit(train, budget, seed=trial.seed, device=device)
    except DivergedError as err:
        resume_path.unlink(missing_ok=True)  # a diverged fit is final: nothing to resume
        write_curve(out_dir, trial.trial_id, curve)
        rows.note = str(err)
        rows.write(RunDir(out_dir).fit_file(trial.trial_id),
                   [rows.fit_row("diverged_at_step", err.step, err.step, note=str(err))])
        return None
    train_s = time.perf_counter() - t_start - eval_s
    write_curve(out_dir, trial.trial_id, curve)
    save_checkpoint(out_dir, trial.trial_id, method)
    resume_path.unlink(missing_ok=True)
    # the steps the method reported through its budget's callback (None: it reported none, a
    # fit in closed form or one that ignores the budget), never the budget taken on trust
    steps = reported[0] or (resume["step"] if resume else None)
    resumed = f"resumed from the step-{resume['step']} checkpoint of a failed attempt" if resume else None
    per_s = steps * rows.per_step / train_s if rows.per_step and steps and train_s > 0 else float("nan")
    out = [rows.fit_row("train_s", train_s, steps, protocol="wall clock around fit()", note=resumed),
           rows.fit_row("train_images_per_s", per_s, steps,
                        protocol="train_steps * images_per_step / train_s",
                        note=None if rows.per_step and steps else
                        "skipped: the method trains on no minibatch (images_per_step is None)"
                        if not rows.per_step else "skipped: the method reported no step"),
           rows.fit_row("n_params", method.n_params(), steps)]
    window = (steps % plan.log_every or plan.log_every) if steps else None
    for i, name in enumerate(type(method).losses):  # the first is the method's final_loss
        values = [p["value"] for p in curve if p["metric"] == name]
        if values:  # logged as the mean since the previous log: the last window is shorter
            out.append(rows.fit_row(   # when log_every does not divide the steps
                "final_loss" if i == 0 else f"final_{name}", values[-1], steps,
                protocol=f"mean of {name} over the last {count(window, 'step')}" if window
                else f"the last {name} logged"))
    out += [rows.fit_row(name, value, steps) for name, value in method.info().items()]
    out += [rows.fit_row("peak_mem_mb", memory.increase_mb(), steps, protocol=memory.protocol()),
            rows.fit_row("mem_base_mb", memory.base_mb, steps, protocol=memory.base_protocol())]
    rows.write(RunDir(out_dir).fit_file(trial.trial_id), out)
    if plan.figures:  # after the fit's rows: a figure that fails never costs the fit
        knobs = plan.settings_for(trial)[0].knobs  # the evaluations' setting
        for name, (images, nrow) in method.figures(train, seed=trial.seed, **knobs).items():
            save_grid(RunDir(out_dir).figure(trial.trial_id, name), images, nrow)
    return method


def _load_pretrained(trial: Trial, out_dir: Path, rows: Rows, device: torch.device) -> Method:
    """A pretrained trial's fit: its starting point loaded (checked against the hash the plan
    recorded), kept as the trial's checkpoint like a fit, and the fit's rows: the load's time,
    the parameters and memory, the model's facts; no loss, since nothing trained."""
    from genbench.harness.store import zoo

    method_cls = get_method(trial.method)
    method = method_cls(build_config(method_cls.Config, trial.config))
    rows.of(method)
    memory = MemPhase(device, "fit()", rows.env)
    t0 = time.perf_counter()
    where = zoo.location_of(trial.pretrained)
    method.load_state_dict(zoo.load_state(trial.pretrained, where))
    method.to(device)
    load_s = time.perf_counter() - t0
    save_checkpoint(out_dir, trial.trial_id, method)
    note = f"pretrained: {trial.pretrained['ref']} (sha256 {trial.pretrained['sha256'][:12]}), loaded"
    out = [rows.fit_row("train_s", load_s, 0, protocol="wall clock around loading the checkpoint",
                        note=note),
           rows.fit_row("train_images_per_s", float("nan"), 0, note=f"skipped: {note}, not trained"),
           rows.fit_row("n_params", method.n_params(), 0)]
    out += [rows.fit_row(name, value, 0) for name, value in method.info().items()]
    out += [rows.fit_row("peak_mem_mb", memory.increase_mb(), 0, protocol=memory.protocol()),
            rows.fit_row("mem_base_mb", memory.base_mb, 0, protocol=memory.base_protocol())]
    rows.write(RunDir(out_dir).fit_file(trial.trial_id), out)
    return method


def _task_inputs(plan: Plan, trial: Trial, out_dir: Path, method: Method) -> TaskInputs:
    """The task's inputs for this trial (an observation to restore, for inpainting)."""
    inputs = get_task(plan.task).inputs(data=plan.data, resolution=plan.resolution,
                                        n_samples=plan.n_samples, mask=plan.mask,
                                        obs_noise=plan.obs_noise, seed=trial.seed)
    if inputs.observation is not None:
        obs = inputs.observation
        save_grid(RunDir(out_dir).sample_grid(trial.trial_id, "observation"),
                   obs.y + (obs.mask - 1))
    return inputs


def _measure(plan: Plan, trial: Trial, setting: SampleSetting, unit: Unit, method: Method,
             evaluator, labels: torch.Tensor | None, inputs: TaskInputs, out_dir: Path,
             rows: Rows, device: torch.device) -> int:
    """Draw one setting's samples and write the rows of the metrics `unit` asks for; return
    how many samples were not finite (then their quality and task metrics are NaN rows saying
    so, with a `diverged` status row: final, as a diverged fit is)."""
    memory = MemPhase(device, "sample()", rows.env)
    sample_info, samples, sample_s = draw_samples(method, setting, plan.n_samples, trial.seed,
                                             labels, inputs.observation)
    n = len(samples)  # (the real-data floor of a small held-out split can have fewer)
    bad = int((~torch.isfinite(samples.reshape(len(samples), -1)).all(1)).sum())
    values: dict[str, dict[str, Any]] = {
        "sample_s_per_image": {"value": sample_s / n, "protocol": "wall clock around sample()"},
        "nfe": {"value": sample_info["nfe"], "protocol": "network evaluations per sample"},
        "sample_peak_mem_mb": {"value": memory.increase_mb(), "protocol": memory.protocol()},
    }
    task = get_task(plan.task)
    quality = [m for m in unit.metrics if m in plan.metrics]
    # the baseline is a fact beside the peak it qualifies (a unit that only adds a metric to
    # settings measured before writes neither)
    extra = [{"metric": "sample_mem_base_mb", "value": memory.base_mb,
              "protocol": memory.base_protocol()}] if "sample_peak_mem_mb" in unit.metrics else []
    if bad:  # never into the metrics (scipy's sqrtm would fail on them): NaN rows that say why
        note = f"not measured: {bad} of {n} samples are not finite (NaN or inf)"
        for m in (*task.metrics, *quality):
            values[m] = {"value": float("nan"), "note": note}
        extra.append({"metric": "diverged", "value": bad, "note": note})
    else:
        if set(task.metrics) & set(unit.metrics):
            values.update(task.measure(samples, inputs, mask=plan.mask, obs_noise=plan.obs_noise))
        if quality:
            for r in evaluator.evaluate(quality, samples, labels):
                values[r.pop("metric")] = r
        if n < plan.n_samples:  # (said on each quality row)
            for m in quality:
                values[m]["note"] = "; ".join(filter(None, (
                    f"all {n} held-out examples there are (n_samples asks {plan.n_samples})",
                    values[m].get("note"))))
    path = RunDir(out_dir).sample_grid(trial.trial_id, setting.key)
    if method.output == "images":
        save_grid(path, torch.nan_to_num(samples))
    else:
        save_histogram(path, samples[torch.isfinite(samples).all(1)], plan.data, sample_info)
    common = {"sample_json": canonical_json(sample_info), "setting_json": canonical_json(setting.cell),
              "cell_key": plan.cell_key(trial, setting), "run_key": unit.sampling_key}
    out = [{"n_samples": n, **values[m], "metric": m, **common} for m in unit.metrics]
    out += [{"n_samples": n, **r, **common} for r in extra]
    for r in out:
        r["value"] = float(r["value"])
    rows.write(RunDir(out_dir).unit_file(trial.trial_id, unit.sampling_key, unit.metrics_key), out)
    return bad


def labels_for(method: Method, n: int) -> torch.Tensor | None:
    """Class labels to condition on: balanced over classes for conditional methods."""
    if not method.num_classes:
        return None
    return torch.arange(n) % method.num_classes


def draw_samples(method: Method, setting: SampleSetting, n: int, seed: int,
                 labels: torch.Tensor | None,
                 observation: Observation | None) -> tuple[dict[str, Any], torch.Tensor, float]:
    """Draw n samples of one setting: (its knobs and sampler facts such as `nfe`, the samples,
    the seconds it took); the seed is the trial's, so every setting starts from the same
    initial noise."""
    t0 = time.perf_counter()
    samples = method.sample(n, seed=seed, labels=labels, observation=observation, **setting.knobs)
    sample_s = time.perf_counter() - t0
    facts = method.sampling_info(**setting.knobs)
    return {**setting.knobs, **facts, "setting": setting.key}, samples, sample_s

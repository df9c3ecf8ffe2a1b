"""One trial, in plain Python, as the ledger (`harness.ledger.Work`) asks: fit a method on a
train-grid cell (or load the fit's checkpoint), then draw each sample setting still to measure
from the same fitted model and the same initial noise, measure cost, task and quality metrics,
and write rows, curve, sample grids and checkpoint atomically; and, once every seed is fitted,
measure fits against each other (`execute_cross`). `harness.runner` wraps this for Ray Tune;
tests call it directly.
"""

from __future__ import annotations

import io
import json
import os
import resource
import socket
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import torch

from harness import data as datasets
from harness.config import build_config, canonical_json
from harness.errors import DivergedError, GenbenchError, first_line
from harness.method import Budget, Method, Observation, get_method
from harness.ledger import Unit, Work
from harness.results import (SCHEMA_VERSION, atomic_write_bytes, checkpoint_problem, cross_file,
                             failed_file, within, write_checkpoint,
                             fit_file, unit_file, write_curve, write_rows)
from harness.seeding import seed_everything
from harness.metrics import higher_is_better
from harness.provenance import device_clock
from harness.registry import import_code
from harness.tasks import TaskInputs, get_task
from harness.study import Plan, SampleSetting, Trial

GRID_IMAGES = 64  # samples shown in each PNG grid


@dataclass(frozen=True)
class Env:
    """Facts about the run that every row records."""

    git_sha: str
    versions_json: str
    assets_dir: str  # absolute GENBENCH_ASSETS, so every node looks in the same place
    umask: int = 0o022  # the driver's umask: files written by workers get the user's modes
    reuse_workers: bool = False  # trials share worker processes (`genbench run --reuse-workers`)
    data_dir: str = ""  # the driver's GENBENCH_DATA made absolute ("" = unset: each node's own)
    run_id: str = ""  # this driver run (a trial that timed out in it is not started again in it)
    heartbeat_s: float = 60.0  # a trial silent this long gets a progress line on the console

    def apply(self) -> None:
        """Point this process at the driver's assets and data (trials run in directories of
        their own: relative paths would not reach them)."""
        os.environ["GENBENCH_ASSETS"] = self.assets_dir
        if self.data_dir:
            os.environ["GENBENCH_DATA"] = self.data_dir


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
    evaluator = _evaluator(plan, device)
    method = None
    if not work.fit:
        try:
            method = _load(plan, trial, out_dir, device)
        except DamagedCheckpoint as err:  # fit again, and measure every setting of the new fit
            print(f"genbench: trial {trial.trial_id}: {err}; its fit runs again", file=sys.stderr)
            work = Work(trial, True, tuple(Unit(s.key, plan.sampling_key(trial, s), plan.measured())
                                           for s in plan.settings_for(trial)))
    if work.fit:
        method = _fit(plan, trial, out_dir, rows, evaluator, device, sync, progress)
        if method is None:  # diverged: final, and an earlier attempt's failure is over
            _failure_over(out_dir, trial.trial_id)
            return TrialOutcome(trial.trial_id, "diverged", rows.note, rows.count)
        sync()
    labels = _labels_for(method, plan.n_samples)
    inputs = _task_inputs(plan, trial, out_dir, method)
    settings = {s.key: s for s in plan.settings_for(trial)}
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


WARMUP_STEPS = 2  # the first optimiser steps calibration leaves out of a step's time


def calibrate_trial(plan: Plan, trial: Trial, device: torch.device, steps: int = 20,
                    n: int = 64) -> dict[str, float]:
    """Time a short version of `trial` without writing anything: setup (imports, data, metric
    assets), `steps` optimiser steps, and n samples of each sample setting with the plan's
    quality metrics. `estimate_s` extrapolates to the whole trial (its budget, n_samples);
    `peak_mem_mb` is the peak memory over the fit, the sampling and the metrics (GPU memory
    the caching allocator reserved on CUDA, RSS on the CPU), what decides how many trials can
    share a GPU; `device_mem_mb` the GPU's total, 0 on the CPU.
    `step_s` leaves the first WARMUP_STEPS steps out, whose one-off costs a short run would
    otherwise spread over every step of the estimate."""
    t0 = time.perf_counter()
    import_code(plan.imports)
    seed_everything(trial.seed)
    train = datasets.load(plan.data, "train", plan.resolution)
    evaluator = _evaluator(plan, device)
    if evaluator is not None:  # reference statistics load (or are built) once: setup, not metrics
        evaluator.prepare(plan.metrics, echo=lambda _: None)
    method_cls = get_method(trial.method)
    method = method_cls(build_config(method_cls.Config, trial.config))
    steps = max(1, min(steps, trial.budget_steps))
    setup_s = time.perf_counter() - t0
    _reset_peak_mem(device)
    # a step's time: from the end of the warm-up steps (kernel selection, caches, lazy
    # allocation) to the end of the fit, the steps' ends told by the budget's callback; a
    # method that reports less often is timed over its whole fit
    ends: list[tuple[int, float]] = []
    start = time.perf_counter()
    try:
        method.fit(train, Budget(steps, log_every=1,
                                 callback=lambda step, _: ends.append((step, device_clock(device)))),
                   seed=trial.seed, device=device)
        done = steps
    except DivergedError as err:  # timing is all calibration wants; the real run records it
        done = max(1, err.step)
    end = device_clock(device)
    warm = [(s, t) for s, t in ends if s == min(WARMUP_STEPS, done - 1)]
    step_0, t_0 = warm[0] if warm else (0, start)
    step_s = (end - t_0) / (done - step_0)
    total = torch.cuda.get_device_properties(device).total_memory / 2**20 if device.type == "cuda" else 0.0
    n = max(1, min(n, plan.n_samples))
    labels = _labels_for(method, n)
    inputs = get_task(plan.task).inputs(data=plan.data, resolution=plan.resolution, n_samples=n,
                                        mask=plan.mask, obs_noise=plan.obs_noise, seed=trial.seed)
    settings = plan.settings_for(trial)
    sample_s = metric_s = 0.0
    for setting in settings:
        _, samples, seconds = _sample(method, setting, n, trial.seed, labels, inputs.observation)
        sample_s += seconds / n
        if evaluator is not None and plan.metrics:
            t0 = time.perf_counter()
            evaluator.evaluate(plan.metrics, samples, labels)
            metric_s += (time.perf_counter() - t0) / n
    peak = _peak_mem_mb(device, reserved=True)  # (the metrics' networks share the GPU too)
    estimate = setup_s + trial.budget_steps * step_s + plan.n_samples * (sample_s + metric_s)
    return {"setup_s": setup_s, "step_s": step_s, "sample_s_per_image": sample_s,
            "metric_s_per_image": metric_s, "estimate_s": estimate, "steps": steps, "n": n,
            "peak_mem_mb": peak, "device_mem_mb": total}


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
    failed_file(out_dir, trial_id).unlink(missing_ok=True)
    for name in (f"{trial_id}.txt", f"{trial_id}.timeout"):
        (out_dir / "errors" / name).unlink(missing_ok=True)


def record_failure(plan: Plan, trial: Trial, out_dir: Path, env: Env, device: torch.device,
                   err: BaseException, attempts: int, trace: str) -> TrialOutcome:
    """Keep the full traceback under errors/ and a status row (class, message, attempts) in
    results/, so tables and reports show the failure; the trial runs again on the next run."""
    out_dir = Path(out_dir)
    kind = classify(err)
    first = first_line(err)
    message = f"{type(err).__name__}: {first}" if first else type(err).__name__
    trace_path = out_dir / "errors" / f"{trial.trial_id}.txt"
    atomic_write_bytes(trace_path, trace.encode())
    rows = Rows(plan, trial, env, device)
    rows.write(failed_file(out_dir, trial.trial_id),
               [{**rows.fit_row("failed", attempts, 0, protocol=kind,
                                note=f"{kind}: {message}; traceback: {trace_path}")}])
    return TrialOutcome(trial.trial_id, kind, f"{message} (traceback: {trace_path})", rows.count)


class Rows:
    """Result rows of one trial: every row carries the same provenance (schema v2)."""

    def __init__(self, plan: Plan, trial: Trial, env: Env, device: torch.device):
        from harness.provenance import device_name

        self.plan, self.trial, self.env = plan, trial, env
        self.base = {"schema_version": SCHEMA_VERSION, "study": plan.study, "scale": plan.scale,
                     "trial_id": trial.trial_id, "arm": trial.arm, "method": trial.method,
                     "dataset": plan.data,
                     "seed": trial.seed, "config_hash": trial.config_hash,
                     "config_json": canonical_json({"config": trial.config,
                                                    "budget_steps": trial.budget_steps,
                                                    "data": plan.data,
                                                    "resolution": plan.resolution,
                                                    "cell": trial.cell}),
                     "cell_json": canonical_json(trial.cell), "device": device_name(device),
                     "git_sha": env.git_sha, "versions_json": env.versions_json,
                     "node": os.environ.get("GENBENCH_NODE") or socket.gethostname(),
                     "plan_id": plan.plan_id}
        self.count = 0
        self.note = ""

    def write(self, path: Path, rows: list[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc)
        write_rows(path, [{**self.base, "created_at": now,
                           "higher_is_better": higher_is_better(r["metric"]), **r} for r in rows])
        self.count += len(rows)

    def fit_row(self, metric: str, value: float, steps: int, **extra: Any) -> dict[str, Any]:
        batch_size = self.trial.config.get("batch_size")
        return {"metric": metric, "value": float(value), "sample_json": "{}",
                "cell_key": self.plan.cell_key(self.trial), "run_key": self.trial.trial_id,
                "train_steps": steps, "images_seen": steps * batch_size if batch_size else None,
                **extra}


def execute_cross(plan: Plan, trial: Trial, partner: Trial, out_dir: Path, env: Env,
                  device: torch.device) -> int:
    """Measure `trial`'s fit against `partner`'s (`Method.cross_evaluate`) on the data set's
    test images and write the rows; returns their count (0 when a checkpoint is missing)."""
    out_dir = Path(out_dir)
    if not all((out_dir / "checkpoints" / f"{t.trial_id}.pt").is_file() for t in (trial, partner)):
        return 0
    import_code(plan.imports)
    seed_everything(trial.seed)
    method, other = _load(plan, trial, out_dir, device), _load(plan, partner, out_dir, device)
    real = datasets.load(plan.data, "test", plan.resolution).x[:plan.n_samples]
    values = method.cross_evaluate(other, real, seed=partner.seed)
    rows = Rows(plan, trial, env, device)
    note = f"against the fit of seed {partner.seed} ({partner.trial_id})"
    rows.write(cross_file(out_dir, trial.trial_id, partner.trial_id),
               [{**rows.fit_row(name, v["value"], trial.budget_steps, note=note),
                 "protocol": v.get("protocol"), "n_samples": len(real),
                 "run_key": f"{trial.trial_id}x{partner.trial_id}"}
                for name, v in values.items()])
    return rows.count


def _evaluator(plan: Plan, device: torch.device):
    if not plan.metrics:
        return None
    from harness.metrics.quality import Evaluator

    return Evaluator(plan.data, plan.resolution, ref_split=plan.ref_split, device=device,
                     missing_assets=plan.missing_assets)


def _fit(plan: Plan, trial: Trial, out_dir: Path, rows: Rows, evaluator,
         device: torch.device, sync: Callable[[], None],
         progress: Callable[[dict[str, Any]], None] = lambda info: None) -> Method | None:
    """Train the trial's method; write its fit rows, curve, checkpoint and figures. None when
    the loss turned non-finite (the rows then record where)."""
    _reset_peak_mem(device)
    train = datasets.load(plan.data, "train", plan.resolution)
    method_cls = get_method(trial.method)
    method = method_cls(build_config(method_cls.Config, trial.config))
    curve: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    eval_s = 0.0  # time spent evaluating along training, kept out of train_s
    resume_path = out_dir / "checkpoints" / f"{trial.trial_id}.resume.pt"
    resume = _load_resume(resume_path, trial) if method_cls.resumable else None
    if resume is not None:  # an earlier attempt's progress: its curve and time count too
        curve = resume.pop("curve")
        t_start -= resume["train_s"]
        eval_s = resume["eval_s"]

    def on_log(step: int, values: dict[str, float]) -> None:
        nonlocal eval_s
        wall = time.perf_counter() - t_start
        progress({"phase": "fit", "step": step, "steps": trial.budget_steps, "wall_s": wall,
                  **{k: float(v) for k, v in values.items()}})
        for name, v in values.items():
            curve.append({"trial_id": trial.trial_id, "step": step, "metric": name,
                          "value": float(v), "wall_s": wall})
        if evaluator is not None and plan.eval_every and step % plan.eval_every == 0:
            t0 = time.perf_counter()
            labels = _labels_for(method, plan.eval_samples)
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
        rows.write(fit_file(out_dir, trial.trial_id),
                   [rows.fit_row("diverged_at_step", err.step, err.step, note=str(err))])
        return None
    train_s = time.perf_counter() - t_start - eval_s
    write_curve(out_dir, trial.trial_id, curve)
    _save_checkpoint(out_dir, trial.trial_id, method)
    resume_path.unlink(missing_ok=True)
    steps = trial.budget_steps
    resumed = f"resumed from the step-{resume['step']} checkpoint of a failed attempt" if resume else None
    out = [rows.fit_row("train_s", train_s, steps, protocol="wall clock around fit()", note=resumed),
           rows.fit_row("train_images_per_s", steps * trial.config.get("batch_size", 1) / train_s,
                        steps, protocol="budget_steps * batch_size / train_s"),
           rows.fit_row("n_params", method.n_params(), steps)]
    for i, name in enumerate(type(method).losses):  # the first is the method's final_loss
        values = [p["value"] for p in curve if p["metric"] == name]
        if values:
            out.append(rows.fit_row("final_loss" if i == 0 else f"final_{name}", values[-1],
                                    steps, protocol=f"mean of {name} over the last "
                                                    f"{plan.log_every} steps"))
    out += [rows.fit_row(name, value, steps) for name, value in method.info().items()]
    out.append(rows.fit_row("peak_mem_mb", _peak_mem_mb(device), steps,
                            protocol=_peak_mem_protocol(device, "fit()", rows.env)))
    rows.write(fit_file(out_dir, trial.trial_id), out)
    if plan.figures:  # after the fit's rows: a figure that fails never costs the fit
        knobs = plan.settings_for(trial)[0].knobs  # the evaluations' setting
        for name, (images, nrow) in method.figures(train, seed=trial.seed, **knobs).items():
            _save_grid(within(out_dir / "figures", trial.trial_id, f"{name}.png"), images, nrow)
    return method


CHECKPOINTS_PER_FIT = 10


def checkpoint_every(steps: int, log_every: int) -> int:
    """Training checkpoints of a resumable method: about CHECKPOINTS_PER_FIT per fit, at log
    points (so a resumed loss log starts clean)."""
    every = max(1, steps // CHECKPOINTS_PER_FIT)
    return -(-every // log_every) * log_every


def _load_resume(path: Path, trial: Trial) -> dict[str, Any] | None:
    """The last training checkpoint of this very trial, or None (absent, another trial's, or
    unreadable: then training starts over)."""
    if not path.is_file():
        return None
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn or foreign file: start over
        return None
    return saved if saved.get("trial_id") == trial.trial_id else None


class DamagedCheckpoint(Exception):
    """A checkpoint that does not load: its trial fits again."""


def _load(plan: Plan, trial: Trial, out_dir: Path, device: torch.device) -> Method:
    """The trial's fitted method from its checkpoint (the ledger found its fit done). A
    checkpoint that does not match what was written, or does not load, is moved to
    quarantine/ and raises DamagedCheckpoint naming it."""
    method_cls = get_method(trial.method)
    method = method_cls(build_config(method_cls.Config, trial.config))
    path = out_dir / "checkpoints" / f"{trial.trial_id}.pt"
    problem = checkpoint_problem(path, full=True)
    if problem is None:
        try:
            method.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # noqa: BLE001 - torch says little more than "corrupt"
            problem = f"checkpoint {path} does not load ({type(err).__name__}: {first_line(err)})"
    if problem is not None:
        from harness.ledger import quarantine

        dest = quarantine(out_dir, path)
        path.with_name(path.name + ".sha256").unlink(missing_ok=True)
        raise DamagedCheckpoint(f"{problem}; moved to {dest}")
    return method.to(device)


def _task_inputs(plan: Plan, trial: Trial, out_dir: Path, method: Method) -> TaskInputs:
    """The task's inputs for this trial (an observation to restore, for inpainting)."""
    inputs = get_task(plan.task).inputs(data=plan.data, resolution=plan.resolution,
                                        n_samples=plan.n_samples, mask=plan.mask,
                                        obs_noise=plan.obs_noise, seed=trial.seed)
    if inputs.observation is not None:
        obs = inputs.observation
        _save_grid(out_dir / "samples" / trial.trial_id / "observation.png",
                   obs.y + (obs.mask - 1))
    return inputs


def _measure(plan: Plan, trial: Trial, setting: SampleSetting, unit: Unit, method: Method,
             evaluator, labels: torch.Tensor | None, inputs: TaskInputs, out_dir: Path,
             rows: Rows, device: torch.device) -> int:
    """Draw one setting's samples and write the rows of the metrics `unit` asks for; return
    how many samples were not finite (then their quality and task metrics are NaN rows saying
    so, with a `diverged` status row: final, as a diverged fit is)."""
    _reset_peak_mem(device)
    sample_json, samples, sample_s = _sample(method, setting, plan.n_samples, trial.seed,
                                             labels, inputs.observation)
    n = plan.n_samples
    bad = int((~torch.isfinite(samples.reshape(len(samples), -1)).all(1)).sum())
    values: dict[str, dict[str, Any]] = {
        "sample_s_per_image": {"value": sample_s / n, "protocol": "wall clock around sample()"},
        "nfe": {"value": json.loads(sample_json)["nfe"], "protocol": "network evaluations per sample"},
        "sample_peak_mem_mb": {"value": _peak_mem_mb(device),
                               "protocol": _peak_mem_protocol(device, "sample()", rows.env)},
    }
    task = get_task(plan.task)
    quality = [m for m in unit.metrics if m in plan.metrics]
    status = []
    if bad:  # never into the metrics (scipy's sqrtm would fail on them): NaN rows that say why
        note = f"not measured: {bad} of {n} samples are not finite (NaN or inf)"
        for m in (*task.metrics, *quality):
            values[m] = {"value": float("nan"), "note": note}
        status = [{"metric": "diverged", "value": bad, "note": note}]
    else:
        if set(task.metrics) & set(unit.metrics):
            values.update(task.measure(samples, inputs, mask=plan.mask, obs_noise=plan.obs_noise))
        if quality:
            for r in evaluator.evaluate(quality, samples, labels):
                values[r.pop("metric")] = r
    path = within(out_dir / "samples", trial.trial_id, f"{setting.key}.png")
    if method.output == "images":
        _save_grid(path, torch.nan_to_num(samples))
    else:
        _save_histogram(path, samples[torch.isfinite(samples).all(1)], plan.data, sample_json)
    common = {"sample_json": sample_json, "setting_json": canonical_json(setting.cell),
              "cell_key": plan.cell_key(trial, setting), "run_key": unit.sampling_key}
    out = [{"n_samples": n, **values[m], "metric": m, **common} for m in unit.metrics]
    out += [{"n_samples": n, **r, **common} for r in status]
    for r in out:
        r["value"] = float(r["value"])
    rows.write(unit_file(out_dir, trial.trial_id, unit.sampling_key, unit.metrics_key), out)
    return bad


def _labels_for(method: Method, n: int) -> torch.Tensor | None:
    """Class labels to condition on: balanced over classes for conditional methods."""
    if not getattr(method, "num_classes", 0):
        return None
    return torch.arange(n) % method.num_classes


def _sample(method: Method, setting: SampleSetting, n: int, seed: int,
            labels: torch.Tensor | None,
            observation: Observation | None) -> tuple[str, torch.Tensor, float]:
    """Draw n samples of one setting; the seed is the trial's, so every setting starts from
    the same initial noise."""
    t0 = time.perf_counter()
    samples = method.sample(n, seed=seed, labels=labels, observation=observation, **setting.knobs)
    sample_s = time.perf_counter() - t0
    facts = method.sampling_info(**setting.knobs)
    return canonical_json({**setting.knobs, **facts, "setting": setting.key}), samples, sample_s


def _save_grid(path: Path, samples: torch.Tensor, nrow: int = 8, pad: int = 2) -> None:
    """A PNG grid of the first images (torchvision's `make_grid` layout, values mapped from
    [-1, 1]; written with numpy so that a trial does not import torchvision)."""
    import numpy as np

    x = ((samples[:GRID_IMAGES].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    if x.shape[1] == 1:
        x = np.repeat(x, 3, axis=1)
    n, c, h, w = x.shape
    cols = min(nrow, n)
    rows = -(-n // cols)
    grid = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), dtype=np.uint8)
    for i, img in enumerate(x):
        r, k = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + k * (w + pad)
        grid[top:top + h, left:left + w] = img.transpose(1, 2, 0)
    _save_png(path, grid)


def _save_png(path: Path, rgb) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _save_histogram(path: Path, samples: torch.Tensor, data: str, sample_json: str) -> None:
    """What a grid is for images, for 1-D points: their histogram, over the data set's exact
    density when it has one."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = samples[:, 0].double().numpy()
    fig, ax = plt.subplots(figsize=(4, 3), dpi=100)
    lo, hi = np.quantile(x, [0.001, 0.999])
    lo, hi = min(lo, -4.0), max(hi, 4.0)
    ax.hist(x, bins=120, range=(lo, hi), density=True, color="#4477aa", alpha=0.8,
            label=f"{len(x)} samples")
    try:
        law = datasets.law(data)
        grid = np.linspace(lo, hi, 600)
        ax.plot(grid, law.pdf(grid), color="black", lw=1.2, label="exact p_0")
    except GenbenchError:
        pass
    ax.set_title(json.loads(sample_json).get("setting", ""), fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    _save_png(path, rgb)


def _save_checkpoint(out_dir: Path, trial_id: str, method: Method) -> None:
    buf = io.BytesIO()
    torch.save(method.state_dict(), buf)
    write_checkpoint(out_dir, trial_id, buf.getvalue())


# Linux keeps a process's peak RSS (VmHWM) and resets it when "5" is written to clear_refs, so
# a trial in a reused worker process measures its own peak, not an earlier trial's
_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


def _reset_peak_mem(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass


def _vm_hwm_mb() -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def _peak_mem_protocol(device: torch.device, around: str, env: Env) -> str:
    if device.type == "cuda":
        return f"torch.cuda.max_memory_allocated during {around}"
    shared = "; the worker process ran earlier trials too, whose retained memory counts" \
        if env.reuse_workers else ""
    if _vm_hwm_mb() is not None and _CLEAR_REFS.exists():
        return f"peak RSS of the trial process during {around} (VmHWM reset before; imports included{shared})"
    return f"ru_maxrss of the trial process (imports and earlier work included{shared})"


def _peak_mem_mb(device: torch.device, reserved: bool = False) -> float:
    """Peak since the last reset: on CUDA what tensors took (or, `reserved`, what the caching
    allocator held: what other processes cannot have); on the CPU the resident set."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_reserved if reserved else torch.cuda.max_memory_allocated
        return peak(device) / 2**20
    hwm = _vm_hwm_mb() if _CLEAR_REFS.exists() else None
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

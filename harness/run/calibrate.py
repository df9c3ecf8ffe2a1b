"""Calibration (`genbench plan --calibrate`): a short version of a trial, timed and measured
but written nowhere, from which the driver estimates each train cell's wall time and peak
memory, and how trials pack onto GPUs.
"""

from __future__ import annotations

import time

import torch

from genbench.harness import data as datasets
from genbench.harness.config import build_config
from genbench.harness.errors import DivergedError
from genbench.harness.method import Budget, get_method
from genbench.harness.seeding import seed_everything
from genbench.harness.run.provenance import device_clock
from genbench.harness.registry import import_code
from genbench.harness.plan.tasks import get_task
from genbench.harness.plan.plan import Plan, Trial
from genbench.harness.run.rows import peak_mem_mb, reset_peak_mem
from genbench.harness.run.trial import draw_samples, labels_for, make_evaluator


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
    evaluator = make_evaluator(plan, device)
    if evaluator is not None:  # reference statistics load (or are built) once: setup, not metrics
        evaluator.prepare(plan.metrics, echo=lambda _: None)
    method_cls = get_method(trial.method)
    method = method_cls(build_config(method_cls.Config, trial.config))
    steps = max(1, min(steps, trial.budget_steps))
    setup_s = time.perf_counter() - t0
    reset_peak_mem(device)
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
    labels = labels_for(method, n)
    inputs = get_task(plan.task).inputs(data=plan.data, resolution=plan.resolution, n_samples=n,
                                        mask=plan.mask, obs_noise=plan.obs_noise, seed=trial.seed)
    settings = plan.settings_for(trial)
    sample_s = metric_s = 0.0
    for setting in settings:
        _, samples, seconds = draw_samples(method, setting, n, trial.seed, labels, inputs.observation)
        sample_s += seconds / n
        if evaluator is not None and plan.metrics:
            t0 = time.perf_counter()
            evaluator.evaluate(plan.metrics, samples, labels)
            metric_s += (time.perf_counter() - t0) / n
    peak = peak_mem_mb(device, reserved=True)  # (the metrics' networks share the GPU too)
    estimate = setup_s + trial.budget_steps * step_s + plan.n_samples * (sample_s + metric_s)
    return {"setup_s": setup_s, "step_s": step_s, "sample_s_per_image": sample_s,
            "metric_s_per_image": metric_s, "estimate_s": estimate, "steps": steps, "n": n,
            "peak_mem_mb": peak, "device_mem_mb": total}

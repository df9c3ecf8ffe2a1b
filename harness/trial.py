"""One trial, in plain Python: fit a method on a train-grid cell, sample every setting of the
sample grid from the same fitted model and the same initial noise, measure cost (and quality)
and write the rows, curve, sample grids and checkpoint atomically. `harness.runner` wraps this
for Ray Tune; tests call it directly.
"""

from __future__ import annotations

import io
import json
import os
import resource
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from harness import data as datasets
from harness.config import build_config, canonical_json
from harness.errors import DivergedError, GenbenchError
from harness.method import Budget, Method, Observation, get_method
from harness.results import (SCHEMA_VERSION, atomic_write_bytes, write_curve,
                             write_trial_results)
from harness.seeding import seed_everything
from harness.tasks import hidden_error, make_inpainting
from harness.study import Plan, SampleSetting, Trial

GRID_IMAGES = 64  # samples shown in each PNG grid


@dataclass(frozen=True)
class Env:
    """Facts about the run that every row records."""

    git_sha: str
    versions_json: str
    assets_dir: str  # absolute GENBENCH_ASSETS, so every node looks in the same place


@dataclass(frozen=True)
class TrialOutcome:
    trial_id: str
    status: str  # "ok" or "diverged"
    message: str
    n_rows: int


def execute_trial(plan: Plan, trial: Trial, out_dir: Path, env: Env,
                  device: torch.device) -> TrialOutcome:
    """Run `trial` of `plan`; write everything under `out_dir` (an absolute path)."""
    from harness.provenance import device_name

    out_dir = Path(out_dir)
    os.environ["GENBENCH_ASSETS"] = env.assets_dir
    seed_everything(trial.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train = datasets.load(plan.data, "train", plan.resolution)
    method_cls = get_method(plan.method)
    method = method_cls(build_config(method_cls.Config, trial.config))
    config_json = canonical_json({"config": trial.config, "budget_steps": plan.budget_steps,
                                  "data": plan.data, "resolution": plan.resolution,
                                  "cell": trial.cell})
    base = {"study": plan.study, "scale": plan.scale, "trial_id": trial.trial_id,
            "method": plan.method, "dataset": plan.data, "seed": trial.seed,
            "config_hash": trial.config_hash, "config_json": config_json,
            "device": device_name(device), "git_sha": env.git_sha,
            "versions_json": env.versions_json}
    rows: list[dict[str, Any]] = []

    def row(metric: str, value: float, sample_json: str = "{}", **extra: Any) -> None:
        rows.append({**base, "schema_version": SCHEMA_VERSION, "metric": metric, "value": float(value),
                     "sample_json": sample_json, "created_at": datetime.now(timezone.utc),
                     **extra})

    evaluator = None
    if plan.metrics:
        from harness.metrics.quality import Evaluator

        evaluator = Evaluator(plan.data, plan.resolution, ref_split=plan.ref_split,
                              device=device, missing_assets=plan.missing_assets)
    curve: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    eval_s = 0.0  # time spent evaluating along training, kept out of train_s

    def on_log(step: int, values: dict[str, float]) -> None:
        nonlocal eval_s
        wall = time.perf_counter() - t_start
        for name, v in values.items():
            curve.append({"trial_id": trial.trial_id, "step": step, "metric": name,
                          "value": float(v), "wall_s": wall})
        if evaluator is not None and plan.eval_every and step % plan.eval_every == 0:
            t0 = time.perf_counter()
            setting = plan.samples[0]
            labels = _labels_for(method, plan.eval_samples)
            samples = method.sample(plan.eval_samples, seed=trial.seed, labels=labels,
                                    **setting.knobs)  # (a generation task: no observation)
            for r in evaluator.evaluate(plan.metrics, samples, labels):
                curve.append({"trial_id": trial.trial_id, "step": step, "metric": r["metric"],
                              "value": r["value"], "wall_s": wall})
            eval_s += time.perf_counter() - t0

    budget = Budget(plan.budget_steps, log_every=plan.log_every, callback=on_log)
    try:
        method.fit(train, budget, seed=trial.seed, device=device)
    except DivergedError as err:
        write_curve(out_dir, trial.trial_id, curve)
        row("diverged_at_step", err.step, note=str(err))
        write_trial_results(out_dir, trial.trial_id, rows)
        return TrialOutcome(trial.trial_id, "diverged", str(err), len(rows))
    train_s = time.perf_counter() - t_start - eval_s
    write_curve(out_dir, trial.trial_id, curve)
    _save_checkpoint(out_dir, trial.trial_id, method)

    batch_size = trial.config.get("batch_size", 1)
    row("train_s", train_s, protocol="wall clock around fit()")
    row("train_images_per_s", plan.budget_steps * batch_size / train_s,
        protocol="budget_steps * batch_size / train_s")
    row("n_params", method.n_params())
    losses = [p["value"] for p in curve if p["metric"] == "loss"]
    if losses:
        row("final_loss", losses[-1], protocol=f"mean over the last {plan.log_every} steps")
    for name, value in method.info().items():
        row(name, value)

    if plan.figures:
        for name, (images, nrow) in method.figures(train, seed=trial.seed).items():
            _save_grid(out_dir / "figures" / trial.trial_id / f"{name}.png", images, method, nrow)
    labels = _labels_for(method, plan.n_samples)
    truth = observation = None
    if plan.task == "inpaint":  # restore the first n test images from y = A(x) + n
        truth = datasets.load(plan.data, "test", plan.resolution).x[:plan.n_samples]
        if len(truth) < plan.n_samples:
            raise GenbenchError(f"inpainting needs n_samples <= {len(truth)} test images")
        observation = make_inpainting(truth, plan.mask, plan.obs_noise, seed=trial.seed)
        _save_grid(out_dir / "samples" / trial.trial_id / "observation.png",
                   observation.y + (observation.mask - 1), method)
    for setting in plan.samples:
        sample_json, samples, sample_s = _sample(method, setting, plan.n_samples, trial.seed,
                                                 labels, observation)
        row("sample_s_per_image", sample_s / plan.n_samples, sample_json,
            n_samples=plan.n_samples, protocol="wall clock around sample()")
        info = json.loads(sample_json)
        row("nfe", info["nfe"], sample_json, n_samples=plan.n_samples,
            protocol="network evaluations per sample")
        _save_grid(out_dir / "samples" / trial.trial_id / f"{setting.key}.png", samples, method)
        if evaluator is not None:
            for r in evaluator.evaluate(plan.metrics, samples, labels):
                row(r.pop("metric"), r.pop("value"), sample_json, **r)
        if observation is not None:
            mse, psnr = hidden_error(samples, truth, observation.mask)
            protocol = f"hidden pixels of the {plan.mask} mask, obs_noise={plan.obs_noise}"
            row("mse_hidden", mse, sample_json, n_samples=plan.n_samples, protocol=protocol)
            row("psnr_hidden", psnr, sample_json, n_samples=plan.n_samples,
                protocol=protocol + ", peak-to-peak 2")
    row("peak_mem_mb", _peak_mem_mb(device),
        protocol="torch.cuda.max_memory_allocated" if device.type == "cuda" else "ru_maxrss of the trial process")
    write_trial_results(out_dir, trial.trial_id, rows)
    return TrialOutcome(trial.trial_id, "ok", "", len(rows))


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


def _save_grid(path: Path, samples: torch.Tensor, method: Method, nrow: int = 8) -> None:
    """A PNG grid of the first samples (images only; point samples get no grid)."""
    if method.output != "images":
        return
    from torchvision.utils import make_grid
    from PIL import Image

    grid = make_grid(samples[:GRID_IMAGES].float(), nrow=nrow, normalize=True,
                     value_range=(-1, 1))
    arr = grid.mul(255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())


def _save_checkpoint(out_dir: Path, trial_id: str, method: Method) -> None:
    buf = io.BytesIO()
    torch.save(method.state_dict(), buf)
    atomic_write_bytes(out_dir / "checkpoints" / f"{trial_id}.pt", buf.getvalue())


def _peak_mem_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

"""Registered metrics whose names state their protocol, with a higher-is-better map (after
stylegan2-ada's `metrics/metric_main.py`).

Cost metrics are measured by the runner around `fit` and `sample` and are always recorded;
quality metrics are registered functions a study asks for by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from genbench.harness.errors import GenbenchError, unknown
from genbench.harness.registry import Registry, origin

# name: (higher is better, what it measures and how)
COST_METRICS: dict[str, tuple[bool, str]] = {
    "train_s": (False, "wall seconds inside fit()"),
    "train_images_per_s": (True, "training examples processed per wall second"),
    "peak_mem_mb": (False, "peak memory of the fit above what the process held when it began "
                           "(mem_base_mb): CUDA allocated, else the process's RSS"),
    "n_params": (False, "trainable parameters"),
    "final_loss": (False, "mean training loss over the last log interval"),
    "sample_s_per_image": (False, "wall seconds per generated sample"),
    "nfe": (False, "network evaluations per sample"),
    "sample_peak_mem_mb": (False, "peak memory while sampling above what the process held when "
                                  "it began (sample_mem_base_mb)"),
    "diverged_at_step": (False, "step at which the loss became non-finite (row only if it did)"),
    "failed": (False, "attempts of a trial whose every attempt raised; note: class and message"),
    "diverged": (False, "samples of a sample setting that were not finite (row only if any were)"),
}

# how two values of a metric compare (genbench.harness.verdicts.stats): differences, or per-seed
# log ratios for a positive, multiplicative metric (FID, KID, times, memory)
SCALES = ("linear", "log")
# the cost metrics that say a fit or setting did not finish (a status row instead of metrics)
STATUS_METRICS = ("failed", "diverged_at_step", "diverged")

# facts recorded beside the cost metrics, without a good direction (shown, never judged): the
# memory a phase starts from (imports, data, models already held), so that its peak can be
# read as what the phase itself added
MEMORY_BASELINES: dict[str, str] = {
    "mem_base_mb": "memory the trial process held when fit() began: CUDA allocated, else RSS",
    "sample_mem_base_mb": "memory the trial process held when a setting's sample() began",
}

# the memory peaks each baseline belongs to: a phase's increase over what its process held, which
# depends on the process's history (a fresh worker's first fit loads torch's optimiser machinery,
# ~150 MB, that a worker which ran earlier trials already holds)
MEMORY_PEAKS = ("peak_mem_mb", "sample_peak_mem_mb")

# the cost metrics that are wall-clock times: they measure the machine and its load as much as
# the code (`genbench compare --no-timings` leaves them out, e.g. on a shared CI machine)
WALL_CLOCK_METRICS = ("train_s", "train_images_per_s", "sample_s_per_image")

# the cost metrics recorded once per sample setting (the rest once per fit)
SETTING_COST_METRICS = ("sample_s_per_image", "nfe", "sample_peak_mem_mb")

# task metrics, measured by the runner for studies with task="inpaint"
TASK_METRICS: dict[str, tuple[bool, str]] = {
    "mse_hidden": (False, "mean squared error on the hidden pixels, images in [-1, 1]"),
    "psnr_hidden": (True, "PSNR (dB) on the hidden pixels, peak-to-peak 2"),
}


@dataclass(frozen=True)
class QualityMetric:
    name: str  # ends in its feature space: fid_inception, fid_domain, ...
    fn: Callable[[Any], dict[str, Any]]  # MetricInput -> row fields (value, std, protocol, note)
    space: str  # feature space: "inception" or "domain"
    higher_is_better: bool
    description: str
    needs_labels: bool = False  # needs a labelled data set (domain classifier, class match)
    tolerance: float = 0.10  # relative change one seed cannot tell from noise (compare)
    scale: str = "linear"  # "log": positive and multiplicative (FID, KID): compared as log ratios


QUALITY_METRICS: Registry[QualityMetric] = Registry("quality metric", "genbench.metrics")


def register_metric(name: str, *, space: str, higher_is_better: bool, description: str,
                    needs_labels: bool | None = None, scale: str = "linear"):
    """Decorator: a quality metric function under `name`. `needs_labels` (default: the domain
    space, whose classifier trains on labels) refuses it at plan time on unlabelled data.
    `scale` is how two values compare (`genbench.harness.verdicts.stats`): "linear" (the default: an
    additive metric, such as a precision, an accuracy or a distance in the data's units) by
    their difference; "log" (positive and multiplicative by nature, such as FID or KID) by
    their ratio, as a per-seed log ratio shown as a % change."""
    if scale not in SCALES:
        raise ValueError(f"metric {name!r}: invalid scale {scale!r}; valid: {', '.join(SCALES)}")

    def wrap(fn):
        if name in COST_METRICS or name in TASK_METRICS:
            raise ValueError(f"metric {name!r} is a cost or task metric")
        labels = space == "domain" if needs_labels is None else needs_labels
        QUALITY_METRICS.add(name, QualityMetric(name, fn, space, higher_is_better, description,
                                                labels, scale=scale), source=origin(fn))
        return fn

    return wrap


def _load_quality_metrics() -> None:
    QUALITY_METRICS.load_entry_points()


def higher_is_better(name: str) -> bool | None:
    """Direction of metric `name`, for comparisons and reports; None for a fact without a good
    direction (a method's own `info()` values, such as `terminal_snr`)."""
    if name in COST_METRICS:
        return COST_METRICS[name][0]
    if name in TASK_METRICS:
        return TASK_METRICS[name][0]
    if name in QUALITY_METRICS:
        return QUALITY_METRICS.get(name).higher_is_better
    return None


# relative tolerance of a comparison (`genbench compare`): a change must be significant and
# beyond it. Exact counts none, quality 10 %, wall-clock and memory 50 %: on CPU the peak memory
# is the process's RSS, imports included, and the same study measured 200 MB (about 27 %) apart
# when run from the command line and from the test suite
TOLERANCE: dict[str, float] = {"n_params": 0.0, "nfe": 0.0, "diverged_at_step": 0.0, "failed": 0.0,
                               "diverged": 0.0,
                               "train_s": 0.5, "train_images_per_s": 0.5,
                               "sample_s_per_image": 0.5, "peak_mem_mb": 0.5,
                               "sample_peak_mem_mb": 0.5}


# an absolute floor under the tolerance, in the metric's unit: a phase's memory increase depends
# on what the allocator can reuse from the phases before it (the same DDIM sampling added 0.6 MB
# in one process and 59 MB in another), so changes below 128 MiB are not told from that noise
TOLERANCE_FLOOR: dict[str, float] = {"peak_mem_mb": 128.0, "sample_peak_mem_mb": 128.0}


# the cost metrics compared as ratios (`scale`): times and memory are positive and
# multiplicative by nature (a slower machine, a larger batch); the rest are counts or losses
LOG_SCALE_COSTS = ("train_s", "train_images_per_s", "sample_s_per_image", "peak_mem_mb",
                   "sample_peak_mem_mb")
def scale(name: str) -> str:
    """How two values of metric `name` compare: "log" (as a ratio) or "linear" (as a
    difference); a metric genbench does not know is linear."""
    if name in QUALITY_METRICS:
        return QUALITY_METRICS.get(name).scale
    return "log" if name in LOG_SCALE_COSTS else "linear"


def tolerance_floor(name: str) -> float:
    """The smallest change of `name`, in its own unit, that can count (0: none)."""
    return TOLERANCE_FLOOR.get(name, 0.0)


def tolerance(name: str) -> float:
    """The relative change of `name` that one seed cannot tell from noise (default 10 %)."""
    if name in QUALITY_METRICS:
        return QUALITY_METRICS.get(name).tolerance
    return TOLERANCE.get(name, 0.10)


def metric_names() -> list[str]:
    _load_quality_metrics()
    return sorted([*COST_METRICS, *TASK_METRICS, *QUALITY_METRICS.names()])


def check_metric_names(names: tuple[str, ...] | list[str]) -> None:
    """Fail in one line naming the valid quality metrics when a study asks for an unknown one."""
    _load_quality_metrics()
    for n in names:
        if n not in QUALITY_METRICS:
            valid = QUALITY_METRICS.names()
            raise GenbenchError(unknown("quality metric", n, valid, ", ".join(valid) or "none registered"))

"""Rows and their provenance: what every row of a trial records about how it was measured
(`Env`: code version, package versions, assets; the device, node, plan and keys), one writer per
trial (`Rows`), and the memory of each phase behind `peak_mem_mb` and `sample_peak_mem_mb`: the
increase over what the process held when the phase began, that baseline in its own rows
(CUDA's allocator statistics, or the process's VmHWM reset before each phase on Linux).
"""

from __future__ import annotations

import os
import resource
import socket
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from genbench.harness.config import canonical_json
from genbench.harness.store.results import SCHEMA_VERSION, write_rows
from genbench.harness.metrics import higher_is_better
from genbench.harness.plan.plan import Plan, Trial


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


class Rows:
    """Result rows of one trial: every row carries the same provenance (schema v2)."""

    def __init__(self, plan: Plan, trial: Trial, env: Env, device: torch.device):
        from genbench.harness.run.provenance import device_name

        self.plan, self.trial, self.env = plan, trial, env
        self.per_step: int | None = None  # training examples per step, once the method is built
        self.base = {"schema_version": SCHEMA_VERSION, "study": plan.study, "scale": plan.scale,
                     "trial_id": trial.trial_id, "arm": trial.arm, "method": trial.method,
                     "dataset": plan.data,
                     "seed": trial.seed, "config_hash": trial.config_hash,
                     "config_json": canonical_json({"config": trial.config,
                                                    "budget_steps": trial.budget_steps,
                                                    "data": plan.data,
                                                    "resolution": plan.resolution,
                                                    "cell": trial.cell,
                                                    **({"pretrained": trial.pretrained}
                                                       if trial.pretrained else {})}),
                     "cell_json": canonical_json(trial.cell), "device": device_name(device),
                     "git_sha": env.git_sha, "versions_json": env.versions_json,
                     "node": os.environ.get("GENBENCH_NODE") or socket.gethostname(),
                     "plan_id": plan.plan_id}
        self.count = 0

    def of(self, method: Any) -> "Rows":
        """These rows are about `method` (built once per trial): the examples one of its
        optimiser steps sees, as it declares them (`Method.images_per_step`)."""
        self.per_step = method.images_per_step(method.config)
        return self

    def write(self, path: Path, rows: list[dict[str, Any]]) -> None:
        now = datetime.now(timezone.utc)
        write_rows(path, [{**self.base, "created_at": now,
                           "higher_is_better": higher_is_better(r["metric"]), **r} for r in rows])
        self.count += len(rows)

    def fit_row(self, metric: str, value: float, steps: int, **extra: Any) -> dict[str, Any]:
        return {"metric": metric, "value": float(value), "sample_json": "{}",
                "cell_key": self.plan.cell_key(self.trial), "run_key": self.trial.trial_id,
                "train_steps": steps,
                "images_seen": steps * self.per_step if self.per_step and steps is not None else None,
                **extra}


# Linux keeps a process's peak RSS (VmHWM) and resets it when "5" is written to clear_refs, so
# a trial in a reused worker process measures its own peak, not an earlier trial's
_CLEAR_REFS = Path("/proc/self/clear_refs")


_STATUS = Path("/proc/self/status")


def reset_peak_mem(device: torch.device) -> None:
    """Start a peak: on CUDA the allocator's cache is emptied first, so a phase never reports
    an earlier, larger phase's reserve; on Linux the process's VmHWM restarts from its RSS."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        pass


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def _vm_hwm_mb() -> float | None:
    return _status_mb("VmHWM")


def peak_mem_mb(device: torch.device, reserved: bool = False) -> float:
    """Peak since the last reset: on CUDA what tensors took (or, `reserved`, what the caching
    allocator held: what other processes cannot have); on the CPU the resident set."""
    if device.type == "cuda":
        peak = torch.cuda.max_memory_reserved if reserved else torch.cuda.max_memory_allocated
        return peak(device) / 2**20
    hwm = _vm_hwm_mb() if _CLEAR_REFS.exists() else None
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def held_mem_mb(device: torch.device) -> float:
    """Memory held now: CUDA's allocated tensors, else the process's resident set (0 where
    the system does not say)."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device) / 2**20
    return _status_mb("VmRSS") or 0.0


class MemPhase:
    """The memory of one phase (a fit, one setting's sampling): its peak as the increase over
    what the process held when the phase began (`increase_mb`, the `*peak_mem_mb` rows), and
    that baseline (`base_mb`, the `*mem_base_mb` rows: imports, the model, earlier phases)."""

    def __init__(self, device: torch.device, around: str, env: Env):
        self.device, self.around, self.env = device, around, env
        reset_peak_mem(device)
        self.base_mb = held_mem_mb(device)

    def increase_mb(self) -> float:
        return max(0.0, peak_mem_mb(self.device) - self.base_mb)

    def protocol(self) -> str:
        """How the increase was measured. What earlier trials of the process left
        (`--reuse-workers`, `--in-process`) is in the baseline, not in the increase; what a
        process loads lazily in its first fit is in that fit's increase (torch imports
        torch._dynamo at the first optimizer it builds: about 150 MB, so a fresh Ray worker's fit
        reads that much higher than a later one in the same process)."""
        if self.device.type == "cuda":
            return (f"torch.cuda.max_memory_allocated during {self.around} minus the memory "
                    f"allocated when it began (cache emptied and peak reset before)")
        if _vm_hwm_mb() is not None and _CLEAR_REFS.exists():
            return (f"peak RSS of the trial process during {self.around} minus its RSS when "
                    f"{self.around} began (VmHWM reset before)")
        return (f"ru_maxrss of the trial process minus its RSS when {self.around} began "
                f"(the lifetime peak: earlier work can count)")

    def base_protocol(self) -> str:
        what = "CUDA memory allocated" if self.device.type == "cuda" else "RSS of the trial process"
        shared = "; the worker process ran earlier trials too, whose retained memory counts" \
            if self.env.reuse_workers else ""
        return f"{what} when {self.around} began (imports, data, models already held{shared})"

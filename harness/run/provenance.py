"""Where a result came from: git commit, library versions, device. Recorded on every row."""

from __future__ import annotations

import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

import torch

_PACKAGES = ("genbench", "torch", "torchvision", "ray", "numpy", "pandas", "pyarrow",
             "clean-fid", "mlxtend")


def git_sha() -> str:
    """HEAD of the genbench checkout, with '-dirty' when tracked files changed; 'unknown'
    when genbench does not run from a git checkout."""
    root = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return sha + ("-dirty" if dirty else "")


def versions() -> dict[str, str]:
    """Python, platform and library versions, and the CUDA build torch was compiled for."""
    out = {"python": platform.python_version(), "platform": platform.platform(),
           "torch_cuda": str(torch.version.cuda)}
    for pkg in _PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "absent"
    return out


def versions_json() -> str:
    return json.dumps(versions(), sort_keys=True)


def device_clock(device: torch.device) -> float:
    """`time.perf_counter()` once the work queued on `device` is done (a CUDA device runs
    asynchronously: timing it without a synchronisation times the queueing)."""
    import time

    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def device_name(device: torch.device) -> str:
    """'cpu (N threads)' or the GPU's product name."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.processor() or platform.machine()}x{torch.get_num_threads()}"

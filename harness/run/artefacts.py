"""A trial's artefacts beside its rows: PNG sample grids and histograms, the method's figures,
the fitted model's checkpoint (written with its size and sha256, loaded only when they match,
else set aside in quarantine/) and the training checkpoints a failed attempt resumes from.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from genbench.harness import data as datasets
from genbench.harness.config import build_config
from genbench.harness.errors import GenbenchError, first_line
from genbench.harness.method import Method, get_method
from genbench.harness.store.files import atomic_write_bytes, checkpoint_problem, write_checkpoint
from genbench.harness.store.rundir import RunDir
from genbench.harness.plan.plan import Plan, Trial


GRID_IMAGES = 64  # samples shown in each PNG grid


CHECKPOINTS_PER_FIT = 10


def checkpoint_every(steps: int, log_every: int) -> int:
    """Training checkpoints of a resumable method: about CHECKPOINTS_PER_FIT per fit, at log
    points (so a resumed loss log starts clean)."""
    every = max(1, steps // CHECKPOINTS_PER_FIT)
    return -(-every // log_every) * log_every


def load_resume(path: Path, trial: Trial) -> dict[str, Any] | None:
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


def load_fit(plan: Plan, trial: Trial, out_dir: Path, device: torch.device) -> Method:
    """The trial's fitted method from its checkpoint (the ledger found its fit done). A
    checkpoint that does not match what was written, or does not load, is moved to
    quarantine/ and raises DamagedCheckpoint naming it."""
    method_cls = get_method(trial.method)
    method = method_cls(build_config(method_cls.Config, trial.config))
    run = RunDir(out_dir)
    path = run.checkpoint(trial.trial_id)
    problem = checkpoint_problem(path, full=True)
    if problem is None:
        try:
            method.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # noqa: BLE001 - torch says little more than "corrupt"
            problem = f"checkpoint {path} does not load ({type(err).__name__}: {first_line(err)})"
    if problem is not None:
        dest = run.quarantine(path)
        run.checksum(trial.trial_id).unlink(missing_ok=True)
        raise DamagedCheckpoint(f"{problem}; moved to {dest}")
    return method.to(device)


def save_grid(path: Path, samples: torch.Tensor, nrow: int = 8, pad: int = 2) -> None:
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


def save_histogram(path: Path, samples: torch.Tensor, data: str, sample_info: dict) -> None:
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
    # one filled outline, not 120 bar patches (the patches took 0.5 s a histogram)
    counts, edges = np.histogram(x, bins=120, range=(lo, hi), density=True)
    ax.stairs(counts, edges, fill=True, color="#4477aa", alpha=0.8, label=f"{len(x)} samples")
    try:
        law = datasets.law(data)
        grid = np.linspace(lo, hi, 600)
        ax.plot(grid, law.pdf(grid), color="black", lw=1.2, label="exact p_0")
    except GenbenchError:
        pass
    ax.set_title(sample_info.get("setting", ""), fontsize=8)
    ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.9, bottom=0.12)  # (tight_layout: 0.12 s)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    _save_png(path, rgb)


def save_checkpoint(out_dir: Path, trial_id: str, method: Method) -> None:
    buf = io.BytesIO()
    torch.save(method.state_dict(), buf)
    write_checkpoint(out_dir, trial_id, buf.getvalue())

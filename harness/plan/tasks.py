"""Tasks: what a trial's samples are asked to do, and how that is measured, the same way for
every method. A task is a small object: it checks a plan before anything runs, prepares the
trial's inputs, and measures the outputs. A new task touches this file only (add it to TASKS).

- `generate`: unconditional (or class-conditional) generation; quality metrics do the measuring.
- `inpaint` (diffusion posterior sampling, Chung et al. 2022, arXiv 2209.14687): the first n
  test images x are observed through y = A(x) + n with A(x) = mask * x; a method restores them
  from `Observation(y, mask)`, and the error on the hidden pixels is reported as `mse_hidden`
  and `psnr_hidden`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from genbench.harness.errors import GenbenchError
from genbench.harness.method import Observation

if TYPE_CHECKING:  # torch loads when a task measures: planning needs none
    import torch

MASKS = ("center", "half", "random", "none")  # see make_inpainting


@dataclass(frozen=True)
class TaskInputs:
    """What a trial's sampling is given, and the truth its outputs are measured against."""

    observation: Observation | None = None
    truth: torch.Tensor | None = None  # (N, C, H, W) the unknown images


class Task:
    """Generation: no inputs, no task metrics."""

    name = "generate"
    metrics: tuple[str, ...] = ()  # the task metrics it measures (see genbench.harness.metrics)

    def check(self, *, data: str, resolution: int, n_samples: int, mask: str) -> None:
        """Refuse, at plan time, a study this task cannot run."""

    def inputs(self, *, data: str, resolution: int, n_samples: int, mask: str,
               obs_noise: float, seed: int) -> TaskInputs:
        return TaskInputs()

    def measure(self, samples: torch.Tensor, inputs: TaskInputs, *, mask: str,
                obs_noise: float) -> dict[str, dict[str, Any]]:
        """metric -> row fields (value, protocol) for each of `metrics`."""
        return {}


class Inpaint(Task):
    """Restore the first n test images from y = mask * (x + obs_noise * n)."""

    name = "inpaint"
    metrics = ("mse_hidden", "psnr_hidden")

    def check(self, *, data: str, resolution: int, n_samples: int, mask: str) -> None:
        from genbench.harness import data as datasets

        if mask not in MASKS:
            raise GenbenchError(f"invalid value {mask!r} for mask; valid: {', '.join(MASKS)}")
        n_test = len(datasets.load(data, "test", resolution).x)
        if n_samples > n_test:
            raise GenbenchError(f"task 'inpaint' restores test images: n_samples={n_samples} "
                                f"exceeds the {n_test} test images of {data}")

    def inputs(self, *, data: str, resolution: int, n_samples: int, mask: str,
               obs_noise: float, seed: int) -> TaskInputs:
        from genbench.harness import data as datasets

        truth = datasets.load(data, "test", resolution).x[:n_samples]
        return TaskInputs(make_inpainting(truth, mask, obs_noise, seed=seed), truth)

    def measure(self, samples: torch.Tensor, inputs: TaskInputs, *, mask: str,
                obs_noise: float) -> dict[str, dict[str, Any]]:
        mse, psnr = hidden_error(samples, inputs.truth, inputs.observation.mask)
        protocol = f"hidden pixels of the {mask} mask, obs_noise={obs_noise}"
        return {"mse_hidden": {"value": mse, "protocol": protocol},
                "psnr_hidden": {"value": psnr, "protocol": protocol + ", peak-to-peak 2"}}


TASKS: dict[str, Task] = {t.name: t for t in (Task(), Inpaint())}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise GenbenchError(f"invalid value {name!r} for task; valid: {', '.join(map(repr, TASKS))}")
    return TASKS[name]




def make_inpainting(x: torch.Tensor, kind: str, noise_std: float, seed: int) -> Observation:
    """The observation of images x (N, C, H, W) under a mask `kind`:
    `center` hides the central half-side square, `half` hides the right half,
    `random` hides each pixel with probability 1/2, `none` hides nothing."""
    import torch

    N, C, H, W = x.shape
    mask = torch.ones(N, 1, H, W)
    if kind == "center":
        mask[:, :, H // 4:H // 4 + H // 2, W // 4:W // 4 + W // 2] = 0
    elif kind == "half":
        mask[:, :, :, W // 2:] = 0
    elif kind == "random":
        g = torch.Generator().manual_seed(seed)
        mask = (torch.rand(N, 1, H, W, generator=g) < 0.5).float()
    elif kind != "none":
        raise ValueError(f"unknown mask {kind!r}; valid: {', '.join(MASKS)}")
    g = torch.Generator().manual_seed(seed + 1)
    y = mask * (x + noise_std * torch.randn(x.shape, generator=g))
    return Observation(y=y, mask=mask)


def hidden_error(x_hat: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> tuple[float, float]:
    """(MSE, PSNR in dB) over the hidden pixels; images in [-1, 1], so the peak-to-peak is 2."""
    import torch

    hidden = (1 - mask).expand_as(x)
    n = hidden.sum().clamp(min=1)
    mse = float(((x_hat - x) ** 2 * hidden).sum() / n)
    psnr = 10 * torch.log10(torch.tensor(4.0 / max(mse, 1e-12))).item()
    return mse, psnr

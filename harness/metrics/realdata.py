"""The real-data floor: held-out real images (or points), measured by every quality metric as if
they were a method's samples, so that each number a run reports stands beside what real data
scores at the same sample count against the same reference (FID of a few dozen samples is
dominated by its estimator's bias: 64 real digits score about 41 on `fid_domain`).

It is the reserved pseudo-arm `real` that every generation study measuring a quality metric gets
(`genbench.harness.plan.resolve`): a "method" whose fit loads the split the reference does not use
and whose `sample(n, seed=s)` returns n of those images, chosen by seed s, the same for every
setting. Its rows (arm `real`) go through the same trials, ledger, rows and reports as any arm;
claims and compare leave it out of their families unless a claim names `arm=real`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from genbench.harness.method import Budget, Method, TrainData, register
from genbench.harness.store.results import REAL_ARM


@dataclass(frozen=True)
class HeldOutConfig:
    split: str = "test"  # the held-out split: the one the quality metrics' reference is not


@dataclass(frozen=True)
class HeldOutKnobs:
    pass


class HeldOut(Method):
    """Held-out real data as samples (the shared part of the image and point versions)."""

    Config = HeldOutConfig
    Knobs = HeldOutKnobs
    losses = ()

    def __init__(self, config: HeldOutConfig | None = None):
        super().__init__(config)
        self.x: torch.Tensor | None = None
        self.source: dict[str, Any] = {}  # the data set and resolution, which a reload reads

    def fit(self, data: TrainData, budget: Budget, *, seed: int, device: torch.device) -> None:
        self.source = {"data": data.name,
                       "resolution": data.shape[-1] if self.output == "images" else None}
        self._load()

    def _load(self) -> None:
        from genbench.harness import data as datasets

        self.x = datasets.load(self.source["data"], self.config.split, self.source["resolution"]).x

    def sample(self, n: int, *, seed: int, labels=None, observation=None, **knobs: Any) -> torch.Tensor:
        """n held-out examples chosen by `seed` (all of them, in that order, when there are
        fewer: the rows' `n_samples` says how many were measured)."""
        self.knobs(**knobs)  # (it takes none: an unknown one fails naming the valid ones)
        g = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self.x), generator=g)
        return self.x[order[:n]].clone()

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        return {"nfe": 0, "held_out": self.config.split}

    @classmethod
    def images_per_step(cls, config: Any) -> int | None:
        return None

    def extra_state(self) -> dict[str, Any]:  # (where the images are, not the images)
        return {"source": dict(self.source)}

    def rebuild(self, state: dict[str, Any]) -> None:
        self.source = dict(state["source"])
        self._load()

    def n_params(self) -> int:
        return 0


@register(REAL_ARM)
class RealImages(HeldOut):
    output = "images"
    tiny_data = "mnist5k"


@register("real_points")
class RealPoints(HeldOut):
    output = "points"
    tiny_data = "mixture"

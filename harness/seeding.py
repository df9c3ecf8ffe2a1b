"""All randomness in one place (after EDM's `StackedRandomGenerator` and consistency_models'
`DeterministicGenerator`).

`seed_everything` seeds Python, NumPy and torch for the driver and each trial. Sampling noise
comes from `PerSampleNoise`: one generator per sample, seeded from (seed, sample index), so
sample i gets the same noise whatever the batch size, the batch it lands in, or the setting of
an ablation that is being sampled.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and every GPU)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def sample_seed(seed: int, index: int) -> int:
    """Seed of sample `index` of a draw with `seed`: distinct across seeds and indices."""
    return (seed * 1_000_003 + index) % 2**63


class PerSampleNoise:
    """Noise for samples `indices` of a draw with `seed`, one torch.Generator per sample."""

    def __init__(self, seed: int, indices: range | list[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = []
        for i in indices:
            g = torch.Generator(device=self.device)
            g.manual_seed(sample_seed(seed, i))
            self.generators.append(g)

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(len(indices), *shape) standard normal noise."""
        return torch.stack([torch.randn(shape, generator=g, device=self.device, dtype=dtype)
                            for g in self.generators])

    def rand(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(len(indices), *shape) uniform noise in [0, 1)."""
        return torch.stack([torch.rand(shape, generator=g, device=self.device, dtype=dtype)
                            for g in self.generators])

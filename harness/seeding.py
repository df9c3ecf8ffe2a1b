"""All randomness in one place (after EDM's `StackedRandomGenerator` and consistency_models'
`DeterministicGenerator`).

`seed_everything` seeds Python, NumPy and torch for the driver and each trial. Sampling noise
comes from `PerSampleNoise`: one generator per sample, seeded from (seed, sample index), so
sample i gets the same noise whatever the batch size, the batch it lands in, or the setting of
an ablation that is being sampled.

A sampler draws noise of the same shape at every step; one call per generator per step would
be a kernel launch per sample per step on a GPU. `PerSampleNoise` draws ahead instead, in
calls of 1, 2, 4, ... draws per generator up to `MAX_AHEAD_ELEMS` numbers, and hands them out
one step at a time: a sampler of K steps makes about log2(K) + K / ahead calls per sample, and
a single draw (a GAN's z) draws nothing extra. On the CPU the numbers are exactly those of one
call per step (PyTorch fills normals in blocks of 16, and every image shape genbench samples is
a multiple of 16 numbers; uniforms always agree); on a GPU they differ from one call per step
but still depend only on (seed, sample index) and the sequence of draws.
"""

from __future__ import annotations

import math
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

    MAX_AHEAD_ELEMS = 1 << 16  # numbers drawn ahead per sample and call (256 KB in float32)

    def __init__(self, seed: int, indices: range | list[int], device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.generators = []
        for i in indices:
            g = torch.Generator(device=self.device)
            g.manual_seed(sample_seed(seed, i))
            self.generators.append(g)
        # per (kind, shape, dtype): draws made ahead, (ahead, n, *shape), the next one, the size
        self._ahead: dict[tuple, list] = {}

    def randn(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(len(indices), *shape) standard normal noise."""
        return self._next(torch.randn, shape, dtype)

    def rand(self, *shape: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(len(indices), *shape) uniform noise in [0, 1)."""
        return self._next(torch.rand, shape, dtype)

    def _next(self, fn, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        key = (fn.__name__, shape, dtype)
        buf, pos, size = self._ahead.get(key, (None, 0, 0))
        if buf is None or pos == len(buf):  # draw ahead: twice as many as last time, capped
            numel = max(1, math.prod(shape))
            size = max(1, min(2 * size, self.MAX_AHEAD_ELEMS // numel)) if size else 1
            buf = torch.stack([fn((size, *shape), generator=g, device=self.device, dtype=dtype)
                               for g in self.generators], dim=1)
            pos = 0
        self._ahead[key] = (buf, pos + 1, size)
        return buf[pos]

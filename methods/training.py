"""Training-loop pieces shared by every method: seeded minibatches, an EMA of the weights
(Polyak averaging as in DDPM and consistency models' theta^-), mixed precision where the
device supports it, and the loss log that stops on non-finite values.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Iterator

import torch
import torch.nn as nn

from harness.errors import DivergedError
from harness.method import Budget


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Endless (batch_size,) index tensors: reshuffled epochs drawn from `generator`."""
    while True:
        perm = torch.randperm(n, generator=generator)
        if n < batch_size:  # tiny data sets: sample with replacement
            yield torch.randint(0, n, (batch_size,), generator=generator)
            continue
        for start in range(0, n - batch_size + 1, batch_size):
            yield perm[start:start + batch_size]


class EMA:
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, on a frozen copy of `net`."""

    def __init__(self, net: nn.Module, decay: float):
        self.decay = decay
        self.net = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module, decay: float | None = None) -> None:
        d = self.decay if decay is None else decay
        ema_p = list(self.net.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in net.parameters()], 1 - d)
        for b_ema, b in zip(self.net.buffers(), net.buffers()):
            b_ema.copy_(b)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA when `enabled`; a no-op elsewhere."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class LossLog:
    """Running means of one or several named losses between log points; raises DivergedError
    at the first step whose loss is non-finite.

    Losses stay on the device between log points so the hot loop never synchronises; a
    non-finite mean at a log point is traced back to its step from the values kept since the
    last one (one host copy per log interval).
    """

    def __init__(self, budget: Budget):
        self.budget = budget
        self.history: dict[str, list[torch.Tensor]] = {}
        self.first_step = 1
        self.last: dict[str, float] = {}

    def add(self, step: int, losses: torch.Tensor | dict[str, torch.Tensor],
            **schedule: float) -> None:
        """Record the losses of 1-based `step` (one tensor is named "loss"); report their means
        to the budget's callback when due, with the current values of any `schedule`
        quantities (e.g. a consistency model's N(k))."""
        if not isinstance(losses, dict):
            losses = {"loss": losses}
        if not self.history:
            self.first_step = step
        for name, value in losses.items():
            self.history.setdefault(name, []).append(value.detach().float().reshape(()))
        if not self.budget.should_log(step):
            return
        means = {}
        for name, values in self.history.items():
            stacked = torch.stack(values)
            mean = float(stacked.mean())
            if not math.isfinite(mean):
                bad = (~torch.isfinite(stacked)).nonzero()
                at = self.first_step + int(bad[0]) if len(bad) else step
                raise DivergedError(at, float(stacked[at - self.first_step]))
            means[name] = mean
        self.history = {}
        self.last = means
        if self.budget.callback is not None:
            self.budget.callback(step, {**means, **schedule})

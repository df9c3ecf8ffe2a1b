"""Training-loop pieces shared by every method: seeded minibatches, an EMA of the weights
(Polyak averaging as in DDPM and consistency models' theta^-), mixed precision where the
device supports it, and the loss log that stops on non-finite values.
"""

from __future__ import annotations

import contextlib
import copy
import math
import torch
import torch.nn as nn

from genbench.harness.errors import DivergedError
from genbench.harness.method import Budget


class minibatches:
    """Endless (batch_size,) index tensors: reshuffled epochs drawn from `generator` (tiny
    data sets, smaller than a batch, are sampled with replacement). Its position is part of a
    training checkpoint (`state_dict`), so a resumed run draws the batches it would have."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator
        self.perm: torch.Tensor | None = None
        self.pos = 0

    def __iter__(self) -> "minibatches":
        return self

    def __next__(self) -> torch.Tensor:
        if self.n < self.batch_size:
            torch.randperm(self.n, generator=self.generator)  # as every epoch draws one
            return torch.randint(0, self.n, (self.batch_size,), generator=self.generator)
        if self.perm is None or self.pos + self.batch_size > self.n:
            self.perm, self.pos = torch.randperm(self.n, generator=self.generator), 0
        batch = self.perm[self.pos:self.pos + self.batch_size]
        self.pos += self.batch_size
        return batch

    def state_dict(self) -> dict:
        return {"perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.perm, self.pos = state["perm"], state["pos"]


class TrainState:
    """What a training loop must restore to resume exactly where a checkpoint left it: modules,
    optimisers, EMAs, tensors, generators and the minibatch position, plus torch's global
    generator (dropout). A method that uses it declares `resumable = True`:

        state = TrainState(budget, net=net, opt=opt, gen=g, batches=batches)
        for step in range(state.start(), budget.steps + 1):
            ...
            log.add(step, loss)
            state.after(step)

    `start()` loads `budget.resume` (if any) and returns the first step to run; `after(step)`
    hands the state to `budget.save` every `budget.checkpoint_every` steps.
    """

    def __init__(self, budget: Budget, **objects):
        self.budget, self.objects = budget, objects

    def start(self) -> int:
        resume = self.budget.resume
        if resume is None:
            return 1
        saved = resume["state"]
        for name, obj in self.objects.items():
            _restore(obj, saved[name])
        torch.set_rng_state(saved["_torch_rng"])
        if saved.get("_cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(saved["_cuda_rng"])  # dropout masks drawn on the GPU
        return resume["step"] + 1

    def after(self, step: int) -> None:
        b = self.budget
        if b.save is None or not b.checkpoint_every or step % b.checkpoint_every or step >= b.steps:
            return
        state = {name: _snapshot(obj) for name, obj in self.objects.items()}
        state["_torch_rng"] = torch.get_rng_state()
        state["_cuda_rng"] = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        b.save(step, state)


def _snapshot(obj):
    if isinstance(obj, torch.Generator):
        return obj.get_state()
    if isinstance(obj, EMA):
        return copy.deepcopy(obj.net.state_dict())
    if isinstance(obj, torch.Tensor):
        return obj.detach().clone()
    return copy.deepcopy(obj.state_dict())


def _restore(obj, state) -> None:
    if isinstance(obj, torch.Generator):
        obj.set_state(state)
    elif isinstance(obj, EMA):
        obj.net.load_state_dict(state)
    elif isinstance(obj, torch.Tensor):
        obj.copy_(state)
    else:
        obj.load_state_dict(state)


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


def to_device(t: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """A host tensor drawn for this step (minibatch indices, noise, timesteps, latents) on
    `device`, without making the host wait: on CUDA through pinned memory and an asynchronous
    copy, queued behind the work already issued (a copy from pageable memory would wait for
    that work to finish, a host synchronisation per step). The draws stay on the host
    generator, so a CUDA run trains on the numbers of a CPU run; on the CPU it is `t` itself."""
    if dtype is not None:
        t = t.to(dtype)
    if torch.device(device).type != "cuda":
        return t
    return t.pin_memory().to(device, non_blocking=True)


def check_adam(lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> None:
    """A config's Adam settings, checked when the config is built (at plan time) rather than by
    torch in the middle of a trial: lr > 0 and each beta in [0, 1)."""
    if not lr > 0:
        raise ValueError(f"the Adam learning rate lr must be > 0, got {lr}")
    if not all(0 <= b < 1 for b in betas):
        raise ValueError(f"Adam betas must lie in [0, 1), got {tuple(betas)}")


def make_adam(params, lr: float, device: torch.device, **kwargs) -> torch.optim.Adam:
    """Adam; the fused kernel on CUDA (one launch for every parameter), PyTorch's default
    (foreach) elsewhere, whose numbers the CPU runs keep."""
    return torch.optim.Adam(params, lr=lr, fused=torch.device(device).type == "cuda", **kwargs)


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
        if self.budget.callback is not None:
            self.budget.callback(step, {**means, **schedule})

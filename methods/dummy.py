"""A dummy method for harness tests (after lm-evaluation-harness `models/dummy.py`): it "trains"
by averaging the data and samples the mean image plus scaled per-sample noise, in milliseconds.
`diverge_at` makes it produce a non-finite loss at that step to exercise the divergence path;
`fail_at` makes it raise there in its first `fail_times` attempts, to exercise retries;
`sleep_s` makes each step slow, to exercise timeouts and progress lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch

from genbench.harness.config import to_dict
from genbench.harness.method import Budget, Method, Observation, TrainData, register
from genbench.harness.seeding import PerSampleNoise
from genbench.methods.training import LossLog, TrainState


@dataclass(frozen=True)
class DummyConfig:
    lr: float = 0.5  # step size of the running mean towards the data mean
    batch_size: int = 16  # examples per step
    diverge_at: int = 0  # 0 = never; else the loss becomes NaN at this step
    fail_at: int = 0  # 0 = never; else fit raises at this step ...
    fail_times: int = 1  # ... in its first fail_times attempts in this process
    sleep_s: float = 0.0  # wall seconds each step sleeps: a slow or hung fit, for timeouts


@dataclass(frozen=True)
class DummyKnobs:
    noise: float = 0.5  # standard deviation of the noise added to the mean image
    steps: int = 1  # pretend number of network evaluations per sample


_FAILURES: dict[str, int] = {}  # attempts that raised, per config and seed, in this process


@register("dummy")
class Dummy(Method):
    Config = DummyConfig
    Knobs = DummyKnobs
    tiny_config = dict(batch_size=4)
    resumable = True

    def __init__(self, config: DummyConfig | None = None):
        super().__init__(config)
        self.mean: torch.Tensor | None = None

    def fit(self, data: TrainData, budget: Budget, *, seed: int, device: torch.device) -> None:
        cfg = self.config
        g = torch.Generator().manual_seed(seed)
        self.mean = torch.zeros(data.shape)
        log = LossLog(budget)
        state = TrainState(budget, mean=self.mean, gen=g)
        for step in range(state.start(), budget.steps + 1):
            batch = data.x[torch.randint(0, len(data.x), (cfg.batch_size,), generator=g)]
            loss = (batch - self.mean).pow(2).mean()
            if step == cfg.diverge_at:
                loss = loss * float("nan")
            if step == cfg.fail_at and _FAILURES.get(self._key(seed), 0) < cfg.fail_times:
                _FAILURES[self._key(seed)] = _FAILURES.get(self._key(seed), 0) + 1
                raise RuntimeError(f"planted failure at step {step}")
            if cfg.sleep_s:
                time.sleep(cfg.sleep_s)
            self.mean += cfg.lr * (batch.mean(0) - self.mean)
            log.add(step, loss)
            state.after(step)

    def _key(self, seed: int) -> str:
        return f"{to_dict(self.config)}/{seed}"

    def sample(self, n: int, *, seed: int, labels: torch.Tensor | None = None,
               observation: Observation | None = None, **knobs: Any) -> torch.Tensor:
        k = self.knobs(**knobs)
        noise = PerSampleNoise(seed, range(n)).randn(*self.mean.shape)
        return (self.mean + k.noise * noise).clamp(-1, 1)

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        return {"nfe": self.knobs(**knobs).steps}

    def n_params(self) -> int:
        return 0 if self.mean is None else self.mean.numel()

    def extra_state(self) -> dict[str, Any]:
        return {"mean": self.mean.clone()}

    def rebuild(self, state: dict[str, Any]) -> None:
        self.mean = state["mean"].clone()

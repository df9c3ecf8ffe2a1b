"""What users write, as tests write it: a method of one's own against the public facade
(`genbench`), the smallest that honours the contract (docs/studies.md, "Your own method").
`{name}` is the name it registers under. `SLOW_STUDY`: a study whose second cell's fit
sleeps 0.5 s a step (30 s in all), for timeouts and progress lines."""

SLOW_STUDY = """from genbench import Scale, Study
STUDY = Study(name="slow", method="dummy", data="mnist5k", seeds=(0,),
              train_grid={"sleep_s": [0.0, 0.5]},
              scales={"smoke": Scale(budget_steps=60, n_samples=2, log_every=1)})
"""


MEAN_IMAGE = '''
from dataclasses import dataclass

import torch

from genbench import Method, PerSampleNoise, register


@dataclass(frozen=True)
class MeanConfig:
    batch_size: int = 8  # examples per step


@dataclass(frozen=True)
class MeanKnobs:
    noise: float = 0.1  # standard deviation around the mean image


@register("{name}")
class MeanImage(Method):
    Config, Knobs = MeanConfig, MeanKnobs

    def fit(self, data, budget, *, seed, device):
        self.mean = data.x[: budget.steps * self.config.batch_size].mean(0)
        if budget.callback:
            budget.callback(budget.steps, {{"loss": 0.0}})

    def sample(self, n, *, seed, labels=None, observation=None, **knobs):
        k = self.knobs(**knobs)
        return (self.mean + k.noise * PerSampleNoise(seed, range(n)).randn(*self.mean.shape)).clamp(-1, 1)

    def extra_state(self):
        return {{"mean": self.mean}}

    def rebuild(self, state):
        self.mean = state["mean"]
'''

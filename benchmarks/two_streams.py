"""two_streams: a study whose method samples two independent streams of 1-D points, `a` and
`b`, by resampling its training points with a generator of its own per stream, so the claim
"stream a beats stream b on w1_exact" is false when `shift` is 0 (the same law) and true when
stream b is shifted. Run many times on disjoint seeds under `--until-decided`, it measures the
procedure end to end, through the command line, the ledger and the record of looks: a false
verdict in about alpha of the A/A runs, a real difference decided in most
(benchmarks/bench_calibration.py --e2e; tests/test_calibration.py).

    genbench run benchmarks/two_streams.py --until-decided --in-process           # ~10 s
    genbench run benchmarks/two_streams.py --until-decided --set shift=0.2 --in-process
"""

from dataclasses import dataclass
from typing import Any

import torch

from genbench import Claim, Method, Resources, Scale, Study, register


@dataclass(frozen=True)
class StreamsConfig:
    shift: float = 0.0  # stream b's points minus stream a's, in the data's units (0: one law)
    batch_size: int = 1  # (no training: one "step" reads the data)


@dataclass(frozen=True)
class StreamsKnobs:
    stream: str = "a"  # which stream to sample: "a" or "b"


@register("two_streams")
class TwoStreams(Method):
    Config = StreamsConfig
    Knobs = StreamsKnobs
    output = "points"

    def fit(self, data, budget, *, seed: int, device) -> None:
        self.points = data.x.clone()  # (N, 1)

    def sample(self, n: int, *, seed: int, labels=None, observation=None, **knobs: Any):
        stream = self.knobs(**knobs).stream
        g = torch.Generator().manual_seed(seed * 2 + (stream == "b"))  # independent streams
        pick = self.points[torch.randint(0, len(self.points), (n,), generator=g)]
        return pick + (self.config.shift if stream == "b" else 0.0)

    def extra_state(self) -> dict[str, Any]:
        return {"points": self.points}

    def rebuild(self, state: dict[str, Any]) -> None:
        self.points = state["points"]

    @classmethod
    def check(cls, config, knobs, *, task: str, num_classes: int) -> None:
        if knobs.stream not in ("a", "b"):
            raise ValueError(f"invalid stream {knobs.stream!r}; valid: a, b")


STUDY = Study(
    name="two_streams",
    description="two independent streams of one law (shift=0) or of two (shift>0): the "
                "error rate and power of --until-decided, end to end",
    method="two_streams",
    data="mixture",
    sample_grid={"stream": ["a", "b"]},
    seeds=(0, 1),
    metrics=("w1_exact",),
    resources=Resources(cpu=1, gpu=0),
    claims=(Claim("w1_exact", better="stream=a", than="stream=b",
                  source="none: true only where stream b is shifted"),),
    scales={"smoke": Scale(budget_steps=1, n_samples=200, log_every=1)},
)

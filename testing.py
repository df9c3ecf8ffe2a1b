"""genbench.testing: the contract checks genbench runs on its own methods, for a plugin's tests.

A method declares the smallest config that still exercises its code paths as its class
attribute `tiny_config` (see `genbench.harness.method.Method`); `check_method` fits it for two
steps on tiny data and checks what every caller of `fit` and `sample` relies on:

- shape and range: `sample(n)` is (n, *data.shape), finite, images in [-1, 1];
- same seed, same samples; another seed, other samples;
- sample i has the same noise whatever the batch and however many are drawn (a prefix of
  `sample(5)` is `sample(2)`, and a `batch_size` knob changes nothing);
- sampling knobs never retrain: the state after sampling is the state before it;
- the state round trip: a fresh instance given `state_dict()` samples the same;
- `sampling_info()["nfe"]`, `info()` within the declared `facts`, an unknown knob refused
  naming the valid ones, `check` accepting the tiny config on its task;
- for a `resumable` method: a fit continued from its step-3 checkpoint ends where the
  uninterrupted fit ends.

A plugin package's test file::

    from genbench.testing import check_method
    from my_lab.methods import MyMethod

    def test_my_method_keeps_the_contract():
        check_method(MyMethod)

Each failed check raises AssertionError naming the check and the method.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

__all__ = ["check_method", "tiny_images", "tiny_points", "tiny_method"]


def tiny_images(n: int = 32, side: int = 8, classes: int = 4):
    """n labelled 1-channel side x side images, uniform in [-1, 1] (seeded: the same every call)."""
    from genbench.harness.method import TrainData

    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 1, side, side, generator=g) * 2 - 1
    return TrainData(name="tiny", x=x, y=torch.arange(n) % classes, num_classes=classes)


def tiny_points(n: int = 32):
    """n points of the default 1-D Gaussian mixture, with its exact law."""
    from genbench.harness.method import TrainData
    from genbench.harness.mixture import Mixture

    law = Mixture.parse("")
    return TrainData(name="mixture", x=law.sample(n, seed=0), law=law)


def tiny_data(cls: type):
    """The tiny data `cls` fits: points or images by its `output`, named after its `tiny_data`
    where it reads a registered data set by name (the real-data floor's held-out split)."""
    data = tiny_points() if cls.output == "points" else tiny_images()
    return dataclasses.replace(data, name=cls.tiny_data) if cls.tiny_data else data


def tiny_method(cls: type, config: dict[str, Any] | None = None, *, data=None, steps: int = 2,
                seed: int = 0):
    """An instance of `cls` with its `tiny_config` (and `config` over it), fitted for `steps`
    steps on `data` (its tiny data by default) on the CPU."""
    from genbench.harness.config import build_config
    from genbench.harness.method import Budget

    m = cls(build_config(cls.Config, {**cls.tiny_config, **(config or {})}))
    m.fit(data if data is not None else tiny_data(cls), Budget(steps, log_every=1), seed=seed,
          device=torch.device("cpu"))
    return m


def _tensors(state: Any, prefix: str = ""):
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, dict):
        for k, v in state.items():
            yield from _tensors(v, f"{prefix}.{k}")


def _flat(state: Any) -> dict[str, torch.Tensor]:
    """A state dict's tensors by their dotted path, cloned (a later change does not reach them)."""
    return {k: v.detach().clone() for k, v in _tensors(state)}


def _same_state(ta: dict[str, torch.Tensor], tb: dict[str, torch.Tensor]) -> bool:
    return ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)


def check_method(cls: type, config: dict[str, Any] | None = None, *, data=None):
    """Run the contract checks on `cls` (a `genbench.harness.method.Method` subclass) with its
    `tiny_config` (and `config` over it); returns the fitted instance for further checks of
    the caller's own."""
    from genbench.harness.config import build_config
    from genbench.harness.errors import GenbenchError
    from genbench.harness.method import Budget, Method

    name = getattr(cls, "name", "") or cls.__name__

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise AssertionError(f"method {name}: {what}")

    need(isinstance(cls, type) and issubclass(cls, Method), "is not a genbench Method subclass")
    data = data if data is not None else tiny_data(cls)
    m = tiny_method(cls, config, data=data)
    cfg = m.config
    try:
        cls.check(cfg, m.knobs(), task="generate", num_classes=data.num_classes)
    except GenbenchError as e:
        raise AssertionError(f"method {name}: check() refuses its own tiny config: {e}") from None

    before = _flat(m.state_dict())
    x = m.sample(5, seed=3)
    need(tuple(x.shape) == (5, *data.shape), f"sample(5) has shape {tuple(x.shape)}, "
                                             f"not {(5, *data.shape)}")
    need(bool(torch.isfinite(x).all()), "sample(5) is not finite")
    if m.output == "images":
        need(x.min() >= -1 and x.max() <= 1, f"images outside [-1, 1]: {x.min():.3g} to {x.max():.3g}")
    need(torch.equal(x, m.sample(5, seed=3)), "the same seed gives other samples")
    need(not torch.equal(x, m.sample(5, seed=4)), "another seed gives the same samples")
    need(torch.allclose(x[:2], m.sample(2, seed=3), atol=1e-5),
         "sample i depends on how many are drawn (sample(2) is not the head of sample(5))")
    if "batch_size" in {f.name for f in dataclasses.fields(m.Knobs)}:
        need(torch.allclose(x, m.sample(5, seed=3, batch_size=2), atol=1e-5),
             "the batch_size knob changes the samples")
    need(_same_state(before, _flat(m.state_dict())), "sampling changed the fitted state (knobs retrain)")

    clone = cls()
    clone.load_state_dict(m.state_dict())
    need(torch.equal(clone.sample(5, seed=3), x),
         "a fresh instance given state_dict() samples otherwise (the state round trip)")
    need(m.sampling_info().get("nfe", -1) >= 0, "sampling_info() has no nfe >= 0")
    need(set(m.info()) <= set(m.facts), f"info() returns {sorted(set(m.info()) - set(m.facts))} "
                                        "not declared in `facts`")
    try:
        m.sample(2, seed=0, not_a_knob=1)
    except GenbenchError as e:
        need("valid" in str(e), f"an unknown knob's error does not list the valid ones: {e}")
    else:
        raise AssertionError(f"method {name}: an unknown sampling knob is accepted")

    if cls.resumable:
        base = build_config(cls.Config, {**cls.tiny_config, **(config or {})})
        saved: dict[int, Any] = {}
        full = cls(base)
        full.fit(data, Budget(6, log_every=1, checkpoint_every=3, save=saved.__setitem__), seed=0,
                 device=torch.device("cpu"))
        need(sorted(saved) == [3], f"checkpoint_every=3 over 6 steps saved at {sorted(saved)}, "
                                   "not at step 3 alone")
        resumed = cls(base)
        resumed.fit(data, Budget(6, log_every=1, resume={"step": 3, "state": saved[3]}), seed=0,
                    device=torch.device("cpu"))
        need(_same_state(_flat(full.state_dict()), _flat(resumed.state_dict())),
             "a fit resumed from its step-3 checkpoint ends elsewhere than the uninterrupted fit")
        fresh = cls(base)
        fresh.fit(data, Budget(3, log_every=1), seed=0, device=torch.device("cpu"))
        need(not _same_state(_flat(full.state_dict()), _flat(fresh.state_dict())),
             "steps 4 to 6 changed nothing: the resume check would hold vacuously")
    return m

"""The uniform method interface and its registry (after lm-evaluation-harness v0.4.2
`api/model.py` and `api/registry.py`).

A method is one class in one file under `methods/`, registered by name. It declares two frozen
dataclasses: `Config` (everything that changes training) and `Knobs` (everything that only
changes sampling, so a sample grid never retrains). The contract:

- `fit(data, budget, *, seed, device)` trains; it returns nothing and keeps only its own state.
- `sample(n, *, seed, labels=None, observation=None, **knobs)` returns `(N, C, H, W)` images in
  `[-1, 1]` (or `(N, D)` points for toy methods with `output = "points"`); the same seed gives
  the same samples, whatever the batch size, because noise comes from per-sample generators
  (`genbench.harness.seeding`). `labels` condition class-conditional methods; `observation` carries a
  measurement of unknown images for inverse problems (inpainting with DPS).
- `check(config, knobs, *, task, num_classes)` refuses, before anything runs, combinations that
  cannot work (guidance on an unconditional model, DPS without an observation).
- `figures(data, *, seed, **knobs)` returns method-specific figures (e.g. the forward and
  backward diffusion of one batch) as image grids, drawn with the sampling knobs of the trial's
  first sample setting (the ones its evaluations along training use).
- `sampling_info(**knobs)` describes the sampler without running it: NFE per sample and the
  timesteps used; `info()` gives scalars about the trained model (e.g. `terminal_snr`).
- `modules` declares the networks once (state_dict key -> attribute path, `"ema.net"` for an
  EMA's copy) and `trained` which of them `n_params` counts; from these the base class gives
  `state_dict()` / `load_state_dict()` (config, `extra_state()` and every network's weights on
  the CPU, restored through the method's `rebuild(state)`), `to(device)` and `n_params()`.
  `to` is the one way a method is placed, after its fit builds the networks and after a reload
  alike: each network on the device in the layout its config asks for there, then `on_device()`
  moves the constants its steps read (a schedule's tables), so no step copies from the host.
- `num_classes` (set by `fit` or `rebuild`) is the number of classes a fitted model conditions
  on, 0 when unconditional; `images_per_step(config)` is how many training examples one
  optimiser step sees (`budget_kimg` and the `train_images_per_s` row use it; None: it has no
  batch, and the rows say so).
- `losses` names the losses `fit` logs (through `genbench.methods.training.LossLog`), the first being the
  one `final_loss` reports: `("loss",)` for one network, `("loss_D", "loss_G")` for a GAN.
- `resumable`: `fit` saves its training state through `budget.save` every
  `budget.checkpoint_every` steps and continues from `budget.resume`, so a trial that fails is
  retried from its last checkpoint with the same result as an uninterrupted run.
- `cross_metrics` / `cross_evaluate(other, real, seed=)`: metrics of a fitted model measured
  against another fit of the same cell (another seed), such as a GAN's discriminator judging a
  generator it never trained against. The driver pairs each seed with the next one after the
  trials end.
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from genbench.harness.errors import GenbenchError
from genbench.harness.registry import Registry

if TYPE_CHECKING:  # torch loads when a method runs: `genbench list` and the registries need none
    import torch


@dataclass(frozen=True)
class TrainData:
    """A training set as a method sees it: tensors already in the model's value range."""

    name: str  # data set name, e.g. "mnist5k"
    x: torch.Tensor  # (N, C, H, W) images in [-1, 1], or (N, D) points for toy data
    y: torch.Tensor | None = None  # (N,) int64 class labels, None when unlabelled
    num_classes: int = 0  # 0 when unlabelled
    law: Any = None  # the data's exact law where it has one (a mixture's weights, means, stds)

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. (1, 28, 28)."""
        return tuple(self.x.shape[1:])


@dataclass(frozen=True)
class Budget:
    """How long `fit` may train, and how it reports progress."""

    steps: int  # optimiser steps
    log_every: int = 50  # call `callback` every this many steps (and at the last step)
    # callback(step, {"loss": ...}) for curves and metrics along training; may call `sample`
    callback: Callable[[int, dict[str, float]], None] | None = None
    # resumable methods (`Method.resumable`) hand their training state to save(step, state)
    # every checkpoint_every steps, and start from `resume` ({"step", "state"}) when given
    checkpoint_every: int = 0
    save: Callable[[int, dict[str, Any]], None] | None = None
    resume: dict[str, Any] | None = None

    def __post_init__(self):
        if self.steps < 1:
            raise GenbenchError(f"budget steps must be >= 1, got {self.steps}")
        if self.log_every < 1:
            raise GenbenchError(f"log_every must be >= 1, got {self.log_every}")

    def should_log(self, step: int) -> bool:
        """True at steps 1-based `step` that are multiples of log_every, and at the last."""
        return step % self.log_every == 0 or step == self.steps


@dataclass(frozen=True)
class Observation:
    """A measurement y = A(x) + n of unknown images x, with A(x) = mask * x (inpainting)."""

    y: torch.Tensor  # (N, C, H, W) observed values, zero where hidden
    mask: torch.Tensor  # (N, 1, H, W) 1 where observed, 0 where hidden


def prepare_net(net: "torch.nn.Module", device: "torch.device", *,
                channels_last: bool = False) -> "torch.nn.Module":
    """`net` on `device`, its 4-D weights in channels-last memory when asked and in the default
    layout otherwise, whatever they were before (NHWC: the function computed is the same; which
    layout is faster depends on the device and the network, see `UNetTraining.channels_last`).
    Copies made from it afterwards inherit both. Returns `net`."""
    import torch

    net.to(device)
    net.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    return net


class Method(abc.ABC):
    """Base class of every generative method (see the module docstring for the contract)."""

    name: ClassVar[str] = ""
    Config: ClassVar[type]  # frozen dataclass of training options
    Knobs: ClassVar[type]  # frozen dataclass of sampling-time options, all with defaults
    output: ClassVar[str] = "images"  # "images" (N, C, H, W) or "points" (N, D)
    losses: ClassVar[tuple[str, ...]] = ("loss",)  # logged losses; the first is `final_loss`
    cross_metrics: ClassVar[tuple[str, ...]] = ()  # names `cross_evaluate` returns
    facts: ClassVar[tuple[str, ...]] = ()  # names `info` returns: facts without a good direction
    resumable: ClassVar[bool] = False  # fit() checkpoints and resumes (genbench.methods.training.TrainState)
    modules: ClassVar[dict[str, str]] = {}  # state_dict key -> attribute path of each network
    trained: ClassVar[tuple[str, ...]] = ()  # the keys of `modules` whose parameters n_params counts
    # the smallest config that still exercises its code paths: genbench.testing.check_method
    # fits it for a few steps on tiny data (docs/studies.md, "Testing a method")
    tiny_config: ClassVar[dict[str, Any]] = {}
    tiny_data: ClassVar[str] = ""  # a registered data set the tiny data is named after, for a
    #                                method that reads one by name (the real-data floor)
    num_classes: int = 0  # classes the fitted model conditions on (0: unconditional)
    _device: Any = None  # where its networks live (fit's, then `to`'s); the CPU until then

    @property
    def device(self) -> "torch.device":
        import torch

        return self._device if self._device is not None else torch.device("cpu")

    @device.setter
    def device(self, value: Any) -> None:
        import torch

        self._device = torch.device(value)

    def __init__(self, config: Any | None = None):
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{type(self).__name__} expects a {self.Config.__name__}")

    @abc.abstractmethod
    def fit(self, data: TrainData, budget: Budget, *, seed: int, device: torch.device) -> None:
        """Train on `data` for `budget.steps` steps."""

    @abc.abstractmethod
    def sample(self, n: int, *, seed: int, labels: torch.Tensor | None = None,
               observation: Observation | None = None, **knobs: Any) -> torch.Tensor:
        """Draw `n` samples; `labels` (n,) for class-conditional methods; `observation` for
        inverse problems."""

    # -- bookkeeping from `modules`: saving, loading, moving, counting ------------------------
    def module(self, key: str) -> torch.nn.Module | None:
        """The network `modules[key]` names, or None where it does not exist (yet)."""
        obj: Any = self
        for part in self.modules[key].split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj

    def extra_state(self) -> dict[str, Any]:
        """What `rebuild` needs besides the config to build the empty networks (data shape,
        classes, a data set's law); plain Python values or tensors."""
        return {}

    def rebuild(self, state: dict[str, Any]) -> None:
        """Build the method's networks, untrained, on `self.device` from `self.config` and
        `state` (a `state_dict()`), for `load_state_dict` to fill."""
        if self.modules:
            raise NotImplementedError(f"{type(self).__name__} declares modules but no rebuild()")

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to sample again: config, `extra_state()`, each network's weights
        (on the CPU; None for one that does not exist)."""
        from genbench.harness.config import to_dict

        out = {"config": to_dict(self.config), **self.extra_state()}
        for key in self.modules:
            net = self.module(key)
            out[key] = None if net is None else {k: v.cpu() for k, v in net.state_dict().items()}
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of `state_dict`: the config, `rebuild`, then each saved network's weights;
        the networks are left in eval mode, for sampling."""
        from genbench.harness.config import build_config

        self.config = build_config(self.Config, state["config"], what=f"{self.name} config")
        self.rebuild(state)
        for key in self.modules:
            net = self.module(key)
            if net is None:
                continue
            if state.get(key) is not None:
                net.load_state_dict(state[key])
            net.eval()

    def to(self, device: torch.device) -> "Method":
        """Put the method on `device`: every network in `modules` there, in the memory format
        its config asks for on that device (`channels_last`), then the method's own
        device-resident constants (`on_device`). The one way a method is placed: after its
        networks are built for a fit and after a checkpoint is loaded alike, so a reloaded
        model runs the kernels the fitted one ran. Returns self."""
        self.device = device
        channels_last = self.channels_last(self.device)
        for key in self.modules:
            net = self.module(key)
            if net is not None:
                prepare_net(net, self.device, channels_last=channels_last)
        self.on_device()
        return self

    def channels_last(self, device: torch.device) -> bool:
        """Whether the networks run in channels-last memory on `device`: the config's
        `channels_last(device)` where it has one, else no."""
        choose = getattr(self.config, "channels_last", None)
        return bool(choose(device)) if callable(choose) else False

    def on_device(self) -> None:
        """Move constants the steps read (a noise schedule's tables) to `self.device`, once,
        so that no training or sampling step copies them from the host. Called by `to`."""

    def n_params(self) -> int:
        """Number of parameters of the `trained` networks (0 before fit)."""
        nets = [self.module(key) for key in self.trained]
        return sum(p.numel() for net in nets if net is not None for p in net.parameters())

    @classmethod
    def images_per_step(cls, config: Any) -> int | None:
        """Training examples per optimiser step under `config`: its `batch_size` where it has
        one, else None (a method without minibatches; override to say otherwise)."""
        return getattr(config, "batch_size", None)

    @classmethod
    def check(cls, config: Any, knobs: Any, *, task: str, num_classes: int) -> None:
        """Raise GenbenchError for a config and knobs that cannot run together on `task`
        ("generate" or "inpaint") with a data set of `num_classes` classes."""
        if task != "generate":
            raise GenbenchError(f"method {cls.name!r} does not support task {task!r}")

    @classmethod
    def check_shape(cls, config: Any, shape: tuple[int, ...]) -> None:
        """Raise GenbenchError for a config whose networks cannot be built for examples of
        `shape` ((C, H, W) images at the plan's resolution, (D,) points): called when the plan
        resolves, so that a bad resolution fails before any work. The default asks the config
        where it has a `check_shape(shape)` of its own (`UNetTraining`), else accepts any."""
        if hasattr(config, "check_shape"):
            config.check_shape(shape)

    @classmethod
    def ignored_knobs(cls, knobs: Any) -> dict[str, tuple[str, str]]:
        """Knobs that the sampler chosen by `knobs` ignores: name -> (what ignores it, e.g.
        "sampler 'ddpm'", and what uses it, e.g. "sampler ddim, dps"). Such a knob cannot be a
        sample-grid axis or a `--set`: it would give identical settings."""
        return {}

    def figures(self, data: TrainData, *, seed: int,
                **knobs: Any) -> dict[str, tuple[torch.Tensor, int]]:
        """name -> (images (N, C, H, W) in [-1, 1], images per row) to save with the trial;
        `knobs` are the sampling knobs of the trial's first sample setting."""
        return {}

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        """NFE per sample and sampler facts (e.g. first and last timestep) for given knobs."""
        return {"nfe": 1}

    def info(self) -> dict[str, float]:
        """Scalars about the trained model worth a result row (e.g. `terminal_snr`)."""
        return {}

    def cross_evaluate(self, other: "Method", real: torch.Tensor, *,
                       seed: int) -> dict[str, dict[str, Any]]:
        """`cross_metrics` of this fit against `other`, a fit of the same cell with another
        seed, using `real` test images: name -> row fields (value, protocol)."""
        return {}

    def knobs(self, **knobs: Any) -> Any:
        """Validated `Knobs` instance; unknown names fail listing the valid ones."""
        from genbench.harness.config import build_config

        return build_config(self.Knobs, knobs, what=f"sampling knob of {self.name}")


METHODS: Registry[type[Method]] = Registry("method", "genbench.methods")


def register(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: make a Method available under `name`. Registering the same class again
    is harmless; another class under a taken name fails in one line naming both."""

    def wrap(cls: type[Method]) -> type[Method]:
        for attr in ("Config", "Knobs"):
            if not dataclasses.is_dataclass(getattr(cls, attr, None)):
                raise TypeError(f"method {name!r} must declare a dataclass {attr}")
        METHODS.add(name, cls)
        cls.name = name
        return cls

    return wrap


def get_method(name: str) -> type[Method]:
    """The Method class registered as `name` (entry points of `genbench.methods` included);
    unknown names list the valid ones."""
    return METHODS.get(name)


def list_methods() -> list[str]:
    """Names of every registered method, sorted."""
    return METHODS.names()

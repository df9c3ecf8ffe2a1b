"""The CUDA paths, guarded by tests that run on the CPU: no step of a training or sampling loop
copies host data to the device (on CUDA each such copy from pageable memory makes the host wait
for the GPU); a reloaded method is placed, and samples, exactly as the fitted one; calibration's
peak memory does not depend on the order cells are measured in.

A copy is counted wherever genbench's own code (harness/, methods/) makes one that would block
on CUDA: `Tensor.to`/`Tensor.cuda` naming a device (or another tensor) without
`non_blocking=True`, and `torch.tensor`/`torch.as_tensor` building on a device from host values.
On the CPU host and device are one, so the call is what is counted, not the bytes moved; torch's
own internals (`clip_grad_norm_` moving a norm to the device it is on) are not ours to count.
`to_device` (pinned memory, asynchronous) makes no blocking copy on CUDA and none on the CPU."""

import dataclasses
import functools
import sys
from pathlib import Path

import pytest
import torch

from genbench.harness.config import build_config
from genbench.harness.method import Budget, Observation, get_method


# sampling knobs at two lengths of the step loop: (method, config overrides, knobs, the knob
# that sets the loop's length, its two values)
LOOPS = [
    ("ddpm", {}, {"sampler": "ddpm"}, "steps", (2, 6)),
    ("ddpm", {}, {"sampler": "ddim", "eta": 0.5}, "steps", (2, 6)),
    ("ddpm", {"class_cond": True}, {"sampler": "ddim", "guidance": 1.0}, "steps", (2, 6)),
    ("ddpm", {}, {"sampler": "sds"}, "sds_iters", (2, 6)),
    ("ddpm", {}, {"sampler": "dps", "dps_zeta": 0.5}, "steps", (2, 6)),
    ("consistency", {}, {}, "steps", (1, 4)),
    ("vpsde", {}, {"process": "sde"}, "steps", (3, 9)),
    ("vpsde", {}, {"process": "ode", "solver": "heun"}, "steps", (3, 9)),
    ("vpsde", {"score": "exact"}, {"process": "ode", "solver": "heun"}, "steps", (3, 9)),
]


def _names_a_device(args, kwargs) -> bool:
    if kwargs.get("non_blocking") or (len(args) > 2 and args[2] is True):
        return False
    if "device" in kwargs or "other" in kwargs:
        return True
    return any(isinstance(a, (torch.device, str, torch.Tensor)) for a in args[:1])


def _ours() -> tuple[str, ...]:
    import genbench.harness
    import genbench.methods

    return tuple(str(Path(p).resolve()) for m in (genbench.harness, genbench.methods) for p in m.__path__)


class HostCopies:
    """Counts the calls of genbench's code that would be blocking host-to-device copies on
    CUDA; `where` keeps the file and line of each."""

    def __init__(self, monkeypatch, also: tuple[str, ...] = ()):
        self.n = 0
        self.where: list[str] = []
        roots = _ours() + tuple(str(Path(p).resolve()) for p in also)
        ours = functools.lru_cache(maxsize=None)(lambda f: str(Path(f).resolve()).startswith(roots))
        real_to, real_cuda = torch.Tensor.to, torch.Tensor.cuda
        real_tensor, real_as_tensor = torch.tensor, torch.as_tensor

        def count(copies: bool) -> None:
            if not copies:
                return
            caller = sys._getframe(2)
            if ours(caller.f_code.co_filename):
                self.n += 1
                self.where.append(f"{Path(caller.f_code.co_filename).name}:{caller.f_lineno}")

        def to(t, *args, **kwargs):
            count(_names_a_device(args, kwargs))
            return real_to(t, *args, **kwargs)

        def cuda(t, *args, **kwargs):
            count(not kwargs.get("non_blocking"))
            return real_cuda(t, *args, **kwargs)

        def tensor(data, *args, **kwargs):
            count(kwargs.get("device") is not None)
            return real_tensor(data, *args, **kwargs)

        def as_tensor(data, *args, **kwargs):
            count(kwargs.get("device") is not None)
            return real_as_tensor(data, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, "to", to)
        monkeypatch.setattr(torch.Tensor, "cuda", cuda)
        monkeypatch.setattr(torch, "tensor", tensor)
        monkeypatch.setattr(torch, "as_tensor", as_tensor)

    def during(self, fn) -> int:
        before = self.n
        fn()
        return self.n - before

    def last(self, k: int) -> list[str]:
        """Where the last k copies were made (for a failure's message)."""
        return sorted(set(self.where[-k:])) if k > 0 else []


@pytest.fixture
def tiny_points():
    from genbench.testing import tiny_points as points

    return points()


def _method(name, overrides=None):
    cls = get_method(name)
    return cls(build_config(cls.Config, {**cls.tiny_config, **(overrides or {})}))


def _data(name, tiny_images, tiny_points):
    return tiny_points if get_method(name).output == "points" else tiny_images


def test_the_guard_counts_what_it_should():
    """The counter itself: a blocking copy counts, a dtype cast or an asynchronous one not."""
    mp = pytest.MonkeyPatch()
    try:
        copies = HostCopies(mp, also=(__file__,))  # (calls from here count too)
        x = torch.ones(3)
        assert copies.during(lambda: x.to("cpu")) == 1
        assert copies.during(lambda: x.to(torch.device("cpu"), torch.float64)) == 1
        assert copies.during(lambda: x.to(x)) == 1
        assert copies.during(lambda: torch.tensor([1.0], device="cpu")) == 1
        assert copies.during(lambda: x.to(torch.float64)) == 0
        assert copies.during(lambda: x.to("cpu", non_blocking=True)) == 0
        assert copies.during(lambda: torch.tensor([1.0])) == 0
        assert HostCopies(mp).during(lambda: x.to("cpu")) == 0  # not genbench's code
    finally:
        mp.undo()


@pytest.mark.parametrize("name", ["ddpm", "consistency", "gan", "dcgan", "vpsde", "dummy"])
def test_no_training_step_copies_from_the_host(name, tiny_images, tiny_points, monkeypatch):
    """Six steps make exactly the copies two steps make: none per step (the data set goes to
    the device once, the schedule's tables live there; minibatch indices and noise go through
    `to_device`)."""
    overrides = {"class_cond": True} if name == "ddpm" else {}
    data = _data(name, tiny_images, tiny_points)
    copies = HostCopies(monkeypatch)
    counts = [copies.during(lambda s=steps: _method(name, overrides).fit(
        data, Budget(s, log_every=s), seed=0, device=torch.device("cpu"))) for steps in (2, 6)]
    extra = counts[1] - counts[0]
    assert extra == 0, f"{name}: {extra} more copies in 4 more steps, at {copies.last(extra)}"


@pytest.mark.parametrize("name,overrides,knobs,axis,lengths", LOOPS,
                         ids=[f"{m}-{'-'.join(map(str, k.values())) or 'default'}-{o or ''}"
                              for m, o, k, _, _ in LOOPS])
def test_no_sampling_step_copies_from_the_host(name, overrides, knobs, axis, lengths,
                                               tiny_images, tiny_points, monkeypatch):
    """A longer chain (more steps, more distillation iterations) makes no more copies."""
    m = _method(name, overrides)
    m.fit(_data(name, tiny_images, tiny_points), Budget(2, log_every=2), seed=0,
          device=torch.device("cpu"))
    labels = torch.arange(4) % m.num_classes if m.num_classes else None
    obs = None
    if knobs.get("sampler") == "dps":  # an inpainting observation: the left half seen
        mask = torch.ones(4, *tiny_images.shape)
        mask[..., tiny_images.shape[-1] // 2:] = 0
        obs = Observation(tiny_images.x[:4] * mask, mask)
    copies = HostCopies(monkeypatch)
    counts = [copies.during(lambda n=n: m.sample(4, seed=0, labels=labels, observation=obs,
                                                 **{**knobs, axis: n})) for n in lengths]
    extra = counts[1] - counts[0]
    assert extra == 0, f"{extra} more copies in a longer loop, at {copies.last(extra)}"


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=CUDA)])
@pytest.mark.parametrize("name", ["ddpm", "consistency", "gan", "vpsde"])
def test_a_reloaded_method_samples_bit_identically_through_its_checkpoint(name, device, tiny_images,
                                                                          tiny_points, tmp_path):
    """The fitted method against the one `load_fit` gives back from the checkpoint written
    after the fit (what a trial resumed after a restart samples from), in channels-last
    memory where the method has a memory format."""
    from genbench.harness.run.artefacts import save_checkpoint
    from genbench.harness.store.rundir import RunDir

    cls = get_method(name)
    fields = {f.name for f in dataclasses.fields(cls.Config)}
    fmt = {"memory_format": "channels_last"} if "memory_format" in fields else {}
    m = _method(name, fmt)
    m.fit(_data(name, tiny_images, tiny_points), Budget(2, log_every=2), seed=0,
          device=torch.device(device))
    save_checkpoint(tmp_path, "t-s0", m)
    state = torch.load(RunDir(tmp_path).checkpoint("t-s0"), map_location="cpu", weights_only=True)
    again = cls(build_config(cls.Config, {**cls.tiny_config, **fmt}))
    again.load_state_dict(state)  # rebuilt on the CPU, as `load_fit` does
    again.to(torch.device(device))
    assert torch.equal(again.sample(6, seed=5), m.sample(6, seed=5))
    for key in cls.modules:
        a, b = m.module(key), again.module(key)
        if a is None:
            continue
        for (pa, wa), (_, wb) in zip(a.named_parameters(), b.named_parameters()):
            if wa.dim() == 4:
                assert wa.stride() == wb.stride(), f"{name}.{key}.{pa}: another memory format"


def test_a_reload_onto_another_device_kind_gets_that_kinds_layout(tiny_images, monkeypatch):
    """The defect: a checkpoint was rebuilt on the CPU and moved to the GPU without its
    layout, so a CUDA model fitted in channels-last sampled in NCHW after a restart. `to` now
    applies the layout of the device it moves to. Shown with the layout table changed, so that
    the CPU plays the device whose "auto" layout is channels-last."""
    from genbench.methods.nets import unet

    m = _method("ddpm")
    m.fit(tiny_images, Budget(1, log_every=1), seed=0, device=torch.device("cpu"))
    state = m.state_dict()
    again = _method("ddpm")
    again.load_state_dict(state)  # rebuilt where "auto" means NCHW
    monkeypatch.setitem(unet.AUTO_CHANNELS_LAST, "cpu", True)
    again.to(torch.device("cpu"))  # moved where "auto" means channels-last
    convs = [w for w in again.net.parameters() if w.dim() == 4]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert all(w.is_contiguous(memory_format=torch.channels_last)
               for w in again.ema.net.parameters() if w.dim() == 4)
    monkeypatch.setitem(unet.AUTO_CHANNELS_LAST, "cpu", False)
    again.to(torch.device("cpu"))  # and back to a kind whose "auto" layout is NCHW
    assert all(w.is_contiguous() for w in again.net.parameters() if w.dim() == 4)


def test_auto_layout_is_nchw_on_cuda_until_a_gpu_measures_channels_last_faster():
    """GroupNorm returns the default layout for non-CPU inputs, so channels-last would transpose
    in every ResBlock on CUDA; the default waits for benchmarks/bench_unet.py on a GPU."""
    from genbench.methods.nets.unet import UNetTraining

    assert not UNetTraining().channels_last(torch.device("cuda"))
    assert not UNetTraining().channels_last(torch.device("cpu"))
    assert UNetTraining(memory_format="channels_last").channels_last(torch.device("cuda"))


class CachingAllocator:
    """CUDA's caching allocator as `genbench.harness.run.rows` sees it: freed blocks stay reserved
    until `empty_cache`; peaks since `reset_peak_memory_stats`. Sizes in MiB."""

    def __init__(self):
        self.allocated = self.reserved = self.peak_allocated = self.peak_reserved = 0

    def alloc(self, mb: int) -> None:
        self.allocated += mb
        self.reserved = max(self.reserved, self.allocated)
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_reserved = max(self.peak_reserved, self.reserved)

    def free(self, mb: int) -> None:
        self.allocated -= mb  # the block stays reserved (cached)

    def install(self, monkeypatch) -> None:
        mb = 2**20
        cuda = torch.cuda
        monkeypatch.setattr(cuda, "synchronize", lambda device=None: None)
        monkeypatch.setattr(cuda, "empty_cache", lambda: setattr(self, "reserved", self.allocated))

        def reset(device=None):
            self.peak_allocated, self.peak_reserved = self.allocated, self.reserved

        monkeypatch.setattr(cuda, "reset_peak_memory_stats", reset)
        monkeypatch.setattr(cuda, "memory_allocated", lambda device=None: self.allocated * mb)
        monkeypatch.setattr(cuda, "max_memory_allocated", lambda device=None: self.peak_allocated * mb)
        monkeypatch.setattr(cuda, "max_memory_reserved", lambda device=None: self.peak_reserved * mb)


def test_calibration_peaks_do_not_depend_on_the_order_cells_are_measured_in(monkeypatch):
    """Calibration measures cells one after another in one process; each resets the peak and
    reads what the allocator reserved (what other trials on the GPU cannot have). Without
    emptying the cache first, a small cell measured after a large one reported the large
    one's reserve. The metric networks, loaded before, count in every cell alike."""
    from genbench.harness.run.rows import peak_mem_mb, reset_peak_mem

    gpu = torch.device("cuda")
    cells = {"large": 1000, "small": 100}
    peaks = {}
    for order in (("large", "small"), ("small", "large")):
        alloc = CachingAllocator()
        alloc.install(monkeypatch)
        alloc.alloc(50)  # the metric networks, loaded before any cell
        for cell in order:
            reset_peak_mem(gpu)
            alloc.alloc(cells[cell])  # the cell's model, activations and samples
            alloc.free(cells[cell])
            peaks[order, cell] = peak_mem_mb(gpu, reserved=True)
    for cell, size in cells.items():
        assert {peaks[o, cell] for o in (("large", "small"), ("small", "large"))} == {size + 50}


def test_compare_refuses_features_computed_on_another_device_kind():
    """Two runs alike but for where their features were computed (same device column, as on a
    node whose trials ran on a GPU while the rows say the same host): not comparable."""
    import pandas as pd

    from genbench.harness.verdicts.compare import check_comparable

    def rows(extractor):
        return pd.DataFrame({"cell_key": ["c"], "metric": ["fid_domain"], "protocol": ["p"],
                             "feature_extractor": [extractor], "ref_split": ["r"],
                             "n_samples": [64], "dataset": ["mnist5k"], "device": ["cpu:x"],
                             "versions_json": ['{"torch": "2"}']})

    base = "domain:mnist5k-r28:55e9c4d381cc"
    assert check_comparable(rows(base + "@cpu-fp32"), rows(base + "@cpu-fp32")) == []
    (problem,) = check_comparable(rows(base + "@cpu-fp32"), rows(base + "@cuda-fp32"))
    assert problem.startswith("fid_domain feature_extractor differs") and "@cuda-fp32" in problem


@pytest.mark.e2e
def test_a_trial_loads_its_metric_networks_before_any_setting_is_measured(tmp_path, monkeypatch,
                                                                          domain_extractor):
    """The first setting's sample_peak_mem_mb used to include the extractor it loaded lazily,
    and the later ones not: the trial now loads the metric networks before the first
    sampling phase begins."""
    from genbench.harness.run import rows as rows_mod
    from genbench.harness.cli import main
    from genbench.harness.metrics.quality import Evaluator

    events = []
    real_phase, real_extractor = rows_mod.MemPhase.__init__, Evaluator.extractor

    def phase(self, device, around, env):
        events.append(around)
        real_phase(self, device, around, env)

    def extractor(self, space):
        events.append(f"extractor {space}")
        return real_extractor(self, space)

    monkeypatch.setattr(rows_mod.MemPhase, "__init__", phase)
    monkeypatch.setattr(Evaluator, "extractor", extractor)
    study = tmp_path / "two.py"
    study.write_text("from genbench import Arm, Scale, Study\n"
                     "STUDY = Study(name='two', data='mnist5k', metrics=('fid_domain',), seeds=(0,),\n"
                     "              arms=(Arm('mean', 'dummy', sample_grid={'noise': [0.1, 0.5]}),),\n"
                     "              scales={'smoke': Scale(budget_steps=2, n_samples=4, log_every=1)})\n")
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--in-process",
                 "--no-report"]) == 0
    starts = [i for i, e in enumerate(events) if e == "fit()"]  # (the real-data floor's trial
    trials = [events[a:b] for a, b in zip(starts, starts[1:] + [len(events)])]  # is the other)
    assert sorted(t.count("sample()") for t in trials) == [1, 2]
    for trial in trials:
        assert trial.index("extractor domain") < trial.index("sample()")

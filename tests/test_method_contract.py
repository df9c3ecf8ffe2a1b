"""Every registered method against the contract of `genbench.harness.method.Method` on tiny inputs:
shape, range, same seed same samples, batch-size invariance, state round trip, knob checks."""

import dataclasses

import pytest
import torch

from genbench.harness.config import build_config
from genbench.harness.errors import DivergedError, GenbenchError
from genbench.harness.method import Budget, Method, TrainData, get_method, list_methods, register

# the smallest config of each method that still exercises its code paths
TINY = {
    "ddpm": dict(T=10, n_feat=8, ch_mult=(1, 2), attention=True, batch_size=8, ema_decay=0.9),
    "dummy": dict(batch_size=4),
    "consistency": dict(n_feat=8, ch_mult=(1, 2), attention=True, batch_size=8, s1=10,
                        ema_decay=0.9),
    "gan": dict(z_dim=8, n_feat=4, batch_size=8, r1_gamma=1.0, diffaug="color,translation,cutout"),
    "dcgan": dict(noise_dim=8, d_blocks=1, g_blocks=1, batch_size=8),
    "vpsde": dict(score="learned", hidden=8, layers=1, batch_size=8),
    "real": {},  # the real-data floor (genbench.harness.metrics.realdata): no training, held-out data
    "real_points": {},
}
# the real-data floor's pseudo-methods read the held-out split of a registered data set
REAL_DATA = {"real": "mnist5k", "real_points": "mixture"}


def fitted(name, data):
    cls = get_method(name)
    m = cls(build_config(cls.Config, TINY.get(name, {})))
    m.fit(data, Budget(2, log_every=1), seed=0, device=torch.device("cpu"))
    return m


@pytest.mark.parametrize("name", list_methods())
def test_every_method_has_a_tiny_config(name):
    assert name in TINY, f"add a tiny config for {name} to the contract test"


@pytest.fixture
def tiny_points():
    from genbench.harness.mixture import Mixture

    return TrainData(name="mixture", x=Mixture.parse("").sample(32, seed=0), law=Mixture.parse(""))


@pytest.mark.parametrize("name", list_methods())
def test_contract(name, tiny_images, tiny_points):
    data = tiny_points if get_method(name).output == "points" else tiny_images
    if name in REAL_DATA:
        data = dataclasses.replace(data, name=REAL_DATA[name])
    m = fitted(name, data)
    x = m.sample(5, seed=3)
    assert x.shape == (5, *data.shape) and torch.isfinite(x).all()
    if m.output == "images":
        assert x.min() >= -1 and x.max() <= 1
    assert torch.equal(x, m.sample(5, seed=3))
    assert not torch.equal(x, m.sample(5, seed=4))
    # sample i has the same noise whatever the batch and however many are drawn
    assert torch.allclose(x[:2], m.sample(2, seed=3), atol=1e-5)
    if "batch_size" in {f.name for f in dataclasses.fields(m.Knobs)}:
        assert torch.allclose(x, m.sample(5, seed=3, batch_size=2), atol=1e-5)
    # state round trip into a fresh instance
    clone = type(m)()
    clone.load_state_dict(m.state_dict())
    assert torch.equal(clone.sample(5, seed=3), x)
    assert m.sampling_info()["nfe"] >= (0 if name in REAL_DATA else 1)  # (held-out data: none)
    assert set(m.info()) <= set(m.facts)  # declared, so a claim on one is refused by name
    with pytest.raises(GenbenchError, match="valid"):
        m.sample(2, seed=0, not_a_knob=1)


def test_ddpm_ema_knob_switches_weights(tiny_images):
    m = fitted("ddpm", tiny_images)
    assert not torch.allclose(m.sample(2, seed=0, ema=True), m.sample(2, seed=0, ema=False))


def test_fit_is_deterministic_given_seed(tiny_images):
    a, b = fitted("ddpm", tiny_images), fitted("ddpm", tiny_images)
    for pa, pb in zip(a.net.parameters(), b.net.parameters()):
        assert torch.equal(pa, pb)


def test_divergence_raises(tiny_images):
    cls = get_method("dummy")
    m = cls(build_config(cls.Config, {"diverge_at": 2}))
    with pytest.raises(DivergedError, match="step 2"):
        m.fit(tiny_images, Budget(5, log_every=1), seed=0, device=torch.device("cpu"))


def test_a_side_the_unet_cannot_halve_fails_in_one_line_before_training(tiny_images):
    """28 -> 14 -> 7 works with three levels; 30 would meet 8 against 7 in a skip concat."""
    from genbench.methods.nets.unet import UNetTraining

    cfg = UNetTraining(n_feat=8, ch_mult=(1, 2, 2))
    assert cfg.unet((1, 28, 28))(torch.zeros(2, 1, 28, 28), torch.zeros(2, dtype=torch.long)).shape \
        == (2, 1, 28, 28)
    with pytest.raises(GenbenchError, match=r"ch_mult=\(1, 2, 2\) halves the image 2 times: its "
                                            r"side \(30x30\) must be divisible by 4"):
        cfg.unet((1, 30, 30))
    for name in ("ddpm", "consistency"):  # the same check when the plan resolves
        with pytest.raises(GenbenchError, match="must be divisible by 4"):
            get_method(name).check_shape(cfg, (1, 30, 30))
        get_method(name).check_shape(cfg, (1, 28, 28))
    for name in ("ddpm", "consistency"):  # the 8 px tiny images, halved four times
        cls = get_method(name)
        m = cls(build_config(cls.Config, dict(n_feat=8, ch_mult=(1, 1, 1, 1, 1))))
        with pytest.raises(GenbenchError, match=r"\(8x8\) must be divisible by 16"):
            m.fit(tiny_images, Budget(1), seed=0, device=torch.device("cpu"))


def test_registry_refuses_duplicates_and_lists_names():
    with pytest.raises(GenbenchError, match="method 'ddpm' is registered twice: by "
                                            "genbench.methods.ddpm.DDPM and by "
                                            "genbench.methods.dummy.Dummy"):
        register("ddpm")(get_method("dummy"))
    assert get_method("ddpm").__name__ == "DDPM"  # the refused one changed nothing
    register("ddpm")(get_method("ddpm"))  # the same class again is harmless
    with pytest.raises(GenbenchError, match="unknown method 'nope'; valid: .*ddpm.*Study\\(imports=.*"
                                            "'genbench.methods' entry point"):
        get_method("nope")
    with pytest.raises(TypeError):
        @register("no_config")
        class Bad(Method):  # noqa: F811
            pass


@pytest.mark.parametrize("name", [n for n in list_methods() if get_method(n).resumable])
def test_resuming_from_a_training_checkpoint_is_exact(name, tiny_images, tiny_points):
    """A fit continued from its step-3 checkpoint ends where the uninterrupted fit ends."""
    cls = get_method(name)
    data = tiny_points if cls.output == "points" else tiny_images
    cfg = build_config(cls.Config, TINY.get(name, {}))
    saved = {}
    full = cls(cfg)
    full.fit(data, Budget(6, log_every=1, checkpoint_every=3, save=saved.__setitem__), seed=0,
             device=torch.device("cpu"))
    assert sorted(saved) == [3]  # not at the last step: the fit's own checkpoint covers it
    resumed = cls(cfg)
    resumed.fit(data, Budget(6, log_every=1, resume={"step": 3, "state": saved[3]}), seed=0,
                device=torch.device("cpu"))
    fresh = cls(cfg)
    fresh.fit(data, Budget(3, log_every=1), seed=0, device=torch.device("cpu"))

    def tensors(state, prefix=""):
        if isinstance(state, torch.Tensor):
            yield prefix, state
        elif isinstance(state, dict):
            for k, v in state.items():
                yield from tensors(v, f"{prefix}.{k}")

    a, b, c = (dict(tensors(m.state_dict())) for m in (full, resumed, fresh))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    assert any(not torch.equal(a[k], c[k]) for k in a)  # the last 3 steps did change something


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["ddpm", "consistency", "gan", "vpsde"])
def test_training_steps_never_make_the_host_wait_for_the_gpu(name, tiny_images, tiny_points,
                                                            monkeypatch):
    """Between log points a step only queues work: from the end of step 1 (set-up and the
    data's upload are done) to the log point, any synchronising call (a copy from pageable
    memory, `.item()`, a data-dependent shape) raises under torch's sync debug mode."""
    from genbench.methods.training import LossLog

    real_add = LossLog.add

    def add(self, step, losses, **schedule):
        if self.budget.should_log(step):  # the log point itself reads the losses back
            torch.cuda.set_sync_debug_mode(0)
        real_add(self, step, losses, **schedule)
        if step == 1:
            torch.cuda.set_sync_debug_mode("error")

    monkeypatch.setattr(LossLog, "add", add)
    cls = get_method(name)
    cond = {"class_cond": True} if name == "ddpm" else {}
    m = cls(build_config(cls.Config, {**TINY[name], **cond}))
    data = tiny_points if cls.output == "points" else tiny_images
    try:
        m.fit(data, Budget(6, log_every=6), seed=0, device=torch.device("cuda"))
    finally:
        torch.cuda.set_sync_debug_mode(0)

"""Every registered method against the contract of `genbench.harness.method.Method` on tiny inputs:
shape, range, same seed same samples, batch-size invariance, state round trip, knob checks."""

import pytest
import torch

from genbench.harness.config import build_config
from genbench.harness.errors import DivergedError, GenbenchError
from genbench.harness.method import Budget, Method, get_method, list_methods, register
from genbench.testing import check_method, tiny_method

def fitted(name, data):
    return tiny_method(get_method(name), data=data)


@pytest.mark.parametrize("name", list_methods())
def test_every_method_keeps_the_contract(name):
    """genbench.testing.check_method, as a plugin's tests call it, on every registered method."""
    check_method(get_method(name))


def test_the_kit_catches_a_method_that_breaks_the_contract():
    """A check that cannot fail proves nothing: methods broken one way each are caught."""
    from genbench.methods.dummy import Dummy

    class Unseeded(Dummy):  # ignores its seed
        name = "unseeded"

        def sample(self, n, *, seed, **kw):
            return super().sample(n, seed=0, **kw)

    class Batchwise(Dummy):  # sample i depends on how many are drawn
        name = "batchwise"

        def sample(self, n, *, seed, **kw):
            return super().sample(n, seed=seed + n, **kw)

    class Retrains(Dummy):  # sampling moves the state (here a counter beside the weights)
        name = "retrains"
        calls = 0

        def sample(self, n, *, seed, **kw):
            self.calls += 1
            return super().sample(n, seed=seed, **kw)

        def extra_state(self):
            return {**super().extra_state(), "calls": torch.tensor(self.calls)}

        def rebuild(self, state):
            super().rebuild(state)
            self.calls = int(state["calls"])

    for broken, what in ((Unseeded, "another seed gives the same samples"),
                         (Batchwise, "depends on how many are drawn"),
                         (Retrains, "sampling changed the fitted state")):
        with pytest.raises(AssertionError, match=what):
            check_method(broken)
    with pytest.raises(AssertionError, match="not a genbench Method"):
        check_method(dict)


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
    m = cls(build_config(cls.Config, {**cls.tiny_config, **cond}))
    data = tiny_points if cls.output == "points" else tiny_images
    try:
        m.fit(data, Budget(6, log_every=6), seed=0, device=torch.device("cuda"))
    finally:
        torch.cuda.set_sync_debug_mode(0)

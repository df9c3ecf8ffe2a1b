"""GANs against their papers (docs/methods.md M8, M9): the softplus losses equal their BCE forms,
R1 equals gamma/2 ||grad_x D(x)||^2 on discriminators with known gradients (lazy R1 scaled by
k in a discriminator step of its own, Adam by k/(k+1)), DiffAugment's operations keep shapes,
pass gradients, stay in bounds and are the identity for the empty policy, the disabled features
leave a run bit for bit unchanged, and the collapse and discriminator-evaluation numbers measure what they say."""

import numpy as np
import pytest
import torch
import torch.nn as nn

from genbench.harness.config import build_config
from genbench.harness.errors import DivergedError, GenbenchError
from genbench.harness.method import Budget, TrainData
from genbench.harness.metrics.quality import DUP_QUANTILE, duplicate_rate
from genbench.methods import adversarial, diffaugment
from genbench.methods.adversarial import (d_loss_bce, d_loss_softplus, discriminator_scores,
                                          g_loss_bce, g_loss_softplus, lazy_adam_scale, r1_penalty,
                                          start_side)
from genbench.methods.dcgan import DCGAN, DCGANConfig
from genbench.methods.diffaugment import diff_augment, rand_brightness, rand_cutout, rand_translation
from genbench.methods.gan import GAN, GANConfig
from genbench.methods.training import LossLog

CPU = torch.device("cpu")
TINY = dict(z_dim=8, n_feat=4, batch_size=8)


def fitted(cls, data, steps=3, **cfg):
    m = cls(build_config(cls.Config, cfg))
    m.fit(data, Budget(steps, log_every=1), seed=0, device=CPU)
    return m


def test_softplus_losses_equal_their_bce_forms():
    g = torch.Generator().manual_seed(0)
    real, fake = torch.randn(64, generator=g) * 3, torch.randn(64, generator=g) * 3
    sig = torch.sigmoid
    # -log sigma(D(x)) - log(1 - sigma(D(G(z)))), and -log sigma(D(G(z)))
    d_ref = -(torch.log(sig(real)).mean() + torch.log(1 - sig(fake)).mean())
    g_ref = -torch.log(sig(fake)).mean()
    for d in (d_loss_softplus(real, fake), d_loss_bce(real, fake)):
        assert torch.allclose(d, d_ref, atol=1e-5)
    for gl in (g_loss_softplus(fake), g_loss_bce(fake)):
        assert torch.allclose(gl, g_ref, atol=1e-5)
    assert torch.allclose(d_loss_softplus(torch.zeros(4), torch.zeros(4)),
                          torch.tensor(2 * np.log(2), dtype=torch.float32))


class Linear(nn.Module):
    """D(x) = <w, x>: grad_x D = w for every x."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


def test_r1_is_the_squared_gradient_norm_of_known_discriminators():
    g = torch.Generator().manual_seed(1)
    w = torch.randn(1, 3, 4, 4, generator=g)
    x = torch.randn(5, 3, 4, 4, generator=g).requires_grad_(True)
    D = Linear(w)
    assert torch.allclose(r1_penalty(D(x), x), w.pow(2).sum(), rtol=1e-5)
    # D(x) = 1/2 ||x||^2 has gradient x: E ||x||^2
    quad = 0.5 * x.pow(2).flatten(1).sum(1)
    assert torch.allclose(r1_penalty(quad, x), x.detach().pow(2).flatten(1).sum(1).mean())
    # the penalty trains D: it is differentiable in D's weights (d/dw ||w||^2 = 2w)
    r1_penalty(D(x), x).backward()
    assert torch.allclose(D.w.grad, 2 * w, rtol=1e-5)


def test_r1_weight_and_lazy_regularisation():
    m = GAN(build_config(GANConfig, dict(TINY, r1_gamma=10.0, r1_every=4)))
    assert [m.r1_due(k) for k in (1, 2, 3, 4, 8)] == [0, 0, 0, 10 / 2 * 4, 10 / 2 * 4]
    assert GAN(build_config(GANConfig, dict(TINY, r1_gamma=10.0))).r1_due(3) == 5.0
    assert GAN(build_config(GANConfig, TINY)).r1_due(1) == 0.0
    assert lazy_adam_scale(4) == pytest.approx(0.8) and lazy_adam_scale(1) == 1.0
    m._build((1, 8, 8), CPU)
    _, opt_d = m.optimizers()
    assert opt_d.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.8)
    assert opt_d.param_groups[0]["betas"] == pytest.approx((0.5 ** 0.8, 0.99 ** 0.8))


@pytest.mark.parametrize("every, d_steps", [(1, 8), (4, 10)])
def test_lazy_r1_takes_a_discriminator_step_of_its_own(monkeypatch, every, d_steps):
    """StyleGAN2 (Appendix B; ADA's `Dreg` phase): every k minibatches take k main steps and one
    step of the penalty alone, k + 1 steps of D's Adam, which is what its k/(k+1) scaling
    assumes (8 minibatches at k = 4: 10 steps). At k = 1 R1 joins the main step (8 steps)."""
    captured, real = {}, GAN.optimizers

    def spy(self):
        captured["opts"] = real(self)
        return captured["opts"]

    monkeypatch.setattr(GAN, "optimizers", spy)
    data = TrainData("tiny", torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    m = fitted(GAN, data, steps=8, **TINY, r1_gamma=1.0, r1_every=every)
    opt_g, opt_d = captured["opts"]
    steps = {int(opt_d.state[p]["step"]) for p in m.D.parameters()}
    assert max(steps) == d_steps and min(steps) == 8  # (R1 has no gradient for the last bias)
    assert {int(opt_g.state[p]["step"]) for p in m.G.parameters()} == {8}


@pytest.mark.parametrize("policy", ["", "color", "translation", "cutout",
                                    "color,translation,cutout"])
def test_diffaugment_keeps_shapes_and_passes_gradients(policy):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 3, 12, 12, generator=g).mul(2).sub(1).requires_grad_(True)
    y = diff_augment(x, policy, g)
    assert y.shape == x.shape and torch.isfinite(y).all()
    (y * torch.arange(y.numel()).view_as(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_empty_policy_is_the_identity_and_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    x = torch.randn(2, 1, 8, 8)
    assert diff_augment(x, "", g) is x
    assert torch.equal(g.get_state(), state)
    with pytest.raises(GenbenchError, match="unknown DiffAugment operation 'flip' .*; valid: color"):
        diff_augment(x, "color,flip", g)


def test_brightness_shift_is_uniform_per_image():
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(200, 1, 4, 4)
    shift = rand_brightness(x, g)
    per_image = shift.flatten(1)
    assert torch.equal(per_image, per_image[:, :1].expand_as(per_image))
    assert per_image.min() >= -0.5 and per_image.max() < 0.5 and per_image.std() > 0.2


@pytest.mark.parametrize("side", [28, 32])
def test_translation_is_a_bounded_zero_filled_shift(side):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(40, 1, side, side, generator=g) + 1  # strictly positive: zeros mark the fill
    y = rand_translation(x, g)
    limit = int(side * 0.125 + 0.5)
    for xi, yi in zip(x, y):
        found = False
        for dy in range(-limit, limit + 1):
            for dx in range(-limit, limit + 1):
                ref = torch.zeros_like(xi)
                src = xi[:, max(0, dy):side + min(0, dy), max(0, dx):side + min(0, dx)]
                ref[:, max(0, -dy):side - max(0, dy), max(0, -dx):side - max(0, dx)] = src
                found |= torch.equal(ref, yi)
        assert found, "output is not the input shifted by at most 1/8 of the side"


@pytest.mark.parametrize("side", [28, 32])
def test_cutout_box_stays_in_bounds_and_covers_a_quarter_to_half(side):
    g = torch.Generator().manual_seed(0)
    y = rand_cutout(torch.ones(300, 1, side, side), g)
    heights, widths = set(), set()
    for yi in y[:, 0]:
        zero = yi == 0
        rows, cols = zero.any(1).nonzero().flatten(), zero.any(0).nonzero().flatten()
        h, w = len(rows), len(cols)
        assert int(zero.sum()) == h * w  # one axis-aligned box ...
        assert rows.max() - rows.min() + 1 == h and cols.max() - cols.min() + 1 == w  # contiguous
        assert side // 4 <= h <= side // 2 and side // 4 <= w <= side // 2
        heights.add(h)
        widths.add(w)
    assert min(heights) == side // 4 and max(heights) == side // 2  # both extremes occur


def test_disabled_r1_and_augmentation_reproduce_the_baseline_bit_for_bit(monkeypatch):
    g = torch.Generator().manual_seed(0)
    data = TrainData("tiny", torch.rand(16, 1, 8, 8, generator=g) * 2 - 1)
    base = fitted(GAN, data, **TINY)
    off = fitted(GAN, data, **TINY, r1_gamma=0.0, r1_every=4, diffaug="")

    def never(*a, **k):
        raise AssertionError("a disabled feature ran")

    monkeypatch.setattr(adversarial, "r1_penalty", never)
    monkeypatch.setitem(diffaugment.AUGMENTS, "color", (never,))
    unused = fitted(GAN, data, **TINY)
    monkeypatch.undo()
    on = fitted(GAN, data, **TINY, r1_gamma=1.0, diffaug="color")
    for a, b, c, d in zip(base.G.parameters(), off.G.parameters(), unused.G.parameters(),
                          on.G.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert not all(torch.equal(a, d) for a, d in zip(base.G.parameters(), on.G.parameters()))


def test_gan_logs_both_losses_and_the_discriminator_outputs():
    data = TrainData("tiny", torch.rand(16, 1, 8, 8) * 2 - 1)
    logs = []
    m = GAN(build_config(GANConfig, dict(TINY, r1_gamma=1.0)))
    m.fit(data, Budget(4, log_every=2, callback=lambda s, v: logs.append((s, v))), seed=0,
          device=CPU)
    assert [s for s, _ in logs] == [2, 4]
    assert set(logs[0][1]) == {"loss_D", "loss_G", "r1", "d_real", "d_fake"}
    assert GAN.losses == ("loss_D", "loss_G")


def test_loss_log_names_the_step_that_diverged():
    log = LossLog(Budget(10, log_every=5))
    for step in (1, 2):
        log.add(step, {"loss_D": torch.tensor(1.0), "loss_G": torch.tensor(1.0)})
    log.add(3, {"loss_D": torch.tensor(1.0), "loss_G": torch.tensor(float("nan"))})
    log.add(4, {"loss_D": torch.tensor(1.0), "loss_G": torch.tensor(1.0)})
    with pytest.raises(DivergedError, match="step 3"):
        log.add(5, {"loss_D": torch.tensor(1.0), "loss_G": torch.tensor(1.0)})


def test_generator_and_discriminator_shapes():
    assert start_side(28) == (7, 2) and start_side(32) == (8, 2) and start_side(64) == (8, 3)
    for side, c in ((28, 1), (32, 3), (64, 3)):
        m = GAN(build_config(GANConfig, TINY))
        m._build((c, side, side), CPU)
        x = m.G(torch.randn(3, 8))
        assert x.shape == (3, c, side, side) and m.D(x).shape == (3,)
    d = DCGAN(build_config(DCGANConfig, {}))
    d._build((3, 32, 32), CPU)  # SVHN
    z = d.prior(torch.Generator().manual_seed(0), 500)
    assert z.shape == (500, 96) and z.min() >= -1 and z.max() <= 1 and z.min() < -0.99
    assert d.G(z[:4]).shape == (4, 3, 32, 32) and d.D(d.G(z[:4])).shape == (4,)
    leaky = [mod.negative_slope for mod in d.D.modules() if isinstance(mod, nn.LeakyReLU)]
    assert leaky == [0.01, 0.01, 0.01] and isinstance(list(d.G.modules())[-1], nn.Tanh)
    with pytest.raises(GenbenchError, match="dcgan needs square images"):
        DCGAN(build_config(DCGANConfig, {}))._build((1, 30, 30), CPU)


def test_discriminator_scores():
    s = discriminator_scores(torch.tensor([1.0, 2.0, -1.0, 3.0]), torch.tensor([-1.0, 0.5]))
    # 3 of 4 reals called real, 1 of 2 fakes called real
    assert s == {"d_accuracy": 4 / 6, "d_precision": 3 / 4, "d_recall": 3 / 4}


def test_cross_evaluation_judges_another_generator():
    data = TrainData("tiny", torch.rand(16, 1, 8, 8) * 2 - 1)
    cfg = dict(noise_dim=8, d_blocks=1, g_blocks=1, batch_size=8)
    a = fitted(DCGAN, data, **cfg)
    b = DCGAN(build_config(DCGANConfig, cfg))
    b.fit(data, Budget(3, log_every=1), seed=1, device=CPU)
    rows = a.cross_evaluate(b, data.x[:10], seed=1)
    assert set(rows) == set(DCGAN.cross_metrics)
    assert all(0 <= r["value"] <= 1 or np.isnan(r["value"]) for r in rows.values())
    assert "10 real test images" in rows["d_accuracy"]["protocol"]


def test_duplicate_rate_is_calibrated_on_real_data_and_catches_collapse():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(400, 16))
    fresh = rng.normal(size=(400, 16))
    rate, threshold, m = duplicate_rate(real, fresh)
    assert m == 400 and threshold > 0 and abs(rate - DUP_QUANTILE) < 0.04
    collapsed = np.repeat(rng.normal(size=(20, 16)), 20, axis=0) + 1e-3 * rng.normal(size=(400, 16))
    assert duplicate_rate(real, collapsed)[0] == 1.0
    # sizes differ: both sets are cut to the smaller one
    assert duplicate_rate(real[:50], fresh)[2] == 50

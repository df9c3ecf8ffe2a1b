"""Consistency training against Song et al. 2023 (arXiv 2303.01469), term by term: the boundary
condition, Appendix C's c_skip and c_out, the Karras times, the N(k) and mu(k) schedules, one
network evaluation per sampling step, and the schedules written along training."""

import math

import pytest
import torch

from genbench.harness.config import build_config
from genbench.harness.errors import DivergedError, GenbenchError
from genbench.harness.method import Budget
from genbench.methods import consistency as cm
from genbench.methods.consistency import CMConfig, CMKnobs, ConsistencyModel

TINY = dict(n_feat=8, ch_mult=(1, 2), attention=False, batch_size=8, s1=10)


def fitted(data, steps=3, **cfg):
    m = ConsistencyModel(build_config(CMConfig, {**TINY, **cfg}))
    m.fit(data, Budget(steps, log_every=1), seed=0, device=torch.device("cpu"))
    return m


def test_boundary_condition_holds_for_any_network_output(tiny_images):
    m = fitted(tiny_images, steps=1)
    x = torch.randn(4, *tiny_images.shape)
    for p in m.net.parameters():  # an arbitrary, large network output
        p.data.normal_(0, 3)
    t = torch.full((4,), m.config.eps)
    assert torch.equal(m.f(m.net, x, t), x)


def test_c_skip_and_c_out_of_appendix_c():
    cfg = CMConfig()
    t = torch.tensor([0.002, 1.0, 80.0], dtype=torch.float64)
    assert cm.c_skip(t, cfg)[0] == 1 and cm.c_out(t, cfg)[0] == 0
    assert cm.c_skip(t, cfg)[1] == pytest.approx(0.25 / (0.998 ** 2 + 0.25))
    assert cm.c_out(t, cfg)[2] == pytest.approx(0.5 * 79.998 / math.sqrt(0.25 + 6400))
    assert cm.c_out(t, cfg)[1] == pytest.approx(0.5 * 0.998 / math.sqrt(1.25))
    assert cfg.sigma_data == 0.5  # a popular port uses 0.25 in c_out: not this one
    assert cm.c_out(t, cfg)[1] != pytest.approx(0.25 * 0.998 / math.sqrt(0.25 ** 2 + 1))


def test_karras_times():
    ts = cm.karras_times(3, 0.002, 80.0, 7.0)
    assert ts[0] == pytest.approx(0.002) and ts[-1] == pytest.approx(80.0)
    assert ts[1] == pytest.approx(((0.002 ** (1 / 7) + 80 ** (1 / 7)) / 2) ** 7)
    assert (cm.karras_times(151, 0.002, 80.0, 7.0).diff() > 0).all()


def test_n_and_mu_schedules():
    K = 1000
    assert cm.n_schedule(0, K, 2, 150) == 2  # N(0) = s0
    assert cm.n_schedule(K, K, 2, 150) == 151  # N(K) = s1 + 1
    # k = K/2: ceil(sqrt((151^2 - 4)/2 + 4) - 1) + 1 = ceil(105.78) + 1 = 107
    assert cm.n_schedule(K // 2, K, 2, 150) == 107
    assert cm.mu_schedule(2, 2, 0.9) == pytest.approx(0.9)
    assert cm.mu_schedule(151, 2, 0.9) == pytest.approx(math.exp(2 * math.log(0.9) / 151))


def test_distances():
    a, b = torch.zeros(2, 1, 4, 4), torch.ones(2, 1, 4, 4)
    assert cm.distance(a, b, "l2").tolist() == [1.0, 1.0]
    assert cm.distance(a, 2 * b, "l1").tolist() == [2.0, 2.0]
    c = 0.00054 * 4  # sqrt(16 dims)
    assert cm.distance(a, b, "pseudo_huber")[0].item() == pytest.approx(math.sqrt(16 + c * c) - c)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_one_network_evaluation_per_step(steps, tiny_images):
    m = fitted(tiny_images, steps=2)
    calls = []
    hook = m.target.register_forward_hook(lambda mod, inp, out: calls.append(len(inp[0])))
    m.sample(6, seed=0, steps=steps, batch_size=3)
    hook.remove()
    assert sum(calls) == 6 * steps  # network evaluations per image == steps
    info = m.sampling_info(steps=steps)
    assert info["nfe"] == steps and info["times"][0] == pytest.approx(80.0)
    assert info["times"] == sorted(info["times"], reverse=True)


def test_schedules_and_loss_go_to_the_curve(tiny_images):
    seen = {}
    m = ConsistencyModel(build_config(CMConfig, TINY))
    m.fit(tiny_images, Budget(4, log_every=2, callback=lambda s, v: seen.update({s: v})),
          seed=0, device=torch.device("cpu"))
    assert set(seen) == {2, 4} and {"loss", "N", "mu"} <= set(seen[4])
    assert seen[2]["N"] == cm.n_schedule(1, 4, 2, 10) and seen[4]["N"] == cm.n_schedule(3, 4, 2, 10)
    assert seen[4]["mu"] == pytest.approx(cm.mu_schedule(seen[4]["N"], 2, 0.9))


def test_non_finite_loss_stops_the_fit(tiny_images, monkeypatch):
    monkeypatch.setattr(cm, "distance", lambda a, b, kind: (a - b).flatten(1).mean(1) * float("nan"))
    with pytest.raises(DivergedError, match="step 1"):
        fitted(tiny_images, steps=3)


def test_explicit_times_and_plan_time_refusals():
    ConsistencyModel.check(CMConfig(), CMKnobs(steps=2, times=(80.0, 2.0)), task="generate",
                           num_classes=10)
    for config, knobs, match in [
        (CMConfig(distance="lpips"), CMKnobs(), "lpips"),
        (CMConfig(), CMKnobs(weights="ema"), "ema_decay > 0"),
        (CMConfig(), CMKnobs(steps=2, times=(40.0, 2.0)), "must start at T=80"),
        (CMConfig(), CMKnobs(steps=3, times=(80.0, 2.0)), "steps=3"),
    ]:
        with pytest.raises(GenbenchError, match=match):
            ConsistencyModel.check(config, knobs, task="generate", num_classes=10)

"""The VP-SDE toy against Song et al. 2021 (arXiv 2011.13456, Appendix C; docs/methods.md M10):
the analytic score is the gradient of log p_t, the exact-score reverse SDE and probability-flow
ODE reproduce the data law, p_1 is N(0, 1), the point metrics measure what they say, and the
harness refuses image metrics and methods on points (and the reverse)."""

import math

import numpy as np
import pytest
import torch
from scipy.special import ndtr

from genbench.harness import data as datasets
from genbench.harness.config import build_config
from genbench.harness.errors import GenbenchError
from genbench.harness.method import Budget, TrainData
from genbench.harness.mixture import DEFAULT, Mixture, ks_statistic, log_prob, wasserstein1
from genbench.harness.plan.study import Scale, Study
from genbench.methods.vpsde import VPSDE, VPSDEConfig
from genbench.harness.plan.resolve import resolve_study

OTHER = "0.5,-1,0.2;0.2,0.5,0.1;0.3,2.5,0.6"  # three components, one narrow


def exact(spec="", **cfg):
    m = VPSDE(build_config(VPSDEConfig, cfg))
    m.law = Mixture.parse(spec)
    return m


@pytest.mark.parametrize("spec", [DEFAULT, OTHER])
def test_analytic_score_is_the_gradient_of_log_p_t(spec):
    m = exact(spec)
    g = torch.Generator().manual_seed(0)
    t = torch.rand(200, generator=g, dtype=torch.float64) * 0.999 + 0.001
    x = (torch.randn(200, 1, generator=g, dtype=torch.float64) * 2).requires_grad_(True)
    means, variances, logw = m.marginal(t)
    (grad,) = torch.autograd.grad(log_prob(means, variances, logw, x).sum(), x)
    assert torch.allclose(m.exact_score(x.detach(), t), grad, rtol=1e-8, atol=1e-10)
    # and log_prob is the mixture's own density at t -> 0 (m_t -> 1)
    z = torch.zeros(1, dtype=torch.float64)
    pts = np.linspace(-3, 3, 7)
    lp = log_prob(*m.marginal(z.expand(7))[:2], m.marginal(z.expand(7))[2],
                  torch.tensor(pts)[:, None]).squeeze(1).numpy()
    assert np.allclose(np.exp(lp), Mixture.parse(spec).pdf(pts), rtol=1e-10)


def test_marginal_coefficient_and_p1_is_standard_normal():
    m = exact()
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    B = 0.1 * t + 0.5 * (20 - 0.1) * t ** 2
    assert torch.allclose(m.mean_coef(t), torch.exp(-B / 2))
    p1 = m.law.diffused(float(m.mean_coef(torch.tensor(1.0, dtype=torch.float64))))
    x = np.linspace(-8, 8, 40_001)
    w1 = np.trapezoid(np.abs(p1.cdf(x) - ndtr(x)), x)
    assert w1 < 0.02


@pytest.mark.parametrize("spec", [DEFAULT, OTHER])
@pytest.mark.parametrize("process", ["sde", "ode"])
def test_exact_score_recovers_the_data_law(spec, process):
    m = exact(spec)
    x = m.sample(10_000, seed=0, process=process, steps=1000)  # W1's sampling noise: ~0.015
    assert x.shape == (10_000, 1)
    w1 = wasserstein1(x[:, 0].numpy(), m.law)
    assert w1 < 0.05, f"{process} W1 {w1:.4f} on {spec}"
    # fewer steps are visibly worse for the SDE: discretisation error is measurable
    if process == "sde":
        coarse = wasserstein1(m.sample(10_000, seed=0, process="sde", steps=10)[:, 0].numpy(), m.law)
        assert coarse > w1


def test_heun_counts_two_evaluations_and_is_refused_for_the_sde():
    m = exact()
    assert m.sampling_info(process="ode", solver="heun", steps=50)["nfe"] == 100
    assert m.sampling_info(process="sde", steps=50)["nfe"] == 50
    with pytest.raises(GenbenchError, match="solver 'heun' integrates the probability-flow ODE"):
        VPSDE.check(VPSDEConfig(), m.knobs(process="sde", solver="heun"), task="generate",
                    num_classes=0)
    heun = wasserstein1(m.sample(5000, seed=1, process="ode", solver="heun", steps=20)[:, 0].numpy(), m.law)
    euler = wasserstein1(m.sample(5000, seed=1, process="ode", steps=20)[:, 0].numpy(), m.law)
    assert heun < euler  # second order pays at 20 steps


def test_point_metrics_against_the_exact_law():
    law = Mixture.parse("")
    x = law.sample(20_000, seed=3)[:, 0].numpy()
    assert wasserstein1(x, law) < 0.02
    assert ks_statistic(x, law) < 1.63 / math.sqrt(len(x))  # KS 99 % critical value
    # a shift by d moves W1 by exactly d, and KS sees it too
    assert wasserstein1(x + 0.5, law) == pytest.approx(0.5, abs=0.02)
    assert ks_statistic(x + 0.5, law) > 0.1
    # the KS statistic against a point mass at 0 of a symmetric law is 1/2
    assert ks_statistic(np.zeros(10), Mixture.parse("1,0,1")) == pytest.approx(0.5)


def test_learned_score_lowers_its_denoising_loss():
    data = datasets.load("mixture")
    logs = []
    m = VPSDE(build_config(VPSDEConfig, dict(score="learned", hidden=32, layers=2)))
    m.fit(data, Budget(400, log_every=100, callback=lambda s, v: logs.append(v["loss"])), seed=0,
          device=torch.device("cpu"))
    floor = []
    e = VPSDE(build_config(VPSDEConfig, {}))
    e.fit(data, Budget(400, log_every=100, callback=lambda s, v: floor.append(v["loss"])), seed=0,
          device=torch.device("cpu"))
    assert logs[-1] < logs[0]
    assert floor[-1] < logs[-1] * 1.2  # the exact score's DSM loss is the floor


def test_mixture_data_sets_and_refusals():
    meta = datasets.info("mixture")
    assert meta.kind == "points" and meta.name == "mixture"
    d = datasets.load("mixture:1,0,1")
    assert d.x.shape == (10_000, 1) and d.x.dtype == torch.float32 and d.y is None
    assert datasets.load("mixture", "test").x.shape == (20_000, 1)
    with pytest.raises(GenbenchError, match="malformed mixture '1,2'"):
        datasets.info("mixture:1,2")
    with pytest.raises(GenbenchError, match="has no exact law"):
        datasets.law("mnist5k")
    scale = {"smoke": Scale(budget_steps=2, n_samples=4)}
    with pytest.raises(GenbenchError, match="fid_domain cannot measure points .*apply: .*w1_exact"):
        resolve_study(Study(name="s", method="vpsde", data="mixture", scales=scale,
              metrics=("fid_domain",)), "smoke")
    with pytest.raises(GenbenchError, match="method 'ddpm' generates images and data set "
                                            "'mixture' holds points"):
        resolve_study(Study(name="s", method="ddpm", data="mixture", scales=scale), "smoke")
    with pytest.raises(GenbenchError, match="w1_exact cannot measure images"):
        resolve_study(Study(name="s", method="ddpm", data="mnist5k", scales=scale,
              metrics=("w1_exact",)), "smoke")


def test_trajectory_figure():
    data = TrainData("mixture", Mixture.parse("").sample(100, seed=0), law=Mixture.parse(""))
    m = exact()
    figs = m.figures(data, seed=0)
    image, nrow = figs["trajectories"]
    assert image.shape[:2] == (1, 3) and image.shape[3] > 2 * image.shape[2]
    assert image.min() >= -1 and image.max() <= 1 and image.std() > 0.1

"""The DDPM reverse step (docs/methods.md M1, M2) and the DDPM sampler's knobs on a real network."""

import pytest
import torch

from genbench.harness.config import build_config
from genbench.harness.method import Budget
from genbench.methods.ddpm import DDPM, DDPMConfig
from genbench.methods.samplers import ddpm_step, predict_x0
from genbench.methods.schedules import NoiseSchedule, linear_betas


@pytest.fixture
def sched():
    return NoiseSchedule.from_betas(linear_betas(100))


def test_direct_step_matches_spec_m1(sched):
    g = torch.Generator().manual_seed(0)
    x, eps, z = (torch.randn(4, 1, 5, 5, generator=g) for _ in range(3))
    k = 40
    a, ab, beta = 1 - sched.betas[k].item(), sched.alphabar[k].item(), sched.betas[k].item()
    expected = (x - (1 - a) / (1 - ab) ** 0.5 * eps) / a ** 0.5 + beta ** 0.5 * z
    assert torch.allclose(ddpm_step(sched, k, x, eps, z), expected, atol=1e-6)
    # posterior variance option
    pv = sched.posterior_variance[k].item()
    out = ddpm_step(sched, k, x, eps, z, variance="posterior")
    assert torch.allclose(out, expected - beta ** 0.5 * z + pv ** 0.5 * z, atol=1e-6)
    # no noise at the last step
    assert torch.allclose(ddpm_step(sched, 0, x, eps, z), ddpm_step(sched, 0, x, eps, 0 * z))


def test_posterior_mean_equals_direct_step_without_clamping(sched):
    # the M2 route through x0_hat and mu~ is the same step as M1 when x0_hat is in range
    g = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 5, 5, generator=g) * 1.6 - 0.8
    eps = torch.randn(4, 1, 5, 5, generator=g)
    z = torch.randn(4, 1, 5, 5, generator=g)
    k = 10
    ab = sched.alphabar[k].item()
    x = ab ** 0.5 * x0 + (1 - ab) ** 0.5 * eps
    assert torch.allclose(predict_x0(sched, k, x, eps), x0, atol=1e-5)
    direct = ddpm_step(sched, k, x, eps, z)
    via_posterior = ddpm_step(sched, k, x, eps, z, clip_x0=True)
    assert torch.allclose(direct, via_posterior, atol=1e-5)


def test_clamping_bounds_x0_hat(sched):
    x = torch.full((1, 1, 2, 2), 50.0)
    eps = torch.zeros_like(x)
    k = 60
    ab, ab_prev, beta = (sched.alphabar[k].item(), sched.alphabar_prev[k].item(),
                         sched.betas[k].item())
    out = ddpm_step(sched, k, x, eps, torch.zeros_like(x), clip_x0=True)
    expected = ((1 - beta) ** 0.5 * (1 - ab_prev) / (1 - ab)) * x + ab_prev ** 0.5 * beta / (1 - ab) * 1.0
    assert torch.allclose(out, expected)


@pytest.fixture(scope="module")
def trained(request):
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8) * 2 - 1
    from genbench.harness.method import TrainData

    m = DDPM(build_config(DDPMConfig, dict(T=20, n_feat=8, ch_mult=(1, 2), attention=False,
                                            batch_size=8)))
    m.fit(TrainData("t", x), Budget(3, log_every=1), seed=0, device=torch.device("cpu"))
    return m


def test_respacing_to_T_samples_the_full_chain(trained):
    a = trained.sample(3, seed=5)
    b = trained.sample(3, seed=5, steps=20)
    assert torch.allclose(a, b)


def test_knobs_change_samples_and_nfe(trained):
    assert trained.sampling_info(steps=5)["nfe"] == 5
    assert trained.sampling_info()["nfe"] == 20
    a = trained.sample(3, seed=5, steps=5)
    assert not torch.allclose(a, trained.sample(3, seed=5))
    assert trained.sampling_info(steps=5, spacing="leading")["t_first"] == 16

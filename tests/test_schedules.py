"""Noise schedules and respacing against docs/methods.md M1/M2, term by term."""

import math

import pytest
import torch

from genbench.methods.schedules import (NoiseSchedule, cosine_betas, cosine_f, linear_betas,
                                        timestep_subsequence)


def test_linear_betas_endpoints_and_spacing():
    b = linear_betas(1000, 1e-4, 0.02)
    assert b.dtype == torch.float64 and len(b) == 1000
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)
    t = 417
    assert b[t].item() == pytest.approx(1e-4 + t * (0.02 - 1e-4) / 999)


def test_alphabar_is_cumulative_product():
    b = linear_betas(50)
    s = NoiseSchedule.from_betas(b)
    assert torch.allclose(s.alphabar, torch.cumprod(1 - b, 0))
    assert torch.allclose(s.betas, b)  # beta recovered from the alphabar ratio


@pytest.mark.parametrize("T,expected", [(500, 8.0e-2), (1000, 6.4e-3), (2000, 4.0e-5)])
def test_terminal_noise_level_depends_on_T(T, expected):
    # docs/pitfalls.md: with a fixed beta range sqrt(alphabar_T) is ~8e-2, 6.4e-3, 4e-5
    s = NoiseSchedule.from_betas(linear_betas(T))
    assert math.sqrt(s.alphabar[-1].item()) == pytest.approx(expected, rel=0.1)


def test_rescaled_linear_keeps_terminal_noise_level():
    ref = NoiseSchedule.from_betas(linear_betas(1000)).terminal_snr
    for T in (500, 2000):
        snr = NoiseSchedule.from_betas(linear_betas(T, rescale=True)).terminal_snr
        assert snr == pytest.approx(ref, rel=0.25)
    assert linear_betas(500, rescale=True)[-1].item() == pytest.approx(0.04)


def test_cosine_schedule_formula_and_clipping():
    T = 50
    b = cosine_betas(T)
    f = cosine_f(torch.arange(T + 1, dtype=torch.float64), T)
    unclipped = 1 - f[1:] / f[:-1]
    assert (b <= 0.999).all() and b[-1].item() == pytest.approx(0.999)  # clipped at the end
    assert torch.allclose(b[:-1], unclipped[:-1])  # alpha_t = alphabar_t / alphabar_{t-1}
    s = NoiseSchedule.from_betas(b)
    # alphabar_t = f(t)/f(0) wherever no clipping happened
    assert torch.allclose(s.alphabar[:-1], (f[1:] / f[0])[:-1])


def test_posterior_variance_formula():
    s = NoiseSchedule.from_betas(linear_betas(100))
    t = 37
    ab, ab_prev, beta = s.alphabar[t], s.alphabar[t - 1], s.betas[t]
    assert s.posterior_variance[t].item() == pytest.approx(((1 - ab_prev) / (1 - ab) * beta).item())
    assert s.posterior_variance[0].item() == 0.0  # alphabar_{-1} = 1


def test_respaced_betas_are_alphabar_ratios():
    full = NoiseSchedule.from_betas(linear_betas(1000))
    r = full.respace(50, "linspace")
    keep = r.timesteps
    assert len(r) == 50 and keep[0] == 0 and keep[-1] == 999
    for k in (1, 10, 49):
        expected = 1 - full.alphabar[keep[k]] / full.alphabar[keep[k - 1]]
        assert r.betas[k].item() == pytest.approx(expected.item())
    assert r.betas[0].item() == pytest.approx(full.betas[0].item())
    # reusing the original betas at the kept steps would be wrong (docs/pitfalls.md)
    assert not torch.allclose(r.betas[1:], full.betas[keep[1:]])


def test_respacing_to_T_is_the_full_chain():
    full = NoiseSchedule.from_betas(cosine_betas(40))
    r = full.respace(40)
    assert torch.equal(r.timesteps, full.timesteps)
    assert torch.allclose(r.betas, full.betas)


def test_spacings():
    assert timestep_subsequence(1000, 50, "leading")[-1] == 980  # docs/pitfalls.md: not 999
    assert timestep_subsequence(1000, 50, "trailing")[-1] == 999
    assert timestep_subsequence(1000, 50, "linspace")[-1] == 999
    for sp in ("linspace", "leading", "trailing"):
        idx = timestep_subsequence(1000, 100, sp)
        assert len(idx) == 100 and (idx[1:] > idx[:-1]).all()
    with pytest.raises(ValueError):
        timestep_subsequence(10, 11)

"""The diffusion sampling family against docs/methods.md M3, M5, M6, M7: DDIM, classifier-free guidance
with thresholding, DPS inpainting, SDS/VSD, and the forward/backward figures."""

import pytest
import torch

from genbench.harness.config import build_config
from genbench.harness.errors import GenbenchError
from genbench.harness.method import Budget, TrainData
from genbench.methods.ddpm import DDPM, DDPMConfig, DDPMKnobs
from genbench.harness.plan.tasks import hidden_error, make_inpainting
from genbench.methods.samplers import ddim_sigma, ddim_step, ddpm_step, guided_eps, predict_x0
from genbench.methods.schedules import NoiseSchedule, linear_betas
from genbench.harness.plan.resolve import resolve_study

CPU = torch.device("cpu")


def tiny_ddpm(data, steps=30, **cfg):
    m = DDPM(build_config(DDPMConfig, dict(T=20, n_feat=8, ch_mult=(1, 2), attention=False,
                                            batch_size=16, lr=2e-3, **cfg)))
    m.fit(data, Budget(steps, log_every=10), seed=0, device=CPU)
    return m


@pytest.fixture(scope="module")
def digits():
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(64, 1, 8, 8, generator=g) > 0.7).float() * 2 - 1
    return TrainData("toy", x, torch.arange(64) % 4, num_classes=4)


@pytest.fixture(scope="module")
def cond(digits):
    return tiny_ddpm(digits, class_cond=True, p_uncond=0.2)


@pytest.fixture
def sched():
    return NoiseSchedule.from_betas(linear_betas(100))


def test_ddim_eta0_ignores_the_noise(sched):
    g = torch.Generator().manual_seed(0)
    x, eps, z1, z2 = (torch.randn(3, 1, 4, 4, generator=g) for _ in range(4))
    assert torch.equal(ddim_step(sched, 50, x, eps, z1, eta=0), ddim_step(sched, 50, x, eps, z2, eta=0))
    assert not torch.equal(ddim_step(sched, 50, x, eps, z1, eta=1), ddim_step(sched, 50, x, eps, z2, eta=1))


@pytest.mark.parametrize("respaced", [False, True])
def test_ddim_eta1_has_the_ddpm_posterior_variance(sched, respaced):
    s = sched.respace(10) if respaced else sched
    for k in range(len(s)):
        assert ddim_sigma(s, k, 1.0) ** 2 == pytest.approx(float(s.posterior_variance[k]), abs=1e-12)
    # and the variance term is really used (docs/pitfalls.md: not clamped to zero)
    x, eps, z = torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.ones(1, 1, 2, 2)
    out = ddim_step(s, 5, x, eps, z, eta=1.0)
    assert torch.allclose(out, torch.full_like(out, float(s.posterior_variance[5]) ** 0.5))


def test_ddim_formula_term_by_term(sched):
    g = torch.Generator().manual_seed(1)
    x, eps, z = (torch.randn(2, 1, 3, 3, generator=g) for _ in range(3))
    k, eta = 30, 0.5
    ab, abp = sched.alphabar[k].item(), sched.alphabar_prev[k].item()
    sigma = eta * ((1 - abp) / (1 - ab)) ** 0.5 * (1 - ab / abp) ** 0.5
    x0 = (x - (1 - ab) ** 0.5 * eps) / ab ** 0.5
    expected = abp ** 0.5 * x0 + (1 - abp - sigma ** 2) ** 0.5 * eps + sigma * z
    assert torch.allclose(ddim_step(sched, k, x, eps, z, eta=eta), expected, atol=1e-6)


def test_ddim_all_steps_eta1_matches_the_ddpm_posterior_sampler(digits):
    m = tiny_ddpm(digits)
    ddim = m.sample(6, seed=3, sampler="ddim", eta=1.0)
    ddpm = m.sample(6, seed=3, sampler="ddpm", variance="posterior")
    assert torch.allclose(ddim, ddpm, atol=1e-4)
    assert not torch.allclose(ddim, m.sample(6, seed=3, sampler="ddim", eta=0.0), atol=1e-2)


def test_thresholding_keeps_x0_hat_in_range(sched):
    x = torch.linspace(-40, 40, 16).view(1, 1, 4, 4)
    eps = torch.zeros_like(x)
    assert predict_x0(sched, 0, x, eps).abs().max() > 1
    for step in (lambda: ddim_step(sched, 0, x, eps, eps, clip_x0=True),
                 lambda: ddpm_step(sched, 0, x, eps, eps, clip_x0=True)):
        out = step()  # at the last step both return x0_hat itself
        assert out.min() >= -1 and out.max() <= 1


def test_guidance_formula_and_w0_is_the_conditional_model():
    calls = []

    def eps_fn(x, t, c):
        calls.append(len(x))
        return x * 0 + c.sum(1).view(-1, 1, 1, 1) + t.view(-1, 1, 1, 1).float()

    x, t = torch.zeros(3, 1, 2, 2), torch.tensor([1, 2, 3])
    c = torch.nn.functional.one_hot(torch.tensor([0, 1, 2]), 4).float() * 5
    assert torch.equal(guided_eps(eps_fn, x, t, c, 0.0), eps_fn(x, t, c))
    calls.clear()
    w = 2.0
    out = guided_eps(eps_fn, x, t, c, w)
    e_c, e_null = eps_fn(x, t, c), eps_fn(x, t, torch.zeros_like(c))
    assert torch.allclose(out, (1 + w) * e_c - w * e_null)


def test_w0_sampling_is_bit_identical_to_the_conditional_sampler(cond):
    labels = torch.arange(6) % 4
    plain = cond.sample(6, seed=1, labels=labels, steps=10)
    assert torch.equal(plain, cond.sample(6, seed=1, labels=labels, steps=10, guidance=0.0))
    guided = cond.sample(6, seed=1, labels=labels, steps=10, guidance=2.0)
    assert not torch.equal(plain, guided)
    assert cond.sampling_info(steps=10, guidance=2.0)["nfe"] == 20


def test_label_dropout_trains_the_class_embedding(digits):
    init = DDPM(build_config(DDPMConfig, dict(T=20, n_feat=8, ch_mult=(1, 2), attention=False,
                                              class_cond=True)))
    never = tiny_ddpm(digits, steps=5, class_cond=True, p_uncond=1.0)  # every label dropped
    often = tiny_ddpm(digits, steps=5, class_cond=True, p_uncond=0.0)
    torch.manual_seed(0)  # the weight init of fit(seed=0)
    init.num_classes = digits.num_classes
    init._build(digits.shape, CPU)
    w0 = init.net.class_emb.weight
    assert torch.equal(never.net.class_emb.weight, w0)  # null token only: zero gradient
    assert not torch.equal(often.net.class_emb.weight, w0)


def test_plan_time_checks():
    cfg = DDPMConfig()
    with pytest.raises(GenbenchError, match="class-conditional"):
        DDPM.check(cfg, DDPMKnobs(guidance=1.0), task="generate", num_classes=10)
    with pytest.raises(GenbenchError, match="inpaint"):
        DDPM.check(cfg, DDPMKnobs(sampler="dps"), task="generate", num_classes=10)
    with pytest.raises(GenbenchError, match="labelled"):
        DDPM.check(DDPMConfig(class_cond=True), DDPMKnobs(), task="generate", num_classes=0)
    DDPM.check(cfg, DDPMKnobs(sampler="ddim"), task="inpaint", num_classes=10)
    with pytest.raises(GenbenchError, match="eta"):
        build_config(DDPMKnobs, {"eta": 1.5})


def test_dps_all_visible_noiseless_returns_the_observation(digits):
    m = tiny_ddpm(digits)
    x = digits.x[:4]
    obs = make_inpainting(x, "none", 0.0, seed=0)
    assert torch.equal(obs.y, x) and obs.mask.min() == 1
    out = m.sample(4, seed=0, observation=obs, sampler="dps", steps=20, eta=1.0, dps_zeta=1.0)
    plain = m.sample(4, seed=0, observation=obs, sampler="ddim", steps=20, eta=1.0)
    err = ((out - x) ** 2).mean()
    assert err < 0.02 and err < 0.1 * ((plain - x) ** 2).mean()


def test_inpainting_masks_and_hidden_error():
    x = torch.zeros(2, 1, 8, 8)
    center = make_inpainting(x, "center", 0.0, seed=0).mask
    assert center[0, 0, 4, 4] == 0 and center[0, 0, 0, 0] == 1 and center.mean() == 0.75
    assert make_inpainting(x, "half", 0.0, seed=0).mask[0, 0, :, 4:].sum() == 0
    noisy = make_inpainting(x, "center", 0.1, seed=0)
    assert (noisy.y * (1 - noisy.mask)).abs().sum() == 0 and noisy.y.abs().sum() > 0
    x_hat = x.clone()
    x_hat[:, :, 2:6, 2:6] = 0.5  # error only in the hidden square
    mse, psnr = hidden_error(x_hat, x, center)
    assert mse == pytest.approx(0.25) and psnr == pytest.approx(10 * torch.log10(torch.tensor(16.0)).item())
    with pytest.raises(ValueError, match="valid"):
        make_inpainting(x, "star", 0.0, seed=0)


@pytest.mark.parametrize("sampler", ["sds", "vsd"])
def test_score_distillation_samples(cond, sampler):
    labels = torch.tensor([0, 1, 2])
    a = cond.sample(3, seed=2, labels=labels, sampler=sampler, guidance=7.5, sds_iters=5)
    assert a.shape == (3, 1, 8, 8) and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, cond.sample(3, seed=2, labels=labels, sampler=sampler, guidance=7.5,
                                      sds_iters=5))
    assert cond.sampling_info(sampler=sampler, guidance=7.5, sds_iters=5)["nfe"] == \
        5 * (2 if sampler == "sds" else 4)


def test_sds_gradient_is_w_t_times_eps_difference(cond, monkeypatch):
    # with a prior that predicts exactly the injected noise, the SDS gradient is zero and the
    # image does not move; VSD with the same prior copy does not move either
    from genbench.methods import score_distillation as sd

    x0 = cond.sample(2, seed=4, sampler="sds", sds_iters=1, sds_lr=0.0)
    monkeypatch.setattr(sd, "guided_eps", lambda fn, x_t, t, c, w: captured.pop())
    captured = []
    real_randn = sd.PerSampleNoise.randn

    def spy(self, *shape, **kw):
        out = real_randn(self, *shape, **kw)
        captured.append(out)
        return out

    monkeypatch.setattr(sd.PerSampleNoise, "randn", spy)
    moved = cond.sample(2, seed=4, sampler="sds", sds_iters=3, sds_lr=0.5)
    assert torch.allclose(moved, x0)


def test_figures_forward_and_backward(digits):
    m = tiny_ddpm(digits, steps=5)
    figs = m.figures(digits, seed=0)
    fwd, nrow = figs["forward_process"]
    assert nrow == 5 and fwd.shape == (8 * 5, 1, 8, 8)
    assert torch.allclose(fwd[0], digits.x[0])  # 0 % of T: the clean image
    bwd, _ = figs["backward_process"]
    assert bwd.shape == fwd.shape and bwd.min() >= -1 and bwd.max() <= 1


def test_backward_figure_follows_the_sampling_knobs(digits):
    """M2's backward-process figure is drawn with the study's sampling knobs (posterior
    variance, x0 clamping), as a full ancestral chain from each noised image whatever the
    sampler: a respaced or DDIM chain has no step at 25 % of T."""
    m = tiny_ddpm(digits, steps=5)
    plain = m.figures(digits, seed=0)
    m2 = m.figures(digits, seed=0, variance="posterior", clip_x0=True)
    assert torch.equal(plain["forward_process"][0], m2["forward_process"][0])
    assert not torch.allclose(plain["backward_process"][0], m2["backward_process"][0])
    ddim = m.figures(digits, seed=0, sampler="ddim", steps=3, variance="posterior", clip_x0=True)
    assert torch.equal(ddim["backward_process"][0], m2["backward_process"][0])


def test_a_trials_figures_use_the_knobs_of_its_evaluations(tmp_path, monkeypatch):
    from genbench.harness.run.ledger import scan
    from genbench.harness.run.driver import trial_env as _env
    from genbench.harness.run.trial import execute_trial

    seen, real = [], DDPM.figures

    def spy(self, data, *, seed, **knobs):
        seen.append(knobs)
        return real(self, data, seed=seed, **knobs)

    monkeypatch.setattr(DDPM, "figures", spy)
    plan, out = _figures_study(tmp_path)
    for work in scan(out, plan, echo=lambda _: None).work:
        execute_trial(plan, work, out, _env(), CPU)
    (trial,) = plan.trials
    first = plan.settings_for(trial)[0].knobs
    assert seen == [first] and first["variance"] == "posterior" and first["clip_x0"] is True
    assert (out / "figures" / trial.trial_id / "backward_process.png").is_file()


def test_a_figure_that_fails_never_costs_the_fit(tmp_path, monkeypatch):
    from genbench.harness.run.ledger import scan
    from genbench.harness.run.driver import trial_env as _env
    from genbench.harness.run.trial import execute_trial

    def broken(self, data, *, seed, **knobs):
        raise RuntimeError("a figure bug")

    monkeypatch.setattr(DDPM, "figures", broken)
    plan, out = _figures_study(tmp_path)
    (work,) = scan(out, plan, echo=lambda _: None).work
    with pytest.raises(RuntimeError, match="a figure bug"):
        execute_trial(plan, work, out, _env(), CPU)
    (again,) = scan(out, plan, echo=lambda _: None).work
    assert not again.fit and again.units  # the rerun samples the saved fit, it never retrains


def _figures_study(tmp_path):
    from genbench.harness.plan.study import load_study

    study = tmp_path / "figs.py"
    study.write_text(
        "from genbench import Scale, Study\n"
        "STUDY = Study(name='figs', method='ddpm', data='mnist5k', seeds=(0,), figures=True,\n"
        "              config=dict(T=10, n_feat=8, ch_mult=(1,), attention=False, batch_size=8),\n"
        "              sample_config=dict(variance='posterior', clip_x0=True),\n"
        "              sample_grid={'steps': [5, 10]},\n"
        "              scales={'smoke': Scale(budget_steps=2, n_samples=2, log_every=1)})\n")
    return resolve_study(load_study(str(study)), "smoke"), tmp_path / "out"

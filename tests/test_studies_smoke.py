"""Every study end to end through Ray Tune on CPU at (shrunken) smoke scale: Parquet schema,
row counts, curves, sample grids, resume from the ledger, and a diverging run."""

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from genbench.harness.verdicts.claims import VERDICTS, Claim
from genbench.harness.cli import main
from genbench.harness.plan.plan import Plan
from genbench.harness.data import info
from genbench.harness.store.results import COLUMNS, REAL_ARM, read_curves, read_results
from genbench.harness.plan.study import load_study, study_names
from genbench.harness.plan.resolve import resolve_study

# shrink budgets so the whole suite stays within minutes; the grids are the studies' own
FAST = ["--set", "budget_steps=4", "--set", "n_samples=2", "--set", "log_every=2"]
# and a short chain (or few SDS iterations) where a study has no sampling axis of its own:
# a long chain is the samplers' tests' subject, here it only costs minutes; where the chain's
# length is the study's axis (1,000-step DDPM against DDIM or respaced chains, DPS against DDIM
# at 20-100 steps), one seed
SHRINK = {"ddpm_timesteps": {"steps": 20}, "cfg_guidance": {"steps": 10},
          "sds_guidance": {"sds_iters": 10},
          "ddim_vs_ddpm": {"seeds": [0]}, "ddpm_respacing": {"seeds": [0]}, "dps_steps": {"seeds": [0]}}
PER_TRIAL = {"train_s", "train_images_per_s", "n_params", "final_loss", "peak_mem_mb"}
LOADED = PER_TRIAL - {"final_loss"}  # a pretrained arm's fit and the real-data floor train nothing


def own(plan: Plan) -> list:
    """The study's own trials: the real-data floor's beside them are not what a test counts."""
    return [t for t in plan.trials if t.arm != REAL_ARM]
PER_SETTING = {"sample_s_per_image", "nfe"}


@dataclass
class SmokeRun:
    """One study run at the shrunken smoke scale, shared by its generic and its own tests."""

    out: Path
    plan: Plan
    df: pd.DataFrame
    curves: pd.DataFrame
    console: str


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    runs: dict[str, SmokeRun] = {}

    def run(name: str) -> SmokeRun:
        if name not in runs:
            out = tmp_path_factory.mktemp("smoke") / name
            extra = SHRINK.get(name, {})
            sets = [a for k, v in extra.items() for a in ("--set", f"{k}={v}".replace(" ", ""))]
            console = io.StringIO()
            with contextlib.redirect_stdout(console):  # in this process: these runs check
                code = main(["run", name, "--out", str(out), *FAST, *sets,  # rows, not Ray
                             "--in-process", "--no-report"])  # (test_inprocess.py: same rows)
            assert code == 0, console.getvalue()[-2000:]
            plan = resolve_study(load_study(name), "smoke", {"budget_steps": 4, "n_samples": 2,
                                                      "log_every": 2, **extra})
            runs[name] = SmokeRun(out, plan, read_results(out), read_curves(out), console.getvalue())
        return runs[name]
    return run


def _per_study(name):  # one xdist worker runs a study's tests, so its run happens once
    return pytest.mark.xdist_group(name)


# regression runs whole, against its baseline, in test_reports.py
@pytest.mark.parametrize("name", [pytest.param(n, marks=_per_study(n))
                                  for n in study_names() if n != "regression"])
def test_study_smoke(name, smoke):
    """What every study's run has: the schema, every trial's cost rows, every setting's grid,
    quality rows with their protocol, curves, a verdict for each claim."""
    r = smoke(name)
    out, plan, df, curves = r.out, r.plan, r.df, r.curves
    assert list(df.columns) == list(COLUMNS)
    assert set(df.trial_id) == {t.trial_id for t in plan.trials}
    # the run ends with a verdict for each of the study's claims (at these budgets, any verdict)
    verdicts = [x for x in r.console.splitlines() if x.startswith("claim ")]
    texts = [Claim(**c).text for c in plan.claims]
    assert (texts or name == "zoo") and len(verdicts) == len(texts)  # (the zoo trains, claims none)
    assert all(f" {t}: " in v and v.split()[1] in VERDICTS for t, v in zip(texts, verdicts))
    for trial in plan.trials:
        rows = df[df.trial_id == trial.trial_id]
        assert (LOADED if trial.pretrained or trial.arm == REAL_ARM else PER_TRIAL) <= set(rows.metric)
        assert (rows.seed == trial.seed).all()
        setting_rows = rows[rows.metric.isin(PER_SETTING)]
        assert len(setting_rows) == len(PER_SETTING) * len(plan.settings_for(trial))
        assert sorted(json.loads(s)["setting"] for s in setting_rows.sample_json.unique()) == \
            sorted(s.key for s in plan.settings_for(trial))
        for s in plan.settings_for(trial):
            assert (out / "samples" / trial.trial_id / f"{s.key}.png").is_file()
        quality = rows[rows.metric.isin(plan.metrics)]
        assert len(quality) == len(plan.metrics) * len(plan.settings_for(trial))
        if info(plan.data).kind == "points":  # against the exact law, no features
            exact = quality[quality.metric.isin(["w1_exact", "ks_exact"])]
            assert len(exact) == 2 * len(plan.settings_for(trial)) and exact.value.notna().all()
            assert exact.protocol.notna().all() and exact.ref_split.str.startswith("exact law").all()
            continue
        domain = quality[quality.metric.isin(["fid_domain", "kid_domain"])]
        assert len(domain) == 2 * len(plan.settings_for(trial)) and domain.value.notna().all()
        for col in ("feature_extractor", "ref_split", "protocol", "n_ref", "n_samples"):
            assert domain[col].notna().all(), col
        assert domain[domain.metric == "kid_domain"]["std"].notna().all()
        inception = quality[quality.metric.str.endswith("_inception")]  # no weights offline
        assert inception.value.isna().all() and inception.note.str.startswith("skipped").all()
    for col in ("study", "method", "dataset", "config_hash", "config_json", "device", "git_sha",
                "versions_json", "created_at"):
        assert df[col].notna().all(), col
    assert (df.study == name).all() and (df.schema_version == 2).all()
    assert df.cell_key.notna().all() and df.node.notna().all() and df.plan_id.notna().all()
    assert df.arm.notna().all() and df.run_key.notna().all()
    fit_rows = df[df.setting_json.isna()]
    trained = {t.trial_id for t in own(plan) if not t.pretrained}
    assert set(fit_rows.metric) >= LOADED
    assert (fit_rows[fit_rows.trial_id.isin(trained)].train_steps == 4).all()
    assert (df[df.metric == "sample_s_per_image"].n_samples == 2).all()
    curves = read_curves(out)
    assert set(curves.trial_id) == trained and (not trained or curves.step.max() == 4)  # (what trained)
    assert json.loads((out / "study.json").read_text())["study"] == name


@_per_study("cfg_guidance")
def test_cfg_guidance_measures_class_match_in_every_setting(smoke):
    r = smoke("cfg_guidance")
    assert len([x for x in r.plan.samples if x.arm != REAL_ARM]) == 10
    cm = r.df[(r.df.metric == "class_match") & (r.df.arm != REAL_ARM)]
    assert len(cm) == 10 * len(own(r.plan)) and cm.value.between(0, 1).all()


@_per_study("dps_steps")
def test_dps_steps_measures_the_hidden_region_and_keeps_the_observation(smoke):
    r = smoke("dps_steps")
    for metric in ("mse_hidden", "psnr_hidden"):  # DPS and its plain DDIM baseline alike
        mine = r.df[(r.df.metric == metric) & (r.df.arm != REAL_ARM)]
        assert len(mine) == len([x for x in r.plan.samples if x.arm != REAL_ARM]) * len(own(r.plan))
    for trial in own(r.plan):
        assert (r.out / "samples" / trial.trial_id / "observation.png").is_file()


@_per_study("ddpm_fid_curve")
def test_ddpm_fid_curve_saves_the_process_figures(smoke):
    r = smoke("ddpm_fid_curve")
    for trial in own(r.plan):
        for fig in ("forward_process", "backward_process"):
            assert (r.out / "figures" / trial.trial_id / f"{fig}.png").is_file()


@pytest.mark.parametrize("name", [pytest.param(n, marks=_per_study(n))
                                  for n in ("gan_regularisation", "dcgan_svhn", "quickstart")])
def test_every_gan_logs_both_losses_and_both_networks(name, smoke):
    r = smoke(name)
    for trial in r.plan.trials:
        if trial.method in ("gan", "dcgan") and not trial.pretrained:  # (a zoo GAN trains nothing)
            rows = r.df[r.df.trial_id == trial.trial_id]
            assert {"final_loss", "final_loss_G", "n_params_G", "n_params_D"} <= set(rows.metric)
            assert {"loss_D", "loss_G", "d_real", "d_fake"} <= set(
                r.curves[r.curves.trial_id == trial.trial_id].metric)


@_per_study("gan_regularisation")
def test_gan_regularisation_runs_each_arm_at_every_seed(smoke):
    r = smoke("gan_regularisation")  # baseline, +R1, +R1+DiffAugment
    assert set(r.df.arm) == {"baseline", "r1", "r1_diffaug", REAL_ARM}
    assert "duplicate_rate_domain" in r.plan.metrics
    assert r.df[r.df.arm != REAL_ARM].drop_duplicates("trial_id").groupby("arm").seed.nunique().eq(3).all()


@pytest.mark.parametrize("name", [pytest.param(n, marks=_per_study(n))
                                  for n in ("gan_regularisation", "dcgan_svhn")])
def test_discriminators_are_judged_against_another_seeds_generator(name, smoke):
    r = smoke(name)
    cross = r.df[r.df.metric.isin(["d_accuracy", "d_precision", "d_recall"])]
    assert len(cross) == 3 * len(own(r.plan))
    assert cross.note.str.startswith("against the fit of seed").all()
    assert (cross.n_samples == 2).all() and cross.protocol.notna().all()
    assert cross[cross.metric == "d_accuracy"].value.between(0, 1).all()


@_per_study("dcgan_svhn")
def test_dcgan_svhn_runs_on_the_embedded_digits_at_smoke_scale(smoke):
    assert (smoke("dcgan_svhn").df.dataset == "mnist5k").all()


@_per_study("sde_toy")
def test_sde_toy_samples_both_processes_at_three_step_counts_from_both_scores(smoke):
    r = smoke("sde_toy")
    df = r.df[r.df.arm != REAL_ARM]
    assert {json.loads(c)["score"] for c in df.cell_json.unique()} == {"exact", "learned"}
    assert len(r.plan.settings_for(own(r.plan)[0])) == 6
    for trial in own(r.plan):
        assert (r.out / "figures" / trial.trial_id / "trajectories.png").is_file()
    assert set(df[df.metric == "nfe"].value) == {10.0, 100.0, 1000.0}


@_per_study("ddpm_timesteps")
def test_ddpm_timesteps_rows_for_each_T_and_seed_with_falling_terminal_snr(smoke):
    r = smoke("ddpm_timesteps")
    configs = r.df[r.df.arm != REAL_ARM].drop_duplicates("trial_id")
    got = {(json.loads(c)["config"]["T"], s) for c, s in zip(configs.config_json, configs.seed)}
    assert got == {(T, s) for T in (500, 1000, 2000) for s in (0, 1)}
    terminal = r.df[r.df.metric == "terminal_snr"]
    snr = terminal.groupby(terminal.config_json.map(lambda c: json.loads(c)["config"]["T"])).value.first()
    assert snr[500] > snr[1000] > snr[2000]


@pytest.mark.e2e  # a study run end to end
def test_rerun_resumes_from_the_ledger(tmp_path, capsys):
    out = tmp_path / "q"
    args = ["run", "quickstart", "--scale", "train", "--out", str(out), *FAST,  # (trained here:
            "--set", "ddpm.steps=20", "--in-process", "--no-report"]  # the smoke scale loads)
    assert main(args) == 0
    first = read_results(out)
    assert main(args) == 0  # the four arms and the real-data floor, eight sample settings
    assert "5 of 5 fits and 8 of 8 sample settings already done; to run: 0 fits" in \
        capsys.readouterr().out
    pd.testing.assert_frame_equal(first, read_results(out))
    # a new seed runs only the new trials, keeping the old rows (and adds the GAN's
    # cross-seed evaluation, which needs two seeds)
    assert main([*args, "--set", "seeds=[0,1]"]) == 0
    both = read_results(out)
    assert set(both.seed) == {0, 1}
    old = both[(both.seed == 0) & ~both.metric.str.startswith("d_")]
    pd.testing.assert_frame_equal(old.reset_index(drop=True), first.reset_index(drop=True))
    assert set(both[both.metric.str.startswith("d_")].metric) == {"d_accuracy", "d_precision",
                                                                  "d_recall"}


def test_diverging_trial_is_reported(tmp_path, capsys):
    f = tmp_path / "div.py"
    f.write_text("from genbench import Study, Scale\n"
                 "STUDY = Study(name='div', method='dummy', data='mnist5k',"
                 " train_grid={'diverge_at': [0, 3]},"
                 " scales={'smoke': Scale(budget_steps=5, n_samples=2, log_every=1)})\n")
    out = tmp_path / "div"
    assert main(["run", str(f), "--out", str(out), "--in-process"]) == 1
    err = capsys.readouterr().err
    assert "diverged" in err and "step 3" in err
    df = read_results(out)
    assert df[df.metric == "diverged_at_step"].value.tolist() == [3.0]
    assert "nfe" in set(df.metric)  # the healthy cell still ran


@pytest.mark.e2e  # a study run end to end
def test_metrics_along_training_go_to_curves(tmp_path):
    out = tmp_path / "q"
    assert main(["run", "quickstart", "--scale", "train", "--out", str(out), *FAST, "--set",
                 "eval_every=2", "--set", "ddpm.steps=20", "--in-process", "--no-report"]) == 0
    curves = read_curves(out)
    fid = curves[curves.metric == "fid_domain"]
    rows = read_results(out)
    for trial_id in set(rows[rows.arm != REAL_ARM].trial_id):  # every arm: DDPM, DDIM, CM, GAN
        assert fid[fid.trial_id == trial_id].step.tolist() == [2, 4]
    assert fid.trial_id.nunique() == 4 and fid.value.notna().all()
    assert set(curves[curves.metric == "N"].step) == {2, 4}  # the consistency schedules
    assert set(curves[curves.metric == "loss"].step) == {2, 4}

"""The open core: a method defined in a study file runs through Ray (one from an installed plugin
package: tests/test_install.py); several methods side by side as arms; per-arm --set; budgets in images seen;
metrics that fit the data; knobs the sampler ignores; broken study files."""

import json
import textwrap

import numpy as np
import pytest
from PIL import Image

from genbench.harness.cli import main
from genbench.harness.errors import GenbenchError
from genbench.harness.store.results import read_results
from genbench.harness.plan.study import Arm, Scale, Study, load_study
from userland import MEAN_IMAGE
from genbench.harness.plan.resolve import resolve_study



ARMS = dict(name="arms", data="mnist5k", seeds=(0,),
            arms=(Arm("mean", "dummy", config={"batch_size": 16}, sample_grid={"noise": [0.1]}),
                  Arm("ddpm", "ddpm", config=dict(T=20, n_feat=8, ch_mult=(1,), attention=False,
                                                  batch_size=32),
                      sample_grid={"steps": [5, 10]})),
            scales={"smoke": Scale(budget_kimg=0.064, n_samples=2, log_every=1)})


def test_a_method_of_the_study_file_and_a_shipped_one_run_as_arms_in_one_tune_run(tmp_path,
                                                                                  ray_local, capsys):
    """The study file defines its own method (the Ray workers find it) and sets it beside DDPM."""
    f = tmp_path / "arms.py"
    own = dict(ARMS, arms=(Arm("mean", "mean_image", config={"batch_size": 16},
                               sample_grid={"noise": [0.1]}), ARMS["arms"][1]))
    f.write_text(MEAN_IMAGE.format(name="mean_image") + "from genbench import Arm, Scale, Study\n"
                 f"STUDY = Study(**{own!r})\n")
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out)]) == 0
    assert "arms [smoke]: 2 trials with work left" in capsys.readouterr().out  # one Tune run
    df = read_results(out)
    assert set(df.arm) == {"mean", "ddpm"} and set(df.method) == {"mean_image", "ddpm"}
    fit = df[df.metric == "train_s"].set_index("arm")
    assert fit.train_steps.to_dict() == {"mean": 4, "ddpm": 2}  # 64 images each
    assert fit.images_seen.to_dict() == {"mean": 64, "ddpm": 64}
    settings = df[df.metric == "nfe"]
    assert len(settings) == 3 and settings.cell_key.nunique() == 3
    assert set(df[df.arm == "mean"].cell_key).isdisjoint(df[df.arm == "ddpm"].cell_key)
    assert load_study(str(f)).name == "arms"  # loading the file again is harmless
    mem = df[df.arm == "mean"].set_index("metric").value  # a model with no parameters adds
    assert mem["peak_mem_mb"] < 0.25 * mem["mem_base_mb"] and mem["mem_base_mb"] > 100  # little
    assert len(df[(df.arm == "mean") & (df.metric == "sample_mem_base_mb")]) == 1


def test_set_one_arm_or_every_arm_that_has_the_field():
    s = Study(**ARMS)
    plan = resolve_study(s, "smoke", {"ddpm.n_feat": 4, "config.batch_size": 8})
    cfg = {t.arm: t.config for t in plan.trials}
    assert cfg["ddpm"]["n_feat"] == 4 and cfg["ddpm"]["batch_size"] == 8 == cfg["mean"]["batch_size"]
    assert {t.arm: t.budget_steps for t in plan.trials} == {"mean": 8, "ddpm": 8}
    assert resolve_study(s, "smoke", {"budget_steps": 3}).trials[0].budget_steps == 3
    with pytest.raises(GenbenchError, match="unknown key 'n_layers'"):
        resolve_study(s, "smoke", {"n_layers": 2})
    with pytest.raises(GenbenchError, match="unknown key 'ddpm.diverge_at'"):
        resolve_study(s, "smoke", {"ddpm.diverge_at": 2})  # dummy has it, the ddpm arm does not


def test_budget_kimg_gives_steps_from_the_batch_size():
    s = Study(name="k", data="mnist5k", method="dummy",
              scales={"smoke": Scale(n_samples=2, budget_kimg=1.0),
                      "both": Scale(n_samples=2, budget_steps=2, budget_kimg=1.0)})
    assert resolve_study(s, "smoke").trials[0].budget_steps == 1000 // 16 + 1  # ceil(1000 / 16)
    with pytest.raises(GenbenchError, match="exactly one of budget_steps and budget_kimg"):
        resolve_study(s, "both")


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.RandomState(0)
    d = tmp_path / "cats"
    d.mkdir()
    for i in range(6):
        Image.fromarray(rng.randint(0, 255, (16, 16, 3), dtype=np.uint8)).save(d / f"{i}.png")
    return d


def test_a_relative_folder_and_data_directory_reach_the_trials(image_folder, tmp_path, monkeypatch):
    """Trials run in directories of their own: the plan names a folder by its absolute path,
    and the trials get the driver's GENBENCH_DATA made absolute."""
    import os

    from genbench.harness import data
    from genbench.harness.run.driver import trial_env as _env

    monkeypatch.chdir(tmp_path)
    assert data.canonical("folder:cats") == f"folder:{image_folder}"
    assert data.canonical("fewshot:folder:cats:4") == f"fewshot:folder:{image_folder}:4"
    assert data.canonical("mnist5k") == "mnist5k"
    study = Study(name="rel", method="dummy", data="folder:cats", metrics=(),
                  scales={"smoke": Scale(budget_steps=2, n_samples=2, log_every=1)})
    assert resolve_study(study, "smoke").data == f"folder:{image_folder}"
    monkeypatch.setenv("GENBENCH_DATA", "data")
    env = _env()
    assert env.data_dir == str(tmp_path / "data")
    monkeypatch.chdir(image_folder)  # as a trial in its own directory
    env.apply()
    assert os.environ["GENBENCH_DATA"] == str(tmp_path / "data") and data.data_dir().is_absolute()


def test_metrics_that_need_labels_are_refused_on_an_image_folder(image_folder, capsys, tmp_path):
    argv = ["run", "ddpm_respacing", "--set", f"data=folder:{image_folder}", "--out",
            str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "fid_domain" in err and "need a labelled data set" in err
    assert "metrics that apply: duplicate_rate_inception, duplicate_rate_ssl, fid_inception, fid_ssl" in err
    assert not (tmp_path / "out").exists()
    assert main(["plan", "ddpm_respacing", "--set", f"data=folder:{image_folder}",
                 "--set", "metrics=[fid_inception,kid_inception]"]) == 0


@pytest.mark.parametrize("sets,study,match", [
    ({"eta": 0.5}, "quickstart", "--set eta: ignored by sampler 'ddpm' in every sample setting"),
    ({}, dict(sample_grid={"eta": [0.0, 1.0]}), "sample grid axis 'eta' .* is ignored by sampler "
                                                 "'ddpm'; it is used by sampler ddim, dps"),
])
def test_a_knob_the_sampler_ignores_is_refused(sets, study, match):
    if isinstance(study, str):
        s = load_study(study)
    else:
        s = Study(name="t", method="ddpm", data="mnist5k",
                  scales={"smoke": Scale(budget_steps=2, n_samples=2)}, **study)
    with pytest.raises(GenbenchError, match=match):
        resolve_study(s, "smoke", sets)
    ok = resolve_study(load_study("ddim_vs_ddpm"), "smoke", {"eta": 1.0})  # the DDIM settings use it
    assert {st.knobs["eta"] for st in ok.samples if st.arm != "real"} == {1.0}


@pytest.mark.parametrize("text,match", [
    ("STUDY = Study(name='x'\n", "broken.py:1: syntax error"),
    ("import nonexistent_module_xyz\n", "broken.py:1: ModuleNotFoundError"),
    ("x = 1\n", "defines no `STUDY"),
])
def test_a_broken_study_file_is_one_line(text, match, tmp_path, capsys):
    f = tmp_path / "broken.py"
    f.write_text(text)
    assert main(["run", str(f), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and not (tmp_path / "out").exists()


def test_figures_without_the_sampling_knobs_fail_before_any_work(tmp_path, capsys):
    f = tmp_path / "figs.py"
    f.write_text(MEAN_IMAGE.format(name="oldfigs") + textwrap.dedent("""
        MeanImage.figures = lambda self, data, *, seed: {}  # the contract before knobs

        from genbench import Scale, Study
        STUDY = Study(name="figs", method="oldfigs", data="mnist5k", figures=True,
                      scales={"smoke": Scale(budget_steps=2, n_samples=2, log_every=1)})
        """))
    assert main(["run", str(f), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'oldfigs': figures() must take the sampling knobs" in err
    assert not (tmp_path / "out").exists()


def test_a_path_that_is_not_a_python_file(tmp_path, capsys):
    f = tmp_path / "study.txt"
    f.write_text("nothing")
    assert main(["plan", str(f)]) == 2
    assert "not a Python file" in capsys.readouterr().err


def test_list_marks_a_broken_study_and_lists_the_rest(tmp_path, monkeypatch, capsys):
    from genbench import studies

    (tmp_path / "zz_broken.py").write_text("STUDY = (\n")
    monkeypatch.setattr(studies, "__path__", [*studies.__path__, str(tmp_path)])
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "zz_broken" in out and "BROKEN" in out and "quickstart" in out


def test_plan_records_the_imports_workers_need(tmp_path):
    f = tmp_path / "mine2.py"
    f.write_text(MEAN_IMAGE.format(name="mean_image2") +
                 "from genbench import Scale, Study\n"
                 "STUDY = Study(name='mine2', method='mean_image2', data='mnist5k',"
                 " imports=('json',), scales={'smoke': Scale(budget_steps=1, n_samples=1)})\n")
    plan = resolve_study(load_study(str(f)), "smoke")
    assert plan.imports == ("json", f"path:{f.resolve()}")
    assert json.loads(plan.to_json())["imports"] == list(plan.imports)

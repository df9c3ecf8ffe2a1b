"""Study declaration -> Plan: grids, seeds, --set routing, and refusal of bad input."""

import pytest

from genbench.harness.config import parse_value
from genbench.harness.errors import GenbenchError
from genbench.harness.plan.plan import Plan
from genbench.harness.plan.study import Scale, Study, load_study, parse_sets, study_names
from genbench.harness.plan.resolve import resolve_study


def make(**kw):
    base = dict(name="t", method="ddpm", data="mnist5k",
                scales={"smoke": Scale(budget_steps=5, n_samples=4)})
    return Study(**{**base, **kw})


def test_grid_expansion_seeds_and_stable_ids():
    s = make(train_grid={"T": [10, 20], "loss": ["l1", "l2"]}, sample_grid={"steps": [2, 5]},
             seeds=(0, 1))
    p = resolve_study(s, "smoke")
    assert len(p.trials) == 8 and len(p.samples) == 2
    assert len({t.trial_id for t in p.trials}) == 8
    assert p.trials[0].trial_id == resolve_study(s, "smoke").trials[0].trial_id
    assert {t.config["T"] for t in p.trials} == {10, 20}
    assert Plan.from_json(p.to_json()) == p


def test_budget_changes_the_trial_id():
    s = make()
    a = resolve_study(s, "smoke").trials[0].trial_id
    b = resolve_study(s, "smoke", {"budget_steps": 6}).trials[0].trial_id
    assert a != b


def test_set_pins_an_axis():
    s = make(train_grid={"T": [10, 20]}, sample_grid={"steps": [2, 5]})
    p = resolve_study(s, "smoke", {"T": 30, "steps": 3, "seeds": [4, 5], "n_samples": 2})
    assert [t.config["T"] for t in p.trials] == [30, 30]
    assert [t.seed for t in p.trials] == [4, 5]
    assert [st.knobs["steps"] for st in p.samples] == [3]
    assert p.n_samples == 2


def test_list_grid_and_prefixes():
    s = make(sample_grid=[{"steps": 2}, {"steps": 4, "clip_x0": True}])
    p = resolve_study(s, "smoke", {"config.batch_size": 4, "sample.batch_size": 2})
    assert [st.knobs["clip_x0"] for st in p.samples] == [False, True]
    assert p.trials[0].config["batch_size"] == 4 and p.samples[0].knobs["batch_size"] == 2


@pytest.mark.parametrize("study,sets,match", [
    (dict(train_grid={"nope": [1]}), {}, "unknown train grid axis 'nope' for ddpm; valid: .*\\bT\\b"),
    (dict(sample_grid={"nope": [1]}), {}, "unknown sample grid axis"),
    (dict(config={"schedule": "quad"}), {}, "invalid value 'quad' for schedule; valid"),
    (dict(config={"T": "ten"}), {}, "expected an integer"),
    (dict(data="imagenet"), {}, "unknown data set 'imagenet'; valid: .*mnist5k"),
    (dict(method="gan9"), {}, "unknown method 'gan9'"),
    (dict(metrics=("fid_nope",)), {}, "unknown quality metric 'fid_nope'"),
    (dict(), {"frobnicate": 1}, "unknown key 'frobnicate'; valid"),
    (dict(), {"batch_size": 4}, "ambiguous key 'batch_size'"),
    (dict(), {"n_samples": 0}, "n_samples"),
    (dict(), {"cpu": "abc"}, "invalid value 'abc' for cpu; expected a number"),
    (dict(task="denoise"), {}, "invalid value 'denoise' for task; valid: 'generate', 'inpaint'"),
    (dict(), {"T": 1}, "T must be >= 2"),
    (dict(), {"T": 10, "rescale_betas": True}, "rescale_betas scales beta_max by 1000/T to 2 >= 1"),
])
def test_bad_input_fails_before_running(study, sets, match):
    with pytest.raises(GenbenchError, match=match):
        resolve_study(make(**study), "smoke", sets)


def test_unknown_scale():
    with pytest.raises(GenbenchError, match="unknown scale 'huge'.*valid: smoke"):
        resolve_study(make(), "huge")


def test_parse_sets():
    assert parse_sets(["a=1", "b=0.5", "c=true", "d=[1,2]", "e=linear", "f=none"]) == \
        {"a": 1, "b": 0.5, "c": True, "d": [1, 2], "e": "linear", "f": None}
    assert parse_value("(1,2)") == (1, 2)
    assert parse_value("[fid_domain, kid_domain]") == ["fid_domain", "kid_domain"]
    assert parse_value("[0.5,x]") == [0.5, "x"]
    with pytest.raises(GenbenchError, match="KEY=VALUE"):
        parse_sets(["novalue"])


@pytest.mark.parametrize("name", study_names())
def test_every_study_resolves_at_every_scale(name):
    study = load_study(name)
    assert {"smoke", "full"} <= set(study.scales)
    assert study.description and load_study(name).name == name
    for scale in study.scales:
        try:
            plan = resolve_study(study, scale)
        except GenbenchError as err:  # a data set that is not shipped (SVHN): one clear line
            assert "is not in" in str(err) and "copy the torchvision" in str(err), err
            assert "\n" not in str(err)
            continue
        assert plan.trials and plan.samples


def test_load_study_from_path(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text("from genbench import Study, Scale\n"
                 "STUDY = Study(name='mine', method='dummy', data='mnist5k',"
                 " scales={'smoke': Scale(budget_steps=2, n_samples=2)})\n")
    assert load_study(str(f)).name == "mine"
    with pytest.raises(GenbenchError, match="does not exist"):
        load_study(str(tmp_path / "missing.py"))
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(GenbenchError, match="STUDY"):
        load_study(str(tmp_path / "empty.py"))

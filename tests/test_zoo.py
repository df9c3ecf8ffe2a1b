"""The model zoo and pretrained arms (genbench.harness.store.zoo), and the real-data floor
(genbench.harness.metrics.realdata): every shipped checkpoint loads, matches its sha256 and reproduces
the fid_domain its manifest records; a pretrained arm is a load whose checkpoint's hash keys
its trial and its points; a missing, damaged or foreign checkpoint is one line naming it; every
generation study measures held-out real data beside its samples, which no family judges."""

import json
import shutil
from pathlib import Path

import pytest

import genbench
from genbench.harness.store import zoo
from genbench.harness.cli import main
from genbench.harness.errors import GenbenchError

DUMMY = """from genbench import Scale, Study
STUDY = Study(name="ptd", method="dummy", data="mnist5k", metrics=("fid_domain",), seeds=(0, 1),
              config=dict(batch_size=8), sample_grid={{"noise": [0.2, 0.6]}}, pretrained={ref!r},
              scales={{"smoke": Scale(budget_steps=5, n_samples=16, log_every=5)}})
"""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A genbench fit checkpoint: a dummy fit of five steps."""
    out = tmp_path_factory.mktemp("fit") / "run"
    genbench.run(genbench.Study(name="base", method="dummy", data="mnist5k", metrics=(),
                                config=dict(batch_size=8),
                                scales={"smoke": genbench.Scale(budget_steps=5, n_samples=4)}),
                 out=out, in_process=True, echo=lambda _: None)
    (path,) = (out / "checkpoints").glob("*-s0.pt")
    return path


def study_file(tmp_path: Path, ref: str) -> Path:
    f = tmp_path / "ptd.py"
    f.write_text(DUMMY.format(ref=ref))
    return f


def test_a_pretrained_arm_is_a_load_keyed_by_its_checkpoints_hash(checkpoint, tmp_path):
    plan = genbench.plan(study_file(tmp_path, str(checkpoint)))
    (fit,) = {t.config_hash for t in plan.trials if t.arm == "dummy"}
    t = next(t for t in plan.trials if t.arm == "dummy")
    assert t.budget_steps == 0 and t.pretrained["sha256"] == zoo.sha256_of(checkpoint.read_bytes())
    rows = genbench.run(study_file(tmp_path, str(checkpoint)), out=tmp_path / "out",
                        in_process=True, echo=lambda _: None)
    fits = rows[(rows.arm == "dummy") & (rows.metric == "train_s")]
    assert len(fits) == 2 and fits.note.str.startswith("pretrained: ").all()
    assert all(json.loads(c)["pretrained"] == t.pretrained for c in fits.config_json)
    assert not (rows.metric == "final_loss").any()  # nothing trained, no loss
    # another checkpoint: another trial and other points (compare never pairs them)
    other = tmp_path / "other.pt"
    import torch

    state = torch.load(checkpoint, weights_only=True)
    state["mean"] = state["mean"] + 0.5
    torch.save(state, other)
    plan2 = genbench.plan(study_file(tmp_path, str(other)))
    t2 = next(t for t in plan2.trials if t.arm == "dummy")
    assert t2.config_hash != fit and plan2.cell_key(t2) != plan.cell_key(t)
    assert t2.config == t.config  # the same method config: only the weights differ


def test_a_pretrained_arm_takes_its_config_from_its_checkpoint(checkpoint, tmp_path, capsys):
    f = study_file(tmp_path, str(checkpoint))
    with pytest.raises(GenbenchError, match="trained with lr=0.5; the arm asks lr=0.1"):
        genbench.plan(f, sets={"lr": 0.1})
    f.write_text(f.read_text().replace("config=dict(batch_size=8)",
                                       "config=dict(batch_size=8), train_grid={'lr': [0.1, 0.5]}"))
    with pytest.raises(GenbenchError, match="a train grid .* needs training"):
        genbench.plan(f)
    # --set pretrained= trains from scratch instead, one flag away
    plan = genbench.plan(f, sets={"pretrained": ""})
    assert {t.budget_steps for t in plan.trials if t.arm == "dummy"} == {5}
    assert not any(t.pretrained for t in plan.trials)


@pytest.mark.parametrize("ref,match", [
    ("/nowhere/fit.pt", "pretrained checkpoint /nowhere/fit.pt cannot be read"),
    ("JUNK", "does not load"),
    ("ddpm_nope", "unknown pretrained model 'ddpm_nope'"),
])
def test_a_missing_or_foreign_checkpoint_is_one_line_naming_it(ref, match, tmp_path, capsys):
    if ref == "JUNK":
        ref = str(tmp_path / "junk.pt")
        Path(ref).write_text("not a checkpoint")
    assert main(["run", str(study_file(tmp_path, ref)), "--in-process", "--out",
                 str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and match in err
    assert not (tmp_path / "o").exists()  # refused before anything is written


def test_a_damaged_or_missing_zoo_file_is_one_line_naming_it(tmp_path, monkeypatch):
    names = list(zoo.entries())
    if not names:
        pytest.fail("genbench ships no zoo: harness/zoo/zoo.json is missing")
    copy = tmp_path / "zoo"
    shutil.copytree(zoo.ZOO_DIR, copy)
    monkeypatch.setattr(zoo, "ZOO_DIR", copy.resolve())
    name = names[0]
    path = copy / zoo.entries()[name].file
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(GenbenchError, match=f"zoo model '{name}': {path} does not match its sha256"):
        zoo.resolve(name)
    path.unlink()
    with pytest.raises(GenbenchError, match=f"its checkpoint {path} is missing"):
        zoo.resolve(name)


def test_the_zoo_ships_the_five_models_of_the_zoo_study_within_20_mb():
    from genbench.studies.zoo import STUDY

    shipped = zoo.entries()
    assert sorted(shipped) == sorted(a.name for a in STUDY.arms)
    assert sum(e.path.stat().st_size for e in shipped.values()) <= 20e6
    for e in shipped.values():
        assert e.made_by["command"] == "genbench run zoo --scale full" and e.made_by["commit"]
        assert e.metrics["values"]["fid_domain"] > 0 and e.metrics["real"]["fid_domain"] > 0


@pytest.mark.e2e
def test_every_shipped_model_loads_matches_its_sha256_and_reproduces_its_fid_domain():
    """Each model, by name (its file checked against the manifest's sha256), sampled at the
    setting, sample count and seed its manifest records: the same fid_domain, within the
    tolerance the manifest states (the other CPUs' rounding), and the same real-data floor."""
    shipped = zoo.entries()
    assert shipped, "genbench ships no zoo"
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "zoo_export", Path(__file__).resolve().parents[1] / "benchmarks" / "zoo_export.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    measured = script.measure(list(shipped), zoo.ZOO_DIR,
                              n=next(iter(shipped.values())).metrics["n_samples"])
    for name, e in shipped.items():
        want, got = e.metrics["values"]["fid_domain"], measured[name]["values"]["fid_domain"]
        assert abs(got - want) <= e.tolerance * want, (name, got, want)
        assert measured[name]["real"]["fid_domain"] == pytest.approx(e.metrics["real"]["fid_domain"],
                                                                     rel=e.tolerance)


def test_every_generation_study_measures_the_real_floor_which_no_family_judges(tmp_path):
    """The reserved arm `real`: as many held-out digits as each setting samples, the same
    metrics, one trial per seed; claims' labels stay those of a single-method study, and
    compare lists its points as not judged."""
    from genbench import compare

    f = study_file(tmp_path, "")
    f.write_text(f.read_text().replace("pretrained=''", "claims=('fid_domain: noise=0.2 better than noise=0.6',)"))
    out = tmp_path / "out"
    rows = genbench.run(f, out=out, in_process=True, echo=lambda _: None)
    real = rows[rows.arm == "real"]
    assert set(real.seed) == {0, 1} and set(real.n_samples.dropna()) == {16}
    assert set(real[real.metric == "fid_domain"].value > 0) == {True}
    assert (real.setting_json == "{}").any() and set(real.method) == {"real"}
    (verdict,) = genbench.claims(out)
    assert verdict.claim == "fid_domain: noise=0.2 better than noise=0.6" and "dummy:" not in verdict.line()
    result = compare(out, out)
    (floor,) = [u for u in result.unjudged if "real-data floor" in u.reason]
    assert floor.count == len(real.drop_duplicates(["cell_key", "metric"]))
    assert all(v.arm != "real" for v in result.verdicts)
    with pytest.raises(GenbenchError, match="the arm name 'real' is reserved"):
        genbench.plan(genbench.Study(name="x", data="mnist5k", arms=(genbench.Arm("real", "dummy"),),
                                     scales={"smoke": genbench.Scale(budget_steps=1, n_samples=2)}))

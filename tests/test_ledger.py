"""The ledger never calls stale or broken results finished: changed measurements run exactly
the missing work, another study's directory is refused, corrupt files are quarantined, one
driver holds a directory, duplicate cells merge, files are readable, and cell keys are stable."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from genbench.harness.store import results
from genbench.harness.cli import main
from genbench.harness.store.rundir import LOCK_NAME, OutputLock, RunDir
from genbench.harness.store.results import read_results
from genbench.harness.plan.plan import read_plan
from genbench.harness.plan.study import Scale, Study
from genbench.harness.plan.resolve import resolve_study

STUDY_FILE = """from genbench import Study, Scale
STUDY = Study(name={name!r}, method='dummy', data='mnist5k', train_grid={{'lr': [0.5]}},
              sample_grid={{'noise': {noise}}}, metrics={metrics},
              scales={{'smoke': Scale(budget_steps=3, n_samples=2, log_every=1)}})
"""


def study_file(tmp_path: Path, name="led", noise=(0.5,), metrics=()) -> str:
    f = tmp_path / f"{name}.py"
    f.write_text(STUDY_FILE.format(name=name, noise=list(noise), metrics=tuple(metrics)))
    return str(f)


def snapshot(out: Path) -> dict[str, int]:
    """File name -> modification time of everything the ledger decides about."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for sub in ("results", "checkpoints") for p in (out / sub).glob("*")}


def run(*argv) -> int:  # the ledger is under test, not pages nor Ray
    return main(["run", *map(str, argv), "--no-report", "--in-process"])


@pytest.mark.e2e
@pytest.mark.parametrize("change", ["n_samples", "knob", "grid_value", "metric", "config",
                                    "budget"])
def test_a_changed_measurement_runs_exactly_the_missing_work(change, tmp_path,
                                                             domain_extractor):
    out = tmp_path / "out"
    path = study_file(tmp_path)
    assert run(path, "--out", out) == 0
    before = snapshot(out)
    sets: list[str] = []
    if change == "n_samples":
        sets = ["--set", "n_samples=3"]
    elif change == "knob":
        sets = ["--set", "noise=0.25"]
    elif change == "grid_value":
        path = study_file(tmp_path, noise=(0.5, 0.1))
    elif change == "metric":
        path = study_file(tmp_path, metrics=("fid_domain",))
    elif change == "config":
        sets = ["--set", "lr=0.25"]
    elif change == "budget":  # the same train cell, another config: a new fit replaces the old
        sets = ["--set", "budget_steps=4"]
    assert run(path, "--out", out, *sets) == 0
    counted_once(out, change)
    after = snapshot(out)
    for name, mtime in before.items():  # nothing already written was rewritten or lost
        assert after.get(name) == mtime, name
    new = sorted(set(after) - set(before))
    df = read_results(out)
    if change == "metric":  # the first quality metric adds the real-data floor's arm: its own
        real = set(df.trial_id[df.arm == "real"])  # fit and rows, beside the existing trials'
        new = [n for n in new if not any(t in n for t in real)]
        df = df[df.arm != "real"]
        assert real
    if change in ("config", "budget"):  # a changed config retrains: a second fit and its settings
        assert len([n for n in new if n.startswith("checkpoints/") and n.endswith(".pt")]) == 1
        assert df.trial_id.nunique() == 2
        return
    assert not [n for n in new if n.startswith("checkpoints/")]  # no training
    assert len(new) == 1 and new[0].startswith("results/")
    added = df[df.run_key.notna() & df.created_at.eq(df.created_at.max())]
    if change == "metric":  # only the new metric, on the same samples' setting
        assert set(added.metric) == {"fid_domain"} and added.value.notna().all()
        assert added.run_key.iloc[0] in set(df[df.metric == "nfe"].run_key)
    else:
        assert {"sample_s_per_image", "nfe"} <= set(added.metric)
        want = {"n_samples": ("n_samples", 3), "knob": ("noise", 0.25), "grid_value": ("noise", 0.1)}
        col, value = want[change]
        if col == "n_samples":
            assert (added.n_samples == 3).all()
        else:
            assert {json.loads(s)[col] for s in added.sample_json} == {value}
    assert run(path, "--out", out, *sets) == 0  # and then nothing is left to do
    assert snapshot(out) == after


def counted_once(out: Path, change: str) -> None:
    """What reports and compare count after the change: each point once, the new measurement
    where it replaced one, and both where the change added a point (a new grid value)."""
    from genbench.harness.verdicts.compare import compare
    from genbench.reports.tables import load_runs

    from genbench import load

    every, [run_], current = read_results(out), load_runs([out]), load(out)
    assert (run_.rows.groupby(["cell_key", "seed", "metric"]).size() == 1).all()
    assert len(current) == len(run_.rows)  # (the page reads only the columns it shows)
    settings = current[current.setting_json.notna()]
    plan = json.loads((out / "study.json").read_text())
    if change == "budget":  # only the new fit, its curve and its settings
        assert set(run_.rows.trial_id) == {plan["trials"][0]["trial_id"]} != set(every.trial_id)
        assert set(run_.curves.trial_id) == set(run_.rows.trial_id)
        assert set(current.train_steps.dropna()) == {4}
    elif change == "n_samples":
        assert set(settings.n_samples) == {3} and len(settings) < len(every[every.setting_json.notna()])
    else:  # nothing replaced: a metric added, or a new point beside the old one
        assert len(run_.rows) == len(every) and not run_.warnings
    if len(run_.rows) < len(every):
        assert len(run_.warnings) == 1 and "left out" in run_.warnings[0]
    result = compare(out, out, plans=(read_plan(out),) * 2)  # against itself: no change
    assert {v.verdict for v in result.verdicts} == {"no change"}
    assert max(v.n_base for v in result.verdicts) == 1


@pytest.mark.e2e
def test_another_study_in_the_same_directory_is_refused(tmp_path, capsys):
    out = tmp_path / "out"
    assert run(study_file(tmp_path, name="first"), "--out", out) == 0
    before = (out / "study.json").read_text(), snapshot(out)
    capsys.readouterr()
    assert run(study_file(tmp_path, name="second"), "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'first'" in err and "'second'" in err and "--out" in err
    assert ((out / "study.json").read_text(), snapshot(out)) == before
    # another scale of the same study: reports would pool the two scales' seeds
    first = Path(study_file(tmp_path, name="first"))
    smoke = "'smoke': Scale(budget_steps=3, n_samples=2, log_every=1)"
    first.write_text(first.read_text().replace(smoke, f"{smoke}, 'more': Scale(budget_steps=4, "
                                                      "n_samples=2, log_every=1)"))
    assert run(first, "--out", out, "--scale", "more") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'smoke' scale of first" in err and "'more'" in err
    assert ((out / "study.json").read_text(), snapshot(out)) == before
    (out / "study.json").unlink()  # without it, the rows say which study and scale are here
    assert run(first, "--out", out, "--scale", "more") == 2
    assert "'smoke' scale of first" in capsys.readouterr().err


@pytest.mark.e2e
def test_a_corrupt_results_file_is_quarantined_and_rerun(tmp_path, capsys):
    out = tmp_path / "out"
    path = study_file(tmp_path)
    assert run(path, "--out", out) == 0
    good = read_results(out)
    fit = next((out / "results").glob("*.fit.parquet"))
    fit.write_bytes(fit.read_bytes()[:100])  # a truncated write
    assert len(read_results(out, warn=lambda line: None)) < len(good)  # readers skip it
    capsys.readouterr()
    assert run(path, "--out", out) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "quarantined" in ln]
    assert len(lines) == 1 and fit.name in lines[0]
    assert [p.name.endswith(fit.name) for p in (out / "quarantine").iterdir()] == [True]
    assert sorted(read_results(out).metric) == sorted(good.metric)
    assert len(pd.read_parquet(out / "results")) == len(good)  # pandas reads the table again


@pytest.mark.e2e
def test_a_second_driver_is_refused_and_a_stale_lock_taken_over(tmp_path, capsys):
    out = tmp_path / "out"
    path = study_file(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = OutputLock(out)
        out.mkdir()
        (out / LOCK_NAME).write_text(json.dumps({"host": os.uname().nodename, "pid": holder.pid,
                                                 "started_at": "now"}))
        assert run(path, "--out", out) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "in use by another genbench run" in err
        assert f"pid {holder.pid}" in err and not (out / "results").exists()
    finally:
        holder.kill()
        holder.wait()
    assert run(path, "--out", out) == 0  # the holder is dead: its lock is stale
    assert "stale lock" in capsys.readouterr().out
    assert not lock.path.exists()  # released after the run
    # a driver whose lock another one took over (it judged it stale) leaves that lock alone
    lock.acquire(echo=lambda _: None)
    taken = {"host": "elsewhere", "pid": 1, "started_at": "later"}
    lock.path.write_text(json.dumps(taken))
    lock.release()
    assert json.loads(lock.path.read_text()) == taken


def test_duplicate_cells_and_seeds_are_merged(capsys, tmp_path):
    s = Study(name="d", method="dummy", data="mnist5k", config={"lr": 0.5},
              train_grid=[{"lr": 0.5}, {}], sample_grid=[{"noise": 0.5}, {}],
              seeds=(0, 0, 1), scales={"smoke": Scale(budget_steps=2, n_samples=2)})
    plan = resolve_study(s, "smoke")
    assert [t.seed for t in plan.trials] == [0, 1] and len(plan.samples) == 1
    assert len(plan.merged) == 3
    f = tmp_path / "d.py"
    f.write_text("from genbench import Study, Scale\n"
                 "STUDY = Study(name='d', method='dummy', data='mnist5k', config={'lr': 0.5},"
                 " train_grid=[{'lr': 0.5}, {}], scales={'smoke': Scale(budget_steps=2, n_samples=2)})\n")
    assert main(["plan", str(f), "--set", "seeds=[0,0]"]) == 0
    out = capsys.readouterr().out
    assert "1 train cell x 1 seed = 1 trial" in out
    assert out.count("merged:") == 2


def test_files_get_the_modes_the_umask_gives(tmp_path, ray_local):
    """The driver's umask reaches the Ray workers (0o027, not a worker's default 0o022), and
    files written through a temporary (mkstemp's 0o600) get it too."""
    umask = 0o027
    old = os.umask(umask)
    try:
        out = tmp_path / "out"
        assert main(["run", study_file(tmp_path), "--out", str(out), "--no-report"]) == 0
    finally:
        os.umask(old)
    files = [p for sub in ("results", "curves", "checkpoints", "samples", "plans")
             for p in (out / sub).rglob("*") if p.is_file()] + [out / "study.json"]
    assert len(files) >= 6
    for p in files:
        assert p.stat().st_mode & 0o777 == 0o666 & ~umask, p


def test_cell_keys_survive_a_new_config_field_but_not_a_new_grid_value(monkeypatch):
    from genbench.methods.dummy import Dummy, DummyConfig

    s = Study(name="k", method="dummy", data="mnist5k", train_grid={"lr": [0.5, 0.25]},
              sample_grid={"noise": [0.5, 0.1]}, seeds=(0, 1),
              scales={"smoke": Scale(budget_steps=2, n_samples=2)})

    def keys(plan):
        return [plan.cell_key(t, st) for t in plan.trials for st in (None, *plan.samples)]

    before = resolve_study(s, "smoke")

    @dataclasses.dataclass(frozen=True)
    class NewConfig(DummyConfig):
        momentum: float = 0.0  # a field added with a neutral default

    monkeypatch.setattr(Dummy, "Config", NewConfig)
    after = resolve_study(s, "smoke")
    assert "momentum" in after.trials[0].config
    assert keys(after) == keys(before)  # joins the two commits' runs
    assert [t.trial_id for t in after.trials] != [t.trial_id for t in before.trials]  # reruns
    assert len(set(keys(before))) == len(keys(before)) // 2  # seeds share a cell key
    changed = resolve_study(dataclasses.replace(s, train_grid={"lr": [0.5, 0.125]}), "smoke")
    assert keys(changed)[:6] == keys(before)[:6] and keys(changed)[6:] != keys(before)[6:]


def test_version_1_tables_read_under_version_2(tmp_path):
    v1 = {name: [None] for name in results.V1_COLUMNS}
    v1.update(schema_version=[1], study=["s"], trial_id=["abc-s0"], metric=["train_s"], value=[1.0],
              config_json=[json.dumps({"config": {}, "cell": {"T": 500}})])
    fields = [(n, results.COLUMNS[n][0]) for n in results.V1_COLUMNS]
    (tmp_path / "results").mkdir()
    pq.write_table(pa.Table.from_pydict(v1, schema=pa.schema(fields)),
                   tmp_path / "results" / "abc-s0.parquet")
    results.write_rows(RunDir(tmp_path).fit_file("def-s0"),
                       [{"schema_version": 2, "study": "s", "trial_id": "def-s0",
                         "metric": "train_s", "value": 2.0, "cell_key": "k", "train_steps": 3}])
    df = read_results(tmp_path)
    assert list(df.columns) == list(results.COLUMNS)
    old = df[df.trial_id == "abc-s0"].iloc[0]
    assert old.schema_version == 1 and old.cell_json == '{"T":500}'  # canonical, as v2 writes it
    assert pd.isna(old.cell_key) and df[df.trial_id == "def-s0"].train_steps.tolist() == [3]


def test_a_metric_skipped_for_missing_weights_is_missing_work_once_they_are_here(
        tmp_path, monkeypatch):
    """Offline, missing_assets='skip' writes NaN rows saying why; after `genbench assets
    fetch` the next run measures them (while the weights stay missing, it does not retry)."""
    import torch

    from genbench.harness.metrics import assets
    from genbench.harness.run.ledger import scan
    from genbench.harness.run.driver import trial_env as _env
    from genbench.harness.plan.study import load_study
    from genbench.harness.run.trial import execute_trial

    monkeypatch.setenv("GENBENCH_ASSETS", str(tmp_path / "assets"))
    f = Path(study_file(tmp_path, metrics=("fid_inception",)))
    f.write_text(f.read_text().replace("metrics=(", "missing_assets='skip', metrics=("))
    out, plan = tmp_path / "out", resolve_study(load_study(str(f)), "smoke")

    def work():  # the study's own trial (the real-data floor's beside it is not this test's)
        return [w for w in scan(out, plan, echo=lambda _: None).work if w.trial.arm != "real"]

    (first,) = work()
    execute_trial(plan, first, out, _env(), torch.device("cpu"))
    rows = read_results(out)
    skipped = rows[rows.metric == "fid_inception"]
    assert len(skipped) == 1 and skipped.value.isna().all()
    assert work() == []
    assets.inception_path().parent.mkdir(parents=True, exist_ok=True)
    assets.inception_path().write_bytes(b"weights fetched since")
    (again,) = work()
    assert not again.fit and [u.metrics for u in again.units] == [("fid_inception",)]


def test_a_trial_works_out_what_is_left_from_its_own_files_alone(tmp_path):
    """What a trial does when it starts (or Tune restarts it after its process died): the
    ledger's work from its own files; another trial's files, even corrupt, are not touched."""
    import torch

    from genbench.harness.run.ledger import scan
    from genbench.harness.run.driver import trial_env as _env
    from genbench.harness.run.trial import work_left
    from genbench.harness.plan.study import load_study
    from genbench.harness.run.trial import execute_trial

    plan = resolve_study(load_study(study_file(tmp_path, noise=(0.5, 0.25))), "smoke")
    out = tmp_path / "out"
    (trial,) = plan.trials
    assert work_left(plan, trial, out) == scan(out, plan, echo=lambda _: None).work[0]
    execute_trial(plan, work_left(plan, trial, out), out, _env(), torch.device("cpu"))
    assert work_left(plan, trial, out) is None
    units = sorted((out / "results").glob(f"{trial.trial_id}.*.*.parquet"))
    assert len(units) == 2
    units[0].unlink()  # the process died before this setting was written
    other = out / "results" / "zzzzzzzz-s0.fit.parquet"
    other.write_bytes(b"not parquet")
    left = work_left(plan, trial, out)
    assert not left.fit and len(left.units) == 1 and other.is_file()


def test_the_sampling_key_is_the_hash_of_its_documented_fields():
    """The ledger key, written setting by setting for speed, stays the hash of the dict it
    names (so the keys of every run written before still match)."""
    from genbench.harness.config import config_hash
    from genbench.harness.plan.study import load_study

    for name in ("quickstart", "regression", "dps_steps"):
        plan = resolve_study(load_study(name), "smoke", {})
        for t in plan.trials:
            for s in plan.settings_for(t):
                assert plan.sampling_key(t, s) == config_hash(
                    {"fit": t.trial_id, "knobs": s.knobs, "n_samples": plan.n_samples,
                     "task": plan.task, "mask": plan.mask, "obs_noise": plan.obs_noise,
                     "ref_split": plan.ref_split})


def test_a_trial_sees_the_shared_plan_its_own_trial_and_the_whole_plans_id():
    """Workers get the plan's shared part once and their trial beside it (not 100,000 trials'
    JSON each): what a trial computes from it equals what the whole plan gives."""
    from genbench.harness.plan.plan import Plan
    from genbench.harness.plan.study import load_study

    plan = resolve_study(load_study("regression"), "smoke", {})
    assert len(plan.shared_json()) < len(plan.to_json()) / 2
    for t in plan.trials:
        part = Plan.for_trial(plan.shared_json(), plan.plan_id, t)
        assert part.plan_id == plan.plan_id and part.trials == (t,)
        assert part.settings_for(t) == plan.settings_for(t) and part.measured() == plan.measured()
        assert [part.sampling_key(t, s) for s in part.settings_for(t)] == [
            plan.sampling_key(t, s) for s in plan.settings_for(t)]
        assert part.cell_key(t) == plan.cell_key(t)


@pytest.mark.e2e
def test_a_rerun_with_nothing_to_do_reads_the_plan_once(tmp_path, monkeypatch, capsys):
    """The driver reads study.json once and hands it on: to the ledger's checks, the healing
    of a lost plan, the claims and the page (a huge plan is read, not re-read four times)."""
    from genbench.harness.plan.plan import Plan

    out, path = tmp_path / "out", study_file(tmp_path)
    assert run(path, "--out", out) == 0
    reads = []
    parse = Plan.from_json.__func__
    monkeypatch.setattr(Plan, "from_json", classmethod(lambda cls, text: reads.append(1) or parse(cls, text)))
    assert main(["run", path, "--out", str(out), "--in-process"]) == 0  # nothing to run; a page
    assert "nothing to run" in capsys.readouterr().out and (out / "report" / "index.html").is_file()
    assert len(reads) == 1

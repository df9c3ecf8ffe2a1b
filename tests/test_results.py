"""The results store: schema, atomic writes, a reader that survives a bad file."""

from datetime import datetime, timezone

import pytest

from genbench.harness.store import results
from genbench.harness.store.rundir import RunDir


def row(**kw):
    return {"schema_version": results.SCHEMA_VERSION, "study": "s", "trial_id": "t-s0",
            "metric": "train_s", "value": 1.0, "created_at": datetime.now(timezone.utc), **kw}


def test_roundtrip(tmp_path):
    results.write_rows(RunDir(tmp_path).fit_file("a-s0"), [row(trial_id="a-s0")])
    results.write_rows(RunDir(tmp_path).unit_file("b-s0", "k1", "m1"),
                       [row(trial_id="b-s0"), row(trial_id="b-s0")])
    df = results.read_results(tmp_path)
    assert list(df.columns) == list(results.COLUMNS) and len(df) == 3
    assert sorted(df.trial_id) == ["a-s0", "b-s0", "b-s0"]


def test_reader_skips_a_bad_file_and_says_so(tmp_path):
    results.write_rows(RunDir(tmp_path).fit_file("a-s0"), [row(trial_id="a-s0")])
    (tmp_path / "results" / "junk.parquet").write_bytes(b"PAR1 not really")
    said = []
    df = results.read_results(tmp_path, warn=said.append)
    assert df.trial_id.tolist() == ["a-s0"]
    assert len(said) == 1 and "junk.parquet" in said[0]


def test_unknown_column_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not in the results schema"):
        results.write_rows(RunDir(tmp_path).fit_file("x"), [row(wat=1)])
    assert not RunDir(tmp_path).fit_file("x").exists()


def test_crash_during_write_leaves_old_file_intact(tmp_path, monkeypatch):
    path = results.write_rows(RunDir(tmp_path).fit_file("a-s0"), [row()])
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    from genbench.harness.store import files

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(OSError):
        results.write_rows(path, [row(), row()])
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_the_docs_schema_table_is_the_code_schema():
    """docs/results.md's schema table names every column of the code's schema, and no other."""
    import re
    from pathlib import Path

    doc = (Path(__file__).parent.parent / "docs" / "results.md").read_text()
    table = doc[doc.index("| column | meaning |"):].split("\n\n")[0]
    documented = set(re.findall(r"^\| ([^|]+) \|", table, re.M)[2:])  # header and rule left out
    documented = {n for cell in documented for n in re.findall(r"`([a-z_]+)`", cell)}
    assert documented == set(results.COLUMNS)


def test_current_rows_count_each_point_once_and_follow_the_latest_plan():
    """Rows of earlier plans stay on disk; what counts is one fit per train cell and seed (the
    latest plan's, even before it has rows; else the one written last) and, within it, the
    last measurement of each setting and metric."""
    import pandas as pd

    from genbench.harness.config import canonical_json

    t = [datetime(2026, 1, 1, h, tzinfo=timezone.utc) for h in range(8)]
    cell = canonical_json({"lr": 0.5})

    def r(trial, seed, at, metric="train_s", setting=None, key=None, value=1.0):
        return row(scale="smoke", arm="a", cell_json=cell, trial_id=trial, seed=seed,
                   created_at=t[at], metric=metric, setting_json=setting, value=value,
                   run_key=key or trial, config_hash=trial.split("-")[0])

    old0, old1, new0 = "old-s0", "old-s1", "new-s0"
    rows = pd.DataFrame([
        r(old0, 0, 0), r(old0, 0, 1, "fid", "{}", "k-old0"),  # an earlier config, seed 0
        r(old1, 1, 0), r(old1, 1, 1, "fid", "{}", "k-old1"),  # and seed 1
        r(new0, 0, 2), r(new0, 0, 3, "fid", "{}", "k-n3", value=5.0),  # the new config, seed 0
        r(new0, 0, 4, "fid", "{}", "k-n3b", value=3.0),  # measured again (e.g. more samples)
        r(new0, 0, 5, "w1", "{}", "k-n3b"),  # a metric added later: kept beside fid
        r(new0, 0, 6, "cross", None, "new-s0xold-s1", value=7.0),  # partner of earlier seeds
        r(new0, 0, 7, "cross", None, "new-s0xnew-s1", value=8.0),  # partner now
    ])
    # no plan: per seed the fit written last (seed 1 has only the old config)
    current = results.current_rows(rows)
    assert sorted(zip(current.trial_id, current.metric, current.value)) == [
        (new0, "cross", 8.0), (new0, "fid", 3.0), (new0, "train_s", 1.0), (new0, "w1", 1.0),
        (old1, "fid", 1.0), (old1, "train_s", 1.0)]
    assert list(current.index) == sorted(current.index)  # the rows keep their order
    # the latest plan has the new config at both seeds: seed 1's old rows no longer count
    from genbench.harness.plan.plan import Plan

    def plan_of(trials):  # (a study.json's fields: what current_rows reads of a plan)
        return Plan.from_dict({"study": "s", "scale": "smoke", "trials": trials})

    new = [{"trial_id": f"new-s{s}", "config_hash": "new", "arm": "a", "cell": {"lr": 0.5}, "seed": s}
           for s in (0, 1)]
    assert set(results.current_rows(rows, plan_of(new)).trial_id) == {new0}
    # a plan that went back to the old config: its fits count again
    back = plan_of([{**p, "trial_id": f"old-s{p['seed']}", "config_hash": "old"} for p in new])
    assert set(results.current_rows(rows, back).trial_id) == {old0, old1}
    # the new config at seed 0 only: seed 1 of the old config is not one more seed of it
    assert set(results.current_rows(rows, plan_of(new[:1])).trial_id) == {new0}
    # a plan that no longer runs this cell at all: its fits written last still count
    elsewhere = plan_of([{**p, "cell": {"lr": 0.25}} for p in new])
    assert set(results.current_rows(rows, elsewhere).trial_id) == {new0, old1}
    # version-1 rows have no keys: several settings of one fit are never merged
    v1 = rows.assign(run_key=None, setting_json=None)
    assert len(results.current_rows(v1[v1.trial_id == new0])) == 6


def test_a_phase_memory_is_what_it_added_over_its_baseline():
    """peak_mem_mb is the increase over what the process held when the phase began: 256 MiB
    touched inside the phase count, the process's earlier memory is the baseline."""
    import numpy as np
    import torch

    from genbench.harness.run.rows import Env, MemPhase

    cpu = torch.device("cpu")
    env = Env(git_sha="x", versions_json="{}", assets_dir="/tmp")
    held = np.ones(64 * 2**20 // 8)  # held before the phase: baseline, not increase
    phase = MemPhase(cpu, "fit()", env)
    if "VmHWM reset before" not in phase.protocol():
        pytest.skip("this system cannot reset the process's peak RSS (no /proc/self/clear_refs)")
    assert phase.base_mb > 64
    assert phase.increase_mb() < 32  # nothing allocated yet
    block = np.ones(256 * 2**20 // 8)  # 256 MiB, every page touched
    del block
    assert 240 < phase.increase_mb() < 400
    again = MemPhase(cpu, "sample()", env)  # a later phase does not inherit the peak
    assert again.increase_mb() < 32 and abs(again.base_mb - phase.base_mb) < 64
    assert "minus its RSS when sample() began" in again.protocol()
    del held

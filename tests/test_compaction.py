"""Compacted results (`genbench.harness.store.compaction`): the small files of ended trials become one
part; every reader (the ledger, `read_results`, pandas) sees the same rows, a crash at any step
of a compaction loses nothing and counts nothing twice, a rerun runs nothing, and a run at a URI
compacts there."""

import os
from pathlib import Path

import pandas as pd
import pytest

from genbench.harness.cli import main
from genbench.harness.store.compaction import compact
from genbench.harness.run.ledger import scan
from genbench.harness.plan.plan import Plan
from genbench.harness.store.results import is_part, part_sources, read_results, results_files

pytestmark = pytest.mark.e2e  # each builds a run directory with a small study

STUDY = """from genbench import Scale, Study
STUDY = Study(name="cmp", method="dummy", data="mnist5k", seeds=(0, 1),
              train_grid={"lr": [0.1, 0.2]}, sample_grid={"noise": [0.1, 0.5]},
              scales={"smoke": Scale(budget_steps=2, n_samples=4, log_every=1)})
"""
KEY = ["trial_id", "setting_json", "metric", "value", "created_at"]


def _run(tmp_path: Path, out, *extra) -> int:
    f = tmp_path / "cmp.py"
    f.write_text(STUDY)
    return main(["run", str(f), "--out", str(out), "--no-report", "--in-process", *extra])


@pytest.fixture
def run_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_COMPACT_AT", "100000")  # the test compacts, not the driver
    out = tmp_path / "out"
    assert _run(tmp_path, out) == 0
    return out


def _rows(out: Path) -> pd.DataFrame:
    return read_results(out).sort_values(KEY).reset_index(drop=True)


def _plan(out: Path) -> Plan:
    return Plan.from_json((out / "study.json").read_text())


def test_compaction_keeps_every_row_and_a_rerun_runs_nothing(tmp_path, run_dir, capsys,
                                                             monkeypatch):
    before = _rows(run_dir)
    small = results_files(run_dir)
    assert len(small) == 12  # 4 trials: a fit and two settings each
    part, n = compact(run_dir, min_files=2)
    assert n == 12 and [p.name for p in results_files(run_dir)] == [part.name]
    assert [s[0] for s in part_sources(part)] == [p.name for p in small]
    pd.testing.assert_frame_equal(_rows(run_dir), before)
    assert len(pd.read_parquet(run_dir / "results")) == len(before)  # pandas: one call
    assert not scan(run_dir, _plan(run_dir), echo=lambda _: None).work
    capsys.readouterr()
    assert _run(tmp_path, run_dir) == 0
    assert "to run: 0 fits, 0 sample-setting measurements" in capsys.readouterr().out
    # a new setting after compaction samples the compacted fits' checkpoints, fits nothing
    assert _run(tmp_path, run_dir, "--set", "noise=0.3") == 0
    assert "to run: 0 fits, 4 sample-setting measurements" in capsys.readouterr().out
    assert len(read_results(run_dir)) > len(before)


@pytest.mark.parametrize("crash", ["before the rename", "after the rename", "mid removal"])
def test_a_crash_at_any_step_loses_nothing_and_counts_nothing_twice(run_dir, monkeypatch, crash):
    import genbench.harness.store.files as files  # (atomic writes rename there)

    before = _rows(run_dir)
    removed = []

    class Crash(Exception):
        pass

    if crash == "before the rename":
        def replace(src, dst):
            raise Crash
        monkeypatch.setattr(files.os, "replace", replace)
    else:
        real = Path.unlink

        def unlink(self, missing_ok=False):
            if self.name.endswith(".parquet") and not self.name.startswith("."):
                if crash == "after the rename" or len(removed) == 5:
                    raise Crash
                removed.append(self.name)
            return real(self, missing_ok=missing_ok)
        monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(Crash):
        compact(run_dir, min_files=2)
    monkeypatch.undo()
    parts = [p for p in results_files(run_dir) if is_part(p)]
    assert len(parts) == (0 if crash == "before the rename" else 1)
    pd.testing.assert_frame_equal(_rows(run_dir), before)  # nothing lost, nothing twice
    assert len(pd.read_parquet(run_dir / "results")) >= len(before)
    assert not scan(run_dir, _plan(run_dir), echo=lambda _: None).work
    compact(run_dir, min_files=2)  # the next compaction finishes the job
    names = [p.name for p in (run_dir / "results").iterdir()]
    assert len(names) == 1 and is_part(Path(names[0]))
    pd.testing.assert_frame_equal(_rows(run_dir), before)


def test_a_refit_after_compaction_counts_its_new_rows(run_dir):
    part, _ = compact(run_dir, min_files=2)
    name = part_sources(part)[0][0]
    rows = read_results(run_dir)
    again = rows[rows.trial_id == name.split(".")[0]]
    from genbench.harness.store.results import write_rows

    fresh = again[again.metric == "final_loss"].astype(object)
    fresh = fresh.where(fresh.notna(), None).to_dict("records")
    write_rows(run_dir / "results" / name, fresh)  # the same name, written again
    assert len(read_results(run_dir)) == len(rows) + len(fresh)


def test_the_driver_compacts_when_there_are_enough_and_a_uri_run_at_the_uri(tmp_path, monkeypatch,
                                                                            capsys):
    monkeypatch.setenv("GENBENCH_COMPACT_AT", "6")
    out = tmp_path / "local"
    assert _run(tmp_path, out) == 0
    text = capsys.readouterr().out
    assert text.count("compacted 6 results files") == 2  # after 2 trials and after 4: mid-run
    names = sorted(p.name for p in (out / "results").iterdir())
    assert all(is_part(Path(n)) for n in names) and len(read_results(out)) > 0
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    remote = tmp_path / "bucket" / "run"
    assert _run(tmp_path, f"file://{remote}") == 0
    assert "compacted 12 results files" in capsys.readouterr().out
    at_uri = sorted(p.name for p in (remote / "results").iterdir())
    assert len(at_uri) == 1 and is_part(Path(at_uri[0]))
    assert len(pd.read_parquet(remote / "results")) == len(read_results(out))
    assert _run(tmp_path, f"file://{remote}") == 0
    assert "to run: 0 fits" in capsys.readouterr().out


def test_work_left_is_what_the_driver_and_the_trials_own_files_both_call_missing(run_dir):
    from genbench.harness.run.ledger import Unit, Work
    from genbench.harness.run.trial import work_left

    plan = _plan(run_dir)
    compact(run_dir, min_files=2)
    trial = plan.trials[0]
    # its own files are gone into the part: on its own it would fit again
    assert work_left(plan, trial, run_dir).fit
    settings = plan.settings_for(trial)
    planned = Work(trial, False, tuple(Unit(s.key, plan.sampling_key(trial, s), ("nfe",))
                                       for s in settings))
    assert work_left(plan, trial, run_dir, planned) == planned  # the driver's view decides
    os.makedirs(run_dir / "results", exist_ok=True)
    assert work_left(plan, trial, run_dir, Work(trial, False, ())) is None

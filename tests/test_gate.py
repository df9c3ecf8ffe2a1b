"""Inputs that would fool the gate or spoil a run, reproduced first: samples that are not finite
never reach the metrics (a `diverged` status row says how many, the other settings go on, and
the run exits non-zero)."""

import json
import re
import subprocess

import pytest
import math

from genbench.harness.cli import main
from userland import SLOW_STUDY
from genbench.harness.store.results import read_results

NAN_STUDY = """from genbench import Scale, Study
STUDY = Study(name="nan", method="dummy", data="mnist5k", seeds=(0,),
              sample_grid={"noise": [0.3, float("nan")]}, metrics=("fid_domain",),
              scales={"smoke": Scale(budget_steps=2, n_samples=8, log_every=1)})
"""


@pytest.mark.e2e
def test_non_finite_samples_are_a_diverged_setting_and_the_others_go_on(tmp_path, domain_extractor,
                                                                        capsys):
    f = tmp_path / "nan.py"
    f.write_text(NAN_STUDY)
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--in-process"]) == 1
    captured = capsys.readouterr()
    assert "diverged: setting noise-nan: 8 of 8 samples not finite" in captured.err
    assert "1 sample settings with non-finite samples" in captured.out
    df = read_results(out)
    bad = df[df.setting_json.str.contains("NaN", na=False)]
    (status,) = bad[bad.metric == "diverged"].itertuples()
    assert status.value == 8 and status.note.startswith("not measured: 8 of 8 samples are not finite")
    fid = bad[bad.metric == "fid_domain"]
    assert len(fid) == 1 and math.isnan(fid.value.iloc[0]) and "not finite" in fid.note.iloc[0]
    good = df[df.setting_json == '{"noise":0.3}']
    assert math.isfinite(good[good.metric == "fid_domain"].value.iloc[0])  # the other setting ran
    # final, as a diverged fit: a rerun has nothing to do and still says so
    assert main(["run", str(f), "--out", str(out), "--no-report", "--in-process"]) == 1
    assert "nothing to run" in capsys.readouterr().out
    page = (out / "report" / "index.html").read_text()
    assert "setting noise-nan: not measured: 8 of 8 samples are not finite" in page


HEAL_STUDY = """from genbench import Scale, Study
STUDY = Study(name="heal", method="dummy", data="mnist5k", seeds=(0,),
              sample_grid={"noise": [0.1, 0.2]},
              scales={"smoke": Scale(budget_steps=2, n_samples=2, log_every=1)})
"""


@pytest.mark.e2e
def test_a_damaged_run_directory_heals_on_the_next_run(tmp_path, capsys):
    """A torn lock, a lost study.json and plan, a truncated checkpoint and one with a flipped
    byte: each said in one line, and the next run repairs it instead of failing every time."""
    from genbench.harness.store.results import results_files

    f = tmp_path / "heal.py"
    f.write_text(HEAL_STUDY)
    out = tmp_path / "out"
    run = ["run", str(f), "--out", str(out), "--no-report", "--in-process"]
    assert main(run) == 0
    capsys.readouterr()

    (out / "genbench.lock").write_text("")  # a crash between creating and writing the lock
    (out / "study.json").unlink()
    for p in (out / "plans").glob("*.json"):
        p.write_text('{"trials": [')
    assert main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "its plan (study.json) is missing or unreadable" in page and "everything in its plan is done" not in page
    assert main(run) == 0
    text = capsys.readouterr().out
    assert "empty or unreadable, so no run holds it" in text and "nothing to run" in text
    assert "was missing or unreadable: written again" in text
    assert json.loads((out / "study.json").read_text())["study"] == "heal"
    assert all(json.loads(p.read_text()) for p in (out / "plans").glob("*.json"))

    ckpt = next((out / "checkpoints").glob("*-s0.pt"))
    for damage in ("truncate", "flip"):
        data = ckpt.read_bytes()
        ckpt.write_bytes(data[: len(data) // 2] if damage == "truncate"
                         else data[:-10] + bytes([data[-10] ^ 0xFF]) + data[-9:])
        for p in results_files(out):  # a setting to measure again: the checkpoint is needed
            if not p.name.endswith(".fit.parquet"):
                p.unlink()
                break
        assert main(run) == 0, capsys.readouterr().err
        text = capsys.readouterr().out
        if damage == "truncate":  # the ledger sees the size, before any trial starts
            assert "quarantined checkpoint" in text and "truncated?" in text
        assert "0 fits" not in text.split("ledger:")[1].split("\n")[0] or damage == "flip"
        assert ckpt.is_file() and len(list((out / "quarantine").iterdir())) == (1 if damage == "truncate" else 2)
        assert main(run) == 0 and "nothing to run" in capsys.readouterr().out


def test_a_worker_that_dies_is_one_line_and_the_counts_stay_whole():
    """Tune restarts a trial whose worker died: the progress line says so once, and the counts
    never go negative when the trial starts and ends again."""
    from types import SimpleNamespace

    from genbench.harness.run.tune import _progress_callback

    lines = []
    trials = [SimpleNamespace(trial_id=t, name=f"arm {t[0]} s0", arm="arm") for t in ("a-s0", "b-s0")]
    progress = _progress_callback(trials, lines.append, max_failures=2)

    def trial(tid):
        return SimpleNamespace(config={"cell": {"work": {"trial": {"trial_id": tid, "cell": {}}}}},
                               last_result={"status": "ok", "message": ""})

    a, b = trial("a-s0"), trial("b-s0")
    progress.on_trial_start(0, [], a)
    progress.on_trial_start(0, [], b)
    progress.on_trial_recover(0, [], a)
    progress.on_trial_start(0, [], a)
    progress.on_trial_complete(0, [], a)
    progress.on_trial_complete(0, [], a)  # reported twice: counted once
    progress.on_trial_complete(0, [], b)
    assert "  arm a s0: its worker died; retrying 1/2" in lines
    ends = [x for x in lines if x.lstrip().startswith("[")]
    assert [x.split("|")[1].strip().split(",")[:2] for x in ends] == [
        ["1 running", " 0 pending"], ["1 running", " 0 pending"], ["0 running", " 0 pending"]]
    assert ends[-1].lstrip().startswith("[2/2] arm b s0 ok")


def test_a_hung_trial_says_where_it_is_and_stops_at_its_timeout(tmp_path, ray_local, capsys,
                                                               monkeypatch):
    """A trial that is silent for the heartbeat interval gets a console line with its step and
    loss; past --trial-timeout it stops with a `timeout` failure row (not retried), while the
    other trial finishes."""
    monkeypatch.setenv("GENBENCH_HEARTBEAT_S", "2")
    f = tmp_path / "slow.py"
    f.write_text(SLOW_STUDY)
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--no-report", "--trial-timeout", "8s"]) == 1
    captured = capsys.readouterr()
    assert re.search(r"still training: step \d+/60, loss [0-9.e-]+, [0-9.]+ images/s \(\d+s in\)",
                     captured.out), captured.out
    assert "timeout: TrialTimeout: ran past the trial timeout of 8s" in captured.err
    assert "1 ok, 0 diverged, 1 failed, 0 missing" in captured.out
    df = read_results(out)
    failed = df[df.metric == "failed"]
    assert len(failed) == 1 and failed.protocol.iloc[0] == "timeout" and failed.value.iloc[0] == 1
    assert json.loads(failed.cell_json.iloc[0]) == {"sleep_s": 0.5}
    assert set(df[df.metric == "nfe"].cell_json) == {'{"sleep_s":0.0}'}  # the other one ran
    assert main(["plan", str(f), "--set", "trial_timeout_s=-1"]) == 2
    assert "trial_timeout_s" in capsys.readouterr().err


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (needs root and a mount namespace that allows it: else the test skips,
    saying so)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)],
                          capture_output=True, text=True)
    if made.returncode:
        pytest.skip(f"cannot mount a small tmpfs here ({made.stderr.strip()}): the full-disk "
                    "test needs one")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.e2e
def test_a_full_disk_is_one_line_and_the_rerun_heals(small_disk, tmp_path, capsys):
    f = tmp_path / "heal.py"
    f.write_text(HEAL_STUDY)
    filler = small_disk / "filler"
    with open(filler, "wb") as fh:  # leave room for the lock and the plan, not for the trials
        fh.write(b"\0" * (1024 * 1024 - 40 * 1024))
    out = small_disk / "run"
    code = main(["run", str(f), "--out", str(out), "--no-report", "--in-process"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "No space left on device" in err and all(x.startswith("genbench: ") for x in err.splitlines()), err
    filler.unlink()
    assert main(["run", str(f), "--out", str(out), "--no-report", "--in-process"]) == 0, \
        capsys.readouterr().err
    df = read_results(out)
    assert len(df[df.metric == "nfe"]) == 2 and "failed" not in set(df.metric)


def test_the_same_file_quarantined_twice_within_a_second_keeps_both(tmp_path):
    from genbench.harness.store.rundir import RunDir

    run = RunDir(tmp_path)
    kept = []
    for content in (b"first", b"second", b"third"):
        bad = tmp_path / "checkpoints" / "a-s0.pt"
        bad.parent.mkdir(exist_ok=True)
        bad.write_bytes(content)
        kept.append(run.quarantine(bad))
    assert sorted(p.read_bytes() for p in kept) == [b"first", b"second", b"third"]
    assert len(list((tmp_path / "quarantine").iterdir())) == 3


def test_messages_about_a_run_at_a_uri_name_the_uri_not_the_cache(tmp_path):
    from genbench.harness.store.rundir import MIRROR_MARK, RunDir

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / MIRROR_MARK).write_text(json.dumps({"uri": "s3://bucket/run", "checkpoints": []}))
    assert RunDir(mirror).shown(mirror / "quarantine" / "x.parquet") == "s3://bucket/run/quarantine/x.parquet"
    assert RunDir(mirror).shown(mirror) == "s3://bucket/run"
    assert RunDir(tmp_path).shown(tmp_path / "a") == str(tmp_path / "a")  # a plain directory: itself


def test_a_report_of_unreadable_results_is_refused_and_a_skipped_file_is_said(tmp_path, capsys):
    import shutil

    from genbench.harness.store.results import results_files

    run = tmp_path / "run"
    shutil.copytree("benchmarks/baselines/regression", run)
    files = results_files(run)
    files[0].write_bytes(b"torn")  # one bad file among good ones: a warning on stderr, a page
    assert main(["report", str(run), "--out", str(tmp_path / "page")]) == 0
    assert f"skipping {files[0]}: not a readable Parquet file" in capsys.readouterr().err
    for f in files:  # none readable: refused, no page
        f.write_bytes(b"torn")
    assert main(["report", str(run), "--out", str(tmp_path / "page2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds no readable results" in err
    assert not (tmp_path / "page2").exists()


@pytest.mark.e2e
def test_a_read_only_output_directory_is_one_line_and_nothing_is_lost(small_disk, tmp_path,
                                                                      capsys):
    f = tmp_path / "heal.py"
    f.write_text(HEAL_STUDY)
    out = small_disk / "run"
    assert main(["run", str(f), "--out", str(out), "--no-report", "--in-process"]) == 0
    before = sorted(p.name for p in (out / "results").iterdir())
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    try:
        code = main(["run", str(f), "--out", str(out), "--no-report", "--set", "seeds=[0,1]",
                     "--in-process"])
        err = capsys.readouterr().err
        assert code == 1 and err.count("\n") == 1 and "Read-only file system" in err, err
        assert str(out) in err
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(small_disk)], check=True)
    assert sorted(p.name for p in (out / "results").iterdir()) == before  # nothing lost
    assert main(["run", str(f), "--out", str(out), "--no-report", "--set", "seeds=[0,1]",
                 "--in-process"]) == 0

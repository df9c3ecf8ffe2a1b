"""`genbench run --in-process`: the same trials as Ray Tune runs, one after another in this
process. Most end-to-end tests run studies this way (tests of Ray itself keep Ray), so the
rows must be Ray's: every measurement but timings and memory equal, bit for bit."""

import math
from pathlib import Path

import pytest

from genbench.harness.cli import main
from genbench.harness.store.results import read_results
from userland import SLOW_STUDY

FAST = ["--set", "budget_steps=4", "--set", "n_samples=4", "--set", "log_every=2",
        "--set", "steps=2", "--no-report"]
# what measures the machine and the process, not the method
MACHINE = {"train_s", "train_images_per_s", "sample_s_per_image", "peak_mem_mb",
           "sample_peak_mem_mb", "mem_base_mb", "sample_mem_base_mb"}


def test_in_process_rows_are_the_rows_of_a_ray_run(tmp_path, ray_local, capsys, monkeypatch):
    """... and both compact their results as trials end (a part per ended trial here); the Ray
    run in two Tune runs of at most two trials (GENBENCH_TUNE_BATCH), as a huge study runs."""
    from ray._private import worker
    from ray.air._internal import usage

    monkeypatch.setenv("GENBENCH_COMPACT_AT", "2")
    here, ray = tmp_path / "here", tmp_path / "ray"
    fast = [*FAST, "--set", "seeds=[0]"]  # (four zoo arms and the real-data floor: 5 trials)
    assert main(["run", "quickstart", "--out", str(here), *fast, "--in-process"]) == 0
    out = capsys.readouterr().out
    assert "one at a time in this process (--in-process)" in out and "[5/5]" in out
    monkeypatch.setenv("GENBENCH_TUNE_BATCH", "2")  # two Tune runs, one after the other
    census = []  # Tune's count of callbacks imports mlflow and wandb: genbench skips it
    monkeypatch.setattr(usage, "_count_callbacks", lambda callbacks: census.append(callbacks) or {})
    assert main(["run", "quickstart", "--out", str(ray), *fast]) == 0
    assert census == [] and usage.tag_callbacks.__module__ == usage.__name__  # (and put back)
    logs = Path(worker._global_node.get_session_dir_path()) / "logs"  # no idle workers: every
    assert not [p.name for p in logs.glob("worker-*-ffffffff-*")]     # one of them ran a trial
    out = capsys.readouterr().out  # compacted during the run, from Tune's callback:
    assert 0 < out.index("compacted ") < out.index("[5/5]")  # before the last trial ended
    assert out.count("[1/5]") == out.count("[5/5]") == 1  # one count across the batches
    assert {p.name for p in (ray / "ray").iterdir()} >= {"quickstart-smoke-1", "quickstart-smoke-2"}
    key = ["trial_id", "setting_json", "metric"]
    a, b = (read_results(d).sort_values(key).reset_index(drop=True) for d in (here, ray))
    assert a[key].equals(b[key]) and len(a) > 50
    same = ~a.metric.isin(MACHINE)
    for x, y, m in zip(a.value[same], b.value[same], a.metric[same]):
        assert x == y or (math.isnan(x) and math.isnan(y)), m
    for col in ("config_json", "sample_json", "protocol", "n_samples", "note", "run_key", "plan_id"):
        assert a[col][same].equals(b[col][same]), col
    for d in (here, ray):  # every small file went into a part
        assert all(p.name.startswith("part-") for p in (d / "results").iterdir())


def test_in_process_refuses_a_cluster_address(tmp_path, capsys):
    assert main(["run", "quickstart", "--out", str(tmp_path / "o"), "--in-process",
                 "--address", "127.0.0.1:6379"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--in-process runs the trials here" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.e2e
def test_in_process_a_trial_past_its_timeout_stops_and_the_next_runs(tmp_path, capsys):
    f = tmp_path / "slow.py"
    f.write_text(SLOW_STUDY)
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--no-report", "--in-process",
                 "--trial-timeout", "3s"]) == 1
    err = capsys.readouterr().err
    assert "timeout: TrialTimeout: ran past the trial timeout of 3s" in err
    df = read_results(out)
    assert df[df.metric == "failed"].protocol.tolist() == ["timeout"]
    assert len(df[df.metric == "nfe"]) == 1  # the quick cell ran

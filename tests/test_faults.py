"""Faults as a user meets them: an unreachable cluster fails in one line within seconds, a
trial that raises once succeeds on retry from its training checkpoint, a trial that always
raises is recorded (class, message, traceback file) while the others finish, and the exit
status and summary describe the whole study, not only what this run did."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from genbench.harness.cli import main
from genbench.harness.store.results import read_results
from genbench.harness.plan.resolve import resolve_study

pytestmark = pytest.mark.system  # processes killed, signals, nodes started, disks filled
XDIST_GROUP = "system"  # one at a time, on one pytest worker (tests/conftest.py)

STUDY = """
from genbench import Scale, Study
STUDY = Study(name="faults", method="dummy", data="mnist5k", seeds=(0,),
              train_grid={{"fail_at": [0, 6]}}, config={config},
              scales={{"smoke": Scale(budget_steps=10, n_samples=2, log_every=1)}})
"""


def write(tmp_path, **config):
    f = tmp_path / "faults.py"
    f.write_text(STUDY.format(config=repr(config)))
    return str(f)


def test_unreachable_address_fails_in_one_line_before_writing(tmp_path):
    out = tmp_path / "out"
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "genbench", "run", "ddpm_timesteps",
                           "--out", str(out), "--address", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60)
    assert time.monotonic() - start < 30
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("genbench: error: no Ray cluster answers at "
                                                   "127.0.0.1:1"), proc.stderr
    assert not out.exists()


def test_a_run_at_a_uri_matches_a_local_run_and_resumes(tmp_path, ray_local, capsys, monkeypatch):
    """`--out` as a pyarrow URI (file:// here; s3://, gs:// the same way): trials stage their
    files locally and push what they wrote or removed, the driver reads a mirror. A failure is
    recorded at the URI with its checkpoint, the rerun resumes from it and removes the failure
    row there, and the table equals a plain directory's."""
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    study = write(tmp_path, fail_times=1)
    remote = tmp_path / "bucket" / "run"
    uri = f"file://{remote}"
    assert main(["run", study, "--out", uri, "--max-failures", "0", "--no-report"]) == 1
    assert f"1 ok, 0 diverged, 1 failed, 0 missing; results in {uri}" in capsys.readouterr().out
    failed = list((remote / "results").glob("*.failed.parquet"))
    resume = list((remote / "checkpoints").glob("*.resume.pt"))
    assert len(failed) == 1 and len(resume) == 1 and len(list((remote / "errors").iterdir())) == 1
    # the rerun in this process: trials stage at a URI alike in either mode (Ray's, above)
    assert main(["run", study, "--out", uri, "--in-process"]) == 0
    out = capsys.readouterr().out
    assert f"2 ok, 0 diverged, 0 failed, 0 missing; results in {uri}" in out
    assert f"report: {uri}/report/index.html" in out and (remote / "report" / "index.html").is_file()
    page = (remote / "report" / "index.html").read_text()  # names the URI, not the local mirror
    assert f"<code>{uri}</code>" in page and f"--out {uri}-rerun" in page and "mirrors" not in page
    assert not failed[0].exists() and not resume[0].exists()  # removed at the URI too
    assert not list((remote / "errors").glob("*.txt"))  # the traceback of a failure that is over
    assert len(list((remote / "checkpoints").glob("*.pt"))) == 2 and (remote / "ray").is_dir()
    assert not list(remote.rglob("*.tmp-*")) and not list(remote.rglob("genbench.lock"))
    notes = read_results(remote).query("metric == 'train_s'").note.dropna()
    assert len(notes) == 1 and notes.iloc[0].startswith("resumed from the step-")
    local = tmp_path / "local"  # (in this process: the rows of a Ray run)
    assert main(["run", study, "--out", str(local), "--no-report", "--in-process"]) == 0
    pd.testing.assert_frame_equal(_stable(read_results(remote)), _stable(read_results(local)))
    capsys.readouterr()
    assert main(["run", study, "--out", uri, "--no-report"]) == 0
    assert "nothing to run" in capsys.readouterr().out
    assert main(["report", uri]) == 0


def test_a_uri_nothing_can_open_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    assert main(["run", "ddpm_timesteps", "--out", "nosuchfs://bucket/run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["genbench: error: cannot open --out nosuchfs://bucket/run: Unrecognized "
                   "filesystem type in URI: nosuchfs://bucket/run"]
    assert not any(tmp_path.iterdir())


def test_a_uri_holding_something_else_is_refused_before_it_is_copied(tmp_path, capsys,
                                                                    monkeypatch):
    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    (tmp_path / "bucket" / "data").mkdir(parents=True)
    (tmp_path / "bucket" / "data" / "table.parquet").write_bytes(b"not genbench's")
    uri = f"file://{tmp_path}/bucket/data"
    assert main(["run", "quickstart", "--out", uri, "--no-report"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{uri} is not empty and holds no genbench run" in err
    assert not list((tmp_path / "cache").rglob("table.parquet"))  # nothing copied
    assert (tmp_path / "bucket" / "data" / "table.parquet").read_bytes() == b"not genbench's"


def test_a_gcs_store_gives_up_retrying_within_seconds_not_minutes():
    """pyarrow's GCS client retries an unreachable or unauthorised store for 15 minutes: a
    `genbench report gs://...` with no network would look hung. genbench bounds it."""
    import datetime

    from genbench.harness.store.storage import GCS_RETRY_S, Remote

    for uri in ("gs://bucket/run", "gs://bucket/run?scheme=https"):
        options = Remote(uri).fs.__reduce__()[1][0]  # the options pyarrow rebuilds it from
        assert options["retry_time_limit"] == datetime.timedelta(seconds=GCS_RETRY_S) <= \
            datetime.timedelta(minutes=1)
    custom = Remote("gs://bucket/run?retry_limit_seconds=300").fs.__reduce__()[1][0]
    assert custom["retry_time_limit"] == datetime.timedelta(seconds=300)  # the user's own wins


def test_a_trial_that_fails_once_resumes_from_its_checkpoint(tmp_path, capsys, monkeypatch):
    # in this process (a trial retries where it runs, here or in Ray's worker), where the dummy
    # counts its planted failures per process: afresh, as in a new worker
    monkeypatch.setattr("genbench.methods.dummy._FAILURES", {})
    out = tmp_path / "once"
    assert main(["run", write(tmp_path, fail_times=1), "--out", str(out), "--no-report",
                 "--in-process"]) == 0
    df = read_results(out)
    assert "failed" not in set(df.metric) and not (out / "errors").exists()
    fits = df[df.metric == "train_s"]
    planted = fits.cell_json.map(lambda c: json.loads(c)["fail_at"] == 6)
    assert (fits[planted].note == "resumed from the step-5 checkpoint of a failed attempt").all()
    assert planted.sum() == 1 and fits[~planted].note.isna().all()
    assert not list((out / "checkpoints").glob("*.resume.pt"))  # removed once the fit is done
    # the resumed fit equals an uninterrupted one: the cell that never fails trains the same
    losses = df[df.metric == "final_loss"].value
    assert len(losses) == 2 and losses.iloc[0] == losses.iloc[1]
    means = [torch.load(p, weights_only=True)["mean"] for p in (out / "checkpoints").glob("*.pt")]
    assert len(means) == 2 and torch.equal(means[0], means[1])
    assert "study faults [smoke]: 2 ok, 0 diverged, 0 failed, 0 missing" in capsys.readouterr().out


def test_shared_workers_write_the_same_rows_and_say_so(tmp_path, ray_local):
    """--reuse-workers (Tune's reuse_actors) saves process starts; the rows are those of the
    same trials run one by one in this process, and CPU memory rows say that earlier trials
    shared the worker process."""
    from genbench.harness.run.ledger import scan
    from genbench.harness.run.driver import trial_env as _env
    from genbench.harness.plan.study import load_study
    from genbench.harness.run.trial import execute_trial

    study = tmp_path / "shared.py"
    study.write_text(STUDY.format(config="{}").replace("fail_at", "lr").replace("[0, 6]", "[0.5, 0.25]")
                     .replace("seeds=(0,)", "seeds=(0, 1)"))
    shared, alone = tmp_path / "shared", tmp_path / "alone"
    assert main(["run", str(study), "--out", str(shared), "--no-report", "--reuse-workers"]) == 0
    plan = resolve_study(load_study(str(study)), "smoke")
    for work in scan(alone, plan, echo=lambda _: None).work:
        execute_trial(plan, work, alone, _env(), torch.device("cpu"))
    a, b = read_results(shared), read_results(alone)
    pd.testing.assert_frame_equal(_stable(a), _stable(b))
    assert len(a) == len(b) and a.trial_id.nunique() == 4
    # what earlier trials left in a shared process is in the baseline rows, which say so; the
    # phases' increases are measured alike either way
    base = a[a.metric.isin(["mem_base_mb", "sample_mem_base_mb"])].protocol
    assert len(base) == 8 and base.str.contains("ran earlier trials too").all()
    assert not b[b.metric == "mem_base_mb"].protocol.str.contains("earlier trials").any()
    peaks = ["peak_mem_mb", "sample_peak_mem_mb"]
    assert set(a[a.metric.isin(peaks)].protocol) == set(b[b.metric.isin(peaks)].protocol)


def test_a_fit_that_diverges_after_a_failed_attempt_keeps_one_status_row(tmp_path):
    """Divergence is final: the failure row of an earlier attempt goes, as a success's would."""
    from genbench.harness.run.ledger import scan
    from genbench.harness.run.driver import trial_env as _env
    from genbench.harness.plan.study import load_study
    from genbench.harness.run.trial import execute_trial, record_failure

    plan = resolve_study(load_study(write(tmp_path, diverge_at=3)), "smoke")
    out, cpu = tmp_path / "out", torch.device("cpu")
    work = scan(out, plan, echo=lambda _: None).work[0]
    record_failure(plan, work.trial, out, _env(), cpu, RuntimeError("planted"), 2, "trace")
    assert execute_trial(plan, work, out, _env(), cpu).status == "diverged"
    rows = read_results(out)
    assert rows[rows.trial_id == work.trial.trial_id].metric.tolist() == ["diverged_at_step"]


def test_a_trial_that_always_fails_is_recorded_and_the_rest_finish(tmp_path, ray_local, capsys):
    out = tmp_path / "always"
    args = ["run", write(tmp_path, fail_times=99), "--out", str(out), "--no-report"]
    assert main(args) == 1
    captured = capsys.readouterr()
    df = read_results(out)
    failed = df[df.metric == "failed"]
    assert len(failed) == 1 and (failed.value == 2).all()  # two attempts (max_failures=1)
    assert failed.note.str.startswith("error: RuntimeError: planted failure at step 6").all()
    assert (failed.protocol == "error").all()
    for trial_id in failed.trial_id:
        trace = (out / "errors" / f"{trial_id}.txt").read_text()
        assert "Traceback" in trace and "planted failure" in trace
    ok = df[(df.metric == "nfe")]
    assert len(ok) == 1 and not set(ok.trial_id) & set(failed.trial_id)
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and all("RuntimeError: planted failure at step 6 (traceback: " in e
                                 for e in err)
    assert "Traceback" not in captured.err  # Tune's tracebacks stay out of the terminal
    assert "1 ok, 0 diverged, 1 failed, 0 missing" in captured.out
    from genbench.reports import write_report

    page = write_report([out]).read_text()  # the report lists the failure, not as missing work
    assert "failed after 2 attempts: error: RuntimeError: planted failure at step 6" in page
    assert f"fit {failed.trial_id.iloc[0]}" in page  # ... and still to run
    # a rerun that gives up at once still reports the whole study, and fails (in this
    # process: the counts are the driver's, whichever runs the trial)
    assert main([*args, "--max-failures", "0", "--in-process"]) == 1
    assert "1 ok, 0 diverged, 1 failed, 0 missing" in capsys.readouterr().out


LONG = """
from genbench import Scale, Study
STUDY = Study(name="long", method="dummy", data="mnist5k", seeds=(0, 1, 2),
              scales={"smoke": Scale(budget_steps=3000, n_samples=2, log_every=100)})
"""


def _stable(df):
    """The rows that do not depend on timing, in a fixed order."""
    keep = df[df.metric.isin(["final_loss", "n_params", "nfe"])]
    return keep.sort_values(["trial_id", "metric"])[["trial_id", "metric", "value"]].reset_index(drop=True)


def _session_of(driver: subprocess.Popen, before: set) -> str:
    """The Ray session the driver started: Ray names it after the process that started it
    (other tests' sessions may appear meanwhile, on the other pytest worker)."""
    mine = [p for p in set(Path("/tmp/ray").glob("session_2*")) - before
            if p.name.endswith(f"_{driver.pid}")]
    assert len(mine) == 1, mine
    return str(mine[0])


def test_sigkill_of_the_driver_leaves_no_process_and_a_rerun_finishes(tmp_path, ray_local):
    from genbench.harness.run.reaper import session_processes

    study = tmp_path / "long.py"
    study.write_text(LONG)
    out = tmp_path / "killed"
    before = set(Path("/tmp/ray").glob("session_2*"))
    driver = subprocess.Popen([sys.executable, "-m", "genbench", "run", str(study), "--out",
                               str(out), "--no-report"], stdout=subprocess.PIPE, text=True)
    for line in driver.stdout:  # kill it once the first trial is done and others run
        if line.lstrip().startswith("[1/3]"):
            break
    session = _session_of(driver, before)
    driver.send_signal(signal.SIGKILL)
    driver.wait(timeout=10)
    deadline = time.monotonic() + 10
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not session_processes(session), "a process of the run outlived its driver by 10 s"
    done = set(read_results(out).trial_id)
    assert 1 <= len(done) < 3
    assert main(["run", str(study), "--out", str(out), "--no-report"]) == 0  # the rest only
    ref = tmp_path / "ref"  # (uninterrupted, in this process: the rows of a Ray run)
    assert main(["run", str(study), "--out", str(ref), "--no-report", "--in-process"]) == 0
    pd.testing.assert_frame_equal(_stable(read_results(out)), _stable(read_results(ref)))


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_or_ctrl_c_stops_a_run_in_one_line_and_releases_everything(sig, code, tmp_path):
    """Ray's init makes SIGTERM a bare exit and Tune's handler turns Ctrl-C into errored
    trials; the driver keeps both: one line, exit 143 (SIGTERM) or 130 (SIGINT, even when it
    started ignored, as a background job of a script does), the lock released, the report
    refreshed with what is still to run, and Ray's processes gone (done work is kept: the
    SIGKILL test reruns)."""
    from genbench.harness.run.reaper import session_processes

    study = tmp_path / "long.py"
    study.write_text(LONG.replace("budget_steps=3000", "budget_steps=10_000_000"))
    out = tmp_path / "stopped"
    before = set(Path("/tmp/ray").glob("session_2*"))
    driver = subprocess.Popen([sys.executable, "-m", "genbench", "run", str(study), "--out",
                               str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    for line in driver.stdout:
        if line.lstrip().startswith("started"):
            break
    time.sleep(2)  # the trial is training
    driver.send_signal(sig)
    assert driver.wait(timeout=60) == code
    err = driver.stderr.read().strip()
    assert len(err.splitlines()) == 1 and "interrupted; rerun the same command" in err, err
    assert not (out / "genbench.lock").exists()
    assert "missing (rerun the same command to resume)" in (out / "report" / "index.html").read_text()
    session = _session_of(driver, before)
    deadline = time.monotonic() + 10
    while session_processes(session) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not session_processes(session), "a process of the run outlived its driver by 10 s"


def test_a_two_node_cluster_with_token_authentication(tmp_path):
    """Two Ray nodes started with `ray start` on this machine, token authentication on: without
    the token genbench fails in one line, with it the study runs on both nodes."""
    import secrets
    import shutil
    import tempfile

    from genbench.harness.run.reaper import kill_session

    ray_cli = str(Path(sys.executable).parent / "ray")
    token = secrets.token_hex(32)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="gbray", dir="/tmp")  # short: Ray's socket paths live here
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    no_token = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    study = tmp_path / "two.py"
    study.write_text(STUDY.format(config="{}").replace("fail_at", "lr").replace("[0, 6]", "[0.5]")
                     .replace("seeds=(0,)", "seeds=(0, 1)"))  # one trial per node, at once
    try:
        common = ["--num-cpus=1", "--disable-usage-stats"]
        subprocess.run([ray_cli, "start", "--head", f"--port={port}", "--include-dashboard=false",
                        f"--temp-dir={temp}", *common], env=env, check=True, timeout=120,
                       capture_output=True)
        # the worker node gets its own mount namespace where `hidden` is an empty tmpfs: a path
        # under it is node-local, as a local disk is on a real cluster
        hidden = tmp_path / "hidden"
        hidden.mkdir()
        worker = [ray_cli, "start", f"--address=127.0.0.1:{port}", *common]
        private = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                                  f'mount -t tmpfs none "{hidden}" && exec "$@"', "sh", *worker],
                                 env=env, timeout=120, capture_output=True)
        if private.returncode != 0:  # no mount namespaces here: a plain worker node
            subprocess.run(worker, env=env, check=True, timeout=120, capture_output=True)
        run = [sys.executable, "-m", "genbench", "run", str(study), "--no-report",
               "--address", f"127.0.0.1:{port}"]
        refused = subprocess.run([*run, "--out", str(tmp_path / "refused")], env=no_token,
                                 capture_output=True, text=True, timeout=60)
        assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
        assert "refused genbench's authentication token" in refused.stderr
        assert not (tmp_path / "refused").exists()
        out = tmp_path / "two"
        ok = subprocess.run([*run, "--out", str(out)], env=env, capture_output=True, text=True,
                            timeout=300)
        assert ok.returncode == 0, ok.stderr[-2000:]
        assert "on 2 nodes" in ok.stdout
        df = read_results(out)
        assert df.node.nunique() == 2 and df.trial_id.nunique() == 2
        # every node was asked to see --out (one machine: they do), and the marker is gone
        assert not list(tmp_path.rglob(".genbench-shared-*"))
        assert "Traceback" not in ok.stderr and "tensorboard" not in ok.stdout.lower()
        # the packing view of that cluster, with a calibration run on it
        plan = [sys.executable, "-m", "genbench", "plan", str(study),
                "--address", f"127.0.0.1:{port}"]
        shown = subprocess.run([*plan, "--calibrate", "3"], env=env, capture_output=True,
                               text=True, timeout=120)
        assert shown.returncode == 0, shown.stderr[-2000:]
        assert shown.stdout.count("1 CPU, 0 GPU: up to 1 trial at once") == 2
        assert "2 trials, 2 at once; estimated wall time ~" in shown.stdout
        # a trial bigger than any node (tests/test_packing.py shows the plan's why): refused
        too_big = subprocess.run([*run, "--out", str(tmp_path / "big"), "--set", "cpu=2"],
                                 env=env, capture_output=True, text=True, timeout=60)
        assert too_big.returncode == 2 and len(too_big.stderr.strip().splitlines()) == 1
        assert "can never start on the cluster at 127.0.0.1" in too_big.stderr
        if private.returncode == 0:  # a node-local --out is refused before any trial starts
            local = subprocess.run([*run, "--out", str(hidden / "out")], env=env,
                                   capture_output=True, text=True, timeout=60)
            assert local.returncode == 2, local.stderr[-2000:]
            line, = local.stderr.strip().splitlines()
            assert re.fullmatch(rf"genbench: error: --out {hidden / 'out'} is not visible from 1 "
                                r"of 2 nodes \([0-9.]+\); on a cluster give a path every node "
                                r"mounts \(NFS or similar\)", line), line
            assert not (hidden / "out").exists() and not list(hidden.iterdir())
    finally:
        kill_session(temp)
        shutil.rmtree(temp, ignore_errors=True)


def test_a_cross_seed_evaluation_that_fails_is_one_line_and_the_others_go_on(
        tmp_path, monkeypatch, capsys):
    """One failing pair never stops the others, fails the run's exit status and is tried
    again; a refit's pairs too."""
    from genbench.harness.run.ledger import scan
    from genbench.harness.run.driver import study_status
    from genbench.harness.plan.study import load_study
    from genbench.methods.gan import GAN

    calls = []

    def flaky(self, other, real, *, seed):
        calls.append(seed)
        if len(calls) == 1:
            raise RuntimeError("planted cross failure")
        return {"d_accuracy": {"value": 0.5, "protocol": "planted"}}

    monkeypatch.setattr(GAN, "cross_evaluate", flaky)
    f = tmp_path / "cross.py"
    f.write_text("from genbench import Scale, Study\n"
                 "STUDY = Study(name='cross', method='gan', data='mnist5k', seeds=(0, 1),\n"
                 "              config=dict(z_dim=8, n_feat=4, batch_size=8), metrics=(),\n"
                 "              scales={'smoke': Scale(budget_steps=2, n_samples=2, log_every=1)})\n")
    out_dir = tmp_path / "out"  # (in this process: the driver evaluates the pairs either way)
    assert main(["run", str(f), "--out", str(out_dir), "--no-report", "--in-process"]) == 1
    out = capsys.readouterr().out
    assert "failed: RuntimeError: planted cross failure (the next run tries it again)" in out
    assert "cross-seed evaluations: 1 of 2 written; 1 failed" in out and len(calls) == 2
    assert "2 ok, 0 diverged, 0 failed, 0 missing, 1 cross-seed evaluations missing" in out
    plan = resolve_study(load_study(str(f)), "smoke")
    assert len(scan(out_dir, plan, echo=lambda _: None).cross) == 1  # the failed pair, again
    ckpt = out_dir / "checkpoints" / f"{plan.trials[1].trial_id}.pt"  # deleted to save disk:
    ckpt.rename(ckpt.with_suffix(".away"))  # its pairs cannot be measured, nor fail each rerun
    assert study_status(plan, out_dir).complete
    ckpt.with_suffix(".away").rename(ckpt)
    assert study_status(plan, out_dir).cross_missing == 1
    assert main(["run", str(f), "--out", str(out_dir), "--no-report", "--in-process"]) == 0  # now
    assert "cross-seed evaluations: 1 of 1 written" in capsys.readouterr().out
    # a fit trained again (its checkpoint is gone): both its pairs judged the old model
    first = plan.trials[0].trial_id
    (out_dir / "checkpoints" / f"{first}.pt").unlink()
    (out_dir / "results" / f"{first}.fit.parquet").unlink()
    ledger = scan(out_dir, plan, echo=lambda _: None)
    assert [w.trial.trial_id for w in ledger.work if w.fit] == [first]
    assert len(ledger.cross) == 2 and all(first in {a.trial_id, b.trial_id} for a, b in ledger.cross)


def test_a_trial_at_a_uri_pushes_its_checkpoints_and_rows_as_it_writes_them(tmp_path, monkeypatch):
    """A process that dies mid-trial (OOM kill, preemption) loses no finished work at a URI:
    each training checkpoint, the fit and each setting reach the URI when written."""
    from genbench.harness.run.ledger import scan
    from genbench.harness.run.driver import trial_env as _env
    from genbench.harness.store.storage import Remote, Stage
    from genbench.harness.plan.study import load_study
    from genbench.harness.run.trial import execute_trial

    monkeypatch.setenv("GENBENCH_CACHE", str(tmp_path / "cache"))
    plan = resolve_study(load_study(write(tmp_path)), "smoke")
    uri = f"file://{tmp_path / 'bucket' / 'run'}"
    work = scan(tmp_path / "empty", plan, echo=lambda _: None).work[0]
    stage, seen = Stage(uri, work.trial.trial_id), []

    def sync():
        stage.sync()
        seen.append(set(Remote(uri).listing()))

    execute_trial(plan, work, stage.path, _env(), torch.device("cpu"), sync)
    trial = work.trial.trial_id
    resume = f"checkpoints/{trial}.resume.pt"
    mid_fit = [s for s in seen if resume in s]
    assert mid_fit and not any(f"results/{trial}.fit.parquet" in s for s in mid_fit)
    assert f"results/{trial}.fit.parquet" in seen[-1] and resume not in seen[-1]
    assert any(r.startswith(f"results/{trial}.") and r.count(".") == 3 for r in seen[-1])  # a setting
    stage.finish()
    assert not stage.path.exists()


def test_a_killed_worker_is_one_genbench_line_and_the_retry_finishes(tmp_path):
    """The worker process of a running trial is killed (as the OOM killer or a lost node
    would): the console gets one genbench line for it, none of Ray's, the counts stay whole,
    and Tune's restart finishes the trial from its own files."""
    from genbench.harness.run.reaper import _processes, session_processes

    study = tmp_path / "long.py"
    # 1,500 steps of 5 ms: a fit of at least 7.5 s, still training when it is killed about 3 s
    # after its start (a fit of plain dummy steps could end within the seconds the test waits)
    study.write_text(LONG.replace("seeds=(0, 1, 2)", "seeds=(0,), config={'sleep_s': 0.005}")
                     .replace("budget_steps=3000", "budget_steps=1500"))
    out = tmp_path / "out"
    before = set(Path("/tmp/ray").glob("session_2*"))
    driver = subprocess.Popen([sys.executable, "-m", "genbench", "run", str(study), "--out",
                               str(out), "--no-report"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    lines = []
    for line in driver.stdout:
        lines.append(line)
        if line.lstrip().startswith("started"):
            break
    session = _session_of(driver, before)
    workers, deadline = [], time.monotonic() + 60
    while not workers and time.monotonic() < deadline:  # the actor names itself once it runs
        time.sleep(1)                                    # the trial: seconds after "started"
        procs = _processes()
        workers = [p for p in session_processes(session) if "ImplicitFunc" in procs.get(p, (0, ""))[1]]
    assert workers, "no trial worker found within 60 s of its start"
    time.sleep(2)  # training
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    out_text, err = driver.communicate(timeout=300)
    out_text = "".join(lines) + out_text
    assert driver.returncode == 0, err
    assert "its worker died; retrying 1/1" in out_text
    assert "1 ok, 0 diverged, 0 failed, 0 missing" in out_text
    assert "pending" in out_text and "-1 pending" not in out_text
    assert not err.strip(), err  # nothing of Ray's on the console

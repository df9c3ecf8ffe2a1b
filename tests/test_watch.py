"""Watching a run (docs/results.md, Watching a run): trials named by arm, grid values and seed;
the time left from each arm's measured trial times; `genbench status` beside a running study
and at a URI; each trial's output in logs/<trial>.log; and the command line's own words
(did-you-mean, counts, every --help with examples and exit status)."""

import json
import re
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from genbench.harness.cli import EPILOGS, main
from genbench.harness.run.progress import Progress


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def _trials(*spec):
    return [SimpleNamespace(trial_id=f"{arm}{i}-s0", name=f"{arm} #{i} s0", arm=arm)
            for arm, n in spec for i in range(n)]


def test_the_time_left_comes_from_each_arms_own_trials(monkeypatch):
    """A dummy trial of a second says nothing of a DDPM trial of minutes: until a DDPM trial
    has ended, its trials are said to be untimed, never guessed from the dummy's."""
    clock = Clock()
    monkeypatch.setattr("genbench.harness.run.progress.time.monotonic", clock)
    lines, states = [], []
    p = Progress(_trials(("dummy", 2), ("ddpm", 2)), lines.append, snapshot=states.append)
    p.started("dummy0-s0")
    assert lines[-1] == "  started  dummy #0 s0  [dummy0-s0]"
    clock.now += 1
    p.finished("dummy0-s0", "ok", "")
    assert lines[-1].endswith("| 0 running, 3 pending, ~1s left + 2 ddpm trials not yet timed")
    p.started("ddpm0-s0")
    p.started("dummy1-s0")
    clock.now += 1
    p.finished("dummy1-s0", "ok", "")
    assert lines[-1].endswith("time left unknown: 2 ddpm trials not yet timed")
    clock.now += 599  # the first DDPM trial took 600 s; two ran at once
    p.finished("ddpm0-s0", "ok", "")
    assert lines[-1] == "  [3/4] ddpm #0 s0 ok | 0 running, 1 pending, ~5 min left"  # 600 s / 2
    p.started("ddpm1-s0")
    clock.now += 500
    assert p.time_left() == "~50s left"  # what its mean leaves, over the two at once seen
    p.finished("ddpm1-s0", "failed", "boom")
    assert lines[-1].endswith("| 0 running, 0 pending, none left")
    # the state `genbench status` reads: written at every start and end
    assert states[-1]["total"] == 4 and states[-1]["ended"] == {"ok": 3, "failed": 1}
    assert states[-1]["running"] == [] and json.dumps(states[-1])


def test_a_silent_trial_says_its_step_loss_and_rate():
    clock_lines = []
    p = Progress(_trials(("ddpm", 1)), clock_lines.append, heartbeat_s=0.5)
    p.started("ddpm0-s0")
    p.heard("ddpm0-s0", {"phase": "fit", "step": 300, "steps": 625, "wall_s": 60.0,
                         "images_per_s": 160.0, "loss": 0.0412})
    time.sleep(0.6)
    p.tick()
    assert clock_lines[-1] == ("  ddpm #0 s0: still training: step 300/625, loss 0.0412, "
                               "160 images/s (60s in)")
    running = p.state()["running"]
    assert running[0]["name"] == "ddpm #0 s0" and running[0]["where"].startswith("training: step 300/625")


@pytest.mark.parametrize("args,hint", [
    (["run", "quickstrt"], "unknown study 'quickstrt' (did you mean 'quickstart'?)"),
    (["plan", "quickstart", "--scale", "smok"], "unknown scale 'smok' for study 'quickstart' "
                                                "(did you mean 'smoke'?)"),
    (["plan", "quickstart", "--set", "n_fet=4"], "unknown key 'n_fet' (did you mean 'n_feat'?)"),
    (["plan", "quickstart", "--set", "data=mnist5"], "unknown data set 'mnist5' (did you mean "
                                                     "'mnist5k'?)"),
    (["plan", "quickstart", "--set", "metrics=[fid_domian]"], "(did you mean 'fid_domain'?)"),
    (["plan", "quickstart", "--set", "ddpm.schedule=cosin"], "(did you mean 'cosine'?)"),
    (["plan", "quickstart", "--set", "temperature=2"], "unknown key 'temperature'; valid:"),
])
def test_a_mistyped_name_gets_the_closest_valid_one(args, hint, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and hint in err, err


def test_an_unknown_method_hints_at_the_closest(tmp_path, capsys):
    f = tmp_path / "typo.py"
    f.write_text("from genbench import Scale, Study\n"
                 "STUDY = Study(name='typo', method='ddmp', data='mnist5k',\n"
                 "              scales={'smoke': Scale(budget_steps=2, n_samples=2)})\n")
    assert main(["plan", str(f)]) == 2
    assert "unknown method 'ddmp' (did you mean 'ddpm'?)" in capsys.readouterr().err


def test_counts_take_their_number_and_a_pinned_axis_is_said_once(capsys):
    assert main(["plan", "quickstart", "--set", "seeds=[0]", "--set", "steps=5"]) == 0
    out = capsys.readouterr().out
    assert "1 train cell x 1 seed = 1 trial; 1 sample setting each" in out
    assert "merged: ddim: --set steps pins the sample grid: its 3 settings are 1 setting" in out
    assert "merged: consistency: --set steps pins the sample grid: its 2 settings are 1 setting" in out
    assert "is the same as" not in out
    assert "up to 2 trials at once" in out and "5 trials, 2 at once, 3 waves" in out  # (+ real)


@pytest.mark.parametrize("command", sorted(EPILOGS))
def test_every_help_has_its_exit_status_and_examples(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert "exit status:" in out and ("examples:" in out or command == "list")
    default = {"run": r"smoke", "plan": r"smoke", "compare": r"0\.05"}.get(command)
    assert default is None or re.search(rf"\(default:\s+{default}\)", out), out


SLOW = """
from genbench import Arm, Scale, Study
STUDY = Study(name="slow", data="mnist5k", metrics=(),
              arms=(Arm("quick", "dummy"), Arm("slow", "dummy", config=dict(sleep_s=0.04))),
              scales={"smoke": Scale(budget_steps=200, n_samples=2, log_every=10)})
"""


def _status(out, capsys):
    code = main(["status", str(out)])  # (here; the driver is another process)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.e2e
def test_status_of_a_running_study_and_after_it(tmp_path, monkeypatch, capsys):
    """From another process while it runs: the driver, the counts, each running trial by name
    with its step, the time left; after: the counts from the ledger, nothing running; at a
    URI the same counts. The run's trials left their output in logs/."""
    study = tmp_path / "slow.py"
    study.write_text(SLOW)
    out = tmp_path / "out"
    monkeypatch.setenv("GENBENCH_HEARTBEAT_S", "1")
    driver = subprocess.Popen([sys.executable, "-m", "genbench", "run", str(study), "--out",
                               str(out), "--in-process", "--no-report"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            code, seen, err = _status(out, capsys)
            if "running  slow" in seen and "training: step" in seen:
                break
            time.sleep(0.5)
        assert driver.poll() is None, "the run ended before status saw it running"
        assert code == 1, err
        assert "study slow [smoke] at" in seen and ": running: driver pid" in seen
        assert "2 trials: 1 ok" in seen and "(1 running)" in seen
        assert "~1s left + 1 slow trial not yet timed" in seen or "time left unknown" in seen
    finally:
        stdout, stderr = driver.communicate(timeout=300)
    assert driver.returncode == 0, stderr[-2000:]
    assert "started  slow s0  [" in stdout and "| 1 running" not in stdout  # one at a time
    assert "slow s0: still training: step" in stdout and " images/s (" in stdout
    code, done, _ = _status(out, capsys)
    assert code == 0 and "not running (no driver holds its lock)" in done
    assert "2 trials: 2 ok, 0 diverged, 0 failed, 0 left" in done
    assert not (out / "progress.json").exists()
    logs = sorted(p.name for p in (out / "logs").iterdir())
    assert len(logs) == 2 and (out / "logs" / logs[0]).read_text().startswith("== ")
    code, remote, _ = _status(f"file://{out}", capsys)
    assert code == 0 and "2 trials: 2 ok" in remote and "not running (no driver's progress.json" in remote


def test_status_of_something_else_is_one_line(tmp_path, capsys):
    assert main(["status", str(tmp_path / "nothing")]) == 2
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(x.startswith("genbench: error: ") for x in err)

"""The command line: bad input gives one line on stderr, a non-zero exit, and no output."""

import subprocess
import sys

import pytest

from harness.cli import main


@pytest.mark.parametrize("argv,match", [
    (["run", "nope"], "unknown study 'nope'"),
    (["run", "quickstart", "--set", "frobnicate=1"], "unknown key 'frobnicate'"),
    (["run", "quickstart", "--set", "schedule=quad"], "invalid value 'quad' for schedule"),
    (["run", "quickstart", "--set", "clip_x0=maybe"], "expected true or false"),
    (["run", "quickstart", "--set", "data=imagenet"], "unknown data set 'imagenet'"),
    (["run", "quickstart", "--set", "data=folder:/no/such/dir"], "does not exist"),
    (["run", "quickstart", "--scale", "huge"], "unknown scale 'huge'"),
    (["run", "quickstart", "--set", "seeds"], "malformed --set"),
])
def test_bad_input(argv, match, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and err.startswith("genbench: error:")
    assert not out.exists()


def test_bad_method_in_a_study_file(tmp_path, capsys):
    f = tmp_path / "s.py"
    f.write_text("from harness.study import Study, Scale\n"
                 "STUDY = Study(name='s', method='gan9', data='mnist5k',"
                 " scales={'smoke': Scale(budget_steps=2, n_samples=2)})\n")
    assert main(["run", str(f), "--out", str(tmp_path / "out")]) == 2
    assert "unknown method 'gan9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_console_script_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", "nope", "--out",
                           str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert not (tmp_path / "o").exists()


def test_list_and_plan(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "ddpm" in out and "quickstart" in out and "mnist5k" in out
    assert main(["plan", "ddpm_timesteps", "--set", "seeds=[0,1,2]"]) == 0
    out = capsys.readouterr().out
    assert "3 train cells x 3 seeds = 9 trials" in out and "9 trials, 2 at once, 5 waves" in out

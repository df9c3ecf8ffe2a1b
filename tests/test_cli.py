"""The command line: bad input gives one line on stderr, a non-zero exit, and no output."""

import subprocess
import sys

import pytest

from genbench.harness.cli import main


@pytest.mark.parametrize("argv,match", [
    (["run", "nope"], "unknown study 'nope'"),
    (["run", "quickstart", "--set", "frobnicate=1"], "unknown key 'frobnicate'"),
    (["run", "quickstart", "--set", "schedule=quad"], "invalid value 'quad' for schedule"),
    (["run", "quickstart", "--set", "clip_x0=maybe"], "expected true or false"),
    (["run", "quickstart", "--set", "data=imagenet"], "unknown data set 'imagenet'"),
    (["run", "quickstart", "--set", "data=folder:/no/such/dir"], "does not exist"),
    (["run", "quickstart", "--scale", "huge"], "unknown scale 'huge'"),
    (["run", "quickstart", "--set", "seeds"], "malformed --set"),
    (["run", "quickstart", "--set", "data=5"], "invalid value 5 for data; expected a string"),
    (["run", "quickstart", "--set", "resolution=-8"], "for resolution; expected an integer from 4"),
    (["run", "quickstart", "--set", "resolution=abc"], "for resolution; expected an integer from 4"),
    (["run", "quickstart", "--set", "resolution=100000"], "expected an integer from 4 to 512"),
    (["run", "quickstart", "--set", "lr={[1]:2}"], "invalid value '{[1]:2}' for lr"),
    (["run", "quickstart", "--set", "seeds=none"], "None for seeds; expected integers of"),
    (["run", "quickstart", "--set", "seeds=1.5"], "1.5 for seeds; expected integers of"),
    (["run", "quickstart", "--set", "seeds=[18446744073709551616]"], "magnitude below 2**62"),
    (["run", "quickstart", "--set", "budget_kimg=1e400"], "inf for budget_kimg; expected a finite"),
    (["run", "quickstart", "--set", "ch_mult=[0]"], "ch_mult must be one or more integers >= 1"),
    (["run", "quickstart", "--set", "dropout=2"], "dropout must be in [0, 1), got 2.0"),
    (["run", "quickstart", "--address", "a..b:6379"], "no Ray cluster answers at a..b:6379"),
    (["run", "quickstart", "--scale", "train", "--set", "resolution=29"],
     "side (29x29) must be divisible by 2"),
    (["run", "quickstart", "--scale", "train", "--set", "ch_mult=[1,2,2,2]"],
     "side (28x28) must be divisible by 8"),
    (["run", "quickstart", "--set", "ch_mult=[1,2,2,2]"],  # the zoo's models: as trained
     "starts from 'ddpm_linear', trained with ch_mult=[1, 2, 2]; the arm asks ch_mult=[1, 2, 2, 2]"),
    (["run", "dcgan_svhn", "--set", "resolution=30"], "dcgan needs square images whose side"),
    (["run", "gan_regularisation", "--set", "resolution=6"], "gan needs square images of side"),
])
def test_bad_input(argv, match, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and match in err and err.startswith("genbench: error:")
    assert not out.exists()


def test_bad_method_in_a_study_file(tmp_path, capsys):
    f = tmp_path / "s.py"
    f.write_text("from genbench import Study, Scale\n"
                 "STUDY = Study(name='s', method='gan9', data='mnist5k',"
                 " scales={'smoke': Scale(budget_steps=2, n_samples=2)})\n")
    assert main(["run", str(f), "--out", str(tmp_path / "out")]) == 2
    assert "unknown method 'gan9'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


SCALES = "scales={'smoke': Scale(budget_steps=2, n_samples=2)}"


@pytest.mark.parametrize("declaration,match", [
    (f"method='dummy', data=5, {SCALES}", "invalid value 5 for Study.data; expected a string"),
    (f"data='mnist5k', arms=('dummy',), {SCALES}", "for Study.arms; expected Arm(...)"),
    (f"method='dummy', data='mnist5k', train_grid='lr', {SCALES}", "for Study.train_grid"),
    ("method='dummy', data='mnist5k', scales={'smoke': {'budget_steps': 2}}",
     "for Study.scales['smoke']; expected Scale(...)"),
    ("method='dummy', data='mnist5k', scales={}", "declares no scales"),
    (f"method='dummy', data='mnist5k', imports='numpy', {SCALES}",
     "'numpy' for Study.imports; expected tuple[str, ...]"),
    ("method='dummy', data='mnist5k', scales={'smoke': Scale(budget_steps=2, n_samples=2, "
     "config={'seeds': [1]})}", "'seeds' is not a Scale.config key but a field of Scale"),
    (f"method='dummy', data='mnist5k', resolution=-8, {SCALES}", "-8 for resolution"),
    (f"method='dummy', data='mnist5k', {SCALES}); raise RuntimeError('boom\\nsecond line'",
     "RuntimeError: boom"),
    (f"method='dummy', data='mnist5k', {SCALES}); import sys; sys.exit(0", "SystemExit"),
])
def test_a_study_file_of_the_wrong_shape_fails_in_one_line(declaration, match, tmp_path, capsys):
    f = tmp_path / "s.py"
    f.write_text(f"from genbench import Arm, Scale, Study\nSTUDY = Study(name='s', {declaration})\n")
    for command in ("plan", "run"):
        out = tmp_path / "out"
        assert main([command, str(f), *(["--out", str(out)] if command == "run" else [])]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and match in err, err
        assert not out.exists()


def test_paths_of_the_wrong_kind_are_refused_before_anything_is_written(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    for argv in (["run", "quickstart", "--out", str(a_file)],
                 ["run", "quickstart", "--out", str(tmp_path / "out"), "--storage", str(a_file)],
                 ["plan", str(tmp_path)],
                 ["compare", str(tmp_path), str(tmp_path), "--alpha", "2"]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("genbench: error:"), err
    assert a_file.read_text() == "mine" and not (tmp_path / "out").exists()


def test_an_out_directory_that_is_not_a_run_is_refused_and_left_alone(tmp_path, capsys):
    """The ledger would take a Parquet file there for a results file and move it aside."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "table.parquet").write_bytes(b"not genbench's")
    assert main(["run", "quickstart", "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "holds no genbench run" in err and "table.parquet" in err
    assert [p.name for p in mine.iterdir()] == ["table.parquet"]
    (mine / "results").mkdir()  # nor is a results/ folder of files genbench cannot read
    (mine / "table.parquet").rename(mine / "results" / "table.parquet")
    assert main(["run", "quickstart", "--out", str(mine)]) == 2
    assert "holds no genbench run" in capsys.readouterr().err
    assert [p.name for p in (mine / "results").iterdir()] == ["table.parquet"]


def test_console_script_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "genbench", "run", "nope", "--out",
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
    assert "3 train cells x 3 seeds = 9 trials" in out
    # and the real-data floor, a trial per seed: 12 trials
    assert "arm real (method real, 1 step): 1 train cell x 3 seeds = 3 trials" in out
    assert "12 trials, 2 at once, 6 waves" in out


def test_a_plan_of_many_seeds_prints_a_summary_and_verbose_every_trial(tmp_path, capsys):
    f = tmp_path / "many.py"
    f.write_text("from genbench import Scale, Study\n"
                 "STUDY = Study(name='many', method='dummy', data='mnist5k', seeds=tuple(range(300)),"
                 " train_grid={'lr': [0.1, 0.2]},"
                 " scales={'smoke': Scale(budget_steps=2, n_samples=2)})\n")
    assert main(["plan", str(f)]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) < 15
    assert "2 train cells x 300 seeds = 600 trials" in out
    assert "cell lr=0.1: 300 seeds (0-299)" in out and "--verbose lists every trial" in out
    assert main(["plan", str(f), "--verbose"]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("  trial ") for line in out.splitlines()) == 600


def test_help_and_list_load_neither_torch_nor_ray_nor_pandas():
    """Commands that train nothing answer at once: the registries list names from the entry
    points without importing what they name, and torch, scipy and pandas load where used."""
    code = ("import contextlib, io, sys; from genbench.harness.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    main(['list'])\n"
            "    try: main(['--help'])\n"
            "    except SystemExit: pass\n"
            "assert 'ddpm' in out.getvalue() and 'fid_domain' in out.getvalue()\n"
            "print(sorted(m for m in ('torch', 'ray', 'pandas', 'scipy.stats') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"

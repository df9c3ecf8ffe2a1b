"""The public facade, `genbench`: what users import and call. Its names resolve, importing it
costs neither torch nor Ray, and `run`, `load` and `plan` behave as the command line does."""

import subprocess
import sys
import textwrap

import pytest

import genbench
from genbench.harness.errors import GenbenchError


def test_every_exported_name_resolves_and_nothing_else_does():
    for name in genbench.__all__:
        assert getattr(genbench, name) is not None, name
    assert genbench.Study.__module__ == "genbench.harness.plan.study"
    assert genbench.Plan.__module__ == "genbench.harness.plan.plan"
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        genbench.Nope  # noqa: B018


def test_importing_genbench_loads_neither_torch_nor_ray():
    probe = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys, genbench
        print(genbench.__version__, "torch" in sys.modules, "ray" in sys.modules)
    """)], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == [genbench.__version__, "False", "False"]


def test_version_and_a_bare_command(capsys):
    from genbench.harness.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"genbench {genbench.__version__}"
    assert main([]) == 0  # a bare `genbench` prints help, and that is not an error
    out = capsys.readouterr().out
    assert out.startswith("usage: genbench") and "{run,claims,report,status,compare,history,plan,list,assets}" in out


def test_plan_takes_a_name_a_path_or_a_study_and_sets_as_dict_or_text(tmp_path):
    p = genbench.plan("quickstart", sets={"seeds": [0, 1]})
    assert isinstance(p, genbench.Plan) and {t.seed for t in p.trials} == {0, 1}
    assert genbench.plan("quickstart", sets=["seeds=[0,1]"]) == p
    study = genbench.Study(name="mine", method="dummy", data="mnist5k",
                           sample_grid={"noise": [0.1, 0.5]},
                           scales={"smoke": genbench.Scale(budget_steps=2, n_samples=4)})
    assert len(genbench.plan(study).samples) == 2
    f = tmp_path / "mine.py"
    f.write_text("from genbench import Scale, Study\n"
                 "STUDY = Study(name='mine', method='dummy', data='mnist5k',"
                 " scales={'smoke': Scale(budget_steps=2, n_samples=4)})\n")
    assert genbench.plan(str(f)).study == "mine"
    with pytest.raises(GenbenchError, match="unknown study 'nope'"):
        genbench.plan("nope")
    with pytest.raises(GenbenchError, match="unknown key 'n_layers'; valid: budget_steps"):
        genbench.plan(study, sets={"n_layers": 3})


def test_the_study_files_in_readme_and_docs_plan_as_written(tmp_path):
    """Every complete study file the README and docs/studies.md show resolves unchanged."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    blocks = [b for doc in ("README.md", "docs/studies.md")
              for b in re.findall(r"```python\n(.*?)```", (root / doc).read_text(), re.S)
              if "STUDY = Study(" in b and "from genbench import" in b]
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        f = tmp_path / f"doc_{i}.py"
        f.write_text(block)
        assert genbench.plan(str(f)).trials, block[:80]


def test_load_of_a_directory_that_is_not_a_run_fails_in_one_line(tmp_path):
    with pytest.raises(GenbenchError, match="is not a run's output directory"):
        genbench.load(tmp_path / "nothing")


@pytest.mark.e2e
def test_run_returns_the_rows_and_load_reads_them_back(tmp_path):
    from genbench.harness.store.results import REAL_ARM

    study = genbench.Study(name="api", method="dummy", data="mnist5k", seeds=(0, 1),
                           sample_grid={"noise": [0.1, 0.5]}, metrics=("fid_domain",),
                           scales={"smoke": genbench.Scale(budget_steps=2, n_samples=16)})
    lines = []
    rows = genbench.run(study, out=tmp_path / "out", echo=lines.append, in_process=True)
    own = rows[rows.arm != REAL_ARM]  # (the real-data floor's arm measures fid_domain beside it)
    assert len(own[own.metric == "fid_domain"]) == 4 and set(own.seed) == {0, 1}
    assert set(rows.arm) == {"dummy", REAL_ARM}
    assert any("ledger:" in line for line in lines)
    again = genbench.run(study, out=tmp_path / "out", echo=lines.append,  # resumes: nothing
                         in_process=True)                                 # to do
    assert len(again) == len(rows) and any("to run: 0 fits" in line for line in lines[-3:])
    assert genbench.load(tmp_path / "out").sort_values(["trial_id", "metric", "setting_json"]) \
        .reset_index(drop=True).equals(rows.sort_values(["trial_id", "metric", "setting_json"])
                                       .reset_index(drop=True))


def test_claims_and_compare_return_the_command_lines_verdicts_as_objects(capsys):
    """`genbench.claims` and `genbench.compare` are what `genbench claims` and `genbench compare`
    print: the same verdicts, as objects and DataFrames, with the command's exit status."""
    from pathlib import Path

    from genbench.harness.cli import main

    baseline = Path(__file__).resolve().parents[1] / "benchmarks" / "baselines" / "regression"
    verdicts = genbench.claims(baseline)
    assert main(["claims", str(baseline)]) == verdicts.exit_status
    printed = capsys.readouterr().out
    assert all(v.line() in printed for v in verdicts)
    frame = verdicts.to_frame()
    assert list(frame.claim) == [v.claim for v in verdicts] and {"verdict", "p", "level"} <= set(frame)
    assert genbench.claims(baseline, claims=["nfe: sampler=ddpm better than steps=20"])[0].verdict \
        == "contradicted"
    result = genbench.compare(baseline, baseline)
    assert result.exit_status == 0 == main(["compare", str(baseline), str(baseline)])
    assert len(result.to_frame()) == len(result.verdicts) > 40
    with pytest.raises(GenbenchError, match="--alpha must be between 0 and 1"):
        genbench.compare(baseline, baseline, alpha=1.5)
    with pytest.raises(GenbenchError, match="is not a genbench run directory"):
        genbench.claims(baseline / "results")

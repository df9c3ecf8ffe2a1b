"""Names never become paths unchecked: study, arm and scale names are refused at load when they
are not plain names, and names read from results rows or study.json (metrics, trial ids,
setting keys) stay inside the report and the run, whatever they hold."""

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest

from genbench.harness.cli import main
from genbench.harness.store.results import SCHEMA, read_file, results_files
from genbench.harness.store.files import atomic_write_table
from genbench.harness.store.rundir import safe_name, within

BASELINE = Path(__file__).resolve().parent.parent / "benchmarks" / "baselines" / "regression"


@pytest.mark.parametrize("name", ["a/b", "..", "../x", ".hidden", "a\nb", "", "a..b"])
def test_safe_name_keeps_a_name_in_its_folder(name, tmp_path):
    safe = safe_name(name)
    assert "/" not in safe and not safe.startswith(".") and safe and "\n" not in safe
    assert within(tmp_path, name, name).resolve().parent.parent == tmp_path.resolve()
    assert safe_name("steps-50") == "steps-50" and safe_name("a/b") != safe_name("a?b")
    assert safe_name("fid_domain_vs_train.T.png") == "fid_domain_vs_train.T.png"
    assert safe_name("../x.png").endswith(".png") and not safe_name("..png").startswith(".")


@pytest.mark.parametrize("declaration,what", [
    ("name='../evil', method='dummy'", "study name '../evil' is not a plain name"),
    ("name='ok', arms=(Arm('a/b', 'dummy'),)", "arm name 'a/b' is not a plain name"),
    ("name='ok', method='dummy', scales={'../s': Scale(budget_steps=1, n_samples=1)}",
     "scale name '../s' is not a plain name"),
])
def test_names_that_would_become_paths_are_refused_at_load(declaration, what, tmp_path, capsys):
    f = tmp_path / "s.py"
    scales = "" if "scales=" in declaration else ", scales={'smoke': Scale(budget_steps=1, n_samples=1)}"
    f.write_text("from genbench import Arm, Scale, Study\n"
                 f"STUDY = Study(data='mnist5k', {declaration}{scales})\n")
    assert main(["run", str(f), "--no-report"]) == 2
    err = capsys.readouterr().err
    assert what in err and err.count("\n") == 1
    assert not (Path("results") / ".." / "evil").exists()


def test_crafted_rows_and_plan_write_nothing_outside_the_report(tmp_path, capsys):
    run = tmp_path / "box" / "run"
    shutil.copytree(BASELINE, run)
    for f in results_files(run):  # metric names with path parts, as a hostile file may hold
        df = read_file(f).to_pandas()
        df["metric"] = df.metric.replace({"fid_domain": "../../../escaped",
                                          "kid_domain": "../../../escaped-too", "nfe": "a/b"})
        atomic_write_table(pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False), f)
    plan = json.loads((run / "study.json").read_text())
    plan["trials"][0]["trial_id"] = "../../../../trial"
    plan["samples"][0]["key"] = "../../sample"
    (run / "study.json").write_text(json.dumps(plan))
    victim = tmp_path / "box" / "samples"  # what a trial id of ../ would reach
    victim.mkdir()
    before = {p for p in tmp_path.rglob("*")}
    assert main(["report", str(run)]) == 0
    new = {p for p in tmp_path.rglob("*")} - before
    assert new and all((run / "report") in p.parents or p == run / "report" for p in new), \
        sorted(map(str, new))
    names = [p.name for p in (run / "report" / "img").iterdir()]
    assert any(n.startswith("escaped_vs_") or "escaped" in n for n in names), names
    assert all(n.endswith(".png") for n in names)
    page = (run / "report" / "index.html").read_text()
    assert "../../../escaped" in page  # the name is data: shown as it is, only paths are safe

"""A study file imports what lies beside it, as `python study.py` would: a lab folder's helper
module and its own methods package, through the `genbench` console script and on Ray workers
(genbench.harness.registry.importable)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HELPERS = "GRID = {'noise': [0.1, 0.5]}  # a lab's shared sample grid\n"
METHODS = ("from genbench import register\n"
           "from genbench.methods.dummy import Dummy\n\n\n"
           "@register('lab_mean')\n"
           "class LabMean(Dummy):\n"
           "    '''The lab's own method (the dummy, under its own name).'''\n")
STUDY = ("from genbench import Scale, Study\n"
         "from {helpers} import GRID\n\n"
         "STUDY = Study(name='lab', method='lab_mean', data='mnist5k', seeds=(0,),\n"
         "              imports=('{methods}',), sample_grid=GRID,\n"
         "              scales={{'smoke': Scale(budget_steps=2, n_samples=4)}})\n")


def lab(root: Path, tag: str) -> Path:
    """A lab folder: study.py, a helper module and a methods package (names unique to the test:
    a module imported once stays in sys.modules, here and in Ray's reused workers)."""
    helpers, methods = f"lab_helpers_{tag}", f"lab_methods_{tag}"
    folder = root / "lab"
    (folder / methods).mkdir(parents=True)
    (folder / f"{helpers}.py").write_text(HELPERS)
    (folder / methods / "__init__.py").write_text(METHODS)
    (folder / "study.py").write_text(STUDY.format(helpers=helpers, methods=methods))
    return folder / "study.py"


def test_the_console_script_imports_the_study_folders_own_modules(tmp_path):
    study = lab(tmp_path, "cli")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = Path(sys.executable).parent / "genbench"
    proc = subprocess.run([str(script), "run", str(study), "--out", str(tmp_path / "out"),
                           "--in-process", "--no-report"], cwd=elsewhere, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert list((tmp_path / "out" / "results").glob("*.parquet"))


def test_ray_workers_import_the_study_folders_own_modules(tmp_path, ray_local):
    import pandas as pd

    from genbench.harness.cli import main

    study = lab(tmp_path, "ray")
    assert main(["run", str(study), "--out", str(tmp_path / "out"), "--no-report"]) == 0
    rows = pd.concat(pd.read_parquet(f) for f in (tmp_path / "out" / "results").glob("*.parquet"))
    assert set(rows.arm) == {"lab_mean"} and set(rows.method) == {"lab_mean"}
    assert rows.setting_json.dropna().nunique() == 2  # the helper's grid reached the plan

"""`genbench compare` accounts for every point of BASE: a crafted current run (a copy of the
regression baseline, changed file by file) that lacks cells, has NaN where BASE had values, is
another study, or shares nothing with BASE never passes the gate in silence."""

import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from genbench.harness.cli import main
from genbench.harness.results import SCHEMA, atomic_write_table, read_file, results_files

BASELINE = Path(__file__).resolve().parent.parent / "benchmarks" / "baselines" / "regression"


@pytest.fixture
def cur(tmp_path):
    out = tmp_path / "cur"
    shutil.copytree(BASELINE, out)
    return out


def rewrite(run: Path, change) -> None:
    """Apply `change(DataFrame) -> DataFrame` to every results file of `run` (an empty result
    removes the file)."""
    for f in results_files(run):
        df = change(read_file(f).to_pandas())
        if df.empty:
            f.unlink()
        else:
            atomic_write_table(pa.Table.from_pandas(df, schema=SCHEMA, preserve_index=False), f)


def verdicts(capsys, *args) -> tuple[int, dict]:
    code = main(["compare", str(BASELINE), *map(str, args), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_a_cell_missing_in_current_fails_the_gate(cur, capsys):
    rewrite(cur, lambda df: df[df.arm != "gan"])
    code, result = verdicts(capsys, cur)
    missing = [v for v in result["verdicts"] if v["verdict"] == "missing"]
    assert code == 1 and missing and {v["arm"] for v in missing} == {"gan"}
    assert all(v["note"] == "missing in current" and v["cur"] is None for v in missing)
    assert main(["compare", str(BASELINE), str(cur), "--allow-missing"]) == 0
    assert "reported only (--allow-missing)" in capsys.readouterr().out


def test_a_metric_that_became_nan_is_a_regression(cur, capsys):
    def nan_fid(df):
        hit = (df.metric == "fid_domain") & (df.arm == "ddpm")
        df.loc[hit, "value"] = float("nan")
        return df

    rewrite(cur, nan_fid)
    code, result = verdicts(capsys, cur)
    bad = [v for v in result["verdicts"] if v["verdict"] == "regression"]
    assert code == 1 and len(bad) == 2  # the DDPM's two sample settings
    assert all(v["metric"] == "fid_domain" and v["note"].startswith("no values in current")
               for v in bad)


def test_another_study_is_refused_and_a_comparison_of_nothing_never_passes(cur, capsys):
    rewrite(cur, lambda df: df.assign(study="other"))
    assert main(["compare", str(BASELINE), str(cur)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different studies: BASE is regression and CUR is other" in err
    # --force on two unrelated runs: their points share no key, so nothing is judged
    rewrite(cur, lambda df: df.assign(cell_key=df.cell_key + "x"))
    assert main(["compare", str(BASELINE), str(cur), "--force"]) == 2
    assert "compared nothing" in capsys.readouterr().err


def test_points_new_in_current_and_a_changed_config_are_said(cur, capsys):
    def change(df):
        extra = df[df.metric == "nfe"].assign(metric="nfe_twice", value=lambda d: 2 * d.value)
        df = df.assign(config_json=df.config_json.str.replace('"lr":0.002', '"lr":0.001'))
        return pd.concat([df, extra], ignore_index=True)

    rewrite(cur, change)
    code, result = verdicts(capsys, cur)
    new = [v for v in result["verdicts"] if v["verdict"] == "new"]
    assert new and all(v["metric"] == "nfe_twice" for v in new)
    noted = [v for v in result["verdicts"] if v["note"].startswith("config differs: lr 0.002 -> 0.001")]
    assert noted and {v["arm"] for v in noted} == {"ddpm", "consistency"}


def test_wall_clock_metrics_only_with_timings(capsys):
    assert main(["compare", str(BASELINE), str(BASELINE)]) == 0
    out = capsys.readouterr().out
    assert "| train_s |" not in out and "--timings judges them" in out and "| fid_domain |" in out
    assert main(["compare", str(BASELINE), str(BASELINE), "--timings"]) == 0
    assert "| train_s |" in capsys.readouterr().out
    assert main(["compare", str(BASELINE), str(BASELINE), "--no-timings"]) == 0  # the old flag


def test_compare_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 no regression, 1 a regression" in text and "2 bad input" in text

"""Reports and regression verdicts on tables made by real smoke runs: every figure exists and is
a valid PNG, the page links only files that exist and loads in a real headless browser with
every image, partial runs and two-directory comparisons render; `genbench compare` finds no
regression in a run against itself, exactly the one planted in a copy, and refuses runs of
another data set."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from genbench.harness.cli import main
from genbench.harness.store.results import read_results, results_files
from genbench.harness.store.files import atomic_write_table

XDIST_GROUP = "reports"  # one worker runs this module: its study runs once (tests/conftest.py)

STUDY = """from genbench import Arm, Scale, Study
STUDY = Study(name="rep", data={data!r}, seeds=(0, 1, 2),
    arms=(Arm("ddpm", "ddpm", config=dict(T=20, n_feat=8, ch_mult=(1,), attention=False,
                                          batch_size=16),
              sample_grid={{"steps": [5, 20]}}),
          Arm("mean", "dummy", sample_grid={{"noise": [0.1, 0.5]}})),
    metrics={metrics!r},
    scales={{"smoke": Scale(budget_steps=6, n_samples=24, log_every=2)}})
"""


def run_study(tmp: Path, name: str, data="mnist5k", metrics=("fid_domain", "kid_domain"),
              arms=None) -> Path:
    f = tmp / f"{name}.py"
    study = STUDY.format(data=data, metrics=metrics)
    if arms is not None:  # only these arms
        study += f"STUDY = dataclasses.replace(STUDY, arms=tuple(a for a in STUDY.arms if a.name in {arms!r}))\n"
        study = "import dataclasses\n" + study
    f.write_text(study)
    out = tmp / name
    assert main(["run", str(f), "--out", str(out), "--no-report", "--in-process"]) == 0
    return out


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, domain_extractor):
    return run_study(tmp_path_factory.mktemp("rep"), "run")


def links(index: Path) -> list[str]:
    return re.findall(r"(?:src|href)='([^']+)'", index.read_text())


def test_report_has_every_figure_and_links_only_existing_files(run_dir, tmp_path, capsys):
    assert main(["report", str(run_dir), "--out", str(tmp_path / "rep")]) == 0
    index = tmp_path / "rep" / "index.html"
    assert str(index.resolve()) in capsys.readouterr().out
    html = index.read_text()
    for section in ("Summary", "Metrics against each ablation axis", "Quality against cost",
                    "Training curves", "Samples", "Rerun a cell", "Still to run"):
        assert f">{section}<" in html, section
    src = links(index)
    expected = {"img/curves_loss.png", "img/run0/real.png", "img/fid_domain_vs_nfe.png",
                "img/fid_domain_vs_sample_s_per_image.png", "img/fid_domain_vs_sample.noise.png"}
    assert expected <= set(src)
    # the dummy's noise moves FID far beyond its seeds' spread; its NFE is 1 at any noise: a
    # constant gets a line, not a chart
    flat = re.search(r"Not moved by sample\.noise beyond the noise between seeds \(no chart\): "
                     r"([^<]*)\.", html)
    assert flat and "nfe" in flat[1].split(", ") and "img/nfe_vs_sample.noise.png" not in src
    for rel in src:
        path = index.parent / rel
        assert path.is_file(), rel
        if path.suffix == ".js":  # plotly.js beside the page (genbench[pages]), not an image
            continue
        with Image.open(path) as im:
            im.verify()  # a valid PNG
    assert html.count("class='best'") >= 2  # best values marked
    assert "everything in its plan is done" in html
    assert "genbench run " in html and "--set seeds=[0,1,2]" in html


def test_a_report_never_overwrites_what_is_not_a_report(run_dir, tmp_path, capsys):
    """A report replaces index.html and img/ of its directory: one that holds anything else,
    or is a file, is refused in one line before anything is written; an earlier report is
    replaced."""
    mine = tmp_path / "mine"
    (mine / "img").mkdir(parents=True)
    (mine / "img" / "precious.txt").write_text("keep me")
    (mine / "index.html").write_text("<html>my page</html>")
    a_file = tmp_path / "a_file"
    a_file.write_text("keep me too")
    for dest in (mine, a_file):
        capsys.readouterr()
        assert main(["report", str(run_dir), "--out", str(dest)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(dest) in err
    assert (mine / "img" / "precious.txt").read_text() == "keep me"
    assert (mine / "index.html").read_text() == "<html>my page</html>"
    assert a_file.read_text() == "keep me too"
    again = tmp_path / "again"
    for _ in range(2):  # a new directory, then the same one again
        assert main(["report", str(run_dir), "--out", str(again)]) == 0


def test_partial_run_and_two_directory_comparison(run_dir, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(run_dir, partial)
    victim = next(p for p in results_files(partial) if ".fit." not in p.name)
    victim.unlink()  # a setting that has not run yet
    (partial / "results" / "broken.parquet").write_bytes(b"not parquet")
    index = Path(_report([str(partial)], tmp_path / "p"))
    html = index.read_text()
    assert "1 missing" in html and "skipping" in html
    both = Path(_report([str(run_dir), str(partial)], tmp_path / "both")).read_text()
    assert "run 0" in both and "run 1" in both
    assert all((tmp_path / "both" / rel).is_file() for rel in links(tmp_path / "both" / "index.html"))


def _report(dirs, out):
    from genbench.reports import write_report

    return write_report([Path(d) for d in dirs], out)


@pytest.mark.system
def test_the_page_loads_in_a_real_browser(run_dir, tmp_path, chromium):
    index = Path(_report([str(run_dir)], tmp_path / "r"))
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                           "--window-size=1280,900", "--proxy-server=127.0.0.1:9",  # (no request
                           "--allow-file-access-from-files", "--enable-logging=stderr", "--v=0",  # leaves)
                           "--virtual-time-budget=8000", "--dump-dom", index.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    loaded = re.search(r'data-images="(\d+)/(\d+)"', proc.stdout)
    assert loaded, "the page's load handler did not run"
    ok, total = map(int, loaded.groups())
    assert total >= 8 and ok == total  # every image has a natural width > 0
    width = re.search(r'data-width="(\d+)/(\d+)"', proc.stdout)
    assert width and int(width[1]) <= int(width[2]) == 1280, width  # no horizontal overflow
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "ERR_PROXY" in ln]
    assert not console, console
    if (index.parent / "plotly.min.js").is_file():  # interactive (genbench[pages]): every chart drew
        charts = index.read_text().count('class="chart"')
        assert charts >= 2 and proc.stdout.count('class="main-svg"') >= charts


def test_compare_a_run_with_itself_and_with_a_planted_regression(run_dir, tmp_path, capsys):
    assert main(["compare", str(run_dir), str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "0 regression" in out and "| regression |" not in out
    worse = tmp_path / "worse"
    shutil.copytree(run_dir, worse)
    df = read_results(worse)
    cell = df[(df.metric == "fid_domain") & (df.arm == "mean")].cell_key.iloc[0]
    base_mean = df[(df.metric == "fid_domain") & (df.cell_key == cell)].value.mean()
    for f in results_files(worse):
        table = pq.read_table(f)
        hit = [m == "fid_domain" and k == cell for m, k in
               zip(table.column("metric").to_pylist(), table.column("cell_key").to_pylist())]
        if any(hit):  # clearly worse: the same noise around a mean three times as high
            values = [v + 2 * base_mean if h else v
                      for v, h in zip(table.column("value").to_pylist(), hit)]
            table = table.set_column(table.schema.get_field_index("value"), "value",
                                     pa.array(values, pa.float64()))
            atomic_write_table(table, f)
    assert main(["compare", str(run_dir), str(worse), "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    regressions = [v for v in result["verdicts"] if v["verdict"] == "regression"]
    assert result["regressions"] == 1 and len(regressions) == 1
    assert regressions[0]["metric"] == "fid_domain" and regressions[0]["arm"] == "mean"
    # every seed moved by the same amount: paired by seed (differences equal to rounding)
    assert regressions[0]["test"] in ("paired t", "exact") and regressions[0]["n_base"] == 3


def test_compare_counts_a_seed_that_diverged_as_a_regression(run_dir, tmp_path, capsys):
    """A diverged fit writes a status row instead of its metrics: its seed must not simply
    drop out of the means while compare exits 0."""
    broken = tmp_path / "broken"
    shutil.copytree(run_dir, broken)
    df = read_results(broken)
    trial = sorted(df[df.arm == "mean"].trial_id.unique())[0]
    for f in results_files(broken):
        if f.name.startswith(f"{trial}."):
            f.unlink()
    table = pq.read_table(run_dir / "results" / f"{trial}.fit.parquet").slice(0, 1)
    for name, value in (("metric", "diverged_at_step"), ("value", 3.0)):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, name, pa.array([value], table.schema.field(i).type))
    atomic_write_table(table, broken / "results" / f"{trial}.fit.parquet")
    assert main(["compare", str(run_dir), str(broken), "--json"]) == 1
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    (reg,) = [v for v in result["verdicts"] if v["verdict"] == "regression"]
    assert (reg["metric"], reg["arm"], reg["base"], reg["cur"], reg["test"]) == (
        "unfinished_seeds", "mean", 0, 1, "count")
    assert (reg["n_base"], reg["n_cur"]) == (3, 3)
    assert "fewer seeds in current than in base" in captured.err
    assert main(["compare", str(broken), str(run_dir)]) == 0  # fixed again: an improvement
    assert "1 improvement" in capsys.readouterr().out


def test_compare_names_the_version_1_rows_it_cannot_join(run_dir, tmp_path, capsys):
    from genbench.harness.store import results

    old = tmp_path / "old"
    shutil.copytree(run_dir, old)
    v1 = {name: [None] for name in results.V1_COLUMNS}
    v1.update(schema_version=[1], study=["rep"], trial_id=["abc-s0"], metric=["train_s"],
              value=[1.0], config_json=[json.dumps({"config": {}, "cell": {}})])
    fields = [(n, results.COLUMNS[n][0]) for n in results.V1_COLUMNS]
    pq.write_table(pa.Table.from_pydict(v1, schema=pa.schema(fields)), old / "results" / "abc-s0.parquet")
    assert main(["compare", str(old), str(run_dir)]) == 0
    err = capsys.readouterr().err
    assert f"{old}: 1 rows without a cell_key (schema version 1) are not compared" in err


def test_a_study_json_of_another_shape_counts_as_none(run_dir, tmp_path, capsys):
    """A hand-edited or truncated-to-valid study.json never gives a traceback."""
    for text in ('"x"', '{"trials": [1]}', '{"trials": "x"}'):
        bad = tmp_path / "bad"
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(run_dir, bad)
        (bad / "study.json").write_text(text)
        assert main(["compare", str(run_dir), str(bad)]) == 0, capsys.readouterr().err
        assert main(["report", str(bad), "--out", str(tmp_path / "page")]) == 0
        capsys.readouterr()


def test_compare_refuses_another_data_set(run_dir, tmp_path, capsys):
    other = run_study(tmp_path, "other", data="fewshot:mnist5k:500", metrics=(), arms=("mean",))
    assert main(["compare", str(run_dir), str(other)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "dataset differs" in err and "--force" in err
    assert main(["compare", str(run_dir), str(other), "--force"]) in (0, 1)
    assert "warning: not comparable" in capsys.readouterr().err


@pytest.mark.e2e
def test_run_refreshes_the_report(tmp_path):
    f = tmp_path / "r.py"
    f.write_text("from genbench import Scale, Study\n"
                 "STUDY = Study(name='r', method='dummy', data='mnist5k',"
                 " scales={'smoke': Scale(budget_steps=2, n_samples=2, log_every=1)})\n")
    assert main(["run", str(f), "--out", str(tmp_path / "o"), "--in-process"]) == 0
    assert (tmp_path / "o" / "report" / "index.html").is_file()


BASELINE = Path(__file__).resolve().parent.parent / "benchmarks" / "baselines" / "regression"


@pytest.mark.e2e
@pytest.mark.xdist_group("regression")  # the longest e2e test: a worker of its own while it runs
def test_the_regression_suite_passes_against_its_baseline(tmp_path, capsys):
    """What a CI job gating a change runs (docs/compare-and-claims.md, Regression verdicts):
    everything but the wall-clock metrics, which measure the CI machine's load as much as the
    code. The suite's first two seeds run in this process (`--in-process`: the rows of a Ray run,
    as test_inprocess.py checks; here it saves Ray's worker start-ups), against the baseline the
    documented command made through Ray at all its seeds: the same code reproduces every value
    of those seeds (an exact "no change"). The study's design constant POINTS is the tested
    points of its largest arm, as this comparison counts them."""
    from genbench import compare
    from genbench.harness.metrics import tolerance
    from genbench.studies.regression import POINTS, SEEDS

    cur = tmp_path / "cur"
    assert main(["run", "regression", "--out", str(cur), "--no-report", "--in-process",
                 "--set", "seeds=[0,1]"]) == 0
    capsys.readouterr()
    assert main(["compare", str(BASELINE), str(cur), "--no-timings"]) == 0
    out = capsys.readouterr().out
    assert "0 regression" in out and "only in" not in out and "inconclusive" not in out
    assert "| fid_domain |" in out and "| nfe |" in out and "| train_s |" not in out
    result = compare(BASELINE, BASELINE)
    assert {v.n_base for v in result.verdicts if v.metric == "fid_domain"} == {len(SEEDS)}
    tested = {}
    for v in result.verdicts:
        if v.mde == v.mde and tolerance(v.metric) > 0:
            tested[v.arm] = tested.get(v.arm, 0) + 1
    assert max(tested.values()) == POINTS, tested


def test_reports_need_no_torch(tmp_path):
    """The report layer runs without importing torch (or any method)."""
    code = ("import sys; from reports import write_report; "
            f"write_report([{str(BASELINE)!r}], {str(tmp_path / 'r')!r}); "
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('methods')]; "
            "sys.exit(f'imported {bad}' if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-1500:]
    assert (tmp_path / "r" / "index.html").is_file()


def ci_by_definition(values, alpha: float = 0.05) -> float:
    """Half-width of the (1 - alpha) Student-t interval of the mean, by its definition: NaN
    values left out (as pandas' mean leaves them out), none for fewer than two values or an
    infinite one."""
    import numpy as np
    from scipy import stats

    values = values[~np.isnan(values)]
    if len(values) < 2 or np.isinf(values).any():
        return float("nan")
    return float(stats.t.ppf(1 - alpha / 2, len(values) - 1) * values.std(ddof=1) / len(values) ** 0.5)


def test_the_interval_is_students_t_at_the_level_asked_and_absent_where_the_mean_is_not_finite():
    import numpy as np
    import pandas as pd
    from scipy import stats

    from genbench.reports.tables import summarize

    def ci(values, alpha=0.05):
        rows = pd.DataFrame({"k": 0, "metric": "m", "value": values, "higher_is_better": False})
        return float(summarize(rows, ["k"], alpha=alpha).ci.iloc[0])

    v = np.array([1.0, 2.0, 4.0])
    assert ci(v) == pytest.approx(stats.t.ppf(0.975, 2) * v.std(ddof=1) / 3 ** 0.5)
    assert ci(v, alpha=0.1) == pytest.approx(stats.t.ppf(0.95, 2) * v.std(ddof=1) / 3 ** 0.5)
    assert ci(np.array([1.0, np.nan, 2.0, 4.0])) == ci(v)  # NaN left out, as pandas' mean does
    assert np.isnan(ci(np.array([1.0]))) and np.isnan(ci(np.array([1.0, np.inf, 2.0])))


def test_the_rerun_command_names_the_study_as_the_command_line_does(tmp_path):
    """A shipped study by name (as runs record it now, and as runs before the one namespace
    did), a study file by its path, else the plan's study name."""
    import pandas as pd

    from genbench.reports.tables import Run

    from genbench.harness.plan.plan import Plan

    def ref(plan):
        plan = Plan.from_dict({"scale": "smoke", "data": "mnist5k", "resolution": 28, "n_samples": 8,
                               "trials": [], "samples": [], **plan})
        return Run(0, tmp_path, pd.DataFrame(), pd.DataFrame(), plan).study_ref()

    assert ref({"imports": ["genbench.studies.cm_steps"], "study": "x"}) == "cm_steps"
    assert ref({"imports": ["studies.cm_steps"], "study": "x"}) == "cm_steps"
    assert ref({"imports": ["my_lab.methods", "path:/abs/mine.py"], "study": "x"}) == "/abs/mine.py"
    assert ref({"imports": ["my_lab.methods"], "study": "mine"}) == "mine"


def test_a_huge_studys_figures_show_their_best_lines_and_label_the_front(tmp_path, monkeypatch):
    """40 train cells: the metric-against-axis figure draws the 10 best lines (lower is better
    here), the quality-against-cost figure labels only its Pareto front; both titles say so."""
    import pandas as pd

    from genbench.reports import figures

    rows = []
    for i in range(40):
        for noise in (0.1, 0.5):
            for metric, value in (("fid_domain", 10 * i + 100 * noise), ("sample_s_per_image", 1 + i % 7)):
                rows.append({"run": 0, "arm": "a", "cell_key": f"c{i}", "train.lr": i,
                             "sample.noise": noise, "metric": metric, "value": value,
                             "higher_is_better": False, "cell_json": json.dumps({"lr": i}),
                             "setting_json": json.dumps({"noise": noise})})
    rows = pd.DataFrame(rows)
    seen = {}
    real = figures._finish

    def finish(fig, ax, path, **kw):
        seen[kw["title"]] = ax
        return real(fig, ax, path, **kw)

    monkeypatch.setattr(figures, "_finish", finish)
    figures.metric_vs_axis(rows, "fid_domain", "sample.noise", {}, tmp_path / "a.png", False)
    (title, ax), = seen.items()
    assert title == "fid_domain against noise (the 10 best of 40 lines)"
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == \
        sorted(f"a, lr={i}" for i in range(10))  # the lowest fid: lr 0..9
    seen.clear()
    figures.quality_vs_cost(rows.assign(cell_key=rows.cell_key + rows["sample.noise"].astype(str)),
                            "fid_domain", "sample_s_per_image", {}, tmp_path / "b.png", False)
    (title, ax), = seen.items()
    assert title.endswith("(labels on the Pareto front of 80 points)")
    labels = [t.get_text() for t in ax.texts]
    assert 0 < len(labels) <= figures.MAX_LABELS and "lr=0, noise=0.1" in labels


def test_a_huge_studys_tables_show_their_best_rows_and_say_how_many_more(tmp_path, monkeypatch):
    """The summary keeps the MAX_ROWS rows best by the first main metric, the rerun table its
    first cells, and both say what they left out (a run written as a trial writes its rows,
    by benchmarks/bench_results.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_results

    from genbench.reports import page

    monkeypatch.setattr(page, "MAX_ROWS", 10)
    out = tmp_path / "run"
    bench_results.write_run(out, 100, compacted=True)  # 25 cells x 4 seeds, 2 settings each
    assert main(["report", str(out), "--out", str(tmp_path / "page")]) == 0
    text = (tmp_path / "page" / "index.html").read_text()
    assert "The 10 rows best by fid_domain of 50 are shown" in text
    assert "and 15 more cells: their commands take the same form" in text
    summary = text.split("<h2>Summary</h2>")[1].split("</table>")[0]
    assert summary.count("<tr>") == 12  # the header, the real-data floor and 10 rows
    assert "lr=0.0001" in summary and "noise=0.1" in summary  # the best: lowest lr and noise


def test_the_pareto_front_and_the_summary_equal_their_definitions():
    """The report's column-wise Pareto sweep and per-group intervals, on random points with
    ties, duplicates, NaN and infinities, equal the definitions computed point by point."""
    import numpy as np
    import pandas as pd

    from genbench.reports.tables import pareto, summarize

    rng = np.random.default_rng(1)
    for trial in range(30):
        n = int(rng.integers(1, 40))
        c = rng.integers(0, 6, n).astype(float)  # few distinct costs: ties
        q = rng.integers(0, 6, n).astype(float)
        c[rng.random(n) < 0.1] = np.nan
        points = list(zip(c, q))
        for higher in (False, True):
            def beats(j, i):
                (c2, q2), (c1, q1) = points[j], points[i]
                return (c2 <= c1 and (q2 >= q1 if higher else q2 <= q1)) and (c2, q2) != (c1, q1)

            want = [i for i in range(n) if not any(beats(j, i) for j in range(n) if j != i)]
            assert pareto(points, higher) == want, (points, higher)
    rows = pd.DataFrame({"cell": rng.integers(0, 50, 400), "metric": "m",
                         "value": rng.normal(0, 1, 400), "higher_is_better": False})
    rows.loc[rows.index[::37], "value"] = np.nan
    rows.loc[rows.index[5], "value"] = np.inf
    got = summarize(rows, ["cell"]).set_index("cell")
    for cell, g in rows.groupby("cell"):
        v = g.value.to_numpy()
        assert got.loc[cell, "n"] == np.isfinite(v).sum() + np.isinf(v).sum()
        np.testing.assert_allclose(got.loc[cell, "ci"], ci_by_definition(v), equal_nan=True)
        np.testing.assert_allclose(got.loc[cell, "mean"], np.nanmean(v))


ARMS_GRID = """
from genbench import Arm, Scale, Study
STUDY = Study(name="rerun", data="mnist5k", metrics=(), seeds=(0, 1),
              arms=(Arm("a", "dummy", train_grid={"lr": [0.1, 0.5]}), Arm("b", "dummy")),
              scales={"smoke": Scale(budget_steps=3, n_samples=2, log_every=1)})
"""


@pytest.mark.e2e
def test_rerun_a_cell_reproduces_that_cell_exactly(tmp_path, capsys):
    """The page's command for one cell, run as printed: its arm alone (--arm), the run's own
    --set overrides, the cell's grid values and seeds; the same trial ids and the same rows."""
    import html as html_lib
    import shlex

    study = tmp_path / "rerun.py"
    study.write_text(ARMS_GRID)
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--in-process", "--set", "batch_size=4",
                 "--set", "a.sleep_s=0.0"]) == 0
    page = (out / "report" / "index.html").read_text()
    commands = [html_lib.unescape(c) for c in re.findall(r"<code>(genbench run [^<]*)</code>", page)]
    cmd = next(c for c in commands if "--set a.lr=0.5" in c)
    args = shlex.split(cmd)
    assert "--arm" in args and args[args.index("--arm") + 1] == "a"
    assert "batch_size=4" in args and "a.sleep_s=0.0" in args and "seeds=[0,1]" in args
    rerun = tmp_path / "again"
    args[args.index("--out") + 1] = str(rerun)
    capsys.readouterr()
    assert main([*args[1:], "--in-process", "--no-report"]) == 0
    first, again = read_results(out), read_results(rerun)
    cell = first[(first.arm == "a") & (first.cell_json == '{"lr":0.5}')]
    assert set(again.trial_id) == set(cell.trial_id) and len(set(cell.trial_id)) == 2
    keep = ["trial_id", "metric", "value"]
    stable = ["final_loss", "nfe", "n_params"]
    pd.testing.assert_frame_equal(
        cell[cell.metric.isin(stable)][keep].sort_values(keep[:2]).reset_index(drop=True),
        again[again.metric.isin(stable)][keep].sort_values(keep[:2]).reset_index(drop=True))


def test_an_axis_moves_a_metric_only_beyond_the_noise_between_seeds():
    """A chart per axis only where the axis moves the metric: a constant does not move, nor
    does scatter within the seeds' interval; a shift beyond it does, and so does any
    difference where one seed leaves no interval."""
    import numpy as np

    from genbench.reports.tables import moves

    rng = np.random.default_rng(0)

    def rows(means, seeds):
        return pd.DataFrame([{"run": 1, "arm": "a", "metric": "m", "sample.t": t, "value": v,
                              "higher_is_better": False}
                             for t, mu in zip((1, 2, 3), means) for v in mu + rng.normal(0, 1, seeds)])

    assert not moves(rows([5.0, 5.0, 5.0], 1).assign(value=7.0), "sample.t")  # a constant
    assert not moves(rows([5.0, 5.0, 5.0], 5), "sample.t")  # noise, well within its interval
    assert moves(rows([5.0, 5.0, 20.0], 5), "sample.t")  # a shift of 15 noise sd
    assert moves(rows([5.0, 6.0, 7.0], 1), "sample.t")  # one seed: no interval to hide behind
    # another axis held: the shift on one of its lines is enough
    both = pd.concat([rows([5, 5, 5], 5).assign(**{"train.w": 1}),
                      rows([5, 5, 30], 5).assign(**{"train.w": 2})])
    assert moves(both, "sample.t") and not moves(both[both["train.w"] == 1], "sample.t")


def test_a_page_of_two_runs_says_what_differs_between_them(tmp_path):
    """Commit, overrides and each arm's config field by field (grid axes aside)."""
    from genbench.harness.plan.plan import Plan
    from genbench.reports.page import _differences
    from genbench.reports.tables import Run

    def run(i, sha, sets, lr):
        rows = pd.DataFrame({"git_sha": [sha]})
        plan = {"study": "s", "scale": "smoke", "data": "mnist5k", "resolution": 28, "n_samples": 8,
                "sets": sets, "trials": [{"arm": "ddpm", "cell": {"T": 100}, "trial_id": "t", "seed": 0,
                                          "config": {"T": 100, "lr": lr, "n_feat": 8}}],
                "samples": []}
        return Run(i, tmp_path / str(i), rows, pd.DataFrame(), Plan.from_dict(plan))

    text = _differences([run(0, "aaaaaaaaaaaa", [], 0.002), run(1, "bbbbbbbbbbbb", [["lr", 0.001]], 0.001)])
    assert "commit: run 0: aaaaaaaaaa; run 1: bbbbbbbbbb" in text
    assert "overrides: run 0: none; run 1: --set lr=0.001" in text
    assert "ddpm config lr: run 0: 0.002; run 1: 0.001" in text and "n_feat" not in text
    assert "config T" not in text  # a grid axis: its values are the cells, not a difference
    same = _differences([run(0, "a", [], 0.002), run(1, "a", [], 0.002)])
    assert "nothing genbench records but the rows" in same
    dirty = _differences([run(0, "a" * 40, [], 0.002), run(1, "a" * 40 + "-dirty", [], 0.002)])
    assert "commit: run 0: aaaaaaaaaa; run 1: aaaaaaaaaa-dirty" in dirty  # the page keeps the flag

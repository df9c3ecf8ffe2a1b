"""`genbench history` against a known truth: eight runs of one study, each with its own noise,
where one point's fid_domain rises 1.6x from the fifth run on (benchmarks/bench_results.py
writes them through genbench's own writers); the history names exactly that point and metric
at the fifth run's commit, exits 1, and 0 once the shift is acknowledged."""

import json
import sys
from pathlib import Path

import pytest

from genbench.harness.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

XDIST_GROUP = "history"
SHIFTED = (0.0002, 0.5)  # (lr, noise): the point that regresses


@pytest.fixture(scope="module")
def nightly(tmp_path_factory):
    import bench_results

    root = tmp_path_factory.mktemp("nightly")
    for i in range(8):  # 2 cells x 4 seeds, 2 settings each: 4 points of fid_domain
        bench_results.write_run(root / f"run{i}", 8, compacted=False, git_sha=f"{i:02d}" + "c0ffee" * 6,
                                noise_seed=100 + i, shift={SHIFTED: 1.6} if i >= 4 else None)
    return root


@pytest.mark.e2e
def test_the_shift_is_named_at_its_commit_and_nothing_else(nightly, capsys):
    assert main(["history", str(nightly), "--json", "--acks", str(nightly / "acks.json")]) == 1
    out = json.loads(capsys.readouterr().out)
    assert len(out["runs"]) == 8 and out["failing"] == 1
    (change,) = out["changes"]
    assert (change["metric"], change["cell"], change["setting"]) == ("fid_domain", "lr=0.0002", "noise=0.5")
    assert change["run"] == 4 and change["commit"].startswith("04c0ffee")
    assert change["verdict"] == "regression" and change["kind"] == "step"
    assert change["lo"] < 0.47 < change["hi"]  # log 1.6 = 0.47, within its interval


@pytest.mark.e2e
def test_an_acknowledged_shift_stays_visible_and_stops_failing(nightly, tmp_path, capsys):
    acks = tmp_path / "acks.json"
    assert main(["history", str(nightly), "--acks", str(acks),
                 "--ack", "04c0ffee", "fid_domain", "new protocol", "--page", str(tmp_path / "page"),
                 "--static"]) == 0
    out = capsys.readouterr().out
    assert "regression" in out and "(acknowledged: new protocol)" in out
    assert json.loads(acks.read_text()) == [{"commit": "04c0ffee", "metric": "fid_domain",
                                              "reason": "new protocol"}]
    page = (tmp_path / "page" / "index.html").read_text()  # --static: PNGs inlined in one file
    assert "acknowledged: new protocol" in page and page.count("<img") >= 4
    assert "plotly" not in page and not (tmp_path / "page" / "plotly.min.js").exists()


@pytest.mark.e2e
def test_two_runs_give_the_history_compare_gives(nightly, capsys):
    """The history of two runs is their compare: the same direction and the same effect."""
    import genbench

    h = genbench.history([nightly / "run3", nightly / "run4"], order="given")
    c = genbench.compare(nightly / "run3", nightly / "run4")
    (change,) = h.changes
    (v,) = [v for v in c.verdicts if v.verdict == "regression"]
    assert (v.cell, v.setting, v.metric) == (change.cell, change.setting, change.metric)
    assert v.effect == pytest.approx(change.effect)


@pytest.mark.e2e
def test_a_slow_drift_is_one_change(tmp_path, capsys):
    """Five runs of +6 % each (below fid's 10 % tolerance one by one, +34 % in all)."""
    import bench_results

    for i in range(8):
        bench_results.write_run(tmp_path / f"run{i}", 8, compacted=False, git_sha=f"{i:02d}" + "d" * 38,
                                noise_seed=200 + i, shift={SHIFTED: 1.06 ** max(0, i - 2)})
    assert main(["history", str(tmp_path), "--json", "--acks", str(tmp_path / "a.json")]) == 1
    changes = json.loads(capsys.readouterr().out)["changes"]
    assert [c["kind"] for c in changes] == ["drift"] and changes[0]["setting"] == "noise=0.5"
    assert changes[0]["since"] == 3 and changes[0]["verdict"] == "regression"


@pytest.mark.e2e
def test_runs_of_two_studies_or_one_run_are_refused_in_one_line(nightly, tmp_path, capsys):
    assert main(["history", str(nightly / "run0")]) == 2
    assert "two or more runs" in capsys.readouterr().err


@pytest.mark.e2e
def test_the_ci_workflows_commands_run(nightly, tmp_path, capsys, monkeypatch):
    """Every `genbench` command of docs/ci.md's workflow parses as the command line reads it,
    and its compare and history steps give GitHub-flavoured tables and the documented exits."""
    import re
    import shlex

    from genbench.harness.cli import _parser

    doc = (Path(__file__).resolve().parent.parent / "docs" / "ci.md").read_text()
    workflow = doc.split("```yaml")[1].split("```")[0]
    lines = [ln.split("genbench ", 1)[1].split(" > ")[0] for ln in workflow.splitlines()
             if re.search(r"(run: |^\s+)genbench ", ln)]
    assert len(lines) >= 5
    for line in lines:
        args = shlex.split(line.replace("${GITHUB_SHA::8}", "abc").replace("$(date +%Y%m%d)", "d"))
        _parser().parse_args(args)  # (exits 2 on an unknown flag)
    assert main(["compare", str(nightly / "run0"), str(nightly / "run7"), "--markdown"]) == 1
    md = capsys.readouterr().out
    assert "| verdict |" in md and "|---|" in md and "regression" in md
    monkeypatch.chdir(tmp_path)  # (the default acks file, as the nightly job keeps it)
    assert main(["history", str(nightly), "--markdown", "--page", "history-page"]) == 1
    md = capsys.readouterr().out
    assert md.startswith("**genbench history**") and "| regression |" in md
    assert (tmp_path / "history-page" / "index.html").is_file()


@pytest.mark.e2e
def test_the_column_wise_first_split_is_the_per_point_one(nightly, monkeypatch):
    """first_splits (every point at once) finds, for every point, the split and p that _best
    finds point by point."""
    import genbench
    from genbench.harness.verdicts import history as h

    seen = []
    real = h.first_splits

    def check(points):
        real(points)
        seen.extend(points)

    monkeypatch.setattr(h, "first_splits", check)
    genbench.history([nightly])
    assert len(seen) > 10 and sum(pt._first[0] > 0 for pt in seen) >= 1
    for pt in seen:
        k, p, _ = pt._best(0, len(pt.runs))
        assert (pt._first[0], pt._first[1]) == (k, pytest.approx(p)), pt.metric


@pytest.mark.system
def test_the_history_page_draws_its_charts_offline_in_a_real_browser(nightly, tmp_path, chromium):
    """The charts render (plotly's SVG in the DOM, not only a script tag), with every request
    sent to a proxy that does not exist: a page that fetched anything would log an error."""
    import re
    import subprocess

    pytest.importorskip("plotly")
    assert main(["history", str(nightly), "--acks", str(tmp_path / "a.json"),
                 "--page", str(tmp_path / "page")]) == 1
    index = tmp_path / "page" / "index.html"
    html = index.read_text()
    assert not re.search(r'(src|href)="https?:', html)  # plotly.js beside the page
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                           "--proxy-server=127.0.0.1:9", "--allow-file-access-from-files",
                           "--enable-logging=stderr", "--v=0", "--virtual-time-budget=8000",
                           "--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    charts = html.count('class="chart"')
    assert charts >= 4 and proc.stdout.count('class="main-svg"') >= charts  # every chart drew
    assert "04c0ffee" in proc.stdout  # the change line's commit label, drawn by plotly
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln or "ERR_PROXY" in ln]
    assert not console, console

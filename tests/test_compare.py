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
from genbench.harness.store.results import SCHEMA, read_file, results_files
from genbench.harness.store.files import atomic_write_table

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
    assert noted and {v["arm"] for v in noted} == {"ddpm", "consistency", "gan"}


def test_wall_clock_metrics_only_with_timings(capsys):
    assert main(["compare", str(BASELINE), str(BASELINE)]) == 0
    out = capsys.readouterr().out
    assert "| train_s |" not in out and "--timings judges them" in out and "| fid_domain |" in out
    assert main(["compare", str(BASELINE), str(BASELINE), "--timings"]) == 0
    assert "| train_s |" in capsys.readouterr().out
    assert main(["compare", str(BASELINE), str(BASELINE), "--no-timings"]) == 0  # the old flag


def test_a_large_change_the_seeds_cannot_decide_exits_3_unless_allowed(cur, capsys):
    """The GAN's FID twice as bad at one seed and 10 % better at the other: beyond the 10 %
    tolerance on average (a ratio of 1.34), undecidable at two seeds. The gate says so (exit 3) instead of
    passing, and says how many seeds would have been needed to tell."""
    def mixed(df):
        hit = (df.metric == "fid_domain") & (df.arm == "gan")
        df.loc[hit, "value"] = df.loc[hit, "value"] * df.loc[hit, "seed"].map({0: 2.0, 1: 0.9})
        return df

    rewrite(cur, mixed)
    code, result = verdicts(capsys, cur)
    (v,) = [v for v in result["verdicts"] if v["verdict"] == "inconclusive"]
    assert code == 3 and result["exit_status"] == 3 and result["regressions"] == 0
    assert (v["arm"], v["metric"], v["scale"], v["test"]) == ("gan", "fid_domain", "log", "paired t")
    assert v["mde"] > abs(v["effect"])  # what it could detect there: more than it saw
    assert main(["compare", str(BASELINE), str(cur), "--allow-inconclusive"]) == 0
    assert "reported only (--allow-inconclusive)" in capsys.readouterr().out


def test_compare_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "0 no regression, 1 a regression" in text and "2 bad input" in text
    assert "3 a change beyond its tolerance the seeds could not decide" in text


def _reference(b: pd.DataFrame, c: pd.DataFrame, scale: str, exact_count: bool):
    """One point judged by the definitions, point by point: `stats.estimate` on the values by
    seed (on the metric's scale), else a z-test on one value a side with a within-run std, else
    the change alone for an exact count, else no test: (effect, p, lo, hi, test, scale)."""
    import math

    import numpy as np
    from scipy import stats as sps

    from genbench.harness.verdicts import stats

    def by_seed(rows):
        return {int(s): float(x) for s, x in zip(rows.seed, rows.value) if np.isfinite(x)}

    vb, vc = (r.value[np.isfinite(r.value)].to_numpy() for r in (b, c))
    est = stats.estimate(by_seed(c), by_seed(b), scale=scale)
    if est.test == "exact":
        return est.diff, float("nan"), est.diff, est.diff, "exact", est.scale
    if est.test in ("paired t", "welch"):
        return est.diff, est.p_two_sided(), est.lo, est.hi, est.test, est.scale
    diff = vc.mean() - vb.mean()
    sd_b, sd_c = b["std"].dropna().to_numpy(), c["std"].dropna().to_numpy()
    if len(vb) == len(vc) == 1 and len(sd_b) and len(sd_c):
        se = math.sqrt(sd_b[0] ** 2 + sd_c[0] ** 2)
        if se > 0:
            q = sps.norm.ppf(0.975)
            return diff, 2 * sps.norm.sf(abs(diff) / se), diff - q * se, diff + q * se, "z", "linear"
    effect = math.log(vc.mean() / vb.mean()) if est.scale == "log" else diff
    return (effect, float("nan"), float("nan"), float("nan"), "tolerance" if exact_count else "none",
            est.scale)


def test_the_column_wise_verdicts_equal_the_point_by_point_statistics():
    """`compare` judges every point at once; on 480 random points of every kind (shared and
    unshared seeds, one seed with and without a within-run std, ties, NaN, a seed written
    twice, exact shifts, exact counts, log and linear metrics, a log metric with a value <= 0)
    each verdict's test, scale, effect, interval and p equal those of `stats.estimate` on that
    point alone, Benjamini-Hochberg's correction equals its definition, and each verdict follows
    from them and the tolerance."""
    import numpy as np

    from genbench.harness.verdicts.compare import Comparison, _judge

    rng = np.random.default_rng(0)
    rows = {0: [], 1: []}
    metric_of = {}
    for i in range(480):
        kind = i % 10
        metric = ("nfe" if kind == 3 else "final_loss" if kind in (8, 9) or i % 7 == 0
                  else "fid_domain")
        seeds = {0: [0, 1, 2, 3], 1: [0, 1, 2, 3]}
        if kind == 1:
            seeds = {0: [0, 1, 2], 1: [5, 6, 7]}  # none shared: Welch
        elif kind in (2, 3):
            seeds = {0: [0], 1: [0]}  # one seed: z with a std (2), an exact count (3)
        elif kind == 4:
            seeds = {0: [0, 1], 1: [1, 2]}  # one shared seed: Welch on all
        elif kind == 9:
            seeds = {0: [0], 1: [0]}  # one seed of a noisy metric: no test
        shift = rng.normal(0, 1) if i % 3 else 0.0
        base = rng.normal(10, 1, 8)
        if i % 11 == 0:
            base[0] = -1.0  # a log metric with a value <= 0: its own scale
        metric_of[i] = metric
        for side in (0, 1):
            for s in seeds[side]:
                v = base[s] + (shift + (rng.normal(0, 0.3) if kind != 5 else 0.0)) * side
                if kind == 6 and s == 1:
                    v = float("nan")
                rows[side].append(dict(cell_key=f"c{i:03d}", metric=metric, seed=s,
                                       value=v, std=0.5 if kind == 2 else None,
                                       study="s", arm="a", cell_json='{"i":%d}' % i,
                                       setting_json=None, higher_is_better=False, note=None,
                                       config_json=None))
            if kind == 7:  # the same seed written twice: the last one counts, as by seed
                rows[side].append({**rows[side][-1], "value": rows[side][-1]["value"] + 1})
    base, cur = (pd.DataFrame(rows[k]) for k in (0, 1))
    result = Comparison("b", "c")
    _judge(base, cur, 0.05, result)
    got = {v.cell: v for v in result.verdicts}
    assert len(got) == 480 and {v.test for v in got.values()} == {
        "paired t", "welch", "exact", "z", "tolerance", "none"}
    assert {v.scale for v in got.values()} == {"log", "linear"}
    tested = []
    for key, b in base.groupby("cell_key"):
        i = int(key[1:])
        c = cur[cur.cell_key == key]
        v = got[f"i={i}"]
        metric = metric_of[i]
        effect, p, lo, hi, test, scale = _reference(b, c, "log" if metric == "fid_domain" else "linear",
                                                   metric == "nfe")
        assert (v.test, v.scale) == (test, scale), key
        np.testing.assert_allclose([v.effect, v.p, v.lo, v.hi], [effect, p, lo, hi],
                                   rtol=1e-9, atol=1e-12, equal_nan=True, err_msg=key)
        tested.append((v, b.value.dropna(), c.value.dropna()))
    # Benjamini-Hochberg (1995): the i-th smallest of m p-values times m / i, made monotone
    # from the largest down, capped at 1
    ps = [v.p for v, _, _ in tested]
    finite = sorted((x, k) for k, x in enumerate(ps) if x == x)
    adj, run = [float("nan")] * len(ps), 1.0
    for rank in range(len(finite), 0, -1):
        x, k = finite[rank - 1]
        run = min(run, x * len(finite) / rank)
        adj[k] = run
    for (v, vb, vc), a in zip(tested, adj):
        if v.scale == "log":
            beyond = abs(v.effect) > np.log1p(0.1)
        else:
            beyond = abs(vc.mean() - vb.mean()) > (0.0 if v.metric == "nfe" else 0.1) * abs(vb.mean())
        decided = v.test in ("exact", "tolerance") or a <= 0.05
        same = sorted(vb) == sorted(vc)
        if beyond and decided and not same:
            want = "improvement" if vc.mean() < vb.mean() else "regression"  # (lower is better)
        elif beyond and not same:
            want = "inconclusive"
        else:
            want = "no change"
        assert v.verdict == want, (v.cell, v.test, v.effect, a)
    assert {v.verdict for v in got.values()} >= {"regression", "improvement", "no change",
                                                 "inconclusive"}


def test_a_huge_comparison_lists_every_change_and_counts_the_unchanged_points():
    from genbench.harness.verdicts.compare import MAX_UNCHANGED, Comparison, Verdict, render_markdown

    def point(i: int, verdict: str) -> Verdict:
        return Verdict("s", "a", f"i={i}", "", "fid_domain", 1.0, 1.0, 0.0, -0.1, 0.1, 2, 2,
                       "paired", 0.9, verdict)

    result = Comparison("b", "c", verdicts=[point(i, "no change") for i in range(MAX_UNCHANGED + 50)]
                        + [point(-1, "regression"), point(-2, "inconclusive")])
    text = render_markdown(result)
    assert "| regression | a | i=-1 |" in text and "| inconclusive | a | i=-2 |" in text
    assert text.count("| no change |") == MAX_UNCHANGED
    assert "50 more points with no change are not listed below (--json lists every point)" in text


def test_points_of_status_and_timing_rows_only_leave_nothing_to_judge():
    """After the status and wall-clock rows are set aside nothing may be left: no verdict, and
    compare then refuses the comparison ('compared nothing'), never a traceback."""
    from genbench.harness.verdicts.compare import JUDGED, Comparison, _judge

    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in JUDGED}).astype(
        {"seed": "int64", "value": float})
    result = Comparison("b", "c")
    _judge(empty, empty, 0.05, result)
    assert result.verdicts == [] and result.judged == 0


def test_a_memory_change_below_its_floor_is_not_a_regression_and_one_above_is(cur, tmp_path,
                                                                               capsys):
    """A phase's memory increase near zero moves by tens of MB with the allocator's state (CI
    saw the DDIM setting's 0.6 MB become 59 MB): below the 128 MiB floor that is no change;
    +400 MB on a 300 MB fit peak is still a regression."""
    def shift(mb, metric):
        def change(df):
            df.loc[df.metric == metric, "value"] += mb
            return df
        return change

    rewrite(cur, shift(60, "sample_peak_mem_mb"))
    code, result = verdicts(capsys, cur)
    mem = [v for v in result["verdicts"] if v["metric"] == "sample_peak_mem_mb"]
    assert code == 0 and mem and all(v["verdict"] != "regression" for v in mem)
    rewrite(cur, shift(400, "peak_mem_mb"))
    code, result = verdicts(capsys, cur)
    assert code == 1 and {v["metric"] for v in result["verdicts"]
                          if v["verdict"] == "regression"} == {"peak_mem_mb"}


@pytest.mark.e2e
def test_a_3x_fid_regression_at_one_setting_of_a_two_seed_run_is_caught_and_the_gate_says_what_it_could_catch(
        tmp_path, domain_extractor, capsys):
    """`ddpm_respacing` at two seeds (its grid of 50, 100 and 1,000 steps; shrunken: a tiny
    U-Net, 4 training steps, 8 samples, in this process), and a copy whose fid_domain at
    steps=50 is three times worse at every seed: compared per seed on the log scale, the change
    is exact at both seeds, so two seeds catch it (exit 1, the line names the point), where a
    paired t on the raw difference with one degree of freedom under Holm could not; the page
    says what the comparison could detect."""
    base = tmp_path / "base"
    tiny = ["--set", "n_feat=8", "--set", "ch_mult=[1,2]", "--set", "attention=false"]
    assert main(["run", "ddpm_respacing", "--out", str(base), "--set", "seeds=[0,1]", *tiny,
                 "--set", "pretrained=",  # (trained here: the zoo's model is not tiny)
                 "--set", "budget_steps=4", "--set", "n_samples=8", "--set", "log_every=2",
                 "--in-process", "--no-report"]) == 0
    capsys.readouterr()
    cur = tmp_path / "cur"
    shutil.copytree(base, cur)
    hit = lambda df: (df.metric == "fid_domain") & (df.setting_json == '{"steps":50}')  # noqa: E731
    rewrite(cur, lambda df: df.assign(value=df.value.where(~hit(df), df.value * 3)))
    assert main(["compare", str(base), str(cur)]) == 1
    out = capsys.readouterr().out
    (line,) = [x for x in out.splitlines() if x.startswith("| regression |")]
    assert "| ddpm | (base) | steps=50 | fid_domain |" in line
    assert "| x3 |" in line and "| exact |" in line  # (x3, no interval: the same at every seed)
    assert "could have caught, with power 0.8" in out and "fid_domain" in out.split("could have caught")[1]
    assert main(["compare", str(base), str(base)]) == 0  # and the run against itself passes

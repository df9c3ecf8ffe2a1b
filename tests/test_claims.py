"""Claims (genbench.harness.verdicts.claims) and the statistics behind them
(genbench.harness.verdicts.stats), against simulations with a known truth: A/A claims are
decided at most at the nominal rate, large effects are reproduced, reversed claims
contradicted, pairing decides what Welch cannot, Holm keeps the family-wise rate, and
`seeds_needed` is what a simulation needs. Then the claim language, the one-line refusals at
plan time, and the verdicts of a real run."""

import json
import re
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from genbench.harness.verdicts import stats
from genbench.harness.verdicts.claims import Claim
from genbench.harness.verdicts.judge import evaluate, exit_status, more_seeds, render_json
from genbench.harness.verdicts.points import Catalog, Point, resolve
from genbench.harness.errors import GenbenchError
from genbench.harness.plan.resolve import resolve_study

A = Point("m", '{"k":1}', "{}")
B = Point("m", '{"k":2}', "{}")
CATALOG = Catalog({"fid": ("setting", False), "acc": ("setting", True)})


def rows_of(values: dict[Point, dict[int, float]], metric: str, higher: bool) -> pd.DataFrame:
    recs = [dict(arm=p.arm, cell_json=p.cell_json, setting_json=p.setting_json, metric=metric,
                 seed=s, value=v, higher_is_better=higher, note=None)
            for p, vals in values.items() for s, v in vals.items()]
    return pd.DataFrame(recs)


def judge(x, y, *, metric="fid", by=0.0, by_abs=None, alpha=0.05, explain=True):
    """The verdict of 'metric: k=1 better than k=2' with k=1 measuring x and k=2 y (by seed)."""
    claim = Claim(metric, "k=1", "k=2", by=by, by_abs=by_abs)
    (resolved,) = resolve([claim], [A, B], CATALOG)
    rows = rows_of({A: dict(enumerate(x)), B: dict(enumerate(y))}, metric, metric == "acc")
    return evaluate([resolved], rows, alpha=alpha, explain=explain)[0]


def paired(rng, n, effect, sd_seed=5.0, sd_pair=1.0):
    """Two sides sharing a seed effect (the noise pairing removes) and their own small noise."""
    seed = rng.normal(100, sd_seed, n)
    return seed + effect + rng.normal(0, sd_pair, n), seed + rng.normal(0, sd_pair, n)


def test_aa_claims_are_decided_at_most_at_the_nominal_rate():
    rng = np.random.default_rng(0)
    verdicts = [judge(*paired(rng, 5, 0.0), explain=False).verdict for _ in range(600)]
    decided = sum(v != "inconclusive" for v in verdicts) / len(verdicts)
    # nominal 5 %; binomial sd over 600 draws is 0.9 %
    assert decided <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 600), decided
    assert decided > 0.005  # a test that never decides anything would pass the line above


def test_large_effects_are_reproduced_and_reversed_claims_contradicted():
    rng = np.random.default_rng(1)
    for _ in range(20):
        better, worse = paired(rng, 4, -5.0)  # fid: lower is better; 5 pair-sds apart
        r = judge(better, worse)
        assert r.verdict == "reproduced" and r.test == "paired t" and r.seeds == 4
        assert r.effect < 0 and r.ci[1] < 0 and r.p <= r.level == 0.05
        assert judge(worse, better).verdict == "contradicted"
    acc_hi, acc_lo = paired(rng, 4, 5.0)  # higher is better
    assert judge(acc_hi, acc_lo, metric="acc").verdict == "reproduced"
    assert judge(acc_lo, acc_hi, metric="acc").verdict == "contradicted"


def test_pairing_decides_what_welch_on_the_same_numbers_cannot():
    rng = np.random.default_rng(2)
    x, y = paired(rng, 4, -3.0, sd_seed=20.0, sd_pair=0.5)
    assert judge(x, y).verdict == "reproduced"
    welch = stats.estimate({i: v for i, v in enumerate(x)}, {10 + i: v for i, v in enumerate(y)})
    assert welch.test == "welch" and welch.lo < 0 < welch.hi  # seed noise swamps it unpaired


def test_sides_without_common_seeds_fall_back_to_welch():
    est = stats.estimate({0: 1.0, 1: 2.0, 2: 3.0}, {5: 5.0, 6: 6.0, 7: 7.5})
    ref = sps.ttest_ind([1, 2, 3], [5, 6, 7.5], equal_var=False)
    assert est.test == "welch" and math.isclose(est.p_two_sided(), ref.pvalue, rel_tol=1e-9)
    pair = stats.estimate({0: 1.0, 1: 2.5, 2: 3.0}, {0: 5.0, 1: 6.0, 2: 7.5})
    ref = sps.ttest_rel([1, 2.5, 3], [5, 6, 7.5])
    assert pair.test == "paired t" and math.isclose(pair.p_two_sided(), ref.pvalue, rel_tol=1e-9)
    lo, hi = sps.t.interval(0.95, 2, loc=np.mean([-4, -3.5, -4.5]), scale=sps.sem([-4, -3.5, -4.5]))
    assert math.isclose(pair.lo, lo) and math.isclose(pair.hi, hi)


def test_one_seed_is_always_inconclusive():
    r = judge([1.0], [100.0])
    assert r.verdict == "inconclusive" and r.seeds_needed is None and "one seed" in r.why
    assert r.test == "none" and not math.isfinite(r.p)


def test_an_effect_within_by_says_more_seeds_will_not_decide_it():
    x = [90.0, 91.0, 89.5, 90.5]
    y = [100.0, 101.0, 99.0, 100.5]  # about 10 % better every seed
    assert judge(x, y).verdict == "reproduced"
    assert judge(x, y, by=0.05).verdict == "reproduced"
    r = judge(x, y, by=0.2)  # the claim asks for 20 %
    assert r.verdict == "inconclusive" and "within `by`" in r.why and r.seeds_needed is None
    assert judge(x, y, by_abs=5.0).verdict == "reproduced"


def test_deterministic_differences_are_exact():
    r = judge([1.0, 1.0], [5.0, 5.0])
    assert r.verdict == "reproduced" and r.test == "exact" and r.ci == (-4.0, -4.0)
    assert judge([5.0, 5.0], [5.0, 5.0]).why.startswith("the two sides measure the same")


def test_holm_keeps_the_family_wise_rate_across_claims():
    rng = np.random.default_rng(3)
    points = [Point("m", json.dumps({"k": i}), "{}") for i in range(10)]
    claims = [Claim("fid", f"k={2 * i}", f"k={2 * i + 1}") for i in range(5)]
    resolved = resolve(claims, points, CATALOG)
    any_decided = 0
    for _ in range(300):
        vals = {}
        for i in range(5):
            x, y = paired(rng, 5, 0.0)
            vals[points[2 * i]], vals[points[2 * i + 1]] = dict(enumerate(x)), dict(enumerate(y))
        results = evaluate(resolved, rows_of(vals, "fid", False), explain=False)
        any_decided += any(r.verdict != "inconclusive" for r in results)
    assert any_decided / 300 <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)
    adj = stats.holm([0.01, 0.04, 0.03, float("nan")])
    assert adj[:3] == pytest.approx([0.03, 0.06, 0.06]) and math.isnan(adj[3])


@pytest.mark.parametrize("distance,sd", [(1.0, 2.0), (2.0, 3.0), (0.5, 0.5)])
def test_seeds_needed_is_what_a_simulation_needs(distance, sd):
    need = stats.seeds_needed(distance, sd=sd)
    rng = np.random.default_rng(4)

    def power(n: int, reps: int = 4000) -> float:
        d = rng.normal(distance, sd, (reps, n))
        t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
        return float((t > sps.t.ppf(0.975, n - 1)).mean())

    simulated = next(n for n in range(2, 400) if power(n) >= 0.8)
    assert abs(need - simulated) <= 0.3 * simulated, (need, simulated)


def test_seeds_needed_of_an_inconclusive_claim_and_the_round_it_asks_for():
    rng = np.random.default_rng(5)
    x, y = paired(rng, 3, -0.6, sd_pair=1.0)
    r = judge(x, y)
    assert r.verdict == "inconclusive" and r.seeds_needed and r.seeds_needed > 3
    assert f"about {r.seeds_needed} seeds" in r.why
    have = {("m", f'{{"k":{k}}}'): {0, 1, 2} for k in (1, 2, 3)}
    cells, seeds, line = more_seeds(have, [r], max_seeds=5)
    assert cells == {("m", '{"k":1}'), ("m", '{"k":2}')}  # not k=3: no claim involves it
    assert seeds == (0, 1, 2, 3, 4) and "adding seeds 3-4" in line
    cells, _, line = more_seeds({c: set(range(5)) for c in have}, [r], max_seeds=5)
    assert cells is None and "--max-seeds 5 reached" in line


def test_json_has_null_never_nan():
    results = [judge([1.0], [2.0]), judge([1.0, 2.0, 1.5], [3.0, 4.0, 3.2])]
    text = render_json(results)
    assert "NaN" not in text
    data = json.loads(text)
    assert data[0]["p"] is None and data[0]["ci"] == [None, None] and data[0]["seeds_needed"] is None
    assert {"claim", "verdict", "effect", "ci", "p", "seeds", "seeds_needed", "test"} <= set(data[1])
    assert exit_status(results) == 3
    assert exit_status([results[1]]) == 0


@pytest.mark.parametrize("text,fields", [
    ("fid_domain: steps=50 better than steps=10", dict(by=0.0, by_abs=None, combine="one")),
    ("fid_domain: T=1000 better than T=500 by 5%", dict(by=0.05)),
    ("w1_exact: score=exact better than score=learned by 0.01 (mean)", dict(by_abs=0.01, combine="mean")),
    ("class_match: guidance=5.0 better than guidance=0.0 (all)", dict(combine="all")),
    ("fid_domain: ddpm: steps=250, clip_x0=False better than arm=gan", dict(better="ddpm: steps=250, clip_x0=False")),
])
def test_a_claim_reads_and_writes_as_one_line(text, fields):
    c = Claim.parse(text)
    assert c.text == text and Claim.parse(c.text) == c
    for k, v in fields.items():
        assert getattr(c, k) == v


def test_sides_select_points_by_arm_and_grid_values_and_say_how_they_combine():
    pts = [Point(arm, json.dumps({}), json.dumps({"steps": s, "clip_x0": c}))
           for arm in ("ddpm",) for s in (50, 250) for c in (False, True)] + [Point("gan", "{}", "{}")]
    cat = Catalog({"fid_domain": ("setting", False)})
    (r,) = resolve(["fid_domain: ddpm: steps=250, clip_x0=False better than arm=gan"], pts, cat)
    assert r.comparisons == (((pts[2],), (pts[4],)),)
    (r,) = resolve(["fid_domain: steps=250 better than steps=50 (all)"], pts, cat)
    assert [(b[0].coords()["clip_x0"], t[0].coords()["clip_x0"]) for b, t in r.comparisons] == \
        [(False, False), (True, True)]  # paired on the axis neither side names
    (r,) = resolve(["fid_domain: steps=250 better than steps=50 (mean)"], pts, cat)
    assert len(r.comparisons) == 1 and len(r.comparisons[0][0]) == 2
    with pytest.raises(GenbenchError, match="ambiguous: it matches 2 points"):
        resolve(["fid_domain: steps=250 better than steps=50"], pts, cat)
    with pytest.raises(GenbenchError, match="no axis 'T'"):
        resolve(["fid_domain: T=500 better than steps=50, clip_x0=True"], pts, cat)
    with pytest.raises(GenbenchError, match="no arm 'vae'"):
        resolve(["fid_domain: arm=vae better than arm=gan"], pts, cat)


@pytest.mark.parametrize("claim,match", [
    ("fid_x: steps=50 better than steps=10", "unknown metric 'fid_x'"),
    ("class_match: steps=50 better than steps=10", "does not measure class_match"),
    ("terminal_snr: steps=50 better than steps=10", "has no good direction"),
    ("fid_domain: steps=7 better than steps=10", "matches no point of the plan"),
    ("fid_domain: sampler=ddim better than sampler=ddpm", "ambiguous"),
    ("fid_domain: steps=50 over steps=10", "malformed claim"),
    ("fid_domain: steps=50 better than steps=10 by -5%", "by must be a number >= 0"),
])
def test_bad_claims_are_refused_when_the_plan_resolves(claim, match, capsys):
    from genbench.harness.cli import main

    assert main(["plan", "ddim_vs_ddpm", "--claim", claim]) == 2
    err = capsys.readouterr().err
    assert match in err and err.count("\n") == 1, err


def test_every_shipped_study_declares_claims_that_resolve():
    from genbench.harness.plan.study import load_study, study_names

    for name in study_names():
        if name == "zoo":  # it makes the shipped models (one seed each), it tests no paper
            continue
        study = load_study(name)
        assert study.claims, f"{name} declares no claims"
        for c in study.claims:  # each with where it comes from, and readable as one line
            assert isinstance(c, Claim) and c.source, f"{name}: {c} names no source"
            assert Claim.parse(c.text, c.source) == c
        own = [s.claims for s in study.scales.values() if s.claims is not None]
        assert len(resolve_study(study, "smoke").claims) == len(own[0] if own else study.claims)


CLAIM = "fid_domain: lr=0.5, noise=0.2 better than lr=0.5, noise=0.8"
CLAIMS_STUDY = """from genbench import Claim, Scale, Study
STUDY = Study(name="clm", method="dummy", data="mnist5k", seeds=(0,), config=dict(batch_size=16),
    train_grid={"lr": [0.5, 0.05]}, sample_grid={"noise": [0.2, 0.8]}, metrics=("fid_domain",),
    claims=(Claim("fid_domain", better="lr=0.5, noise=0.2", than="lr=0.5, noise=0.8",
                  source="the dummy's noise knob"),),
    scales={"smoke": Scale(budget_steps=4, n_samples=64, log_every=2)})
"""


@pytest.mark.e2e
def test_a_run_adds_seeds_until_its_claims_are_decided(tmp_path, domain_extractor, capsys):
    from genbench.harness.cli import main
    from genbench.harness.plan.plan import read_plan
    from genbench.harness.store.results import read_current

    f = tmp_path / "clm.py"
    f.write_text(CLAIMS_STUDY)
    out = tmp_path / "out"
    assert main(["run", str(f), "--out", str(out), "--no-report", "--until-decided",
                 "--max-seeds", "3", "--in-process"]) == 0
    text = capsys.readouterr().out
    lines = [x for x in text.splitlines() if x.startswith(("claim ", "until decided"))]
    assert lines[0].startswith("claim inconclusive") and "one seed decides nothing" in lines[0]
    assert lines[1].startswith("until decided: next look at 3 seeds: adding seeds 1-2 to 1 train cell")
    assert lines[2].startswith("claim reproduced    fid_domain: lr=0.5, noise=0.2 better than")
    assert "3 seeds, paired t of log ratios" in lines[2]  # (fid_domain compares as ratios)
    assert lines[3] == "until decided: every claim is decided (1)"
    record = json.loads((out / "looks.json").read_text())  # the looks it took, for replays
    assert record["design"]["max_seeds"] == 3 and [
        look["comparisons"][CLAIM]["seeds"] for look in record["looks"]] == [[0], [0, 1, 2]]
    rows, _ = read_current(out, read_plan(out))
    seeds = rows[(rows.metric == "fid_domain") & (rows.arm != "real")].groupby("cell_json").seed.unique().map(sorted)
    assert seeds.to_dict() == {'{"lr":0.05}': [0], '{"lr":0.5}': [0, 1, 2]}  # only the claim's cell

    # the same command again: decided from what is there, nothing runs
    assert main(["run", str(f), "--out", str(out), "--no-report", "--until-decided",
                 "--max-seeds", "3", "--in-process"]) == 0
    text = capsys.readouterr().out
    assert "nothing to run" in text and "claim reproduced" in text and "adding" not in text
    assert len(json.loads((out / "looks.json").read_text())["looks"]) == 2  # the same data: no look
    # its design is fixed at its first look: another --max-seeds is refused before any work
    assert main(["run", str(f), "--out", str(out), "--until-decided", "--max-seeds", "5",
                 "--in-process"]) == 2
    assert "took its looks with --max-seeds 3" in capsys.readouterr().err

    assert main(["claims", str(out), "--json"]) == 0
    (res,) = json.loads(capsys.readouterr().out)
    assert (res["verdict"], res["seeds"], res["test"], res["source"]) == (
        "reproduced", 3, "paired t", "the dummy's noise knob")
    assert res["effect"] < 0 and res["ci"][1] < 0 and res["seeds_needed"] is None
    assert main(["claims", str(out), "--claim",
                 "fid_domain: lr=0.5, noise=0.8 better than lr=0.5, noise=0.2"]) == 1
    assert capsys.readouterr().out.startswith("contradicted")
    assert main(["claims", str(out), "--claim",
                 "fid_domain: lr=0.05, noise=0.2 better than lr=0.05, noise=0.8"]) == 3
    assert "1 inconclusive" in capsys.readouterr().out
    assert main(["claims", str(out), "--claim", "class_match: noise=0.2 better than noise=0.8"]) == 2
    assert "does not measure class_match" in capsys.readouterr().err

    # more seeds for every cell: the trials start seed-major (seed 1 of each cell before seed 2)
    assert main(["run", str(f), "--out", str(out), "--set", "seeds=[0,1,2,3]", "--in-process"]) == 0
    started = [int(re.search(r"\[\w+-s(\d+)\]", x)[1]) for x in capsys.readouterr().out.splitlines()
               if x.strip().startswith("started") and " real " not in x]  # (not the floor)
    # plan order would start lr=0.5's seed 3 first; seed-major starts seeds 1 and 2 of lr=0.05
    # first (the driver orders the work, whoever runs it)
    assert started == [1, 2, 3, 3]
    page = (out / "report" / "index.html").read_text()
    assert page.index("<h2>Claims</h2>") < page.index("<h2>Runs</h2>")
    assert "<td class='reproduced'>reproduced</td>" in page and "the dummy&#x27;s noise knob" in page


def test_claims_on_a_run_made_before_claims(tmp_path, capsys):
    """A directory whose study.json has no claims (as every run before them): claims given on
    the command line are tested on its rows."""
    import shutil

    from genbench.harness.cli import main

    base = tmp_path / "base"
    shutil.copytree("benchmarks/baselines/regression", base)
    study = json.loads((base / "study.json").read_text())
    del study["claims"]  # as a study.json written before claims
    (base / "study.json").write_text(json.dumps(study))
    assert main(["claims", str(base)]) == 2  # its study declared none
    assert "declares no claims" in capsys.readouterr().err
    code = main(["claims", str(base), "--json", "--claim",
                 "nfe: ddpm: sampler=ddim, steps=20 better than ddpm: sampler=ddpm"])
    (res,) = json.loads(capsys.readouterr().out)
    # 20 network evaluations against 100 at every seed: exact, decided
    from genbench.studies.regression import SEEDS

    assert code == 0 and (res["verdict"], res["test"], res["effect"], res["seeds"]) == (
        "reproduced", "exact", -80.0, len(SEEDS))


def test_a_set_that_removes_what_a_study_claim_names_leaves_the_claim_out(capsys):
    from genbench.harness.cli import main

    assert main(["plan", "ddpm_respacing", "--set", "steps=50"]) == 0
    out = capsys.readouterr().out
    assert ("claim left out by --set or --arm: fid_domain: steps=1000 better than steps=50 (side "
            "'steps=1000' matches no point of the plan (steps takes 50))") in out
    # a claim given on the command line is never left out: refused
    assert main(["plan", "ddpm_respacing", "--set", "steps=50", "--claim",
                 "fid_domain: steps=1000 better than steps=50"]) == 2


def test_a_tiny_relative_effect_reads_below_one_percent_never_minus_zero():
    from genbench.harness.verdicts.judge import Result

    def line(rel, scale="linear"):
        if scale == "log":  # (the effect and interval of a ratio are log ratios)
            log = math.log1p(rel)
            return Result("c", "", "m", "inconclusive", log, rel, (log, log), (rel, rel), 0.5,
                          0.05, 3, 9, "paired t", scale=scale).line()
        return Result("c", "", "m", "inconclusive", -0.3, rel, (-1.0, 0.4), (rel, rel), 0.5, 0.05,
                      3, 9, "paired t", scale=scale).line()

    assert "(-<1%)" in line(-0.004) and "(-0%)" not in line(-0.005)
    assert "(+<1%)" in line(0.003) and "(+0%)" in line(0.0) and "(-80%)" in line(-0.8)
    assert "effect -<1% [-<1%, -<1%]" in line(-0.004, "log") and "p=0.5 > 0.05" in line(0.1)

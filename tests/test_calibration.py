"""The verdicts' error rates, measured on the procedures themselves: `genbench.harness.verdicts.calibration`
drives the real decision code (`claims.decide` at each look and `more_seeds` between looks; the
regression gate's column-wise `compare._judge`) on per-seed values drawn with a known truth. A
false verdict is any decided claim of an A/A run (no true effect); the power, the share of runs
with a true effect where it is found. Bounds are the nominal rate plus three Monte-Carlo
standard errors; benchmarks/bench_calibration.py prints the same rates with more runs."""

import math

import pytest

from genbench.harness.verdicts import stats
from genbench.harness.verdicts.calibration import claim_rates, gate_rates
from genbench.harness.verdicts.sequential import Design

ALPHA = 0.05
BOUND = lambda runs: ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs)  # noqa: E731


@pytest.mark.parametrize("max_seeds", [3, 5, 10, 20])
def test_until_decided_gives_a_false_verdict_in_at_most_alpha_of_aa_runs(max_seeds):
    rates = claim_rates(effect=0.0, max_seeds=max_seeds, runs=1000, seed=max_seeds)
    assert rates.decided <= BOUND(1000), rates
    assert rates.decided >= 0.02, rates  # it does decide: a procedure that never did would pass


class EveryLookAtAlpha(Design):
    """The procedure before the design: every round tested at the full alpha."""

    def level(self, looks, alpha):
        return alpha


def test_testing_every_round_at_alpha_is_the_error_the_design_removes():
    """The same simulation catches the optional-stopping error of the old rule (about 11 % at
    10 seeds for 5 % nominal): these bounds can fail."""
    naive = claim_rates(effect=0.0, max_seeds=10, runs=1000, seed=1, design=EveryLookAtAlpha)
    assert naive.decided > BOUND(1000) + 0.01, naive


def test_a_true_effect_of_one_standard_deviation_is_decided_within_ten_seeds():
    rates = claim_rates(effect=1.0, max_seeds=10, runs=500, seed=2)
    assert rates.reproduced >= 0.7, rates
    assert rates.seeds < 10  # it stops early where it can: fewer seeds than the fixed design
    wrong_way = claim_rates(effect=-1.0, max_seeds=10, runs=300, seed=3)
    assert wrong_way.reproduced == 0 and wrong_way.decided >= 0.7  # contradicted, never reproduced


def test_several_claims_keep_the_family_wise_rate_over_the_looks():
    rates = claim_rates(effect=0.0, max_seeds=10, claims=3, runs=600, seed=4)
    assert 0.01 <= rates.decided <= BOUND(600), rates


def test_one_fixed_look_is_the_t_test_at_alpha():
    rates = claim_rates(effect=0.0, max_seeds=None, first=6, runs=2000, seed=5)
    assert abs(rates.decided - ALPHA) <= 3 * rates.se(ALPHA), rates


def test_the_gate_raises_a_false_alarm_in_at_most_alpha_of_aa_comparisons_of_50_points():
    rates = gate_rates(points=50, seeds=5, sd=0.3, runs=300, seed=5)
    assert rates.decided <= BOUND(300), rates


def test_the_gate_catches_a_1_5x_regression_at_the_regression_studys_seeds():
    """The regression study's seeds (studies/regression.py) against its planning noise: a 1.5x
    fid_domain regression of one point among the suite's points is caught with power 0.8."""
    from genbench.studies.regression import PLANNING_NOISE, POINTS, SEEDS

    rates = gate_rates(points=POINTS, seeds=len(SEEDS), sd=PLANNING_NOISE, regressed=(0,),
                       ratio=1.5, runs=300, seed=6)
    assert rates.reproduced >= 0.8, rates


def test_the_detectable_effect_is_the_power_the_simulation_finds():
    """`stats.detectable`: at the effect it names, a paired t test has power 0.8 (simulated)."""
    import numpy as np

    for n, alpha in ((3, 0.05), (8, 0.001)):
        delta = float(stats.detectable(n, 1.0, alpha=alpha))
        rng = np.random.default_rng(n)
        d = rng.normal(delta, 1.0, (20000, n))
        t = d.mean(1) / (d.std(1, ddof=1) / math.sqrt(n))
        power = float((np.abs(t) > stats.t_ppf(1 - alpha / 2, n - 1)).mean())
        assert abs(power - 0.8) < 0.015, (n, alpha, power)


STREAMS = str(__import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks" / "two_streams.py")


@pytest.mark.e2e
def test_until_decided_through_a_real_run_is_the_procedure_the_simulations_measure(tmp_path):
    """benchmarks/two_streams.py (two independent streams of one law, or stream b shifted) run
    under --until-decided on disjoint seeds, in this process: each run's verdict and seeds equal
    those `calibration.until_decided` gives on the values the run measured, so the rates the
    simulations above hold are those of real runs; `genbench.claims` replays the run's looks."""
    import numpy as np

    import genbench
    from genbench.harness.verdicts.calibration import until_decided

    for r, shift in enumerate([0.0, 0.0, 0.0, 0.3]):
        out = tmp_path / f"run{r}"
        genbench.run(STREAMS, out=out, sets={"seeds": [100 * r, 100 * r + 1], "shift": shift},
                     until_decided=True, max_seeds=6, in_process=True, echo=lambda line: None)
        rows = genbench.load(out)
        w1 = rows[rows.metric == "w1_exact"].pivot_table(index="seed", columns="setting_json",
                                                        values="value")
        values = np.full((1, 6, 2), np.nan)
        values[0, :len(w1)] = w1[['{"stream":"a"}', '{"stream":"b"}']].to_numpy()
        simulated = until_decided(values, first=2, max_seeds=6)
        (verdict,) = genbench.claims(out)
        assert (verdict.verdict, verdict.seeds) == (simulated.verdicts[0], simulated.seeds), r
        assert sorted(w1.index) == list(range(100 * r, 100 * r + len(w1)))  # its own seeds
        if shift:
            assert verdict.verdict == "reproduced" and verdict.seeds < 6  # decided early

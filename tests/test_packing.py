"""Resources per trial (study, arm, cell, `--gpus-per-trial`) and how trials pack onto nodes:
Ray's placement rules (fractions within one GPU, whole GPUs, CPUs), trials that could never
start refused before anything is written, and the wall time from calibrated durations."""

import pytest

from genbench.harness.cli import main
from genbench.harness.errors import GenbenchError
from genbench.harness.plan.packing import Node, memory_risks, simulate, unplaceable
from genbench.harness.plan.plan import Plan, Resources, Trial
from genbench.harness.plan.study import Arm, Scale, Study
from genbench.harness.plan.resolve import resolve_study


def trials(*resources: Resources) -> list[Trial]:
    return [Trial(trial_id=f"t{i}", arm="a", method="dummy", cell={}, config={}, config_hash=f"h{i}",
                  seed=0, budget_steps=1, resources=r) for i, r in enumerate(resources)]


def test_fractional_gpus_pack_within_one_gpu_and_cpus_bound_them():
    node = [Node("n", cpu=16, gpu=2)]
    quarter = simulate(trials(*[Resources(1, 0.25)] * 8), node)
    assert quarter.at_once == 8 and quarter.wall == 1  # four per GPU, two GPUs
    # 0.4 + 0.4 fill a GPU to 0.8: a third 0.4 cannot straddle two GPUs, so 2 per GPU
    assert simulate(trials(*[Resources(1, 0.4)] * 6), node).at_once == 4
    assert simulate(trials(*[Resources(1, 0.4)] * 6), node).wall == 2
    assert simulate(trials(*[Resources(6, 0.25)] * 8), node).at_once == 2  # CPUs bind first
    assert simulate(trials(*[Resources(1, 2)] * 3), node).at_once == 1  # whole GPUs


def _replay(queue: list[Trial], nodes: list[Node], durations: dict[str, float]):
    """Tune's order spelled out, trial by trial: at each moment every waiting trial, in plan
    order, starts on the first node with room; then the time moves to the next end."""
    import heapq

    from genbench.harness.plan.packing import _Free, effective

    queue, free, running = list(queue), [_Free.empty(n) for n in nodes], []
    placements, now, seq = {}, 0.0, 0
    while queue or running:
        for t in list(queue):
            res = effective(t.resources, nodes)
            for k, f in enumerate(free):
                taken = f.take(res)
                if taken is not None:
                    heapq.heappush(running, (now + durations[t.trial_id], seq, k, res, taken))
                    seq += 1
                    placements[t.trial_id] = (nodes[k].name, now, now + durations[t.trial_id])
                    queue.remove(t)
                    break
        if not running:
            break
        now = running[0][0]
        while running and running[0][0] <= now + 1e-9:
            _, _, k, res, taken = heapq.heappop(running)
            free[k].give(res, taken)
    return placements, now


def test_the_packing_replay_equals_tunes_order_trial_by_trial():
    """The replay groups waiting trials by what they ask for (so 100,000 trials plan in
    seconds); on random mixes of CPU, whole and fractional GPU requests over random clusters it
    places every trial where and when the trial-by-trial scan does."""
    import random

    rng = random.Random(0)
    for _ in range(40):
        nodes = [Node(f"n{i}", cpu=rng.choice([2, 4, 8]), gpu=rng.choice([0, 1, 2]))
                 for i in range(rng.randint(1, 3))]
        asks = [Resources(rng.choice([1, 2, 3]), rng.choice([0, 0, 0.25, 0.5, 1]))
                for _ in range(rng.randint(1, 60))]
        ts = trials(*asks)
        durations = {t.trial_id: rng.choice([1.0, 2.0, 3.5]) for t in ts}
        got = simulate(ts, nodes, durations)
        blocked = {t.trial_id for t, _ in unplaceable(ts, nodes)}
        want, wall = _replay([t for t in ts if t.trial_id not in blocked], nodes, durations)
        assert got.placements == want and got.wall == wall


def test_nodes_fill_in_order_and_durations_give_the_wall_time():
    nodes = [Node("big", cpu=4, gpu=1), Node("small", cpu=1, gpu=0)]
    # on a cluster with GPUs, a 0-GPU trial can land on a CPU-only node
    s = simulate(trials(Resources(1, 0.5), Resources(1, 0.5), Resources(1, 0.5), Resources(1, 0)),
                 nodes, durations={"t0": 10, "t1": 20, "t2": 5, "t3": 7})
    assert s.placements["t0"][:2] == ("big", 0) and s.placements["t1"][:2] == ("big", 0)
    assert s.placements["t2"][:2] == ("big", 10)  # waits for t0's half GPU
    assert s.placements["t3"][:2] == ("big", 0)  # first fit: the big node still had CPUs
    assert s.wall == 20 and s.at_once == 3 and s.per_node == {"big": 3, "small": 0}


def test_a_trial_no_node_can_hold_is_named_with_why():
    nodes = [Node("a", cpu=8, gpu=1), Node("b", cpu=2, gpu=0)]
    bad = unplaceable(trials(Resources(1, 1), Resources(9, 0), Resources(1, 2)), nodes)
    assert [t.trial_id for t, _ in bad] == ["t1", "t2"]
    assert bad[0][1] == "asks 9 CPU, 0 GPU and the largest node has 8 CPU, 1 GPU"
    # without any GPU in the cluster, GPU requests become CPU trials (as genbench run does)
    assert unplaceable(trials(Resources(1, 4)), [Node("cpu", 2, 0)]) == []
    s = simulate(trials(Resources(1, 0), Resources(3, 0)), [Node("c", 2, 0)])
    assert [t.trial_id for t, _ in s.pending] == ["t1"] and list(s.placements) == ["t0"]


def test_calibrated_peaks_that_do_not_fit_a_shared_gpu_are_named():
    ts = trials(Resources(1, 0.25), Resources(1, 0.5), Resources(1, 1))
    ts = [t.__class__(**{**t.__dict__, "arm": f"arm{i}"}) for i, t in enumerate(ts)]
    gpu_node = [Node("g", 16, 1)]
    timed = {f"h{i}": {"peak_mem_mb": 30_000, "device_mem_mb": 80_000} for i in range(3)}
    cells = {t.config_hash: t for t in ts}
    risks = memory_risks(cells, gpu_node, timed)  # 4 x 30 GB do not fit; 2 x 30 GB and 1 GPU do
    assert risks == ["4 trials of arm0 (base) share a GPU (gpu=0.25) and need 4 x 30500 MB "
                     "(with a CUDA context each) of its 80000 MB; give them a larger gpu share"]
    # 2 x 35 GB fit 90 % of 80 GB, but not with a CUDA context each
    tight = {h: {**c, "peak_mem_mb": 35_800} for h, c in timed.items()}
    assert [r.split(" share")[0] for r in memory_risks(cells, gpu_node, tight)] == [
        "4 trials of arm0 (base)", "2 trials of arm1 (base)"]
    cpu = {h: {**c, "device_mem_mb": 0.0} for h, c in timed.items()}  # calibrated on a CPU
    assert memory_risks(cells, gpu_node, cpu) == []


def _study(**arm_resources) -> Study:
    return Study(name="res", data="mnist5k", seeds=(0, 1),
                 arms=(Arm("small", "dummy", train_grid={"lr": [0.1, 0.2]},
                           resources=arm_resources.get("small")),
                       Arm("big", "dummy", resources=arm_resources.get("big"))),
                 resources=Resources(cpu=1, gpu=0.25),
                 scales={"smoke": Scale(budget_steps=2, n_samples=2),
                         "gpu": Scale(budget_steps=2, n_samples=2, resources=Resources(2, 0.5))})


def test_resources_come_from_the_arm_or_its_cells_and_the_command_line_wins():
    by_cell = lambda cfg: Resources(cpu=1, gpu=0.5 if cfg["lr"] > 0.15 else 0.25)  # noqa: E731
    plan = resolve_study(_study(small=by_cell, big=Resources(cpu=2, gpu=1)), "smoke")
    got = {(t.arm, t.cell.get("lr"), t.seed): (t.resources.cpu, t.resources.gpu) for t in plan.trials}
    assert got == {("small", 0.1, 0): (1, 0.25), ("small", 0.1, 1): (1, 0.25),
                   ("small", 0.2, 0): (1, 0.5), ("small", 0.2, 1): (1, 0.5),
                   ("big", None, 0): (2, 1), ("big", None, 1): (2, 1)}
    # an arm without resources takes the study's; a scale's resources are the whole study's
    assert {t.resources for t in resolve_study(_study(), "smoke").trials} == {Resources(1, 0.25)}
    assert {t.resources for t in resolve_study(_study(big=Resources(2, 1)), "gpu").trials} == {Resources(2, 0.5)}
    # --set gpu= (and --gpus-per-trial) override every trial, arms included
    sets = resolve_study(_study(big=Resources(cpu=2, gpu=1)), "smoke", {"gpu": 0.125})
    assert {t.resources.gpu for t in sets.trials} == {0.125}
    assert {t.resources.cpu for t in sets.trials if t.arm == "big"} == {2}
    # the plan round-trips through JSON with each trial's resources
    assert Plan.from_json(plan.to_json()).trials == plan.trials


@pytest.mark.parametrize("res, msg", [
    (Resources(cpu=0, gpu=0), "invalid resources per trial (0 CPU, 0 GPU)"),
    (Resources(cpu=1, gpu=1.5), "gpu=1.5 per trial: above 1, Ray takes whole GPUs only"),
    ("two GPUs", "resources must be a Resources"),
])
def test_bad_resources_are_refused_when_the_plan_resolves(res, msg):
    with pytest.raises(GenbenchError, match="arm 'big'") as err:
        resolve_study(_study(big=res), "smoke")
    assert msg in str(err.value)


def test_a_plan_that_cannot_fit_this_machine_is_refused_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["run", "quickstart", "--out", str(out), "--set", "cpu=64"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "can never start on this machine: it asks 64 CPU" in err[0]
    assert not out.exists()
    assert main(["plan", "quickstart", "--gpus-per-trial", "0.5", "--set", "cpu=64"]) == 1
    text = capsys.readouterr()
    # the quickstart's four arms at two seeds (the real-data floor's trials ask one CPU)
    assert text.out.count("pending forever") == 8 and "would refuse this plan" in text.err


def test_calibration_estimates_each_cell_and_the_wall_time(tmp_path, capsys):
    study = tmp_path / "cal.py"
    study.write_text(
        "from genbench import Scale, Study\n"
        "STUDY = Study(name='cal', method='dummy', data='mnist5k', seeds=(0, 1, 2),\n"
        "              train_grid={'lr': [0.1, 0.2]},\n"
        "              scales={'smoke': Scale(budget_steps=400, n_samples=128)})\n")
    assert main(["plan", str(study), "--calibrate", "4"]) == 0
    out = capsys.readouterr().out
    assert "calibrating 2 train cells (4 steps, 64 samples per setting) on this machine" in out
    assert out.count("ms/step") == 2 and out.count(" MB") >= 2 and out.count("; peak ") == 2
    assert "6 trials, 2 at once; estimated wall time ~" in out
    assert not list(tmp_path.glob("results*"))  # calibration writes no rows


def test_calibration_leaves_the_first_steps_one_off_costs_out(monkeypatch):
    """A short calibration must not spread the first steps' one-off costs (kernel selection,
    lazy allocation) over the whole budget: here step 1 costs 30 times a later step."""
    import time

    import torch

    from genbench.harness.run.calibrate import WARMUP_STEPS, calibrate_trial
    from genbench.methods.training import LossLog

    real_add = LossLog.add

    def add(self, step, losses, **schedule):
        time.sleep(0.3 if step == 1 else 0.01)
        real_add(self, step, losses, **schedule)

    monkeypatch.setattr(LossLog, "add", add)
    plan = resolve_study(Study(name="warm", method="dummy", data="mnist5k", metrics=(),
                 scales={"smoke": Scale(budget_steps=1000, n_samples=8)}), "smoke")
    timed = calibrate_trial(plan, plan.trials[0], torch.device("cpu"), steps=WARMUP_STEPS + 4, n=8)
    assert 0.01 <= timed["step_s"] < 0.02  # not (0.3 + 5 * 0.01) / 6 = 0.058
    assert 10 < timed["estimate_s"] < 25


def test_a_calibration_waiting_for_a_node_says_so_and_then_returns(ray_local):
    """On a busy cluster a calibration task waits for resources (legitimately, no timeout),
    but says every so often what it waits for instead of hanging in silence."""
    import time

    import ray

    from genbench.harness.run.driver import await_task

    lines = []
    ref = ray.remote(lambda: time.sleep(1.5) or 7).options(num_cpus=0).remote()
    assert await_task(ref, "trial t-s0", lines.append, every=0.4) == 7
    assert lines and all(line.startswith("  trial t-s0: no result after ") and
                         "waiting for a node with its resources" in line for line in lines)

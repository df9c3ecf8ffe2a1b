"""How a plan's trials pack onto a cluster (`genbench plan --address`, and the check `genbench
run` makes before any trial starts).

Ray places a trial on one node whose free CPUs and GPUs cover its request; a fractional GPU
request (`gpu=0.25`) must fit on a single GPU of that node, a request of whole GPUs takes that
many free GPUs (Ray's GPU instances). A trial that fits no node even when the node is empty
would stay pending forever: `unplaceable` names it and why, and `genbench run` refuses the plan.

`memory_risks` reads a calibration's peak memory (`--calibrate`) and names cells whose trials
would share a GPU without room for all of them.

`simulate` replays Tune's order (trials start in plan order as resources free up) on the
nodes: with estimated durations per trial (`genbench plan --calibrate`) it gives the estimated
wall time of the study; without, every trial counts as one unit of time, which shows the waves.
"""

from __future__ import annotations

import collections
import heapq
import math
import os
from dataclasses import dataclass, field

from genbench.harness.config import grid_text
from genbench.harness.plan.plan import Plan, Resources, Trial

EPS = 1e-9


@dataclass(frozen=True)
class Node:
    """What one node offers Ray."""

    name: str
    cpu: float
    gpu: float  # whole GPUs (Ray counts GPU instances)


def this_machine() -> list[Node]:
    """The node a local Ray would be: this machine's CPUs and CUDA GPUs."""
    import torch

    return [Node("this machine", float(os.cpu_count() or 1), float(torch.cuda.device_count()))]


def effective(res: Resources, nodes: list[Node]) -> Resources:
    """What a trial asks Ray for on these nodes: no GPU when the cluster has none (trials then
    run on CPU, as `genbench run` does)."""
    has_gpu = any(n.gpu > 0 for n in nodes)
    return res if has_gpu or res.gpu == 0 else Resources(res.cpu, 0.0)


@dataclass
class _Free:
    """A node's free CPUs and the free fraction of each of its GPUs."""

    node: Node
    cpu: float
    gpus: list[float] = field(default_factory=list)

    @classmethod
    def empty(cls, node: Node) -> "_Free":
        return cls(node, node.cpu, [1.0] * int(math.floor(node.gpu + EPS)))

    def take(self, res: Resources) -> list[tuple[int, float]] | None:
        """Reserve `res` here if it fits: the (gpu index, amount) taken, else None."""
        if res.cpu > self.cpu + EPS:
            return None
        if res.gpu == 0:
            taken = []
        elif res.gpu < 1:  # a fraction of one GPU: the fullest GPU that still has room
            fits = [i for i, f in enumerate(self.gpus) if f + EPS >= res.gpu]
            if not fits:
                return None
            i = min(fits, key=lambda j: self.gpus[j])
            taken = [(i, res.gpu)]
        else:
            free = [i for i, f in enumerate(self.gpus) if f >= 1 - EPS]
            if len(free) < int(res.gpu):
                return None
            taken = [(i, 1.0) for i in free[:int(res.gpu)]]
        self.cpu -= res.cpu
        for i, amount in taken:
            self.gpus[i] -= amount
        return taken

    def give(self, res: Resources, taken: list[tuple[int, float]]) -> None:
        self.cpu += res.cpu
        for i, amount in taken:
            self.gpus[i] += amount


def unplaceable(trials: tuple[Trial, ...] | list[Trial], nodes: list[Node]) -> list[tuple[Trial, str]]:
    """The trials no node could ever run, each with why (what it asks, what the largest node has)."""
    out = []
    for t in trials:
        res = effective(t.resources, nodes)
        if any(_Free.empty(n).take(res) is not None for n in nodes):
            continue
        most_cpu = max((n.cpu for n in nodes), default=0.0)
        most_gpu = max((n.gpu for n in nodes), default=0.0)
        out.append((t, f"asks {res} and the largest node has {most_cpu:g} CPU, {most_gpu:g} GPU"))
    return out


def refuse_unplaceable(plan_or_trials, nodes: list[Node], where: str) -> None:
    """One line, before anything runs, when some trial could never start on `nodes`."""
    from genbench.harness.errors import GenbenchError

    trials = plan_or_trials.trials if isinstance(plan_or_trials, Plan) else plan_or_trials
    bad = unplaceable(trials, nodes)
    if bad:
        t, why = bad[0]
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise GenbenchError(f"trial {t.trial_id} (arm {t.arm}) can never start on {where}: "
                            f"it {why}{more}; lower its resources (Arm.resources, --set cpu=/gpu=, "
                            "--gpus-per-trial) or add a bigger node")


CUDA_CONTEXT_MB = 500  # what each process holds beyond torch's allocator (its CUDA context)


def memory_risks(cells: dict, nodes: list[Node], timed: dict[str, dict[str, float]]) -> list[str]:
    """Calibrated cells whose trials would share a GPU (a fraction `gpu` < 1: floor(1/gpu) of
    them on one GPU) without room: their peaks (memory the allocator reserved over fit,
    sampling and metrics) plus a CUDA context each add up to more than 90 % of its memory.
    `cells` is `Plan.cells()`, `timed` `driver.calibrate`'s result (peak_mem_mb, device_mem_mb),
    both by config hash."""
    out = []
    for h, c in timed.items():
        t = cells[h]
        share = effective(t.resources, nodes).gpu
        if not c.get("device_mem_mb") or not 0 < share < 1:
            continue
        per_gpu = math.floor(1 / share + EPS)
        need = c["peak_mem_mb"] + CUDA_CONTEXT_MB
        if per_gpu * need > 0.9 * c["device_mem_mb"]:
            out.append(f"{per_gpu} trials of {t.arm} {grid_text(t.cell)} share a GPU "
                       f"(gpu={share:g}) and need {per_gpu} x {need:.0f} MB (with a CUDA "
                       f"context each) of its {c['device_mem_mb']:.0f} MB; give them a larger "
                       "gpu share")
    return out


@dataclass(frozen=True)
class Schedule:
    """Where and when each trial would run."""

    placements: dict[str, tuple[str, float, float]]  # trial_id -> (node, start, end)
    at_once: int  # the most trials running together
    per_node: dict[str, int]  # node -> the most trials it runs together
    wall: float  # end of the last trial (seconds with durations, else waves)
    pending: list[tuple[Trial, str]]  # trials that can never start, and why


def simulate(trials: tuple[Trial, ...] | list[Trial], nodes: list[Node],
             durations: dict[str, float] | None = None) -> Schedule:
    """Replay the trials in order on `nodes`: each starts on the first node with room as soon
    as one has it (Ray's placement, Tune's order); `durations` in seconds, default 1 each."""
    pending = unplaceable(trials, nodes)
    blocked = {t.trial_id for t, _ in pending}
    has_gpu = any(n.gpu > 0 for n in nodes)
    # the waiting trials by what they ask for, each kind in plan order: when the first of a
    # kind does not fit, none of that kind does until a trial ends (room only shrinks while
    # trials start), so one pass over the kinds' first trials replays Tune's in-order scan
    kinds: dict[Resources, collections.deque] = {}
    for pos, t in enumerate(trials):
        if t.trial_id not in blocked:
            res = t.resources if has_gpu or t.resources.gpu == 0 else Resources(t.resources.cpu, 0.0)
            kinds.setdefault(res, collections.deque()).append((pos, t))
    free = [_Free.empty(n) for n in nodes]
    running: list[tuple[float, int, int, Resources, list]] = []  # (end, seq, node, res, taken)
    placements: dict[str, tuple[str, float, float]] = {}
    per_node = {n.name: 0 for n in nodes}
    on_node = [0] * len(nodes)
    now, at_once, seq = 0.0, 0, 0
    while kinds or running:
        heads = [(q[0][0], res) for res, q in kinds.items()]  # each kind's first, in order
        heapq.heapify(heads)
        while heads:  # start every waiting trial that fits, in order
            _, res = heapq.heappop(heads)
            q = kinds[res]
            t = q[0][1]
            for k, f in enumerate(free):
                taken = f.take(res)
                if taken is None:
                    continue
                end = now + (durations or {}).get(t.trial_id, 1.0)
                heapq.heappush(running, (end, seq, k, res, taken))
                seq += 1
                on_node[k] += 1
                per_node[nodes[k].name] = max(per_node[nodes[k].name], on_node[k])
                placements[t.trial_id] = (nodes[k].name, now, end)
                q.popleft()
                if q:
                    heapq.heappush(heads, (q[0][0], res))
                else:
                    del kinds[res]
                break
        at_once = max(at_once, len(running))
        if not running:
            break
        now, _, k, res, taken = heapq.heappop(running)
        free[k].give(res, taken)
        on_node[k] -= 1
        while running and running[0][0] <= now + EPS:  # every trial ending at the same time
            _, _, k2, res2, taken2 = heapq.heappop(running)
            free[k2].give(res2, taken2)
            on_node[k2] -= 1
    return Schedule(placements, at_once, per_node, now, pending)

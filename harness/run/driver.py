"""The driver: a run around the Tune adapter (`genbench.harness.run.tune`). It refuses what cannot
work before writing anything (an output directory of another study or in use, an unreachable
cluster, a trial no node can hold), holds the directory's lock, reads the ledger, builds the
metric assets, records the plan, has Tune run the trials with work left, then measures fits
against each other (cross-seed evaluations) and says how the study stands; `calibrate` times
each train cell for `genbench plan --calibrate`.

Resuming uses genbench's own ledger (`genbench.harness.run.ledger`), not `Tuner.restore`: a rerun runs
exactly the fits and sample-setting measurements that are missing or stale.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

from genbench.harness.config import grid_text
from genbench.harness.metrics.assets import assets_dir
from genbench.harness.errors import GenbenchError, count, first_line
from genbench.harness.run.cluster import check_shared, connect, requested_address
from genbench.harness.store.compaction import compact, compact_at
from genbench.harness.run.provenance import git_sha, versions_json
from genbench.harness.store.files import current_umask
from genbench.harness.run.ledger import check_study, heal_plan, record_plan, scan
from genbench.harness.store.rundir import PROGRESS_NAME, OutputLock, RunDir
from genbench.harness.plan.packing import effective, refuse_unplaceable, this_machine
from genbench.harness.run.cluster import cluster_nodes
from genbench.harness.store.storage import (Remote, clear_progress, has_checkpoint, is_uri, mirror,
                                      mirror_dir, publishing, pull_checkpoints)
from genbench.harness.plan.plan import Plan, Trial, read_plan
from genbench.harness.run.rows import Env
from genbench.harness.run.trackers import Trackers
from genbench.harness.run.trial import TrialOutcome
from genbench.harness.run.inprocess import run_inprocess
from genbench.harness.run.tune import ray_device, run_tune


def prepare_metrics(plan: Plan, echo=print) -> None:
    """Build or load, in the driver, every asset the plan's quality metrics need (domain
    extractor, reference statistics), so trials only read them; fail early when one is missing
    and the study does not allow skipping it."""
    if not plan.metrics:
        return
    from genbench.harness.metrics.quality import Evaluator

    skipped = Evaluator(plan.data, plan.resolution, ref_split=plan.ref_split,
                        missing_assets=plan.missing_assets).prepare(plan.metrics, echo=echo)
    if skipped:
        echo(f"skipping {', '.join(skipped)}: Inception weights missing "
             "(see `genbench assets`); rows record the reason")


def calibrate(plan: Plan, address: str | None, *, steps: int = 20, n: int = 64,
              echo=None) -> dict[str, dict[str, float]]:
    """Time a short run of each train cell (`genbench.harness.run.calibrate.calibrate_trial`): on the cluster at
    `address` as Ray tasks with the trial's resources, else here in this process. Returns the
    timings by config hash; a cell whose calibration fails stops it, in one line."""
    import torch

    from genbench.harness.run.calibrate import calibrate_trial

    firsts = plan.cells().values()
    if address:
        import ray

        nodes = cluster_nodes()

        def remote(plan_json: str, plan_id: str, trial: dict, steps: int, n: int,
                   env: dict) -> dict:
            Env(**env).apply()
            trial = Trial.from_dict(trial)
            torch.set_num_threads(max(1, int(trial.resources.cpu)))
            return calibrate_trial(Plan.for_trial(plan_json, plan_id, trial), trial,
                                   ray_device(), steps, n)

        env = dataclasses.asdict(trial_env())
        shared = ray.put(plan.shared_json())  # (once in the object store, not once per cell)
        refs = {t.config_hash: ray.remote(remote).options(
            num_cpus=effective(t.resources, nodes).cpu, num_gpus=effective(t.resources, nodes).gpu,
            max_retries=0).remote(shared, plan.plan_id, dataclasses.asdict(t), steps, n, env)
            for t in firsts}
        timing, where = (lambda t: await_task(refs[t.config_hash], f"trial {t.trial_id}",
                                              echo)), " on the cluster"
    else:
        def timing(t: Trial) -> dict[str, float]:
            torch.set_num_threads(max(1, int(t.resources.cpu)))
            use_gpu = t.resources.gpu > 0 and torch.cuda.is_available()
            return calibrate_trial(plan, t, torch.device("cuda" if use_gpu else "cpu"), steps, n)
        where = ""
    out: dict[str, dict[str, float]] = {}
    for t in firsts:
        try:
            out[t.config_hash] = timing(t)
        except Exception as err:  # noqa: BLE001 - one line
            cause = getattr(err, "cause", None) or err  # a Ray task's error carries the original
            if isinstance(cause, GenbenchError) and not address:
                raise cause from None
            first = first_line(cause)
            kind = "" if isinstance(cause, GenbenchError) else f"{type(cause).__name__}: "
            raise GenbenchError(f"calibrating trial {t.trial_id} (arm {t.arm}) failed{where}: "
                                f"{kind}{first}") from None
        if echo:
            echo(f"  calibrated {t.arm} {grid_text(t.cell)}")
    return out


WAIT_NOTE_S = 60.0  # how often a calibration waiting for a node says so


def await_task(ref, what: str, echo=None, every: float = WAIT_NOTE_S):
    """`ray.get(ref)`, saying every `every` seconds that `what` has no result yet: on a busy
    cluster a task may legitimately wait for a node with its resources (no timeout), and a
    full-scale calibration may run for minutes, but never in silence."""
    import time

    import ray

    start = time.monotonic()
    while not ray.wait([ref], timeout=every)[0]:
        if echo:
            echo(f"  {what}: no result after {time.monotonic() - start:.0f} s (still running, or "
                 "waiting for a node with its resources: `ray status` shows which; Ctrl-C stops)")
    return ray.get(ref)


def run_study(plan: Plan, out_dir: Path, *, address: str | None = None,
              storage: str | None = None, echo=None, max_failures: int = 1,
              reuse_workers: bool = False, in_process: bool = False,
              trackers: list[tuple[str, str]] = ()) -> Round:
    """Run what the ledger says is missing of `plan` on Ray Tune (or, `in_process`, here, one
    trial after another: `genbench.harness.run.inprocess`): one outcome per trial run, and the
    plan study.json holds at the end (read once, at the start).
    Refuses, before writing anything, a directory of another study or one in use, and an
    address where no cluster answers (`--address` or `RAY_ADDRESS`). For a URI, its local
    mirror (`genbench.harness.store.storage.mirror_dir`) holds everything the run wrote when this returns."""
    echo = echo or (lambda line: print(line, flush=True))
    uri = str(out_dir).rstrip("/") if is_uri(out_dir) else None
    address = requested_address(address)
    if in_process and address:
        raise GenbenchError(f"--in-process runs the trials here, without Ray: it cannot join the "
                            f"cluster at {address} (unset RAY_ADDRESS, or drop --in-process)")
    if uri:
        Remote(uri)  # a URI pyarrow cannot open fails here, in one line
    if storage and is_uri(storage):
        Remote(storage, "--storage")
    for path, what in ((None if uri else out_dir, "--out"),
                       (None if not storage or is_uri(storage) else storage, "--storage")):
        if path is not None and Path(path).exists() and not Path(path).is_dir():
            raise GenbenchError(f"{what} {path} is a file; give a directory")
    if address:
        connect(address)  # one line within seconds when it cannot: before anything is written
        check_shared(out_dir if uri else Path(out_dir).resolve(), "--out")
        if storage:
            check_shared(storage, "--storage")
    # a trial no node can hold would wait forever: refused now, in one line
    refuse_unplaceable(plan, cluster_nodes() if address else this_machine(),
                       f"the cluster at {address}" if address else "this machine")
    # trials chdir into their own directory: an absolute path, or the URI's local mirror,
    # refreshed once this driver holds its lock (a second driver's refresh would remove what
    # the first has only locally)
    local = mirror_dir(Remote(uri).uri) if uri else Path(out_dir).resolve()
    prior = check_study(local, plan) if not uri else None
    created = not local.exists()
    lock = OutputLock(local)
    lock.acquire(echo)
    try:
        if uri:
            mirror(uri)  # (refuses a URI holding something else before copying it)
            prior = check_study(local, plan)
        ledger = scan(local, plan, echo)
        if any(w.units for w in ledger.work):
            try:
                prepare_metrics(plan, echo)  # may fail: before any row is written
            except BaseException:
                lock.release()
                if created and not any(local.iterdir()):
                    local.rmdir()
                raise
        echo(ledger.summary(plan))
        if not ledger.work and not ledger.cross:
            if any(local.iterdir()):  # nothing to run; a damaged or lost study.json heals
                with publishing(local):
                    if heal_plan(local, plan, prior, echo):
                        prior = plan
                    _compact(local, None, echo)  # what a run that stopped early left
            return Round([], prior)
        with publishing(local):
            record_plan(local, plan)
            _real_grid(local, plan, echo)
        # seed-major: seed 0 of every cell before any seed 1, so an interrupted study is
        # balanced across its cells
        work = sorted(ledger.work, key=lambda w: w.trial.seed)
        ended: set[str] = set()

        sinks = Trackers(list(trackers), local, plan, echo)  # (--log: each trial as it ends)

        def after(trial_id: str) -> None:  # a trial ended: compact the ended ones' files
            if not uri:                    # once there are enough (a URI's: at the end);
                sinks.send(trial_id)
            ended.add(trial_id)
            # an ended trial left a fit file and one per sample setting (three for an arm of
            # two settings): look once a third of the threshold in trials ended
            if not uri and len(ended) >= compact_at() // 3 and _compact(local, ended, echo):
                ended.clear()

        try:
            if not work:
                outcomes = []
            elif in_process:
                outcomes = run_inprocess(plan, work, uri or str(local), echo, max_failures,
                                         trial_env(), after)
            else:
                outcomes = run_tune(plan, work, uri or str(local), address, storage, echo,
                                    max_failures, trial_env(reuse_workers), after)
        finally:
            clear_progress(uri or str(local))  # (the trials ended; `genbench status` reads the
            # lock and the ledger from here on)
        if uri and ledger.work:
            mirror(uri)  # what the trials pushed: the mirror is up to date from here on
        for o in outcomes:  # (a URI's trials: from the fresh mirror)
            sinks.send(o.trial_id)
        sinks.close()
        with publishing(local):
            _cross(plan, ledger.cross, local, echo)
            _compact(local, None, echo)
        return Round(outcomes, plan)
    finally:
        lock.release()


@dataclass(frozen=True)
class Round:
    """What one `run_study` did: an outcome per trial it ran, and the plan the run directory's
    study.json holds now (this round's, or the one before for a round with nothing to run;
    None: none), for what reads the run next (claims, the report) to read no file again."""

    outcomes: list[TrialOutcome]
    recorded: Plan | None


def _real_grid(out: Path, plan: Plan, echo) -> None:
    """samples/real.png: the first real images of the split the metrics compare with, for the
    report to show beside the samples (once per run directory; image data only)."""
    from genbench.harness import data as datasets

    path = RunDir(out).real_grid
    if path.is_file() or datasets.info(plan.data).kind != "images":
        return
    try:
        from genbench.harness.run.artefacts import save_grid

        save_grid(path, datasets.load(plan.data, plan.ref_split, plan.resolution).x)
    except (GenbenchError, OSError) as err:  # the page goes without it; the run does not
        echo(f"no real-image grid for the report: {first_line(err)}")


@dataclass(frozen=True)
class StudyStatus:
    """Where every trial of a plan stands in an output directory."""

    ok: list[str]
    diverged: list[str]
    failed: list[str]  # their last attempt raised (a status row says why)
    missing: list[str]  # never ran, or interrupted
    cross_missing: int = 0  # measurable cross-seed pairs still unmeasured (one failed)
    settings_diverged: tuple[str, ...] = ()  # sample settings whose samples were not finite

    @property
    def complete(self) -> bool:
        return not (self.diverged or self.failed or self.missing or self.cross_missing
                    or self.settings_diverged)

    def line(self) -> str:
        return (f"{len(self.ok)} ok, {len(self.diverged)} diverged, {len(self.failed)} failed, "
                f"{len(self.missing)} missing"
                + (f", {self.cross_missing} cross-seed evaluations missing"
                   if self.cross_missing else "")
                + (f", {len(self.settings_diverged)} sample settings with non-finite samples"
                   if self.settings_diverged else ""))


def study_status(plan: Plan, out_dir: Path, read_only: bool = False) -> StudyStatus:
    """The whole study's status in `out_dir`, whatever this run did (`read_only`: moving no
    file, beside a running driver)."""
    ledger = scan(Path(out_dir), plan, echo=lambda _: None, read_only=read_only)
    left = {w.trial.trial_id for w in ledger.work}
    failed = sorted(t for t in left if RunDir(out_dir).failed_file(t).is_file())
    ids = [t.trial_id for t in plan.trials]
    # pairs of two finished fits whose checkpoints exist: a pair one of them lacks (deleted to
    # save disk) cannot be measured, and `_cross` says so; it must not fail every rerun
    cross = sum(not {a.trial_id, b.trial_id} & left
                and all(has_checkpoint(out_dir, f"{t.trial_id}.pt") for t in (a, b))
                for a, b in ledger.cross)
    return StudyStatus(ok=[t for t in ids if t not in left and t not in ledger.diverged],
                       diverged=list(ledger.diverged), failed=failed,
                       missing=sorted(left - set(failed)), cross_missing=cross,
                       settings_diverged=tuple(ledger.settings_diverged))


def trial_env(reuse_workers: bool = False) -> Env:
    """What every trial of this run needs from the driver's process: code version, assets,
    umask, data directory."""
    data = os.environ.get("GENBENCH_DATA")
    return Env(git_sha=git_sha(), versions_json=versions_json(),
               assets_dir=str(assets_dir().resolve()), umask=current_umask(),
               reuse_workers=reuse_workers, data_dir=str(Path(data).resolve()) if data else "")


def _compact(out_dir: Path, trial_ids: set[str] | None, echo) -> bool:
    """Compact the small results files of `trial_ids` (None: all) once there are enough
    (`genbench.harness.store.compaction`); one line when it did. Never fatal: the small files are
    the results as they stand."""
    try:
        done = compact(out_dir, trial_ids)
    except Exception as err:  # noqa: BLE001 - the store's or the disk's reason, in one line
        echo(f"compacting results in {RunDir(out_dir).shown(out_dir)} failed ({first_line(err)}); "
             "the small files stay, and the next run tries again")
        return False
    if done:
        echo(f"compacted {done[1]} results files into {RunDir(out_dir).shown(done[0])}")
    return done is not None


def _cross(plan: Plan, pairs: list, out_dir: Path, echo) -> None:
    """Cross-seed evaluations (`Method.cross_evaluate`), in the driver on its CPU once every
    fit is done: small models judged on a few thousand images at most."""
    if not pairs:
        return
    import torch

    from genbench.harness.run.trial import execute_cross

    env, done, failed = trial_env(), 0, 0
    pull_checkpoints(out_dir, sorted({f"{t.trial_id}.pt" for pair in pairs for t in pair}))
    for trial, partner in pairs:
        try:
            done += bool(execute_cross(plan, trial, partner, out_dir, env, torch.device("cpu")))
        except Exception as err:  # noqa: BLE001 - one pair's error never stops the others
            failed += 1
            echo(f"  cross-seed evaluation {trial.trial_id} x {partner.trial_id} failed: "
                 f"{type(err).__name__}: {first_line(err)} (the next run tries it again)")
    lacking = len(pairs) - done - failed
    echo(f"cross-seed evaluations: {done} of {len(pairs)} written"
         + (f"; {failed} failed" if failed else "")
         + (f"; {lacking} lack a fit (diverged or failed)" if lacking else ""))


STALE_PROGRESS_S = 120.0  # a URI's progress.json older than this: its driver may be gone


@dataclass(frozen=True)
class Status:
    """`genbench status OUT`: the lines it prints, and whether the study is complete."""

    lines: list[str]
    complete: bool

    def __str__(self) -> str:
        return "\n".join(self.lines)


def status_of(out: str) -> Status:
    """Where the study in OUT (a directory or a URI) stands, read from its plan, its ledger
    (moving nothing) and, while a driver runs, its lock and progress.json; never disturbing a
    running study."""
    import tempfile

    from genbench.harness.run.progress import duration_text

    with tempfile.TemporaryDirectory(prefix="genbench-status-") as tmp:
        local, holder, state = _status_files(out, Path(tmp))
        plan = read_plan(local)
        if plan is None:
            raise GenbenchError(f"{out} holds no readable study.json: not a genbench run "
                                "directory, or no run has started there")
        status = study_status(plan, local, read_only=True)
    names = {t.trial_id: t.name for t in plan.trials}
    running = state.get("running", []) if holder.get("running") else []
    lines = [f"study {plan.study} [{plan.scale}] at {out}: {holder['line']}",
             f"  {count(len(plan.trials), 'trial')}: {len(status.ok)} ok, "
             f"{len(status.diverged)} diverged, {len(status.failed)} failed, "
             f"{len(status.missing)} left" + (f" ({len(running)} running)" if running else "")]
    for r in running:
        lines.append(f"  running  {r.get('name', names.get(r.get('trial_id'), '?'))}  "
                     f"[{r.get('trial_id')}]  {r.get('where', '')}"
                     + (f" ({duration_text(r['seconds'])} since it started)"
                        if isinstance(r.get("seconds"), (int, float)) and " in)" not in r.get("where", "")
                        else ""))
    for tid in status.failed:  # (a URI's: its errors/ there)
        trace = RunDir("" if is_uri(out) else out).traceback(tid)
        lines.append(f"  failed   {names.get(tid, tid)}  [{tid}]: see {trace}")
    if holder.get("running") and state.get("time_left"):
        lines.append(f"  {state['time_left']}")
    elif not status.complete and not holder.get("running"):
        lines.append("  rerun the `genbench run` command that started it to finish (done work is kept)")
    return Status(lines, status.complete)


def _status_files(out: str, tmp: Path) -> tuple[Path, dict, dict]:
    """The run's directory to read (a URI's plan, results and progress copied into `tmp`, and
    its checkpoints' names), whether a driver runs there, and its progress.json."""
    from datetime import datetime, timezone

    def parse(text: str | bytes | None) -> dict:
        try:
            d = json.loads(text) if text else {}
        except ValueError:
            return {}
        return d if isinstance(d, dict) else {}

    if is_uri(out):
        remote = Remote(out, "run")
        listing = remote.listing()
        remote.pull(tmp, lambda rel: rel.split("/")[0] in ("results", "errors")
                    or rel in ("study.json", PROGRESS_NAME), listing)
        for rel in listing:
            if rel.startswith("checkpoints/") and rel.endswith(".pt"):
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).touch()  # (read_only: present is enough)
        state = parse(RunDir(tmp).progress.read_bytes() if RunDir(tmp).progress.is_file() else None)
        if not state:
            return tmp, {"line": "not running (no driver's progress.json at the URI)"}, {}
        try:
            age = (datetime.now(timezone.utc) - datetime.fromisoformat(state["updated_at"])).total_seconds()
        except (KeyError, TypeError, ValueError):
            age = float("inf")
        who = f"driver pid {state.get('pid', '?')} on {state.get('host', '?')}"
        if age > STALE_PROGRESS_S:
            return tmp, {"line": f"silent: the {who} last pushed progress {age / 60:.0f} min ago "
                                 "(it may have died)"}, {}
        return tmp, {"running": True, "line": f"running: {who}, since {state.get('started_at')} "
                                               f"(progress pushed {age:.0f}s ago)"}, state
    local = Path(out)
    if not local.is_dir():
        raise GenbenchError(f"{out} is not a directory (a run directory, or a URI)")
    holder, alive = OutputLock(local).holder()
    if not holder:
        return local, {"line": "not running (no driver holds its lock)"}, {}
    who = f"driver pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if not alive:
        return local, {"line": f"not running: the {who} died (its stale lock is taken over by the "
                               "next run)"}, {}
    state = parse(RunDir(local).progress.read_bytes() if RunDir(local).progress.is_file() else None)
    return local, {"running": True, "line": f"running: {who}, since {holder.get('started_at')}"}, state

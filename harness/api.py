"""genbench's Python API: the calls a notebook or script needs, with the command line's
behaviour (after lm-evaluation-harness's `simple_evaluate`, which is what `lm_eval` runs).

    import genbench
    plan = genbench.plan("quickstart", sets={"seeds": [0, 1]})     # resolve, run nothing
    rows = genbench.run("quickstart", out="results/qs")            # run what is missing
    rows = genbench.run("quickstart", until_decided=True, max_seeds=5)  # seeds until decided
    rows = genbench.load("results/qs")                             # the current rows
    verdicts = genbench.claims("results/qs")                       # the claims' verdicts
    result = genbench.compare("base_run", "new_run")               # the regression gate
    page = genbench.report(["results/qs", "results/qs2"])          # one page, side by side
    print(genbench.status("results/qs"))                           # where a study stands

`run` resumes exactly as `genbench run` does (the ledger decides what is missing), refreshes
the run's page, and returns the current rows as a pandas DataFrame in the schema of
docs/results.md; `load` reads them without running anything; `claims` and `compare` return the
verdicts as objects, each with a `to_frame()`. Errors are `genbench.GenbenchError` with the
command line's one-line messages; the command line (`genbench.harness.cli`) is argparse and
printing over these calls, and holds no behaviour of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from genbench.harness.errors import GenbenchError, count
from genbench.harness.plan.plan import Plan, read_plan
from genbench.harness.plan.study import Study, load_study, parse_sets

MAX_SEEDS = 10  # --until-decided's default --max-seeds


def _study(study: str | Path | Study) -> Study:
    if isinstance(study, Study):
        study.check_declaration()
        return study
    return load_study(str(study))


def _sets(sets: dict[str, Any] | list[str] | None) -> dict[str, Any]:
    if sets is None:
        return {}
    if isinstance(sets, dict):
        return dict(sets)
    return parse_sets(list(sets))  # ["n_feat=32", ...], as on the command line


def plan(study: str | Path | Study, *, scale: str = "smoke",
         sets: dict[str, Any] | list[str] | None = None, claims: tuple[str, ...] = (),
         arms: tuple[str, ...] = (), gpus_per_trial: float | None = None,
         trial_timeout: float | None = None) -> Plan:
    """The plan `genbench plan` shows: `study` (a shipped study's name, a study file's path, or
    a `Study`) at `scale`, with `sets` overrides (`{"n_feat": 32}` or `["n_feat=32"]`), extra
    `claims` (one-line texts), only the `arms` named (none: every arm), each trial's GPUs and
    its time limit in seconds where given, resolved and checked; nothing runs. A metric whose
    weights are missing (the Inception network of `fid`) fails here, in one line."""
    from genbench.harness.metrics import QUALITY_METRICS
    from genbench.harness.metrics.assets import require_inception
    from genbench.harness.plan.resolve import resolve_study

    sets = _sets(sets)
    if gpus_per_trial is not None:
        sets["gpu"] = gpus_per_trial
    if trial_timeout is not None:
        sets["trial_timeout_s"] = trial_timeout
    p = resolve_study(_study(study), scale, sets, claims=tuple(claims), arms=tuple(arms))
    if p.missing_assets == "error" and any(QUALITY_METRICS.get(m).space == "inception"
                                           for m in p.metrics):
        require_inception()
    return p


def notes(p: Plan) -> list[str]:
    """What a person should read before `p` runs: a study of images that measures no quality
    metric (and the metrics that would apply), and each claim `--set` or `--arm` left out."""
    out = []
    if not p.metrics and p.task == "generate":  # (inpainting measures its own task metrics)
        from genbench.harness import data as datasets

        meta = datasets.info(p.data)
        if meta.kind == "images":
            space, what = (("domain", "its domain classifier") if meta.num_classes else
                           ("ssl", "a self-supervised encoder of the data itself"))
            out.append(f"warning: study {p.study} measures no quality metric, only cost and "
                       f"loss; --set metrics=[fid_{space},kid_{space}] adds one offline ({what}; "
                       "docs/metrics.md)")
    out += [f"claim left out by --set or --arm: {line}" for line in p.claims_left_out]
    return out


def run(study: str | Path | Study, *, scale: str = "smoke",
        sets: dict[str, Any] | list[str] | None = None, out: str | Path | None = None,
        claims: tuple[str, ...] = (), arms: tuple[str, ...] = (), address: str | None = None,
        storage: str | None = None, log: tuple[str, ...] | list[str] = (),
        max_failures: int = 1, reuse_workers: bool = False, in_process: bool = False,
        until_decided: bool = False, max_seeds: int = MAX_SEEDS, report: bool = True,
        gpus_per_trial: float | None = None, trial_timeout: float | None = None, echo=None):
    """Run what is missing of `plan(study, ...)` into `out` (default `results/<study>/<scale>`;
    a URI works too) as `genbench run` does (`execute`), and return the current rows
    (`load(out)`). Trials that fail are rows with status metrics, as on the command line; a
    Study object's methods must be installed or named in its `imports` (workers import them by
    name). `echo` receives the lines the command line prints (default: printed)."""
    from genbench.harness.store.storage import is_uri, mirror_dir

    p = plan(study, scale=scale, sets=sets, claims=claims, arms=arms,
             gpus_per_trial=gpus_per_trial, trial_timeout=trial_timeout)
    target = str(out) if out is not None else str(Path("results") / p.study / p.scale)
    execute(p, target, address=address, storage=storage, log=log, max_failures=max_failures,
            reuse_workers=reuse_workers, in_process=in_process, until_decided=until_decided,
            max_seeds=max_seeds, report=report,
            echo=echo or (lambda line: print(line, flush=True)))
    return load(mirror_dir(target) if is_uri(target) else target)


@dataclass
class Execution:
    """What `execute` ran: the plan it ended with (grown by `until_decided`), where the run
    lives, whether the study is complete, the claims' verdicts (none without claims), and its
    report page (None: not written)."""

    plan: Plan
    out: str
    local: Path
    complete: bool
    verdicts: list = field(default_factory=list)
    page: Path | None = None


def execute(p: Plan, out: str, *, address: str | None = None, storage: str | None = None,
            log: tuple[str, ...] | list[str] = (), max_failures: int = 1,
            reuse_workers: bool = False, in_process: bool = False, until_decided: bool = False,
            max_seeds: int = MAX_SEEDS, report: bool = True,
            echo: Callable[[str], None] = print) -> Execution:
    """Run plan `p` into `out` on Ray Tune, on this machine or the cluster at `address` (or,
    `in_process`, here without Ray, one trial after another), each trial's rows also sent to
    the trackers `log` names (`mlflow`, `wandb=PROJECT`, ...), then judge its claims and, with
    `report`, refresh its page. With `until_decided`, a group-sequential design
    (docs/statistics.md): after each round the claims are judged at a look, and while some are
    undecided the cells they involve get seeds up to the next planned look, at most
    `max_seeds`. Each look is recorded in the run (OUT/looks.json), so rerunning resumes the
    same design and `genbench claims OUT` replays its verdicts. `echo` gets each line the
    command line prints; errors are GenbenchError before any work where they can be known. An
    interruption (KeyboardInterrupt) refreshes the page, which shows what is still to run, and
    propagates."""
    from genbench.harness.run.driver import run_study, study_status
    from genbench.harness.run.trackers import parse as parse_trackers
    from genbench.harness.store.storage import is_uri, mirror_dir, publishing
    from genbench.harness.verdicts.claims import ALPHA
    from genbench.harness.verdicts.judge import judge_run, look, more_seeds
    from genbench.harness.verdicts.sequential import Design, Looks, check_same_design

    if max_failures < 0:
        raise GenbenchError(f"--max-failures must be >= 0, got {max_failures}")
    if max_seeds < 1:
        raise GenbenchError(f"--max-seeds must be at least 1, got {max_seeds}")
    if until_decided and not p.claims:
        raise GenbenchError(f"--until-decided needs claims: study {p.study} declares none; "
                            "give --claim TEXT")
    trackers = parse_trackers(list(log))  # (a missing package: refused before any work)
    local = mirror_dir(out) if is_uri(out) else Path(out)  # run_study leaves the mirror fresh
    design = Design(ALPHA, max_seeds) if until_decided else None
    if design and local.is_dir():  # a design differing from the run's own: refused before work
        looks = Looks.read(local)
        if looks is not None:
            check_same_design(looks, design, out)
    for line in notes(p):
        echo(line)
    verdicts: list = []
    recorded = None
    try:
        while True:
            done = run_study(p, out, address=address, storage=storage,
                             max_failures=max_failures, reuse_workers=reuse_workers,
                             in_process=in_process, trackers=trackers, echo=echo)
            recorded = done.recorded
            for o in done.outcomes:
                if o.status != "ok":
                    echo(f"genbench: trial {o.trial_id} {o.status}: {o.message}")
            ran = sum(o.status == "ok" for o in done.outcomes)
            status = study_status(p, local)
            this_run = (f"this run: {ran} of {count(len(done.outcomes), 'trial')} ok"
                        if done.outcomes else "nothing to run")
            echo(f"{this_run}; study {p.study} [{p.scale}]: {status.line()}; results in "
                 f"{out if is_uri(out) else local.resolve()}")
            if not p.claims or not local.is_dir():
                break
            if design:
                with publishing(local):  # (the record of looks reaches a URI too)
                    verdicts = look(local, p, design)
            else:
                verdicts = judge_run(local, p)
            for r in verdicts:
                echo(f"claim {r.line()}")
            if not until_decided:
                break
            cells, seeds, line = more_seeds(p.cell_seeds(), verdicts, max_seeds)
            grown = p.with_seeds(cells, seeds) if cells else p
            if len(grown.trials) == len(p.trials):
                echo(f"until decided: {line if not cells else 'no seed left to add; ' + line}")
                break
            echo(line)
            p = grown
    except KeyboardInterrupt:
        if report:  # "Still to run" shows what the interruption left
            _refresh_page(local, out, echo, quiet=True)
        raise
    page = _refresh_page(local, out, echo, plan=recorded) if report else None
    return Execution(p, out, local, status.complete, verdicts, page)


def _refresh_page(local: Path, out: str, echo, *, quiet: bool = False,
                  plan: Plan | None = None) -> Path | None:
    """Refresh a run's report page (at its URI too, for a mirror) and say where it is; `quiet`:
    a page that cannot be written is one line to `echo`, not an error."""
    from genbench.harness.store.rundir import RunDir
    from genbench.harness.store.storage import is_uri, publishing
    from genbench.reports import write_report

    if not RunDir(local).is_run():
        return None
    try:
        with publishing(local):
            page = write_report([local], plans=[plan] if plan is not None else None)
    except GenbenchError as err:
        if not quiet:
            raise
        echo(f"genbench: the report was not refreshed: {err}")
        return None
    where = f"{out.rstrip('/')}/{page.relative_to(local)}" if is_uri(out) else page.resolve()
    echo(f"report: {where}" + (f" (local copy {page})" if is_uri(out) else ""))
    return page


def report(runs: list[str | Path] | str | Path, *, out: str | Path | None = None,
           warn: Callable[[str], None] | None = None, static: bool = False) -> Path:
    """The report page of one run or several side by side (directories or URIs), as
    `genbench report` writes it: into `out`, else into the first run (its report/, at its URI
    too); returns the path of index.html. A run whose results files none can read fails in one
    line; files skipped go to `warn`. Its charts are interactive where plotly is installed
    (`genbench[pages]`); `static` draws PNGs alone."""
    from genbench.harness.store.results import read_results, results_files
    from genbench.harness.store.storage import publishing
    from genbench.reports import write_report

    paths = [str(runs)] if isinstance(runs, (str, Path)) else [str(r) for r in runs]
    dirs = run_dirs(paths)
    for p, d in zip(paths, dirs):  # files none of which reads: a page of nothing is refused
        skipped: list[str] = []
        if results_files(d) and read_results(d, warn=skipped.append, columns=["metric"]).empty:
            raise GenbenchError(f"{p} holds no readable results: {skipped[0]}"
                                + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else ""))
        for line in skipped:
            (warn or (lambda _: None))(line)
    if out is not None:
        return write_report(dirs, Path(out), static=static)
    with publishing(dirs[0]):  # into the first run (at its URI too, for a mirror)
        return write_report(dirs, static=static)


def status(out: str | Path):
    """Where the study in `out` (a directory or a URI) stands, as `genbench status` prints it,
    never disturbing a running study: a `genbench.harness.run.driver.Status` (its `lines`, and
    `complete`)."""
    from genbench.harness.run.driver import status_of

    return status_of(str(out))


@dataclass
class Packing:
    """How a plan's trials pack on the machines that would run them (`genbench plan`): where,
    its nodes, the simulated schedule, and, after a calibration, each train cell's measured
    costs, each trial's estimated seconds and the memory risks of packing."""

    where: str
    nodes: list
    schedule: Any
    timed: dict[str, dict] = field(default_factory=dict)  # config hash -> calibration
    durations: dict[str, float] | None = None  # trial id -> estimated seconds
    risks: list[str] = field(default_factory=list)


def machines(address: str | None = None) -> tuple[list, str]:
    """The nodes a run would use (`genbench.harness.plan.packing.Node`) and how to name them:
    this machine, or the cluster at `address` (`RAY_ADDRESS` too), which fails in one line
    within seconds when none answers."""
    from genbench.harness.plan.packing import this_machine
    from genbench.harness.run.cluster import cluster_nodes, connect, requested_address

    address = requested_address(address)
    if not address:
        return this_machine(), "this machine"
    cluster = connect(address)
    return cluster_nodes(), f"the cluster at {address} ({cluster.nodes} nodes)"


def packing(p: Plan, *, address: str | None = None, calibrate: int = 0,
            echo: Callable[[str], None] = print, nodes: tuple[list, str] | None = None) -> Packing:
    """How `p` packs on this machine or the cluster at `address` (`machines`, or `nodes` where
    the caller has them); with `calibrate` steps, each train cell timed for that many steps
    first (on that machine, its lines to `echo`), so the schedule carries an estimated wall
    time."""
    from genbench.harness.plan.packing import memory_risks, simulate
    from genbench.harness.run.cluster import requested_address
    from genbench.harness.run.driver import calibrate as time_cells

    if calibrate < 0:
        raise GenbenchError(f"--calibrate must be a positive number of steps, got {calibrate}")
    address = requested_address(address)
    nodes, where = nodes or machines(address)
    timed, durations, risks = {}, None, []
    if calibrate:
        cells = p.cells()
        echo(f"calibrating {len(cells)} train cells ({calibrate} steps, "
             f"{min(64, p.n_samples)} samples per setting) on {where}")
        timed = time_cells(p, address, steps=calibrate, echo=echo)
        durations = {t.trial_id: timed[t.config_hash]["estimate_s"] for t in p.trials}
        risks = memory_risks(cells, nodes, timed)
    return Packing(where, nodes, simulate(p.trials, nodes, durations), timed, durations, risks)


def load(out: str | Path, *, all_rows: bool = False):
    """The rows of a run's output directory that count (no later measurement of the same point
    replaced them: `genbench.harness.store.results.current_rows`), as a pandas DataFrame; every row
    ever written with `all_rows=True`. A directory without results fails in one line."""
    from genbench.harness.store.results import read_current, read_results

    path = Path(out)
    if not path.is_dir():
        raise GenbenchError(f"{path} is not a run's output directory (it does not exist)")
    if all_rows:
        return read_results(path)
    rows, _ = read_current(path, read_plan(path), warn=lambda line: None)
    return rows


class Verdicts(list):
    """The verdicts of a run's claims (`genbench.harness.verdicts.judge.Result`), in the study's order,
    with the design that decided them (`genbench.harness.verdicts.sequential.Design`) and how many looks
    it took."""

    design = None
    looks = 1

    @property
    def exit_status(self) -> int:
        """`genbench claims`: 0 every claim reproduced, 1 any contradicted, 3 otherwise."""
        from genbench.harness.verdicts.judge import exit_status

        return exit_status(self)

    def to_frame(self):
        """One row per claim: its verdict and numbers."""
        import pandas as pd

        return pd.DataFrame([r.to_json() for r in self])

    def to_json(self) -> str:
        """`genbench claims --json`: a list of the verdicts, nulls where a number is none."""
        from genbench.harness.verdicts.judge import render_json

        return render_json(self)

    def summary(self) -> str:
        """The line under the verdicts: how many of each, and the design that decided them."""
        counts = {v: sum(r.verdict == v for r in self)
                  for v in ("reproduced", "contradicted", "inconclusive")}
        looks = f"; {count(self.looks, 'look')} taken" if self.design.sequential else ""
        return (f"{count(len(self), 'claim')}: " + ", ".join(f"{n} {v}" for v, n in counts.items())
                + f" ({self.design.text()}{looks})")


def _checked_alpha(alpha: float | None) -> None:
    if alpha is not None and not 0 < alpha < 1:
        raise GenbenchError(f"--alpha must be between 0 and 1 (an error rate), got {alpha}")


def claims(run: str | Path, *, claims: tuple[str, ...] | list[str] | None = None,
           alpha: float | None = None, warn: Callable[[str], None] | None = None) -> Verdicts:
    """The verdicts of the claims of the run in `run` (a directory or URI): the study's own,
    replayed over the looks `--until-decided` recorded, or `claims` (one-line texts) as one
    fixed-sample look at the current rows; at `alpha` (default: the run's own, else 0.05)."""
    from genbench.harness.verdicts.claims import ALPHA
    from genbench.harness.verdicts.judge import judge_run
    from genbench.harness.verdicts.sequential import Design, Looks

    _checked_alpha(alpha)
    (local,) = run_dirs([str(run)])
    results = judge_run(local, read_plan(local), list(claims) if claims else None, alpha=alpha,
                        warn=warn)
    if not results:
        raise GenbenchError(f"{run}: its study declares no claims; give --claim TEXT, e.g. "
                            "--claim 'fid_domain: steps=50 better than steps=10'")
    out = Verdicts(results)
    record = None if claims else Looks.read(local)
    alpha = alpha if alpha is not None else record.design.alpha if record else ALPHA
    out.design = Design(alpha, record.design.max_seeds if record else None)
    out.looks = len(record.looks) if record else 1
    return out


def compare(base: str | Path, cur: str | Path, *, alpha: float = 0.05, force: bool = False,
            timings: bool = False, allow_missing: bool = False, allow_inconclusive: bool = False):
    """The regression verdicts of run `cur` against run `base` (directories or URIs), as
    `genbench compare` gives them: a `genbench.harness.verdicts.compare.Comparison`, whose `verdicts`
    hold every point, `exit_status` the command's exit status and `to_frame()` a DataFrame."""
    from genbench.harness.verdicts.compare import compare as compare_runs

    _checked_alpha(alpha)
    b, c = run_dirs([str(base), str(cur)])
    return compare_runs(b, c, plans=(read_plan(b), read_plan(c)), alpha=alpha, force=force,
                        timings=timings,
                        allow_missing=allow_missing, allow_inconclusive=allow_inconclusive)


def history(runs: list[str | Path], *, order: str = "created", alpha: float = 0.05,
            acks: str | Path | None = None, timings: bool = False):
    """The history of runs of one study and scale (directories, URIs, or folders holding
    runs), as `genbench history` gives it: a `genbench.harness.verdicts.history.History`, whose
    `changes` hold the level shifts with their commits, `exit_status()` the command's exit
    status and `to_frame()` a DataFrame. `acks`: an acks file (JSON) of accepted shifts."""
    from genbench.harness.verdicts.history import history as history_of, read_acks

    _checked_alpha(alpha)
    if order not in ("created", "given"):
        raise GenbenchError(f"order must be 'created' or 'given', got {order!r}")
    dirs = run_dirs(_runs_in([str(r) for r in runs]))
    return history_of(dirs, plans=[read_plan(d) for d in dirs], order=order, alpha=alpha,
                      acks=read_acks(Path(acks)) if acks else [], timings=timings)


def acknowledge(acks: str | Path, commit: str, metric: str, reason: str) -> None:
    """Record a known, accepted shift (at `commit`, a prefix of it, of `metric`, "*" for any)
    in the acks file `acks`: `history` shows it, labelled, and it no longer fails."""
    from genbench.harness.verdicts.history import Ack, add_ack

    if not commit.strip() or not metric.strip():
        raise GenbenchError("an acknowledgement needs a commit and a metric ('*': any)")
    add_ack(Path(acks), Ack(commit.strip(), metric.strip(), reason))


def history_page(result, dest: str | Path, *, static: bool = False) -> Path:
    """Write the history page of `result` (what `history` returns) as DEST/index.html:
    interactive where plotly is installed, else (or `static`) PNG charts in one file."""
    from genbench.reports.history import write_history_page

    return write_history_page(result, dest, static=static)


def _runs_in(paths: list[str]) -> list[str]:
    """Each path, or where it is a local folder holding no run but runs in its subfolders,
    those runs (sorted by name)."""
    from genbench.harness.store.rundir import RunDir
    from genbench.harness.store.storage import is_uri

    out = []
    for p in paths:
        d = Path(p)
        if not is_uri(p) and d.is_dir() and not RunDir(d).is_run():
            inner = sorted(str(x) for x in d.iterdir() if x.is_dir() and RunDir(x).is_run())
            if inner:
                out += inner
                continue
        out.append(p)
    return out


def run_dirs(paths: list[str]) -> list[Path]:
    """Each path's run directory (a URI: its local mirror, pulled); one that holds no run fails
    in one line."""
    import shutil

    from genbench.harness.store.rundir import MIRROR_MARK, RunDir
    from genbench.harness.store.storage import is_uri, local_run

    dirs = [local_run(p, "run") for p in paths]  # a URI: its local mirror
    for p, d in zip(paths, dirs):
        if not RunDir(d).is_run():
            if is_uri(p) and d.is_dir() and {x.name for x in d.iterdir()} <= {MIRROR_MARK}:
                shutil.rmtree(d)  # the empty mirror of a URI that holds no run
            raise GenbenchError(f"{p} is not a genbench run directory (no results/ or study.json)")
    return dirs


__all__ = ["plan", "notes", "run", "execute", "load", "claims", "compare", "history", "history_page",
           "acknowledge", "report", "status", "machines", "packing"]

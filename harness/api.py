"""genbench's Python API: the calls a notebook or script needs, with the command line's
behaviour (after lm-evaluation-harness's `simple_evaluate`, which is what `lm_eval` runs).

    import genbench
    plan = genbench.plan("quickstart", sets={"seeds": [0, 1]})     # resolve, run nothing
    rows = genbench.run("quickstart", out="results/qs")            # run what is missing
    rows = genbench.run("quickstart", until_decided=True, max_seeds=5)  # seeds until decided
    rows = genbench.load("results/qs")                             # the current rows
    verdicts = genbench.claims("results/qs")                       # the claims' verdicts
    result = genbench.compare("base_run", "new_run")               # the regression gate

`run` resumes exactly as `genbench run` does (the ledger decides what is missing) and returns
the current rows as a pandas DataFrame in the schema of docs/results.md; `load` reads them
without running anything; `claims` and `compare` return the verdicts as objects, each with a
`to_frame()`. Errors are `genbench.GenbenchError` with the command line's one-line messages;
the command line is argparse and printing over these calls.
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
         arms: tuple[str, ...] = ()) -> Plan:
    """The plan `genbench plan` shows: `study` (a shipped study's name, a study file's path, or
    a `Study`) at `scale`, with `sets` overrides (`{"n_feat": 32}` or `["n_feat=32"]`), extra
    `claims` (one-line texts), and only the `arms` named (none: every arm), resolved and
    checked; nothing runs."""
    return _study(study).resolve(scale, _sets(sets), claims=tuple(claims), arms=tuple(arms))


def run(study: str | Path | Study, *, scale: str = "smoke",
        sets: dict[str, Any] | list[str] | None = None, out: str | Path | None = None,
        claims: tuple[str, ...] = (), arms: tuple[str, ...] = (), address: str | None = None,
        max_failures: int = 1, reuse_workers: bool = False, in_process: bool = False,
        until_decided: bool = False, max_seeds: int = MAX_SEEDS, echo=None):
    """Run what is missing of `plan(study, scale=..., sets=..., claims=...)` into `out`
    (default `results/<study>/<scale>`; a URI works too) on Ray Tune, on this machine or the
    cluster at `address` (or, `in_process`, here without Ray, one trial after another), and
    return the current rows (`load(out)`). Trials that fail are rows with status metrics, as
    on the command line; a Study object's methods must be installed or named in its `imports`
    (workers import them by name). `until_decided` adds seeds to the cells of undecided claims
    at planned looks, up to `max_seeds`, as `genbench run --until-decided` does; `echo`
    receives the lines the command line prints (default: printed)."""
    from genbench.harness.store.storage import is_uri, mirror_dir

    p = plan(study, scale=scale, sets=sets, claims=claims, arms=arms)
    target = str(out) if out is not None else str(Path("results") / p.study / p.scale)
    execute(p, target, address=address, max_failures=max_failures, reuse_workers=reuse_workers,
            in_process=in_process, until_decided=until_decided, max_seeds=max_seeds,
            echo=echo or (lambda line: print(line, flush=True)))
    return load(mirror_dir(target) if is_uri(target) else target)


@dataclass
class Execution:
    """What `execute` ran: the plan it ended with (grown by `until_decided`), where the run
    lives, whether the study is complete, and the claims' verdicts (none without claims)."""

    plan: Plan
    out: str
    local: Path
    complete: bool
    verdicts: list = field(default_factory=list)


def execute(p: Plan, out: str, *, address: str | None = None, storage: str | None = None,
            max_failures: int = 1, reuse_workers: bool = False, in_process: bool = False,
            trackers: list[tuple[str, str]] = (), until_decided: bool = False,
            max_seeds: int = MAX_SEEDS, echo: Callable[[str], None] = print) -> Execution:
    """Run plan `p` into `out`, then judge its claims; with `until_decided`, a group-sequential
    design (docs/statistics.md): after each round the claims are judged at a look, and while
    some are undecided the cells they involve get seeds up to the next planned look, at most
    `max_seeds`. Each look is recorded in the run (OUT/looks.json), so rerunning resumes the
    same design and `genbench claims OUT` replays its verdicts. `echo` gets each line the
    command line prints; errors are GenbenchError before any work where they can be known."""
    from genbench.harness.verdicts.claims import ALPHA
    from genbench.harness.verdicts.judge import look, more_seeds
    from genbench.harness.run.driver import run_study, study_status
    from genbench.harness.verdicts.sequential import Design, Looks, check_same_design
    from genbench.harness.store.storage import is_uri, mirror_dir, publishing

    if max_failures < 0:
        raise GenbenchError(f"--max-failures must be >= 0, got {max_failures}")
    if max_seeds < 1:
        raise GenbenchError(f"--max-seeds must be at least 1, got {max_seeds}")
    if until_decided and not p.claims:
        raise GenbenchError(f"--until-decided needs claims: study {p.study} declares none; "
                            "give --claim TEXT")
    local = mirror_dir(out) if is_uri(out) else Path(out)  # run_study leaves the mirror fresh
    design = Design(ALPHA, max_seeds) if until_decided else None
    if design and local.is_dir():  # a design differing from the run's own: refused before work
        looks = Looks.read(local)
        if looks is not None:
            check_same_design(looks, design, out)
    verdicts: list = []
    while True:
        outcomes = run_study(p, out, address=address, storage=storage, max_failures=max_failures,
                             reuse_workers=reuse_workers, in_process=in_process, trackers=trackers,
                             echo=echo)
        for o in outcomes:
            if o.status != "ok":
                echo(f"genbench: trial {o.trial_id} {o.status}: {o.message}")
        ran = sum(o.status == "ok" for o in outcomes)
        status = study_status(p, local)
        this_run = (f"this run: {ran} of {count(len(outcomes), 'trial')} ok" if outcomes
                    else "nothing to run")
        echo(f"{this_run}; study {p.study} [{p.scale}]: {status.line()}; results in "
             f"{out if is_uri(out) else local.resolve()}")
        if not p.claims or not local.is_dir():
            break
        if design:
            with publishing(local):  # (the record of looks reaches a URI too)
                verdicts = look(local, p, design)
        else:
            from genbench.harness.verdicts.judge import judge_run

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
    return Execution(p, out, local, status.complete, verdicts)


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


__all__ = ["plan", "run", "load", "claims", "compare", "execute"]

"""genbench's Python API: the three calls a notebook or script needs, with the command line's
behaviour (after lm-evaluation-harness's `simple_evaluate`, which is what `lm_eval` runs).

    import genbench
    plan = genbench.plan("quickstart", sets={"seeds": [0, 1]})     # resolve, run nothing
    rows = genbench.run("quickstart", out="results/qs")            # run what is missing
    rows = genbench.load("results/qs")                             # the current rows

`run` resumes exactly as `genbench run` does (the ledger decides what is missing) and returns
the current rows as a pandas DataFrame in the schema of docs/results.md; `load` reads them
without running anything. Errors are `genbench.GenbenchError` with the command line's one-line
messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from genbench.harness.errors import GenbenchError
from genbench.harness.plan import Plan
from genbench.harness.study import Study, load_study, parse_sets


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
        max_failures: int = 1, reuse_workers: bool = False, in_process: bool = False, echo=None):
    """Run what is missing of `plan(study, scale=..., sets=..., claims=...)` into `out`
    (default `results/<study>/<scale>`; a URI works too) on Ray Tune, on this machine or the
    cluster at `address` (or, `in_process`, here without Ray, one trial after another), and
    return the current rows (`load(out)`). Trials that fail are
    rows with status metrics, as on the command line; a Study object's methods must be
    installed or named in its `imports` (workers import them by name)."""
    from genbench.harness.driver import run_study
    from genbench.harness.storage import is_uri, mirror_dir

    p = plan(study, scale=scale, sets=sets, claims=claims, arms=arms)
    target = str(out) if out is not None else str(Path("results") / p.study / p.scale)
    run_study(p, target, address=address, max_failures=max_failures,
              reuse_workers=reuse_workers, in_process=in_process, echo=echo)
    return load(mirror_dir(target) if is_uri(target) else target)


def load(out: str | Path, *, all_rows: bool = False):
    """The rows of a run's output directory that count (no later measurement of the same point
    replaced them: `genbench.harness.results.current_rows`), as a pandas DataFrame; every row
    ever written with `all_rows=True`. A directory without results fails in one line."""
    from genbench.harness.results import read_current, read_plan, read_results

    path = Path(out)
    if not path.is_dir():
        raise GenbenchError(f"{path} is not a run's output directory (it does not exist)")
    if all_rows:
        return read_results(path)
    rows, _ = read_current(path, read_plan(path), warn=lambda line: None)
    return rows


__all__ = ["plan", "run", "load"]

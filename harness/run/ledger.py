"""The ledger: what of a plan is already in an output directory, and what must still run.

Resuming from our own ledger rather than `Tuner.restore` follows what Ray Tune users ended up
doing (Tune's restore does not handle a changed search space). Two keys, two jobs (after asv's
benchmark names and lm-evaluation-harness's task versions):

- The ledger keys are exact. A fit (`results/<trial_id>.fit.parquet`, its checkpoint and curve)
  is keyed by the trial id, a hash of study, scale, method, data, resolution, full config and
  budget, plus the seed. A sample setting is keyed by `Plan.sampling_key`: the fit, the knobs,
  `n_samples`, the task and the reference split. Its rows may sit in several files, one per set
  of metrics measured together, so a metric added later measures only that metric (re-drawing
  the same samples from the saved checkpoint: noise comes from per-sample generators), a new or
  changed setting samples the checkpoint again without retraining, and a changed config retrains.
- `Plan.cell_key` is stable: study, scale, method and the grid values only. It joins seeds and
  runs of different commits, and never decides what runs.

It also holds the rules of an output directory (whose layout is `genbench.harness.store.rundir`): one
study per directory; results files are validated when read, and an unreadable one is moved to
`quarantine/` and its work done again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from genbench.harness.config import config_hash
from genbench.harness.errors import GenbenchError
from genbench.harness.store.files import checkpoint_problem
from genbench.harness.store.results import (V1_COLUMNS, is_part, results_files,
                                            sources_of)
from genbench.harness.plan.plan import Plan, Trial, read_plan
from genbench.harness.store.rundir import LOCK_NAME, RunDir
from genbench.harness.store.storage import checkpoint_names, has_checkpoint, refuse_foreign


@dataclass(frozen=True)
class Unit:
    """One sample setting of a trial to measure with `metrics` (cost, task or quality names);
    `sampling_key` and `metrics_key` name its results file."""

    setting: str  # SampleSetting.key
    sampling_key: str
    metrics: tuple[str, ...]

    @property
    def metrics_key(self) -> str:
        return config_hash(sorted(self.metrics))[:8]


@dataclass(frozen=True)
class Work:
    """What one trial must still do: fit (or load its checkpoint), then measure `units`."""

    trial: Trial
    fit: bool
    units: tuple[Unit, ...] = ()

    @classmethod
    def from_dict(cls, d: dict) -> "Work":
        """The inverse of `dataclasses.asdict` (a Tune trial's config)."""
        return cls(Trial.from_dict(d["trial"]), d["fit"],
                   tuple(Unit(u["setting"], u["sampling_key"], tuple(u["metrics"])) for u in d["units"]))


@dataclass
class Ledger:
    """The state of an output directory against a plan."""

    work: list[Work] = field(default_factory=list)  # trials with anything left to do
    settings_diverged: list[str] = field(default_factory=list)  # "<trial> <setting>": not finite
    fits_done: int = 0
    units_done: int = 0  # (trial, setting) pairs with every metric present
    diverged: list[str] = field(default_factory=list)  # trial ids recorded as diverged
    cross: list[tuple[Trial, Trial]] = field(default_factory=list)  # pairs still to measure
    quarantined: list[str] = field(default_factory=list)  # one line per file moved aside

    def summary(self, plan: Plan) -> str:
        n_units = sum(len(plan.settings_for(t)) for t in plan.trials)
        fits = sum(w.fit for w in self.work)
        units = sum(len(w.units) for w in self.work)
        line = (f"ledger: {self.fits_done} of {len(plan.trials)} fits and {self.units_done} of "
                f"{n_units} sample settings already done; to run: {fits} fits, {units} "
                f"sample-setting measurements")
        if self.cross:
            line += f", {len(self.cross)} cross-seed evaluations"
        if self.diverged:
            line += f"; diverged earlier: {', '.join(self.diverged)}"
        return line


def check_study(out_dir: Path, plan: Plan) -> Plan | None:
    """Refuse an output directory that holds another study's results, or another scale of this
    one (reports would pool the scales' seeds), or files that are not a genbench run (the
    ledger would take a Parquet file there for a results file and move it to quarantine/).
    Returns the plan that ran there last (its study.json, read here once; None: none)."""
    out_dir = Path(out_dir)
    prior = read_plan(out_dir)
    other, scale = (prior.study, prior.scale) if prior is not None else (None, None)
    if other is None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        for f in results_files(out_dir):  # the first row of the first readable file says
            try:
                parquet = pq.ParquetFile(f)
                if not parquet.num_row_groups:
                    continue
                first = parquet.read_row_group(0, columns=["study", "scale"]).slice(0, 1)
            except (OSError, pa.ArrowException, KeyError, ValueError):
                continue
            if not first.num_rows:
                continue
            other, scale = first.column("study")[0].as_py(), first.column("scale")[0].as_py()
            break
    if other is None and out_dir.is_dir():  # no plan and no readable results file
        refuse_foreign(str(out_dir), [p.name for p in out_dir.iterdir()
                                      if p.name != LOCK_NAME and not p.name.startswith(".")])
    if other is not None and other != plan.study:
        raise GenbenchError(f"{out_dir} holds results of study {other!r}, not {plan.study!r}; "
                            f"give {plan.study} a fresh --out")
    if scale is not None and scale != plan.scale:
        raise GenbenchError(f"{out_dir} holds the {scale!r} scale of {plan.study}, not "
                            f"{plan.scale!r}; give each scale its own --out")
    return prior


def scan(out_dir: Path, plan: Plan, echo: Callable[[str], None] = print,
         only: str | None = None, read_only: bool = False) -> Ledger:
    """Compare `out_dir` with `plan`: validate every results file (moving unreadable ones to
    quarantine/), and list the work left per trial. `only` (a trial id) looks at that trial's
    files and work alone, as a trial does: it never touches another trial's files.
    `read_only` (`genbench status`, beside a running driver) moves nothing: an unreadable file
    counts as absent and a checkpoint that is there as whole."""
    from genbench.harness.metrics.assets import INCEPTION_MISSING, inception_status

    out_dir = Path(out_dir)
    run = RunDir(out_dir)
    ledger = Ledger()
    # a metric skipped for want of the Inception weights is missing work once they are here
    skipped_note = f"skipped: {INCEPTION_MISSING}" if inception_status().present else None
    files = results_files(out_dir)
    if only is not None:  # its own small files (what a part holds, the driver planned)
        files = [f for f in files if f.name.startswith(f"{only}.")]
    metrics_by_file: dict[str, set[str]] = {}
    for f in files:
        try:
            for name, metrics in _file_metrics(f, plan.study, skipped_note).items():
                metrics_by_file.setdefault(name, set()).update(metrics)  # a part and a refit's
        except ValueError as err:
            if read_only:
                continue
            dest = run.quarantine(f)
            line = f"quarantined {f.name}: {err}; moved to {run.shown(dest)}, its work runs again"
            ledger.quarantined.append(line)
            echo(line)
    # by trial: its fit's metrics, and each sampling key's (over the files of its metric sets)
    fits: dict[str, set[str]] = {}
    measured_by_key: dict[tuple[str, str], set[str]] = {}
    for name, metrics in metrics_by_file.items():
        tid, kind, *rest = name.removesuffix(".parquet").split(".")
        if kind == "fit":
            fits[tid] = metrics
        elif rest:  # <trial_id>.<sampling_key>.<metrics_key>
            measured_by_key.setdefault((tid, kind), set()).update(metrics)
    measured = plan.measured()
    if only is None:  # one listing for every trial, else the one file a trial asks about
        checkpoints = checkpoint_names(out_dir)
    else:
        checkpoints = {f"{only}.pt"} if has_checkpoint(out_dir, f"{only}.pt") else set()
    for trial in plan.trials if only is None else [t for t in plan.trials if t.trial_id == only]:
        fit_rows = fits.get(trial.trial_id)
        if fit_rows is not None and "diverged_at_step" in fit_rows:
            ledger.fits_done += 1
            ledger.diverged.append(trial.trial_id)
            continue
        checkpoint = f"{trial.trial_id}.pt" in checkpoints
        ckpt = run.checkpoint(trial.trial_id) if checkpoint else None
        problem = checkpoint_problem(ckpt, full=False) if checkpoint and not read_only else None
        if problem:  # truncated: never loads, so its fit runs again (the trial checks the hash)
            dest = run.quarantine(ckpt)
            run.checksum(trial.trial_id).unlink(missing_ok=True)
            echo(f"quarantined {problem.replace(str(ckpt), run.shown(ckpt))}; moved to "
                 f"{run.shown(dest)}, its fit runs again")
            checkpoint = False
        fit_needed = fit_rows is None
        units = []
        settings = plan.settings_for(trial)
        for setting in settings:
            key = plan.sampling_key(trial, setting)
            have = measured_by_key.get((trial.trial_id, key), set())
            missing = tuple(m for m in measured if fit_needed or m not in have)
            if "diverged" in have and not fit_needed:  # non-finite samples: final, as a fit's
                ledger.settings_diverged.append(f"{trial.trial_id} {setting.key}")
            if missing:
                units.append(Unit(setting.key, key, missing))
        if units and not checkpoint:  # the checkpoint is gone: train again, measure everything
            fit_needed = True
            units = [Unit(s.key, plan.sampling_key(trial, s), measured) for s in settings]
        ledger.units_done += len(settings) - len(units)
        ledger.fits_done += not fit_needed
        if fit_needed or units:
            ledger.work.append(Work(trial, fit_needed, tuple(units)))
    diverged = set(ledger.diverged)
    refit = {w.trial.trial_id for w in ledger.work if w.fit}  # their cross rows judged old fits
    for trial, partner in plan.cross_pairs() if only is None else []:  # (the driver's work)
        pair = {trial.trial_id, partner.trial_id}
        if not pair & diverged and (pair & refit or run.cross_file(
                trial.trial_id, partner.trial_id).name not in metrics_by_file):
            ledger.cross.append((trial, partner))
    return ledger


_SEEN: dict[tuple, dict[str, set[str]]] = {}  # what files held, by identity (this process)
_SEEN_MAX = 100_000


def _file_metrics(path: Path, study: str, skipped_note: str | None) -> dict[str, set[str]]:
    """The metrics a results file holds, by small file: itself, or each small file a compacted
    part lists (its rows in order); a metric skipped for want of the Inception weights (a row
    whose note starts with `skipped_note`) does not count. Reads three columns, once per file
    identity (name, size, mtime) in a process: the driver's scans before and after a run
    open only what changed. Raises ValueError for a file that is not a readable results file
    of `study`."""
    try:
        st = path.stat()
    except OSError as err:
        raise ValueError(f"not a readable Parquet file ({err.strerror})") from None
    key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, study, skipped_note)
    if key not in _SEEN:
        if len(_SEEN) >= _SEEN_MAX:
            _SEEN.clear()
        _SEEN[key] = _read_file_metrics(path, study, skipped_note)
    return _SEEN[key]


def _read_file_metrics(path: Path, study: str, skipped_note: str | None) -> dict[str, set[str]]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)  # opened once: its footer, then three columns
        schema = parquet.schema_arrow
        missing = [c for c in V1_COLUMNS if c not in schema.names]
        if missing:
            raise ValueError(f"not a genbench results file (no column {missing[0]!r})")
        table = parquet.read(columns=["study", "metric", "note"])
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"not a readable Parquet file ({str(err).splitlines()[0]})") from None
    studies = set(pc.unique(table.column("study")).to_pylist())
    if studies - {study}:
        raise ValueError(f"rows of study {sorted(studies - {study}, key=str)[0]!r}")
    metric = table.column("metric")
    if skipped_note:
        skipped = pc.fill_null(pc.starts_with(table.column("note"), skipped_note), False)
    else:
        skipped = pa.array(np.zeros(table.num_rows, bool))
    if not is_part(path):
        return {path.name: set(pc.filter(metric, pc.invert(skipped)).to_pylist())}
    sources = sources_of(schema.metadata)
    counts = [r for *_, r in sources]
    if sum(counts) != table.num_rows:
        raise ValueError(f"its footer lists {sum(counts)} rows and it holds {table.num_rows}")
    out: dict[str, set[str]] = {name: set() for name, *_ in sources}
    frame = pa.table({"file": np.repeat(np.arange(len(sources)), counts), "metric": metric})
    frame = frame.filter(pc.invert(skipped)).group_by(["file", "metric"]).aggregate([])
    for i, m in zip(frame.column("file").to_pylist(), frame.column("metric").to_pylist()):
        out[sources[i][0]].add(m)
    return out


def record_plan(out_dir: Path, plan: Plan) -> None:
    """Keep every plan that writes rows (plans/<plan_id>.json) and the latest as study.json."""
    from genbench.harness.store.files import atomic_write_bytes

    run = RunDir(out_dir)
    text = plan.to_json().encode()
    path = run.plan_file(plan.plan_id)
    if not _readable_json(path):  # missing or damaged: written again
        atomic_write_bytes(path, text)
    atomic_write_bytes(run.study_json, text)


def heal_plan(out_dir: Path, plan: Plan, prior: Plan | None,
              echo: Callable[[str], None] = print) -> bool:
    """Rewrite study.json and this plan's plans/<plan_id>.json where they are missing or
    unreadable (`prior`, what `check_study` read of study.json, None) (a run with nothing to do
    leaves them alone otherwise); True if it did."""
    run = RunDir(out_dir)
    plan_file = run.plan_file(plan.plan_id)
    if prior is not None and _readable_json(plan_file):
        return False
    echo(f"{run.shown(run.study_json)} or {plan_file.name} was missing or unreadable: "
         "written again")
    record_plan(out_dir, plan)
    return True


def _readable_json(path: Path) -> bool:
    try:
        json.loads(Path(path).read_text())
        return True
    except (OSError, ValueError):
        return False

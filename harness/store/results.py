"""The results store: append-only Parquet in long format with a versioned schema (after
lm-evaluation-harness's results with `git_hash` and stylegan2-ada's metric jsonl).

The layout of a run's output directory is `genbench.harness.store.rundir`'s; how files are
written whole, `genbench.harness.store.files`.

Files starting with "." (a write under way) are ignored by pyarrow and pandas readers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from genbench.harness.config import canonical_json
from genbench.harness.store.files import atomic_write_table
from genbench.harness.store.rundir import RunDir

if TYPE_CHECKING:  # pandas loads with the first table read: writers and `genbench list` need none
    import pandas as pd

SCHEMA_VERSION = 2

# column: (arrow type, meaning)
COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "schema_version": (pa.int32(), "version of this schema"),
    "study": (pa.string(), "study name"),
    "scale": (pa.string(), "smoke or full (or another declared scale)"),
    "arm": (pa.string(), "the study arm (method and its grids) the row belongs to"),
    "trial_id": (pa.string(), "<config_hash[:8]>-s<seed>: one fit"),
    "cell_key": (pa.string(), "stable key of study, scale, method and grid values: joins commits"),
    "cell_json": (pa.string(), "the train-grid values of the trial's cell as JSON"),
    "setting_json": (pa.string(), "the sample-grid values of the row's setting as JSON; null per trial"),
    "method": (pa.string(), "registered method name"),
    "dataset": (pa.string(), "data set name"),
    "seed": (pa.int64(), "training seed (sampling seeds derive from it)"),
    "config_hash": (pa.string(), "hash of study, scale, arm, method, data, resolution, config, budget"),
    "config_json": (pa.string(), "the full method config and budget as JSON"),
    "sample_json": (pa.string(), "sampling knobs and sampler facts as JSON; {} for per-trial rows"),
    "metric": (pa.string(), "metric name (see `genbench list`)"),
    "value": (pa.float64(), "the measurement"),
    "higher_is_better": (pa.bool_(), "the metric's good direction"),
    "std": (pa.float64(), "its standard deviation within the run where defined (e.g. KID)"),
    "n_samples": (pa.int64(), "generated samples behind the value"),
    "n_ref": (pa.int64(), "reference samples behind the value (quality metrics)"),
    "protocol": (pa.string(), "how it was measured, e.g. clean-fid mode or memory counter"),
    "feature_extractor": (pa.string(), "feature network and its hash (quality metrics)"),
    "ref_split": (pa.string(), "reference data set split and key (quality metrics)"),
    "note": (pa.string(), "warnings or why a metric was skipped"),
    "train_steps": (pa.int64(), "optimiser steps the fit took (training rows)"),
    "images_seen": (pa.int64(), "training examples the fit processed (training rows)"),
    "run_key": (pa.string(), "ledger key of the unit of work that wrote the row"),
    "plan_id": (pa.string(), "the plan that wrote the row: plans/<plan_id>.json"),
    "node": (pa.string(), "host/<Ray node id[:12]> that ran the trial (the host alone outside Ray)"),
    "device": (pa.string(), "device name the trial ran on"),
    "git_sha": (pa.string(), "genbench commit, '-dirty' when the tree had changes"),
    "versions_json": (pa.string(), "python and library versions as JSON"),
    "created_at": (pa.timestamp("us", tz="UTC"), "when the row was written"),
}
SCHEMA = pa.schema([(name, tp) for name, (tp, _) in COLUMNS.items()])

CURVE_SCHEMA = pa.schema([("trial_id", pa.string()), ("step", pa.int64()),
                          ("metric", pa.string()), ("value", pa.float64()),
                          ("wall_s", pa.float64())])


V1_COLUMNS = ("schema_version", "study", "scale", "trial_id", "method", "dataset", "seed",
              "config_hash", "config_json", "sample_json", "metric", "value", "std", "n_samples",
              "n_ref", "protocol", "feature_extractor", "ref_split", "note", "device", "git_sha",
              "versions_json", "created_at")


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts with the schema's columns; missing ones are null) -> a table of SCHEMA."""
    unknown = {k for r in rows for k in r} - set(COLUMNS)
    if unknown:
        raise ValueError(f"columns not in the results schema: {sorted(unknown)}")
    columns = {name: [r.get(name) for r in rows] for name in COLUMNS}
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    """Write result rows to `path` atomically."""
    atomic_write_table(rows_to_table(rows), path)
    return path


def write_curve(out_dir: Path, trial_id: str, points: list[dict[str, Any]]) -> Path:
    """curves/<trial_id>.parquet: training curves (loss and metrics along training)."""
    path = RunDir(out_dir).curve_file(trial_id)
    cols = {f.name: [p.get(f.name) for p in points] for f in CURVE_SCHEMA}
    atomic_write_table(pa.Table.from_pydict(cols, schema=CURVE_SCHEMA), path)
    return path


def read_file(path: Path, columns: list[str] | None = None,
              dictionary: tuple[str, ...] = ()) -> pa.Table:
    """One results file as a table of the current SCHEMA (only its `columns`, in schema order,
    where given: the others are never read; the string columns in `dictionary` as dictionary
    arrays, each distinct text once, for long texts that repeat: a config, the versions); a
    version-1 file gets the new columns (null, except `arm`, its method, and `cell_json`,
    which v1 kept inside `config_json`). Raises ValueError when the file cannot be read or
    lacks the schema's columns."""
    want = list(COLUMNS) if columns is None else [c for c in COLUMNS if c in columns]
    types = {c: pa.dictionary(pa.int32(), COLUMNS[c][0]) if c in dictionary else COLUMNS[c][0]
             for c in want}
    try:
        parquet = pq.ParquetFile(path, read_dictionary=[c for c in dictionary if c in want])
        names = parquet.schema_arrow.names
        missing = [c for c in V1_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"not a genbench results file (no column {missing[0]!r})")
        need = {c for c in want if c in names}
        if "arm" in want and "arm" not in names:
            need.add("method")
        if "cell_json" in want and "cell_json" not in names:
            need.add("config_json")
        table = parquet.read(columns=[c for c in names if c in need])
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"not a readable Parquet file ({str(err).splitlines()[0]})") from None
    n = table.num_rows
    out = []
    for name in want:
        tp = types[name]
        if name in table.column_names:
            out.append(table.column(name).cast(tp))
        elif name == "arm":  # v1 studies had one method, which is the arm's name now
            out.append(table.column("method").cast(tp))
        elif name == "cell_json":
            cells = [canonical_json(json.loads(c).get("cell")) if c else None
                     for c in table.column("config_json").to_pylist()]
            out.append(pa.array(cells, pa.string()).cast(tp))
        else:
            out.append(pa.nulls(n, tp))
    return pa.Table.from_arrays(out, schema=pa.schema([SCHEMA.field(c).with_type(types[c])
                                                      for c in want]))


PART_PREFIX = "part-"  # a compacted part: results/part-<hash>.parquet
SOURCES_KEY = b"genbench.sources"  # its footer's list of the small files it holds


def is_part(path: Path) -> bool:
    return path.name.startswith(PART_PREFIX)


def identity(path: Path) -> tuple[str, int, int]:
    """What tells one version of a small file from another: name, size, modification time."""
    st = path.stat()
    return path.name, st.st_size, st.st_mtime_ns


def part_sources(part: Path) -> list[tuple[str, int, int, int]]:
    """The small files a compacted part holds, in its row order: (name, size, mtime_ns, rows),
    from its footer alone. Raises ValueError for a file that is not a readable part."""
    try:
        return sources_of(pq.read_metadata(part).metadata)
    except (OSError, pa.ArrowException) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"not a readable compacted part ({why})") from None


def sources_of(metadata: dict[bytes, bytes] | None) -> list[tuple[str, int, int, int]]:
    """`part_sources` from a footer's key-value metadata already read."""
    try:
        return [(str(n), int(s), int(m), int(r))
                for n, s, m, r in json.loads((metadata or {})[SOURCES_KEY])]
    except (KeyError, ValueError, TypeError) as err:
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"not a readable compacted part ({why})") from None


def covered(parts: list[Path]) -> set[tuple[str, int, int]]:
    """Identities of the small files the readable `parts` hold."""
    out: set[tuple[str, int, int]] = set()
    for part in parts:
        try:
            out.update((n, s, m) for n, s, m, _ in part_sources(part))
        except ValueError:
            continue  # an unreadable part: the ledger quarantines it
    return out


def results_files(out_dir: Path) -> list[Path]:
    """The results files under `out_dir` (or a results/ directory): compacted parts, and the
    small files no part holds (a crash between writing a part and removing its sources leaves
    them); hidden temporaries excluded."""
    d = RunDir(out_dir).results
    d = d if d.is_dir() else Path(out_dir)
    files = sorted(p for p in d.glob("*.parquet") if not p.name.startswith((".", "_")))
    parts = [f for f in files if is_part(f)]
    if not parts or len(parts) == len(files):  # (no small file to look up: footers unread)
        return files
    held = covered(parts)
    names = {n for n, _, _ in held}
    return [f for f in files if is_part(f) or f.name not in names or identity(f) not in held]


def _warn(line: str) -> None:
    print(f"genbench: warning: {line}", file=sys.stderr)


def read_results(out_dir: Path, *, warn=None, columns: list[str] | None = None,
                 dictionary: tuple[str, ...] = ()) -> pd.DataFrame:
    """Every results row under `out_dir` (or a results/ directory) as one DataFrame, with only
    `columns` where given (a million rows: each column left out is memory and time saved). A
    file that cannot be read is skipped with one line to `warn` (default: stderr), never
    fatal."""
    warn = warn or _warn
    tables = []
    for f in results_files(out_dir):
        try:
            tables.append(read_file(f, columns, dictionary))
        except ValueError as err:
            warn(f"skipping {f}: {err}")
    empty = SCHEMA.empty_table()
    if not tables:  # (the same columns and types as a file would give)
        table = empty.select([c for c in COLUMNS if c in columns]) if columns else empty
        tables = [table.cast(pa.schema([f.with_type(pa.dictionary(pa.int32(), f.type))
                                        if f.name in dictionary else f for f in table.schema]))]
    return pa.concat_tables(tables).to_pandas()


POINT = ("scale", "arm", "cell_json", "seed")  # one fit's place in a study: a train cell and seed
# the reserved arm of the real-data floor (`genbench.harness.metrics.realdata`): held-out data measured
# as samples; shown beside every number, judged by no family unless a claim names it
REAL_ARM = "real"


def current_rows(rows: pd.DataFrame, plan=None) -> pd.DataFrame:
    """The rows no later measurement of the same point replaced, in their order.

    Nothing written is ever deleted, so a directory keeps the rows of every plan that ran in
    it; counting them all would average a point's old and new measurements as if they were
    more seeds. Two rules (the ledger's keys, `genbench.harness.run.ledger`, decide what ran):

    - A train cell and seed of an arm (`POINT`) counts the rows of one fit: the trial the
      latest plan (`plan`, study.json) has there, even before it has rows; for a point that
      plan does not cover (a narrowed rerun, a removed grid value), the fit written last. The
      fits of an earlier config there are left out, and so is an uncovered seed of a train
      cell the plan runs with another config (fewer seeds and a new learning rate: the old
      seeds are not more seeds of the new config).
    - Within that fit, a sample setting's metric measured again under another key (a changed
      `n_samples`, task or reference split), or a cross-seed metric against another partner
      (the seeds changed), counts once: the row written last.
    """
    import pandas as pd

    if rows.empty:
        return rows
    cell = ["scale", "arm", "cell_json"]
    trials = pd.DataFrame([{"scale": plan.scale, "arm": t.arm, "cell_json": plan.cell_json(t),
                            "seed": t.seed, "planned": t.trial_id, "config_hash": t.config_hash}
                           for t in (plan.trials if plan is not None else ())],
                          columns=[*POINT, "planned", "config_hash"]).astype({"seed": "int64"})
    # one fit per point: the latest fit written there (its rows' latest time)
    fits = (rows.groupby("trial_id", sort=False)
            .agg(**{c: (c, "first") for c in (*POINT, "config_hash")}, last=("created_at", "max"))
            .reset_index().sort_values("last", kind="stable")
            .drop_duplicates(list(POINT), keep="last"))
    fits = fits.merge(trials[[*POINT, "planned"]].drop_duplicates(list(POINT)), on=list(POINT),
                      how="left")
    keep = set(trials.planned)  # a point the plan covers counts its planned fit (rows or not)
    # elsewhere the latest fit, unless the plan runs its train cell with another config
    loose = fits[fits.planned.isna()]
    ran = trials[cell].drop_duplicates().assign(cell_planned=True)
    same = trials[[*cell, "config_hash"]].drop_duplicates().assign(config_planned=True)
    loose = loose.merge(ran, on=cell, how="left").merge(same, on=[*cell, "config_hash"], how="left")
    keep.update(loose.trial_id[loose.cell_planned.isna() | loose.config_planned.notna()])
    codes, ids = pd.factorize(rows.trial_id)  # (a set lookup per distinct trial, not per row)
    kept = np.array([t in keep for t in ids] + [False])[codes]
    if not kept.all():  # (a copy of a million rows only where a row goes)
        rows = rows[kept]
    when = rows.created_at.array.asi8  # (as sort_values orders them: a missing time last)
    order = np.argsort(np.where(rows.created_at.isna().to_numpy(), np.iinfo(np.int64).max, when),
                       kind="stable")
    again = np.empty(len(rows), dtype=bool)
    point = ["trial_id", "setting_json", "metric"]
    again[order] = rows[point].iloc[order].duplicated(point, keep="last").to_numpy()
    drop = again & rows.run_key.notna().to_numpy()  # v1 rows carry no keys: all kept
    return rows[~drop] if drop.any() else rows


# what `current_rows` needs besides the columns a reader asks for
CURRENT_COLUMNS = ("trial_id", *POINT, "config_hash", "created_at", "setting_json", "metric",
                   "run_key")


def read_current(out_dir: Path, plan, *, warn=None, columns: list[str] | None = None,
                 dictionary: tuple[str, ...] = ()) -> tuple[pd.DataFrame, set[str]]:
    """`read_results`, then `current_rows` against `plan`; one line to `warn` says what was
    left out. Also returns the trial ids left out entirely (their curves go too). With
    `columns`, the rows keep those columns (and those `current_rows` reads)."""
    warn = warn or _warn
    if columns:
        columns = list(dict.fromkeys([*CURRENT_COLUMNS, *columns]))
    every = read_results(out_dir, warn=warn, columns=columns, dictionary=dictionary)
    rows = current_rows(every, plan)
    gone = set(every.trial_id.unique()) - set(rows.trial_id.unique())
    if len(rows) < len(every):
        among = f" ({len(gone)} earlier fits among them)" if gone else ""
        warn(f"{out_dir}: {len(every) - len(rows)} rows of earlier plans, measured again since "
             f"at the same points or of an earlier config of a cell the plan runs, are left "
             f"out{among}; they stay in results/")
    return rows, gone


def read_curves(out_dir: Path) -> pd.DataFrame:
    """Every training curve point under `out_dir` as one DataFrame."""
    files = sorted(RunDir(out_dir).curves.glob("*.parquet"))
    if not files:
        return CURVE_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()

"""The results store: append-only Parquet in long format with a versioned schema (after
lm-evaluation-harness's results with `git_hash` and stylegan2-ada's metric jsonl).

Layout of a run's output directory:
  results/<trial_id>.parquet   one row per trial x sample setting x metric (schema below)
  curves/<trial_id>.parquet    training curves: trial_id, step, metric, value, wall_s
  samples/<trial_id>/<setting>.png   a grid of the first samples of each setting
  checkpoints/<trial_id>.pt    the fitted model's state_dict
  study.json                   the resolved plan as it ran

Every file is written to a temporary name and renamed, so a crash never leaves a half file,
and a trial whose results file exists is finished: that is the ledger a rerun resumes from.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA_VERSION = 1

# column: (arrow type, meaning)
COLUMNS: dict[str, tuple[pa.DataType, str]] = {
    "schema_version": (pa.int32(), "version of this schema"),
    "study": (pa.string(), "study name"),
    "scale": (pa.string(), "smoke or full (or another declared scale)"),
    "trial_id": (pa.string(), "<config_hash[:8]>-s<seed>: one fit"),
    "method": (pa.string(), "registered method name"),
    "dataset": (pa.string(), "data set name"),
    "seed": (pa.int64(), "training seed (sampling seeds derive from it)"),
    "config_hash": (pa.string(), "hash of method, data, resolution, full config and budget"),
    "config_json": (pa.string(), "the full method config and budget as JSON"),
    "sample_json": (pa.string(), "sampling knobs and sampler facts as JSON; {} for per-trial rows"),
    "metric": (pa.string(), "metric name (see `genbench list`)"),
    "value": (pa.float64(), "the measurement"),
    "std": (pa.float64(), "its standard deviation within the run where defined (e.g. KID)"),
    "n_samples": (pa.int64(), "generated samples behind the value"),
    "n_ref": (pa.int64(), "reference samples behind the value (quality metrics)"),
    "protocol": (pa.string(), "how it was measured, e.g. clean-fid mode or memory counter"),
    "feature_extractor": (pa.string(), "feature network and its hash (quality metrics)"),
    "ref_split": (pa.string(), "reference data set split and key (quality metrics)"),
    "note": (pa.string(), "warnings or why a metric was skipped"),
    "device": (pa.string(), "device name the trial ran on"),
    "git_sha": (pa.string(), "genbench commit, '-dirty' when the tree had changes"),
    "versions_json": (pa.string(), "python and library versions as JSON"),
    "created_at": (pa.timestamp("us", tz="UTC"), "when the row was written"),
}
SCHEMA = pa.schema([(name, tp) for name, (tp, _) in COLUMNS.items()])

CURVE_SCHEMA = pa.schema([("trial_id", pa.string()), ("step", pa.int64()),
                          ("metric", pa.string()), ("value", pa.float64()),
                          ("wall_s", pa.float64())])


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet table to `path` atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def rows_to_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (dicts with the schema's columns; missing ones are null) -> a table of SCHEMA."""
    unknown = {k for r in rows for k in r} - set(COLUMNS)
    if unknown:
        raise ValueError(f"columns not in the results schema: {sorted(unknown)}")
    columns = {name: [r.get(name) for r in rows] for name in COLUMNS}
    return pa.Table.from_pydict(columns, schema=SCHEMA)


def write_trial_results(out_dir: Path, trial_id: str, rows: list[dict[str, Any]]) -> Path:
    """results/<trial_id>.parquet, atomically; its existence marks the trial finished."""
    path = Path(out_dir) / "results" / f"{trial_id}.parquet"
    atomic_write_table(rows_to_table(rows), path)
    return path


def write_curve(out_dir: Path, trial_id: str, points: list[dict[str, Any]]) -> Path:
    """curves/<trial_id>.parquet: training curves (loss and metrics along training)."""
    path = Path(out_dir) / "curves" / f"{trial_id}.parquet"
    cols = {f.name: [p.get(f.name) for p in points] for f in CURVE_SCHEMA}
    atomic_write_table(pa.Table.from_pydict(cols, schema=CURVE_SCHEMA), path)
    return path


def finished_trials(out_dir: Path) -> set[str]:
    """Trial ids whose results file exists: the ledger a rerun resumes from."""
    d = Path(out_dir) / "results"
    return {p.stem for p in d.glob("*.parquet")} if d.is_dir() else set()


def read_results(out_dir: Path) -> pd.DataFrame:
    """Every results row under `out_dir` (or a results/ directory) as one DataFrame."""
    d = Path(out_dir)
    d = d / "results" if (d / "results").is_dir() else d
    files = sorted(d.glob("*.parquet"))
    if not files:
        return SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(f, schema=SCHEMA) for f in files]).to_pandas()


def read_curves(out_dir: Path) -> pd.DataFrame:
    """Every training curve point under `out_dir` as one DataFrame."""
    files = sorted((Path(out_dir) / "curves").glob("*.parquet"))
    if not files:
        return CURVE_SCHEMA.empty_table().to_pandas()
    return pa.concat_tables([pq.read_table(f) for f in files]).to_pandas()

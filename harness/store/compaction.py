"""Compacted results: a run of many trials keeps its results table in a few large Parquet files.

Each trial writes its rows to small files of its own (`results/<trial_id>.<unit>.parquet`): the
write-ahead unit that makes a crash lose nothing. Once a run holds `compact_at()` small files
(1,000 by default, `GENBENCH_COMPACT_AT`), the driver compacts those of trials that have ended
into one part, `results/part-<hash>.parquet`, during the run and at its end. The part's Parquet
footer lists its sources (name, size and modification time of each small file, and its row
count, in row order); only once the part is written, synced and renamed are the small files
removed. A crash at any point loses nothing and counts no row twice: before the rename nothing
changed (a hidden temporary is left, removed by the next compaction); after it, a small file the
part lists with the same size and time is skipped by every genbench reader
(`genbench.harness.store.results.results_files`) and removed by the next compaction. A small file
written again later (a refit) differs in time, and counts.

Failure rows (`<trial_id>.failed.parquet`), which a later success removes, are never compacted.
`pandas.read_parquet(OUT/results)`, DuckDB (`SELECT * FROM 'OUT/results/*.parquet'`) and polars
read parts and small files alike in one call (only a crash's leftovers would count twice there,
until the next run). At a URI the driver compacts its mirror at the end of the run, and the push
uploads the part before it deletes the small files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from genbench.harness.config import config_hash
from genbench.harness.store.files import atomic_write_bytes
from genbench.harness.store.results import (PART_PREFIX, SCHEMA, SOURCES_KEY, covered, identity,
                                            is_part, read_file)
from genbench.harness.store.rundir import RunDir

COMPACT_AT = 1000


def compact_at() -> int:
    """How many small results files make a compaction worth it (GENBENCH_COMPACT_AT)."""
    try:
        return max(1, int(os.environ.get("GENBENCH_COMPACT_AT", COMPACT_AT)))
    except ValueError:
        return COMPACT_AT


def compact(out_dir: Path, trial_ids: set[str] | None = None, min_files: int | None = None
            ) -> tuple[Path, int] | None:
    """Compact the small results files of `trial_ids` (None: every trial) in `out_dir` into one
    new part and remove them; returns (the part, how many files it holds), or None when fewer
    than `min_files` (default `compact_at()`) were there. Only the driver, holding the
    directory's lock, calls this, and only for trials that no longer run. First, small files a
    part already holds (a crash between writing a part and removing them) are removed;
    unreadable ones are left to the ledger, which quarantines them."""
    run = RunDir(out_dir)
    if not run.results.is_dir():
        return None
    for tmp in run.results.glob(f".{PART_PREFIX}*"):  # a compaction that died before its rename
        tmp.unlink(missing_ok=True)
    every = sorted(p for p in run.results.glob("*.parquet") if not p.name.startswith((".", "_")))
    least = compact_at() if min_files is None else min_files
    if trial_ids is not None and sum(f.name.split(".", 1)[0] in trial_ids
                                     for f in every if not is_part(f)) < least:
        return None  # (during a run: too few yet, and no part's footer read to know it)
    held = covered([f for f in every if is_part(f)])
    todo = []
    for f in every:
        if is_part(f) or f.name.endswith(".failed.parquet"):
            continue
        if identity(f) in held:
            f.unlink(missing_ok=True)  # already in a part
        elif trial_ids is None or f.name.split(".", 1)[0] in trial_ids:
            todo.append(f)
    if len(todo) < least:
        return None
    tables, sources = [], []
    for f in todo:
        try:
            ident = identity(f)
            table = read_file(f)
        except (OSError, ValueError):
            continue
        tables.append(table)
        sources.append([*ident, table.num_rows])
    if not tables:
        return None
    table = pa.concat_tables(tables).replace_schema_metadata(
        {**(SCHEMA.metadata or {}), SOURCES_KEY: json.dumps(sources).encode()})
    part = run.results / f"{PART_PREFIX}{config_hash(sources)[:16]}.parquet"
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(part, sink.getvalue().to_pybytes())  # synced, then renamed
    _sync_dir(part.parent)  # the rename is durable before any source goes
    for name, *_ in sources:
        (run.results / name).unlink(missing_ok=True)
    return part, len(sources)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

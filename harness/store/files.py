"""Files written whole: every file goes to a temporary name in its folder, is given the
permissions the umask gives any new file (mkstemp's own 0600 would hide results from
colleagues on a shared path), and is renamed over its place, so a crash never leaves a half
file; a checkpoint's size and hash are kept beside it, so a damaged one is told from a good
one; JSON is written valid (null, never NaN)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from genbench.harness.store.rundir import RunDir


def current_umask() -> int:
    """This process's umask (reading it means setting it, so it is set straight back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(path: Path, payload: bytes) -> None:
    """Write `payload` to `path` through a temporary file in the same directory and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's own mode is 0600
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_table(table: pa.Table, path: Path) -> None:
    """Write a Parquet table to `path` atomically."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic_write_bytes(path, sink.getvalue().to_pybytes())


def write_checkpoint(out_dir: Path, trial_id: str, payload: bytes) -> Path:
    """checkpoints/<trial_id>.pt, atomically, and beside it <trial_id>.pt.sha256: its size and
    content hash, so that a truncated or damaged checkpoint is told from a good one
    (`checkpoint_problem`) instead of failing every later run with torch's message."""
    run = RunDir(out_dir)
    path = run.checkpoint(trial_id)
    atomic_write_bytes(path, payload)
    digest = {"bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}
    atomic_write_bytes(run.checksum(trial_id), json.dumps(digest).encode())
    return path


def checkpoint_problem(path: Path, *, full: bool) -> str | None:
    """What is wrong with the checkpoint at `path` against its recorded size (and, with `full`,
    content hash), or None: fine, or written before checkpoints were recorded."""
    side = path.with_name(path.name + ".sha256")
    try:
        digest = json.loads(side.read_text())
        size = path.stat().st_size
    except (OSError, ValueError):
        return None
    if size != digest.get("bytes"):
        return f"checkpoint {path} has {size} bytes, {digest.get('bytes')} were written (truncated?)"
    if full and hashlib.sha256(path.read_bytes()).hexdigest() != digest.get("sha256"):
        return f"checkpoint {path} does not match the content hash recorded when it was written"
    return None


def json_safe(obj: Any) -> Any:
    """NaN and infinities as None, recursively: valid JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj

"""Run directories at a URI (`--out s3://bucket/run?region=eu-west-1`, `gs://`, `hdfs://`,
`file://`), through pyarrow's file systems (`pyarrow.fs.FileSystem.from_uri`).

genbench reads and writes a run directory as local files; for a URI it works on local copies
and moves files, one by one, between them and the URI:

- The driver keeps a *mirror* of the run (`GENBENCH_CACHE`, default ~/.cache/genbench, under
  mirrors/): tables, curves, plans, errors, sample grids and reports, pulled before it reads
  them and pushed after it writes them. Checkpoints stay at the URI; the mirror records which exist
  (`has_checkpoint`) and pulls one only where the driver needs it (cross-seed evaluations).
- A trial works in a node-local *stage* holding its own files (rows, curves, checkpoints and the
  error file of its trial id), pulled when it starts, and pushes what it wrote or removed when
  it ends: a file at the URI is always a whole file some trial finished.

The lock that keeps two drivers off one run directory (`genbench.harness.store.rundir.OutputLock`) lives in
the mirror, so it holds per machine only: start one driver per URI.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from genbench.harness.errors import GenbenchError, first_line
from genbench.harness.store.rundir import LOCK_NAME, MIRROR_MARK, PROGRESS_NAME, TRIAL_FOLDERS, RunDir

NOT_MIRRORED = ("checkpoints/", "ray/")  # large, or Tune's own


def is_uri(path: str | os.PathLike) -> bool:
    return "://" in str(path)


def cache_dir() -> Path:
    return Path(os.environ.get("GENBENCH_CACHE", Path.home() / ".cache" / "genbench"))


# how long a gs:// call retries before it fails: pyarrow's default, 15 minutes, makes an
# unreachable store look hung; a minute still rides out a transient 429 or 503 mid-upload
GCS_RETRY_S = 60


class Remote:
    """A run directory at a URI."""

    def __init__(self, uri: str, what: str = "--out"):
        import pyarrow.fs as pafs

        self.uri = uri.rstrip("/")
        opened = self.uri
        if opened.startswith(("gs://", "gcs://")) and "retry_limit_seconds" not in opened:
            # GCS retries an unreachable or unauthorised store for 15 minutes by default: a hang
            opened += f"{'&' if '?' in opened else '?'}retry_limit_seconds={GCS_RETRY_S}"
        try:
            self.fs, self.root = pafs.FileSystem.from_uri(opened)
        except Exception as err:  # noqa: BLE001 - pyarrow's reasons, in one line
            first = first_line(err, type(err).__name__)
            raise GenbenchError(f"cannot open {what} {uri}: {first}") from None
        self.root = self.root.rstrip("/")

    def listing(self, under: tuple[str, ...] = ("",)) -> dict[str, tuple[int, int]]:
        """Every file under the run, or under these folders of it: relative path -> (size,
        mtime in ns)."""
        import pyarrow.fs as pafs

        out = {}
        for top in under:
            try:
                infos = self.fs.get_file_info(pafs.FileSelector(
                    f"{self.root}/{top}".rstrip("/"), recursive=True, allow_not_found=True))
            except Exception as err:  # noqa: BLE001 - unreachable store, no permission
                first = first_line(err, type(err).__name__)
                raise GenbenchError(f"cannot list {self.uri}: {first}") from None
            out.update({i.path[len(self.root) + 1:]: (i.size, i.mtime_ns or 0) for i in infos
                        if i.type == pafs.FileType.File})
        return out

    def pull(self, local: Path, where: Callable[[str], bool],
             listing: dict[str, tuple[int, int]] | None = None) -> None:
        """Copy the files `where(relative path)` accepts into `local`, skipping those already
        there with the same size and a later modification time."""
        from genbench.harness.store.files import atomic_write_bytes

        for rel, (size, mtime) in (self.listing() if listing is None else listing).items():
            if not where(rel):
                continue
            dest = local / rel
            if dest.is_file() and dest.stat().st_size == size and dest.stat().st_mtime_ns >= mtime:
                continue
            with self.fs.open_input_stream(f"{self.root}/{rel}") as f:
                atomic_write_bytes(dest, f.read())

    def push(self, local: Path, before: dict[str, tuple[int, int]]) -> None:
        """Upload what changed in `local` since the snapshot `before`; delete what was removed."""
        after = snapshot(local)
        for rel, stat in after.items():
            if before.get(rel) != stat:
                dest = f"{self.root}/{rel}"
                self.fs.create_dir(dest.rpartition("/")[0], recursive=True)
                tmp = f"{dest}.tmp-{os.getpid()}"  # whole files only, where renames exist
                with self.fs.open_output_stream(tmp) as f:
                    f.write((local / rel).read_bytes())
                try:
                    self.fs.move(tmp, dest)
                except OSError:  # object stores without rename: write in place
                    self.fs.delete_file(tmp)
                    with self.fs.open_output_stream(dest) as f:
                        f.write((local / rel).read_bytes())
        for rel in set(before) - set(after):
            try:
                self.fs.delete_file(f"{self.root}/{rel}")
            except FileNotFoundError:
                pass


    def put(self, rel: str, data: bytes) -> None:
        """Write one small file of the run (a whole file: readers never see half of it where
        the store renames)."""
        dest = f"{self.root}/{rel}"
        self.fs.create_dir(dest.rpartition("/")[0], recursive=True)
        with self.fs.open_output_stream(dest) as f:
            f.write(data)


PROGRESS_PUSH_S = 30.0  # a running study's progress.json reaches its URI at most this often


def progress_file(out: str) -> Callable[[dict], None]:
    """The writer of a running study's OUT/progress.json (`genbench status` reads it): in the
    directory, or in a URI's mirror and at the URI every PROGRESS_PUSH_S seconds."""
    from genbench.harness.store.files import atomic_write_bytes

    remote = Remote(out) if is_uri(out) else None
    path = RunDir(mirror_dir(out) if remote else out).progress
    pushed = [0.0]

    def write(state: dict) -> None:
        data = json.dumps(state, indent=1).encode()
        atomic_write_bytes(path, data)
        if remote is not None and time.monotonic() - pushed[0] >= PROGRESS_PUSH_S:
            pushed[0] = time.monotonic()
            try:
                remote.put(PROGRESS_NAME, data)
            except Exception:  # noqa: BLE001 - progress is a courtesy; the rows are the run
                pass
    return write


def clear_progress(out: str) -> None:
    """The run ended: no progress.json says it is running (here, and at a URI)."""
    if is_uri(out):
        RunDir(mirror_dir(out)).progress.unlink(missing_ok=True)
        try:
            remote = Remote(out)
            remote.fs.delete_file(f"{remote.root}/{PROGRESS_NAME}")
        except Exception:  # noqa: BLE001 - absent, or the store is gone: nothing to clear
            pass
    else:
        RunDir(out).progress.unlink(missing_ok=True)


def snapshot(local: Path) -> dict[str, tuple[int, int]]:
    """Relative path -> (size, mtime in ns) of every file under `local`."""

    out = {}
    for p in Path(local).rglob("*"):
        if p.is_file() and p.name not in (MIRROR_MARK, LOCK_NAME, PROGRESS_NAME):  # (progress:
            # `progress_file` puts it)
            st = p.stat()
            out[p.relative_to(local).as_posix()] = (st.st_size, st.st_mtime_ns)
    return out


def mirror_dir(uri: str) -> Path:
    """Where the local mirror of the run at `uri` lives (nothing is pulled)."""
    return cache_dir() / "mirrors" / hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]


def mirror(uri: str, what: str = "--out") -> Path:
    """Pull the run at `uri` into its local mirror (created if new) and return the mirror."""
    remote = Remote(uri, what)
    listing = remote.listing()
    files = [rel for rel in listing if not rel.rsplit("/", 1)[-1].startswith(".")]
    if "study.json" not in files and not any(rel.startswith("results/") for rel in files):
        refuse_foreign(f"{what} {remote.uri}", files)  # before any of it is copied
    local = mirror_dir(remote.uri)
    local.mkdir(parents=True, exist_ok=True)
    mirrored = lambda rel: not rel.startswith(NOT_MIRRORED)  # noqa: E731
    remote.pull(local, mirrored, listing)
    for rel in snapshot(local):  # gone at the URI (a failure row a retry removed): gone here
        if mirrored(rel) and rel not in listing:
            (local / rel).unlink(missing_ok=True)
    checkpoints = sorted(rel.removeprefix("checkpoints/") for rel in listing
                         if rel.startswith("checkpoints/"))
    RunDir(local).mirror_mark.write_text(json.dumps({"uri": remote.uri, "checkpoints": checkpoints}))
    return local


def refuse_foreign(where: str, names: list[str]) -> None:
    """Refuse a non-empty place (a directory or a URI: `names` are its entries) that holds no
    genbench run: the ledger would take a Parquet file there for a results file and move it."""
    if names:
        raise GenbenchError(f"{where} is not empty and holds no genbench run (no study.json or "
                            f"genbench results; it has {', '.join(sorted(names)[:3])}"
                            f"{', ...' if len(names) > 3 else ''}); give a fresh --out")


def has_checkpoint(out_dir: Path, name: str) -> bool:
    """Whether checkpoints/<name> exists in the run: here, or at the URI of a mirror."""
    if (RunDir(out_dir).checkpoints / name).is_file():
        return True
    mark = RunDir(out_dir).mirror_mark
    return mark.is_file() and name in json.loads(mark.read_text())["checkpoints"]


def checkpoint_names(out_dir: Path) -> set[str]:
    """The names in checkpoints/ of the run, here or at the URI of a mirror: one listing (for
    the ledger's look at 100,000 trials), where `has_checkpoint` asks about one."""
    run = RunDir(out_dir)
    try:
        names = {e.name for e in os.scandir(run.checkpoints) if e.is_file()}
    except OSError:
        names = set()
    if run.mirror_mark.is_file():
        names.update(json.loads(run.mirror_mark.read_text())["checkpoints"])
    return names


def local_run(path: str | os.PathLike, what: str = "--out") -> Path:
    """The local directory to read a run from: the path itself, or a URI's fresh mirror."""
    return mirror(str(path), what) if is_uri(path) else Path(path)


@contextmanager
def publishing(local: Path) -> Iterator[None]:
    """Around what the driver writes in a run directory: for a mirror, send what changed back
    to its URI afterwards (a plain directory needs nothing)."""
    uri = RunDir(local).mirrored_uri()
    before = snapshot(local) if uri else {}
    yield
    if uri is not None:
        Remote(uri).push(local, before)


def pull_checkpoints(local: Path, names: list[str]) -> None:
    """Fetch these checkpoints of a mirror's run (for work the driver does itself)."""
    uri = RunDir(local).mirrored_uri()
    if uri is not None:
        wanted = {f"checkpoints/{n}" for n in names}
        remote = Remote(uri)
        remote.pull(local, lambda rel: rel in wanted, remote.listing(("checkpoints",)))




def trial_files(trial_id: str) -> Callable[[str], bool]:
    """The files of one trial a stage needs: its rows, curve, checkpoints and error file."""
    def owned(rel: str) -> bool:
        top, _, name = rel.partition("/")
        return top in TRIAL_FOLDERS and (name == trial_id or name.startswith(trial_id + "."))
    return owned


class Stage:
    """A trial's node-local working directory for a run at a URI (a plain path is used as is)."""

    def __init__(self, out_dir: str, trial_id: str):
        self.remote = Remote(out_dir) if is_uri(out_dir) else None
        if self.remote is None:
            self.path, self.before = Path(out_dir), {}
            return
        self.path = Path(tempfile.mkdtemp(prefix=f"genbench-{trial_id}-"))
        # only the folders a trial's files live in: not Tune's ray/ or the report's images
        self.remote.pull(self.path, trial_files(trial_id), self.remote.listing(TRIAL_FOLDERS))
        self.before = snapshot(self.path)

    def sync(self) -> None:
        """Push what the trial wrote or removed since the last push (a training checkpoint,
        finished rows), so a process that dies loses none of it."""
        if self.remote is not None:
            self.remote.push(self.path, self.before)
            self.before = snapshot(self.path)

    def finish(self) -> None:
        """Push the trial's work to the URI and remove the stage; when the push fails, the
        stage stays (its finished work is there) and the error names it."""
        if self.remote is None:
            return
        import shutil

        try:
            self.sync()
        except Exception as err:  # noqa: BLE001 - the store's reasons, in one line
            raise GenbenchError(f"cannot push {self.path} to {self.remote.uri}: "
                                f"{first_line(err, type(err).__name__)}; the files stay in "
                                f"{self.path}") from None
        shutil.rmtree(self.path, ignore_errors=True)

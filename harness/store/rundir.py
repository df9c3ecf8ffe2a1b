"""A run's output directory: every file name in it, in one place, and the rules that keep it
whole (names never become paths; one driver at a time; unreadable files set aside).

    OUT/
      study.json                     the latest plan; plans/<plan_id>.json every plan that wrote rows
      results/<trial>.fit.parquet    a fit's rows          results/<trial>.<setting>.<metrics>.parquet
      results/<trial>.failed.parquet a failed trial's row  results/<trial>.x<partner>.parquet (cross-seed)
      curves/<trial>.parquet         training curves       errors/<trial>.txt  the last failure's traceback
      logs/<trial>.log               what a trial printed  progress.json  where a running study is
      checkpoints/<trial>.pt(.sha256) the fitted model     checkpoints/<trial>.resume.pt  an unfinished fit
      samples/<trial>/<setting>.png  sample grids          figures/<trial>/<name>.png  method figures
      samples/real.png               real images of the reference split, as the grids show samples
      quarantine/                    unreadable results files, moved aside
      report/                        the page              ray/  Tune's own state
      looks.json                     the looks --until-decided took (genbench.harness.verdicts.sequential)
      genbench.lock                  while a driver runs   .genbench-mirror.json  in a URI's local mirror

A run at a URI is read and written through a local mirror of this same layout
(`genbench.harness.store.storage`, which sits beside this module and imports it, never the reverse).
Every name that comes from a declaration or a file (study, arm, trial id, setting label, figure)
goes through `safe_name`, so no name can place a file outside its folder (after Git's and
Docker's refusal of path components in names).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from genbench.harness.errors import GenbenchError

LOCK_NAME = "genbench.lock"
PROGRESS_NAME = "progress.json"  # where a running study is (`genbench status`)
MIRROR_MARK = ".genbench-mirror.json"  # in a mirror: the URI and the checkpoints it has
TRIAL_FOLDERS = ("results", "curves", "checkpoints", "errors", "logs")  # a trial's own files
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def safe_name(text: Any) -> str:
    """Any name (a study, arm, metric, trial id, setting label, figure) as one file name that
    stays where it is put: letters, digits, `.`, `_` and `-` only, never empty, never starting
    with a dot (hidden, `..`); a name that had to change gets a short hash of the original, so
    two names never meet in one file ("a/b" and "a?b")."""
    text = str(text)
    stem, ext = (text[:-len(m[0])], m[0]) if (m := re.search(r"\.[A-Za-z0-9]{1,5}$", text)) else (text, "")
    safe = _UNSAFE.sub("-", stem)[:100].lstrip(".") or "_"
    if safe != stem:
        safe += "-" + hashlib.sha256(text.encode()).hexdigest()[:8]
    return safe + ext


def within(root: Path, *names: Any) -> Path:
    """`root / name / ...` with every name made safe (`safe_name`): a path that cannot leave
    `root`, whatever the names read from files or declarations hold."""
    return Path(root).joinpath(*(safe_name(n) for n in names))


class RunDir:
    """The layout of one run's output directory (a local path, or a URI's local mirror)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    # -- folders and run-wide files ------------------------------------------------------------
    study_json = property(lambda self: self.root / "study.json")
    plans = property(lambda self: self.root / "plans")
    results = property(lambda self: self.root / "results")
    curves = property(lambda self: self.root / "curves")
    checkpoints = property(lambda self: self.root / "checkpoints")
    errors = property(lambda self: self.root / "errors")
    logs = property(lambda self: self.root / "logs")
    progress = property(lambda self: self.root / PROGRESS_NAME)  # while a driver runs
    looks = property(lambda self: self.root / "looks.json")  # --until-decided's record
    samples = property(lambda self: self.root / "samples")
    figures = property(lambda self: self.root / "figures")
    quarantine_dir = property(lambda self: self.root / "quarantine")
    report = property(lambda self: self.root / "report")
    lock = property(lambda self: self.root / LOCK_NAME)
    mirror_mark = property(lambda self: self.root / MIRROR_MARK)

    def is_run(self) -> bool:
        """Whether the directory holds a genbench run (results, or at least its plan)."""
        return self.results.is_dir() or self.study_json.is_file()

    def plan_file(self, plan_id: str) -> Path:
        return within(self.plans, f"{plan_id}.json")

    # -- a trial's files -----------------------------------------------------------------------
    def fit_file(self, trial_id: str) -> Path:
        """The rows of one fit."""
        return within(self.results, f"{trial_id}.fit.parquet")

    def unit_file(self, trial_id: str, sampling_key: str, metrics_key: str) -> Path:
        """The rows of one sample setting measured with one set of metrics (a metric added
        later gets a file of its own)."""
        return within(self.results, f"{trial_id}.{sampling_key}.{metrics_key}.parquet")

    def failed_file(self, trial_id: str) -> Path:
        """The status row of a trial whose last attempt raised (removed when one succeeds)."""
        return within(self.results, f"{trial_id}.failed.parquet")

    def cross_file(self, trial_id: str, partner_id: str) -> Path:
        """Rows of one fit measured against another fit of its cell (`cross_evaluate`)."""
        return within(self.results, f"{trial_id}.x{partner_id}.parquet")

    def curve_file(self, trial_id: str) -> Path:
        return within(self.curves, f"{trial_id}.parquet")

    def checkpoint(self, trial_id: str) -> Path:
        """The fitted model's state_dict; its size and content hash in `checksum(trial_id)`."""
        return within(self.checkpoints, f"{trial_id}.pt")

    def checksum(self, trial_id: str) -> Path:
        return within(self.checkpoints, f"{trial_id}.pt.sha256")

    def resume_checkpoint(self, trial_id: str) -> Path:
        """The last training checkpoint of an unfinished fit."""
        return within(self.checkpoints, f"{trial_id}.resume.pt")

    def log(self, trial_id: str) -> Path:
        """What the trial printed (its Python-level stdout and stderr), every attempt."""
        return within(self.logs, f"{trial_id}.log")

    def traceback(self, trial_id: str) -> Path:
        return within(self.errors, f"{trial_id}.txt")

    def timeout_marker(self, trial_id: str) -> Path:
        """Written by a trial's watchdog when it stops the trial (the failure's class)."""
        return within(self.errors, f"{trial_id}.timeout")

    real_grid = property(lambda self: self.samples / "real.png")  # the data the samples match

    def sample_grid(self, trial_id: str, setting_key: str) -> Path:
        return within(self.samples, trial_id, f"{setting_key}.png")

    def figure(self, trial_id: str, name: str) -> Path:
        return within(self.figures, trial_id, f"{name}.png")

    # -- messages and damage ------------------------------------------------------------------
    def mirrored_uri(self) -> str | None:
        """The URI a mirror stands for, None for a plain directory."""
        mark = self.mirror_mark
        return json.loads(mark.read_text())["uri"] if mark.is_file() else None

    def shown(self, path: Path | str) -> str:
        """How a message names `path` inside this run: at its URI for a mirror (a user never
        typed the cache's path), else the path itself."""
        uri = self.mirrored_uri()
        try:
            rel = Path(path).relative_to(self.root)
        except ValueError:
            return str(path)
        if not uri:
            return str(path)
        return uri.rstrip("/") + ("" if rel == Path(".") else f"/{rel.as_posix()}")

    def quarantine(self, path: Path) -> Path:
        """Move an unreadable file out of results/ or checkpoints/ (whose readers it would
        break) to quarantine/<UTC time>-<name>, never over an earlier one of the same name."""
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
        dest, n = self.quarantine_dir / f"{stamp}-{path.name}", 1
        while dest.exists():  # the same file damaged twice within a second
            n += 1
            dest = self.quarantine_dir / f"{stamp}.{n}-{path.name}"
        shutil.move(str(path), dest)
        return dest


class OutputLock:
    """One driver per output directory: `genbench.lock` holds the holder's host, PID and start
    time. A lock left by a dead process on this host is stale and taken over; one held by a
    live process, or by another host, refuses the second driver in one line."""

    def __init__(self, out_dir: Path):
        self.run = RunDir(out_dir)
        self.path = self.run.lock
        self.held, self.me = False, {}

    def acquire(self, echo: Callable[[str], None] = print) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"host": socket.gethostname(), "pid": os.getpid(),
              "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
            except FileExistsError:
                holder = self._holder()
                if not holder:  # empty or torn (a crash while it was written): nobody holds it
                    echo(f"taking over {self.path}: empty or unreadable, so no run holds it")
                    self.path.unlink(missing_ok=True)
                    continue
                if not self._stale(holder):
                    raise GenbenchError(
                        f"{self.run.shown(self.run.root)} is in use by another genbench run (host "
                        f"{holder.get('host', '?')}, pid {holder.get('pid', '?')}, since "
                        f"{holder.get('started_at', '?')}); wait for it, or delete "
                        f"{self.path} if that run is dead") from None
                if self._holder() != holder:  # another driver took it over meanwhile
                    continue
                echo(f"taking over a stale lock of pid {holder.get('pid')} (no longer running)")
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held, self.me = True, me
            return
        raise GenbenchError(f"could not take the lock {self.path}; another run took it first")

    def holder(self) -> tuple[dict, bool]:
        """Who holds the lock (host, pid, started_at; {} when nobody does) and whether that
        driver may be running (only a dead process on this host is known not to be)."""
        holder = self._holder() if self.path.is_file() else {}
        return holder, bool(holder) and not self._stale(holder)

    def _holder(self) -> dict:
        for _ in range(3):  # a holder may be between creating and writing the file
            try:
                holder = json.loads(self.path.read_text())
                return holder if isinstance(holder, dict) else {}
            except (OSError, ValueError):
                time.sleep(0.1)
        return {}

    @staticmethod
    def _stale(holder: dict) -> bool:
        if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
            return False  # another host's process cannot be checked from here
        try:
            os.kill(holder["pid"], 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def release(self) -> None:
        if self.held and self._holder() == self.me:  # never another driver's lock
            self.path.unlink(missing_ok=True)
        self.held = False

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

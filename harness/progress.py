"""What the console says while trials run, whoever runs them (Ray Tune, `genbench.harness.tune`,
or this process, `genbench.harness.inprocess`): one line as each trial starts and as it ends (with
how many are done, running and pending, and an estimate of the time left), one line when its
worker died and it starts again, and, after a silence of `heartbeat_s`, where a running trial is
(its step and losses, or the setting it samples) from its last heartbeat.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable


def duration_text(seconds: float) -> str:
    """A duration as people say it: 42s, 17 min, 3.5 h."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def heartbeat_seconds() -> float:
    """How long a trial may be silent before the console says where it is (GENBENCH_HEARTBEAT_S,
    default 60)."""
    try:
        return max(0.5, float(os.environ.get("GENBENCH_HEARTBEAT_S", "60")))
    except ValueError:
        return 60.0


def where(info: dict[str, Any] | None) -> str:
    """A trial's last heartbeat as a console line."""
    if not info:
        return "still running (no progress reported yet)"
    if info.get("phase") == "fit":
        losses = ", ".join(f"{k} {v:.4g}" for k, v in info.items()
                           if k not in ("phase", "step", "steps", "wall_s"))
        return (f"still training: step {info['step']}/{info['steps']}"
                + (f", {losses}" if losses else "") + f" ({duration_text(info.get('wall_s', 0))} in)")
    return (f"still sampling: setting {info.get('setting')} "
            f"({info.get('done', 0) + 1} of {info.get('of', '?')})")


class Progress:
    """The console lines of one run of `total` trials, printed through `echo`."""

    def __init__(self, total: int, echo: Callable[[str], None], max_failures: int = 1,
                 heartbeat_s: float = 60.0):
        self.total, self.echo, self.max_failures, self.heartbeat_s = total, echo, max_failures, heartbeat_s
        self.ended: set[str] = set()
        self.running: set[str] = set()
        self.start = time.monotonic()
        self.restarts: dict[str, int] = {}
        self.said: dict[str, float] = {}  # when the console last heard of each trial
        self.last: dict[str, dict] = {}  # each trial's last heartbeat

    def started(self, tid: str, cell: dict[str, Any]) -> None:
        self.running.add(tid)
        self.said[tid] = time.monotonic()
        self.echo(f"  started  {tid}  {cell or ''}")

    def heard(self, tid: str, info: dict[str, Any]) -> None:
        """A heartbeat: where the trial is; said only after a silence (`tick`)."""
        self.last[tid] = info

    def tick(self) -> None:
        """Say where each running trial is that the console has not mentioned for heartbeat_s."""
        now = time.monotonic()
        for tid in sorted(self.running):
            if now - self.said.get(tid, now) >= self.heartbeat_s:
                self.said[tid] = now
                self.echo(f"  {tid}: {where(self.last.get(tid))}")

    def finished(self, tid: str, status: str, message: str) -> None:
        self.running.discard(tid)
        self.ended.add(tid)  # (a set: a trial reported twice is counted once)
        done, left = len(self.ended), max(0, self.total - len(self.ended))
        pending = max(0, left - len(self.running))
        elapsed = time.monotonic() - self.start
        eta = elapsed / done * left if done else 0.0
        extra = f": {message}" if message else ""
        self.echo(f"  [{done}/{self.total}] {tid} {status}{extra} | "
                  f"{len(self.running)} running, {pending} pending, ~{duration_text(eta)} left")

    def restarted(self, tid: str) -> None:
        """Its worker process died (killed, out of memory, a lost node) and it starts again,
        resuming from its own files."""
        self.running.discard(tid)
        self.restarts[tid] = self.restarts.get(tid, 0) + 1
        self.echo(f"  {tid}: its worker died; retrying {self.restarts[tid]}/{self.max_failures}")

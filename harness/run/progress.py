"""What the console says while trials run, whoever runs them (Ray Tune, `genbench.harness.run.tune`,
or this process, `genbench.harness.run.inprocess`): one line as each trial starts and as it ends,
naming it by arm, grid values and seed (`ddpm T=500 s0`), with how many are done, running and
pending and the time left (from the trial times measured so far, arm by arm: a DDPM trial of
minutes is not timed by a dummy trial of a second before it); one line when its worker died and
it starts again; and, after a silence of `heartbeat_s`, where a running trial is (its step,
losses and rate, or the setting it samples) from its last heartbeat. The same state goes to
`snapshot` (OUT/progress.json: `genbench status` reads it from another process).
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from datetime import datetime, timezone
from typing import Any, Callable

from genbench.harness.errors import count

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
                           if k not in ("phase", "step", "steps", "wall_s", "images_per_s"))
        wall = info.get("wall_s", 0)
        rate = (f", {info['images_per_s']:.3g} images/s" if info.get("images_per_s")
                else f", {info['step'] / wall:.2f} steps/s" if wall > 0 and info.get("step") else "")
        return (f"still training: step {info['step']}/{info['steps']}"
                + (f", {losses}" if losses else "") + rate + f" ({duration_text(wall)} in)")
    return (f"still sampling: setting {info.get('setting')} "
            f"({info.get('done', 0) + 1} of {info.get('of', '?')})")


class Progress:
    """The console lines of one run of `trials` (each with `trial_id`, `name` and `arm`),
    printed through `echo`; its state through `snapshot` (a dict; see `_snapshot`)."""

    SNAPSHOT_EVERY_S = 5.0

    def __init__(self, trials: list, echo: Callable[[str], None], max_failures: int = 1,
                 heartbeat_s: float = 60.0, snapshot: Callable[[dict], None] | None = None):
        self.names = {t.trial_id: t.name for t in trials}
        self.arms = {t.trial_id: t.arm for t in trials}
        self.total, self.echo, self.max_failures = len(self.names), echo, max_failures
        self.heartbeat_s, self.snapshot = heartbeat_s, snapshot
        self.ended: dict[str, str] = {}  # trial id -> how it ended (a trial reported twice counts once)
        self.running: dict[str, float] = {}  # trial id -> when it (last) started
        self.most_at_once = 1
        self.durations: dict[str, tuple[float, int]] = {}  # arm -> seconds, count of its trials
        # that ended ok (sums: a mean without a pass over every trial)
        self.left = Counter(self.arms.values())  # arm -> its trials not yet ended
        self.start = time.monotonic()
        self.restarts: dict[str, int] = {}
        self.said: dict[str, float] = {}  # when the console last heard of each trial
        self.last: dict[str, dict] = {}  # each trial's last heartbeat
        self.written = 0.0
        self.started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")

    def name(self, tid: str) -> str:
        return self.names.get(tid, tid)

    def started(self, tid: str) -> None:
        now = time.monotonic()
        self.running[tid] = now
        self.most_at_once = max(self.most_at_once, len(self.running))
        self.said[tid] = now
        self.echo(f"  started  {self.name(tid)}  [{tid}]")
        self._snapshot(force=True)

    def heard(self, tid: str, info: dict[str, Any]) -> None:
        """A heartbeat: where the trial is; said only after a silence (`tick`)."""
        self.last[tid] = info
        self._snapshot()

    def tick(self) -> None:
        """Say where each running trial is that the console has not mentioned for heartbeat_s."""
        now = time.monotonic()
        for tid in sorted(self.running):
            if now - self.said.get(tid, now) >= self.heartbeat_s:
                self.said[tid] = now
                self.echo(f"  {self.name(tid)}: {where(self.last.get(tid))}")

    def finished(self, tid: str, status: str, message: str) -> None:
        began = self.running.pop(tid, None)
        if tid not in self.ended:
            self.left[self.arms.get(tid, "")] -= 1
            if began is not None and status == "ok":
                arm = self.arms.get(tid, "")
                total, n = self.durations.get(arm, (0.0, 0))
                self.durations[arm] = (total + time.monotonic() - began, n + 1)
        self.ended[tid] = status
        self.last.pop(tid, None)
        done, left = len(self.ended), max(0, self.total - len(self.ended))
        pending = max(0, left - len(self.running))
        extra = f": {message}" if message else ""
        self.echo(f"  [{done}/{self.total}] {self.name(tid)} {status}{extra} | "
                  f"{len(self.running)} running, {pending} pending, {self.time_left()}")
        self._snapshot(force=True)

    def restarted(self, tid: str) -> None:
        """Its worker process died (killed, out of memory, a lost node) and it starts again,
        resuming from its own files."""
        self.running.pop(tid, None)
        self.restarts[tid] = self.restarts.get(tid, 0) + 1
        self.echo(f"  {self.name(tid)}: its worker died; retrying {self.restarts[tid]}/{self.max_failures}")

    def time_left(self) -> str:
        """The time the trials not yet ended need, from the mean time of each arm's trials that
        ended ok, spread over as many at once as have run at once; an arm none of whose trials
        has ended yet is said as such, not guessed from another arm's."""
        now = time.monotonic()  # (per arm and per running trial: a study of 100,000
        mean = {arm: total / n for arm, (total, n) in self.durations.items()}  # trials says it
        known, untimed = 0.0, Counter()                                     # in no time)
        running: dict[str, list[float]] = {}
        for tid, began in self.running.items():
            running.setdefault(self.arms.get(tid, ""), []).append(now - began)
        for arm, left in self.left.items():
            if left <= 0:
                continue
            if arm not in mean:
                untimed[arm] += left
                continue
            ran = running.get(arm, [])
            known += (left - len(ran)) * mean[arm] + sum(max(0.0, mean[arm] - s) for s in ran)
        if not untimed:
            return f"~{duration_text(known / self.most_at_once)} left" if known else "none left"
        not_timed = ", ".join(count(n, f"{arm} trial") for arm, n in untimed.items())
        return (f"~{duration_text(known / self.most_at_once)} left + " if known else "time left unknown: ") \
            + f"{not_timed} not yet timed"

    def state(self) -> dict[str, Any]:
        """What `genbench status` shows of this run (OUT/progress.json)."""
        now = time.monotonic()
        return {"host": socket.gethostname(), "pid": os.getpid(), "started_at": self.started_at,
                "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "total": self.total, "ended": dict(Counter(self.ended.values())),
                "time_left": self.time_left(),
                "running": [{"trial_id": tid, "name": self.name(tid), "seconds": round(now - t, 1),
                             "where": where(self.last.get(tid)).replace("still ", "", 1)
                             if self.last.get(tid) else "no progress reported yet"}
                            for tid, t in sorted(self.running.items(), key=lambda kv: kv[1])]}

    def _snapshot(self, force: bool = False) -> None:
        """Write the state: at a trial's start or end (`force`) at most once a second, on a
        heartbeat every SNAPSHOT_EVERY_S (a study of 100,000 short trials writes it not
        200,000 times, each an atomic replace)."""
        now = time.monotonic()
        if self.snapshot is None or now - self.written < (1.0 if force else self.SNAPSHOT_EVERY_S):
            return
        self.written = now
        try:
            self.snapshot(self.state())
        except OSError:  # (a full disk): the console still says it all
            pass

"""No process of a run outlives its driver: a watchdog for the local Ray that `genbench run`
starts (docs/architecture.md, "Clusters").

Ray's own clean-up runs in the driver, so when the driver is killed with SIGKILL some of its
processes (the dashboard and runtime-env agents among them) stay behind. `watch` starts a small
detached process that polls the driver; when the driver is gone it kills, with SIGKILL, every
process whose command line names the driver's Ray session directory and all their
descendants (the agents are renamed `ray::...` but are children of the raylet), then exits.
It also exits when the session ends normally. Linux `/proc` only; elsewhere it does nothing.

    python -m genbench.harness.run.reaper DRIVER_PID SESSION_DIR
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

POLL_S = 0.5


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process visible in /proc."""
    out = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            ppid = int(_stat(int(d.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        out[int(d.name)] = (ppid, cmd)
    return out


def _stat(pid: int) -> list[str]:
    """Fields of /proc/PID/stat after the command name: state, ppid, ..., starttime at [19]."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2:].split()


def _start_time(pid: int) -> str | None:
    try:
        return _stat(pid)[19]
    except (OSError, IndexError):
        return None


def session_processes(marker: str) -> list[int]:
    """Processes whose command line contains `marker` (a session directory), and their
    descendants; never this process."""
    procs = _processes()
    found = {pid for pid, (_, cmd) in procs.items() if marker in cmd}
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in procs.items():
            if ppid in found and pid not in found:
                found.add(pid)
                grew = True
    found.discard(os.getpid())
    return sorted(found)


def kill_session(marker: str) -> int:
    """SIGKILL every process of the session; returns how many were signalled."""
    pids = session_processes(marker)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return len(pids)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie has exited: its status line says so
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def watch(driver_pid: int, session_dir: str) -> subprocess.Popen | None:
    """Start the watchdog of `session_dir` for `driver_pid` (detached; Linux only)."""
    if not Path("/proc").is_dir():
        return None
    return subprocess.Popen([sys.executable, "-m", "genbench.harness.run.reaper", str(driver_pid), session_dir],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def main(argv: list[str]) -> int:
    driver, session = int(argv[0]), argv[1]
    # every process ever seen in the session, with its start time: when the raylet dies first,
    # its agents are re-parented away from it and no longer look like part of the session
    known: dict[int, str | None] = {}
    while _alive(driver):
        current = session_processes(session)
        if not current and known:  # the session ended with its driver's clean-up
            return 0
        known.update({pid: _start_time(pid) for pid in current if pid not in known})
        time.sleep(POLL_S)
    for pid, started in known.items():
        if started is not None and _start_time(pid) == started:  # the same process, not a reuse
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    kill_session(session)  # anything started since the last poll
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

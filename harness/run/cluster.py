"""Joining Ray (docs/architecture.md, "Clusters"): a local Ray bound to loopback and sized to
this machine, or an existing cluster at `--address` / `RAY_ADDRESS`, with one-line failures in
bounded time instead of Ray's endless reconnection.

- The address is resolved as Ray resolves it (`auto` reads the latest `ray start` on this
  machine) and its GCS port is probed with a plain TCP connection first: an address where
  nothing listens fails in `PROBE_TIMEOUT_S`, naming the address and what to check.
- `ray.init` then runs under a deadline (`CONNECT_TIMEOUT_S`); a refused authentication token
  (Ray 2.60 token authentication: `RAY_AUTH_MODE=token` with the cluster's token in
  `RAY_AUTH_TOKEN`, `RAY_AUTH_TOKEN_PATH` or `~/.ray/auth_token`) fails in one line that says so.
  Environment variables of the driver reach Ray's workers through Ray itself, so the token set
  for genbench is the token its trials use.
- On a cluster of several nodes, `--out` (and `--storage`) must be seen by every node:
  `check_shared` asks a task on each node to find a marker file, and refuses a node-local path
  in one line before any trial starts.
- A local Ray is started with this machine's CPUs and GPUs, without the idle worker processes
  Ray starts ahead of tasks (`NO_IDLE_WORKERS`), and Ray's own defaults otherwise; its
  start-up messages are kept to errors, and a watchdog (`genbench.harness.run.reaper`) kills its
  processes within a second of the driver's death, SIGKILL included.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from genbench.harness.errors import GenbenchError, first_line

PROBE_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 30.0
# Ray's own warnings stay; Tune's trial-error tracebacks go (genbench prints one line per
# failure and keeps the traceback under errors/)
QUIET_LOGGERS = {"ray": logging.ERROR, "ray.tune": logging.CRITICAL,
                 "ray.train": logging.CRITICAL, "ray.air": logging.CRITICAL}


@dataclass(frozen=True)
class Cluster:
    address: str | None  # None: a local Ray started by genbench
    nodes: int  # alive nodes
    cpus: float
    gpus: float


def requested_address(address: str | None) -> str | None:
    """`--address`, else `RAY_ADDRESS`, else None (a local Ray)."""
    return address or os.environ.get("RAY_ADDRESS") or None


def _host_port(address: str) -> tuple[str, int]:
    from ray._private.services import canonicalize_bootstrap_address

    text = address.removeprefix("ray://")
    if address.startswith("ray://"):  # Ray Client: probe the client server's port
        host, _, port = text.rpartition(":")
        return host, int(port or 10001)
    try:
        resolved = canonicalize_bootstrap_address(text)
    except Exception as err:  # noqa: BLE001 - Ray's own parsing errors
        raise GenbenchError(f"cannot resolve the Ray address {address!r}: {err}") from None
    if resolved is None:
        raise GenbenchError(f"no Ray cluster found for address {address!r}: start one with "
                            "`ray start --head` or give --address HOST:PORT")
    host, _, port = resolved.rpartition(":")
    return host, int(port)


def probe(address: str) -> None:
    """Fail in one line, within PROBE_TIMEOUT_S, when nothing listens at `address`."""
    try:
        host, port = _host_port(address)
    except ValueError:
        raise GenbenchError(f"malformed Ray address {address!r}; expected HOST:PORT, auto or "
                            "ray://HOST:PORT") from None
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except (OSError, UnicodeError, ValueError) as err:  # UnicodeError: a host name IDNA refuses
        reason = getattr(err, "strerror", None) or f"{type(err).__name__}: {err}"
        raise GenbenchError(f"no Ray cluster answers at {address} ({host}:{port}: {reason}); "
                            "check that `ray start --head` runs there, that this machine can "
                            "reach the port, and the address (--address or RAY_ADDRESS)") from None
    if not address.startswith("ray://"):
        _check_token(address, f"{host}:{port}")


def _check_token(address: str, gcs: str) -> None:
    """Ask the GCS for its cluster id, as `ray status` does: a missing or wrong token is refused
    at once with Ray's AuthenticationError (whose C++ log line is kept off the terminal)."""
    from ray._raylet import GcsClient

    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        GcsClient(address=gcs).get_cluster_id()
    except Exception as err:  # noqa: BLE001 - only the authentication verdict matters here
        if type(err).__name__ == "AuthenticationError":
            raise GenbenchError(_auth_message(address)) from None
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _auth_message(address: str) -> str:
    mode = os.environ.get("RAY_AUTH_MODE", "unset")
    return (f"the Ray cluster at {address} refused genbench's authentication token "
            f"(RAY_AUTH_MODE is {mode}); the cluster uses token authentication: set "
            "RAY_AUTH_MODE=token and give its token as RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or "
            "~/.ray/auth_token")


def quiet() -> None:
    """Keep Ray and Tune to warnings that matter: no configuration box, no TensorBoard hint;
    and leave Ctrl-C to the driver (`genbench run` stops in one line, exit 130). Tune's own
    handler would instead end the running trials as errors and return."""
    os.environ.setdefault("TUNE_DISABLE_SIGINT_HANDLER", "1")
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


# A local Ray starts idle worker processes ahead of tasks, one per CPU; Tune's trial actors
# start workers of their own and never use them (seen in a session's worker logs: every trial
# in a new process of the job, the idle ones of no job left as they were), so each costs a
# Python start with Ray's imports (about a second of CPU) and its memory, for nothing: one per
# core of a workstation. genbench's local Ray starts none.
NO_IDLE_WORKERS = {"enable_worker_prestart": False, "prestart_worker_first_driver": False}


def connect(address: str | None) -> Cluster:
    """Join the cluster at `address` (None: start a local Ray); idempotent."""
    import ray

    quiet()
    if address and ray.is_initialized():  # (a process that joined before, as tests do): an
        probe(address)                    # address nothing answers at still fails in one line
    if not ray.is_initialized():
        kwargs = dict(include_dashboard=False, log_to_driver=False, logging_level="ERROR")
        if address:
            probe(address)
            _init_with_deadline(address, kwargs)
        else:
            main = threading.current_thread() is threading.main_thread()
            keep = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
            ray.init(num_cpus=os.cpu_count(), _system_config=NO_IDLE_WORKERS, **kwargs)
            for sig, handler in keep.items():  # ray.init makes SIGTERM a sys.exit: the caller's
                if handler is not None:        # handlers stay
                    signal.signal(sig, handler)
            from ray._private import worker

            from genbench.harness.run.reaper import watch

            watch(os.getpid(), worker._global_node.get_session_dir_path())  # see genbench.harness.run.reaper
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    res = ray.cluster_resources()
    return Cluster(address, len(nodes), res.get("CPU", 0.0), res.get("GPU", 0.0))


def _init_with_deadline(address: str, kwargs: dict) -> None:
    import ray

    outcome: dict[str, BaseException | None] = {}

    def target() -> None:
        try:
            ray.init(address=address, **kwargs)
            outcome["error"] = None
        except BaseException as err:  # noqa: BLE001 - reported in one line below
            outcome["error"] = err

    thread = threading.Thread(target=target, name="genbench-ray-init", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT_S)
    if thread.is_alive():
        raise GenbenchError(f"the Ray cluster at {address} accepted a connection but did not "
                            f"answer within {CONNECT_TIMEOUT_S:.0f} s; check that it is a Ray "
                            "GCS port and that the cluster is healthy (`ray status`)")
    err = outcome.get("error")
    if err is None:
        return
    first = first_line(err, type(err).__name__)
    if type(err).__name__ == "AuthenticationError" or "auth" in first.lower():
        raise GenbenchError(_auth_message(address)) from None
    raise GenbenchError(f"cannot join the Ray cluster at {address}: {first}") from None


def check_shared(path: Path, what: str = "--out") -> None:
    """On a cluster of several nodes every node must see `path`: a marker file written next to
    it is looked for by a task pinned to each alive node, and a node that cannot see it fails
    the run in one line, before any trial starts. A URI (s3://...) is left to pyarrow."""
    import uuid

    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    if "://" in str(path):
        return
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    if len(nodes) < 2:
        return
    anchor = Path(path).resolve()
    while not anchor.exists():
        anchor = anchor.parent
    marker = anchor / f".genbench-shared-{uuid.uuid4().hex}"
    marker.write_text("genbench: is this path shared by every node?\n")
    try:
        exists = ray.remote(num_cpus=0)(os.path.exists)
        refs = [exists.options(scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(str(marker)) for n in nodes]
        try:
            seen = ray.get(refs, timeout=CONNECT_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise GenbenchError(f"{what} {path}: not every one of the {len(nodes)} live nodes "
                                f"said within {CONNECT_TIMEOUT_S:.0f}s whether it sees it; "
                                "check the cluster (`ray status`)") from None
    finally:
        marker.unlink(missing_ok=True)
    blind = sorted({n.get("NodeManagerAddress", "?") for n, ok in zip(nodes, seen) if not ok})
    if blind:
        raise GenbenchError(f"{what} {path} is not visible from {len(blind)} of {len(nodes)} "
                            f"nodes ({', '.join(blind)}); on a cluster give a path every node "
                            "mounts (NFS or similar)")


def cluster_nodes() -> list:
    """The alive nodes of the Ray cluster this process joined, with their CPUs and GPUs
    (`genbench.harness.plan.packing.Node`s, for the packing to simulate)."""
    import ray

    from genbench.harness.plan.packing import Node

    return [Node(f"{n.get('NodeManagerHostname', '?')}/{n['NodeID'][:12]}",
                 float(n.get("Resources", {}).get("CPU", 0.0)),
                 float(n.get("Resources", {}).get("GPU", 0.0)))
            for n in ray.nodes() if n.get("Alive")]

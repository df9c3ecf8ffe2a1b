"""Pretrained starting points: the model zoo genbench trained itself (the `zoo` study, shipped
inside the package as half-precision checkpoints with the rows that made them), and any
checkpoint a user names, as an arm's starting point (`Arm(pretrained="ddpm_linear")`, or a path
or URI to a genbench fit checkpoint). After the pipelines of diffusers (a model named, fetched,
verified) and EDM's pickles (weights with the options that trained them): a pretrained fit is a
load, never a shortcut around the ledger; the checkpoint's sha256 is part of the trial's key and
of its rows, and a file that is missing or does not match its hash fails in one line naming it.

    harness/zoo/zoo.json     the manifest: per model its method, config, file, sha256, and the
                             run that made it (commit, command, budget, metrics, tolerance)
    harness/zoo/<name>.pt    its weights: `Method.state_dict()` with float tensors in float16

`genbench run zoo --scale full` retrains them; `benchmarks/zoo_export.py RUN` writes a finished
zoo run into this folder (`export`); `genbench list` shows them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genbench.harness.errors import GenbenchError, unknown

ZOO_DIR = Path(__file__).resolve().parents[1] / "zoo"  # harness/zoo/
MANIFEST = "zoo.json"


@dataclass(frozen=True)
class Entry:
    """One shipped model."""

    name: str  # what an arm names: Arm(pretrained=NAME)
    method: str  # the registered method that samples it
    file: str  # its checkpoint, under harness/zoo/
    sha256: str
    config: dict[str, Any]  # the method config it was trained with
    data: str  # the data set and resolution it was trained on
    resolution: int
    made_by: dict[str, Any] = field(default_factory=dict)  # commit, command, study, arm, seed, budget
    metrics: dict[str, Any] = field(default_factory=dict)  # what it measured: setting, n, values, floor
    tolerance: float = 0.02  # the relative change of its recorded fid_domain a rerun may show
    root: str = ""  # the folder of its manifest (not written: "" is the shipped zoo)

    @property
    def path(self) -> Path:
        return Path(self.root or ZOO_DIR) / self.file

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "root"}


def entries() -> dict[str, Entry]:
    """Every shipped model, by name (none where the package ships no manifest)."""
    return entries_in(ZOO_DIR)


def entries_in(folder: Path) -> dict[str, Entry]:
    """The models of the zoo manifest in `folder`, by name."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
        root = "" if Path(folder).resolve() == ZOO_DIR else str(Path(folder).resolve())
        return {e["name"]: Entry(**e, root=root) for e in raw["models"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise GenbenchError(f"the zoo's manifest {path} cannot be read ({err}); reinstall genbench") from None


@dataclass(frozen=True)
class Pretrained:
    """A resolved starting point: where it is, its hash, and what it holds."""

    ref: str  # as the study named it: a zoo name, a path or a URI
    location: str  # the file (a zoo file's path, an absolute path, or the URI)
    sha256: str
    method: str | None  # the zoo's method; None for a user's checkpoint (the arm's method says)
    config: dict[str, Any]  # the method config stored in the checkpoint

    def key(self) -> dict[str, str]:
        """What the trial's key and rows record: the name and the content's hash."""
        return {"ref": self.ref, "sha256": self.sha256}


def _read(location: str) -> bytes:
    """The bytes of a checkpoint at a path or a URI (pyarrow's file systems); a missing one
    fails in one line naming it."""
    from genbench.harness.store.storage import is_uri

    try:
        if is_uri(location):
            import pyarrow.fs as pafs

            fs, path = pafs.FileSystem.from_uri(location)
            with fs.open_input_stream(path) as f:
                return f.read()
        return Path(location).read_bytes()
    except (OSError, ValueError) as err:
        raise GenbenchError(f"pretrained checkpoint {location} cannot be read ({err}); give a "
                            "genbench fit checkpoint (OUT/checkpoints/TRIAL.pt) or a zoo name "
                            f"({', '.join(entries()) or 'none shipped'})") from None


def sha256_of(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def resolve(ref: str) -> Pretrained:
    """The starting point `ref` names: a zoo model (its file verified against the manifest's
    sha256) or a checkpoint at a path or URI (its config read from it). Fails in one line: an
    unknown name, a missing file, a file whose hash is not the manifest's, a file that is not
    a genbench checkpoint."""
    zoo = entries()
    if ref in zoo:
        e = zoo[ref]
        if not e.path.is_file():
            raise GenbenchError(f"zoo model {ref!r}: its checkpoint {e.path} is missing; reinstall "
                                f"genbench, or retrain it with `genbench run zoo --scale full`")
        payload = e.path.read_bytes()
        if sha256_of(payload) != e.sha256:
            raise GenbenchError(f"zoo model {ref!r}: {e.path} does not match its sha256 "
                                f"({e.sha256[:12]}...): the file is damaged; reinstall genbench")
        return Pretrained(ref, str(e.path), e.sha256, e.method, dict(e.config))
    looks_like_path = "/" in ref or "://" in ref or ref.endswith(".pt")
    if not looks_like_path:
        raise GenbenchError(unknown("pretrained model", ref, sorted(zoo),
                                    ", ".join(sorted(zoo)) + " (or a checkpoint's path or URI)"))
    location = ref if "://" in ref else str(Path(ref).expanduser().resolve())
    payload = _read(location)
    state = _state(payload, location)
    if not isinstance(state.get("config"), dict):
        raise GenbenchError(f"pretrained checkpoint {location} holds no method config: not a "
                            "genbench fit checkpoint (OUT/checkpoints/TRIAL.pt)")
    return Pretrained(ref, location, sha256_of(payload), None, state["config"])


def _state(payload: bytes, location: str) -> dict[str, Any]:
    import io

    import torch

    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch says little more than "corrupt"
        raise GenbenchError(f"pretrained checkpoint {location} does not load ({type(err).__name__}); "
                            "give a genbench fit checkpoint (OUT/checkpoints/TRIAL.pt)") from None
    if not isinstance(state, dict):
        raise GenbenchError(f"pretrained checkpoint {location} is not a genbench fit checkpoint")
    return state


def load_state(pretrained: dict[str, str], location: str) -> dict[str, Any]:
    """The state dict of a trial's starting point (`Pretrained.key()` as the plan recorded it,
    read at `location`), checked against the hash the plan was made with: a file changed
    since fails in one line."""
    payload = _read(location)
    if sha256_of(payload) != pretrained["sha256"]:
        raise GenbenchError(f"pretrained checkpoint {location} changed since the plan was made "
                            f"(sha256 {sha256_of(payload)[:12]}... against "
                            f"{pretrained['sha256'][:12]}...); rerun the command to plan it anew")
    return _state(payload, location)


def location_of(pretrained: dict[str, str]) -> str:
    """Where a recorded starting point is on this machine: a zoo model's file in this
    installation, else the path or URI itself."""
    zoo = entries()
    ref = pretrained["ref"]
    return str(zoo[ref].path) if ref in zoo else (
        ref if "://" in ref else str(Path(ref).expanduser().resolve()))


def half(state: dict[str, Any]) -> dict[str, Any]:
    """A state dict with its floating-point tensors in float16 (half the bytes); the rest kept.
    Loading casts them back (`load_state_dict` copies into the networks' own dtype)."""
    import torch

    def conv(x: Any) -> Any:
        if isinstance(x, torch.Tensor) and x.is_floating_point():
            return x.to(torch.float16)
        if isinstance(x, dict):
            return {k: conv(v) for k, v in x.items()}
        return x

    return conv(state)


def export(entries_: list[Entry], states: dict[str, dict[str, Any]], out_dir: Path = ZOO_DIR) -> Path:
    """Write the models' checkpoints (half precision) and the manifest into `out_dir`; each
    entry's `sha256` and `file` are filled in from what is written. Returns the manifest."""
    import io

    import torch

    from genbench.harness.store.files import atomic_write_bytes

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for e in entries_:
        buf = io.BytesIO()
        torch.save(half(states[e.name]), buf)
        payload = buf.getvalue()
        file = f"{e.name}.pt"
        atomic_write_bytes(out_dir / file, payload)
        written.append({**e.to_dict(), "file": file, "sha256": sha256_of(payload)})
    path = out_dir / MANIFEST
    atomic_write_bytes(path, json.dumps({"models": written}, indent=1, sort_keys=True).encode())
    return path


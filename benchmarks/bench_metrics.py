"""Benchmark 4: quality metrics throughput, images per second from generated tensors to
`fid_domain` and to `fid_inception`, against clean-fid's own folder-of-images path
(`cleanfid.fid.get_folder_features`: PNG files, clean resize, the same network) on the same
images.

    .venv/bin/python benchmarks/bench_metrics.py [--n 10000] [--n-inception 256]

Where the Inception weights are absent (offline machines), a stand-in of the same shape
(torchvision's Inception v3 architecture, untrained, 2048-d pool features) takes their place
in both paths, so the images per second are those of the real network. The domain path's
reference statistics are built once, before timing; clean-fid's folder path runs with the
domain network as its custom feature extractor and no resize, so both do the same arithmetic.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


class InceptionStandIn(torch.nn.Module):
    """clean-fid's InceptionV3W interface (N, 3, 299, 299) floats in [0, 255] -> (N, 2048),
    with torchvision's architecture and random weights."""

    def __init__(self):
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        net.fc = torch.nn.Identity()
        self.net = net.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 127.5 - 1)


def write_pngs(images: torch.Tensor, folder: Path) -> None:
    from PIL import Image

    from genbench.harness.metrics.features import quantize

    arr = quantize(images).permute(0, 2, 3, 1).numpy().astype(np.uint8)
    for i, img in enumerate(arr):
        Image.fromarray(img[..., 0] if img.shape[-1] == 1 else img).save(folder / f"{i:06d}.png")


def cleanfid_rate(folder: Path, model, n: int, **kw) -> float:
    from cleanfid import fid

    t0 = time.perf_counter()
    feats = fid.get_folder_features(str(folder), model=model, num_workers=0, batch_size=64,
                                    device=torch.device("cpu"), verbose=False, **kw)
    assert len(feats) == n
    return n / (time.perf_counter() - t0)


def main() -> None:
    from genbench.harness import data
    from genbench.harness.metrics import assets
    from genbench.harness.metrics.features import InceptionExtractor, quantize
    from genbench.harness.metrics.quality import Evaluator

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="images for the domain path")
    ap.add_argument("--n-inception", type=int, default=256, help="images for the Inception path")
    args = ap.parse_args()
    x = data.load("mnist5k", "train").x
    g = torch.Generator().manual_seed(0)
    fake = (x[torch.randint(0, len(x), (args.n,), generator=g)]
            + 0.2 * torch.randn(args.n, 1, 28, 28, generator=g)).clamp(-1, 1)
    ev = Evaluator("mnist5k", 28, ref_split="train")
    ev.prepare(["fid_domain"], echo=print)
    print(f"{torch.get_num_threads()} threads, 28 px digits with noise as generated samples")
    t0 = time.perf_counter()
    (row,) = ev.evaluate(["fid_domain"], fake)
    ours = args.n / (time.perf_counter() - t0)
    domain = ev.extractor("domain")

    class DomainFeatures(torch.nn.Module):  # clean-fid's interface: [0, 255] -> features
        def forward(self, batch: torch.Tensor) -> torch.Tensor:
            return domain.net.features((batch[:, :1] / 127.5 - 1))

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "domain"
        folder.mkdir()
        write_pngs(fake, folder)
        theirs = cleanfid_rate(folder, DomainFeatures().eval(), args.n,
                               custom_fn_resize=lambda img: img.astype(np.float32) / 1.0)
    print(f"  fid_domain, {args.n} images: genbench {ours:,.0f} images/s (tensor -> FID "
          f"{row['value']:.3f}); clean-fid folder path, features only: {theirs:,.0f} images/s; "
          f"x{ours / theirs:.2f}")

    real = assets.inception_status().present
    model = None if real else InceptionStandIn()
    extractor = InceptionExtractor(torch.device("cpu"), model=model)
    n = args.n_inception
    sub = fake[:n]
    t0 = time.perf_counter()
    feats, _ = extractor.run(sub)
    ours = n / (time.perf_counter() - t0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "inception"
        folder.mkdir()
        write_pngs(sub, folder)
        theirs = cleanfid_rate(folder, extractor.model, n, mode="clean")
    which = "Inception weights" if real else "stand-in of the same shape (weights absent)"
    print(f"  fid_inception features, {n} images ({which}): genbench {ours:.1f} images/s; "
          f"clean-fid folder path {theirs:.1f} images/s; x{ours / theirs:.2f}")
    assert feats.shape == (n, 2048) and quantize(sub).shape[0] == n


if __name__ == "__main__":
    main()

"""Benchmark: domain FID (plus KID and precision/recall) for 10,000 generated 28x28 samples
against cached reference statistics of the embedded digits. Target: under 30 s on a 2-core CPU.

    .venv/bin/python benchmarks/bench_fid_domain.py [--n 10000]

The first run builds the domain classifier and the reference statistics (printed apart);
the timed part is what a trial pays per sample setting.
"""

import argparse
import time

import torch

from harness import data
from harness.metrics.quality import Evaluator


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    args = ap.parse_args()
    ev = Evaluator("mnist5k", 28, ref_split="train")
    t0 = time.perf_counter()
    ev.prepare(["fid_domain"], echo=print)
    print(f"prepare (extractor + reference statistics, cached after the first run): "
          f"{time.perf_counter() - t0:.1f}s")
    # stand-in "generated" samples: real digits with noise, as many as asked
    x = data.load("mnist5k", "train").x
    g = torch.Generator().manual_seed(0)
    fake = (x[torch.randint(0, len(x), (args.n,), generator=g)]
            + 0.2 * torch.randn(args.n, 1, 28, 28, generator=g)).clamp(-1, 1)
    for names in (["fid_domain"], ["fid_domain", "kid_domain", "precision_domain", "recall_domain"]):
        t0 = time.perf_counter()
        rows = ev.evaluate(names, fake)
        dt = time.perf_counter() - t0
        values = ", ".join(f"{r['metric']}={r['value']:.4g}" for r in rows)
        print(f"{len(fake)} samples, {'+'.join(names)}: {dt:.2f}s ({values}; "
              f"threads={torch.get_num_threads()})")


if __name__ == "__main__":
    main()

"""Benchmark 3: sampling cost of every method and step count the studies use (DDPM 1000,
strided 250/100/50, DDIM 50/20/10, consistency 1/2/5, GAN): seconds per image, network
evaluations per sample (NFE), and the share of sampling time spent inside the network and
inside the per-sample noise generators.

    .venv/bin/python benchmarks/bench_sampling.py [--n 256] [--batch 256] [--scale smoke|full]
        [--device cpu|cuda] [--only ddpm-1000,cm-1,...]

Networks have the study's `smoke` or `full` configuration (weights after one optimiser step:
the cost does not depend on them). The network's time is measured with forward hooks (a
synchronise around each call on CUDA), the noise's by timing `PerSampleNoise` itself; the
target is a network share of at least 0.9 at batch 256.
"""

from __future__ import annotations

import argparse

import torch

from genbench.harness.run.provenance import device_clock

SETTINGS = [("ddpm", "ddpm-1000", {"steps": 0}), ("ddpm", "strided-250", {"steps": 250}),
            ("ddpm", "strided-100", {"steps": 100}), ("ddpm", "strided-50", {"steps": 50}),
            ("ddpm", "ddim-50", {"sampler": "ddim", "steps": 50}),
            ("ddpm", "ddim-20", {"sampler": "ddim", "steps": 20}),
            ("ddpm", "ddim-10", {"sampler": "ddim", "steps": 10}),
            ("consistency", "cm-1", {"steps": 1}), ("consistency", "cm-2", {"steps": 2}),
            ("consistency", "cm-5", {"steps": 5}), ("gan", "gan", {})]


class Clock:
    """Seconds spent inside hooked modules and wrapped functions."""

    def __init__(self, device: torch.device):
        self.device, self.seconds, self._t0 = device, 0.0, 0.0

    def start(self, *_) -> None:
        self._t0 = device_clock(self.device)

    def stop(self, *_) -> None:
        self.seconds += device_clock(self.device) - self._t0


def build(method: str, scale: str, device: torch.device):
    from genbench.harness import data
    from genbench.harness.config import build_config
    from genbench.harness.method import Budget, get_method
    from genbench.studies import _common

    config = {"ddpm": _common.SMOKE_UNET if scale == "smoke" else _common.FULL_UNET,
              "consistency": _common.SMOKE_UNET if scale == "smoke" else _common.FULL_UNET,
              "gan": _common.SMOKE_GAN if scale == "smoke" else _common.FULL_GAN}[method]
    cls = get_method(method)
    fields = {f for f in cls.Config.__dataclass_fields__}
    m = cls(build_config(cls.Config, {k: v for k, v in config.items() if k in fields}))
    m.fit(data.load("mnist5k", "train", 28), Budget(1), seed=0, device=device)
    return m


def nets_of(method) -> list[torch.nn.Module]:
    return [v for v in vars(method).values() if isinstance(v, torch.nn.Module)] + \
        [v.net for v in vars(method).values() if hasattr(v, "net") and isinstance(v.net, torch.nn.Module)]


def main() -> None:
    import genbench.harness.seeding as seeding

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--scale", choices=("smoke", "full"), default="smoke")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--only", default="", help="comma-separated setting names")
    args = ap.parse_args()
    device = torch.device(args.device)
    only = set(filter(None, args.only.split(",")))
    built: dict[str, object] = {}
    noise_clock = Clock(device)
    for name in ("randn", "rand"):  # time the per-sample generators where they draw
        orig = getattr(seeding.PerSampleNoise, name)

        def timed(self, *shape, _orig=orig, **kw):
            noise_clock.start()
            out = _orig(self, *shape, **kw)
            noise_clock.stop()
            return out
        setattr(seeding.PerSampleNoise, name, timed)
    print(f"device {device}, {torch.get_num_threads()} threads, {args.scale} networks, "
          f"{args.n} samples at batch {args.batch}")
    print(f"  {'setting':<12} {'NFE':>5} {'ms/image':>9} {'network':>8} {'noise':>6}")
    for method, label, knobs in SETTINGS:
        if only and label not in only:
            continue
        if method not in built:
            built[method] = build(method, args.scale, device)
        m = built[method]
        net_clock = Clock(device)
        handles = []
        for net in {id(n): n for n in nets_of(m)}.values():
            handles += [net.register_forward_pre_hook(net_clock.start),
                        net.register_forward_hook(net_clock.stop)]
        noise_clock.seconds = 0.0
        kn = {**knobs, "batch_size": args.batch}
        m.sample(min(args.n, 8), seed=1, **kn)  # warm-up
        net_clock.seconds = noise_clock.seconds = 0.0
        t0 = device_clock(device)
        m.sample(args.n, seed=0, **kn)
        total = device_clock(device) - t0
        for h in handles:
            h.remove()
        nfe = m.sampling_info(**kn)["nfe"]
        print(f"  {label:<12} {nfe:>5} {total / args.n * 1000:>9.3f} "
              f"{net_clock.seconds / total:>8.2f} {noise_clock.seconds / total:>6.2f}")
    print("network = share of sampling time inside the network (target >= 0.9 at batch 256); "
          "noise = share inside the per-sample noise generators")


if __name__ == "__main__":
    main()

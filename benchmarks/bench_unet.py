"""Benchmark 1: training throughput of genbench's U-Net against diffusers' `UNet2DModel` at a
matched parameter count (within 5 %), same batch, resolution, precision, optimiser (Adam) and
threads, in interleaved rounds; prints the median ratio of steps per second.

    .venv/bin/python benchmarks/bench_unet.py [--batch 64] [--res 32] [--rounds 7] [--steps 5]
        [--device cpu|cuda] [--precision fp32|bf16]

The reference is `UNet2DModel(block_out_channels=(32, 64, 64), layers_per_block=1)` with
attention at the lowest level (1.11 M parameters); genbench's is `UNet(n_feat=40,
ch_mult=(1, 1, 2))`, within 0.1 % of it. Each is timed in NCHW and in channels-last memory
(`genbench.harness.method.prepare_net`); genbench's also with `make_adam` (fused on CUDA). The last
line is genbench's default path on this device (`memory_format="auto"`, the layout
`AUTO_CHANNELS_LAST` records as faster there: NCHW on the CPU, and on CUDA until this benchmark
measures otherwise on a GPU) against diffusers as its examples train it (eager, NCHW); the line
before it says which layout this run measured faster and whether the default agrees. diffusers is a
benchmark-only dependency: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F

from genbench.harness.run.provenance import device_clock


def diffusers_unet(res: int, in_ch: int) -> torch.nn.Module:
    from diffusers import UNet2DModel

    return UNet2DModel(sample_size=res, in_channels=in_ch, out_channels=in_ch,
                       block_out_channels=(32, 64, 64), layers_per_block=1,
                       down_block_types=("DownBlock2D", "DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D", "UpBlock2D"))


def genbench_unet(in_ch: int) -> torch.nn.Module:
    from genbench.methods.nets.unet import UNet

    return UNet(in_ch=in_ch, n_feat=40, ch_mult=(1, 1, 2), num_res_blocks=1, attention=True)


class Trainer:
    """One Adam step of eps-prediction MSE on fixed random data, for either network."""

    def __init__(self, name: str, net: torch.nn.Module, *, diffusers: bool, fast: bool,
                 batch: int, res: int, in_ch: int, device: torch.device, bf16: bool):
        from genbench.harness.method import prepare_net
        from genbench.methods.training import autocast, make_adam

        self.name, self.diffusers, self.device, self.bf16 = name, diffusers, device, bf16
        self.net = prepare_net(net, device, channels_last=fast)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-4) if diffusers else \
            make_adam(self.net.parameters(), lr=1e-4, device=device)
        self.autocast = autocast
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(batch, in_ch, res, res, generator=g).to(device)
        self.eps = torch.randn(batch, in_ch, res, res, generator=g).to(device)
        self.t = torch.randint(0, 1000, (batch,), generator=g).to(device)
        if fast:
            self.x = self.x.contiguous(memory_format=torch.channels_last)

    def step(self) -> None:
        with self.autocast(self.device, self.bf16):
            out = self.net(self.x, self.t)
            out = out.sample if self.diffusers else out
            loss = F.mse_loss(out.float(), self.eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()

    def time(self, steps: int) -> float:
        t0 = device_clock(self.device)
        for _ in range(steps):
            self.step()
        return steps / (device_clock(self.device) - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--res", type=int, default=32)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round and network")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = ap.parse_args()
    device, bf16 = torch.device(args.device), args.precision == "bf16"
    common = dict(batch=args.batch, res=args.res, in_ch=args.channels, device=device, bf16=bf16)
    torch.manual_seed(0)
    nets = {"diffusers": diffusers_unet(args.res, args.channels), "genbench": genbench_unet(args.channels)}
    params = {k: sum(p.numel() for p in v.parameters()) for k, v in nets.items()}
    gap = params["genbench"] / params["diffusers"] - 1
    print(f"parameters: genbench {params['genbench']:,}, diffusers {params['diffusers']:,} "
          f"({gap:+.2%}; must be within 5 %)")
    assert abs(gap) <= 0.05, "parameter counts not matched"
    import copy

    from genbench.methods.nets.unet import UNetTraining

    default_cl = UNetTraining().channels_last(device)  # genbench's memory_format="auto"
    trainers = [Trainer(f"{who} {'channels-last' if cl else 'NCHW'}", copy.deepcopy(nets[who]),
                        diffusers=who == "diffusers", fast=cl, **common)
                for who in ("diffusers", "genbench") for cl in (False, True)]
    for tr in trainers:  # warm-up: allocator, oneDNN/cuDNN algorithm choice
        tr.time(2)
    rates: dict[str, list[float]] = {tr.name: [] for tr in trainers}
    for _ in range(args.rounds):  # interleaved: drift on a noisy machine hits all alike
        for tr in trainers:
            rates[tr.name].append(tr.time(args.steps))
    med = {k: statistics.median(v) for k, v in rates.items()}
    ref = med["diffusers NCHW"]
    print(f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"{torch.get_num_threads()} threads, batch {args.batch}, {args.res} px, "
          f"{args.channels} channel(s), {args.precision}, Adam, median of {args.rounds} rounds "
          f"of {args.steps} steps")
    for name, rate in med.items():
        spread = (max(rates[name]) - min(rates[name])) / rate
        print(f"  {name:<24} {rate:7.2f} steps/s  x{rate / ref:.2f} of diffusers NCHW "
              f"(rounds spread {spread:.0%})")
    layout = "channels-last" if default_cl else "NCHW"
    faster = "channels-last" if med["genbench channels-last"] > med["genbench NCHW"] else "NCHW"
    gain = med["genbench channels-last"] / med["genbench NCHW"]
    print(f"layout measured faster for genbench on {device.type}: {faster} (channels-last/NCHW "
          f"x{gain:.2f}); memory_format='auto' picks {layout}: "
          + ("agrees" if faster == layout else "differs: update AUTO_CHANNELS_LAST in "
             "methods/nets/unet.py if it holds over rounds and sizes"))
    best = {who: max(med[f"{who} NCHW"], med[f"{who} channels-last"]) for who in ("genbench", "diffusers")}
    print(f"genbench's default path here ({layout}) / diffusers NCHW: "
          f"x{med[f'genbench {layout}'] / ref:.2f}; best / best: "
          f"x{best['genbench'] / best['diffusers']:.2f} (target >= 1.3)")


if __name__ == "__main__":
    main()

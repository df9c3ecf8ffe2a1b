"""Benchmark 5: achieved FLOP/s of a training step of the full-scale U-Net (the `full` scale of
the DDPM studies: n_feat=64, ch_mult=(1, 2, 2), attention, batch 128, 28 px) against the
device's measured matrix-multiply peak, in the precision genbench trains in there (fp32 on
CPU, bf16 autocast on CUDA).

    .venv/bin/python benchmarks/bench_flops.py [--batch 128] [--steps 5] [--device cpu|cuda]

FLOPs of one step (forward + backward) are counted by `torch.utils.flop_counter` (matrix
multiplies and convolutions; normalisations and activations are not counted, so the
utilisation is a lower bound); the peak is the best of a few large square matmuls.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from genbench.harness.run.provenance import device_clock


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int = 5) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = device_clock(device)
        a @ b
        best = min(best, device_clock(device) - t0)
    return 2 * n**3 / best


def main() -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from genbench.methods.ddpm import DDPMConfig
    from genbench.harness.method import prepare_net
    from genbench.methods.training import autocast, make_adam
    from genbench.studies._common import FULL_UNET

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--res", type=int, default=28)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    device = torch.device(args.device)
    bf16 = device.type == "cuda"  # DDPMConfig.amp: bf16 autocast on CUDA
    cfg = DDPMConfig(**{k: v for k, v in FULL_UNET.items() if k != "batch_size"},
                     batch_size=args.batch)  # the full scale's network, as genbench trains it
    net = prepare_net(cfg.unet((1, args.res, args.res)), device, channels_last=cfg.channels_last(device))
    opt = make_adam(net.parameters(), lr=cfg.lr, device=device)
    x = torch.randn(args.batch, 1, args.res, args.res, device=device)
    eps = torch.randn_like(x)
    t = torch.randint(0, 1000, (args.batch,), device=device)

    def step() -> None:
        with autocast(device, bf16):
            loss = F.mse_loss(net(x, t).float(), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    step()
    t0 = device_clock(device)
    for _ in range(args.steps):
        step()
    per_step = (device_clock(device) - t0) / args.steps
    peak = matmul_peak(device, torch.bfloat16 if bf16 else torch.float32,
                       8192 if device.type == "cuda" else 2048)
    achieved = flops / per_step
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"device {device} ({name}), {torch.get_num_threads()} threads, "
          f"{'bf16 autocast' if bf16 else 'fp32'}, batch {args.batch}, {args.res} px, "
          f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f} M parameters")
    print(f"  training step: {flops / 1e9:.1f} GFLOP, {per_step * 1000:.1f} ms -> "
          f"{achieved / 1e12:.3f} TFLOP/s")
    print(f"  matmul peak: {peak / 1e12:.3f} TFLOP/s -> utilisation x{achieved / peak:.2f}")


if __name__ == "__main__":
    main()

"""A compact DDPM U-Net (after Ho et al. 2020 and improved-diffusion's `unet.py`): residual
blocks with GroupNorm and SiLU, a sinusoidal time embedding added in every block, optional
self-attention at the lowest resolution, and an optional class embedding whose null token is
the zero vector (for classifier-free guidance, docs/methods.md M5).

`n_feat` is the base channel count (the width knob of every study); level l has
`n_feat * ch_mult[l]` channels. Any side length divisible by 2**(len(ch_mult) - 1) works
(28 -> 14 -> 7 for MNIST with two levels of down-sampling).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench.harness.errors import GenbenchError
from genbench.methods.training import check_adam


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """(B,) timesteps -> (B, dim) sinusoidal embedding (Vaswani et al. 2017; DDPM)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, dim % 2))


def group_norm(ch: int) -> nn.GroupNorm:
    """GroupNorm with 8 groups when the channel count allows it, else 1 (LayerNorm-like)."""
    return nn.GroupNorm(8 if ch % 8 == 0 else 1, ch)


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = group_norm(c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.dropout = nn.Dropout(dropout)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.norm = group_norm(ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.out = nn.Conv2d(ch, ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, C, H * W).unbind(1)  # (B, C, HW) each
        h = F.scaled_dot_product_attention(q.transpose(1, 2)[:, None], k.transpose(1, 2)[:, None],
                                           v.transpose(1, 2)[:, None])[:, 0]  # (B, HW, C)
        return x + self.out(h.transpose(1, 2).reshape(B, C, H, W))


class UNet(nn.Module):
    """eps_theta(x_t, t[, c]): (B, C, H, W), (B,) int timesteps, optional (B,) labels or
    (B, num_classes) one-hot rows (all zeros = the null token)."""

    def __init__(self, in_ch: int = 1, n_feat: int = 64, ch_mult: tuple[int, ...] = (1, 2, 2),
                 num_res_blocks: int = 1, attention: bool = True, dropout: float = 0.0,
                 num_classes: int = 0):
        super().__init__()
        emb_dim = 4 * n_feat
        self.n_feat, self.num_classes = n_feat, num_classes
        self.time_mlp = nn.Sequential(nn.Linear(n_feat, emb_dim), nn.SiLU(),
                                      nn.Linear(emb_dim, emb_dim))
        # bias-free so that the all-zero null token maps to the zero embedding
        self.class_emb = nn.Linear(num_classes, emb_dim, bias=False) if num_classes else None
        self.conv_in = nn.Conv2d(in_ch, n_feat, 3, padding=1)
        chans = [n_feat * m for m in ch_mult]
        self.down = nn.ModuleList()
        skips = [n_feat]
        c = n_feat
        for level, c_out in enumerate(chans):
            for _ in range(num_res_blocks):
                self.down.append(ResBlock(c, c_out, emb_dim, dropout))
                c = c_out
                skips.append(c)
            if level < len(chans) - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))
                skips.append(c)
        self.mid1 = ResBlock(c, c, emb_dim, dropout)
        self.mid_attn = Attention(c) if attention else nn.Identity()
        self.mid2 = ResBlock(c, c, emb_dim, dropout)
        self.up = nn.ModuleList()
        for level, c_out in reversed(list(enumerate(chans))):
            for _ in range(num_res_blocks + 1):
                self.up.append(ResBlock(c + skips.pop(), c_out, emb_dim, dropout))
                c = c_out
            if level > 0:
                self.up.append(nn.Upsample(scale_factor=2, mode="nearest"))
        self.norm_out = group_norm(c)
        self.conv_out = nn.Conv2d(c, in_ch, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.n_feat))
        if self.class_emb is not None:
            if c is None:
                c = x.new_zeros(len(x), self.num_classes)
            elif c.dim() == 1:
                c = F.one_hot(c, self.num_classes).to(x.dtype)
            emb = emb + self.class_emb(c.to(x.dtype))
        h = self.conv_in(x)
        hs = [h]
        for layer in self.down:
            h = layer(h, emb) if isinstance(layer, ResBlock) else layer(h)
            hs.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
            else:
                h = layer(h)
        return self.conv_out(F.silu(self.norm_out(h)))


# memory_format="auto" per device kind: the layout benchmarks/bench_unet.py measured faster there.
# CPU: NCHW (channels-last was within +-15 % of it, either way, by size). CUDA: NCHW until a GPU
# measures otherwise: PyTorch's GroupNorm returns the default layout for non-CPU inputs, so in
# channels-last every ResBlock would transpose its activations there and back
# (`benchmarks/gpu_check.sh` runs the measurement on a GPU; docs/performance.md).
AUTO_CHANNELS_LAST = {"cpu": False, "cuda": False}


@dataclass(frozen=True)
class UNetTraining:
    """The config fields every U-Net method shares (DDPM, consistency models): the network,
    its optimiser and the fast paths. A method's Config inherits them."""

    n_feat: int = 64  # U-Net base width
    ch_mult: tuple[int, ...] = (1, 2, 2)  # width multiplier per U-Net level
    num_res_blocks: int = 1  # residual blocks per level
    attention: bool = True  # self-attention at the lowest resolution
    dropout: float = 0.0  # dropout inside residual blocks
    lr: float = 2e-4  # Adam learning rate (fused Adam on CUDA)
    batch_size: int = 64  # training minibatch
    grad_clip: float = 1.0  # max gradient norm; 0 = off
    ema_decay: float = 0.0  # EMA of the weights for sampling; 0 = off
    amp: bool = True  # bfloat16 autocast on CUDA (ignored on CPU)
    # NHWC memory (the same arithmetic): "auto" = the layout `benchmarks/bench_unet.py` measured
    # faster on the device kind (AUTO_CHANNELS_LAST)
    memory_format: Literal["auto", "channels_last", "contiguous"] = "auto"
    compile: bool = False  # torch.compile the online network (off: on CPU it made steps slower)

    def __post_init__(self):
        if self.n_feat < 1 or self.batch_size < 1 or self.num_res_blocks < 0:
            raise ValueError("n_feat and batch_size must be >= 1, num_res_blocks >= 0")
        if not self.ch_mult or any(m < 1 for m in self.ch_mult):
            raise ValueError(f"ch_mult must be one or more integers >= 1, got {self.ch_mult}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_adam(self.lr)
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def channels_last(self, device: torch.device) -> bool:
        """Whether the network runs in channels-last memory on `device` (in training and
        sampling alike, after a fit or a reload: `Method.to`)."""
        if self.memory_format == "auto":
            return AUTO_CHANNELS_LAST.get(torch.device(device).type, False)
        return self.memory_format == "channels_last"

    def check_shape(self, data_shape: tuple[int, ...]) -> None:
        """Refuse (C, H, W) data whose sides the levels cannot halve evenly (it would fail as a
        shape error in a skip concat): at plan time (`Method.check_shape`) and when built."""
        sides = data_shape[1:]
        factor = 2 ** (len(self.ch_mult) - 1)
        if any(side % factor for side in sides):
            raise GenbenchError(f"a U-Net with ch_mult={tuple(self.ch_mult)} halves the image "
                                f"{len(self.ch_mult) - 1} times: its side ({'x'.join(map(str, sides))}"
                                f") must be divisible by {factor}; change resolution or ch_mult")

    def unet(self, data_shape: tuple[int, ...], num_classes: int = 0) -> UNet:
        """The U-Net these fields describe, for (C, H, W) data."""
        self.check_shape(data_shape)
        return UNet(in_ch=data_shape[0], n_feat=self.n_feat, ch_mult=self.ch_mult,
                    num_res_blocks=self.num_res_blocks, attention=self.attention,
                    dropout=self.dropout, num_classes=num_classes)

"""A GAN with the StyleGAN loss, R1 and DiffAugment, for few-shot image generation
(docs/methods.md M8): the non-saturating softplus losses of Karras et al. 2019, the R1 penalty
of Mescheder et al. 2018 with optional lazy regularisation (StyleGAN2), Differentiable
Augmentation (Zhao et al. 2020) of every image the discriminator sees, and an EMA of the
generator's weights for sampling (Karras et al. 2018), with decay `min(beta, (1 + k)/(10 + k))`
at step k so that short runs do not sample their initial weights. The shared loop is
`methods/adversarial.py`.

Networks, sized for 28-64 px: the generator maps `z ~ N(0, I)` (pixel-normalised, as StyleGAN's
mapping input) through a linear layer to a `s0 x s0` map, then doubles the side with
nearest-neighbour up-sampling and a 3x3 convolution per level (LeakyReLU 0.2 and pixel norm,
ProGAN's per-sample normalisation, so a sample never depends on its batch), then a 3x3
convolution to the image channels and tanh. The discriminator mirrors it: 3x3 convolutions and
2x average pooling, then two linear layers giving one logit. Level i has
`n_feat * 2**(levels - i)` channels (at most 512).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn as nn

from genbench.harness.errors import GenbenchError
from genbench.harness.method import register
from genbench.harness.seeding import PerSampleNoise
from genbench.methods.adversarial import AdversarialMethod, lazy_adam_scale, start_side
from genbench.methods.diffaugment import diff_augment, parse_policy
from genbench.methods.training import check_adam, make_adam


@dataclass(frozen=True)
class GANConfig:
    z_dim: int = 128  # latent dimension
    n_feat: int = 32  # base width of both networks (the highest-resolution level)
    lr: float = 2e-4  # Adam learning rate of both networks
    betas: tuple[float, float] = (0.5, 0.99)  # Adam betas of both networks
    batch_size: int = 64  # real images (and fakes) per step
    r1_gamma: float = 0.0  # R1 weight gamma; 0 = off
    r1_every: int = 1  # lazy: R1 as a D step of its own every k-th step, scaled by k (1 = joint)
    diffaug: str = ""  # DiffAugment policy, e.g. "color,translation,cutout"; "" = off
    ema_decay: float = 0.999  # EMA of G's weights for sampling (ramped up early); 0 = off

    def __post_init__(self):
        if self.z_dim < 1 or self.n_feat < 1 or self.batch_size < 1:
            raise ValueError("z_dim, n_feat and batch_size must be >= 1")
        check_adam(self.lr, self.betas)
        if self.r1_gamma < 0 or self.r1_every < 1:
            raise ValueError("need r1_gamma >= 0 and r1_every >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ValueError("need 0 <= ema_decay < 1")
        parse_policy(self.diffaug)


@dataclass(frozen=True)
class GANKnobs:
    weights: Literal["ema", "online"] = "ema"  # the generator's EMA or its last weights
    batch_size: int = 256  # samples per forward pass (does not change the samples)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


class PixelNorm(nn.Module):
    """x / sqrt(mean_c x^2 + 1e-8) per sample and position (Karras et al. 2018)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


def _widths(n_feat: int, levels: int) -> list[int]:
    return [min(512, n_feat * 2 ** (levels - i)) for i in range(levels + 1)]


class Generator(nn.Module):
    def __init__(self, z_dim: int, n_feat: int, channels: int, side: int):
        super().__init__()
        self.s0, levels = start_side(side)
        w = _widths(n_feat, levels)
        self.input = nn.Sequential(PixelNorm(), nn.Linear(z_dim, w[0] * self.s0 ** 2))
        self.w0 = w[0]
        body: list[nn.Module] = [nn.LeakyReLU(0.2), PixelNorm()]
        for i in range(1, levels + 1):
            body += [nn.Upsample(scale_factor=2, mode="nearest"),
                     nn.Conv2d(w[i - 1], w[i], 3, padding=1), nn.LeakyReLU(0.2), PixelNorm()]
        body += [nn.Conv2d(w[-1], channels, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*body)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(self.input(z).view(len(z), self.w0, self.s0, self.s0))


class Discriminator(nn.Module):
    def __init__(self, n_feat: int, channels: int, side: int):
        super().__init__()
        s0, levels = start_side(side)
        w = _widths(n_feat, levels)
        layers: list[nn.Module] = [nn.Conv2d(channels, w[-1], 3, padding=1), nn.LeakyReLU(0.2)]
        for i in range(levels, 0, -1):
            layers += [nn.Conv2d(w[i], w[i - 1], 3, padding=1), nn.LeakyReLU(0.2), nn.AvgPool2d(2)]
        layers += [nn.Flatten(), nn.Linear(w[0] * s0 ** 2, w[0]), nn.LeakyReLU(0.2),
                   nn.Linear(w[0], 1)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


@register("gan")
class GAN(AdversarialMethod):
    Config = GANConfig
    Knobs = GANKnobs
    tiny_config = dict(z_dim=8, n_feat=4, batch_size=8, r1_gamma=1.0, diffaug="color,translation,cutout")
    loss_form = "softplus"

    @classmethod
    def check(cls, config: GANConfig, knobs: GANKnobs, *, task: str, num_classes: int) -> None:
        super().check(config, knobs, task=task, num_classes=num_classes)
        if knobs.weights == "ema" and config.ema_decay == 0:
            raise GenbenchError("weights='ema' needs an EMA of the generator (ema_decay > 0); "
                                "set weights=online")

    @classmethod
    def check_shape(cls, config: GANConfig, shape: tuple[int, ...]) -> None:
        _, h, w = shape
        if h != w or h < 8:
            raise GenbenchError(f"gan needs square images of side >= 8, got {h}x{w}")

    def build(self, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
        c, h, _ = data_shape
        self.check_shape(self.config, data_shape)
        cfg = self.config
        return Generator(cfg.z_dim, cfg.n_feat, c, h), Discriminator(cfg.n_feat, c, h)

    def prior(self, noise: PerSampleNoise | torch.Generator, n: int) -> torch.Tensor:
        if isinstance(noise, PerSampleNoise):
            return noise.randn(self.config.z_dim)
        return torch.randn((n, self.config.z_dim), generator=noise)

    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return diff_augment(x, self.config.diffaug, g)

    def r1_due(self, step: int) -> float:
        cfg = self.config
        if cfg.r1_gamma == 0 or step % cfg.r1_every:
            return 0.0
        return cfg.r1_gamma / 2 * cfg.r1_every

    def r1_lazy(self) -> bool:
        return self.config.r1_every > 1

    def optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        cfg = self.config
        c = lazy_adam_scale(cfg.r1_every) if cfg.r1_gamma > 0 else 1.0
        return (make_adam(self.G.parameters(), cfg.lr, self.device, betas=tuple(cfg.betas)),
                make_adam(self.D.parameters(), cfg.lr * c, self.device,
                          betas=tuple(b ** c for b in cfg.betas)))

    def ema_decay(self) -> float:
        return self.config.ema_decay

    def generator(self, k: GANKnobs) -> nn.Module:
        if k.weights == "ema":
            if self.ema is None:
                raise GenbenchError("weights='ema' needs an EMA of the generator (ema_decay > 0)")
            return self.ema.net
        return self.G

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        return {"nfe": 1, "weights": self.knobs(**knobs).weights}

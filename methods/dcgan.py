"""The vanilla DCGAN of the course (docs/methods.md M9; Radford, Metz, Chintala 2016,
arXiv 1511.06434, in the small form of Stanford CS231n's GAN assignment).

- Latent: `z ~ U[-1, 1]^96`.
- Discriminator: 1 or 2 blocks of a 5x5 convolution (32, then 64 channels), LeakyReLU 0.01 and
  2x2 max pooling, then a fully connected layer of `4 * 4 * 64` units with LeakyReLU 0.01 and a
  linear layer to one logit.
- Generator: fully connected layers `96 -> 1024 -> 128 * s * s` with ReLU and batch norm, then
  1 or 2 4x4 stride-2 transposed convolutions (ReLU and batch norm between them) and tanh.
- Losses: binary cross-entropy with logits, non-saturating for the generator
  (`BCE(D(x), 1) + BCE(D(G(z)), 0)` and `BCE(D(G(z)), 1)`); Adam with lr 1e-3, betas (0.5, 0.999).

Samples use the generator's batch-norm running statistics, so a sample never depends on the
batch it is drawn in. The shared loop and the discriminator evaluation (D against another
seed's generator) are `methods/adversarial.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from genbench.harness.errors import GenbenchError
from genbench.harness.method import register
from genbench.harness.seeding import PerSampleNoise
from genbench.methods.adversarial import AdversarialMethod
from genbench.methods.training import check_adam


@dataclass(frozen=True)
class DCGANConfig:
    noise_dim: int = 96  # dimension of the uniform latent
    d_blocks: int = 2  # convolution blocks of the discriminator (1 or 2)
    g_blocks: int = 2  # transposed convolutions of the generator (1 or 2)
    lr: float = 1e-3  # Adam learning rate of both networks
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas of both networks
    batch_size: int = 128  # real images (and fakes) per step

    def __post_init__(self):
        if self.d_blocks not in (1, 2) or self.g_blocks not in (1, 2):
            raise ValueError("d_blocks and g_blocks must be 1 or 2")
        if self.noise_dim < 1 or self.batch_size < 1:
            raise ValueError("noise_dim and batch_size must be >= 1")
        check_adam(self.lr, self.betas)


@dataclass(frozen=True)
class DCGANKnobs:
    batch_size: int = 256  # samples per forward pass (does not change the samples)

    def __post_init__(self):
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")


def _conv_out(side: int, blocks: int) -> int:
    """Side after `blocks` of (5x5 valid convolution, 2x2 max pooling)."""
    for _ in range(blocks):
        side = (side - 4) // 2
    return side


def discriminator(channels: int, side: int, blocks: int) -> nn.Module:
    layers: list[nn.Module] = []
    c = channels
    for width in (32, 64)[:blocks]:
        layers += [nn.Conv2d(c, width, 5), nn.LeakyReLU(0.01), nn.MaxPool2d(2, 2)]
        c = width
    s = _conv_out(side, blocks)
    layers += [nn.Flatten(), nn.Linear(c * s * s, 4 * 4 * 64), nn.LeakyReLU(0.01),
               nn.Linear(4 * 4 * 64, 1), nn.Flatten(0)]
    return nn.Sequential(*layers)


def generator(noise_dim: int, channels: int, side: int, blocks: int) -> nn.Module:
    s = side // 2 ** blocks
    layers: list[nn.Module] = [nn.Linear(noise_dim, 1024), nn.ReLU(), nn.BatchNorm1d(1024),
                               nn.Linear(1024, 128 * s * s), nn.ReLU(), nn.BatchNorm1d(128 * s * s),
                               nn.Unflatten(1, (128, s, s))]
    if blocks == 2:
        layers += [nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.ReLU(),
                   nn.BatchNorm2d(64), nn.ConvTranspose2d(64, channels, 4, stride=2, padding=1)]
    else:
        layers += [nn.ConvTranspose2d(128, channels, 4, stride=2, padding=1)]
    return nn.Sequential(*layers, nn.Tanh())


@register("dcgan")
class DCGAN(AdversarialMethod):
    Config = DCGANConfig
    Knobs = DCGANKnobs
    tiny_config = dict(noise_dim=8, d_blocks=1, g_blocks=1, batch_size=8)
    loss_form = "bce"

    @classmethod
    def check_shape(cls, config: DCGANConfig, shape: tuple[int, ...]) -> None:
        _, h, w = shape
        if h != w or h % 2 ** config.g_blocks or _conv_out(h, config.d_blocks) < 1:
            raise GenbenchError(f"dcgan needs square images whose side divides by "
                                f"{2 ** config.g_blocks} and survives {config.d_blocks} conv "
                                f"blocks, got {h}x{w}")

    def build(self, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
        c, h, _ = data_shape
        cfg = self.config
        self.check_shape(cfg, data_shape)
        return (generator(cfg.noise_dim, c, h, cfg.g_blocks),
                discriminator(c, h, cfg.d_blocks))

    def prior(self, noise: PerSampleNoise | torch.Generator, n: int) -> torch.Tensor:
        if isinstance(noise, PerSampleNoise):
            return noise.rand(self.config.noise_dim) * 2 - 1
        return torch.rand((n, self.config.noise_dim), generator=noise) * 2 - 1

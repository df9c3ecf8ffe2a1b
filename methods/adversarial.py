"""What every GAN shares (docs/methods.md M8, M9): the adversarial losses, the R1 penalty, the
alternating training loop of two networks with two optimisers, sampling from the generator,
and the discriminator evaluation against another seed's generator.

- Losses (Goodfellow et al. 2014, non-saturating generator; the StyleGAN form, Karras et al.
  2019): `L_D = softplus(-D(x)) + softplus(D(G(z)))`, `L_G = softplus(-D(G(z)))`, each a mean
  over the batch. With `sigma` the logistic function these are exactly the binary cross-entropy
  forms `BCE(D(x), 1) + BCE(D(G(z)), 0)` and `BCE(D(G(z)), 1)` (`softplus(-l) = -log sigma(l)`,
  `softplus(l) = -log(1 - sigma(l))`); `loss_form` picks which one the code evaluates.
- R1 (Mescheder, Geiger, Nowozin 2018, arXiv 1801.04406): `gamma/2 E_x ||grad_x D(x)||^2` on
  real images, added to `L_D`. Lazy regularisation (StyleGAN2, Karras et al. 2020, arXiv
  1912.04958, Appendix B): every k-th step the penalty, scaled by k, takes a discriminator step
  of its own after the main one; as k minibatches then take k + 1 optimiser steps, the
  discriminator's Adam learning rate and betas are scaled by `c = k / (k + 1)` (`lr c`,
  `beta^c`), keeping Adam's averaging horizons in minibatches what they were.
- Augmentation (DiffAugment, `methods/diffaugment.py`) is a hook applied to every image the
  discriminator sees, real and fake, in both steps; R1's gradient is taken with respect to the
  un-augmented real images, as in StyleGAN2-ADA's `loss.py`.
- One training step is one discriminator update on `batch_size` real and `batch_size` fresh
  fake images, then one generator update on `batch_size` fresh fakes. Throughput
  (`train_images_per_s`) counts the real images consumed; `final_loss` is `L_D`'s running mean
  (2 log 2 = 1.386 when D cannot tell real from fake), and `final_loss_G` is recorded beside it.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from genbench.harness.method import Budget, Method, Observation, TrainData
from genbench.harness.seeding import PerSampleNoise
from genbench.methods.training import (EMA, LossLog, TrainState, make_adam, minibatches,
                                       to_device)


def d_loss_softplus(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_loss_softplus(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.softplus(-fake_logits).mean()


def d_loss_bce(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits
    return bce(real_logits, torch.ones_like(real_logits)) + \
        bce(fake_logits, torch.zeros_like(fake_logits))


def g_loss_bce(fake_logits: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


LOSSES = {"softplus": (d_loss_softplus, g_loss_softplus), "bce": (d_loss_bce, g_loss_bce)}


def r1_penalty(real_logits: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """E_x ||grad_x D(x)||^2 over the batch, differentiable in D's weights (`real` must require
    grad and `real_logits` be D's output on it)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return grad.pow(2).flatten(1).sum(1).mean()


def discriminator_scores(d_real: torch.Tensor, d_fake: torch.Tensor) -> dict[str, float]:
    """Accuracy, precision and recall of a discriminator calling "real" when its logit > 0, on
    logits of real (positive) and fake (negative) images."""
    tp = float((d_real > 0).sum())
    fn = len(d_real) - tp
    fp = float((d_fake > 0).sum())
    tn = len(d_fake) - fp
    return {"d_accuracy": (tp + tn) / (len(d_real) + len(d_fake)),
            "d_precision": tp / (tp + fp) if tp + fp else float("nan"),
            "d_recall": tp / (tp + fn)}


class AdversarialMethod(Method):
    """A GAN: subclasses build the two networks, draw the latent prior and pick the losses;
    the training loop, sampling, state and the discriminator evaluation live here."""

    loss_form: ClassVar[str] = "softplus"
    resumable = True
    losses = ("loss_D", "loss_G")
    cross_metrics = ("d_accuracy", "d_precision", "d_recall")
    modules = {"G": "G", "D": "D", "ema": "ema.net"}  # the generator's EMA samples by default
    trained = ("G", "D")

    def __init__(self, config: Any | None = None):
        super().__init__(config)
        self.G: nn.Module | None = None
        self.D: nn.Module | None = None
        self.ema: EMA | None = None
        self.data_shape: tuple[int, ...] = ()

    # -- what a GAN declares ------------------------------------------------------------------
    @abc.abstractmethod
    def build(self, data_shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
        """(generator, discriminator) for images of `data_shape`."""

    @abc.abstractmethod
    def prior(self, noise: PerSampleNoise | torch.Generator, n: int) -> torch.Tensor:
        """(n, z_dim) latents, from per-sample generators or one training generator."""

    def augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """The transform applied to every image D sees (identity unless overridden)."""
        return x

    def r1_due(self, step: int) -> float:
        """The weight of R1 at 1-based `step` (0 = not evaluated this step)."""
        return 0.0

    def r1_lazy(self) -> bool:
        """Whether R1 takes a discriminator step of its own when due (StyleGAN2's lazy
        regularisation, its "Dreg" phase) instead of joining the main step's loss."""
        return False

    def optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        """(generator's, discriminator's) optimiser."""
        cfg = self.config
        return (make_adam(self.G.parameters(), cfg.lr, self.device, betas=tuple(cfg.betas)),
                make_adam(self.D.parameters(), cfg.lr, self.device, betas=tuple(cfg.betas)))

    def ema_decay(self) -> float:
        return 0.0

    # -- the shared machinery -----------------------------------------------------------------
    def _build(self, data_shape: tuple[int, ...], device: torch.device) -> None:
        self.data_shape = tuple(data_shape)
        self.G, self.D = self.build(self.data_shape)
        self.ema = EMA(self.G, self.ema_decay()) if self.ema_decay() > 0 else None
        self.to(device)  # the one placement: after a fit's build and a reload alike

    def fit(self, data: TrainData, budget: Budget, *, seed: int, device: torch.device) -> None:
        cfg = self.config
        g = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self._build(data.shape, device)
        opt_g, opt_d = self.optimizers()
        d_loss, g_loss = LOSSES[self.loss_form]
        x_all = data.x.to(device)
        batches = minibatches(len(x_all), cfg.batch_size, g)
        log = LossLog(budget)
        B = cfg.batch_size
        state = TrainState(budget, G=self.G, D=self.D, opt_g=opt_g, opt_d=opt_d, gen=g,
                           batches=batches, **({"ema": self.ema} if self.ema is not None else {}))
        for step in range(state.start(), budget.steps + 1):
            # discriminator step: real against fresh fakes, plus R1 when due
            real = x_all[to_device(next(batches), device)]
            with torch.no_grad():
                fake = self.G(to_device(self.prior(g, B), device))
            r1_weight = self.r1_due(step)
            joint = r1_weight > 0 and not self.r1_lazy()  # R1 inside the main step
            real = real.detach().requires_grad_(joint)
            real_logits = self.D(self.augment(real, g))
            fake_logits = self.D(self.augment(fake, g))
            loss_d = d_loss(real_logits, fake_logits)
            total_d = loss_d
            logged: dict[str, torch.Tensor] = {}
            if joint:
                r1 = r1_penalty(real_logits, real)
                total_d = loss_d + r1_weight * r1
                logged["r1"] = r1
            opt_d.zero_grad(set_to_none=True)
            total_d.backward()
            opt_d.step()
            if r1_weight > 0 and not joint:  # lazy: a step of its own on the same reals
                real = real.detach().requires_grad_(True)
                r1 = r1_penalty(self.D(self.augment(real, g)), real)
                opt_d.zero_grad(set_to_none=True)
                (r1_weight * r1).backward()
                opt_d.step()
                logged["r1"] = r1
            # generator step: fresh fakes through the (frozen) discriminator
            self.D.requires_grad_(False)
            loss_g = g_loss(self.D(self.augment(self.G(to_device(self.prior(g, B), device)), g)))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            self.D.requires_grad_(True)
            if self.ema is not None:  # warm-up: decay min(beta, (1 + k) / (10 + k))
                self.ema.update(self.G, min(self.ema.decay, (1 + step) / (10 + step)))
            log.add(step, {"loss_D": loss_d, "loss_G": loss_g, **logged,
                           "d_real": real_logits.detach().mean(),
                           "d_fake": fake_logits.detach().mean()})
            state.after(step)
        self.G.eval()
        self.D.eval()

    def generator(self, k: Any) -> nn.Module:
        """The generator weights `k` asks for (the online ones unless a subclass keeps an EMA)."""
        return self.G

    @torch.no_grad()
    def sample(self, n: int, *, seed: int, labels: torch.Tensor | None = None,
               observation: Observation | None = None, **knobs: Any) -> torch.Tensor:
        k = self.knobs(**knobs)
        G = self.generator(k)
        was_training = G.training
        G.eval()  # batch norm from running statistics: samples do not depend on the batch
        out = []
        for start in range(0, n, k.batch_size):
            noise = PerSampleNoise(seed, range(start, min(n, start + k.batch_size)), self.device)
            out.append(G(self.prior(noise, len(noise.generators))).float().clamp(-1, 1).cpu())
        G.train(was_training)
        return torch.cat(out)

    def sampling_info(self, **knobs: Any) -> dict[str, Any]:
        return {"nfe": 1}

    def cross_evaluate(self, other: "AdversarialMethod", real: torch.Tensor, *,
                       seed: int) -> dict[str, dict[str, Any]]:
        """This model's discriminator on `real` test images (label real) and on as many samples
        of `other`'s generator (label fake), a generator it never trained against."""
        n = len(real)
        fakes = other.sample(n, seed=seed)
        with torch.no_grad():
            d_real = torch.cat([self.D(b.to(self.device)).float().flatten().cpu()
                                for b in real.split(256)])
            d_fake = torch.cat([self.D(b.to(self.device)).float().flatten().cpu()
                                for b in fakes.split(256)])
        protocol = (f"D's logit > 0 means real; {n} real test images against {n} samples of "
                    "another seed's generator")
        return {name: {"value": v, "protocol": protocol}
                for name, v in discriminator_scores(d_real, d_fake).items()}

    facts = ("n_params_G", "n_params_D")  # what info() returns

    def info(self) -> dict[str, float]:
        return {"n_params_G": float(sum(p.numel() for p in self.G.parameters())),
                "n_params_D": float(sum(p.numel() for p in self.D.parameters()))}

    def extra_state(self) -> dict[str, Any]:
        return {"data_shape": list(self.data_shape)}

    def rebuild(self, state: dict[str, Any]) -> None:
        self._build(tuple(state["data_shape"]), self.device)


def lazy_adam_scale(every: int) -> float:
    """c = k / (k + 1): the factor lazy regularisation applies to lr and (as an exponent) to
    Adam's betas (StyleGAN2's `mb_ratio`), because every k minibatches take k + 1 optimiser
    steps (k main steps and one of the penalty alone); 1 when the penalty runs every step
    inside the main one (k = 1 is not lazy)."""
    return every / (every + 1) if every > 1 else 1.0


def start_side(side: int, max_start: int = 8) -> tuple[int, int]:
    """(s0, ups): the generator's first feature-map side and its number of 2x up-samplings, with
    s0 * 2**ups == side, halving while the side stays even and above `max_start`
    (28 -> 7 with 2, 32 -> 8 with 2, 64 -> 8 with 3)."""
    s, ups = side, 0
    while s % 2 == 0 and s > max_start:
        s, ups = s // 2, ups + 1
    return s, ups


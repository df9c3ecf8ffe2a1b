"""Settings shared by the studies: U-Net sizes, the quality metrics they report, and the smoke
and full scales most of them run at (so every smoke scale trains the same small network for the
same budget, and every full scale the same paper-sized one). Consistency models share the
DDPM U-Net sizes as F_theta."""

from typing import Any

from genbench import Resources, Scale

# about 150k parameters: trains a few hundred steps a minute on one CPU core
SMOKE_UNET = dict(n_feat=16, ch_mult=(1, 2), attention=False, batch_size=32, lr=1e-3)
# about 4M parameters at 28x28, the size of the DDPM MNIST baselines
FULL_UNET = dict(n_feat=64, ch_mult=(1, 2, 2), attention=True, batch_size=128, lr=2e-4,
                 ema_decay=0.999)

# domain metrics always work offline; the Inception ones need the weights (`genbench assets`)
QUALITY = ("fid_domain", "kid_domain", "precision_domain", "recall_domain",
           "fid_inception", "kid_inception")

SEEDS = (0, 1, 2)  # full-scale training seeds; smoke runs the first two
PACKED = Resources(cpu=1, gpu=0.25)  # four small trials share one GPU


def ddpm_scales(*, smoke: dict[str, Any] | None = None,
                full: dict[str, Any] | None = None) -> dict[str, Scale]:
    """The common smoke (300 steps, 16 samples, 2 seeds) and full (30k steps, 10k samples)
    scales, with per-study overrides of Scale fields."""
    return {
        "smoke": Scale(**{**dict(budget_steps=300, n_samples=16, config=SMOKE_UNET,
                                 seeds=SEEDS[:2]), **(smoke or {})}),
        "full": Scale(**{**dict(budget_steps=30_000, n_samples=10_000, config=FULL_UNET,
                                log_every=500), **(full or {})}),
    }


def zoo_scales(model: str | dict[str, str], *, smoke: dict[str, Any] | None = None,
               train: dict[str, Any] | None = None,
               full: dict[str, Any] | None = None) -> dict[str, Scale]:
    """The scales of a study whose axes are sampling knobs: smoke samples the zoo's `model`
    (`genbench list`; no training: the sampler ablated on a model that draws digits, 64 samples,
    two seeds), train is the common smoke recipe from scratch (`--scale train`), full trains
    the paper-sized model; each with per-study overrides of Scale fields."""
    common = ddpm_scales(smoke=train, full=full)
    return {"smoke": Scale(**{**dict(n_samples=64, pretrained=model, seeds=SEEDS[:2]),
                              **(smoke or {})}),
            "train": common["smoke"], "full": common["full"]}


# consistency training (docs/methods.md M4): the DDPM nets as F_theta. At smoke scale N(k)
# grows to s1 + 1 = 41 steps (150 over a paper-length run); a sampling EMA is kept at full
SMOKE_CM = dict(SMOKE_UNET, s1=40)
FULL_CM = dict(FULL_UNET, lr=4e-4, ema_decay=0.9999)

# GANs (docs/methods.md M8, M9): sample quality plus the collapse numbers every GAN reports
GAN_QUALITY = (*QUALITY, "duplicate_rate_domain")
SMOKE_GAN = dict(n_feat=16, batch_size=32)
FULL_GAN = dict(n_feat=64, batch_size=64, ema_decay=0.999)

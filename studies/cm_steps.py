"""cm_steps (docs/methods.md M4): one consistency model trained by consistency training (Song et
al. 2023, arXiv 2303.01469), sampled with 1, 2 and 5 steps of Algorithm 1 from the same fit:
quality against network evaluations and seconds per image. The step count is a sampling knob,
so each seed trains once.

    genbench run cm_steps --scale smoke   # ~4 min on a 2-core CPU (2 trials)
    genbench run cm_steps --scale full    # ~3 h on one GPU
"""

from genbench import Claim, Scale, Study
from genbench.studies._common import FULL_CM, PACKED, QUALITY, SEEDS, SMOKE_CM

STUDY = Study(
    name="cm_steps",
    description="consistency model sampled with 1, 2 and 5 steps from one fit",
    method="consistency",
    data="mnist5k",
    sample_grid={"steps": [1, 2, 5]},
    seeds=SEEDS,
    metrics=QUALITY,
    missing_assets="skip",  # Inception weights absent offline: rows say so
    resources=PACKED,
    claims=(Claim("fid_domain", better="steps=2", than="steps=1",
                  source="Song et al. 2023, Table 1: CT on CIFAR-10, FID 8.70 (1 step) -> 5.83 (2 steps)"),),
    scales={
        # the zoo's consistency model, sampled with its EMA weights (as the zoo measures it)
        "smoke": Scale(n_samples=64, pretrained="cm", seeds=SEEDS[:2],
                       sample_config=dict(weights="ema")),
        "train": Scale(budget_steps=800, n_samples=64, config=SMOKE_CM, seeds=SEEDS[:2]),
        "full": Scale(budget_steps=100_000, n_samples=10_000, config=FULL_CM, log_every=500,
                      sample_config=dict(weights="ema")),
    },
)

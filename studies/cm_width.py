"""cm_width (docs/methods.md M4): consistency training with the U-Net F_theta at n_feat = 256
(baseline), 128 and 64; the smoke scale shrinks the widths to 16, 8 and 4, keeping their
ratios. Each fit is sampled with 1 and 2 steps.

    genbench run cm_width --scale smoke   # ~4 min on a 2-core CPU (6 trials)
    genbench run cm_width --scale full    # ~8 h on one GPU (the 256-wide net dominates)
"""

from genbench import Claim, Scale, Study
from genbench.studies._common import FULL_CM, PACKED, QUALITY, SEEDS, SMOKE_CM

WIDER = ("problem set (docs/methods.md M4, cm_width): the baseline width beats a quarter of it, "
         "at 1 and 2 steps")

STUDY = Study(
    name="cm_width",
    description="consistency training at n_feat 256 (baseline), 128, 64",
    method="consistency",
    data="mnist5k",
    train_grid={"n_feat": [256, 128, 64]},
    sample_grid={"steps": [1, 2]},
    seeds=SEEDS,
    metrics=QUALITY,
    missing_assets="skip",  # Inception weights absent offline: rows say so
    resources=PACKED,
    claims=(Claim("fid_domain", better="n_feat=256", than="n_feat=64", combine="all", source=WIDER),),
    scales={
        "smoke": Scale(budget_steps=400, n_samples=64, config=SMOKE_CM, seeds=SEEDS[:2],
                       train_grid={"n_feat": [16, 8, 4]},
                       claims=(Claim("fid_domain", better="n_feat=16", than="n_feat=4",
                                     combine="all", source=WIDER),)),
        "full": Scale(budget_steps=100_000, n_samples=10_000, config=FULL_CM, log_every=500,
                      sample_config=dict(weights="ema")),
    },
)

"""ddpm_fid_curve (docs/methods.md M2): DDPM with the cosine schedule, L1 loss and T = 50, sampled with x0
clamping through the posterior mean and the posterior variance; FID (domain features; Inception
where the weights are present) and the loss along training, with the forward and backward
process figures. Reference defaults: batch 32, lr 1e-3, U-Net base width 16, FID every 100 steps.
The reference data is AFHQ-cat at 32 px: `--set data=folder:/path/to/afhq/train/cat
--set resolution=32` (domain metrics then need a labelled data set; use the Inception ones).

    genbench run ddpm_fid_curve --scale smoke   # ~3 min on a 2-core CPU (1 trial)
    genbench run ddpm_fid_curve --scale full    # ~30 min on one GPU (1,000 steps, FID every 100)
"""

from genbench import Claim, Resources, Scale, Study
from genbench.studies._common import QUALITY

M2_UNET = dict(n_feat=16, ch_mult=(1, 2), attention=False, batch_size=32, lr=1e-3)

STUDY = Study(
    name="ddpm_fid_curve",
    description="cosine schedule, L1 loss, T = 50: FID and loss along training",
    method="ddpm",
    data="mnist5k",
    config=dict(T=50, schedule="cosine", loss="l1", **M2_UNET),
    sample_config=dict(variance="posterior"),
    sample_grid={"clip_x0": [True, False]},  # the reference clamps; off measures what that buys
    claims=(Claim("fid_domain", better="clip_x0=True", than="clip_x0=False",
                  source="Ho et al. 2020, released code (p_sample clips x0); docs/methods.md M2"),),
    seeds=(0,),
    metrics=QUALITY,
    missing_assets="skip",
    figures=True,
    resources=Resources(cpu=2, gpu=0.5),
    scales={
        "smoke": Scale(budget_steps=300, n_samples=256, log_every=50, eval_every=100,
                       eval_samples=256),
        "full": Scale(budget_steps=1_000, n_samples=10_000, log_every=100, eval_every=100,
                      eval_samples=2_000),
    },
)

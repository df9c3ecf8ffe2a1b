"""quickstart: the README's main job. DDPM (linear schedule, T = 1000) on the 5,000 embedded
MNIST digits, sampled with 50 and 250 respaced steps, with and without x0 clamping, from one
fitted model. It is written as an arms study, so that other method families (consistency
models, GANs) join it as further arms at the same budget.

    genbench run quickstart                  # smoke: ~6 min on a 2-core CPU (+1 min, once, for the
                                             # domain classifier of the quality metrics)
    genbench run quickstart --scale full     # ~15 min on one GPU

Results land in results/quickstart/<scale>/ (Parquet rows, loss curve, sample grids).
"""

from harness.study import Arm, Resources, Scale, Study
from studies._common import FULL_UNET, QUALITY, SMOKE_UNET

STUDY = Study(
    name="quickstart",
    description="DDPM on the embedded digits; 50 vs 250 respaced steps, x0 clamping off/on",
    data="mnist5k",
    arms=(
        Arm("ddpm", "ddpm", config=dict(T=1000, schedule="linear"),
            sample_grid={"steps": [50, 250], "clip_x0": [False, True]}),
    ),
    seeds=(0,),
    metrics=QUALITY,
    missing_assets="skip",  # Inception weights absent offline: rows say so
    resources=Resources(cpu=2, gpu=0.5),
    scales={
        "smoke": Scale(budget_steps=1500, n_samples=64, config=SMOKE_UNET, log_every=50),
        "full": Scale(budget_steps=20_000, n_samples=1000, config=FULL_UNET, log_every=200),
    },
)

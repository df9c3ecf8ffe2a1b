"""quickstart: the README's main job. Three method families on the 5,000 embedded MNIST digits
at matched training images (budget_kimg): a DDPM (linear schedule, T = 1000) sampled with 50 and
250 respaced steps, with and without x0 clamping; a consistency model trained by consistency
training, sampled with 1, 2 and 5 steps; and a GAN with the StyleGAN loss, one network
evaluation per image. The report's quality-against-NFE plot puts the three families on one
axis. Its claims (two consistency steps beat one, five beat two) need three seeds:

    genbench run quickstart                  # smoke, one seed: ~5 min on a 2-core CPU
    genbench run quickstart --until-decided --max-seeds 3   # `make quickstart`: ~7 min, the
                                             # claims decided (seeds 1-2 of the CM cell added)
    genbench run quickstart --scale full     # ~1 h on one GPU

Results land in results/quickstart/<scale>/ (Parquet rows, loss curves, sample grids, report).
"""

from genbench import Arm, Claim, Resources, Scale, Study
from genbench.studies._common import FULL_CM, FULL_UNET, QUALITY, SMOKE_CM

STUDY = Study(
    name="quickstart",
    description="DDPM (50/250 steps, clamping) vs consistency model (1/2/5 steps) vs GAN at "
                "equal images",
    data="mnist5k",
    arms=(
        Arm("ddpm", "ddpm", config=dict(T=1000, schedule="linear"),
            sample_grid={"steps": [50, 250], "clip_x0": [False, True]}),
        Arm("consistency", "consistency", sample_grid={"steps": [1, 2, 5]}),
        Arm("gan", "gan"),
    ),
    seeds=(0,),
    metrics=QUALITY,
    missing_assets="skip",  # Inception weights absent offline: rows say so
    resources=Resources(cpu=1, gpu=0.25),  # the arms train side by side
    # each step of Algorithm 1 refines the sample: decided at smoke scale within three seeds
    # (`make quickstart` runs with --until-decided --max-seeds 3)
    claims=(Claim("fid_domain", better="consistency: steps=2", than="consistency: steps=1",
                  source="Song et al. 2023, Table 1: CT on CIFAR-10, FID 8.70 (1 step) -> 5.83 (2)"),
            Claim("fid_domain", better="consistency: steps=5", than="consistency: steps=2",
                  source="Song et al. 2023, Sec. 3.1 and Algorithm 1: more steps, better samples")),
    scales={
        # 20k images each: 625 steps of 32; one width for every family (the GAN keeps its lr)
        "smoke": Scale(budget_kimg=20, n_samples=64, log_every=50,
                       config={**SMOKE_CM, "gan.lr": 2e-4}),
        "full": Scale(budget_kimg=2560, n_samples=1000, log_every=200,
                      config={**FULL_UNET, "consistency.lr": FULL_CM["lr"],
                              "consistency.ema_decay": FULL_CM["ema_decay"]},
                      sample_config={"consistency.weights": "ema"}),
    },
)

"""quickstart: the README's main job. Models genbench trained itself (the zoo: `genbench list`)
sampled the ways their papers compare: a DDPM (linear schedule, T = 1000) with all 1,000
ancestral steps, and the same model with DDIM in 10, 20 and 50 steps; a consistency model
trained by consistency training with 1 and 2 steps; and a GAN with the StyleGAN loss and R1,
one network evaluation per image; beside them, the real-data floor (held-out digits). The page
opens with the verdicts of two claims, DDIM's (Song et al. 2021, Table 1: 50 steps beat 10) and
the consistency model's (Song et al. 2023, Table 1: two steps beat one), and a row of sample
grids, one per setting, from the same initial noise.

    make quickstart                          # = genbench run quickstart --until-decided
                                             #   --max-seeds 5: 2 looks, 14 trials, 15 min
                                             #   on a 2-core CPU beside a test run (the
                                             #   1,000-step chains take most of it)
    genbench run quickstart --scale train    # the same families trained from scratch first
                                             # (20k images each, ~7 min): young models
    genbench run quickstart --scale full     # paper-sized models, trained: ~1 h on one GPU

Results land in results/quickstart/<scale>/ (Parquet rows, sample grids, report/index.html).
"""

from genbench import Arm, Claim, Resources, Scale, Study
from genbench.studies._common import FULL_CM, FULL_UNET, QUALITY, SMOKE_CM

DDPM = dict(T=1000, schedule="linear")

STUDY = Study(
    name="quickstart",
    description="a DDPM with 1,000 ancestral steps or DDIM in 10-50, a consistency model in 1 "
                "or 2 steps, a GAN: the zoo's models beside real data",
    data="mnist5k",
    arms=(
        # one model, two samplers: two arms, so that seeds added for DDIM's claim do not rerun
        # the 1,000-step chains
        Arm("ddpm", "ddpm", config=DDPM, sample_grid=[{"sampler": "ddpm"}]),
        Arm("ddim", "ddpm", config=DDPM, sample_grid={"sampler": ["ddim"], "steps": [10, 20, 50]}),
        Arm("consistency", "consistency", sample_grid={"steps": [1, 2]}),
        Arm("gan", "gan"),
    ),
    seeds=(0, 1),
    metrics=QUALITY,
    missing_assets="skip",  # Inception weights absent offline: rows say so
    resources=Resources(cpu=1, gpu=0.25),  # the arms sample side by side
    claims=(Claim("fid_domain", better="ddim: steps=50", than="ddim: steps=10",
                  source="Song et al. 2021 (DDIM), Table 1: eta = 0, S = 50 against S = 10"),
            Claim("fid_domain", better="consistency: steps=2", than="consistency: steps=1",
                  source="Song et al. 2023, Table 1: CT on CIFAR-10, FID 8.70 (1 step) -> 5.83 (2)")),
    scales={
        # the zoo's models (genbench.harness.store.zoo): the samplers compared on models that draw
        # digits; the consistency model samples with its EMA weights, as the zoo measured it
        "smoke": Scale(n_samples=64, pretrained={"ddpm": "ddpm_linear", "ddim": "ddpm_linear",
                                                 "consistency": "cm", "gan": "gan_r1"},
                       sample_config={"consistency.weights": "ema"}),
        # trained from scratch first: 20k images each (625 steps of 32), one width for every
        # family (the GAN keeps its lr); the DDPM and DDIM arms train one model each
        "train": Scale(budget_kimg=20, n_samples=64, log_every=50, seeds=(0,),
                       config={**SMOKE_CM, "gan.lr": 2e-4}),
        "full": Scale(budget_kimg=2560, n_samples=1000, log_every=200,
                      config={**FULL_UNET, "consistency.lr": FULL_CM["lr"],
                              "consistency.ema_decay": FULL_CM["ema_decay"]},
                      sample_config={"consistency.weights": "ema"}),
    },
)

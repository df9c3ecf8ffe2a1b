"""zoo: the models genbench ships, trained by genbench itself on the 5,000 embedded digits, so
that sampling ablations (DDIM's steps, respacing, guidance, DPS, SDS/VSD, consistency-model
steps) run on models that draw digits, on a laptop, in minutes. Five arms: a DDPM with the
linear schedule (T = 1000), one with the cosine schedule, a class-conditional DDPM trained with
label dropout (classifier-free guidance, and the prior of DPS and SDS/VSD), a consistency model
trained by consistency training, and the StyleGAN-loss GAN with R1.

    genbench run zoo --scale full --out /tmp/zoo   # ~1.5 h on a 2-core CPU (5 fits, 2 at once);
                                                   # minutes on one GPU
    python benchmarks/zoo_export.py /tmp/zoo       # writes harness/zoo/ (checkpoints, manifest)
    genbench run zoo                                # smoke: the same recipe, seconds (for tests)

An arm of any study starts from one of them with `pretrained="ddpm_linear"` (docs/studies.md);
`genbench list` shows what ships and what each scored.
"""

from genbench import Arm, Resources, Scale, Study
from genbench.studies._common import GAN_QUALITY

# the U-Net every diffusion and consistency model of the zoo shares: 0.25M parameters, 0.5 MB
# in half precision, small enough that 1,000 ancestral steps of 64 samples take about a minute
# on a CPU core; the EMA of its weights samples
ZOO_UNET = dict(n_feat=16, ch_mult=(1, 2, 2), attention=False, batch_size=64, lr=1e-3,
                ema_decay=0.999)
ZOO_GAN = dict(n_feat=32, batch_size=64, lr=2e-4, r1_gamma=0.1, ema_decay=0.999)
# the setting each model is measured at in the manifest (cheap enough for a test to repeat)
CHECK = {"ddpm_linear": {"sampler": "ddim", "steps": 20},
         "ddpm_cosine": {"sampler": "ddim", "steps": 20},
         "ddpm_cond": {"sampler": "ddim", "steps": 20, "guidance": 1.0},
         "cm": {"steps": 2},
         "gan_r1": {}}

STUDY = Study(
    name="zoo",
    description="the shipped models: DDPM linear and cosine, class-conditional DDPM, "
                "consistency model (CT), GAN with R1",
    data="mnist5k",
    arms=(
        Arm("ddpm_linear", "ddpm", config=dict(ZOO_UNET, T=1000, schedule="linear"),
            sample_grid=[CHECK["ddpm_linear"]]),
        Arm("ddpm_cosine", "ddpm", config=dict(ZOO_UNET, T=1000, schedule="cosine"),
            sample_grid=[CHECK["ddpm_cosine"]]),
        Arm("ddpm_cond", "ddpm", config=dict(ZOO_UNET, T=1000, schedule="linear",
                                             class_cond=True, p_uncond=0.1),
            sample_grid=[CHECK["ddpm_cond"]]),
        Arm("cm", "consistency", config=dict(ZOO_UNET, s1=150), sample_grid=[CHECK["cm"]],
            sample_config=dict(weights="ema")),
        Arm("gan_r1", "gan", config=ZOO_GAN),
    ),
    seeds=(0,),
    metrics=(*GAN_QUALITY[:4], GAN_QUALITY[-1]),  # the domain metrics: offline everywhere
    resources=Resources(cpu=1, gpu=0.5),
    scales={
        "full": Scale(budget_kimg=160, n_samples=256, log_every=100),
        "smoke": Scale(budget_steps=4, n_samples=16, log_every=2),
    },
)

"""regression: the regression suite. DDPM (ancestral and DDIM sampling), consistency, GAN and
dummy arms at a tiny scale, two seeds, so that `genbench compare` can tell a change from the
noise between seeds (DCGAN shares the GAN's training loop; the 1-D VP-SDE has its own exact
tests). Its baseline lives in benchmarks/baselines/regression/ (see the README for the commands
that refresh it and gate a change on it).

    genbench run regression --out /tmp/cur            # ~60 s on a 2-core CPU (8 trials)
    genbench compare benchmarks/baselines/regression /tmp/cur --no-timings

It has a single scale worth running anywhere: `full` is the same study at a GPU-sized sample
count, for a GPU baseline of its own (baselines are only compared on the same device kind).
"""

from genbench import Arm, Claim, Scale, Study

BATCH = 16  # every arm's images per step: the smoke budget below is 100 steps of it
TINY_DDPM = dict(T=100, n_feat=8, ch_mult=(1, 2), attention=False, batch_size=BATCH, lr=2e-3)
TINY_NET = {k: v for k, v in TINY_DDPM.items() if k != "T"}

STUDY = Study(
    name="regression",
    description="DDPM, consistency, GAN and dummy arms at a tiny scale, two seeds: the "
                "regression suite",
    data="mnist5k",
    arms=(
        Arm("ddpm", "ddpm", config=TINY_DDPM,
            sample_grid=[{"sampler": "ddpm"}, {"sampler": "ddim", "steps": 20}]),
        Arm("consistency", "consistency", config=dict(TINY_NET, s1=20),
            sample_grid={"steps": [1, 2]}),
        Arm("gan", "gan", config=dict(n_feat=8, batch_size=BATCH)),
        Arm("dummy", "dummy", config=dict(batch_size=BATCH), sample_grid={"noise": [0.3]}),
    ),
    seeds=(0, 1),
    metrics=("fid_domain", "kid_domain", "precision_domain", "recall_domain",
             "duplicate_rate_domain"),
    # facts any working build keeps: a suite whose claims fail is broken, whatever compare says
    claims=(Claim("nfe", better="ddpm: sampler=ddim, steps=20", than="ddpm: sampler=ddpm",
                  source="Song et al. 2021 (DDIM): 20 of the 100 steps"),
            Claim("fid_domain", better="arm=gan", than="arm=dummy",
                  source="sanity: a trained GAN beats the dummy's mean image plus noise (the "
                         "DDPM of 100 steps does not yet)")),
    scales={
        "smoke": Scale(budget_kimg=100 * BATCH / 1000, n_samples=64, log_every=50),  # 100 steps
        "full": Scale(budget_kimg=64, n_samples=2000, log_every=100),
    },
)

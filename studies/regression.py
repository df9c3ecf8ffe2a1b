"""regression: the regression suite. DDPM (ancestral and DDIM sampling), consistency, GAN and
dummy arms at a tiny scale, with the seeds `genbench compare` needs to catch a 1.5x fid_domain
regression in any one arm with power 0.8 (DCGAN shares the GAN's training loop; the 1-D VP-SDE
has its own exact tests). Its baseline lives in benchmarks/baselines/regression/
(docs/compare-and-claims.md has the commands that refresh it and gate a change on it).

    genbench run regression --out /tmp/cur            # ~6 min on a 2-core CPU (48 trials)
    genbench compare benchmarks/baselines/regression /tmp/cur

The seeds: a change confined to one arm moves that arm's points only (the others reproduce
their values exactly and are not tested), so the gate's family is at most the POINTS points of
the largest arm; the per-seed log ratios of its fid_domain spread by at most PLANNING_NOISE,
measured (8 seeds) between this suite and a run with every arm's learning rate halved: 0.27 in
the GAN arm, 0.018-0.023 in the others. At 12 seeds a 1.5x regression of one point is flagged in
90 % of simulated comparisons, at 10 in 74 % (tests/test_calibration.py,
benchmarks/bench_calibration.py). The GAN trains at lr 2e-3: at the default 2e-4 its FID after
100 steps varied 5x between seeds (log spread 0.66), where no number of seeds a CI job can pay
for would decide a 1.5x change.

It has a single scale worth running anywhere: `full` is the same study at a GPU-sized sample
count, for a GPU baseline of its own (baselines are only compared on the same device kind).
"""

from genbench import Arm, Claim, Scale, Study

BATCH = 16  # every arm's images per step: the smoke budget below is 100 steps of it
SEEDS = tuple(range(12))  # what the gate needs (above); CI's own run reproduces the first two
PLANNING_NOISE = 0.27  # the largest spread of per-seed log fid_domain ratios under a change
POINTS = 14  # the tested points of the largest arm (consistency, ddpm: 14; gan, dummy: 8)
TINY_DDPM = dict(T=100, n_feat=8, ch_mult=(1, 2), attention=False, batch_size=BATCH, lr=2e-3)
TINY_NET = {k: v for k, v in TINY_DDPM.items() if k != "T"}

STUDY = Study(
    name="regression",
    description="DDPM, consistency, GAN and dummy arms at a tiny scale, 12 seeds: the "
                "regression suite",
    data="mnist5k",
    arms=(
        Arm("ddpm", "ddpm", config=TINY_DDPM,
            sample_grid=[{"sampler": "ddpm"}, {"sampler": "ddim", "steps": 20}]),
        Arm("consistency", "consistency", config=dict(TINY_NET, s1=20),
            sample_grid={"steps": [1, 2]}),
        Arm("gan", "gan", config=dict(n_feat=8, batch_size=BATCH, lr=2e-3)),
        Arm("dummy", "dummy", config=dict(batch_size=BATCH), sample_grid={"noise": [0.3]}),
    ),
    seeds=SEEDS,
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

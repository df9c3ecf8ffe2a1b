"""ddim_vs_ddpm (docs/methods.md M3): one DDPM (T = 1000) sampled by the ancestral sampler with all 1000
steps against deterministic DDIM (eta = 0) with 10, 20, 50 and 100 steps: sample quality and
wall time per image. DDIM is a sampling-time choice: each seed trains once.

    genbench run ddim_vs_ddpm --scale smoke   # ~3 min on a 2-core CPU (2 trials)
    genbench run ddim_vs_ddpm --scale full    # ~1.5 h on one GPU
"""

from genbench import Claim, Study
from genbench.studies._common import PACKED, QUALITY, SEEDS, zoo_scales

STUDY = Study(
    name="ddim_vs_ddpm",
    description="DDPM 1000 steps vs DDIM 10/20/50/100 steps on one model",
    method="ddpm",
    data="mnist5k",
    config=dict(T=1000, schedule="linear"),
    sample_grid=[{"sampler": "ddpm", "steps": 1000}]
    + [{"sampler": "ddim", "steps": k} for k in (10, 20, 50, 100)],
    sample_config=dict(eta=0.0, spacing="linspace"),
    seeds=SEEDS,
    metrics=QUALITY,
    missing_assets="skip",
    resources=PACKED,
    claims=(Claim("fid_domain", better="sampler=ddim, steps=50", than="sampler=ddim, steps=10",
                  source="Song et al. 2021 (DDIM), Table 1: eta = 0, S = 50 against S = 10"),
            Claim("sample_s_per_image", better="sampler=ddim, steps=50",
                  than="sampler=ddpm, steps=1000",
                  source="Song et al. 2021 (DDIM), Sec. 5.1: 10x to 50x faster than DDPM")),
    scales=zoo_scales("ddpm_linear"),
)

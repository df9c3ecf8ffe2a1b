"""dps_steps (docs/methods.md M6): inpainting the central square of held-out digits with diffusion
posterior sampling on top of DDIM, at several step counts, against plain DDIM from the same
noise (which ignores the observation). Rows: `mse_hidden` and `psnr_hidden` on the hidden region,
`sample_s_per_image` of both (the extra cost of DPS), and quality.

    genbench run dps_steps --scale smoke   # ~6 min on a 2-core CPU (2 trials)
    genbench run dps_steps --scale full    # ~2 h on one GPU
"""

from genbench import Claim, Study
from genbench.studies._common import PACKED, QUALITY, SEEDS, zoo_scales

STEPS = (20, 50, 100)

STUDY = Study(
    name="dps_steps",
    description="DPS inpainting vs plain DDIM at 20/50/100 steps",
    method="ddpm",
    data="mnist5k",
    task="inpaint",
    mask="center",
    obs_noise=0.05,
    config=dict(T=1000, schedule="linear"),
    sample_grid=[{"sampler": s, "steps": k} for k in STEPS for s in ("ddim", "dps")],
    sample_config=dict(eta=1.0, dps_zeta=1.0),
    seeds=SEEDS,
    metrics=QUALITY,
    missing_assets="skip",
    resources=PACKED,
    # the observation guides DPS; plain DDIM from the same noise ignores it
    claims=(Claim("mse_hidden", better="sampler=dps", than="sampler=ddim", combine="all",
                  source="Chung et al. 2023 (DPS), Table 2: DPS against unconditional sampling"),),
    scales=zoo_scales("ddpm_linear", full=dict(n_samples=1000)),
)

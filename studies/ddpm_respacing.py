"""ddpm_respacing (docs/methods.md M1): one DDPM trained with T = 1000, sampled with a strided schedule of
K = 50 and 100 steps against the full 1000. Respacing recomputes
beta'_k = 1 - alphabar_{s_k} / alphabar_{s_{k-1}} on the kept steps; it is a sampling-time knob,
so each seed trains once and samples three times from the same initial noise.

    genbench run ddpm_respacing --scale smoke   # ~4 min on a 2-core CPU (2 trials)
    genbench run ddpm_respacing --scale full    # ~1.5 h on one GPU
"""

from genbench import Claim, Study
from genbench.studies._common import PACKED, QUALITY, SEEDS, zoo_scales

STUDY = Study(
    name="ddpm_respacing",
    description="one DDPM (T = 1000) sampled with 50, 100 and 1000 steps",
    method="ddpm",
    data="mnist5k",
    config=dict(T=1000, schedule="linear"),
    sample_grid={"steps": [50, 100, 1000]},
    seeds=SEEDS,
    metrics=QUALITY,
    missing_assets="skip",  # Inception weights absent offline: rows say so
    resources=PACKED,
    # strided ancestral sampling loses quality as steps fall (Nichol & Dhariwal 2021, Fig. 8;
    # the eta = 1 rows of DDIM's Table 1)
    claims=(Claim("fid_domain", better="steps=1000", than="steps=50",
                  source="Nichol & Dhariwal 2021, Fig. 8; Song et al. 2021 (DDIM), Table 1, eta = 1"),
            Claim("fid_domain", better="steps=100", than="steps=50",
                  source="Nichol & Dhariwal 2021, Fig. 8; Song et al. 2021 (DDIM), Table 1, eta = 1")),
    scales=zoo_scales("ddpm_linear"),
)

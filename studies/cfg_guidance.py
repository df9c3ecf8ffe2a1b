"""cfg_guidance (docs/methods.md M5): a class-conditional DDPM trained with label dropout (p_uncond = 0.1)
sampled with classifier-free guidance w in {0, 0.5, 1, 2, 5}, x0 thresholding off and on: 10
settings per seed from one fit. Reports quality and `class_match`, the fraction of samples the
domain classifier assigns to their conditioning class. w = 0 is the plain conditional model.

    genbench run cfg_guidance --scale smoke   # ~8 min on a 2-core CPU (2 trials, 1000 steps)
    genbench run cfg_guidance --scale full    # ~3 h on one GPU
"""

from genbench import Claim, Study
from genbench.studies._common import PACKED, QUALITY, SEEDS, zoo_scales

STUDY = Study(
    name="cfg_guidance",
    description="classifier-free guidance w = 0..5 x thresholding off/on",
    method="ddpm",
    data="mnist5k",
    config=dict(T=1000, schedule="linear", class_cond=True, p_uncond=0.1),
    sample_grid={"guidance": [0.0, 0.5, 1.0, 2.0, 5.0], "clip_x0": [False, True]},
    seeds=SEEDS,
    metrics=(*QUALITY, "class_match"),
    missing_assets="skip",
    resources=PACKED,
    # guidance trades diversity for fidelity to the class (Ho & Salimans 2022, Fig. 4: IS rises
    # with w): with and without thresholding
    claims=(Claim("class_match", better="guidance=5.0", than="guidance=0.0", combine="all",
                  source="Ho & Salimans 2022, Table 1 and Fig. 4: fidelity rises with w"),),
    # 100 respaced sampling steps keep 10 settings x 2 passes affordable on a CPU; trained from
    # scratch (--scale train), conditioning needs ~1000 steps to show at all
    scales=zoo_scales("ddpm_cond", smoke=dict(sample_config=dict(steps=100)),
                      train=dict(budget_steps=1000, sample_config=dict(steps=100))),
)

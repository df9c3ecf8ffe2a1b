"""sds_guidance (docs/methods.md M7): score distillation in image space with the harness's own
class-conditional DDPM as the prior: SDS at guidance 7.5 and 100, and VSD at 7.5 with a copy of
the prior fitted online to the particles. Each image is optimised towards a requested class;
rows report quality, `class_match` and the cost (NFE, time per image).

    genbench run sds_guidance --scale smoke   # ~6 min on a 2-core CPU (2 trials, 1000 steps)
    genbench run sds_guidance --scale full    # ~2 h on one GPU
"""

from genbench import Claim, Study
from genbench.studies._common import PACKED, QUALITY, SEEDS, zoo_scales

STUDY = Study(
    name="sds_guidance",
    description="SDS at guidance 7.5 and 100, VSD at 7.5, with a conditional DDPM prior",
    method="ddpm",
    data="mnist5k",
    config=dict(T=1000, schedule="linear", class_cond=True, p_uncond=0.1),
    sample_grid=[{"sampler": "sds", "guidance": 7.5}, {"sampler": "sds", "guidance": 100.0},
                 {"sampler": "vsd", "guidance": 7.5}],
    sample_config=dict(sds_iters=500, sds_lr=0.05),
    seeds=SEEDS,
    metrics=(*QUALITY, "class_match"),
    missing_assets="skip",
    resources=PACKED,
    claims=(Claim("class_match", better="sampler=sds, guidance=100.0", than="sampler=sds, guidance=7.5",
                  source="Poole et al. 2022 (DreamFusion), Sec. 3.2: SDS needs a large guidance (100)"),
            Claim("fid_domain", better="sampler=vsd, guidance=7.5", than="sampler=sds, guidance=7.5",
                  source="Wang et al. 2023 (ProlificDreamer), Sec. 5: VSD at CFG 7.5 against SDS")),
    # the zoo's conditional DDPM as the prior; trained from scratch (--scale train), the prior
    # needs ~1000 steps before its classes differ (see cfg_guidance)
    scales=zoo_scales("ddpm_cond", smoke=dict(sample_config=dict(sds_iters=100)),
                      train=dict(budget_steps=1000, sample_config=dict(sds_iters=100)),
                      full=dict(n_samples=1000)),
)

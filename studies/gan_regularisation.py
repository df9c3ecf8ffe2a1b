"""gan_regularisation (docs/methods.md M8): a GAN with the StyleGAN loss trained on 100 digits,
three ways: the baseline, + R1 (Mescheder et al. 2018), and + R1 + DiffAugment with the
`color,translation,cutout` policy (Zhao et al. 2020). With 100 images the discriminator
memorises the training set and the generator collapses or copies; R1 and DiffAugment are the
two standard remedies. Several seeds per arm, because in this regime the spread between seeds
is as large as the effect. Every arm reports precision, recall and the duplicate rate, so
collapse shows in numbers, and quality is measured against the 1,000 held-out digits.

    genbench run gan_regularisation                 # smoke: ~6 min on a 2-core CPU (9 fits)
    genbench run gan_regularisation --scale full    # ~2 h on one GPU (15 fits)

Swap in an image folder (for example a 100-shot set) with `--set data=folder:/path/to/images`.
"""

from genbench import Arm, Claim, Scale, Study
from genbench.studies._common import FULL_GAN, GAN_QUALITY, PACKED, SMOKE_GAN

POLICY = "color,translation,cutout"

STUDY = Study(
    name="gan_regularisation",
    description="GAN on 100 digits: baseline vs +R1 vs +R1+DiffAugment, several seeds",
    data="fewshot:mnist5k:100",
    arms=(
        Arm("baseline", "gan"),
        Arm("r1", "gan", config=dict(r1_gamma=1.0)),
        Arm("r1_diffaug", "gan", config=dict(r1_gamma=1.0, diffaug=POLICY)),
    ),
    seeds=(0, 1, 2, 3, 4),
    metrics=GAN_QUALITY,
    ref_split="test",  # the held-out digits: copying the 100 training images does not pay
    missing_assets="skip",  # Inception weights absent offline: rows say so
    resources=PACKED,
    claims=(Claim("fid_domain", better="arm=r1_diffaug", than="arm=baseline",
                  source="Zhao et al. 2020 (DiffAugment), Table 2: 100-shot generation"),
            Claim("recall_domain", better="arm=r1_diffaug", than="arm=baseline",
                  source="Zhao et al. 2020 (DiffAugment), Sec. 4: less overfitting, more diverse samples")),
    scales={
        "smoke": Scale(budget_steps=600, n_samples=256, config=SMOKE_GAN, seeds=(0, 1, 2),
                       log_every=50),
        "full": Scale(budget_kimg=2000, n_samples=1000, config=FULL_GAN, log_every=500),
    },
)

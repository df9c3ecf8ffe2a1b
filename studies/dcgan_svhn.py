"""dcgan_svhn (docs/methods.md M9): the vanilla DCGAN of the course on SVHN's 32 px colour digits,
with the discriminator evaluation: each seed's discriminator judges real test images against
the samples of another seed's generator (accuracy, precision and recall rows), next to the
sample-quality and collapse metrics.

SVHN is not shipped: put torchvision's `train_32x32.mat` and `test_32x32.mat` under
`$GENBENCH_DATA/svhn` (the full scale says so in one line when they are missing). The smoke
scale runs on the embedded 28 px digits.

    genbench run dcgan_svhn                  # smoke, embedded digits: ~3 min on a 2-core CPU
    genbench run dcgan_svhn --scale full     # SVHN, 10 epochs: ~30 min on one GPU
"""

from genbench import Claim, Scale, Study
from genbench.studies._common import GAN_QUALITY, PACKED

STUDY = Study(
    name="dcgan_svhn",
    description="vanilla DCGAN on SVHN, with its discriminator judged on another seed's fakes",
    method="dcgan",
    data="svhn",
    seeds=(0, 1, 2),
    metrics=GAN_QUALITY,
    missing_assets="skip",  # Inception weights absent offline: rows say so
    resources=PACKED,
    # Radford et al. 2016, Sec. 4: Adam's beta1 = 0.9 oscillated and was unstable, 0.5 trained
    train_grid={"betas": [(0.5, 0.999), (0.9, 0.999)]},
    claims=(Claim("fid_domain", better="betas=[0.5, 0.999]", than="betas=[0.9, 0.999]",
                  source="Radford et al. 2016 (DCGAN), Sec. 4: beta1 = 0.5 against 0.9"),),
    scales={
        "smoke": Scale(data="mnist5k", budget_steps=300, n_samples=256, seeds=(0, 1),
                       config=dict(batch_size=64)),
        "full": Scale(budget_kimg=733, n_samples=5000, log_every=200),  # 10 epochs of 73,257
    },
)

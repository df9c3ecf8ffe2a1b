"""sde_toy (docs/methods.md M10): the VP-SDE on a 1-D mixture of two Gaussians (Song et al. 2021,
arXiv 2011.13456, Appendix C), where the score and every marginal p_t are known exactly. It
asks how many steps the reverse SDE (Euler-Maruyama) and the probability-flow ODE (Euler) need,
with the exact score and with a small MLP score learned by denoising score matching: W1 and KS
against the exact data law, against NFE, and the classic figure of trajectories over p_t.

    genbench run sde_toy                  # smoke: ~3 min on a 2-core CPU (4 fits)
    genbench run sde_toy --scale full     # ~15 min on a CPU (6 fits, 20,000 samples each)

`--set data="mixture:0.5,-1,0.2;0.5,2,0.6"` runs it on another mixture.
"""

from genbench import Claim, Resources, Scale, Study

STUDY = Study(
    name="sde_toy",
    description="VP-SDE toy: reverse SDE vs probability-flow ODE x steps x exact/learned score",
    method="vpsde",
    data="mixture",
    train_grid={"score": ["exact", "learned"]},
    sample_grid={"process": ["sde", "ode"], "steps": [10, 100, 1000]},
    seeds=(0, 1, 2),
    metrics=("w1_exact", "ks_exact"),
    figures=True,
    resources=Resources(cpu=1, gpu=0),  # a 1-D toy: the CPU is the right device
    claims=(Claim("w1_exact", better="steps=1000", than="steps=10", combine="all",
                  source="Song et al. 2021, Sec. 4.2: finer discretisations of the reverse SDE "
                         "and probability-flow ODE approach p_0"),
            Claim("w1_exact", better="score=exact, process=sde, steps=1000",
                  than="score=learned, process=sde, steps=1000",
                  source="Song et al. 2021, Sec. 3.3: a learned score only approximates the exact one")),
    scales={
        "smoke": Scale(budget_steps=3000, n_samples=5000, seeds=(0, 1), log_every=100),
        "full": Scale(budget_steps=20_000, n_samples=20_000, log_every=500),
    },
)

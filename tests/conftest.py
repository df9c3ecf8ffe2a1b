"""Shared fixtures: tiny data, and one local Ray instance for every test that needs it."""

import pytest
import torch

from harness.method import TrainData


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from harness.runner import init_ray

    init_ray(None)
    yield
    ray.shutdown()


@pytest.fixture
def tiny_images():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(32, 1, 8, 8, generator=g) * 2 - 1
    return TrainData(name="tiny", x=x, y=torch.arange(32) % 4, num_classes=4)


@pytest.fixture(scope="session", autouse=True)
def isolated_assets(tmp_path_factory):
    """Every test session gets its own assets directory, never the user's cache."""
    import os

    path = tmp_path_factory.mktemp("assets")
    old = os.environ.get("GENBENCH_ASSETS")
    os.environ["GENBENCH_ASSETS"] = str(path)
    yield path
    if old is None:
        os.environ.pop("GENBENCH_ASSETS", None)
    else:
        os.environ["GENBENCH_ASSETS"] = old


@pytest.fixture(scope="session")
def domain_extractor(isolated_assets):
    """The embedded digits' domain classifier: the one genbench ships (an empty assets
    directory has no build of its own)."""
    from harness.metrics.features import load_domain_extractor

    return load_domain_extractor("mnist5k", 28)

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
    """The embedded digits' domain classifier, trained once per session (about a minute)."""
    from harness.metrics.features import (build_domain_extractor, domain_extractor_exists,
                                          load_domain_extractor)

    if not domain_extractor_exists("mnist5k", 28):
        build_domain_extractor("mnist5k", echo=lambda *_: None)
    return load_domain_extractor("mnist5k", 28)

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

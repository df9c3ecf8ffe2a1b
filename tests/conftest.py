"""Shared fixtures (tiny data, one local Ray instance for every test that needs it) and the test
tiers: every test is `unit` (the default), `e2e` or `system` (pyproject.toml names them). A unit
test that starts Ray fails, naming the tier it belongs to, so the fast tier stays fast."""

import os
import shutil
import subprocess

import pytest
import torch


TIERS = ("unit", "e2e", "system")


def _share_the_cores() -> None:
    """Each pytest-xdist worker gets its share of the cores for torch's threads, and so do the
    processes a test starts (OMP_NUM_THREADS is inherited): two workers with two threads each on
    two cores spin against each other (the unit tier took 101 s so, 63 s with one thread each).
    Trials set their own threads from their resources, as in a user's run."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        torch.set_num_threads(threads)
        os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)


_share_the_cores()

# fixtures that make a test end to end: a Ray cluster, or a study run shared by a module's tests
E2E_FIXTURES = {"ray_local", "run_dir", "smoke"}


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups (its own hook)
def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("system"):
            item.add_marker(pytest.mark.system)  # the load test: a system test, run by hand
        tiers = [t for t in TIERS if item.get_closest_marker(t)]
        group = _worker_group(item, tiers)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        if set(item.fixturenames) & E2E_FIXTURES and not tiers:
            tiers = ["e2e"]  # it starts a Ray cluster, or runs a study
            item.add_marker(pytest.mark.e2e)
        if not tiers:
            item.add_marker(pytest.mark.unit)
        elif len(tiers) > 1:
            raise pytest.UsageError(f"{item.nodeid} is marked {' and '.join(tiers)}: one tier")
    # the longest groups first, so that no worker starts one of them when the other is done
    first = {"system": 0, "regression": 1, "ray": 2}
    items.sort(key=lambda item: min((first.get(m.args[0], 3) for m in item.iter_markers("xdist_group")
                                     if m.args), default=3))


def _worker_group(item, tiers) -> str | None:
    """Which tests one pytest-xdist worker runs in turn (`--dist loadgroup`): the fault tests
    (tests/test_faults.py: they kill processes, start Ray nodes, fill disks: one at a time); a
    test's own `xdist_group` mark; every other test of Ray (one Ray instance); a module's tests
    that share a module-scoped run (its `XDIST_GROUP`)."""
    if "system" in tiers:  # (the fault tests one at a time; a wheel's install, a benchmark,
        return getattr(item.module, "XDIST_GROUP", None)  # the browser: on any worker)
    if item.get_closest_marker("xdist_group"):
        return None
    if "ray_local" in item.fixturenames:
        return "ray"
    return getattr(item.module, "XDIST_GROUP", None)


@pytest.fixture(autouse=True)
def _unit_tests_start_no_ray(request, monkeypatch):
    """A unit test that would start Ray fails at once, saying to mark it e2e."""
    if request.node.get_closest_marker("unit") is None:
        return
    import ray

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts Ray: mark it e2e (tests/conftest.py)")

    if not ray.is_initialized():  # (in a run of every tier an earlier test may have started it)
        monkeypatch.setattr(ray, "init", refuse)


@pytest.fixture(scope="session")
def ray_local():
    import ray

    from genbench.harness.run.cluster import connect

    connect(None)  # a local Ray sized to this machine
    yield
    ray.shutdown()


@pytest.fixture
def tiny_images():
    from genbench.testing import tiny_images as images  # (the plugin kit's tiny data)

    return images()


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
    from genbench.harness.metrics.features import load_domain_extractor

    return load_domain_extractor("mnist5k", 28)


@pytest.fixture(scope="session")
def chromium() -> str:
    """A real browser: Debian's chromium, installed with apt-get when missing (this changes the
    machine, hence the system tier); where it cannot be, the test is skipped in one line."""
    path = shutil.which("chromium")
    if path is None:
        env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            try:
                done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            except (OSError, subprocess.TimeoutExpired) as err:
                pytest.skip(f"no chromium, and {' '.join(cmd[:2])} cannot run here: {err}")
            if done.returncode != 0:
                pytest.skip(f"no chromium, and {' '.join(cmd)} failed: "
                            f"{(done.stderr.strip().splitlines() or ['?'])[-1]}")
        path = shutil.which("chromium")
    if path is None:
        pytest.skip("no chromium after apt-get install chromium")
    return path

"""The load test (slow, outside the default suite: `pytest -m slow tests/test_load.py`, about
8 min on 2 cores): 200 tiny trials through `genbench run` finish with every row present, and
the driver's memory stays bounded (benchmarks/bench_load.py prints the figures)."""

import importlib.util
from pathlib import Path

import pytest


@pytest.mark.slow
def test_two_hundred_trials():
    spec = importlib.util.spec_from_file_location(
        "bench_load", Path(__file__).resolve().parent.parent / "benchmarks" / "bench_load.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    r = bench.main(["--trials", "200"])
    assert r["status"] == 0 and r["trials"] == 200
    assert r["rows"] == 200 * 8  # 5 fit rows (no final_loss_G) + 3 per setting
    assert r["peak_mb"] - r["early_mb"] < 200  # bounded: no per-trial growth of note

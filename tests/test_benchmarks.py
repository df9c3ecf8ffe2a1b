"""The performance benchmarks run end to end at toy sizes and print what they promise (their
real figures come from `make bench`; timings are never asserted here)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.system  # benchmarks: each runs a measured workload

ROOT = Path(__file__).resolve().parents[1]


def bench(name: str, *args: str) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / name), *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_sampling_benchmark_reports_nfe_and_the_network_share():
    out = bench("bench_sampling.py", "--n", "4", "--batch", "4", "--only", "ddim-10,cm-2,gan")
    rows = {m.group(1): m.groups()[1:] for m in
            re.finditer(r"^\s+(\S+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", out, re.M)}
    assert set(rows) == {"ddim-10", "cm-2", "gan"}
    assert [rows[k][0] for k in ("ddim-10", "cm-2", "gan")] == ["10", "2", "1"]  # NFE
    for nfe, ms, net, noise in rows.values():
        assert 0 < float(net) <= 1 and 0 <= float(noise) <= 1 and float(ms) > 0


def test_flops_benchmark_counts_a_training_step_against_the_matmul_peak():
    out = bench("bench_flops.py", "--batch", "2", "--steps", "1")
    gflop = float(re.search(r"training step: ([\d.]+) GFLOP", out).group(1))
    assert 2 < gflop / 2 < 6  # about 3.6 GFLOP per 28 px image, forward and backward
    assert re.search(r"utilisation x\d+\.\d\d", out)


def test_metrics_benchmark_compares_with_cleanfids_folder_path(domain_extractor):
    out = bench("bench_metrics.py", "--n", "300", "--n-inception", "2")
    assert re.search(r"fid_domain, 300 images: genbench [\d,]+ images/s .*; x\d+\.\d\d", out)
    assert re.search(r"fid_inception features, 2 images .*; x\d+\.\d\d", out)


def test_unet_benchmark_matches_parameters():
    pytest.importorskip("diffusers")  # a benchmark-only extra: pip install -e '.[bench]'
    out = bench("bench_unet.py", "--batch", "2", "--res", "16", "--rounds", "1", "--steps", "1")
    gap = float(re.search(r"\(([+-][\d.]+)%; must be within 5 %\)", out).group(1))
    assert abs(gap) < 5 and "best / best: x" in out


def test_the_gpu_check_says_in_one_line_when_there_is_no_gpu():
    """benchmarks/gpu_check.sh is a person's one command on a GPU; without one it says so and
    exits 2 (here it cannot run its checks: they are for a machine with CUDA)."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: run the script itself")
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh")], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PY": sys.executable})
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.count("\n") == 1 and "no CUDA device" in proc.stdout

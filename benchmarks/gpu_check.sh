#!/usr/bin/env bash
# The device check: what a person with a CUDA GPU runs, in one command, to verify genbench's GPU
# paths (docs/performance.md, "On a GPU"). One summary line per check; logs under $OUT.
#
#     bash benchmarks/gpu_check.sh            # PY=path/to/python OUT=dir to override
#
# 1. cuda-tests: the tests that run only with CUDA (no host synchronisation inside a training
#    step under torch's sync debug mode; a reloaded model samples bit-identically on the GPU)
#    and the CPU guards of the same paths.
# 2. quickstart-ddpm: the quickstart's DDPM arm as a trial on the GPU (bf16, fused Adam).
# 3. bench-unet: U-Net training steps/s, NCHW against channels-last, bf16 and fp32: says which
#    layout memory_format="auto" should pick on CUDA (methods/nets/unet.py AUTO_CHANNELS_LAST).
# 4. bench-flops: achieved FLOP/s of a full-scale training step against the matmul peak.
# 5. features-cpu-vs-cuda: the reference features of the embedded digits' test split computed
#    on the CPU and on the GPU (strict fp32 on both): largest difference and the FID between
#    the two sets, which must be ~0.
set -u
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-$(mktemp -d /tmp/genbench-gpu-check.XXXXXX)}
mkdir -p "$OUT"
if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu_check: torch sees no CUDA device (torch.cuda.is_available() is False): nothing to check"
    exit 2
fi
failed=0
check() {
    local name=$1; shift
    local log="$OUT/$name.log" start=$SECONDS status=ok
    "$@" > "$log" 2>&1 || { status=FAIL; failed=1; }
    printf '%-4s %-22s %4ds  %s  [%s]\n' "$status" "$name" $((SECONDS - start)) \
        "$(grep -v '^\s*$' "$log" | tail -1 | cut -c1-160)" "$log"
}
FEATURES='
import numpy as np, torch
from genbench.harness import data
from genbench.harness.metrics import features
from genbench.harness.metrics.quality import frechet_distance, gaussian_fit
x = data.load("mnist5k", "test").x
cpu, _ = features.load_domain_extractor("mnist5k", 28, "cpu").run(x)
gpu, _ = features.load_domain_extractor("mnist5k", 28, "cuda").run(x)
diff = np.abs(cpu - gpu).max() / np.abs(cpu).max()
fid = frechet_distance(*gaussian_fit(cpu), *gaussian_fit(gpu))
print(f"largest difference {diff:.2e} of the largest feature; FID(cpu, cuda) {fid:.2e}")
raise SystemExit(0 if diff < 1e-4 and fid < 1e-3 else 1)
'
check cuda-tests "$PY" -m pytest -q -p no:cacheprovider tests/test_method_contract.py \
    tests/test_device_paths.py
check quickstart-ddpm "$PY" -m genbench run quickstart --arm ddpm --gpus-per-trial 1 \
    --out "$OUT/quickstart" --no-report
check bench-unet-bf16 "$PY" benchmarks/bench_unet.py --device cuda --precision bf16
check bench-unet-fp32 "$PY" benchmarks/bench_unet.py --device cuda --precision fp32
check bench-flops "$PY" benchmarks/bench_flops.py --device cuda
check features-cpu-vs-cuda "$PY" -c "$FEATURES"
exit $failed

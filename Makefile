# The README's two commands. Each creates the virtual environment and installs genbench first
# (torch 2.14.1 and torchvision 0.29.1 come from the local wheel cache where pip is set up so).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: quickstart test test-fast bench

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $@

# the quickstart samples the zoo's models; its claims need more than its two seeds:
# --until-decided adds them, at planned looks, to the cells the claims involve
quickstart: $(VENV)/.installed
	$(VENV)/bin/genbench run quickstart --until-decided --max-seeds 5

# every tier (what CI runs): ruff, then the unit, end-to-end and system tiers in one pytest run
# on both cores: the fault tests one at a time on one worker, the tests of Ray on one worker
# and one Ray instance, a module's shared study once, the longest groups first; studies run in
# the test process where Ray is not what is tested (`--in-process`). tests/conftest.py says
# which worker runs what.
test: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -m "not slow" -n 2 --dist loadgroup --no-loadscope-reorder --durations=15

# the inner loop: the unit tier (no Ray cluster), about a minute on 2 cores
test-fast: $(VENV)/.installed
	$(PY) -m pytest -m unit -n 2 --dist loadgroup

# the performance benchmarks (docs/performance.md); each prints its figures and ratios
bench: $(VENV)/.installed
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_unet.py
	$(PY) benchmarks/bench_overhead.py --set budget_steps=400  # trials of a minute, as target 2 says
	$(PY) benchmarks/bench_sampling.py
	$(PY) benchmarks/bench_metrics.py
	$(PY) benchmarks/bench_flops.py

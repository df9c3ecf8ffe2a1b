"""Reports: pure functions from the Parquet results tables (and the sample grids and figures
saved beside them) to PNG figures and a self-contained page. They import `genbench.harness.store.results` for
the schema only, never training code or torch (`tests/test_layers.py`)."""

from genbench.reports.page import write_report  # noqa: F401

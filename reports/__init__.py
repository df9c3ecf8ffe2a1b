"""Report generators: pure functions from the Parquet results tables to figures and a page.
They import `harness.results` for the schema only, never training code."""

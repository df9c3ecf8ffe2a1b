"""Where results live: the run directory's layout, atomic files, the Parquet schema and its
readers, compaction, runs at URIs, and the model zoo's shipped files."""

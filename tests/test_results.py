"""The results store: schema, atomic writes, a reader that survives a bad file."""

from datetime import datetime, timezone

import pytest

from harness import results


def row(**kw):
    return {"schema_version": results.SCHEMA_VERSION, "study": "s", "trial_id": "t-s0",
            "metric": "train_s", "value": 1.0, "created_at": datetime.now(timezone.utc), **kw}


def test_roundtrip(tmp_path):
    results.write_rows(results.fit_file(tmp_path, "a-s0"), [row(trial_id="a-s0")])
    results.write_rows(results.unit_file(tmp_path, "b-s0", "k1", "m1"),
                       [row(trial_id="b-s0"), row(trial_id="b-s0")])
    df = results.read_results(tmp_path)
    assert list(df.columns) == list(results.COLUMNS) and len(df) == 3
    assert sorted(df.trial_id) == ["a-s0", "b-s0", "b-s0"]


def test_reader_skips_a_bad_file_and_says_so(tmp_path):
    results.write_rows(results.fit_file(tmp_path, "a-s0"), [row(trial_id="a-s0")])
    (tmp_path / "results" / "junk.parquet").write_bytes(b"PAR1 not really")
    said = []
    df = results.read_results(tmp_path, warn=said.append)
    assert df.trial_id.tolist() == ["a-s0"]
    assert len(said) == 1 and "junk.parquet" in said[0]


def test_unknown_column_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not in the results schema"):
        results.write_rows(results.fit_file(tmp_path, "x"), [row(wat=1)])
    assert not results.fit_file(tmp_path, "x").exists()


def test_crash_during_write_leaves_old_file_intact(tmp_path, monkeypatch):
    path = results.write_rows(results.fit_file(tmp_path, "a-s0"), [row()])
    before = path.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(results.os, "replace", boom)
    with pytest.raises(OSError):
        results.write_rows(path, [row(), row()])
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left


def test_readme_documents_every_column():
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    for name in results.COLUMNS:
        assert f"`{name}`" in readme, f"README's schema table misses {name}"

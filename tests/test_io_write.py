"""Writers: reference column order, round trip write -> read, atomic on failure."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.io import read_dataset
from bridgewatch.io.writers import write_dataset, write_notes, write_ratings
from test_io_helpers import MATRIX_FIELDS, note_row, rating_row, write_basic


def _same(a, b) -> None:
    assert a.notes.equals(b.notes)
    assert a.status_history.equals(b.status_history)
    assert a.enrollment.equals(b.enrollment)
    for f in MATRIX_FIELDS:
        assert np.array_equal(getattr(a.ratings, f), getattr(b.ratings, f)), f


@pytest.mark.parametrize("fmt", ["tsv", "parquet"])
def test_round_trip(tmp_path: Path, fmt: str) -> None:
    src = write_basic(tmp_path / "src")
    notes = pd.DataFrame([note_row(10, summary='tab\there "q"\nnew line'), note_row(20, classification="")])
    write_notes(src / schema.NOTES_FILE, notes)
    first = read_dataset(src)
    assert first.notes["classification"].isna().tolist() == [False, True]
    out = tmp_path / "out"
    written = write_dataset(first, out, fmt=fmt)
    assert set(written) == {"notes", "ratings", "status", "enrollment"}
    _same(first, read_dataset(out))


def test_writers_use_reference_column_order(tmp_path: Path) -> None:
    src = write_basic(tmp_path / "src")
    write_dataset(read_dataset(src), tmp_path / "out")
    for name, cols in (
        (schema.NOTES_FILE, schema.NOTE_COLUMNS),
        (schema.RATINGS_FILE, schema.RATING_COLUMNS),
        (schema.STATUS_FILE, schema.NOTE_STATUS_HISTORY_COLUMNS),
        (schema.ENROLLMENT_FILE, schema.ENROLLMENT_COLUMNS),
    ):
        header = (tmp_path / "out" / name).read_text().splitlines()[0].split("\t")
        assert header == list(cols)
    # Integer columns the reference parses as int64 must never be written empty or as floats.
    row = (tmp_path / "out" / schema.RATINGS_FILE).read_text().splitlines()[1].split("\t")
    assert row[schema.RATING_COLUMNS.index("ratedOnTweetId")] == "1010"


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    def chunks() -> Iterator[pd.DataFrame]:
        yield pd.DataFrame([rating_row(10, "A")])
        raise RuntimeError("generator broke")

    target = tmp_path / schema.RATINGS_FILE
    with pytest.raises(RuntimeError):
        write_ratings(target, chunks())
    assert list(tmp_path.iterdir()) == []

"""read_dataset on small hand-written fixtures: values, dtypes, id spaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bridgewatch import schema
from bridgewatch.io import read_dataset
from test_io_helpers import write_basic


def test_reads_basic_directory(tmp_path: Path) -> None:
    write_basic(tmp_path)
    ds = read_dataset(tmp_path)
    assert list(ds.notes["noteId"]) == [10, 20]
    assert ds.notes["tweetId"].dtype == np.int64
    m = ds.ratings
    assert m.n_ratings == 3
    # Note index space = union of notes, NSH and ratings note ids, sorted.
    assert list(m.note_ids) == [10, 20, 30]
    assert list(m.rater_ids) == ["A", "B"]
    assert m.value.tolist() == [1.0, 0.5, 0.0]
    assert m.has_tag("helpfulClear").tolist() == [True, False, False]
    assert m.population_sampled.tolist() == [False, True, False]
    assert list(ds.status_history.columns) == list(schema.NOTE_STATUS_HISTORY_COLUMNS)
    assert list(ds.enrollment.columns) == list(schema.ENROLLMENT_COLUMNS)
    assert any("absent from" in w for w in ds.warnings)

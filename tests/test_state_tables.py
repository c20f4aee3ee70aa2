"""state.read_table: text columns read as objects equal pandas' ``astype(object)`` of them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bridgewatch.state import read_table, write_table


def test_text_columns_read_as_objects_equal_astype_object(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "noteId": np.arange(4, dtype=np.int64),
            "status": pd.Series(["a", None, "c", ""], dtype=object),
            "other": pd.Series(["x", "y", None, None], dtype=object),
            "count": pd.array([1, None, 3, 4], dtype="Int64"),
            "value": np.array([0.5, np.nan, -0.0, 1e30], dtype=np.float32),
            "flag": pd.array([True, None, False, True], dtype="boolean"),
        }
    )
    for output in (True, False):
        write_table(frame, tmp_path, "t", output=output)
        plain = read_table(tmp_path, "t")
        want = plain.astype({"status": object})
        got = read_table(tmp_path, "t", objects=["status", "count", "absent"])
        pd.testing.assert_frame_equal(got, want)
        assert list(got.dtypes) == list(want.dtypes)
        # the same objects: str, and float NaN (not None) where missing
        assert [type(v) for v in got["status"]] == [type(v) for v in want["status"]] == [str, float, str, str]
        assert got["other"].dtype == plain["other"].dtype  # not asked for: arrow-backed, as before

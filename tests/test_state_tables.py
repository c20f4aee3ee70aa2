"""state tables: text columns read as objects equal pandas' ``astype(object)`` of them; NaN as stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from bridgewatch.state import read_table, table_path, write_table


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


def test_state_tables_keep_nan_as_values_and_outputs_as_nulls(tmp_path: Path) -> None:
    """A table only the state reads stores a float column's NaN as NaN (read back without a
    validity bitmap to decode); an output table keeps pandas' nulls. Both read back as the frame."""
    frame = pd.DataFrame(
        {
            "noteId": np.arange(3, dtype=np.int64),
            "x": np.array([0.5, np.nan, -0.0]),
            "y": np.array([np.nan, 1.0, 2.0], dtype=np.float32),
            "n": pd.array([1, None, 3], dtype="Int64"),
        }
    )
    for output in (False, True):
        write_table(frame, tmp_path, "t", output=output)
        stored = pq.read_table(table_path(tmp_path, "t"))
        nulls = [stored.column(c).null_count for c in ("x", "y", "n")]
        assert nulls == ([1, 1, 1] if output else [0, 0, 1])
        back = read_table(tmp_path, "t")
        pd.testing.assert_frame_equal(back, frame)
        assert np.signbit(back["x"].to_numpy()[2])  # -0.0 stays -0.0

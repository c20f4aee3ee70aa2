"""io.parquet: frames written a block of rows at a time read back as the frame written whole."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from bridgewatch.io.parquet import write_parquet_blocks


def _frame(n: int = 23) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    text = np.array([None] * n, dtype=object)
    text[n // 2 :] = [f"t{i}" for i in range(n - n // 2)]  # no value in the first blocks
    f = rng.normal(size=n)
    f[::4] = np.nan
    return pd.DataFrame(
        {
            "noteId": np.arange(n, dtype=np.int64) * 3,
            "text": text,
            "f64": f,
            "f32": f.astype(np.float32),
            "Int64": pd.array([None if i % 5 == 0 else i for i in range(n)], dtype="Int64"),
            "boolean": pd.array([None if i % 3 == 0 else i % 2 == 0 for i in range(n)], dtype="boolean"),
        }
    )


@pytest.mark.parametrize("block_rows", [1, 4, 10, 1000])
def test_blocks_read_back_as_the_whole_frame(tmp_path: Path, block_rows: int) -> None:
    frame = _frame()
    path = tmp_path / "t.parquet"
    write_parquet_blocks(path, frame, block_rows=block_rows)
    assert pq.ParquetFile(path).num_row_groups == -(-len(frame) // block_rows)
    pd.testing.assert_frame_equal(pd.read_parquet(path), pd.read_parquet(_whole(tmp_path, frame)))


def _whole(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "whole.parquet"
    frame.to_parquet(path, index=False, engine="pyarrow", compression="snappy")
    return path


def test_one_block_is_the_bytes_pandas_writes(tmp_path: Path) -> None:
    # Output Parquet files of earlier versions (and other writers' expectations) stay the same
    # bytes while a frame fits in one block, empty frames included.
    for frame in (_frame(), _frame().iloc[:0]):
        path = tmp_path / "t.parquet"
        write_parquet_blocks(path, frame)
        assert path.read_bytes() == _whole(tmp_path, frame).read_bytes()


def test_chunks_and_nan_values(tmp_path: Path) -> None:
    frame = _frame()
    path = tmp_path / "t.parquet"
    write_parquet_blocks(
        path, [frame.iloc[:7], frame.iloc[7:7], frame.iloc[7:]], nan_as_null=False, block_rows=5
    )
    table = pq.read_table(path)
    assert table.column("f64").null_count == 0  # NaN kept as values, not nulls
    back = table.to_pandas()
    np.testing.assert_array_equal(back["f64"].to_numpy(), frame["f64"].to_numpy())
    assert back["text"].isna().sum() == frame["text"].isna().sum()
    with pytest.raises(ValueError, match="no frame"):
        write_parquet_blocks(tmp_path / "none.parquet", iter(()))

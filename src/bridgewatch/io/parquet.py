"""Writing frames as Parquet a block of rows at a time.

``pyarrow.Table.from_pandas`` of a whole frame is a second, Arrow copy of it for as long as the
file is encoded: for scored_notes ~1.2 KB a note, ~3 GB at X's 2.5M notes, on top of the frame.
Here each block of rows becomes one row group and is dropped once written, so the copy is one
block's whatever the frame's length. The schema comes from the whole frame (a text column with no
value in one block is still text), so every block is written with the same one.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

# Rows a row group holds (pyarrow's own default is 1M rows, converted whole before it splits).
# scored_notes, written as it is built, holds a block converted and its Arrow copy: at `large`
# (200k notes, so one block of 1 << 18 rows was the whole frame) its step rose 0.61 GiB over
# its start with blocks of 1 << 18 rows, 0.51 with 1 << 16 (docs/memory.md, session 22).
BLOCK_ROWS = 1 << 16


def write_parquet_blocks(
    path: str | os.PathLike[str],
    frames: pd.DataFrame | Iterable[pd.DataFrame],
    *,
    nan_as_null: bool = True,
    block_rows: int = BLOCK_ROWS,
    schema: pa.Schema | None = None,
    **options: object,
) -> None:
    """Write ``frames`` (one frame, or chunks of one with the same columns and dtypes: the first
    gives the schema, unless ``schema`` is given: that of the whole frame, where the first chunk
    may lack a text column's values) to ``path`` as one Parquet file, snappy-compressed,
    ``block_rows`` rows a row group; ``options`` go to ``pyarrow.parquet.ParquetWriter``.

    ``nan_as_null``: a float column's NaN is written as null, as pandas writes it (what other
    readers take as missing); else as a NaN value, which a reader of this project's state gets
    back as the file's own buffer (no validity bits to decode, no copy)."""
    chunks = iter([frames] if isinstance(frames, pd.DataFrame) else frames)
    first = next(chunks, None)
    if first is None:
        raise ValueError(f"{path}: no frame to write")
    if schema is None:
        schema = pa.Schema.from_pandas(first, preserve_index=False)
    with pq.ParquetWriter(path, schema, compression="snappy", **options) as writer:  # type: ignore[arg-type]
        rows = 0
        for frame in itertools.chain([first], chunks):
            for start in range(0, len(frame), block_rows):
                block = frame.iloc[start : start + block_rows]
                table = pa.Table.from_pandas(block, schema=schema, preserve_index=False)
                if not nan_as_null:
                    table = _nan_values(table, block)
                writer.write_table(table, row_group_size=block_rows)
                rows += len(block)
        if rows == 0:  # one empty row group, as pyarrow writes an empty table
            writer.write_table(pa.Table.from_pandas(first.iloc[:0], schema=schema, preserve_index=False))


def _nan_values(table: pa.Table, frame: pd.DataFrame) -> pa.Table:
    """``table`` with each float column that has nulls rebuilt from ``frame``'s values (NaN kept)."""
    for i, name in enumerate(table.column_names):
        column = frame[name]
        if table.column(i).null_count and isinstance(column.dtype, np.dtype) and column.dtype.kind == "f":
            table = table.set_column(i, table.schema.field(i), pa.array(column.to_numpy(), from_pandas=False))
    return table

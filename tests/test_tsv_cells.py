"""tsv_cells: the column-by-column TSV formatter writes exactly the bytes pandas' ``to_csv`` does."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from bridgewatch.io.tsv import write_frame, write_rows, write_tsv
from bridgewatch.io.tsv_cells import column_cells, frame_cells, rows_text
from texts import frame_text


def _pandas_text(frame: pd.DataFrame, columns: list[str]) -> bytes:
    buf = io.StringIO(newline="")
    write_frame(buf, frame, columns, header=True)
    return buf.getvalue().encode("utf-8")


def _nasty() -> pd.DataFrame:
    """Every dtype the output frames hold, with the values that format unusually."""
    rng = np.random.default_rng(7)
    n = 40
    f32 = rng.normal(size=n).astype(np.float32) * np.float32(10.0) ** rng.integers(-9, 9, n)
    f64 = rng.normal(size=n) * 10.0 ** rng.integers(-20, 20, n)
    f32[:6] = [np.nan, np.inf, -np.inf, -0.0, 0.0, np.float32(1e-45)]
    f64[:8] = [np.nan, np.inf, -0.0, 1795305600000.0, 1e16, 1e-5, 0.1 + 0.2, 5e-324]
    text = np.array(
        ["plain", 'quo"te', "tab\there", "new\nline", "cr\rret", "", None, np.nan, "é ü", " sp "] * 4,
        dtype=object,
    )
    mixed = np.array(
        [1, 2.5, True, None, "x", np.float64(0.25), -0.0, pd.NA, 10**20, np.float32(0.1)] * 4, dtype=object
    )
    ints = pd.array(rng.integers(-(2**40), 2**40, n), dtype="Int64")
    ints[::7] = pd.NA
    flags = pd.array(rng.random(n) < 0.5, dtype="boolean")
    flags[::5] = pd.NA
    return pd.DataFrame(
        {
            "f32": f32,
            "f64": f64,
            "int64": rng.integers(-(2**62), 2**62, n),
            "uint8": rng.integers(0, 255, n).astype(np.uint8),
            "bool": rng.random(n) < 0.5,
            "Int64": ints,
            "boolean": flags,
            "object": pd.Series(text, dtype=object),
            "str": pd.Series(text, dtype="str"),
            "mixed": pd.Series(mixed, dtype=object),
            "allnan": np.full(n, np.nan),
            "allnone": pd.Series([None] * n, dtype=object),
        }
    )


def test_frame_text_equals_pandas_on_nasty_frames() -> None:
    frame = _nasty()
    columns = list(frame.columns)
    assert frame_cells(frame, columns) is not None  # the fast path, not pandas' fallback
    assert frame_text(frame, columns) == _pandas_text(frame, columns)
    # column subsets and orders, a missing column (written empty), no rows
    for cols in (columns[::-1], ["str", "absent", "f32"], ["object"], ["f64"]):
        assert frame_text(frame, cols) == _pandas_text(frame, cols), cols
    assert frame_text(frame.iloc[:0], columns) == _pandas_text(frame.iloc[:0], columns)
    assert frame_text(frame.iloc[[5]], ["object"]) == _pandas_text(frame.iloc[[5]], ["object"])  # lone ""


@pytest.mark.parametrize("row", range(10))
def test_each_text_value_alone_and_in_a_row(row: int) -> None:
    frame = _nasty().iloc[[row]]
    for cols in (["object"], ["str"], ["mixed"], ["object", "f32"], ["f32", "mixed", "str"]):
        assert frame_text(frame, cols) == _pandas_text(frame, cols), (row, cols)


def test_unusual_dtypes_fall_back_to_pandas() -> None:
    frame = pd.DataFrame(
        {
            "when": pd.to_datetime([0, 10**12], unit="ms"),
            "cat": pd.Categorical(["a", None]),
            "F64": pd.array([0.5, None], dtype="Float64"),
            "x": [1.5, 2.5],
        }
    )
    for col in ("when", "cat", "F64"):
        values = frame[col].to_numpy() if isinstance(frame[col].dtype, np.dtype) else frame[col].array
        assert column_cells(values) is None, col
        assert frame_text(frame, [col, "x"]) == _pandas_text(frame, [col, "x"]), col
    dup = pd.DataFrame([[1.0, 2.0]], columns=["a", "a"])
    assert frame_cells(dup, ["a"]) is None
    assert frame_cells(frame, ["x", "x"]) is None


def test_column_cells_text() -> None:
    assert column_cells(np.array([0.1, np.nan, -0.0], dtype=np.float32)).tolist() == ["0.1", "", "-0.0"]
    assert column_cells(np.array([True, False])).tolist() == ["True", "False"]
    assert column_cells(pd.array([3, None], dtype="Int64")).tolist() == ["3", ""]
    objects = np.array(["a", None, np.float64(0.5), 2, np.nan], dtype=object)
    assert column_cells(objects).tolist() == ["a", "", "0.5", "2", ""]


def test_rows_text_quotes_like_the_csv_writer() -> None:
    cells = [np.array(['a"b', "c\td", "e"], dtype=object), np.array(["1", "2", "x\ny"], dtype=object)]
    assert rows_text(["h1", "h 2"], cells) == b'h1\th 2\n"a""b"\t1\n"c\td"\t2\ne\t"x\ny"\n'
    assert rows_text(["only"], [np.array(["", "v"], dtype=object)]) == b'only\n""\nv\n'
    assert rows_text(None, cells) == b'"a""b"\t1\n"c\td"\t2\ne\t"x\ny"\n'  # rows only
    assert rows_text(None, [np.array([], dtype=object)]) == b""


@pytest.mark.parametrize("block_rows", [1, 3, 7, 40, 1000])
def test_blocks_of_rows_write_the_same_bytes(block_rows: int) -> None:
    # Formatting is bounded by blocks of rows; no block size may change a byte, whether the
    # block is formatted by tsv_cells or (a dtype it does not know) by pandas.
    frame = _nasty()
    frame["when"] = pd.Timestamp("2026-01-01") + pd.to_timedelta(np.arange(len(frame)), unit="h")
    for columns in (list(frame.columns[:-1]), list(frame.columns), ["object"]):
        buf = io.BytesIO()
        write_rows(buf, frame, columns, block_rows=block_rows)
        assert buf.getvalue() == _pandas_text(frame, columns), columns
    empty = io.BytesIO()
    write_rows(empty, frame.iloc[:0], ["f32", "str"], block_rows=block_rows)
    assert empty.getvalue() == _pandas_text(frame.iloc[:0], ["f32", "str"])
    headless = io.BytesIO()
    write_rows(headless, frame, ["f32", "str"], header=False, block_rows=block_rows)
    assert headless.getvalue() == _pandas_text(frame, ["f32", "str"]).split(b"\n", 1)[1]


def test_write_tsv_writes_chunks_and_a_lone_header(tmp_path) -> None:
    frame = _nasty()
    path = tmp_path / "t.tsv"
    write_tsv(path, (frame.iloc[i : i + 9] for i in range(0, len(frame), 9)), list(frame.columns))
    assert path.read_bytes() == _pandas_text(frame, list(frame.columns))
    write_tsv(path, iter(()), ["a", "b"])
    assert path.read_bytes() == b"a\tb\n"

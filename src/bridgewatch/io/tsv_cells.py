"""The text pandas' ``to_csv`` writes for each cell of a column, without pandas' csv machinery.

An incremental final run formats the rows it rescored (~1,000 rows of ~100 columns) on every run;
pandas spent most of that time in the ``csv`` writer, one Python call per cell, and the rest in
per-block conversions. Here a column becomes its cells' strings in one vectorized step and rows
are joined with tabs. The strings are what pandas hands the ``csv`` writer (``values.astype(str)``
for a float column, the objects of any other column) turned into text the way that writer turns
them (``str`` as is, a ``float`` by float's ``repr``, anything else by ``str``); a row with a cell that
needs quoting goes through the writer itself, so the bytes are pandas' (tests pin them).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

import numpy as np
import pandas as pd

# What ``tsv.write_frame`` asks of pandas (which passes it to ``csv.writer``).
WRITER = {
    "delimiter": "\t",
    "quoting": csv.QUOTE_MINIMAL,
    "lineterminator": "\n",
    "quotechar": '"',
    "doublequote": True,
    "escapechar": None,
}
# Characters that make the ``csv`` writer quote a cell under these settings.
_QUOTED = ("\t", '"', "\n", "\r")


def _text(value: object) -> str:
    """What the ``csv`` writer writes for one object, before quoting."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    # (a float subclass such as numpy.float64 too: float's own repr, "0.25", not its "np.float64(0.25)")
    return float.__repr__(value) if isinstance(value, float) else str(value)


_TEXTS = np.frompyfunc(_text, 1, 1)


def _float_cells(values: np.ndarray) -> np.ndarray:
    """pandas' ``values.astype(str)``, na_rep where missing (only the present values formatted:
    numpy's float formatting is this module's main cost, and group scorers' columns are sparse)."""
    cells = np.full(values.shape[0], "", dtype=object)
    present = ~np.isnan(values)
    if present.all():
        return values.astype(str).astype(object)
    if present.any():
        cells[present] = values[present].astype(str)
    return cells


def column_cells(values: np.ndarray | pd.api.extensions.ExtensionArray) -> np.ndarray | None:
    """object[N] of str: each value's cell text before quoting, missing values empty; None for a
    dtype pandas formats another way (datetimes, categoricals, float extension arrays...).

    ``values``: a column's numpy array, or its extension array (``Series.array``). Numbers are
    formatted by numpy (``astype(str)``: pandas' own call for floats; for integers and booleans
    the same text as ``str`` of the Python objects pandas hands the writer)."""
    if isinstance(values, np.ndarray):
        kind = values.dtype.kind
        if kind == "f":
            return _float_cells(values)
        if kind in "iub":
            return values.astype(str).astype(object)
        if kind != "O":
            return None
        objects = values  # pandas: np.array(values, dtype=object), na_rep where missing
        missing = pd.isna(objects)
    elif isinstance(values, (pd.arrays.IntegerArray, pd.arrays.BooleanArray)):
        # pandas: np.asarray(values.astype(object)) (Python ints / bools), na_rep where missing
        missing = np.asarray(values.isna(), dtype=bool)
        cells = values.to_numpy(dtype=values.dtype.numpy_dtype, na_value=0).astype(str).astype(object)
        cells[missing] = ""
        return cells
    elif isinstance(values.dtype, pd.StringDtype):
        objects = np.asarray(values.astype(object))
        missing = np.asarray(values.isna(), dtype=bool)
    else:
        return None
    present = objects[~missing]
    if pd.api.types.infer_dtype(present, skipna=False) == "string":
        cells = np.array(objects, dtype=object, copy=True)
    else:
        cells = _TEXTS(objects).astype(object)
    cells[missing] = ""
    return cells


def frame_cells(frame: pd.DataFrame, columns: Sequence[str]) -> list[np.ndarray] | None:
    """``column_cells`` of each of ``columns`` in ``frame`` (a missing column: empty cells, as
    ``reindex`` gives it); None when a column cannot be formatted here or a label repeats."""
    if not columns or len(set(columns)) != len(columns) or not frame.columns.is_unique:
        return None
    out = []
    for name in columns:
        if name not in frame.columns:
            out.append(np.full(len(frame), "", dtype=object))
            continue
        column = frame[name]
        cells = column_cells(column.to_numpy() if isinstance(column.dtype, np.dtype) else column.array)
        if cells is None:
            return None
        out.append(cells)
    return out


def _quoted(cells: np.ndarray, alone: bool) -> np.ndarray | None:
    """bool[N] cells the writer quotes (``alone``: the row's only cell, quoted when empty too);
    None when none is (one C pass over the joined column finds most columns clean)."""
    if alone:
        return np.array([s == "" or any(c in s for c in _QUOTED) for s in cells.tolist()], dtype=bool)
    joined = "".join(cells.tolist())
    if not any(c in joined for c in _QUOTED):
        return None
    return np.array([any(c in s for c in _QUOTED) for s in cells.tolist()], dtype=bool)


def _csv_line(cells: Sequence[str]) -> str:
    """One row through the ``csv`` writer itself (without its line terminator)."""
    buf = io.StringIO(newline="")
    csv.writer(buf, **WRITER).writerow(cells)  # type: ignore[arg-type]
    return buf.getvalue()[: -len(WRITER["lineterminator"])]


def rows_text(header: Sequence[object] | None, columns: Sequence[np.ndarray]) -> bytes:
    """TSV bytes (UTF-8) of a header row (None: none) and of rows given as cells
    (``column_cells``, one array per column, at least one): what ``csv.writer`` with ``WRITER``
    writes for the same values."""
    if header is None:
        cells = list(columns)
        if cells[0].shape[0] == 0:
            return b""
    else:
        cells = [
            np.concatenate([np.array([_text(h)], dtype=object), c])
            for h, c in zip(header, columns, strict=True)
        ]
    quoted = np.zeros(cells[0].shape[0], dtype=bool)
    for c in cells:
        q = _quoted(c, alone=len(cells) == 1)
        if q is not None:
            quoted |= q
    rows = list(zip(*(c.tolist() for c in cells), strict=True))
    lines = ["\t".join(r) for r in rows]
    for i in np.flatnonzero(quoted).tolist():
        lines[i] = _csv_line(rows[i])
    return ("\n".join(lines) + "\n").encode("utf-8")

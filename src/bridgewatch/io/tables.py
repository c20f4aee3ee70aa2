"""Reading the small public files (notes, note status history, user enrollment) into DataFrames.

These files are read whole (they are one row per note or per participant), found by header name,
checked (``scan.check_batch``), and given the dtypes ``Dataset`` documents.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from bridgewatch.errors import DataFormatError
from bridgewatch.io import formats, scan
from bridgewatch.io.formats import Column, FileSpec, Kind


def tsv_parse_options(newlines: bool) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(delimiter="\t", quote_char='"', double_quote=True, newlines_in_values=newlines)


def load_table(
    path: str | os.PathLike[str],
    spec: FileSpec,
    warnings: list[str],
    ignored: tuple[str, ...] = (),
) -> tuple[pa.Table, scan.Layout]:
    """Parse and check a whole file; the table has canonical names, only the columns present."""
    path = str(path)
    layout = scan.resolve_layout(path, scan.read_header(path), spec, warnings, ignored)
    cols = {c: spec.column(c) for c in layout.present}
    try:
        if scan.is_parquet(path):
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=[layout.present[c] for c in cols])
            table = table.rename_columns(list(cols))
            table = pa.table({c: _cast(table.column(c), col, layout) for c, col in cols.items()})
        else:
            table = pacsv.read_csv(
                path,
                read_options=pacsv.ReadOptions(column_names=list(layout.header), skip_rows=1),
                parse_options=tsv_parse_options(True),
                convert_options=convert_options(layout, spec),
            )
            table = table.rename_columns([_canon(layout, n) for n in table.column_names])
    except DataFormatError:
        raise
    except scan.PARSE_ERRORS as exc:
        raise scan.fail(layout, spec, None, None, f"cannot parse the file ({exc})", exact=False) from exc
    problem = scan.check_batch(table, spec)
    if problem is not None:
        raise scan.fail(layout, spec, problem[0], problem[1], problem[2], exact=False)
    return table, layout


def convert_options(layout: scan.Layout, spec: FileSpec) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        include_columns=list(layout.present.values()),
        column_types={h: scan.arrow_type(spec.column(c)) for c, h in layout.present.items()},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
    )


def _canon(layout: scan.Layout, header_name: str) -> str:
    for c, h in layout.present.items():
        if h == header_name:
            return c
    return header_name


def _cast(arr: pa.ChunkedArray, col: Column, layout: scan.Layout) -> pa.ChunkedArray:
    target = scan.arrow_type(col)
    if pa.types.is_dictionary(target):
        target = pa.string()
    try:
        if pa.types.is_dictionary(arr.type):
            arr = arr.cast(arr.type.value_type)
        return arr.cast(target)
    except scan.PARSE_ERRORS as exc:
        raise DataFormatError(
            f"column has type {arr.type}, expected {target} ({exc})", path=layout.path, field=col.name
        ) from exc


def to_frame(table: pa.Table, spec: FileSpec, keep: tuple[str, ...]) -> pd.DataFrame:
    """Columns ``keep`` (canonical names) as pandas, missing ones filled with their defaults."""
    n = table.num_rows
    out: dict[str, object] = {}
    for name in keep:
        col = spec.column(name)
        arr = table.column(name) if name in table.column_names else None
        out[name] = _series(arr, col, n)
    return pd.DataFrame(out)


def _series(arr: pa.ChunkedArray | None, col: Column, n: int) -> pd.Series:
    kind = col.kind
    if arr is not None and pa.types.is_dictionary(arr.type):
        arr = arr.cast(arr.type.value_type)
    if kind in (Kind.INT, Kind.MILLIS, Kind.BIT):
        if arr is None:
            if col.nullable_int:
                return pd.Series(np.full(n, col.default, dtype=np.int64), dtype="Int64")
            return pd.Series(np.full(n, col.default, dtype=np.int64))
        if col.nullable_int:
            return pd.Series(arr.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get), dtype="Int64")
        filled = arr.fill_null(col.default if col.default is not None else 0)
        return pd.Series(np.asarray(filled.to_numpy(), dtype=np.int64))
    if kind in (Kind.FLOAT, Kind.OPT_MILLIS):
        if arr is None:
            return pd.Series(np.full(n, np.nan))
        return pd.Series(np.asarray(arr.to_numpy(zero_copy_only=False), dtype=np.float64))
    # text kinds
    if arr is None:
        value = col.default if col.default is not None else (None if kind is not Kind.TEXT else "")
        return pd.Series([value] * n, dtype="str")
    if kind is Kind.TEXT:
        arr = arr.fill_null("")
    elif col.default is not None:
        arr = arr.fill_null(col.default)
    return pd.Series(arr.to_pandas(), dtype="str")


def empty_frame(spec: FileSpec) -> pd.DataFrame:
    """A zero-row frame with the spec's columns in the reference order and the documented dtypes."""
    table = pa.table({})
    frame = to_frame(table, spec, spec.order)
    return frame


def _dedupe(
    frame: pd.DataFrame, key: str, layout: scan.Layout, spec: FileSpec, warnings: list[str]
) -> pd.DataFrame:
    """Drop exact duplicate rows (warning); a key repeated with different values is fatal."""
    dup_key = frame.duplicated(key, keep="first")
    if not dup_key.any():
        return frame
    exact = frame.duplicated(keep="first")
    conflict = dup_key & ~exact
    if conflict.any():
        rec = int(np.argmax(conflict.to_numpy()))
        value = frame[key].iloc[rec]
        raise scan.fail(
            layout,
            spec,
            rec,
            key,
            f"{key} {value} appears again with different values (each {key} must be unique)",
            exact=False,
        )
    first = int(np.argmax(exact.to_numpy()))
    line = scan.record_line(layout.path, first, exact=False)
    warnings.append(
        f"{layout.path}: dropped {int(exact.sum())} exact duplicate row(s) of the {spec.label} file"
        + (f" (first at line {line})" if line else "")
    )
    return frame.loc[~exact].reset_index(drop=True)


def read_notes(
    path: str | os.PathLike[str], warnings: list[str], columns: tuple[str, ...] | None = None
) -> pd.DataFrame:
    """Notes: one row per note; columns in ``schema.NOTE_COLUMNS`` order (see ``Dataset``), or
    only ``columns`` (in that order), kept after every column was checked and deduplicated."""
    table, layout = load_table(path, formats.NOTES, warnings)
    frame = to_frame(table, formats.NOTES, formats.NOTES.order)
    del table
    frame = _dedupe(frame, "noteId", layout, formats.NOTES, warnings)
    return frame if columns is None else frame[list(columns)]


def read_status_history(path: str | os.PathLike[str], warnings: list[str]) -> pd.DataFrame:
    """Note status history: all 24 columns; legacy 22/23-column files get NaN late columns."""
    table, layout = load_table(path, formats.STATUS_HISTORY, warnings)
    frame = to_frame(table, formats.STATUS_HISTORY, formats.STATUS_HISTORY.order)
    del table
    return _dedupe(frame, "noteId", layout, formats.STATUS_HISTORY, warnings)


def read_enrollment(path: str | os.PathLike[str], warnings: list[str]) -> pd.DataFrame:
    """User enrollment: 8 columns; ``modelingGroup`` float64 with NaN when missing."""
    table, layout = load_table(path, formats.ENROLLMENT, warnings)
    frame = to_frame(table, formats.ENROLLMENT, formats.ENROLLMENT.order)
    return _dedupe(frame, "participantId", layout, formats.ENROLLMENT, warnings)

"""Finding columns by header name, checking values, and pinpointing the first bad line.

Two paths check the same rules (``formats.Kind``):

- the fast path parses whole blocks with pyarrow and checks them vectorized (``check_batch``);
- the slow path (``locate_error``) reads the file line by line with the ``csv`` module. It runs
  only after the fast path has found a problem, to name the exact 1-based physical line (header =
  line 1), which block parsers cannot tell once quoted fields span several lines.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.io.formats import Column, FileSpec, Kind

# Exceptions that mean "this file is malformed" when raised by a parser; translated once, here.
PARSE_ERRORS: tuple[type[BaseException], ...] = (
    pa.ArrowException,
    csv.Error,
    UnicodeDecodeError,
    EOFError,
    zlib.error,
    gzip.BadGzipFile,
    ValueError,
    OverflowError,
)

csv.field_size_limit(2**31 - 1)
_INT_RE = re.compile(r"^[+-]?[0-9]+$")
_I64_MAX = 2**63 - 1


def is_parquet(path: str | os.PathLike[str]) -> bool:
    return str(path).endswith(".parquet")


def open_text(path: str | os.PathLike[str]) -> io.TextIOBase:
    """A text stream over a TSV (``.gz`` decompressed), newlines untranslated.

    Bytes that are not UTF-8 become lone surrogates, so a scan can name the line holding them.
    """
    raw = gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")  # noqa: SIM115
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", newline="")


def _reader(fh: io.TextIOBase) -> Iterator[list[str]]:
    return csv.reader(fh, delimiter="\t", quotechar='"', doublequote=True, strict=False)


def read_header(path: str | os.PathLike[str]) -> list[str]:
    """The header row of a TSV file, or the column names of a Parquet file."""
    try:
        if is_parquet(path):
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        opener = gzip.open if str(path).endswith(".gz") else open
        with opener(path, "rb") as fb:
            first = fb.readline(1 << 20).decode("utf-8").rstrip("\r\n")
        for row in _reader(io.StringIO(first)):
            if row:
                return [c.strip() for c in row]
    except (*PARSE_ERRORS, OSError) as exc:
        raise DataFormatError(f"cannot read the header: {exc}", path=str(path), line=1) from exc
    raise DataFormatError("the file is empty; expected a header row", path=str(path), line=1)


@dataclass(frozen=True)
class Layout:
    """Where the known columns of one file are: canonical name -> name in the file."""

    path: str
    header: tuple[str, ...]
    present: dict[str, str]
    missing: tuple[str, ...]  # known columns absent from the file (filled with defaults)
    unknown: tuple[str, ...]  # header names we do not know (ignored)


def resolve_layout(
    path: str | os.PathLike[str],
    header: list[str],
    spec: FileSpec,
    warnings: list[str],
    ignored: tuple[str, ...] = (),
) -> Layout:
    """Map header names to the spec's columns; raise on missing required columns.

    ``ignored`` names are known columns the caller does not read (not reported as unknown).
    """
    path = str(path)
    seen: dict[str, str] = {}
    unknown: list[str] = []
    known = set(spec.names)
    for i, name in enumerate(header):
        canon = spec.aliases.get(name, name)
        if canon in seen:
            raise DataFormatError(
                f"column {canon!r} appears twice in the header (columns {header.index(seen[canon]) + 1}"
                f" and {i + 1})",
                path=path,
                line=1,
                field=name,
            )
        if canon in known:
            seen[canon] = name
        elif canon not in ignored:
            unknown.append(name)
    for col in spec.columns:
        if col.required and col.name not in seen:
            raise DataFormatError(
                f"required column {col.name!r} is missing from the {spec.label} header; found: "
                + ", ".join(header),
                path=path,
                line=1,
                field=col.name,
            )
    for group in spec.one_of:
        if not any(g in seen for g in group):
            raise DataFormatError(
                f"the {spec.label} header needs at least one of the columns {', '.join(group)}",
                path=path,
                line=1,
                field=group[0],
            )
    if unknown:
        warnings.append(
            f"{path}: ignored {len(unknown)} unknown column(s): {', '.join(unknown[:10])}"
            + (" ..." if len(unknown) > 10 else "")
        )
    missing = tuple(c.name for c in spec.columns if c.name not in seen)
    return Layout(path, tuple(header), seen, missing, tuple(unknown))


def nonempty(col: Column) -> bool:
    """Whether a cell of this column may not be empty."""
    return col.required and col.kind in (Kind.INT, Kind.MILLIS, Kind.ID)


def check_text(col: Column, text: str) -> str | None:
    """Slow-path check of one cell: None if fine, else what was expected."""
    if text == "":
        return "an empty value where one is required" if nonempty(col) else None
    kind = col.kind
    if kind in (Kind.INT, Kind.MILLIS, Kind.BIT):
        if not _INT_RE.match(text) or abs(int(text)) > _I64_MAX:
            return f"expected an integer, found {text[:40]!r}"
        value = int(text)
        if kind is Kind.BIT and value not in (0, 1):
            return f"expected 0 or 1, found {text[:40]!r}"
        if kind is Kind.MILLIS and not schema.MIN_PLAUSIBLE_MILLIS <= value <= schema.MAX_PLAUSIBLE_MILLIS:
            return _millis_message(value)
        return None
    if kind in (Kind.FLOAT, Kind.OPT_MILLIS):
        try:
            value_f = float(text)
        except ValueError:
            return f"expected a number, found {text[:40]!r}"
        if (
            kind is Kind.OPT_MILLIS
            and value_f > 0
            and not (schema.MIN_PLAUSIBLE_MILLIS <= value_f <= schema.MAX_PLAUSIBLE_MILLIS)
        ):
            return _millis_message(value_f)
        return None
    if kind is Kind.ENUM and text not in col.values:
        return f"expected one of {', '.join(col.values)}, found {text[:40]!r}"
    return None


def _millis_message(value: float) -> str:
    return (
        f"timestamp {value:.0f} is not in milliseconds since the epoch (expected "
        f"{schema.MIN_PLAUSIBLE_MILLIS}..{schema.MAX_PLAUSIBLE_MILLIS}; seconds or microseconds?)"
    )


def locate_error(layout: Layout, spec: FileSpec) -> DataFormatError | None:
    """Scan a TSV line by line and return the first row-level problem, or None if none found."""
    path = layout.path
    pos = {name: i for i, name in enumerate(layout.header)}
    checks = [(spec.column(c), pos[h]) for c, h in layout.present.items()]
    width = len(layout.header)
    line = 1
    try:
        with open_text(path) as fh:
            reader = _reader(fh)
            next(reader, None)
            line = reader.line_num + 1
            for row in reader:
                start, line = line, reader.line_num + 1
                if not row:
                    continue
                if len(row) != width:
                    return DataFormatError(ragged_message(width, len(row)), path=path, line=start)
                try:
                    "\t".join(row).encode("utf-8")
                except UnicodeEncodeError:
                    bad = next(i for i, cell in enumerate(row) if not _is_utf8(cell))
                    return DataFormatError(
                        "text is not valid UTF-8", path=path, line=start, field=layout.header[bad]
                    )
                for col, i in checks:
                    msg = check_text(col, row[i])
                    if msg is not None:
                        return DataFormatError(msg, path=path, line=start, field=layout.header[i])
    except (csv.Error, UnicodeDecodeError, EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        return DataFormatError(f"unreadable text ({exc})", path=path, line=line)
    return None


def ragged_message(width: int, found: int) -> str:
    return f"expected {width} tab-separated fields as in the header, found {found}"


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_batch(
    batch: pa.RecordBatch | pa.Table, spec: FileSpec, skip: tuple[Kind, ...] = ()
) -> tuple[int, str, str] | None:
    """Fast-path checks on a parsed block with canonical column names (``skip``: kinds checked
    by the caller).

    Returns (row index in the block, column, what was expected) of the first problem, or None.
    """
    first: tuple[int, str, str] | None = None
    for name in batch.schema.names:
        col = spec.column(name)
        if col.kind in skip:
            continue
        arr = batch.column(name)
        bad = None
        msg = ""
        if nonempty(col):
            bad = _first_true(pc.is_null(arr))
            msg = "an empty value where one is required"
        if bad is None and col.kind in (Kind.MILLIS, Kind.OPT_MILLIS):
            values = pc.fill_null(arr, 0 if col.kind is Kind.OPT_MILLIS else schema.MIN_PLAUSIBLE_MILLIS)
            out = pc.or_(
                pc.less(values, schema.MIN_PLAUSIBLE_MILLIS), pc.greater(values, schema.MAX_PLAUSIBLE_MILLIS)
            )
            if col.kind is Kind.OPT_MILLIS:
                out = pc.and_(out, pc.greater(values, 0))
            bad = _first_true(out)
            if bad is not None:
                msg = _millis_message(float(values[bad].as_py()))
        elif bad is None and col.kind is Kind.BIT:
            bad = _first_true(pc.greater(pc.abs(pc.fill_null(arr, 0)), 1))
            if bad is not None:
                msg = f"expected 0 or 1, found {arr[bad].as_py()!r}"
        elif bad is None and col.kind is Kind.ENUM:
            plain = arr.cast(pa.string()) if pa.types.is_dictionary(arr.type) else arr
            ok = pc.is_in(plain, value_set=pa.array(col.values, type=pa.string()))
            bad = _first_true(pc.and_(pc.invert(ok), pc.is_valid(plain)))
            if bad is not None:
                msg = f"expected one of {', '.join(col.values)}, found {str(plain[bad].as_py())[:40]!r}"
        if bad is not None and (first is None or bad < first[0]):
            first = (bad, name, msg)
    return first


def _first_true(mask: pa.Array | pa.ChunkedArray) -> int | None:
    m = np.asarray(pc.fill_null(mask, False))
    if not m.any():
        return None
    return int(np.argmax(m))


def arrow_type(col: Column) -> pa.DataType:
    """The arrow type the fast path parses a column as."""
    if col.kind in (Kind.INT, Kind.MILLIS):
        return pa.int64()
    if col.kind in (Kind.FLOAT, Kind.OPT_MILLIS):
        return pa.float64()
    if col.kind is Kind.BIT:
        return pa.int8()
    if col.kind in (Kind.ENUM, Kind.ID) and col.name != "noteAuthorParticipantId":
        return pa.dictionary(pa.int32(), pa.string())
    return pa.string()


def fail(
    layout: Layout, spec: FileSpec, record: int | None, field: str | None, msg: str, exact: bool
) -> DataFormatError:
    """The error for a problem the fast path found at 0-based data ``record`` (None if unknown).

    ``exact`` says records are physical lines (no multi-line fields), so line = record + 2;
    otherwise the line is found by a slow scan.
    """
    header_name = layout.present.get(field, field) if field else None
    if is_parquet(layout.path):
        where = f"row {record + 1}: " if record is not None else ""
        return DataFormatError(where + msg, path=layout.path, field=header_name)
    if record is None:
        found = locate_error(layout, spec)
        return found if found is not None else DataFormatError(msg, path=layout.path, field=header_name)
    return DataFormatError(
        msg, path=layout.path, line=record_line(layout.path, record, exact), field=header_name
    )


def record_line(path: str, record: int, exact: bool) -> int | None:
    """The 1-based physical line where 0-based data record ``record`` starts (header = line 1)."""
    if exact or is_parquet(path):
        return None if is_parquet(path) else record + 2
    try:
        with open_text(path) as fh:
            reader = _reader(fh)
            next(reader, None)
            line = reader.line_num + 1
            n = -1
            for row in reader:
                start, line = line, reader.line_num + 1
                if row:
                    n += 1
                    if n == record:
                        return start
    except (csv.Error, UnicodeDecodeError, EOFError, zlib.error, OSError):
        return None
    return None

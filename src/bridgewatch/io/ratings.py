"""Reading the ratings files into compact arrays.

Ratings are the one big input (X publishes ~200M rows). Plain and gzipped TSVs are read by the
one-pass numba tokenizer (``fastratings``); Parquet files, and TSVs it is not sure of, by the
careful path here: parsed block by block with pyarrow, keeping only the columns scoring uses,
each block reduced at once to int32 codes (incremental dictionaries for note ids and
participant ids), float32 helpfulness, int64 time, uint32 tag bits and a bool. Both give the
same ``RawRatings`` (tests hold them to it), with memory near the size of the final arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.io import fastratings, formats, scan
from bridgewatch.io.formats import Kind
from bridgewatch.io.kernels import encode_strings, new_string_table
from bridgewatch.io.tables import convert_options, tsv_parse_options

Progress = Callable[[str, int, int], None]
BLOCK_SIZE = 1 << 20  # measured: 1 MiB blocks parse as fast as 4 MiB and hold ~3x less in flight
_SPEC = formats.RATINGS
_LEVEL_VALUE = schema.HELPFULNESS_LEVELS


class NoteCodes:
    """Incremental dictionary int64 note id -> dense int32 code in first-seen order."""

    def __init__(self) -> None:
        self.keys = np.empty(0, dtype=np.int64)  # sorted
        self.codes = np.empty(0, dtype=np.int32)  # code of keys[i]
        self.ids = np.empty(0, dtype=np.int64)  # ids[code]

    def encode(self, ids: np.ndarray) -> np.ndarray:
        uniq, inv = np.unique(ids, return_inverse=True)
        pos = np.searchsorted(self.keys, uniq)
        found = pos < self.keys.shape[0]
        found[found] = self.keys[pos[found]] == uniq[found]
        ucodes = np.empty(uniq.shape[0], dtype=np.int32)
        ucodes[found] = self.codes[pos[found]]
        new = uniq[~found]
        if new.shape[0]:
            start = self.ids.shape[0]
            new_codes = np.arange(start, start + new.shape[0], dtype=np.int32)
            ucodes[~found] = new_codes
            self.ids = np.concatenate([self.ids, new])
            keys = np.concatenate([self.keys, new])
            order = np.argsort(keys, kind="stable")
            self.keys = keys[order]
            self.codes = np.concatenate([self.codes, new_codes])[order]
        return ucodes[inv.reshape(-1)]


class RaterCodes:
    """Incremental dictionary participant id string -> dense int32 code in first-seen order.

    Each block's (arrow) dictionary of distinct ids is hashed and looked up in numba
    (``kernels.encode_strings``); only ids never seen before become Python strings.
    """

    def __init__(self) -> None:
        self.table = new_string_table()
        self.names: list[str] = []

    def encode(self, arr: pa.Array) -> np.ndarray:
        if not pa.types.is_dictionary(arr.type):
            arr = arr.dictionary_encode()
        dictionary = arr.dictionary
        if pa.types.is_large_string(dictionary.type):
            dictionary = dictionary.cast(pa.string())
        _, off_buf, data_buf = dictionary.buffers()
        n = len(dictionary)
        offsets = np.frombuffer(off_buf, dtype=np.int32)[dictionary.offset : dictionary.offset + n + 1]
        data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.empty(0, np.uint8)
        before = len(self.names)
        mapping = encode_strings(offsets, data, self.table, before)
        fresh = np.flatnonzero(mapping >= before)
        if fresh.shape[0]:
            # Codes are assigned in dictionary order, so fresh entries come in code order.
            self.names.extend(dictionary.take(pa.array(fresh)).to_pylist())
        return mapping[np.asarray(arr.indices.to_numpy(zero_copy_only=False))]

    def ids(self) -> np.ndarray:
        return np.array(self.names, dtype=object)


@dataclass
class FileSpan:
    """Which global record numbers came from which file (for line numbers in messages)."""

    layout: scan.Layout
    first: int  # global record index of this file's first data row
    count: int = 0
    exact: bool = True  # records are physical lines


@dataclass
class RawRatings:
    """Ratings as parsed, in file order, with first-seen codes (not yet sorted or deduplicated).

    Shapes: R kept ratings. ``record``: global record index of each kept rating is recovered
    from ``dropped`` (sorted global record indices of rows dropped for having no value).
    """

    note_code: np.ndarray  # int32[R]
    rater_code: np.ndarray  # int32[R]
    value: np.ndarray  # float32[R]
    created_at: np.ndarray  # int64[R]
    tags: np.ndarray  # uint32[R]
    population_sampled: np.ndarray  # bool[R]
    note_ids: np.ndarray  # int64[codes]
    rater_ids: np.ndarray | pa.Array  # object[codes] of str, or arrow strings
    spans: list[FileSpan] = field(default_factory=list)
    dropped: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    def record_of(self, kept: int) -> int:
        """Global record index of the ``kept``-th rating."""
        adj = self.dropped - np.arange(self.dropped.shape[0])
        return int(kept + np.searchsorted(adj, kept, side="right"))

    def where(self, record: int) -> str:
        """'FILE line L' for a global record index."""
        for span in self.spans:
            if span.first <= record < span.first + span.count:
                line = scan.record_line(span.layout.path, record - span.first, span.exact)
                return span.layout.path + (
                    f" line {line}" if line else f" data row {record - span.first + 1}"
                )
        return "?"


class _Accumulator:
    def __init__(self) -> None:
        self.notes = NoteCodes()
        self.raters = RaterCodes()
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in _FIELDS}
        self.dropped: list[np.ndarray] = []
        self.records = 0
        self.file_start = 0  # global record index where the current file starts

    def add(self, batch: pa.RecordBatch, tags: np.ndarray) -> None:
        """Append a checked block; ``tags`` (uint32[n]) from ``pack_tags``."""
        n = batch.num_rows
        names = batch.schema.names
        value = np.full(n, np.nan, dtype=np.float32)
        for legacy, v in (("helpful", 1.0), ("notHelpful", 0.0)):
            if legacy in names:
                value[np.asarray(batch.column(legacy).fill_null(0).to_numpy()) == 1] = v
        if "helpfulnessLevel" in names:
            lev = batch.column("helpfulnessLevel")
            if not pa.types.is_dictionary(lev.type):
                lev = lev.dictionary_encode()
            table = np.array([_LEVEL_VALUE[s] for s in lev.dictionary.to_pylist()] + [np.nan], np.float32)
            idx = np.asarray(lev.indices.fill_null(len(lev.dictionary)).to_numpy(), dtype=np.int64)
            lv = table[idx]
            has = ~np.isnan(lv)
            value[has] = lv[has]
        if "ratingSourceBucketed" in names:
            src = batch.column("ratingSourceBucketed")
            pop = (
                np.asarray(
                    src.dictionary_decode().to_numpy(zero_copy_only=False)
                    if pa.types.is_dictionary(src.type)
                    else src.to_numpy(zero_copy_only=False),
                    dtype=object,
                )
                == schema.RATING_SOURCE_POPULATION_SAMPLED
            )
        else:
            pop = np.zeros(n, dtype=bool)
        keep = ~np.isnan(value)
        note = self.notes.encode(np.asarray(batch.column("noteId").to_numpy(), dtype=np.int64))
        rater = self.raters.encode(batch.column("raterParticipantId"))
        created = np.asarray(batch.column("createdAtMillis").to_numpy(), dtype=np.int64)
        arrays = (note, rater, value, created, tags, pop)
        if not keep.all():
            self.dropped.append(np.flatnonzero(~keep).astype(np.int64) + self.records)
            arrays = tuple(a[keep] for a in arrays)
        for k, a in zip(_FIELDS, arrays, strict=True):
            self.parts[k].append(a)
        self.records += n

    def take(self, name: str, dtype: type) -> np.ndarray:
        parts = self.parts.pop(name)
        out = np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype=dtype)
        parts.clear()
        return out


_FIELDS = ("note", "rater", "value", "created_at", "tags", "population_sampled")


def read_ratings(
    paths: list[str],
    warnings: list[str],
    progress: Progress | None = None,
    num_threads: int | None = None,
) -> RawRatings:
    """Read one or more ratings files (TSV, TSV.gz or Parquet) into ``RawRatings``.

    Plain and gzipped TSVs go through the one-pass tokenizer (``fastratings``, on
    ``num_threads`` threads, None: one per core); Parquet files, and TSVs it is not sure of
    (quotes, CRLF, blank lines, ...), through the careful pyarrow path.
    """
    layouts = [
        scan.resolve_layout(p, scan.read_header(p), _SPEC, warnings, formats.RATINGS_UNUSED) for p in paths
    ]
    total = sum(os.path.getsize(p) for p in paths)
    raw = None
    if not any(scan.is_parquet(p) for p in paths):
        spans = [FileSpan(layout, 0) for layout in layouts]
        try:
            out, dropped, note_ids, rater_ids = fastratings.read_tsv_ratings(
                layouts,
                spans,
                progress and (lambda done: progress("ratings", done, total)),
                num_threads=num_threads,
            )
        except fastratings.Fallback:
            pass
        else:
            for i in range(1, len(spans)):
                spans[i].first = spans[i - 1].first + spans[i - 1].count
            raw = RawRatings(*out, note_ids=note_ids, rater_ids=rater_ids, spans=spans, dropped=dropped)
    if raw is None:
        raw = _read_careful(layouts, progress, total)
    if raw.dropped.shape[0]:
        warnings.append(
            f"dropped {raw.dropped.shape[0]} rating(s) with no helpfulness value (helpfulnessLevel empty and "
            f"helpful/notHelpful not 1); first at {raw.where(int(raw.dropped[0]))}"
        )
    return raw


def _read_careful(layouts: list[scan.Layout], progress: Progress | None, total: int) -> RawRatings:
    acc = _Accumulator()
    spans: list[FileSpan] = []
    done = 0
    for layout in layouts:
        span = FileSpan(layout, acc.records)
        acc.file_start = acc.records
        n = _read_one(layout, acc, span, lambda b, d=done: progress and progress("ratings", d + b, total))
        span.count = n
        spans.append(span)
        done += os.path.getsize(layout.path)
        if progress:
            progress("ratings", done, total)
    return RawRatings(
        note_code=acc.take("note", np.int32),
        rater_code=acc.take("rater", np.int32),
        value=acc.take("value", np.float32),
        created_at=acc.take("created_at", np.int64),
        tags=acc.take("tags", np.uint32),
        population_sampled=acc.take("population_sampled", np.bool_),
        note_ids=acc.notes.ids,
        rater_ids=acc.raters.ids(),
        spans=spans,
        dropped=np.concatenate(acc.dropped) if acc.dropped else np.empty(0, dtype=np.int64),
    )


def _read_one(layout: scan.Layout, acc: _Accumulator, span: FileSpan, progress: Callable) -> int:
    """Parse one file into ``acc``; returns its number of data records."""
    if scan.is_parquet(layout.path):
        return _read_parquet(layout, acc)
    start_records = acc.records
    for newlines in (False, True):
        snapshot = {k: len(v) for k, v in acc.parts.items()}, len(acc.dropped)
        try:
            _read_tsv(layout, acc, newlines, progress)
            span.exact = not newlines
            return acc.records - start_records
        except DataFormatError:
            raise
        except scan.PARSE_ERRORS as exc:
            # Roll back what this attempt added; retry allowing quoted newlines, then give up.
            for k, m in snapshot[0].items():
                del acc.parts[k][m:]
            del acc.dropped[snapshot[1] :]
            acc.records = start_records
            if newlines:
                raise scan.fail(layout, _SPEC, None, None, f"cannot parse the file ({exc})", False) from exc
    raise AssertionError("unreachable")


def _read_tsv(layout: scan.Layout, acc: _Accumulator, newlines: bool, progress: Callable) -> None:
    raw = pa.OSFile(layout.path, "rb")
    stream = pa.CompressedInputStream(raw, "gzip") if layout.path.endswith(".gz") else raw
    try:
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(
                column_names=list(layout.header), skip_rows=1, block_size=BLOCK_SIZE, use_threads=True
            ),
            parse_options=tsv_parse_options(newlines),
            convert_options=convert_options(layout, _SPEC),
        )
        rename = {h: c for c, h in layout.present.items()}
        for batch in reader:
            batch = batch.rename_columns([rename[n] for n in batch.schema.names])
            _checked_add(layout, acc, batch, exact=not newlines)
            progress(raw.tell())
    finally:
        stream.close()


def _read_parquet(layout: scan.Layout, acc: _Accumulator) -> int:
    import pyarrow.parquet as pq

    start = acc.records
    try:
        pf = pq.ParquetFile(layout.path)
        rename = {h: c for c, h in layout.present.items()}
        for batch in pf.iter_batches(batch_size=1 << 20, columns=list(layout.present.values())):
            cols = {}
            for h in batch.schema.names:
                col = _SPEC.column(rename[h])
                target = scan.arrow_type(col)
                arr = batch.column(h)
                if pa.types.is_dictionary(arr.type):
                    arr = arr.dictionary_decode()
                try:
                    arr = arr.cast(target.value_type if pa.types.is_dictionary(target) else target)
                except scan.PARSE_ERRORS as exc:
                    raise DataFormatError(
                        f"column has type {arr.type}, expected {target}", path=layout.path, field=h
                    ) from exc
                cols[rename[h]] = arr
            _checked_add(layout, acc, pa.RecordBatch.from_pydict(cols), exact=True)
    except DataFormatError:
        raise
    except (*scan.PARSE_ERRORS, OSError) as exc:
        raise DataFormatError(f"cannot read the Parquet file ({exc})", path=layout.path) from exc
    return acc.records - start


def pack_tags(batch: pa.RecordBatch) -> tuple[np.ndarray, tuple[int, str, str] | None]:
    """uint32[n] tag bits of a block, and the first value that is not 0/1 (row, column, message)."""
    tags = np.zeros(batch.num_rows, dtype=np.uint32)
    bad: tuple[int, str, str] | None = None
    for name in batch.schema.names:
        col = _SPEC.column(name)
        if col.kind is not Kind.BIT:
            continue
        x = np.asarray(batch.column(name).fill_null(0).to_numpy(zero_copy_only=False), dtype=np.int64)
        wrong = (x < 0) | (x > 1)
        if wrong.any():
            row = int(np.argmax(wrong))
            if bad is None or row < bad[0]:
                bad = (row, name, f"expected 0 or 1, found {int(x[row])!r}")
        if name in schema.TAG_BIT:
            tags |= x.astype(np.uint32) << np.uint32(schema.TAG_BIT[name])
    return tags, bad


def _checked_add(layout: scan.Layout, acc: _Accumulator, batch: pa.RecordBatch, exact: bool) -> None:
    tags, bad_bit = pack_tags(batch)
    problem = scan.check_batch(batch, _SPEC, skip=(Kind.BIT,))
    if bad_bit is not None and (problem is None or bad_bit[0] < problem[0]):
        problem = bad_bit
    if problem is not None:
        rec = acc.records - acc.file_start + problem[0]
        raise scan.fail(layout, _SPEC, rec, problem[1], problem[2], exact)
    acc.add(batch, tags)

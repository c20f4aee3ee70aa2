"""The fast path for ratings TSV files: raw byte chunks through the numba tokenizer.

Ratings files carry no free text, so nearly every real file is plain unquoted ASCII, which
``tokenizer.parse_rows`` reads in one pass straight into the compact arrays ``RawRatings`` holds
(about 25 bytes a rating), with a fixed 4 MiB read buffer and no per-block intermediate tables.
Output arrays start from an estimate and grow in place (``ndarray.resize`` reallocates; pages
never written cost no memory), so the peak stays near the final size.

Whatever the tokenizer is not sure of (a quote, a carriage return, a blank line, non-ASCII
bytes in a parsed field, a value the slow check would accept) raises ``Fallback``, and the caller
rereads everything with the careful pyarrow path. Bad values it is sure of are worded by
``scan.check_text``, the check the careful path uses, with the file, line and header field.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.io import formats, scan
from bridgewatch.io import tokenizer as tk

CHUNK = 4 << 20
_SPEC = formats.RATINGS
_ROLE = {
    "noteId": tk.NOTE,
    "raterParticipantId": tk.RATER,
    "createdAtMillis": tk.CREATED,
    "helpful": tk.BIT,
    "notHelpful": tk.BIT,
    "helpfulnessLevel": tk.LEVEL,
    "ratingSourceBucketed": tk.SOURCE,
    **{t: tk.BIT for t in schema.RATING_TAGS},
}
_BIT = {"helpful": tk.HELPFUL_BIT, "notHelpful": tk.NOT_HELPFUL_BIT, **schema.TAG_BIT}
_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


class Fallback(Exception):
    """The fast path cannot be sure of this input; read it with the careful path instead."""


def _enum_table(values: list[str]) -> tuple[np.ndarray, np.ndarray]:
    data = [v.encode("ascii") for v in values]
    offs = np.zeros(len(data) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in data], out=offs[1:])
    return np.frombuffer(b"".join(data), dtype=np.uint8).copy(), offs


_LEVELS = list(schema.HELPFULNESS_LEVELS)
_LEV_B, _LEV_O = _enum_table(_LEVELS)
_LEV_V = np.array([schema.HELPFULNESS_LEVELS[v] for v in _LEVELS], dtype=np.float32)
_SRC_B, _SRC_O = _enum_table(list(schema.RATING_SOURCES))
_SRC_POP = np.array([s == schema.RATING_SOURCE_POPULATION_SAMPLED for s in schema.RATING_SOURCES])


def _resized(arr: np.ndarray, n: int) -> np.ndarray:
    """``arr`` grown or shrunk to ``n`` elements, in place when numpy owns it (realloc)."""
    if arr.flags.owndata and arr.base is None:
        arr.resize(n, refcheck=False)
        return arr
    out = np.empty(n, dtype=arr.dtype)
    k = min(n, arr.shape[0])
    out[:k] = arr[:k]
    return out


class _State:
    """The arrays ``parse_rows`` fills, and how to grow them when it asks."""

    def __init__(self, rows: int, initial: int) -> None:
        """``rows``: expected ratings; ``initial``: starting size of the id tables (they grow)."""
        initial = 1 << max(initial - 1, 0).bit_length()  # hash tables need a power of two
        rows = max(rows, initial)
        self.out = [
            np.empty(rows, np.int32),  # note code
            np.empty(rows, np.int32),  # rater code
            np.empty(rows, np.float32),  # value
            np.empty(rows, np.int64),  # createdAtMillis
            np.empty(rows, np.uint32),  # tags
            np.empty(rows, np.bool_),  # population sampled
        ]
        self.dropped = np.empty(initial, np.int64)
        self.notes = np.zeros(8 * initial, np.int64)
        self.note_ids = np.empty(initial, np.int64)
        self.raters = np.zeros(8 * initial, np.uint64)
        self.name_off = np.zeros(initial, np.int64)
        self.pool = np.empty(64 * initial, np.uint8)
        self.st = np.zeros(tk.STATE_SIZE, np.int64)

    def grow(self, code: int) -> None:
        st = self.st
        if code == tk.GROW_OUT:
            n = int(self.out[0].shape[0] * 1.5) + 1024
            self.out = [_resized(a, n) for a in self.out]
        elif code == tk.GROW_DROPPED:
            self.dropped = _resized(self.dropped, 2 * self.dropped.shape[0])
        elif code == tk.GROW_NOTES:
            if st[tk.N_NOTES] >= self.note_ids.shape[0]:
                self.note_ids = _resized(self.note_ids, 2 * self.note_ids.shape[0])
            if 4 * (st[tk.N_NOTES] + 1) > self.notes.shape[0]:
                table = np.zeros(2 * self.notes.shape[0], np.int64)
                tk.rehash_notes(self.notes, table)
                self.notes = table
        elif code == tk.GROW_RATERS:
            if st[tk.N_NAMES] + 2 > self.name_off.shape[0]:
                self.name_off = _resized(self.name_off, 2 * self.name_off.shape[0])
            if 4 * (st[tk.N_NAMES] + 1) > self.raters.shape[0]:
                table = np.zeros(2 * self.raters.shape[0], np.uint64)
                tk.rehash_raters(self.raters, table)
                self.raters = table
        elif code == tk.GROW_POOL:
            self.pool = _resized(self.pool, 2 * self.pool.shape[0] + 4096)
        else:
            raise AssertionError(code)

    def parse(
        self, buf: np.ndarray, end: int, roles: np.ndarray, bitpos: np.ndarray, runs: np.ndarray
    ) -> int:
        o = self.out
        return int(
            tk.parse_rows(
                buf, end, roles, bitpos, runs, _LEV_B, _LEV_O, _LEV_V, _SRC_B, _SRC_O, _SRC_POP,
                o[0], o[1], o[2], o[3], o[4], o[5], self.dropped, self.notes, self.note_ids,
                self.raters, self.name_off, self.pool, self.st,
                schema.MIN_PLAUSIBLE_MILLIS, schema.MAX_PLAUSIBLE_MILLIS,
            )
        )  # fmt: skip


def read_tsv_ratings(
    layouts: list[scan.Layout],
    spans: list,
    progress: Callable[[int], None] | None = None,
    *,
    chunk: int = CHUNK,
    initial: int = 1 << 14,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Parse plain or gzipped ratings TSVs (layouts already resolved) in one pass.

    ``chunk``: bytes read at a time (a longer line grows the buffer); ``initial``: starting size
    of the growable tables (tests make both tiny to exercise every growth path).

    Returns the six kept-rating arrays (note code, rater code, value, time, tags, population
    flag), ``dropped`` (int64 global record numbers), note ids by code (int64) and rater ids by
    code (object str). ``spans[i].count`` is set to file i's number of records.
    Raises ``DataFormatError`` for a bad row it is sure of, ``Fallback`` otherwise.
    """
    state: _State | None = None
    done = 0
    size_hint = sum(os.path.getsize(x.path) * (8 if x.path.endswith(".gz") else 1) for x in layouts)
    for layout, span in zip(layouts, spans, strict=True):
        first = int(state.st[tk.RECORD]) if state is not None else 0
        try:
            with open(layout.path, "rb") as raw:
                fh = gzip.GzipFile(fileobj=raw) if layout.path.endswith(".gz") else raw

                def report(raw: BinaryIO = raw, done: int = done) -> None:
                    if progress is not None:
                        progress(done + raw.tell())

                args = (state, first, size_hint, report, chunk, initial)
                state = _read_one(fh, layout, *args)  # type: ignore[arg-type]
                done += raw.tell()
        except _READ_ERRORS as exc:
            raise Fallback(str(exc)) from exc
        span.count = int(state.st[tk.RECORD]) - first
    assert state is not None
    st = state.st
    n, n_drop = int(st[tk.N_OUT]), int(st[tk.N_DROPPED])
    out = [_resized(a, n) for a in state.out]
    dropped = _resized(state.dropped, n_drop)
    note_ids = state.note_ids[: int(st[tk.N_NOTES])].copy()
    n_names = int(st[tk.N_NAMES])
    names = pa.LargeStringArray.from_buffers(
        n_names,
        pa.py_buffer(state.name_off[: n_names + 1]),
        pa.py_buffer(state.pool[: int(st[tk.POOL_USED])]),
    )
    rater_ids = np.asarray(names.to_numpy(zero_copy_only=False), dtype=object)
    return out, dropped, note_ids, rater_ids


def _roles(layout: scan.Layout) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Role, bit position and consecutive-bit run length of each header column."""
    canon = {h: c for c, h in layout.present.items()}
    n = len(layout.header)
    roles = np.zeros(n, np.int8)
    bitpos = np.zeros(n, np.int8)
    for i, h in enumerate(layout.header):
        c = canon.get(h)
        if c is not None:
            roles[i] = _ROLE[c]
            bitpos[i] = _BIT.get(c, 0)
    runs = np.zeros(n, np.int8)
    for i in range(n - 2, -1, -1):
        if roles[i] == tk.BIT:
            follows = roles[i + 1] == tk.BIT and bitpos[i + 1] == bitpos[i] + 1
            runs[i] = runs[i + 1] + 1 if follows else 1
    return roles, bitpos, runs


def _fill(fh: BinaryIO, buf: np.ndarray, start: int) -> tuple[int, bool]:
    """Read into ``buf[start:]`` until full or end of file: (bytes in buf, reached the end)."""
    view = memoryview(buf)
    pos = start
    while pos < buf.shape[0]:
        got = fh.readinto(view[pos:])
        if not got:
            return pos, True
        pos += got
    return pos, False


def _read_one(
    fh: BinaryIO,
    layout: scan.Layout,
    state: _State | None,
    first: int,
    size_hint: int,
    progress: Callable[[], None],
    chunk: int,
    initial: int,
) -> _State:
    roles, bitpos, runs = _roles(layout)
    buf = np.empty(chunk, dtype=np.uint8)
    filled, eof = _fill(fh, buf, 0)
    # The header line (already parsed by ``scan.read_header``) is skipped here.
    while True:
        nl = np.flatnonzero(buf[:filled] == 10)
        if nl.shape[0] or eof:
            break
        buf = np.concatenate([buf, np.empty(buf.shape[0], np.uint8)])
        filled, eof = _fill(fh, buf, filled)
    header_end = int(nl[0]) if nl.shape[0] else filled
    if np.any((buf[:header_end] == 34) | (buf[:header_end] == 13)):
        raise Fallback("quoted header")
    if state is None:
        # Rows in the first chunk tell the bytes per row; size the outputs for the whole file.
        per_row = max(filled - header_end, 1) / max(nl.shape[0] - 1, 1)
        state = _State(int(size_hint / per_row * 1.05) + initial, initial)
    st = state.st
    st[tk.POS] = min(header_end + 1, filled)
    while True:
        if eof and st[tk.POS] < filled and buf[filled - 1] != 10:
            # The last line has no newline: give it one, so every line the tokenizer sees ends.
            if filled == buf.shape[0]:
                buf = np.concatenate([buf, np.empty(1, np.uint8)])
            buf[filled] = 10
            filled += 1
        code = state.parse(buf, tk.last_newline(buf, filled) + 1, roles, bitpos, runs)
        if code == tk.NEED_MORE:
            if eof:
                return state
            left = filled - int(st[tk.POS])
            if left == buf.shape[0]:
                buf = np.concatenate([buf, np.empty(buf.shape[0], np.uint8)])
            else:
                buf[:left] = buf[int(st[tk.POS]) : filled]
            filled, eof = _fill(fh, buf, left)
            st[tk.POS] = 0
            progress()
        elif code in (tk.GROW_OUT, tk.GROW_DROPPED, tk.GROW_NOTES, tk.GROW_RATERS, tk.GROW_POOL):
            state.grow(code)
        elif code in (tk.BAD_VALUE, tk.RAGGED):
            raise _row_error(layout, state, buf, code, first)
        else:
            raise Fallback("needs the careful path")


def _row_error(layout: scan.Layout, state: _State, buf: np.ndarray, code: int, first: int) -> DataFormatError:
    """The error for the row the tokenizer stopped on, worded by the careful path's checks."""
    st = state.st
    line = int(st[tk.RECORD]) - first + 2
    if code == tk.RAGGED:
        return DataFormatError(
            scan.ragged_message(len(layout.header), int(st[tk.ERR_FIELDS])), path=layout.path, line=line
        )
    col = int(st[tk.ERR_COL])
    try:
        text = bytes(buf[int(st[tk.ERR_START]) : int(st[tk.ERR_END])]).decode("ascii")
    except UnicodeDecodeError:
        raise Fallback("non-ASCII value") from None
    header_name = layout.header[col]
    canon = {h: c for c, h in layout.present.items()}[header_name]
    msg = scan.check_text(_SPEC.column(canon), text)
    if msg is None:
        raise Fallback(f"value the tokenizer does not take: {text[:40]!r}")
    return DataFormatError(msg, path=layout.path, line=line, field=header_name)

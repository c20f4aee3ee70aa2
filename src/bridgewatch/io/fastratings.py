"""The fast path for ratings TSV files: raw byte chunks through the numba tokenizer.

Ratings files carry no free text, so nearly every real file is plain unquoted ASCII, which
``tokenizer.parse_rows`` reads in one pass straight into the compact arrays ``RawRatings`` holds
(about 25 bytes a rating), through a small read buffer and no per-block intermediate tables.
Plain files are cut into byte ranges parsed on parallel threads and merged in file order
(``segments``: the result is the single pass's). Output arrays are reserved from an estimate
(pages never written cost no memory) and filled in place, so the peak stays near the final size.

Whatever the tokenizer is not sure of (a quote, a carriage return, a blank line, non-ASCII
bytes in a parsed field, a value the slow check would accept) raises ``Fallback``, and the caller
rereads everything with the careful pyarrow path. Bad values it is sure of are worded by
``scan.check_text``, the check the careful path uses, with the file, line and header field.
"""

from __future__ import annotations

import gzip
import os
import sys
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO

import numpy as np
import pyarrow as pa

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.io import formats, heap, scan, segments
from bridgewatch.io import tokenizer as tk

CHUNK = 1 << 20  # read buffer per range (measured: 64 KiB to 4 MiB parse alike)
MIN_SEGMENT = 128 << 10  # smallest range worth a thread (~0.2 ms of parsing)
_DTYPES = (np.int32, np.int32, np.float32, np.int64, np.uint32, np.bool_)
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


class _State:
    """One range's output arrays and id tables, and how to grow them when ``parse_rows`` asks."""

    def __init__(self, out: list[np.ndarray], initial: int) -> None:
        """``out``: the range's region of the shared arrays; ``initial``: starting size of the
        id tables (they grow)."""
        initial = 1 << max(initial - 1, 0).bit_length()  # hash tables need a power of two
        self.out = out
        self.region: int | None = None  # rows left in the region once it overflowed
        self.dropped = np.empty(initial, np.int64)
        self.notes = np.zeros(8 * initial, np.int64)
        self.note_ids = np.empty(initial, np.int64)
        self.raters = np.zeros(8 * initial, np.uint64)
        self.name_off = np.zeros(initial, np.int64)
        self.pool = np.empty(64 * initial, np.uint8)
        self.st = np.zeros(tk.STATE_SIZE, np.int64)

    def release(self, tables: bool) -> None:
        """Let go of the output arrays (views of the shared ones, or spilled rows the merge now
        holds) and, with ``tables``, of the id tables too (once merged)."""
        self.out = []
        if tables:
            for name in ("dropped", "notes", "note_ids", "raters", "name_off", "pool"):
                setattr(self, name, np.empty(0, getattr(self, name).dtype))

    def reserve_notes(self, n: int) -> None:
        """Room for ``n`` note ids."""
        if n > self.note_ids.shape[0]:
            self.note_ids = segments.resized(self.note_ids, max(2 * self.note_ids.shape[0], n))
        size = self.notes.shape[0]
        if 4 * n > size:
            table = np.zeros(max(2 * size, 1 << (4 * n - 1).bit_length()), np.int64)
            tk.rehash_notes(self.notes, table)
            self.notes = table

    def reserve_raters(self, n: int, pool_bytes: int) -> None:
        """Room for ``n`` participant ids and ``pool_bytes`` bytes of their names."""
        if n + 1 > self.name_off.shape[0]:
            self.name_off = segments.resized(self.name_off, max(2 * self.name_off.shape[0], n + 1))
        size = self.raters.shape[0]
        if 4 * n > size:
            table = np.zeros(max(2 * size, 1 << (4 * n - 1).bit_length()), np.uint64)
            tk.rehash_raters(self.raters, table)
            self.raters = table
        if pool_bytes > self.pool.shape[0]:
            self.pool = segments.resized(self.pool, max(2 * self.pool.shape[0] + 4096, pool_bytes))

    def grow(self, code: int) -> None:
        st = self.st
        if code == tk.GROW_OUT:
            if self.region is None:  # the region is full: go on in private arrays
                self.region = int(st[tk.N_OUT])
                st[tk.N_OUT] = 0
                n = max(self.region // 4, 1024)
                self.out = [np.empty(n, a.dtype) for a in self.out]
            else:
                n = int(self.out[0].shape[0] * 1.5) + 1024
                self.out = [segments.resized(a, n) for a in self.out]
        elif code == tk.GROW_DROPPED:
            n = max(2 * self.dropped.shape[0], int(st[tk.N_DROPPED]) + tk.BATCH)
            self.dropped = segments.resized(self.dropped, n)
        elif code == tk.GROW_NOTES:  # (``parse_rows`` wants room for a batch of new ids)
            self.reserve_notes(int(st[tk.N_NOTES]) + tk.BATCH)
        elif code == tk.GROW_RATERS:
            self.reserve_raters(int(st[tk.N_NAMES]) + tk.BATCH, 0)
        elif code == tk.GROW_POOL:
            self.reserve_raters(0, 2 * self.pool.shape[0] + 4096)
        else:
            raise AssertionError(code)
        heap.release()  # the outgrown arrays

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
    num_threads: int | None = None,
    min_segment: int = MIN_SEGMENT,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, pa.LargeStringArray]:
    """Parse plain or gzipped ratings TSVs (layouts already resolved), in parallel byte ranges.

    ``num_threads``: parsing threads (None: one per core); the result does not depend on it.
    ``chunk``: bytes read at a time per range (a longer line grows the buffer); ``initial``:
    starting size of the growable tables; ``min_segment``: smallest range a file is cut into
    (tests make all three tiny to exercise every growth and merge path).

    Returns the six kept-rating arrays (note code, rater code, value, time, tags, population
    flag), ``dropped`` (int64 global record numbers), note ids by code (int64) and participant
    ids by code (arrow strings); codes number ids in first-seen order across the files.
    ``spans[i].count`` is set to file i's number of records.
    Raises ``DataFormatError`` for a bad row it is sure of, ``Fallback`` otherwise.
    """
    threads = max(1, num_threads if num_threads is not None else (os.cpu_count() or 1))
    try:
        plan = segments.plan([x.path for x in layouts], threads, min_segment, initial)
    except _READ_ERRORS as exc:
        raise Fallback(str(exc)) from exc
    shared = [np.empty(sum(s.cap for s in plan), dtype) for dtype in _DTYPES]
    merge = segments.Merge(shared)
    cancel = threading.Event()
    lock = threading.Lock()
    done = [0]

    def report(nbytes: int) -> None:
        with lock:
            done[0] += nbytes
            if progress is not None:
                progress(done[0])

    with ThreadPoolExecutor(max_workers=min(threads, len(plan))) as pool:
        futures = []
        for s in plan:
            region = [a[s.base : s.base + s.cap] for a in shared]
            # The buffer follows the range (small files, small buffers), from 64 KiB to ``chunk``.
            size = (s.stop or os.path.getsize(layouts[s.file].path)) - s.start
            args = (region, min(chunk, max(1 << 16, size)), initial, report, cancel)
            futures.append(pool.submit(_parse_range, s, layouts[s.file], *args))
        try:
            for seg, future in zip(plan, futures, strict=True):
                state, stop = future.result()
                if isinstance(stop, Fallback):
                    raise stop
                if stop is not None:
                    record, message, field = stop
                    line = merge.records_before(seg.file) + record + 2
                    raise DataFormatError(message, path=layouts[seg.file].path, line=line, field=field)
                merge.add(seg, state)
        except BaseException:
            cancel.set()
            raise
    out = merge.rows()
    dropped, counts = merge.records(len(layouts))
    for span, count in zip(spans, counts, strict=True):
        span.count = count
    note_ids, rater_ids = merge.ids()
    heap.release()  # the ranges' id tables and buffers, before the sort allocates
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


def _fill(fh: BinaryIO, buf: np.ndarray, start: int, left: list[int]) -> tuple[int, bool]:
    """Read into ``buf[start:]`` until full, the end of the file or ``left[0]`` more bytes
    (updated): (bytes in buf, reached the end of the range)."""
    view = memoryview(buf)
    pos = start
    while pos < buf.shape[0] and left[0] > 0:
        got = fh.readinto(view[pos : pos + min(buf.shape[0] - pos, left[0])])
        if not got:
            return pos, True
        pos += got
        left[0] -= got
    return pos, left[0] <= 0


def _parse_range(
    seg: segments.Segment,
    layout: scan.Layout,
    out: list[np.ndarray],
    chunk: int,
    initial: int,
    report: Callable[[int], None],
    cancel: threading.Event,
) -> tuple[_State, Fallback | tuple[int, str, str | None] | None]:
    """Parse one byte range (on a worker thread): its state, and why it stopped early if it did
    (``Fallback``, or a bad row as (record in the range, message, header field))."""
    state = _State(out, initial)
    try:
        with open(layout.path, "rb") as raw:
            raw.seek(seg.start)
            fh = gzip.GzipFile(fileobj=raw) if layout.path.endswith(".gz") else raw
            stop = sys.maxsize if seg.stop is None else seg.stop - seg.start
            return state, _read_range(fh, raw, layout, state, seg.start == 0, stop, chunk, report, cancel)
    except _READ_ERRORS as exc:
        return state, Fallback(str(exc))


def _read_range(
    fh: BinaryIO,
    raw: BinaryIO,
    layout: scan.Layout,
    state: _State,
    header: bool,
    nbytes: int,
    chunk: int,
    report: Callable[[int], None],
    cancel: threading.Event,
) -> Fallback | tuple[int, str, str | None] | None:
    roles, bitpos, runs = _roles(layout)
    left = [nbytes]
    done = raw.tell()
    buf = np.empty(chunk, dtype=np.uint8)
    filled, eof = _fill(fh, buf, 0, left)
    st = state.st
    if header:  # skip the header line (already parsed by ``scan.read_header``)
        while True:
            nl = np.flatnonzero(buf[:filled] == 10)
            if nl.shape[0] or eof:
                break
            buf = np.concatenate([buf, np.empty(buf.shape[0], np.uint8)])
            filled, eof = _fill(fh, buf, filled, left)
        header_end = int(nl[0]) if nl.shape[0] else filled
        if np.any((buf[:header_end] == 34) | (buf[:header_end] == 13)):
            return Fallback("quoted header")
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
            report(raw.tell() - done)
            done = raw.tell()
            if eof:
                return None
            if cancel.is_set():
                return Fallback("cancelled")
            keep = filled - int(st[tk.POS])
            if keep == buf.shape[0]:
                buf = np.concatenate([buf, np.empty(buf.shape[0], np.uint8)])
            else:
                buf[:keep] = buf[int(st[tk.POS]) : filled]
            filled, eof = _fill(fh, buf, keep, left)
            st[tk.POS] = 0
        elif code in (tk.GROW_OUT, tk.GROW_DROPPED, tk.GROW_NOTES, tk.GROW_RATERS, tk.GROW_POOL):
            state.grow(code)
        elif code in (tk.BAD_VALUE, tk.RAGGED):
            return _row_error(layout, state, buf, code)
        else:
            return Fallback("needs the careful path")


def _row_error(
    layout: scan.Layout, state: _State, buf: np.ndarray, code: int
) -> Fallback | tuple[int, str, str | None]:
    """The row the tokenizer stopped on, worded by the careful path's checks: (record in the
    range, message, header field)."""
    st = state.st
    record = int(st[tk.RECORD])
    if code == tk.RAGGED:
        return record, scan.ragged_message(len(layout.header), int(st[tk.ERR_FIELDS])), None
    col = int(st[tk.ERR_COL])
    try:
        text = bytes(buf[int(st[tk.ERR_START]) : int(st[tk.ERR_END])]).decode("ascii")
    except UnicodeDecodeError:
        return Fallback("non-ASCII value")
    header_name = layout.header[col]
    canon = {h: c for c, h in layout.present.items()}[header_name]
    msg = scan.check_text(_SPEC.column(canon), text)
    if msg is None:
        return Fallback(f"value the tokenizer does not take: {text[:40]!r}")
    return record, msg, header_name

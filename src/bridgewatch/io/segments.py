"""Splitting ratings files into byte ranges parsed in parallel, and merging them back in order.

A plain TSV is cut into ranges that start right after a newline (gzipped files stay whole), so
each range holds whole rows and the tokenizer can parse it alone, on its own thread (the numba
kernels release the GIL), with its own id tables and first-seen codes. Each range writes its rows
into its own region of shared output arrays, sized from the bytes per row of the file's first
rows; a range that outgrows its region spills into private arrays.

The merge is serial and in file order, so the result is the one a single pass gives, whatever the
number of threads: range k's ids are looked up in the tables of ranges 0..k-1 (new ones get the
next codes, in range k's first-seen order), and its rows are moved down to close the gaps between
regions (``move``) and their codes rewritten (``recode``), in place unless a spill got in the way.
Error line numbers add the records of the earlier ranges of the same file. The single-range read
is the merge kernels' slow twin: tests hold every split to its result.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass

import numba as nb
import numpy as np
import pyarrow as pa

from bridgewatch.io import tokenizer as tk

SAMPLE = 1 << 20  # bytes read from a file's start to learn its bytes per row
_HI32 = np.uint64(0xFFFFFFFF00000000)
_LO32 = np.uint64(0xFFFFFFFF)


@dataclass
class Segment:
    """Rows of one file between two byte offsets; ``start`` 0 means the header comes first."""

    file: int
    start: int
    stop: int | None  # None: to the end of the file
    cap: int  # rows its region of the shared arrays holds
    base: int = 0  # where that region starts


def _bytes_per_row(path: str, gz: bool) -> tuple[float, float]:
    """(bytes per row, decompressed bytes per file byte) from the start of the file."""
    with open(path, "rb") as raw:
        if gz:
            with gzip.GzipFile(fileobj=raw) as fh:
                head = fh.read(SAMPLE)
                ratio = len(head) / max(raw.tell(), 1)
        else:
            head, ratio = raw.read(SAMPLE), 1.0
    data = np.frombuffer(head, np.uint8)
    nl = np.flatnonzero(data == 10)
    if nl.shape[0] < 2:
        return max(float(data.shape[0]), 1.0), ratio
    return float(nl[-1] - nl[0]) / float(nl.shape[0] - 1), ratio


def _line_start(fh, offset: int, size: int) -> int:  # type: ignore[no-untyped-def]
    """Offset just past the first newline at or after ``offset`` (``size`` if none)."""
    pos = offset
    while pos < size:
        fh.seek(pos)
        block = fh.read(1 << 16)
        if not block:
            break
        i = block.find(b"\n")
        if i >= 0:
            return pos + i + 1
        pos += len(block)
    return size


def plan(paths: list[str], threads: int, min_segment: int, slack: int) -> list[Segment]:
    """Byte ranges for ``paths``: plain files larger than ``min_segment`` are split so that the
    ranges of all files come near ``threads`` equal shares; each range gets a region of its
    estimated rows plus 5% (25% for gzip, whose size is a guess from the compression of the first
    ``SAMPLE`` bytes) and ``slack``. Rows past the estimate spill (correct, a little slower); rows
    short of it leave pages never written, which cost no memory."""
    sizes = [os.path.getsize(p) for p in paths]
    share = max(min_segment, sum(sizes) // max(threads, 1) + 1)
    segments: list[Segment] = []
    for i, (path, size) in enumerate(zip(paths, sizes, strict=True)):
        gz = path.endswith(".gz")
        per_row, ratio = _bytes_per_row(path, gz)
        parts = 1 if gz else max(1, min(threads, round(size / share)))
        starts = [0]
        if parts > 1:
            with open(path, "rb") as fh:
                header_end = _line_start(fh, 0, size)
                for j in range(1, parts):
                    s = _line_start(fh, max(j * size // parts - 1, header_end), size)
                    if starts[-1] < s < size:
                        starts.append(s)
        bounds = [*starts[1:], None]
        for start, stop in zip(starts, bounds, strict=True):
            nbytes = ((size if stop is None else stop) - start) * ratio
            cap = int(nbytes / per_row * (1.25 if gz else 1.05)) + slack
            segments.append(Segment(i, start, stop, cap))
    base = 0
    for seg in segments:
        seg.base = base
        base += seg.cap
    return segments


@nb.njit(cache=True, nogil=True)
def merge_notes(table, ids, n, local_ids, c, local_n, code_map):  # type: ignore[no-untyped-def]
    """Add a range's note ids (``local_ids[c:local_n]``, its first-seen order) to the merged
    table (``tokenizer.note_slot`` layout); ``code_map[local code]`` gets the merged code.
    Returns (merged count, next local code): it stops early, like ``parse_rows``, when the
    table or ``ids`` must grow for one more id."""
    while c < local_n:
        key = local_ids[c]
        s = tk.note_slot(table, key)
        if table[2 * s + 1] == 0:
            if 4 * (n + 1) > table.shape[0] or n >= ids.shape[0]:
                break
            table[2 * s] = key
            table[2 * s + 1] = n + 1
            ids[n] = key
            n += 1
        code_map[c] = table[2 * s + 1] - 1
        c += 1
    return n, c


@nb.njit(cache=True, nogil=True)
def rater_keys(table, n):  # type: ignore[no-untyped-def]
    """The 96-bit keys (h1, high half of h2) of codes 0..n-1 in a ``tokenizer.rater_slot`` table."""
    h1 = np.empty(n, np.uint64)
    h2 = np.empty(n, np.uint64)
    for i in range(table.shape[0] // 2):
        v = table[2 * i + 1]
        if v != 0:
            code = np.int64(v & _LO32) - 1
            h1[code] = table[2 * i]
            h2[code] = v & _HI32
    return h1, h2


@nb.njit(cache=True, nogil=True)
def merge_raters(table, off, pool, n, used, h1, h2, local_off, local_pool, c, code_map):  # type: ignore[no-untyped-def]
    """Add a range's participant ids (keys ``h1``/``h2`` from ``rater_keys``, names in
    ``local_pool``) from local code ``c`` on to the merged table and name pool, in the range's
    first-seen order; ``code_map[local code]`` gets the merged code. Returns (merged count, pool
    bytes used, next local code): it stops early when the table, ``off`` or ``pool`` must grow."""
    while c < h1.shape[0]:
        s = tk.rater_slot(table, h1[c], h2[c])
        if table[2 * s + 1] == 0:
            a, b = local_off[c], local_off[c + 1]
            if 4 * (n + 1) > table.shape[0] or n + 2 > off.shape[0] or used + (b - a) > pool.shape[0]:
                break
            for k in range(b - a):
                pool[used + k] = local_pool[a + k]
            used += b - a
            table[2 * s] = h1[c]
            table[2 * s + 1] = h2[c] | np.uint64(n + 1)
            off[n + 1] = used
            n += 1
        code_map[c] = np.int64(table[2 * s + 1] & _LO32) - 1
        c += 1
    return n, used, c


@nb.njit(cache=True, nogil=True)
def move(dst, at, src, start, n):  # type: ignore[no-untyped-def]
    """``dst[at:at+n] = src[start:start+n]``; in place (``dst`` is ``src``) when ``at <= start``."""
    for i in range(n):
        dst[at + i] = src[start + i]


def move_numpy(dst: np.ndarray, at: int, src: np.ndarray, start: int, n: int) -> None:
    """Twin of ``move``."""
    dst[at : at + n] = src[start : start + n].copy()


@nb.njit(cache=True, nogil=True)
def recode(codes, start, n, code_map):  # type: ignore[no-untyped-def]
    """``codes[start:start+n] = code_map[codes[start:start+n]]`` in place."""
    for i in range(start, start + n):
        codes[i] = code_map[codes[i]]


def recode_numpy(codes: np.ndarray, start: int, n: int, code_map: np.ndarray) -> None:
    """Twin of ``recode``."""
    codes[start : start + n] = code_map[codes[start : start + n]]


def resized(arr: np.ndarray, n: int) -> np.ndarray:
    """``arr`` shrunk to ``n`` elements in place when numpy owns it (realloc), else copied into
    a new array (``ndarray.resize`` zero-fills what it adds: pages that need not be written)."""
    if n <= arr.shape[0] and arr.flags.owndata and arr.base is None:
        arr.resize(n, refcheck=False)
        return arr
    out = np.empty(n, dtype=arr.dtype)
    k = min(n, arr.shape[0])
    out[:k] = arr[:k]
    return out


@dataclass
class _Part:
    """What the merge keeps of a parsed range (its id tables are merged and let go)."""

    seg: Segment
    region: int  # rows in its region of the shared arrays
    private: list[np.ndarray] | None  # its spilled rows, if the region overflowed
    spilled: int
    dropped: np.ndarray  # int64 records in the range (of rows without a value)
    records: int
    note_map: np.ndarray | None  # int32 local code -> merged code (None: the same)
    rater_map: np.ndarray | None


def _merge_tables(t, state) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[no-untyped-def]
    """Fold ``state``'s id tables into ``t``'s (both ``fastratings._State``), growing ``t``'s
    as the kernels ask; the local -> merged code maps."""
    st, tst = state.st, t.st
    n_notes, n_names = int(st[tk.N_NOTES]), int(st[tk.N_NAMES])
    note_map = np.empty(n_notes, np.int32)
    c = 0
    while True:
        tst[tk.N_NOTES], c = merge_notes(
            t.notes, t.note_ids, tst[tk.N_NOTES], state.note_ids, c, n_notes, note_map
        )
        if c == n_notes:
            break
        t.reserve_notes(int(tst[tk.N_NOTES]) + 1)
    rater_map = np.empty(n_names, np.int32)
    h1, h2 = rater_keys(state.raters, n_names)
    c = 0
    while True:
        tst[tk.N_NAMES], tst[tk.POOL_USED], c = merge_raters(
            t.raters, t.name_off, t.pool, tst[tk.N_NAMES], tst[tk.POOL_USED],
            h1, h2, state.name_off, state.pool, c, rater_map,
        )  # fmt: skip
        if c == n_names:
            break
        size = int(state.name_off[c + 1] - state.name_off[c])
        t.reserve_raters(int(tst[tk.N_NAMES]) + 1, int(tst[tk.POOL_USED]) + size)
    return note_map, rater_map


class Merge:
    """Ranges' results, added in file order, folded into one set of tables and arrays."""

    def __init__(self, shared: list[np.ndarray]) -> None:
        self.shared = shared
        self.tables = None  # the first range's state: its tables become the merged ones
        self.parts: list[_Part] = []

    def add(self, seg: Segment, state) -> None:  # type: ignore[no-untyped-def]
        """Merge ``state`` (a ``fastratings._State`` that parsed ``seg``) after the earlier ranges."""
        st = state.st
        note_map = rater_map = None
        if self.tables is None:
            self.tables = state
        else:
            note_map, rater_map = _merge_tables(self.tables, state)
        spilled = state.region is not None
        self.parts.append(
            _Part(
                seg,
                state.region if spilled else int(st[tk.N_OUT]),
                state.out if spilled else None,
                int(st[tk.N_OUT]) if spilled else 0,
                state.dropped[: int(st[tk.N_DROPPED])].copy(),
                int(st[tk.RECORD]),
                note_map,
                rater_map,
            )
        )
        state.release(tables=state is not self.tables)  # no views of the shared arrays outlive this

    def rows(self) -> list[np.ndarray]:
        """The six kept-rating arrays, rows in file order and merged codes.

        Rows move down over the gaps the regions left, in place, unless a range that spilled
        would overwrite a later region before it moved: then into new arrays, one at a time."""
        total = sum(p.region + p.spilled for p in self.parts)
        ends = [p.seg.base for p in self.parts[1:]] + [self.shared[0].shape[0]]
        pos, in_place = 0, True
        for p, end in zip(self.parts, ends, strict=True):
            pos += p.region + p.spilled
            in_place = in_place and pos <= end
        out = []
        for col in range(len(self.shared)):
            src = self.shared[col]
            dst = src if in_place else np.empty(total, src.dtype)
            at = 0
            for p in self.parts:
                if dst is not src or at != p.seg.base:
                    move(dst, at, src, p.seg.base, p.region)
                if p.private is not None:
                    move(dst, at + p.region, p.private[col], 0, p.spilled)
                code_map = (p.note_map, p.rater_map)[col] if col < 2 else None
                if code_map is not None:
                    recode(dst, at, p.region + p.spilled, code_map)
                at += p.region + p.spilled
            self.shared[col] = np.empty(0, src.dtype)
            del src
            out.append(resized(dst, total) if in_place else dst)
            for p in self.parts:
                if p.private is not None:
                    p.private[col] = np.empty(0, dst.dtype)
        return out

    def records_before(self, file: int) -> int:
        """Records of the ranges merged so far that belong to ``file`` (for line numbers)."""
        return sum(p.records for p in self.parts if p.seg.file == file)

    def records(self, n_files: int) -> tuple[np.ndarray, list[int]]:
        """int64 global record numbers of the rows dropped for having no value, and the
        number of records of each file."""
        counts = [0] * n_files
        dropped, first = [], 0
        for p in self.parts:
            dropped.append(p.dropped + first)
            first += p.records
            counts[p.seg.file] += p.records
        return np.concatenate(dropped) if dropped else np.empty(0, np.int64), counts

    def ids(self) -> tuple[np.ndarray, pa.LargeStringArray]:
        """Note ids (int64) and participant ids (arrow strings) by merged code."""
        t = self.tables
        st = t.st
        n_names = int(st[tk.N_NAMES])
        names = pa.LargeStringArray.from_buffers(
            n_names,
            pa.py_buffer(t.name_off[: n_names + 1]),
            pa.py_buffer(t.pool[: int(st[tk.POOL_USED])]),
        )
        return t.note_ids[: int(st[tk.N_NOTES])].copy(), names

"""The compact in-memory form of ratings that every scoring kernel reads.

Ratings are kept as parallel arrays with small dtypes (int32 ids, float32 values, uint32 tag bits)
sorted by (note, rater), plus a permutation that orders them by (rater, note). Kernels walk either
order through CSR-style ``indptr`` arrays without copying the ratings. Memory is about 25 bytes a
rating, so X's 206M public ratings fit in ~5 GiB.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bridgewatch import schema
from bridgewatch.io.kernels import stable_order

# The per-rating columns (R long): what ``RatingMatrix.release`` hands back when none is named.
RATING_COLUMNS = ("note", "rater", "value", "created_at", "tags", "population_sampled", "by_rater")
# The per-rating columns no fit's epochs read (``RatingMatrix.release_unfitted``).
UNFITTED_COLUMNS = ("created_at", "tags", "population_sampled")


@dataclass(frozen=True, eq=False)
class RatingMatrix:
    """Ratings as arrays, sorted by note then rater.

    Shapes: R ratings, N notes, U raters (participants who rated).

    - ``note``: int32[R], dense note index into ``note_ids``.
    - ``rater``: int32[R], dense rater index into ``rater_ids``.
    - ``value``: float32[R], helpfulness 0.0 / 0.5 / 1.0 (§1.6).
    - ``created_at``: int64[R], rating time in ms since the epoch.
    - ``tags``: uint32[R], bit ``schema.TAG_BIT[tag]`` set when the rating carries that tag.
    - ``population_sampled``: bool[R], ``ratingSourceBucketed == POPULATION_SAMPLED``.
    - ``note_ids``: int64[N], sorted ascending; ``rater_ids``: object[U] of str, sorted ascending.
    - ``note_indptr``: int64[N+1], ratings of note n are ``[note_indptr[n], note_indptr[n+1])``.
    - ``by_rater``: int32[R] (int64 from 2**31 ratings on, ``index_dtype``), permutation
      ordering ratings by (rater, note); ``rater_indptr``: int64[U+1] over that order.
    """

    note: np.ndarray
    rater: np.ndarray
    value: np.ndarray
    created_at: np.ndarray
    tags: np.ndarray
    population_sampled: np.ndarray
    note_ids: np.ndarray
    rater_ids: np.ndarray
    note_indptr: np.ndarray = field(repr=False)
    by_rater: np.ndarray = field(repr=False)
    rater_indptr: np.ndarray = field(repr=False)

    @property
    def n_ratings(self) -> int:
        return int(self.note.shape[0])

    @property
    def n_notes(self) -> int:
        return int(self.note_ids.shape[0])

    @property
    def n_raters(self) -> int:
        return int(self.rater_ids.shape[0])

    def has_tag(self, tag: str) -> np.ndarray:
        """bool[R]: which ratings carry ``tag`` (a name from ``schema.RATING_TAGS``)."""
        return (self.tags >> np.uint32(schema.TAG_BIT[tag])) & np.uint32(1) == 1

    def note_index(self, note_ids: np.ndarray) -> np.ndarray:
        """Dense indices of ``note_ids`` (int64), -1 where a note has no ratings here."""
        return _lookup(self.note_ids, np.asarray(note_ids, dtype=np.int64))

    def rater_index(self, participant_ids: np.ndarray) -> np.ndarray:
        """Dense indices of participant id strings, -1 where a participant never rated."""
        query = np.asarray(participant_ids, dtype=object)
        index = _id_index(self.rater_ids)
        if index is None:
            return _lookup(self.rater_ids, query)
        return index.get_indexer(query).astype(np.int64)

    def subset(self, keep: np.ndarray) -> RatingMatrix:
        """A new matrix with only the ratings where ``keep`` (bool[R]) is true.

        Id maps are kept whole so indices stay comparable across subsets of one dataset. The
        kept ratings stay in (note, rater) order, so the by-rater order is a stable counting sort
        of their raters (``stable_order``: O(K + U), nothing of length R besides ``keep``); the
        columns are gathered at the kept positions only, a chunk at a time. A scorer's scope is a
        few percent of the ratings (``scope_space``): restricting the matrix's own by-rater order
        instead mapped all R positions (``kept_order``)."""
        keep = np.asarray(keep, dtype=bool)
        if keep.shape != (self.n_ratings,):
            raise ValueError(f"subset: keep has shape {keep.shape}, the matrix {self.n_ratings} ratings")
        at = np.flatnonzero(keep)
        names = ("note", "rater", "value", "created_at", "tags", "population_sampled")
        columns = [getattr(self, name) for name in names]
        out = [np.empty(at.shape[0], dtype=c.dtype) for c in columns]
        # A chunk of the matrix at a time, each chunk's pages handed back once gathered: mapped
        # from the cache, the columns (25 bytes a rating) never sit whole under the gather.
        for lo, hi in streamed(columns, self.n_ratings):
            a, b = np.searchsorted(at, (lo, hi))
            for column, gathered in zip(columns, out, strict=True):
                gathered[a:b] = column[at[a:b]]
        del at
        note, rater, value, created_at, tags, population_sampled = out
        return RatingMatrix(
            note=note,
            rater=rater,
            value=value,
            created_at=created_at,
            tags=tags,
            population_sampled=population_sampled,
            note_ids=self.note_ids,
            rater_ids=self.rater_ids,
            note_indptr=counts_indptr(note, self.n_notes),
            by_rater=stable_order(rater, self.n_raters),
            rater_indptr=counts_indptr(rater, self.n_raters),
        )

    def on_notes(self, rows: np.ndarray) -> RatingMatrix:
        """The ratings of the notes ``rows`` (bool[N]) selects, in a note space of those notes only
        (``note_ids[rows]``, same order; raters kept whole): what an incremental final run scores,
        so every per-note array of its scorers holds the rescored notes, not every note."""
        rows = np.asarray(rows, dtype=bool)
        if rows.shape != (self.n_notes,):
            raise ValueError(f"on_notes: rows has shape {rows.shape}, the matrix {self.n_notes} notes")
        sub = self.subset(rows[self.note])
        dense = (np.cumsum(rows, dtype=np.int64) - 1).astype(self.note.dtype)
        note = dense[sub.note]
        n = int(rows.sum())
        return replace(sub, note=note, note_ids=self.note_ids[rows], note_indptr=counts_indptr(note, n))

    def release(self, *names: str) -> int:
        """Hand the resident pages of these columns (none named: every per-rating column) back to
        the page cache when they are read-only file mappings (the columnar cache maps them so,
        ``io.cache``); the next read faults them back in, from the page cache while the machine
        has room for it, else from disk. Returns the bytes released (0 for columns held in memory).

        Why: once read, every page of a column stays resident, though most passes read a few
        columns: ``created_at`` (8 bytes a rating, 1.5 GiB at X's scale) is read by high-volume
        tagging, the helpfulness validity, the harassment labels and contributor counts, not by
        the fits; the topic model reads no rating at all. Every fit releases the columns no fit
        reads before its epochs (``release_unfitted``), and the pipeline releases them all before
        the topic model, so that their arrays need not sit on top of columns they do not read.
        """
        return sum(release_pages(getattr(self, name)) for name in names or RATING_COLUMNS)

    def release_unfitted(self) -> int:
        """``release`` the columns no fit's epochs read (``UNFITTED_COLUMNS``): each fit calls it
        once its layout is built, after the last read of them that it makes itself (the
        harassment labels, the low-diligence targets and weights read ``tags``/``created_at``).
        At X's scale ``created_at`` and ``tags`` are 12 bytes a rating, 2.3 GiB, which the reads
        of the passes before a fit would otherwise leave resident through its epochs."""
        return self.release(*UNFITTED_COLUMNS)

    def nbytes(self) -> int:
        """Bytes held by the rating arrays and indexes (id maps excluded)."""
        arrays = (
            self.note,
            self.rater,
            self.value,
            self.created_at,
            self.tags,
            self.population_sampled,
            self.note_indptr,
            self.by_rater,
            self.rater_indptr,
        )
        return int(sum(a.nbytes for a in arrays))


# Hash indexes of rater id arrays, kept per array object: every scorer of a run looks raters up
# by string id, and a binary search over Python strings costs far more than one hash table built
# once (subsets share their parent's ``rater_ids``, so one entry serves them all).
_ID_INDEXES: dict[int, tuple[np.ndarray, pd.Index]] = {}
_MAX_ID_INDEXES = 8


def _id_index(keys: np.ndarray) -> pd.Index | None:
    """A cached ``pd.Index`` over ``keys`` (sorted unique ids), None when they are not unique."""
    hit = _ID_INDEXES.get(id(keys))
    if hit is not None and hit[0] is keys:
        return hit[1]
    index = pd.Index(keys, dtype=object)  # the ids' own str objects: no Arrow copy, no second set
    if not index.is_unique:
        return None
    if len(_ID_INDEXES) >= _MAX_ID_INDEXES:
        _ID_INDEXES.pop(next(iter(_ID_INDEXES)))
    _ID_INDEXES[id(keys)] = (keys, index)
    return index


def id_objects(ids: np.ndarray | pd.Series) -> np.ndarray:
    """object array of participant ids, a missing one as the text "nan" (what ``astype(str)``
    made of it, which the id unions below reproduce)."""
    out = np.asarray(ids, dtype=object)
    missing = pd.isna(out)
    if missing.any():
        out = out.copy()
        out[missing] = "nan"
    return out


def union_with_raters(rater_ids: np.ndarray, *others: np.ndarray | pd.Series) -> np.ndarray:
    """object[P]: the sorted union of ``rater_ids`` (a matrix's: sorted, unique str) and the ids
    of ``others`` (any order, repeats allowed; ``id_objects``), in the order ``np.unique`` gives
    their strings.

    Why not ``np.unique`` of one numpy string array: X's ids are 64 characters, 256 bytes each
    as numpy text, and that union of raters, authors and enrolled participants held ~2.5 GiB of
    copies at X's scale. Most ids are raters': the others are looked up in the raters' hash
    index, and only those it lacks are sorted and placed among them.
    """
    rater_ids = np.asarray(rater_ids, dtype=object)
    index = _id_index(rater_ids)
    if index is None:  # not unique: no hash index to look in
        return np.unique(np.concatenate([id_objects(rater_ids), *map(id_objects, others)]))
    rest = [np.zeros(0, dtype=object)]
    for more in others:
        ids = id_objects(more)
        rest.append(ids[index.get_indexer(ids) < 0])
    extra = np.unique(np.concatenate(rest))
    return np.insert(rater_ids, np.searchsorted(rater_ids, extra), extra)


def first_positions(space: pd.Series | np.ndarray, values: pd.Series | np.ndarray) -> np.ndarray:
    """int64[len(values)]: the position of each of ``values`` (text ids: str objects or a text
    column) in ``space``, its first occurrence there, -1 where absent (or missing).

    Why arrow's hash lookup: it hashes the text columns as they are stored, without a Python
    string object per id; ~6x less CPU than ``pd.Index(space).get_indexer(values)`` (or a
    reindex) over a table of every rater, a fixed cost of each incremental run."""
    found = pc.index_in(_text(values), value_set=_text(space))
    return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)


def _text(values: pd.Series | np.ndarray) -> pa.Array:
    if isinstance(values, np.ndarray):
        values = pd.Series(values, dtype=object)
    return pa.array(values, type=pa.string())


def release_pages(arr: np.ndarray) -> int:
    """Drop ``arr``'s resident pages when it is a read-only file mapping (``RatingMatrix.release``);
    the bytes released, 0 for an array held in memory."""
    mapping = _read_only_mapping(arr)
    if mapping is None:
        return 0
    mapping.madvise(mmap.MADV_DONTNEED)
    return int(arr.nbytes)


def release_range(arr: np.ndarray, lo: int, hi: int) -> int:
    """Drop the resident pages lying wholly inside ``arr[lo:hi]`` (a 1-D read-only file
    mapping; an array held in memory is left alone); the bytes released. For a pass that streams
    a column it reads once: handed back chunk by chunk, the column never sits whole in memory."""
    mapping = _read_only_mapping(arr)
    if mapping is None or hi <= lo:
        return 0
    origin = np.frombuffer(mapping, dtype=np.uint8).ctypes.data  # the mapping's first byte
    at = arr.ctypes.data - origin
    page = mmap.PAGESIZE
    first = -(-(at + lo * arr.itemsize) // page) * page  # whole pages only: a neighbour's stay
    last = (at + hi * arr.itemsize) // page * page
    if last <= first:
        return 0
    mapping.madvise(mmap.MADV_DONTNEED, first, last - first)
    return last - first


STREAM_CHUNK = 1 << 22  # ratings a streamed pass reads between hand-backs (16 MiB of int32)


def streamed(columns: Sequence[np.ndarray], n: int, chunk: int = STREAM_CHUNK) -> Iterator[tuple[int, int]]:
    """The ranges ``[lo, hi)`` of a pass over ``n`` ratings, a chunk at a time; once the caller is
    done with a range, the pages of ``columns`` (per-rating arrays the pass reads for the last
    time) lying in it go back to the page cache (``release_range``), and at the end any page the
    chunks straddled. For a pass that reads columns once: they never sit whole in the process,
    where at X's scale each is 0.8-1.6 GiB on top of what the pass builds. Arrays held in memory
    are left alone."""
    for lo in range(0, n, chunk):
        hi = min(lo + chunk, n)
        yield lo, hi
        for column in columns:
            release_range(column, lo, hi)
    for column in columns:
        release_pages(column)


def _read_only_mapping(arr: np.ndarray) -> mmap.mmap | None:
    """The ``mmap`` under a read-only memory-mapped array (``np.load(..., mmap_mode="r")``), else
    None. Only a read-only one: dropping the pages of a writable (copy-on-write) mapping would
    drop what was written to them."""
    if arr.flags.writeable:
        return None
    base = arr
    while base is not None:
        mapping = getattr(base, "_mmap", None)
        if isinstance(mapping, mmap.mmap):
            return mapping
        base = getattr(base, "base", None)
    return None


def counts_indptr(index: np.ndarray, n: int) -> np.ndarray:
    """int64[n+1] CSR offsets of ``index`` (int[R], sorted or not): row i owns ``[out[i], out[i+1])``."""
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=n), out=out[1:])
    return out


def index_dtype(n: int) -> type[np.signedinteger]:
    """The integer type of positions among ``n`` ratings: int32 while it holds them (X's 206M
    ratings: 4 bytes a rating less in every permutation, rank and position array), else int64."""
    return np.int32 if n < 2**31 else np.int64


def kept_order(order: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """``index_dtype``[K]: ``order`` (a permutation of R positions) restricted to the positions
    where ``keep`` (bool[R], K true) holds, renumbered 0..K-1 in their original order.

    A stable sort of the kept ratings by the same key gives exactly this permutation, since
    selecting ratings changes neither their keys nor their relative order.
    """
    new_pos = np.cumsum(keep, dtype=index_dtype(keep.shape[0]))
    new_pos -= 1
    return new_pos[order[keep[order]]]


def _lookup(sorted_keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    if sorted_keys.shape[0] == 0:
        return np.full(query.shape[0], -1, dtype=np.int64)
    pos = np.searchsorted(sorted_keys, query)
    pos = np.minimum(pos, sorted_keys.shape[0] - 1)
    found = sorted_keys[pos] == query
    return np.where(found, pos, -1).astype(np.int64)


def build_rating_matrix(
    *,
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    created_at: np.ndarray,
    tags: np.ndarray,
    population_sampled: np.ndarray,
    note_ids: np.ndarray,
    rater_ids: np.ndarray,
) -> RatingMatrix:
    """Sort ratings by (note, rater), build both CSR indexes and freeze the result.

    ``note``/``rater`` are dense indices into ``note_ids`` (sorted int64) and ``rater_ids``
    (sorted str). The sort is stable, so equal keys keep their input order (determinism).
    """
    n_notes = int(note_ids.shape[0])
    n_raters = int(rater_ids.shape[0])
    note = np.asarray(note, dtype=np.int32)
    rater = np.asarray(rater, dtype=np.int32)
    key = note.astype(np.int64) * max(n_raters, 1) + rater
    order = np.argsort(key, kind="stable")
    note = note[order]
    rater = rater[order]
    note_indptr = counts_indptr(note, n_notes)
    rkey = rater.astype(np.int64) * max(n_notes, 1) + note
    by_rater = np.argsort(rkey, kind="stable").astype(index_dtype(rkey.shape[0]))
    rater_indptr = counts_indptr(rater, n_raters)
    return RatingMatrix(
        note=note,
        rater=rater,
        value=np.asarray(value, dtype=np.float32)[order],
        created_at=np.asarray(created_at, dtype=np.int64)[order],
        tags=np.asarray(tags, dtype=np.uint32)[order],
        population_sampled=np.asarray(population_sampled, dtype=bool)[order],
        note_ids=np.asarray(note_ids, dtype=np.int64),
        rater_ids=np.asarray(rater_ids, dtype=object),
        note_indptr=note_indptr,
        by_rater=by_rater,
        rater_indptr=rater_indptr,
    )

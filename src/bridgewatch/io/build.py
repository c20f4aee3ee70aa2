"""Sorting parsed ratings into a ``RatingMatrix`` while resolving duplicate (rater, note) pairs.

Same result as ``matrix.build_rating_matrix`` (stable sort by (note, rater), CSR indexes both
ways) but it sorts with O(R) counting passes (``kernels``) and, when no pair repeats (the usual
case), permutes the parsed arrays in place, so the peak stays near the final size; when pairs
repeat it gathers one array at a time and drops the duplicates (rules in ``dataset``'s module
docstring).
"""

from __future__ import annotations

import numpy as np

from bridgewatch.io import heap
from bridgewatch.io.kernels import pair_order, permute_in_place, repeated_pair, stable_order
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.io.ratings import RawRatings


def build_deduplicated(
    raw: RawRatings,
    note_ids: np.ndarray,
    rater_ids: np.ndarray,
    warnings: list[str],
) -> RatingMatrix:
    """``raw.note_code``/``raw.rater_code`` must hold int32[R] dense indices into ``note_ids``
    (int64[N], sorted) and ``rater_ids`` (object[U], sorted), in file order.

    The arrays of ``raw`` are taken over (``raw`` is left with empty arrays).
    """
    n_notes = int(note_ids.shape[0])
    n_raters = int(rater_ids.shape[0])
    r = raw.note_code.shape[0]
    index = np.int32 if r < 2**31 - 1 else np.int64
    heap.release()  # what mapping the ids freed, before the sort's two index arrays
    temp = np.empty(r, dtype=index)
    order = pair_order(raw.note_code, raw.rater_code, n_notes, n_raters, temp, np.empty(r, dtype=index))
    del temp
    names = ("note_code", "rater_code", "value", "created_at", "tags", "population_sampled")
    if repeated_pair(raw.note_code, raw.rater_code, order):
        note, rater, cols = _gather_deduplicated(raw, order, warnings)
    else:  # the usual case: sort the arrays where they are, no column is held twice
        cols = {name: getattr(raw, name) for name in names}
        permute_in_place(order, *cols.values())
        note, rater = cols.pop("note_code"), cols.pop("rater_code")
    for name in names:  # ``raw`` lets go of its arrays
        setattr(raw, name, np.empty(0, getattr(raw, name).dtype))
    del order
    heap.release()
    note_indptr = np.zeros(n_notes + 1, dtype=np.int64)
    np.cumsum(np.bincount(note, minlength=n_notes), out=note_indptr[1:])
    rater_indptr = np.zeros(n_raters + 1, dtype=np.int64)
    np.cumsum(np.bincount(rater, minlength=n_raters), out=rater_indptr[1:])
    # Ratings are sorted by (note, rater): a stable sort by rater gives (rater, note) order.
    by_rater = stable_order(rater, n_raters)
    return RatingMatrix(
        note=note,
        rater=rater,
        value=cols["value"],
        created_at=cols["created_at"],
        tags=cols["tags"],
        population_sampled=cols["population_sampled"],
        note_ids=np.asarray(note_ids, dtype=np.int64),
        rater_ids=np.asarray(rater_ids, dtype=object),
        note_indptr=note_indptr,
        by_rater=by_rater,
        rater_indptr=rater_indptr,
    )


def _gather_deduplicated(
    raw: RawRatings, order: np.ndarray, warnings: list[str]
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Sorted note and rater indices and the other columns with repeated pairs resolved,
    gathered one column at a time, each freed from ``raw`` once copied."""
    note = raw.note_code[order]
    raw.note_code = np.empty(0, np.int32)
    rater = raw.rater_code[order]
    raw.rater_code = np.empty(0, np.int32)
    same = (note[1:] == note[:-1]) & (rater[1:] == rater[:-1])
    keep = _drop_duplicates(raw, order, same, warnings)
    del same
    order, note, rater = order[keep], note[keep], rater[keep]
    cols = {}
    for name in ("value", "created_at", "tags", "population_sampled"):
        arr = getattr(raw, name)
        setattr(raw, name, np.empty(0, arr.dtype))  # not arr[:0]: a view would keep arr alive
        cols[name] = arr[order]
        del arr
    return note, rater, cols


def _drop_duplicates(raw: RawRatings, order: np.ndarray, same: np.ndarray, warnings: list[str]) -> np.ndarray:
    """bool[R] mask over ``order`` (sorted by key, file order within a key) of ratings to keep.

    ``same[i]``: sorted positions i and i+1 share (note, rater). Exact duplicates (same value,
    time, tags, source) keep the first row; pairs left with different values keep the latest by
    createdAtMillis, the later row in file order on ties.
    """
    starts = np.concatenate([[True], ~same])
    member = np.concatenate([same, [False]]) | np.concatenate([[False], same])
    pos = np.flatnonzero(member)
    gid = (np.cumsum(starts) - 1)[pos]
    orig = order[pos]
    value, created = raw.value[orig], raw.created_at[orig]
    tags, pop = raw.tags[orig], raw.population_sampled[orig]
    # Exact duplicates: equal on every parsed field to an earlier row of the same pair.
    srt = np.lexsort((orig, pop, tags, created, value, gid))
    eq = np.zeros(srt.shape[0], dtype=bool)
    eq[1:] = (
        (gid[srt][1:] == gid[srt][:-1])
        & (value[srt][1:] == value[srt][:-1])
        & (created[srt][1:] == created[srt][:-1])
        & (tags[srt][1:] == tags[srt][:-1])
        & (pop[srt][1:] == pop[srt][:-1])
    )
    exact = np.zeros(pos.shape[0], dtype=bool)
    exact[srt[eq]] = True
    drop = exact.copy()
    # Conflicts: pairs with more than one distinct rating left.
    left = ~exact
    counts = np.bincount(gid[left], minlength=int(gid[-1]) + 1)
    conflict = left & (counts[gid] > 1)
    n_pairs = int((counts > 1).sum())
    if conflict.any():
        idx = np.flatnonzero(conflict)
        srt2 = idx[np.lexsort((orig[idx], created[idx], gid[idx]))]
        last = np.ones(srt2.shape[0], dtype=bool)
        last[:-1] = gid[srt2][1:] != gid[srt2][:-1]
        drop[srt2[~last]] = True
    if exact.any():
        first = int(orig[exact].min())
        warnings.append(
            f"dropped {int(exact.sum())} exact duplicate rating row(s); first at "
            f"{raw.where(raw.record_of(first))}"
        )
    if n_pairs:
        # Name the first row that repeats a pair already seen (second occurrence in file order).
        c_orig = orig[conflict]
        c_gid = gid[conflict]
        first_in_group = np.full(int(gid[-1]) + 1, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first_in_group, c_gid, c_orig)
        repeats = c_orig[c_orig != first_in_group[c_gid]]
        first = int(repeats.min())
        warnings.append(
            f"{n_pairs} (rater, note) pair(s) rated more than once with different values; kept the latest "
            f"by createdAtMillis (later row on ties); first repeat at {raw.where(raw.record_of(first))}"
        )
    keep = np.ones(order.shape[0], dtype=bool)
    keep[pos[drop]] = False
    return keep

"""The kept ratings of a selection gathered from the matrix into a fit's arrays.

What ``mf.build_problem`` and the fits' layouts read: the compact note and rater indices, values
and both CSR orders of the ratings a bool[R] keeps (``compact_problem``, ``problem_shape``), the
same ratings in rater order read straight from the matrix (``kept_by_rater``), and the note,
rater and tags of a selection (``note_rater_tags``). Each is one or two parallel passes in the
forms of ``rating_pass`` (serial below ``PARALLEL_FROM``), blocks of consecutive ratings writing
at offsets counted first, so the arrays are in rating order and byte-identical to the numpy
gathers they replace, whatever the thread count.
"""

from __future__ import annotations

import numba
import numpy as np

from bridgewatch.io.matrix import RatingMatrix, index_dtype
from bridgewatch.scoring.rating_pass import (
    _note_counts,
    _rater_counts,
    both_forms,
    histogram_blocks,
    pass_form,
)

# Fixed number of blocks for the compaction's two passes: the output does not depend on it, it
# only needs to exceed the thread count.
_BLOCKS = 64


@both_forms
def _block_offsets(keep, blocks):
    """int64[blocks+1]: where each block of consecutive ratings starts writing its kept ones, so
    that a parallel selection lands in rating order."""
    r = keep.shape[0]
    step = (r + blocks - 1) // blocks
    counts = np.zeros(blocks + 1, dtype=np.int64)
    for b in numba.prange(blocks):
        c = 0
        for i in range(b * step, min(r, (b + 1) * step)):
            if keep[i]:
                c += 1
        counts[b + 1] = c
    for b in range(blocks):
        counts[b + 1] += counts[b]
    return counts


@both_forms
def _compact(keep, note, rater, value, note_map, rater_map, counts, pos_like):
    """The kept ratings' positions, compact note/rater indices and float64 values, in order, plus
    each kept rating's new position (``new_pos``; undefined where not kept). Positions have the
    dtype of ``pos_like`` (``matrix.index_dtype``); ``counts`` is ``_block_offsets``."""
    r = keep.shape[0]
    blocks = counts.shape[0] - 1
    step = (r + blocks - 1) // blocks
    k = counts[blocks]
    rating_full = np.empty(k, dtype=pos_like.dtype)
    note_out = np.empty(k, dtype=np.int32)
    rater_out = np.empty(k, dtype=np.int32)
    value_out = np.empty(k, dtype=np.float64)
    new_pos = np.empty(r, dtype=pos_like.dtype)
    for b in numba.prange(blocks):
        j = counts[b]
        for i in range(b * step, min(r, (b + 1) * step)):
            if keep[i]:
                rating_full[j] = i
                note_out[j] = note_map[note[i]]
                rater_out[j] = rater_map[rater[i]]
                value_out[j] = np.float64(value[i])
                new_pos[i] = j
                j += 1
    return rating_full, note_out, rater_out, value_out, new_pos


@both_forms
def _select3(keep, a, b, c, counts):
    r = keep.shape[0]
    blocks = counts.shape[0] - 1
    step = (r + blocks - 1) // blocks
    out_a = np.empty(counts[blocks], dtype=a.dtype)
    out_b = np.empty(counts[blocks], dtype=b.dtype)
    out_c = np.empty(counts[blocks], dtype=c.dtype)
    for k in numba.prange(blocks):
        j = counts[k]
        for i in range(k * step, min(r, (k + 1) * step)):
            if keep[i]:
                out_a[j] = a[i]
                out_b[j] = b[i]
                out_c[j] = c[i]
                j += 1
    return out_a, out_b, out_c


def note_rater_tags(matrix: RatingMatrix, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(matrix.note[keep], matrix.rater[keep], matrix.tags[keep])`` in one parallel pass: what
    each scorer's tag-outlier, "incorrect" and diligence inputs select."""
    keep = np.asarray(keep, dtype=np.bool_)
    counts = pass_form(_block_offsets, matrix.n_ratings)(keep, _BLOCKS)
    return pass_form(_select3, matrix.n_ratings)(keep, matrix.note, matrix.rater, matrix.tags, counts)


@both_forms
def _kept_order(indptr, order, keep, new_pos, offsets):
    """``new_pos[order[keep[order]]]``, written rater by rater from ``offsets`` (int64[U+1])."""
    out = np.empty(offsets[offsets.shape[0] - 1], dtype=new_pos.dtype)
    n = indptr.shape[0] - 1
    for u in numba.prange(n):
        j = offsets[u]
        for p in range(indptr[u], indptr[u + 1]):
            i = order[p]
            if keep[i]:
                out[j] = new_pos[i]
                j += 1
    return out


def _cumulative(counts: np.ndarray) -> np.ndarray:
    out = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=out[1:])
    return out


@numba.njit(cache=True, nogil=True)
def _kept_index(counts):
    """For the entries with ``counts`` > 0, in order: each entry's new index (only kept entries'
    are read), the kept entries' offsets into the compacted arrays and their old indices."""
    n = counts.shape[0]
    new_index = np.empty(n, dtype=np.int64)
    n_kept = 0
    for i in range(n):
        if counts[i] > 0:
            n_kept += 1
        new_index[i] = n_kept - 1
    indptr = np.zeros(n_kept + 1, dtype=np.int64)
    full = np.empty(n_kept, dtype=np.int64)
    for i in range(n):
        if counts[i] > 0:
            j = new_index[i]
            full[j] = i
            indptr[j + 1] = indptr[j] + counts[i]
    return new_index, indptr, full


@numba.njit(cache=True, nogil=True)
def _counts_serial(keep, note, rater, n_notes, n_raters):
    """Kept ratings per note and per rater in one pass on one thread (``_compact_serial``'s first)."""
    per_note = np.zeros(n_notes, dtype=np.int64)
    per_rater = np.zeros(n_raters, dtype=np.int64)
    for i in range(keep.shape[0]):
        if keep[i]:
            per_note[note[i]] += 1
            per_rater[rater[i]] += 1
    return per_note, per_rater


@numba.njit(cache=True, nogil=True)
def _fill_serial(keep, note, rater, value, note_map, rater_map, rater_indptr, pos_like):
    """``_compact_serial``'s second pass, for a selection already counted (``problem_shape``):
    (note, rater, value, by_rater, rating_full), the same arrays."""
    k = rater_indptr[rater_indptr.shape[0] - 1]
    rating_full = np.empty(k, dtype=pos_like.dtype)
    note_out = np.empty(k, dtype=np.int32)
    rater_out = np.empty(k, dtype=np.int32)
    value_out = np.empty(k, dtype=np.float64)
    by_rater = np.empty(k, dtype=pos_like.dtype)
    fill = rater_indptr[:-1].copy()
    j = 0
    for i in range(keep.shape[0]):
        if keep[i]:
            rating_full[j] = i
            note_out[j] = note_map[note[i]]
            u = rater_map[rater[i]]
            rater_out[j] = u
            value_out[j] = np.float64(value[i])
            by_rater[fill[u]] = j
            fill[u] += 1
            j += 1
    return note_out, rater_out, value_out, by_rater, rating_full


@numba.njit(cache=True, nogil=True)
def _compact_serial(keep, note, rater, value, n_notes, n_raters, pos_like):
    """``compact_problem``'s arrays in two passes on one thread: counts, then the kept ratings
    in order, each also dropped into its rater's slot (a counting sort, ``_fill_serial``). The
    matrix's rater order lists each rater's ratings by position (a stable sort by rater, kept by
    subsets), so the slots fill in the order ``_kept_order`` reads them, without its walk of all
    R ratings."""
    per_note, per_rater = _counts_serial(keep, note, rater, n_notes, n_raters)
    note_map, note_indptr, note_full = _kept_index(per_note)
    rater_map, rater_indptr, rater_full = _kept_index(per_rater)
    note_out, rater_out, value_out, by_rater, rating_full = _fill_serial(
        keep, note, rater, value, note_map, rater_map, rater_indptr, pos_like
    )
    return (
        note_out, rater_out, value_out, note_indptr, by_rater, rater_indptr, note_full, rater_full,
        rating_full,
    )  # fmt: skip


def _full_map(full: np.ndarray, n: int) -> np.ndarray:
    """int64[n]: the compact index of each full index listed in ``full`` (0 elsewhere: unread)."""
    out = np.zeros(n, dtype=np.int64)
    out[full] = np.arange(full.shape[0], dtype=np.int64)
    return out


def problem_shape(matrix: RatingMatrix, keep: np.ndarray) -> dict[str, np.ndarray]:
    """The per-note and per-rater arrays of ``mf.MFProblem`` for the ratings ``keep`` (bool[R]):
    ``note_indptr``/``rater_indptr`` (CSR offsets over the present notes / raters) and
    ``note_full``/``rater_full`` (compact → full index); counting passes only, nothing of length R."""
    keep = np.asarray(keep, dtype=np.bool_)
    r = matrix.n_ratings
    if pass_form(_note_counts, r) is _note_counts[0]:  # one thread: both counts in one pass
        per_note, per_rater = _counts_serial(keep, matrix.note, matrix.rater, matrix.n_notes, matrix.n_raters)
    else:
        per_note = pass_form(_note_counts, r)(matrix.note_indptr, keep)
        per_rater = pass_form(_rater_counts, r)(matrix.rater, keep, matrix.n_raters, histogram_blocks(r))
    note_present = per_note > 0
    rater_present = per_rater > 0
    return {
        "note_indptr": _cumulative(per_note[note_present]),
        "rater_indptr": _cumulative(per_rater[rater_present]),
        "note_full": np.flatnonzero(note_present).astype(np.int64),
        "rater_full": np.flatnonzero(rater_present).astype(np.int64),
    }


@both_forms
def _by_rater_kept(indptr, order, kept, note, value, bits, note_map, rater_full, offsets, out_value):
    """The note (uint32, compact index) of each kept rating in (rater, note) order, and its
    ``value`` into ``out_value``: the value itself, or when ``bits`` is not 0 whether it has any
    of those bits."""
    out_note = np.empty(offsets[offsets.shape[0] - 1], dtype=np.uint32)
    for c in numba.prange(rater_full.shape[0]):
        u = rater_full[c]
        j = offsets[c]
        for p in range(indptr[u], indptr[u + 1]):
            i = np.int64(order[p])
            if (kept[i >> 3] >> (7 - (i & 7))) & 1:
                out_note[j] = note_map[note[i]]
                if bits != 0:
                    out_value[j] = (np.uint64(value[i]) & bits) != 0
                else:
                    out_value[j] = value[i]
                j += 1
    return out_note


def kept_by_rater(
    matrix: RatingMatrix,
    kept: np.ndarray,
    note_full: np.ndarray,
    rater_full: np.ndarray,
    rater_indptr: np.ndarray,
    value: np.ndarray | None = None,
    bits: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(note uint32[K], value[K] in the matrix's dtype) of the K ratings ``kept`` (``np.packbits``
    of bool[R]) selects, grouped
    by rater in (rater, note) order, notes numbered as in ``note_full`` (compact → full index):
    what ``mf_adam_kernels.adam_layout`` makes of a fit's compact arrays, read straight from the
    matrix's ``by_rater`` order, so a fit need not hold its ratings in note order as well.

    ``rater_full``/``rater_indptr`` are ``problem_shape``'s. Each rater's ratings in ``by_rater``
    follow the matrix's (note, rater) order, the order a stable grouping of the compact arrays
    keeps, so the arrays are those ``adam_layout`` builds, value for value. ``value``: another
    per-rating column of the matrix to read instead of ``matrix.value`` (the diligence fit reads
    ``matrix.tags``). ``bits`` (not 0): the second array is bool[K], whether each value has any
    of these bits: a fit's target gathered as 1 byte a rating, not as its 4-byte tags and the
    4-byte ``tags & bits`` a mask of them would allocate (~1.3 GiB by size at X's scale, in the
    gather where the Gaussian scorers' diligence fits peak).
    """
    note_map = np.zeros(matrix.n_notes, dtype=np.int64)
    note_map[note_full] = np.arange(note_full.shape[0], dtype=np.int64)
    column = matrix.value if value is None else value
    out = np.empty(int(rater_indptr[-1]), dtype=np.bool_ if bits else column.dtype)
    note = pass_form(_by_rater_kept, matrix.n_ratings)(
        matrix.rater_indptr, matrix.by_rater, kept, matrix.note, column, np.uint64(bits),
        note_map, rater_full, rater_indptr, out,
    )  # fmt: skip
    return note, out


def compact_problem(
    matrix: RatingMatrix, keep: np.ndarray, shape: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """The arrays of ``mf.MFProblem`` for the ratings ``keep`` (bool[R]), identical to those the
    numpy form (flatnonzero, gathers, ``counts_indptr``, ``kept_order``) builds. ``shape``: this
    selection's ``problem_shape``, when known, spares its two counting passes."""
    keep = np.asarray(keep, dtype=np.bool_)
    r = matrix.n_ratings
    if pass_form(_note_counts, r) is _note_counts[0]:  # one thread: the fused two-pass form
        names = ("note", "rater", "value", "note_indptr", "by_rater", "rater_indptr", "note_full",
                 "rater_full", "rating_full")  # fmt: skip
        if shape is not None:  # counted already: the second pass alone
            arrays = _fill_serial(
                keep, matrix.note, matrix.rater, matrix.value, _full_map(shape["note_full"], matrix.n_notes),
                _full_map(shape["rater_full"], matrix.n_raters), shape["rater_indptr"],
                np.empty(0, dtype=index_dtype(r)),
            )  # fmt: skip
            arrays = (*arrays[:3], shape["note_indptr"], arrays[3], shape["rater_indptr"], shape["note_full"],
                      shape["rater_full"], arrays[4])  # fmt: skip
        else:
            arrays = _compact_serial(
                keep, matrix.note, matrix.rater, matrix.value, matrix.n_notes, matrix.n_raters,
                np.empty(0, dtype=index_dtype(r)),
            )  # fmt: skip
        return dict(zip(names, arrays, strict=True))
    if shape is None:
        per_note = pass_form(_note_counts, r)(matrix.note_indptr, keep)
        per_rater = pass_form(_rater_counts, r)(matrix.rater, keep, matrix.n_raters, histogram_blocks(r))
    else:
        per_note = np.zeros(matrix.n_notes, dtype=np.int64)
        per_note[shape["note_full"]] = np.diff(shape["note_indptr"])
        per_rater = np.zeros(matrix.n_raters, dtype=np.int64)
        per_rater[shape["rater_full"]] = np.diff(shape["rater_indptr"])
    note_present = per_note > 0
    rater_present = per_rater > 0
    note_map = np.cumsum(note_present) - 1
    rater_map = np.cumsum(rater_present) - 1
    rating_full, note, rater, value, new_pos = pass_form(_compact, r)(
        keep, matrix.note, matrix.rater, matrix.value, note_map, rater_map,
        pass_form(_block_offsets, r)(keep, _BLOCKS),
        np.empty(0, dtype=index_dtype(r)),
    )  # fmt: skip
    by_rater = pass_form(_kept_order, r)(
        matrix.rater_indptr, matrix.by_rater, keep, new_pos, _cumulative(per_rater)
    )
    del new_pos
    return {
        "note": note,
        "rater": rater,
        "value": value,
        "note_indptr": _cumulative(per_note[note_present]),
        "by_rater": by_rater,
        "rater_indptr": _cumulative(per_rater[rater_present]),
        "note_full": np.flatnonzero(note_present).astype(np.int64),
        "rater_full": np.flatnonzero(rater_present).astype(np.int64),
        "rating_full": rating_full,
    }

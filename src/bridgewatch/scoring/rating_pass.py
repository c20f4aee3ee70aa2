"""The per-rating passes every scorer makes, as parallel numba kernels over the matrix's two orders.

Each of the ~30 scorers of a run walks all R ratings several times outside its fits: the count
filters (§2.5), the compaction of its ratings into a fit's CSR arrays (``mf.build_problem``) and
the selections its tag filters and diligence model read; its helpfulness pass (§4.1–4.2) makes
its own with the forms defined here (``helpfulness_pass``). Written as chains of numpy
expressions these run on one core and make a bool, int or float temporary of length R per step.
Here each is one or two passes, in parallel over notes (``note_indptr``: a note's ratings are
contiguous) or over blocks of consecutive ratings (per-rater counts: one histogram per block,
summed), with no temporaries of length R beyond the outputs.

Results are byte-identical to the numpy forms they replace and do not depend on the thread count:
every count is an integer, every output element is written by exactly one thread, and the one
floating-point sum (the penalty) runs serially in rating order, the order ``np.bincount`` adds in.
"""

from __future__ import annotations

import numba
import numpy as np

from bridgewatch.io.matrix import RatingMatrix, index_dtype
from bridgewatch.scoring.threads import twin_kernels

# Fixed number of blocks for the compaction's two passes: the output does not depend on it, it
# only needs to exceed the thread count.
_BLOCKS = 64


# Passes over fewer ratings than this run on one thread. Each pass is a few nanoseconds a rating;
# on a shared machine a parallel region's barrier (waking the second thread, then waiting for
# it) costs more CPU than it saves below a few million ratings, as for the small fits
# (``threads.SERIAL_BELOW``). The two forms give identical results.
PARALLEL_FROM = 4_000_000


both_forms = twin_kernels()  # (serial, parallel) forms of a pass; ``pass_form`` picks one


def pass_form(kernel, n_ratings: int):
    """The kernel's form for a pass over ``n_ratings`` ratings."""
    return kernel[1] if n_ratings >= PARALLEL_FROM and numba.get_num_threads() > 1 else kernel[0]


@numba.njit(cache=True, nogil=True)
def _kept_in(keep: np.ndarray, lo: int, hi: int) -> int:
    """How many of ``keep[lo:hi]`` are set: a note's kept ratings, for the passes over notes."""
    c = 0
    for p in range(lo, hi):
        if keep[p]:
            c += 1
    return c


@both_forms
def _note_counts(indptr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        out[i] = _kept_in(keep, indptr[i], indptr[i + 1])
    return out


@both_forms
def _rater_counts(rater: np.ndarray, keep: np.ndarray, n_raters: int, blocks: int) -> np.ndarray:
    """Kept ratings per rater: one histogram per block of consecutive ratings, then their sum
    (integers: the same for any blocking). Reads the ratings in order, unlike a walk of the
    rater order, whose random reads cost more than the counting."""
    r = keep.shape[0]
    step = (r + blocks - 1) // blocks
    part = np.zeros((blocks, n_raters), dtype=np.int32)  # < 2^31 ratings
    for b in numba.prange(blocks):
        for i in range(b * step, min(r, (b + 1) * step)):
            if keep[i]:
                part[b, rater[i]] += 1
    out = np.zeros(n_raters, dtype=np.int64)
    for u in numba.prange(n_raters):
        c = 0
        for b in range(blocks):
            c += part[b, u]
        out[u] = c
    return out


@both_forms
def _rater_counts_since(rater, created_at, keep, all_kept, cutoffs, n_raters, blocks):
    """Per block of consecutive ratings and cutoff w, its kept ratings per rater made after
    ``cutoffs[w]`` (``all_kept``: every rating, ``keep`` unread); the caller adds the blocks up."""
    r = rater.shape[0]
    w_n = cutoffs.shape[0]
    step = (r + blocks - 1) // blocks
    part = np.zeros((blocks, w_n, n_raters), dtype=np.int32)  # < 2^31 ratings
    for b in numba.prange(blocks):
        for i in range(b * step, min(r, (b + 1) * step)):
            if all_kept or keep[i]:
                t = created_at[i]
                for w in range(w_n):
                    if t > cutoffs[w]:
                        part[b, w, rater[i]] += 1
    return part


@both_forms
def _newest_kept(created_at, keep, blocks):
    """The latest ``created_at`` of a kept rating (int64 min when none): a max, so any blocking
    gives it."""
    r = keep.shape[0]
    step = (r + blocks - 1) // blocks
    part = np.full(blocks, np.iinfo(np.int64).min, dtype=np.int64)
    for b in numba.prange(blocks):
        best = np.iinfo(np.int64).min
        for i in range(b * step, min(r, (b + 1) * step)):
            if keep[i] and created_at[i] > best:
                best = created_at[i]
        part[b] = best
    return part.max()


def rater_counts_since(matrix: RatingMatrix, keep: np.ndarray | None, cutoffs: np.ndarray) -> np.ndarray:
    """int64[W, U]: per cutoff (int64 ms), the kept ratings (None: all) each rater made after
    it; ``np.bincount(matrix.rater[keep & (created_at > cutoff)])`` for each, in one pass and
    without a gathered copy of the columns (at X's scale the gathers and masks of high-volume
    tagging held ~5 GiB)."""
    r = matrix.n_ratings
    all_kept = keep is None
    keep_arr = np.zeros(0, dtype=np.bool_) if all_kept else np.asarray(keep, dtype=np.bool_)
    part = pass_form(_rater_counts_since, r)(
        matrix.rater, np.asarray(matrix.created_at, dtype=np.int64), keep_arr, all_kept,
        np.asarray(cutoffs, dtype=np.int64), matrix.n_raters, histogram_blocks(r),
    )  # fmt: skip
    return part.sum(axis=0, dtype=np.int64)  # integers: any blocking gives the same


def newest_kept(matrix: RatingMatrix, keep: np.ndarray | None) -> int | None:
    """The latest ``created_at`` among the kept ratings (None: all), None when none is kept."""
    if keep is None:
        return int(matrix.created_at.max()) if matrix.n_ratings else None
    r = matrix.n_ratings
    best = pass_form(_newest_kept, r)(
        np.asarray(matrix.created_at, dtype=np.int64), np.asarray(keep, dtype=np.bool_), histogram_blocks(r)
    )
    return None if best == np.iinfo(np.int64).min else int(best)


@both_forms
def _drop_raters(rater: np.ndarray, keep: np.ndarray, counts: np.ndarray, min_count: int) -> None:
    """In place: clear ``keep`` on the ratings of raters with fewer than ``min_count``."""
    for i in numba.prange(keep.shape[0]):
        if keep[i] and counts[rater[i]] < min_count:
            keep[i] = False


def histogram_blocks(n_ratings: int) -> int:
    """Histogram blocks for the rater counts: one per thread (any number gives the same counts)."""
    return max(1, numba.get_num_threads()) if n_ratings >= PARALLEL_FROM else 1


@both_forms
def _drop_notes(indptr: np.ndarray, keep: np.ndarray, min_count: int) -> None:
    """In place: clear ``keep`` on every note with fewer than ``min_count`` kept ratings."""
    n = indptr.shape[0] - 1
    for i in numba.prange(n):
        if _kept_in(keep, indptr[i], indptr[i + 1]) < min_count:
            for p in range(indptr[i], indptr[i + 1]):
                keep[p] = False


def note_counts(matrix: RatingMatrix, keep: np.ndarray) -> np.ndarray:
    """int64[N]: kept ratings per note, ``np.bincount(matrix.note[keep], minlength=N)``."""
    r = matrix.n_ratings
    return pass_form(_note_counts, r)(matrix.note_indptr, np.asarray(keep, dtype=np.bool_))


def note_counts_by(matrix: RatingMatrix, keep: np.ndarray, raters: np.ndarray) -> np.ndarray:
    """int64[N]: kept ratings per note by the raters ``raters`` (bool[U]) marks,
    ``note_counts(matrix, keep & raters[matrix.rater])`` without the two bool[R] that chain makes
    (0.19 GiB each at X's 206M ratings)."""
    return pass_form(_note_counts_by, matrix.n_ratings)(
        matrix.note_indptr, np.asarray(keep, dtype=np.bool_), matrix.rater, np.asarray(raters, dtype=np.bool_)
    )


@both_forms
def _note_counts_by(indptr, keep, rater, raters):
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        c = 0
        for p in range(indptr[i], indptr[i + 1]):
            if keep[p] and raters[rater[p]]:
                c += 1
        out[i] = c
    return out


def rater_counts(matrix: RatingMatrix, keep: np.ndarray) -> np.ndarray:
    """int64[U]: kept ratings per rater, ``np.bincount(matrix.rater[keep], minlength=U)``."""
    r = matrix.n_ratings
    return pass_form(_rater_counts, r)(
        matrix.rater, np.asarray(keep, dtype=np.bool_), matrix.n_raters, histogram_blocks(r)
    )


def rater_side_counts(
    note: np.ndarray,
    rater: np.ndarray,
    factor: np.ndarray,
    n_notes: int,
    *,
    rating_ok: np.ndarray | None = None,
    rater_ok: np.ndarray | None = None,
    note_ok: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(int64[N] ratings by raters with factor < 0, int64[N] by raters with factor ≥ 0) per
    note; raters without a factor (NaN) count on neither side. ``note``, ``rater``: per rating
    (a matrix's own arrays); ``factor``: per rater; the optional masks keep ratings (bool[R]),
    raters (bool[U]) and notes (bool[N]). One pass, no per-rating array: the gathered numpy
    form (factor per rating, masks, the masked notes) held ~10–27 bytes a rating."""
    empty = np.zeros(0, dtype=np.bool_)

    def mask(values: np.ndarray | None) -> np.ndarray:
        return empty if values is None else np.asarray(values, dtype=np.bool_)

    return _side_counts(note, rater, np.asarray(factor), mask(rating_ok), mask(rater_ok), mask(note_ok),
                        int(n_notes))  # fmt: skip


@numba.njit(cache=True, nogil=True)
def _side_counts(note, rater, factor, rating_ok, rater_ok, note_ok, n_notes):
    neg = np.zeros(n_notes, dtype=np.int64)
    pos = np.zeros(n_notes, dtype=np.int64)
    for i in range(note.shape[0]):
        if rating_ok.shape[0] and not rating_ok[i]:
            continue
        u = rater[i]
        n = note[i]
        if (rater_ok.shape[0] and not rater_ok[u]) or (note_ok.shape[0] and not note_ok[n]):
            continue
        f = factor[u]
        if f < 0:
            neg[n] += 1
        elif f >= 0:
            pos[n] += 1
    return neg, pos


def any_rater_in(rater: np.ndarray, keep: np.ndarray, raters: np.ndarray) -> bool:
    """Whether any rating where ``keep`` (bool[R]) is by a rater ``raters`` (bool[U]) marks:
    ``raters[rater[keep]].any()`` without the gathered copies (5 bytes a kept rating)."""
    return _any_rater_in(rater, np.asarray(keep, dtype=np.bool_), np.asarray(raters, dtype=np.bool_)) >= 0


@numba.njit(cache=True, nogil=True)
def _any_rater_in(rater, keep, raters):
    """Index of the first such rating, -1 when none (numba compiles no generator into ``any``)."""
    for i in range(rater.shape[0]):
        if keep[i] and raters[rater[i]]:
            return i
    return -1


def count_filter(matrix: RatingMatrix, keep: np.ndarray, min_per_note: int, min_per_rater: int) -> np.ndarray:
    """bool[R]: ``preprocess.count_filter`` (notes, then raters, then notes once more), in place on
    one copy of ``keep``."""
    out = np.array(keep, dtype=np.bool_, copy=True)
    r = matrix.n_ratings
    pass_form(_drop_notes, r)(matrix.note_indptr, out, min_per_note)
    if min_per_rater > 0:
        counts = pass_form(_rater_counts, r)(matrix.rater, out, matrix.n_raters, histogram_blocks(r))
        pass_form(_drop_raters, r)(matrix.rater, out, counts, min_per_rater)
        pass_form(_drop_notes, r)(matrix.note_indptr, out, min_per_note)
    return out


def final_round(matrix: RatingMatrix, keep: np.ndarray, min_per_note: int, raters: np.ndarray) -> np.ndarray:
    """bool[R]: ``count_filter(matrix, keep, min_per_note, 0) & raters[matrix.rater]`` — a final
    round's ratings: notes with enough ``keep``-ed ratings, then only those by ``raters`` (bool[U]).

    One pass and one output. The chain made the filter's copy, the gathered rater flags and their
    AND: three bool[R] at once over the caller's scope (0.19 GiB each at X's 206M ratings), where
    the final fits and the Gaussian passes start. The decisions are integer counts, so the bits
    are the chain's."""
    out = np.empty(matrix.n_ratings, dtype=np.bool_)
    pass_form(_final_round, matrix.n_ratings)(
        matrix.note_indptr, np.asarray(keep, dtype=np.bool_), matrix.rater,
        np.asarray(raters, dtype=np.bool_), min_per_note, out,
    )  # fmt: skip
    return out


@both_forms
def _final_round(indptr, keep, rater, raters, min_count, out):
    n = indptr.shape[0] - 1
    for i in numba.prange(n):
        enough = _kept_in(keep, indptr[i], indptr[i + 1]) >= min_count
        for p in range(indptr[i], indptr[i + 1]):
            out[p] = enough and keep[p] and raters[rater[p]]


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

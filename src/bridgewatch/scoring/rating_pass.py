"""The per-rating passes every scorer makes, as parallel numba kernels over the matrix's two orders.

Each of the ~30 scorers of a run walks all R ratings several times outside its fits: the count
filters (§2.5), the counts its filters and rules read, and the compaction of its ratings into a
fit's arrays (``rating_gather``, on the forms defined here); its helpfulness pass (§4.1–4.2)
makes its own with them too (``helpfulness_pass``). Written as chains of numpy
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

from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.scoring.threads import twin_kernels

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

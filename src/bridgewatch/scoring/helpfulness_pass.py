"""The helpfulness pass's per-rating kernels (§4.1–4.2): each rating's validity outcome, its
counts per rater, and the harassment penalty per rater.

They follow ``rating_pass``'s rules (serial and parallel forms chosen by ``pass_form``, per-rater
counts as one histogram per block of ratings, summed), so results are byte-identical to the numpy
forms they replace and do not depend on the thread count; the penalty, the one floating-point
sum, runs serially in rating order, the order ``np.bincount`` adds in.
"""

from __future__ import annotations

import itertools

import numba
import numpy as np

from bridgewatch.io.matrix import RatingMatrix, release_range
from bridgewatch.scoring.rating_pass import both_forms, histogram_blocks, pass_form

VALID_BLOCK = 1 << 24  # ratings of the notes the validity pass reads between hand-backs
# ``helpfulness.ValidRatings``' codes: a valid rating's class (0: not valid)
INVALID, SUCCESS_HELPFUL, SUCCESS_NOT_HELPFUL, FAIL_HELPFUL, FAIL_NOT_HELPFUL = 0, 1, 2, 3, 4


@numba.njit(cache=True, inline="always")
def _mark_valid(p, v, crh, crnh, code):
    """Rating ``p`` (value ``v``) on a CRH / CRNH note: HELPFUL and NOT_HELPFUL ratings are valid
    (§4.1) and agree or disagree with the status; SOMEWHAT_HELPFUL ones are neither."""
    if v == 1.0:
        code[p] = SUCCESS_HELPFUL if crh else FAIL_NOT_HELPFUL
    elif v == 0.0:
        code[p] = SUCCESS_NOT_HELPFUL if crnh else FAIL_HELPFUL


@both_forms
def _valid(
    indptr, keep, created_at, value, note_created, note_latest, note_status,
    window, launch, first_n, crh_code, crnh_code,
):  # fmt: skip
    r = keep.shape[0]
    code = np.zeros(r, dtype=np.int8)
    n = indptr.shape[0] - 1
    for i in numba.prange(n):
        a, b = indptr[i], indptr[i + 1]
        created = note_created[i]
        latest = note_latest[i]
        latest_none = np.isnan(latest)
        new_note = created >= launch
        old_note = (not new_note) and not np.isnan(created)
        st = note_status[i]
        crh = st == crh_code
        crnh = st == crnh_code
        if not (crh or crnh) or not (new_note or old_note):
            continue
        if old_note:
            # Only the first ``first_n`` candidates by time count (ties in rating order).
            cand = np.empty(b - a, dtype=np.int64)
            c = 0
            for p in range(a, b):
                if keep[p] and np.float64(created_at[p]) - created < window:
                    cand[c] = p
                    c += 1
            cand = cand[:c]
            if c > first_n:
                times = created_at[cand]
                cand = cand[np.argsort(times, kind="mergesort")[:first_n]]
            for p in cand:
                _mark_valid(p, value[p], crh, crnh, code)
            continue
        for p in range(a, b):
            if not keep[p]:
                continue
            t = np.float64(created_at[p])
            if not (t - created < window):
                continue
            if not (t < latest or latest_none):
                continue
            _mark_valid(p, value[p], crh, crnh, code)
    return code


def valid_rating_codes(
    matrix: RatingMatrix,
    keep: np.ndarray,
    note_created: np.ndarray,
    note_latest_non_nmr: np.ndarray,
    note_status: np.ndarray,
    *,
    window: float,
    launch: float,
    first_n: int,
    crh: int,
    crnh: int,
) -> np.ndarray:
    """int8[R]: each rating's §4.1 outcome code (``helpfulness.ValidRatings``), one parallel pass
    over the notes, a block of notes at a time (``VALID_BLOCK`` ratings or so): each block's
    rating times, read here for the last time before the next pass that needs them, go back to
    the page cache once it is done (``release_range``), so that the column (8 bytes a rating,
    1.5 GiB at X's scale) never sits whole under the pass. A note's outcome depends on its own
    ratings only, so the codes are the same for any blocking."""
    keep = np.asarray(keep, dtype=np.bool_)
    created = np.asarray(note_created, dtype=np.float64)
    latest = np.asarray(note_latest_non_nmr, dtype=np.float64)
    status = np.asarray(note_status, dtype=np.int8)
    indptr, times = matrix.note_indptr, matrix.created_at
    kernel = pass_form(_valid, matrix.n_ratings)
    code = np.zeros(matrix.n_ratings, dtype=np.int8)
    starts = np.searchsorted(indptr, np.arange(0, matrix.n_ratings, VALID_BLOCK), side="right") - 1
    bounds = np.unique(np.concatenate([[0], starts, [matrix.n_notes]]))
    for a, b in itertools.pairwise(bounds):
        lo, hi = int(indptr[a]), int(indptr[b])
        code[lo:hi] = kernel(
            indptr[a : b + 1] - lo, keep[lo:hi], times[lo:hi], matrix.value[lo:hi], created[a:b], latest[a:b],
            status[a:b], float(window), float(launch), int(first_n), crh, crnh,
        )  # fmt: skip
        release_range(times, lo, hi)
    return code


@both_forms
def _rater_code_counts(rater, code, n_codes, n_raters, blocks):
    """Per block of consecutive ratings, its ratings per (code, rater); the caller adds them up."""
    r = rater.shape[0]
    step = (r + blocks - 1) // blocks
    part = np.zeros((blocks, n_codes + 1, n_raters), dtype=np.int32)  # < 2^31 ratings
    for b in numba.prange(blocks):
        for i in range(b * step, min(r, (b + 1) * step)):
            k = code[i]
            if k != 0:
                part[b, k, rater[i]] += 1
    return part


def rater_code_counts(matrix: RatingMatrix, code: np.ndarray, n_codes: int) -> np.ndarray:
    """int64[n_codes, U]: per rater, its ratings of each nonzero code 1..n_codes (int8[R]; 0 is
    not counted), in one pass."""
    r = matrix.n_ratings
    part = pass_form(_rater_code_counts, r)(
        matrix.rater, np.asarray(code, dtype=np.int8), n_codes, matrix.n_raters, histogram_blocks(r)
    )
    return part[:, 1:].sum(axis=0, dtype=np.int64)  # integers: any blocking gives the same


@numba.njit(cache=True, nogil=True)
def _penalty(rater, keep, note, value, score, min_score, penalty, multiply, n_raters):
    # Serial on purpose: a float sum per rater in rating order, as ``np.bincount`` adds; one
    # streaming pass without the numpy form's five temporaries of length R.
    out = np.zeros(n_raters, dtype=np.float64)
    for i in range(keep.shape[0]):
        if keep[i] and value[i] == 1.0:
            h = score[note[i]]
            if h >= min_score:
                out[rater[i]] += penalty * h / min_score if multiply else penalty
    return out


def penalty_per_rater(
    matrix: RatingMatrix,
    keep: np.ndarray,
    harassment_intercept: np.ndarray,
    *,
    min_score: float,
    penalty: float,
    multiply: bool,
) -> np.ndarray:
    """float64[U]: ``helpfulness.harassment_penalty``'s sum per rater, in the same order of
    additions as its ``np.bincount`` (ascending rating position)."""
    return _penalty(
        matrix.rater, np.asarray(keep, dtype=np.bool_), matrix.note, matrix.value,
        np.asarray(harassment_intercept, dtype=np.float64), float(min_score), float(penalty), bool(multiply),
        matrix.n_raters,
    )  # fmt: skip

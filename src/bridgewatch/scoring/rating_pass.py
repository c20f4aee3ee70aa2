"""The per-rating passes every scorer makes, as parallel numba kernels over the matrix's two orders.

Each of the ~30 scorers of a run walks all R ratings several times outside its fits: the count
filters (§2.5), the compaction of its ratings into a fit's CSR arrays (``mf.build_problem``), the
valid ratings of its helpfulness pass (§4.1) with their per-rater counts, and the harassment
penalty (§4.2). Written as chains of numpy expressions these run on one core and make a bool or
float temporary of length R per step. Here each is one or two passes that run in parallel over
notes (``note_indptr``: ratings of a note are contiguous) or raters (``by_rater`` /
``rater_indptr``), with no temporaries of length R beyond the outputs.

Results are byte-identical to the numpy forms they replace and do not depend on the thread count:
every count is an integer, every output element is written by exactly one thread, and the one
floating-point sum (the penalty) adds each rater's ratings in the order ``np.bincount`` does
(ascending rating position, which ``by_rater`` keeps within a rater).
"""

from __future__ import annotations

import numba
import numpy as np

from bridgewatch.io.matrix import RatingMatrix

# Fixed number of blocks for the compaction's two passes: the output does not depend on it, it
# only needs to exceed the thread count.
_BLOCKS = 64


@numba.njit(cache=True, parallel=True)
def _note_counts(indptr: np.ndarray, keep: np.ndarray) -> np.ndarray:
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.int64)
    for i in numba.prange(n):
        c = 0
        for p in range(indptr[i], indptr[i + 1]):
            if keep[p]:
                c += 1
        out[i] = c
    return out


@numba.njit(cache=True, parallel=True)
def _rater_counts(indptr: np.ndarray, order: np.ndarray, keep: np.ndarray) -> np.ndarray:
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.int64)
    for u in numba.prange(n):
        c = 0
        for p in range(indptr[u], indptr[u + 1]):
            if keep[order[p]]:
                c += 1
        out[u] = c
    return out


@numba.njit(cache=True, parallel=True)
def _drop_notes(indptr: np.ndarray, keep: np.ndarray, min_count: int) -> None:
    """In place: clear ``keep`` on every note with fewer than ``min_count`` kept ratings."""
    n = indptr.shape[0] - 1
    for i in numba.prange(n):
        c = 0
        for p in range(indptr[i], indptr[i + 1]):
            if keep[p]:
                c += 1
        if c < min_count:
            for p in range(indptr[i], indptr[i + 1]):
                keep[p] = False


@numba.njit(cache=True, parallel=True)
def _drop_raters(indptr: np.ndarray, order: np.ndarray, keep: np.ndarray, min_count: int) -> None:
    """In place: clear ``keep`` on every rater with fewer than ``min_count`` kept ratings."""
    n = indptr.shape[0] - 1
    for u in numba.prange(n):
        c = 0
        for p in range(indptr[u], indptr[u + 1]):
            if keep[order[p]]:
                c += 1
        if c < min_count:
            for p in range(indptr[u], indptr[u + 1]):
                keep[order[p]] = False


def note_counts(matrix: RatingMatrix, keep: np.ndarray) -> np.ndarray:
    """int64[N]: kept ratings per note, ``np.bincount(matrix.note[keep], minlength=N)``."""
    return _note_counts(matrix.note_indptr, np.asarray(keep, dtype=np.bool_))


def rater_counts(matrix: RatingMatrix, keep: np.ndarray) -> np.ndarray:
    """int64[U]: kept ratings per rater, ``np.bincount(matrix.rater[keep], minlength=U)``."""
    return _rater_counts(matrix.rater_indptr, matrix.by_rater, np.asarray(keep, dtype=np.bool_))


def count_filter(matrix: RatingMatrix, keep: np.ndarray, min_per_note: int, min_per_rater: int) -> np.ndarray:
    """bool[R]: ``preprocess.count_filter`` (notes, then raters, then notes once more), in place on
    one copy of ``keep``."""
    out = np.array(keep, dtype=np.bool_, copy=True)
    _drop_notes(matrix.note_indptr, out, min_per_note)
    if min_per_rater > 0:
        _drop_raters(matrix.rater_indptr, matrix.by_rater, out, min_per_rater)
        _drop_notes(matrix.note_indptr, out, min_per_note)
    return out


@numba.njit(cache=True, parallel=True)
def _compact(keep, note, rater, value, note_map, rater_map, blocks):
    """The kept ratings' positions, compact note/rater indices and float64 values, in order, plus
    each kept rating's new position (``new_pos``; undefined where not kept)."""
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
    k = counts[blocks]
    rating_full = np.empty(k, dtype=np.int64)
    note_out = np.empty(k, dtype=np.int32)
    rater_out = np.empty(k, dtype=np.int32)
    value_out = np.empty(k, dtype=np.float64)
    new_pos = np.empty(r, dtype=np.int64)
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


@numba.njit(cache=True, parallel=True)
def _select3(keep, a, b, c, blocks):
    r = keep.shape[0]
    step = (r + blocks - 1) // blocks
    counts = np.zeros(blocks + 1, dtype=np.int64)
    for k in numba.prange(blocks):
        n = 0
        for i in range(k * step, min(r, (k + 1) * step)):
            if keep[i]:
                n += 1
        counts[k + 1] = n
    for k in range(blocks):
        counts[k + 1] += counts[k]
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
    return _select3(np.asarray(keep, dtype=np.bool_), matrix.note, matrix.rater, matrix.tags, _BLOCKS)


@numba.njit(cache=True, parallel=True)
def _kept_order(indptr, order, keep, new_pos, offsets):
    """``new_pos[order[keep[order]]]``, written rater by rater from ``offsets`` (int64[U+1])."""
    out = np.empty(offsets[offsets.shape[0] - 1], dtype=np.int64)
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


def compact_problem(matrix: RatingMatrix, keep: np.ndarray) -> dict[str, np.ndarray]:
    """The arrays of ``mf.MFProblem`` for the ratings ``keep`` (bool[R]), identical to those the
    numpy form (flatnonzero, gathers, ``counts_indptr``, ``kept_order``) builds."""
    keep = np.asarray(keep, dtype=np.bool_)
    per_note = _note_counts(matrix.note_indptr, keep)
    per_rater = _rater_counts(matrix.rater_indptr, matrix.by_rater, keep)
    note_present = per_note > 0
    rater_present = per_rater > 0
    note_map = np.cumsum(note_present) - 1
    rater_map = np.cumsum(rater_present) - 1
    rating_full, note, rater, value, new_pos = _compact(
        keep, matrix.note, matrix.rater, matrix.value, note_map, rater_map, _BLOCKS
    )
    by_rater = _kept_order(matrix.rater_indptr, matrix.by_rater, keep, new_pos, _cumulative(per_rater))
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


@numba.njit(cache=True, parallel=True)
def _valid(
    indptr, keep, created_at, value, note_created, note_latest, note_status,
    window, launch, first_n, crh_code, crnh_code,
):  # fmt: skip
    r = keep.shape[0]
    valid = np.zeros(r, dtype=np.bool_)
    sh = np.zeros(r, dtype=np.bool_)
    snh = np.zeros(r, dtype=np.bool_)
    fh = np.zeros(r, dtype=np.bool_)
    fnh = np.zeros(r, dtype=np.bool_)
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
                v = value[p]
                if v == 1.0:
                    valid[p] = True
                    sh[p] = crh
                    fnh[p] = crnh
                elif v == 0.0:
                    valid[p] = True
                    snh[p] = crnh
                    fh[p] = crh
            continue
        for p in range(a, b):
            if not keep[p]:
                continue
            t = np.float64(created_at[p])
            if not (t - created < window):
                continue
            if not (t < latest or latest_none):
                continue
            v = value[p]
            if v == 1.0:
                valid[p] = True
                sh[p] = crh
                fnh[p] = crnh
            elif v == 0.0:
                valid[p] = True
                snh[p] = crnh
                fh[p] = crh
    return valid, sh, snh, fh, fnh


def valid_rating_masks(
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """bool[R] × 5: valid, success helpful / not helpful, fail helpful / not helpful (§4.1; see
    ``helpfulness.valid_ratings``), one parallel pass over the notes."""
    return _valid(
        matrix.note_indptr, np.asarray(keep, dtype=np.bool_), matrix.created_at, matrix.value,
        np.asarray(note_created, dtype=np.float64), np.asarray(note_latest_non_nmr, dtype=np.float64),
        np.asarray(note_status, dtype=np.int8), float(window), float(launch), int(first_n), crh, crnh,
    )  # fmt: skip


@numba.njit(cache=True, parallel=True)
def _rater_counts6(indptr, order, a0, a1, a2, a3, a4, a5):
    n = indptr.shape[0] - 1
    out = np.zeros((6, n), dtype=np.int64)
    for u in numba.prange(n):
        c0 = c1 = c2 = c3 = c4 = c5 = 0
        for p in range(indptr[u], indptr[u + 1]):
            i = order[p]
            c0 += a0[i]
            c1 += a1[i]
            c2 += a2[i]
            c3 += a3[i]
            c4 += a4[i]
            c5 += a5[i]
        out[0, u] = c0
        out[1, u] = c1
        out[2, u] = c2
        out[3, u] = c3
        out[4, u] = c4
        out[5, u] = c5
    return out


def rater_counts_of(matrix: RatingMatrix, masks: tuple[np.ndarray, ...]) -> np.ndarray:
    """int64[6, U]: per rater, the ratings set in each of six bool[R] masks (one pass)."""
    arrays = (np.asarray(m, dtype=np.bool_) for m in masks)
    return _rater_counts6(matrix.rater_indptr, matrix.by_rater, *arrays)


@numba.njit(cache=True, parallel=True)
def _penalty(indptr, order, keep, note, value, score, min_score, penalty, multiply):
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.float64)
    for u in numba.prange(n):
        s = 0.0
        for p in range(indptr[u], indptr[u + 1]):
            i = order[p]
            if keep[i] and value[i] == 1.0:
                h = score[note[i]]
                if h >= min_score:
                    s += penalty * h / min_score if multiply else penalty
        out[u] = s
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
    additions as its ``np.bincount`` (each rater's ratings by ascending position)."""
    return _penalty(
        matrix.rater_indptr, matrix.by_rater, np.asarray(keep, dtype=np.bool_), matrix.note, matrix.value,
        np.asarray(harassment_intercept, dtype=np.float64), float(min_score), float(penalty), bool(multiply),
    )  # fmt: skip

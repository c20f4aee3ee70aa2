"""Hot loops of the factorization solver: per-row ridge solves over CSR rating views.

Every numba kernel here has a plain-numpy twin (``*_np``) that computes the same thing with
vectorized numpy; ``tests/test_mf_kernels.py`` checks that they agree. Kernels take plain arrays:

- ``indptr``: int64[M+1], the ratings of row m (a note or a rater) are positions
  ``perm[indptr[m]:indptr[m+1]]`` of the rating arrays;
- ``perm``: int64[R], a permutation of rating positions (identity for notes, ``by_rater`` for raters);
- ``other``: int32[R], for each rating the index of the *other* side (the rater of a note's rating);
- ``value``: float64[R], the rating value; ``weight`` is not supported (the reference's MSE is unweighted).

A row solve is the ridge regression of ``value − mu − other_int[o]`` on ``[1, other_fac[o, :]]`` with
sum-form penalties ``pen_int`` (intercept) and ``pen_fac`` (each factor). Rows are independent, so the
parallel loop writes disjoint outputs and the result does not depend on the thread count; sums over
all ratings (global intercept, objective) run serially in a fixed order.

``solve_rows_nb`` prefetches (``prefetch``) what it will read ``AHEAD`` ratings on: the rating's
other-side row, and twice as far on, for the rater side whose ``perm`` jumps around the rating
arrays, the rating's own ``other`` and ``value``. Hints only: no value changes.
"""

from __future__ import annotations

import numba
import numpy as np

from bridgewatch.scoring.prefetch import AHEAD, prefetch


@numba.njit(cache=True, inline="always")
def _chol_solve(a: np.ndarray, b: np.ndarray) -> None:
    """Solve a·x = b in place (x into b) for a small SPD matrix; a is overwritten by its factor."""
    d = a.shape[0]
    for j in range(d):
        s = a[j, j]
        for k in range(j):
            s -= a[j, k] * a[j, k]
        if s <= 0.0:
            s = 1e-300
        a[j, j] = np.sqrt(s)
        for i in range(j + 1, d):
            t = a[i, j]
            for k in range(j):
                t -= a[i, k] * a[j, k]
            a[i, j] = t / a[j, j]
    for i in range(d):
        t = b[i]
        for k in range(i):
            t -= a[i, k] * b[k]
        b[i] = t / a[i, i]
    for i in range(d - 1, -1, -1):
        t = b[i]
        for k in range(i + 1, d):
            t -= a[k, i] * b[k]
        b[i] = t / a[i, i]


@numba.njit(cache=True, inline="always")
def _accumulate(a: np.ndarray, b: np.ndarray, t: float, fac: np.ndarray, o: int, k: int) -> None:
    """Add one rating (target ``t``, other side's row ``o`` of ``fac``) to a row's normal
    equations: the lower triangle of a = Σ x xᵀ and b = Σ x t, x = [1, fac[o]]."""
    a[0, 0] += 1.0
    b[0] += t
    for f in range(k):
        x = fac[o, f]
        a[f + 1, 0] += x
        b[f + 1] += x * t
        for g in range(f + 1):
            a[f + 1, g + 1] += x * fac[o, g]


@numba.njit(cache=True, inline="always")
def _solve_row(a, b, pen_int, pen_fac, out_int, out_fac, row, k) -> None:
    """Penalize a row's normal equations, solve them and write the row's parameters."""
    a[0, 0] += pen_int
    for f in range(k):
        a[f + 1, f + 1] += pen_fac
    _chol_solve(a, b)
    out_int[row] = b[0]
    for f in range(k):
        out_fac[row, f] = b[f + 1]


@numba.njit(cache=True, parallel=True, nogil=True)
def solve_rows_nb(indptr, perm, other, value, mu, other_int, other_fac, pen_int, pen_fac, out_int, out_fac):
    """Ridge-solve every row; write intercepts into out_int[M] and factors into out_fac[M, k].

    Rows without ratings get 0 (the ridge optimum of an empty row).
    """
    n_rows = indptr.shape[0] - 1
    k = other_fac.shape[1]
    last = indptr[n_rows] - 1
    for row in numba.prange(n_rows):
        d = k + 1
        a = np.zeros((d, d))
        b = np.zeros(d)
        for p in range(indptr[row], indptr[row + 1]):
            far = perm[min(p + 2 * AHEAD, last)]
            prefetch(other, far)
            prefetch(value, far)
            o_ahead = np.int64(other[perm[min(p + AHEAD, last)]])
            prefetch(other_int, o_ahead)
            prefetch(other_fac, o_ahead * k)
            j = perm[p]
            o = other[j]
            _accumulate(a, b, value[j] - mu - other_int[o], other_fac, o, k)
        _solve_row(a, b, pen_int, pen_fac, out_int, out_fac, row, k)


@numba.njit(cache=True, parallel=True, nogil=True)
def solve_notes_kept_nb(indptr, note_full, kept, rater, value, mu, rater_int, rater_fac, pen_int, pen_fac,
                        out_int, out_fac):  # fmt: skip
    """``solve_rows_nb`` over a fit's notes, read from the full matrix through its selection.

    Why: a fit's compact per-rating arrays (``MFProblem.note``/``rater``/``value``/``identity``)
    are ~28 bytes a fitted rating, ~4 GiB for a Core-family final fit at X's scale, only to be
    read once. Here compact note ``n`` is full note ``note_full[n]``, whose matrix ratings
    ``indptr[full]:indptr[full + 1]`` are visited in order and taken where ``kept`` (``np.packbits``
    of bool[R_full]) is set; ``rater_int`` float64[U_full] and ``rater_fac`` float64[U_full, k]
    are in the full rater space. The kept ratings come in the compact arrays' (note, rater) order
    and each term is computed as there (the value widened to float64 first): the same bits.
    """
    n_rows = note_full.shape[0]
    k = rater_fac.shape[1]
    for row in numba.prange(n_rows):
        d = k + 1
        a = np.zeros((d, d))
        b = np.zeros(d)
        full = note_full[row]
        for i in range(indptr[full], indptr[full + 1]):
            if not (kept[i >> 3] >> (7 - (i & 7))) & 1:
                continue
            o = rater[i]
            _accumulate(a, b, np.float64(value[i]) - mu - rater_int[o], rater_fac, o, k)
        _solve_row(a, b, pen_int, pen_fac, out_int, out_fac, row, k)


@numba.njit(cache=True, parallel=True, nogil=True)
def normal_equations_kept_nb(indptr, note_full, kept, rater, value, mu, rater_int, rater_fac, a, b):
    """Per-note sufficient statistics of a fit into ``a`` float64[N, d, d] and ``b`` float64[N, d]
    (d = k + 1, zeroed by the caller), read as ``solve_notes_kept_nb`` reads (no per-rating array).
    Each entry sums ``x_f · x_g`` and ``x_f · t`` (x = [1, f_u], t = value − mu − i_u) in the
    ratings' order, as ``np.bincount`` over the compact arrays does: the same bits."""
    n_rows = note_full.shape[0]
    d = rater_fac.shape[1] + 1
    for row in numba.prange(n_rows):
        full = note_full[row]
        x = np.empty(d)
        x[0] = 1.0
        for i in range(indptr[full], indptr[full + 1]):
            if not (kept[i >> 3] >> (7 - (i & 7))) & 1:
                continue
            o = rater[i]
            t = np.float64(value[i]) - mu - rater_int[o]
            for f in range(1, d):
                x[f] = rater_fac[o, f - 1]
            for f in range(d):
                b[row, f] += x[f] * t
                for g in range(d):
                    a[row, f, g] += x[f] * x[g]


def solve_rows_np(indptr, perm, other, value, mu, other_int, other_fac, pen_int, pen_fac, out_int, out_fac):
    """Numpy twin of ``solve_rows_nb`` (same arguments, same outputs)."""
    n_rows = indptr.shape[0] - 1
    k = other_fac.shape[1]
    counts = np.diff(indptr)
    row_of = np.repeat(np.arange(n_rows), counts)
    o = other[perm]
    t = value[perm] - mu - other_int[o]
    x = np.concatenate([np.ones((o.shape[0], 1)), other_fac[o]], axis=1)  # [R, k+1]
    d = k + 1
    a = np.zeros((n_rows, d, d))
    b = np.zeros((n_rows, d))
    for f in range(d):
        b[:, f] = np.bincount(row_of, weights=x[:, f] * t, minlength=n_rows)
        for g in range(d):
            a[:, f, g] = np.bincount(row_of, weights=x[:, f] * x[:, g], minlength=n_rows)
    a[:, 0, 0] += pen_int
    for f in range(1, d):
        a[:, f, f] += pen_fac
    sol = np.linalg.solve(a, b[:, :, None])[:, :, 0]
    out_int[:] = sol[:, 0]
    out_fac[:, :] = sol[:, 1:]


@numba.njit(cache=True, nogil=True)
def residual_sum_nb(note, rater, value, note_int, note_fac, rater_int, rater_fac):
    """Σ over ratings of value − i_n − i_u − f_n·f_u (no global intercept), serial fixed order."""
    k = note_fac.shape[1]
    s = 0.0
    for j in range(value.shape[0]):
        n = note[j]
        u = rater[j]
        pred = note_int[n] + rater_int[u]
        for f in range(k):
            pred += note_fac[n, f] * rater_fac[u, f]
        s += value[j] - pred
    return s


def residual_sum_np(note, rater, value, note_int, note_fac, rater_int, rater_fac):
    """Numpy twin of ``residual_sum_nb``."""
    pred = note_int[note] + rater_int[rater] + np.einsum("rk,rk->r", note_fac[note], rater_fac[rater])
    return float(np.sum(value - pred))


@numba.njit(cache=True, nogil=True)
def squared_error_nb(note, rater, value, mu, note_int, note_fac, rater_int, rater_fac):
    """Σ over ratings of (value − r̂)², serial fixed order."""
    k = note_fac.shape[1]
    s = 0.0
    for j in range(value.shape[0]):
        n = note[j]
        u = rater[j]
        pred = mu + note_int[n] + rater_int[u]
        for f in range(k):
            pred += note_fac[n, f] * rater_fac[u, f]
        e = value[j] - pred
        s += e * e
    return s


@numba.njit(cache=True, nogil=True)
def squared_error_kept_nb(indptr, note_full, kept, rater, value, rater_map, mu, note_int, note_fac, rater_int,
                          rater_fac):  # fmt: skip
    """``squared_error_nb`` over the ratings ``kept`` (``np.packbits`` of bool[R_full]) selects,
    read from the full matrix's note-ordered arrays (``indptr``: its note offsets; ``rater``,
    ``value``) instead of a fit's compact copies: compact note ``n`` is full note ``note_full[n]``,
    full rater ``u`` is compact ``rater_map[u]``. The kept ratings are visited in the compact
    arrays' order and each term is computed as there (the value widened to float64 first), so
    the sum is the same, bit for bit."""
    k = note_fac.shape[1]
    s = 0.0
    for n in range(note_full.shape[0]):
        full = note_full[n]
        for i in range(indptr[full], indptr[full + 1]):
            if (kept[i >> 3] >> (7 - (i & 7))) & 1:
                u = rater_map[rater[i]]
                pred = mu + note_int[n] + rater_int[u]
                for f in range(k):
                    pred += note_fac[n, f] * rater_fac[u, f]
                e = np.float64(value[i]) - pred
                s += e * e
    return s


def squared_error_np(note, rater, value, mu, note_int, note_fac, rater_int, rater_fac):
    """Numpy twin of ``squared_error_nb``."""
    pred = mu + note_int[note] + rater_int[rater] + np.einsum("rk,rk->r", note_fac[note], rater_fac[rater])
    return float(np.sum((value - pred) ** 2))


@numba.njit(cache=True, nogil=True)
def sum_squares(x: np.ndarray) -> float:
    """Σ x² over a contiguous 1-D array, serial, in index order.

    Used for penalties and gradient norms inside optimizer loops instead of ``np.dot``: BLAS's dot
    may thread (OpenBLAS does above ~10k elements) and then fights numba's worker threads for the
    two cores, which made it the largest cost of small fits under load (2.4x slower for a group
    scorer). A fixed serial order also keeps the sum independent of any BLAS build or thread count.
    """
    s = 0.0
    for i in range(x.shape[0]):
        s += x[i] * x[i]
    return s

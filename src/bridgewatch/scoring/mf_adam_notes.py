"""Final scoring's note refit: the reference's Adam loop (``mf_adam``) with raters and μ frozen.

With raters and μ frozen only the note parameters move (their gradients alone enter the clipping
norm), and each note's gradient depends on its own ratings. ``mf_adam``'s pass groups ratings by
rater: at final scoring's sizes (a few ratings per rater in an incremental run's ~1,000 notes)
it spends most of its time entering and leaving raters and forming rater gradients nobody reads.
Here the ratings are grouped by note once per fit, each rating carries its rater's frozen row
``(μ + i_u, f_u)``, and one epoch streams them note by note with the note's parameters and
gradient in registers: no note partials, no rater gradients, no per-rater work (3-4x less CPU
per epoch at small scale).

The bits are those of ``mf_adam``'s loop with the rater and μ steps left out (the Python loop
the tests hold both to). A note's gradient there is its slice partials (``CHUNKS`` fixed
slices of whole raters) added in slice order, each partial its ratings' terms in rater order;
here a note's ratings are in rater order too, so the same partials form one after another and
are added in the same order (the partials of slices without the note's ratings are +0.0, and
adding +0.0 never changes a sum that started from +0.0). The frozen rater penalties enter the
loss as the same constants. Only the loss's squared-error sum is taken note by note instead of
rater by rater (to keep it rater by rater would need an R-sized scatter per epoch): the loss can
differ from ``adam_fit``'s in its last bit, which moves the stopping epoch only if an epoch's
loss change sits within that bit of the 1e-7 threshold. Tests pin equal epochs and parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf import MFProblem
from bridgewatch.scoring.mf_adam import (
    _BETA1,
    _BETA2,
    _adam_update,
    _diamond_penalty,
    _mean_penalty,
    penalty_weights,
)
from bridgewatch.scoring.mf_adam_kernels import slice_cuts
from bridgewatch.scoring.mf_kernels import sum_squares
from bridgewatch.scoring.prefetch import AHEAD, prefetch
from bridgewatch.scoring.threads import threads_for


@dataclass(frozen=True, eq=False)
class NoteLayout:
    """One notes-only fit's ratings as the note pass reads them: note ``n``'s ratings are those
    of ``[indptr[note_map[n]], indptr[note_map[n] + 1])`` whose bit is set in ``kept`` (all when
    ``kept`` is empty), in rater order (ties in input order), then, when ``pseudo`` ≥ 0, one
    rating of value 1 by the rater of row ``pseudo`` (§5's pseudo-raters).

    ``rater``/``value``/``weight`` (empty: unweighted) per position; ``rows``: float64[rows, 1+k]
    each rater's frozen (μ + i_u, f_u) by the index ``rater`` holds; ``cuts``: int64[CHUNKS+1] in
    that index, where ``adam_fit``'s slices (``CHUNKS`` runs of whole raters) begin; ``n_fit``:
    the fit's number of ratings; ``part``: float64[N, k] and ``note_sse``: float64[N] scratch.
    Either a fit's own arrays grouped by note (``note_layout``) or a problem's ratings taken
    from its matrix (``kept_layout``): read in place through the selection's bits, or gathered
    first (8 bytes a kept rating) when the selection keeps under ``DENSE_SHARE`` of its notes'.
    """

    indptr: np.ndarray
    note_map: np.ndarray
    kept: np.ndarray
    rater: np.ndarray
    value: np.ndarray
    weight: np.ndarray
    rows: np.ndarray
    cuts: np.ndarray
    pseudo: int
    n_fit: int
    part: np.ndarray
    note_sse: np.ndarray

    def args(self) -> tuple:
        return (self.indptr, self.note_map, self.kept, self.rater, self.value, self.weight, self.rows,
                self.cuts, self.pseudo, self.n_fit, self.part, self.note_sse)  # fmt: skip


def _rows(mu: float, ri: np.ndarray, rf: np.ndarray) -> np.ndarray:
    rows = np.empty((ri.shape[0], 1 + rf.shape[1]))
    rows[:, 0] = mu + ri  # the sum adam_fit's pass forms per rater, once
    rows[:, 1:] = rf
    return rows


def note_layout(
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    mu: float,
    ri: np.ndarray,
    rf: np.ndarray,
    n_notes: int,
    weight: np.ndarray | None = None,
) -> NoteLayout:
    """Group one fit's ratings by note, cut where the rater pass cuts the raters into slices
    (``mf_adam_kernels.slice_cuts``). Ratings already in (note, rater) order (an ``MFProblem``'s)
    are used as they are; others are sorted (two stable counting sorts, O(R))."""
    note, rater = np.asarray(note), np.asarray(rater)
    value = np.asarray(value, dtype=np.float64)
    w = np.zeros(0) if weight is None else np.asarray(weight, dtype=np.float64)
    n_raters = ri.shape[0]
    by_rater = np.zeros(n_raters + 1, dtype=np.int64)
    np.cumsum(np.bincount(rater, minlength=n_raters), out=by_rater[1:])
    by_note = np.zeros(n_notes + 1, dtype=np.int64)
    np.cumsum(np.bincount(note, minlength=n_notes), out=by_note[1:])
    if not _in_note_order(note, rater):
        order = _note_order(note, rater, by_rater, by_note)
        rater, value, w = rater[order], value[order], (w[order] if w.shape[0] else w)
        del order
    return NoteLayout(
        indptr=by_note,
        note_map=np.arange(n_notes, dtype=np.int64),
        kept=np.zeros(0, dtype=np.uint8),
        rater=rater,
        value=value,
        weight=w,
        rows=_rows(mu, ri, rf),
        cuts=slice_cuts(by_rater),
        pseudo=-1,
        n_fit=int(rater.shape[0]),
        part=np.empty((n_notes, rf.shape[1])),
        note_sse=np.empty(n_notes),
    )


def fit_ratings(problem: MFProblem) -> tuple[np.ndarray, ...]:
    """(indptr, note_map, kept, rater, value): ``problem``'s ratings as the note pass reads them.
    A selection keeping at least ``DENSE_SHARE`` of its notes' ratings is the matrix's own arrays
    read through its bits; a sparser one is gathered (``_gather_kept``: 8 bytes a kept rating in
    the matrix's note order), since walking every rating of its notes costs more. Fits over the
    same problem (the four pseudo-rater refits) can share one."""
    m = problem.matrix
    spans = m.note_indptr[problem.note_full + 1] - m.note_indptr[problem.note_full]
    if problem.n_ratings >= DENSE_SHARE * float(spans.sum()):
        return m.note_indptr, problem.note_full, problem.kept, m.rater, m.value
    indptr = problem.note_indptr
    rater, value = _gather_kept(m.note_indptr, problem.note_full, problem.kept, m.rater, m.value, indptr)
    return indptr, np.arange(problem.n_notes, dtype=np.int64), problem.kept[:0], rater, value


def kept_layout(
    problem: MFProblem,
    mu: float,
    ri_full: np.ndarray,
    rf_full: np.ndarray,
    pseudo: tuple[float, np.ndarray] | None = None,
    ratings: tuple[np.ndarray, ...] | None = None,
) -> NoteLayout:
    """``problem``'s ratings taken from its matrix, as ``note_layout`` of its ``note``/``rater``/
    ``value`` (plus, with ``pseudo`` = (i_u, f_u), one rating of value 1 a note by that extra
    rater, after every real one) would lay them out, with the same slices: the pass adds the
    same terms in the same order, without the fit's per-rating arrays (24 bytes a rating) or the
    pseudo-rated copies (~44 more while they are sorted). ``ratings``: ``fit_ratings(problem)``
    when the caller has it already.

    Slices are cut over the fit's own raters (and the pseudo-rater, one rating a note) as
    ``adam_fit`` cuts them, then carried to the matrix's rater index: compact raters keep the
    order of the full ones, so a rating is in the same slice either way.
    """
    counts = problem.rater_indptr
    # Raters outside the fit are read (weighed 0) by the pass: their rows must be finite.
    rows = np.nan_to_num(_rows(mu, ri_full, rf_full), nan=0.0, posinf=0.0, neginf=0.0)
    indptr, note_map, kept, rater, value = fit_ratings(problem) if ratings is None else ratings
    if pseudo is not None:
        counts = np.append(counts, counts[-1] + problem.n_notes)
        extra = np.concatenate([[mu + pseudo[0]], np.asarray(pseudo[1], dtype=np.float64)])
        rows = np.vstack([rows, extra[None, :]])
    cut = slice_cuts(counts)  # in the fit's compact rater index (the pseudo-rater: U)
    u, full = problem.n_raters, problem.rater_full
    inside = full[np.minimum(cut, max(u - 1, 0))] if u else 0
    cuts = np.where(cut < u, inside, problem.n_raters_full + cut - u)
    k = rf_full.shape[1]
    return NoteLayout(
        indptr=indptr,
        note_map=note_map,
        kept=kept,
        rater=rater,
        value=value,
        weight=np.zeros(0),
        rows=rows,
        cuts=cuts.astype(np.int64),
        pseudo=problem.n_raters_full if pseudo is not None else -1,
        n_fit=problem.n_ratings + (problem.n_notes if pseudo is not None else 0),
        part=np.empty((problem.n_notes, k)),
        note_sse=np.empty(problem.n_notes),
    )


# Selections keeping at least this share of their notes' ratings are read in place; sparser ones
# gathered first. Measured at ``large`` (30 epochs, 2 threads): in place as fast as the compact
# arrays at 95% kept, 1.45x their time at 60%, 7x at 9% (every rating of the fit's notes read).
DENSE_SHARE = 0.85


@numba.njit(cache=True, parallel=True, nogil=True)
def _gather_kept(note_indptr, note_full, kept, rater, value, out_indptr):
    """(rater int32, value float32) of the kept ratings in note order (note ``n``'s at
    ``out_indptr[n]``), each note's in the matrix's order."""
    out_rater = np.empty(out_indptr[-1], dtype=rater.dtype)
    out_value = np.empty(out_indptr[-1], dtype=value.dtype)
    for n in numba.prange(note_full.shape[0]):
        q = out_indptr[n]
        for j in range(note_indptr[note_full[n]], note_indptr[note_full[n] + 1]):
            if (kept[j >> 3] >> (7 - (j & 7))) & 1:
                out_rater[q] = rater[j]
                out_value[q] = value[j]
                q += 1
    return out_rater, out_value


@numba.njit(cache=True, nogil=True)
def _in_note_order(note, rater):
    """Whether the ratings are in (note, rater) order already."""
    for j in range(1, note.shape[0]):
        if note[j] < note[j - 1] or (note[j] == note[j - 1] and rater[j] < rater[j - 1]):
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _note_order(note, rater, by_rater, by_note):
    """Input positions in (note, rater, input) order: a stable counting sort by rater, then one by note."""
    n_r = note.shape[0]
    pos = by_rater[:-1].copy()
    rater_order = np.empty(n_r, dtype=np.int64)
    for j in range(n_r):
        rater_order[pos[rater[j]]] = j
        pos[rater[j]] += 1
    nxt = by_note[:-1].copy()
    out = np.empty(n_r, dtype=np.int64)
    for q in range(n_r):
        j = rater_order[q]
        out[nxt[note[j]]] = j
        nxt[note[j]] += 1
    return out


@numba.njit(inline="always")
def _open_slice(u, cuts, c, t0, t1, p0, p1):
    """The last slice's partials added in, a new slice opened at rater ``u``'s."""
    while u >= cuts[c + 1]:
        c += 1
    return t0 + p0, t1 + p1, 0.0, 0.0, c, cuts[c + 1]


@numba.njit(inline="always", error_model="numpy")
def _term(rows, u, a, b0, y, on, scale, p0, p1, sse):
    """One rating's squared error and gradient terms (weighed ``on``: 1, or 0 outside the fit)."""
    pred = rows[u, 0] + a
    pred += rows[u, 1] * b0
    err = (pred - y) * on
    d = scale * err
    return p0 + d, p1 + d * rows[u, 1], sse + err * err


@numba.njit(cache=True, parallel=True, error_model="numpy", nogil=True)
def _note_pass(indptr, note_map, kept, rater, value, weight, rows, cuts, pseudo, n_fit, part, note_sse,
               ni, nf, g_ni, g_nf):  # fmt: skip
    """Data gradient of (1/R)·Σ w·(pred − value)² into ``g_ni``/``g_nf``; each note's Σ w·err² into
    ``note_sse``. Per rating the arithmetic of ``mf_adam_kernels._data_pass``; per note its slice
    partials, a new one wherever a rating's rater lies in a later slice than the last one's,
    added in slice order (module docstring). The first slice's opening adds +0.0 to +0.0, which
    leaves the sum as the rater pass starts it."""
    k = nf.shape[1]
    width = rows.shape[1]
    last = rater.shape[0] - 1
    selected = kept.shape[0] > 0
    weighted = weight.shape[0] > 0
    extra = 1 if pseudo >= 0 else 0
    scale = 2.0 / n_fit
    for n in numba.prange(ni.shape[0]):
        a = ni[n]
        b0 = nf[n, 0]
        t0 = 0.0
        t1 = 0.0
        p0 = 0.0
        p1 = 0.0
        sse = 0.0
        c = -1
        end = 0  # the first rater past the current slice; 0: none open yet
        lo = indptr[note_map[n]]
        hi = indptr[note_map[n] + 1]
        if k == 1 and not weighted:  # production's case, no loop over factors left in it (w = 1
            # multiplies exactly: err·err and scale·err are the general case's bits)
            for j in range(lo, hi):
                # A rating outside the selection is not skipped (no data-dependent branch) but
                # weighed 0: its err is ±0.0, and adding ±0.0 changes no sum that started at +0.0
                # and so is never -0.0 (its rater's row must be finite); a slice it opens early
                # has only such terms before the next kept rating.
                on = np.float64((kept[j >> 3] >> (7 - (j & 7))) & 1) if selected else 1.0
                prefetch(rows, np.int64(rater[min(j + AHEAD, last)]) * width)
                u = rater[j]
                if u >= end:
                    t0, t1, p0, p1, c, end = _open_slice(u, cuts, c, t0, t1, p0, p1)
                p0, p1, sse = _term(rows, u, a, b0, np.float64(value[j]), on, scale, p0, p1, sse)
            if pseudo >= 0:
                if pseudo >= end:
                    t0, t1, p0, p1, c, end = _open_slice(pseudo, cuts, c, t0, t1, p0, p1)
                p0, p1, sse = _term(rows, pseudo, a, b0, 1.0, 1.0, scale, p0, p1, sse)
            t0 += p0
            t1 += p1
        else:
            for f in range(1, k):
                g_nf[n, f] = 0.0
                part[n, f] = 0.0
            for j in range(lo, hi + extra):
                if j < hi:
                    if selected and not (kept[j >> 3] >> (7 - (j & 7))) & 1:
                        continue
                    prefetch(rows, np.int64(rater[min(j + AHEAD, last)]) * width)
                    u = np.int64(rater[j])
                    y = np.float64(value[j])
                    w = weight[j] if weighted else 1.0
                else:
                    u = np.int64(pseudo)
                    y = 1.0
                    w = 1.0
                if u >= end:
                    t0 += p0
                    t1 += p1
                    p0 = 0.0
                    p1 = 0.0
                    for f in range(1, k):
                        g_nf[n, f] += part[n, f]
                        part[n, f] = 0.0
                    while u >= cuts[c + 1]:
                        c += 1
                    end = cuts[c + 1]
                pred = rows[u, 0] + a
                pred += rows[u, 1] * b0
                for f in range(1, k):
                    pred += rows[u, 1 + f] * nf[n, f]
                err = pred - y
                sse += w * err * err
                d = scale * w * err
                p0 += d
                p1 += d * rows[u, 1]
                for f in range(1, k):
                    part[n, f] += d * rows[u, 1 + f]
            t0 += p0
            t1 += p1
            for f in range(1, k):
                g_nf[n, f] += part[n, f]
        g_ni[n] = t0
        g_nf[n, 0] = t1
        note_sse[n] = sse


@numba.njit(cache=True, nogil=True)
def _evaluate(lay, ni, nf, g_ni, g_nf, lam, rows_pen, fixed):
    """``mf_adam._loss_and_grads`` with raters and μ frozen: ``fixed`` is the loss's constant part
    (the rater penalties, as ``_add_penalties`` adds them), the μ penalty added where it adds it.
    ``lay``: ``NoteLayout.args()``."""
    _note_pass(*lay, ni, nf, g_ni, g_nf)
    note_sse = lay[11]
    sse = 0.0
    for n in range(note_sse.shape[0]):
        sse += note_sse[n]
    reg = fixed[0]
    reg += _mean_penalty(ni, g_ni, lam[3], rows_pen[1])
    reg += _mean_penalty(nf, g_nf, lam[2], rows_pen[1])
    if lam[5] > 0:
        reg += _diamond_penalty(ni, nf, g_ni, g_nf, lam[5], rows_pen[1])
    if fixed[2] > 0:
        reg += fixed[1]
    return sse / lay[9] + reg


@numba.njit(cache=True, nogil=True)
def _epochs(lay, ni, nf, g_ni, g_nf, m_ni, m_nf, v_ni, v_nf, lam, rows_pen, fixed, learning_rate, convergence,
            clip_norm, max_epochs):  # fmt: skip
    """``mf_adam._epochs`` with only the note blocks trained: the same stopping rule, clipping
    (the note gradients' norm) and updates."""
    prev = 1e10
    loss = _evaluate(lay, ni, nf, g_ni, g_nf, lam, rows_pen, fixed)
    epoch = 0
    while abs(loss - prev) > convergence and not (epoch > 100 and loss > prev):
        if epoch >= max_epochs:
            break
        prev = loss
        total = np.sqrt(sum_squares(g_ni.ravel()) + sum_squares(g_nf.ravel()) + 0.0)
        ratio = clip_norm / (total + 1e-6)
        coef = ratio if ratio < 1.0 else 1.0
        t = float(epoch + 1)
        lr_t = learning_rate / (1.0 - math.pow(_BETA1, t))
        bc2_sqrt = np.sqrt(1.0 - math.pow(_BETA2, t))
        _adam_update(ni, g_ni, m_ni, v_ni, coef, lr_t, bc2_sqrt)
        _adam_update(nf, g_nf, m_nf, v_nf, coef, lr_t, bc2_sqrt)
        loss = _evaluate(lay, ni, nf, g_ni, g_nf, lam, rows_pen, fixed)
        epoch += 1
    return epoch


def fit_notes(
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    start: tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    config: MFConfig,
    learning_rate: float,
    *,
    use_global_intercept: bool = True,
    weights: np.ndarray | None = None,
    note_rows: float | None = None,
) -> tuple[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray], int]:
    """``mf_adam.adam_fit``'s arguments and answer (μ, i_n, f_n, i_u, f_u — fresh arrays, raters
    and μ as given) and number of epochs, with only the notes trained."""
    mu0, ni0, nf0, ri0, rf0 = start
    mu = float(mu0) if use_global_intercept else 0.0
    ni, nf = np.array(ni0, dtype=np.float64), np.array(nf0, dtype=np.float64)
    ri, rf = np.array(ri0, dtype=np.float64), np.array(rf0, dtype=np.float64)
    if np.shape(value)[0] == 0:
        return (mu, ni, nf, ri, rf), 0
    with threads_for(np.shape(note)[0]):
        lay = note_layout(np.asarray(note), np.asarray(rater), value, mu, ri, rf, ni.shape[0], weights)
        epoch = _train(lay, ni, nf, ri, rf, mu, config, learning_rate, note_rows, use_global_intercept)
    return (mu, ni, nf, ri, rf), epoch


def fit_problem_notes(
    problem: MFProblem,
    mu: float,
    start: tuple[np.ndarray, np.ndarray],
    ri_full: np.ndarray,
    rf_full: np.ndarray,
    config: MFConfig,
    learning_rate: float,
    *,
    note_rows: float | None = None,
    pseudo: tuple[float, np.ndarray] | None = None,
    ratings: tuple[np.ndarray, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """``fit_notes`` of ``problem``'s ``note``/``rater``/``value`` (plus, with ``pseudo``, one
    helpful rating a note by that extra rater, appended after the real ones as §5's refits
    append them) from ``start`` = (i_n float[N], f_n float[N, k]) in the problem's note space,
    read through the selection (``kept_layout``): the same bits without the per-rating arrays.
    ``ri_full``/``rf_full``: float64 rater parameters over the matrix's raters (those outside the
    fit never read); ``ratings``: ``fit_ratings(problem)``, made here when None. Returns (i_n,
    f_n, epochs), fresh arrays."""
    ni, nf = np.array(start[0], dtype=np.float64), np.array(start[1], dtype=np.float64)
    if problem.n_ratings == 0 and pseudo is None:
        return ni, nf, 0
    ri, rf = ri_full[problem.rater_full], rf_full[problem.rater_full]
    if pseudo is not None:  # the compact raters' penalties count the pseudo-rater as a last rater
        ri = np.append(ri, pseudo[0])
        rf = np.vstack([rf, np.asarray(pseudo[1], dtype=np.float64).reshape(1, -1)])
    with threads_for(problem.n_ratings):
        lay = kept_layout(problem, float(mu), ri_full, rf_full, pseudo, ratings)
        epoch = _train(lay, ni, nf, ri, rf, float(mu), config, learning_rate, note_rows, True)
    return ni, nf, epoch


def _train(lay: NoteLayout, ni, nf, ri, rf, mu: float, config: MFConfig, learning_rate: float,
           note_rows: float | None, use_global_intercept: bool) -> int:  # fmt: skip
    """Adam epochs on ``ni``/``nf`` in place; ``ri``/``rf``: the fit's raters, for the penalties."""
    lam = penalty_weights(config)
    rows_pen = np.array([0.0, 0.0 if note_rows is None else float(note_rows)])
    fixed = np.array(
        [
            _rater_penalties(ri, rf, lam, rows_pen),
            config.global_intercept_lambda * mu * mu,
            1.0 if use_global_intercept else 0.0,
        ]
    )
    g_ni, g_nf = np.zeros_like(ni), np.zeros_like(nf)
    moments = [np.zeros_like(ni), np.zeros_like(nf), np.zeros_like(ni), np.zeros_like(nf)]
    return _epochs(
        lay.args(), ni, nf, g_ni, g_nf, *moments, lam, rows_pen, fixed, float(learning_rate),
        float(config.adam_convergence), float(config.adam_clip_norm), int(config.adam_max_epochs),
    )  # fmt: skip


def _rater_penalties(ri: np.ndarray, rf: np.ndarray, lam: np.ndarray, rows_pen: np.ndarray) -> float:
    """The rater part of ``_add_penalties``' sum, as it forms it (its gradients unused)."""
    reg = _mean_penalty(ri, np.zeros_like(ri), lam[1], rows_pen[0])
    reg += _mean_penalty(rf, np.zeros_like(rf), lam[0], rows_pen[0])
    return float(reg)

"""The logistic model's epoch pass on ratings grouped by note, for fits that train only note blocks.

Final scoring's low-diligence refit (``diligence.fit_final_kept``) trains the note factors, then
the note intercepts, with raters and μ frozen. ``logistic_kernels.epoch_nb`` groups ratings by
rater: at an incremental run's sizes (2-3 ratings per rater) it spends most of its time entering
and leaving raters, forming rater gradients nobody reads and adding up note partials. Here the
ratings are regrouped by note once per fit (``note_pass``), each note's in the rater pass's order,
and each carries its rater id; an epoch gathers the logits note by note (the note's parameters in
registers, the frozen rater rows ``(f_u, rep_u, i_u)`` prefetched ``AHEAD`` ratings on), turns
them into derivatives with the rater pass's vectorized loop, and sums each note's gradient.

The bits are the rater pass's. Its note gradient is the ``CHUNKS`` slice partials added in slice
order, each partial its ratings' terms in rater order; here a note's ratings are in that order
too and are cut into segments where the slice changes, so the same partials form one after
another and are added in the same order (slices without the note's ratings give +0.0 there, and
adding +0.0 never changes a sum that started from +0.0). Only the data loss is summed note-major
(per group of notes, groups in order) instead of slice by slice: it can differ in its last bits,
which moves a stopping decision only if an epoch's loss change sits within them of the tolerance.
Tests pin equal epochs and parameter bytes against the rater pass.
"""

from __future__ import annotations

import numba
import numpy as np

from bridgewatch.scoring import logistic_kernels as K
from bridgewatch.scoring.prefetch import AHEAD, prefetch

GROUPS = 16  # parallel groups of whole notes (about equal ratings); they fix the loss's sum order
ROW = 4  # a frozen rater row: (f_u, rep_u, i_u, unused), 32 bytes so it never straddles a line

NotePass = tuple[np.ndarray, ...]


def note_pass(
    indptr: np.ndarray,
    sub_ptr: np.ndarray,
    chunk_ptr: np.ndarray,
    note: np.ndarray,
    n_notes: int,
    positive: np.ndarray,
    sw: np.ndarray,
    rf: np.ndarray,
    rep: np.ndarray,
    ri: np.ndarray,
) -> NotePass:
    """``note_epoch_nb``'s arrays from a rater layout (``RatingLayout``'s ``rater_indptr``,
    ``sub_ptr``, ``chunk_ptr``, ``note``) and its signed weights in rater order (``positive`` or
    ``sw``, the other empty): (notes int64[N+1] each note's first segment, segments int64[S+1]
    each segment's first rating, rater uint32[R], positive and sw in note order, rows
    float64[U, ROW], group_ptr int64[GROUPS+1] each group's first note, work float64[GROUPS, 3,
    PIECE] scratch, loss_g float64[GROUPS]). Per rating 4 bytes (rater) plus the weights."""
    notes, segments, rater, pos_n, sw_n = _by_note(indptr, sub_ptr, chunk_ptr, note, n_notes, positive, sw)
    rows = np.zeros((rf.shape[0], ROW))
    rows[:, 0], rows[:, 1], rows[:, 2] = rf, rep, ri
    starts = segments[notes]  # each note's first rating (a note without ratings: the next one's)
    targets = -(-np.arange(GROUPS + 1, dtype=np.int64) * rater.shape[0] // GROUPS)
    group_ptr = np.searchsorted(starts, targets, side="left").astype(np.int64)
    group_ptr[0], group_ptr[-1] = 0, n_notes
    work = np.empty((GROUPS, 3, K.PIECE))
    return notes, segments, rater, pos_n, sw_n, rows, group_ptr, work, np.empty(GROUPS)


def no_note_pass() -> NotePass:
    """The empty ``NotePass``: the epoch loop then runs the rater pass."""
    e = np.zeros(0, dtype=np.int64)
    return e, e, np.zeros(0, np.uint32), np.zeros(0, np.bool_), np.zeros(0), np.zeros((0, ROW)), e, np.zeros(
        (0, 3, K.PIECE)
    ), np.zeros(0)


@numba.njit(cache=True, nogil=True)
def _by_note(indptr, sub_ptr, chunk_ptr, note, n_notes, positive, sw):
    """Regroup the rater-ordered ratings by note (a stable counting sort: each note's ratings stay
    in rater order) and cut each note's where the pass's slice changes. Counted, then filled."""
    n_r = note.shape[0]
    n_seg = np.zeros(n_notes + 1, dtype=np.int64)
    count = np.zeros(n_notes + 1, dtype=np.int64)
    last = np.full(n_notes, -1, dtype=np.int64)
    for c in range(K.CHUNKS):
        for j in range(indptr[sub_ptr[chunk_ptr[c]]], indptr[sub_ptr[chunk_ptr[c + 1]]]):
            n = note[j]
            count[n + 1] += 1
            if last[n] != c:
                last[n] = c
                n_seg[n + 1] += 1
    notes = np.cumsum(n_seg)
    nxt = np.cumsum(count)[:-1]
    seg = notes[:-1].copy()
    segments = np.empty(notes[n_notes] + 1, dtype=np.int64)
    segments[notes[n_notes]] = n_r
    rater = np.empty(n_r, dtype=np.uint32)
    weighted = sw.shape[0] > 0
    sw_n = np.empty(n_r if weighted else 0)
    pos_n = np.empty(0 if weighted else n_r, dtype=np.bool_)
    last[:] = -1
    for c in range(K.CHUNKS):
        for u in range(sub_ptr[chunk_ptr[c]], sub_ptr[chunk_ptr[c + 1]]):
            for j in range(indptr[u], indptr[u + 1]):
                n = note[j]
                if last[n] != c:
                    last[n] = c
                    segments[seg[n]] = nxt[n]
                    seg[n] += 1
                d = nxt[n]
                nxt[n] += 1
                rater[d] = u
                if weighted:
                    sw_n[d] = sw[j]
                else:
                    pos_n[d] = positive[j]
    return notes, segments, rater, pos_n, sw_n


@numba.njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy", nogil=True)
def note_epoch_nb(notes, segments, rater, positive, sw, rows, group_ptr, work, loss_g, w_pos, w_neg, nf, ni, mu,
                  want_loss, g_nf, g_ni):  # fmt: skip
    """``epoch_nb``'s note gradients (``g_nf``, ``g_ni`` [N]) with raters and μ frozen, and its data
    loss when ``want_loss`` (else 0.0). Per group of notes, in pieces of ``PIECE`` ratings cut
    anywhere: gather the logits note by note, derivatives as ``epoch_nb`` forms them, then each
    segment's partials in registers, added to its note's sums as segments close."""
    last = rater.shape[0] - 1
    for g in numba.prange(group_ptr.shape[0] - 1):
        n0, n1 = group_ptr[g], group_ptr[g + 1]
        for n in range(n0, n1):  # what a note without ratings keeps: the rater pass's +0.0 sums
            g_nf[n] = 0.0
            g_ni[n] = 0.0
        xs, ls, ws = work[g, 0], work[g, 1], work[g, 2]
        s = notes[n0]  # the segment being summed, its note sn
        sn = n0
        while sn < n1 and notes[sn + 1] == s:
            sn += 1
        gn = n0  # the note being gathered
        p0 = 0.0
        p1 = 0.0
        t0 = 0.0
        t1 = 0.0
        t = 0.0
        j_end = segments[notes[n1]]
        for k0 in range(segments[s], j_end, K.PIECE):
            k1 = min(k0 + K.PIECE, j_end)
            j = k0
            while j < k1:
                while segments[notes[gn + 1]] <= j:
                    gn += 1
                hi = min(segments[notes[gn + 1]], k1)
                a_nf, a_ni = nf[gn], ni[gn]
                for q in range(j, hi):
                    prefetch(rows, np.int64(rater[min(q + AHEAD, last)]) * ROW)
                    u = rater[q]
                    xs[q - k0] = a_nf * rows[u, 0] + a_ni * rows[u, 1] + rows[u, 2] + mu
                j = hi
            t = K.derivatives(xs, ls, ws, positive, sw, w_pos, w_neg, k0, k1, want_loss, t)
            j = k0
            while j < k1:
                hi = min(segments[s + 1], k1)
                for q in range(j, hi):
                    dj = xs[q - k0]
                    u = rater[q]
                    p0 += dj * rows[u, 0]
                    p1 += dj * rows[u, 1]
                j = hi
                if hi == segments[s + 1]:  # the segment's slice partials are complete
                    t0 += p0
                    t1 += p1
                    p0 = 0.0
                    p1 = 0.0
                    s += 1
                    if s == notes[sn + 1]:  # and so is its note
                        g_nf[sn] = t0
                        g_ni[sn] = t1
                        t0 = 0.0
                        t1 = 0.0
                        while sn < n1 and notes[sn + 1] == s:
                            sn += 1
        loss_g[g] = t
    loss = 0.0
    for g in range(loss_g.shape[0]):
        loss += loss_g[g]
    return loss

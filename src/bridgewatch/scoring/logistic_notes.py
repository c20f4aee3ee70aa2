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

# Parallel groups of whole notes (about equal ratings; they fix the loss's sum order): up to
# GROUPS, each of at least GROUP_MIN ratings (a group costs ~0.1 µs an epoch even when it is
# empty: at an incremental run's hundreds of ratings 16 groups doubled the pass).
GROUPS = 16
GROUP_MIN = 4096
ROW = 4  # a frozen rater row: (f_u, rep_u, i_u, unused), 32 bytes so it never straddles a line

NotePass = tuple[np.ndarray, ...]

# A rating's rater id carries two flags in its top bits (rater ids stay below 2**30):
_SEG_END = np.uint32(1 << 31)  # the last of its note's ratings in one slice (a segment)
_NOTE_END = np.uint32(1 << 30)  # the last of its note's ratings
_ID = np.uint32((1 << 30) - 1)
# The note pass reads a random rater row per rating where the rater pass reads a random note row
# and adds into a random partial row, and it saves the rater pass's per-rater work. Measured on
# one core (ns per rating, no loss): 2-3 ratings per rater, 80,000-400,000 raters: 11-12 against
# 19-22; 10 per rater: even at 100,000-200,000 raters, 2x slower at 500,000 (16 MB of rows
# outgrow the cache); 20 per rater: 10% slower. It runs where it pays (``pays``).
MAX_RATERS = 400_000
MAX_PER_RATER = 10


def pays(n_ratings: int, n_raters: int) -> bool:
    """Whether a notes-only fit runs faster on the note pass than on the rater pass (same bits)."""
    return n_raters <= MAX_RATERS and n_ratings <= MAX_PER_RATER * n_raters


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
    ``sw``, the other empty): (rater uint32[R] each rating's rater with the segment and note end
    flags, positive and sw in note order, rated int64[N'] the notes with ratings, rows
    float64[U, ROW] the frozen rater rows, groups int64[3, G+1] each group's first note, rated
    note and rating (``n_groups``), work float64[G, 3, PIECE] scratch, loss_g float64[G]).
    Per rating 4 bytes (the rater) plus the weights; nothing else R-sized."""
    rater, pos_n, sw_n, rated, groups = _by_note(
        indptr, sub_ptr, chunk_ptr, note, n_notes, positive, sw, n_groups(note.shape[0])
    )
    rows = np.zeros((rf.shape[0], ROW))
    rows[:, 0], rows[:, 1], rows[:, 2] = rf, rep, ri
    work = np.empty((groups.shape[1] - 1, 3, K.PIECE))
    return rater, pos_n, sw_n, rated, rows, groups, work, np.empty(groups.shape[1] - 1)


def n_groups(n_ratings: int) -> int:
    """How many groups a pass over ``n_ratings`` ratings cuts its notes into."""
    return max(1, min(GROUPS, n_ratings // GROUP_MIN))


def no_note_pass() -> NotePass:
    """The empty ``NotePass``: the epoch loop then runs the rater pass."""
    e = np.zeros(0, dtype=np.int64)
    empty_rows, empty_work = np.zeros((0, ROW)), np.zeros((0, 3, K.PIECE))
    return (
        np.zeros(0, np.uint32),
        np.zeros(0, np.bool_),
        np.zeros(0),
        e,
        empty_rows,
        e.reshape(3, 0),
        empty_work,
        e * 0.0,
    )


@numba.njit(cache=True, nogil=True)
def _by_note(indptr, sub_ptr, chunk_ptr, note, n_notes, positive, sw, n_g):
    """Regroup the rater-ordered ratings by note (a stable counting sort: each note's ratings stay
    in rater order), flag where the pass's slice or the note changes, cut ``n_g`` groups."""
    n_r = note.shape[0]
    nxt = np.zeros(n_notes + 1, dtype=np.int64)
    for j in range(n_r):
        nxt[note[j] + 1] += 1
    rated = np.flatnonzero(nxt[1:])
    for n in range(n_notes):
        nxt[n + 1] += nxt[n]  # each note's first rating
    groups = np.empty((3, n_g + 1), dtype=np.int64)
    k = 0
    for g in range(n_g + 1):  # group g starts at the first rated note starting at ≥ g·R/G
        while k < rated.shape[0] and nxt[rated[k]] * n_g < g * n_r:
            k += 1
        groups[0, g] = 0 if g == 0 else (rated[k] if k < rated.shape[0] else n_notes)
        groups[1, g] = k
        groups[2, g] = nxt[rated[k]] if k < rated.shape[0] else n_r
    rater = np.empty(n_r, dtype=np.uint32)
    weighted = sw.shape[0] > 0
    sw_n = np.empty(n_r if weighted else 0)
    pos_n = np.empty(0 if weighted else n_r, dtype=np.bool_)
    last = np.full(n_notes, -1, dtype=np.int64)
    for c in range(K.CHUNKS):
        for u in range(sub_ptr[chunk_ptr[c]], sub_ptr[chunk_ptr[c + 1]]):
            for j in range(indptr[u], indptr[u + 1]):
                n = note[j]
                d = nxt[n]
                nxt[n] += 1
                rater[d] = u
                if last[n] != c:  # a segment's first rating: its predecessor ends one
                    rater[d] |= _SEG_END
                    last[n] = c
                if weighted:
                    sw_n[d] = sw[j]
                else:
                    pos_n[d] = positive[j]
    # the flags sit on segments' first ratings: move them onto the last ones (a note's first
    # rating starts a segment: the rating before it ends its note)
    for n in rated:
        rater[nxt[n] - 1] |= _NOTE_END  # nxt[n]: the end of note n's ratings now
    for d in range(n_r - 1):
        rater[d] = (rater[d] & ~_SEG_END) | (rater[d + 1] & _SEG_END)
    if n_r > 0:
        rater[n_r - 1] |= _SEG_END
    return rater, pos_n, sw_n, rated, groups


@numba.njit(inline="always")
def _note_group(g, rater, positive, sw, rated, rows, groups, work, loss_g, w_pos, w_neg, nf, ni, mu,
                want_loss, g_nf, g_ni):  # fmt: skip
    """``note_epoch_nb``'s work on group ``g``: its notes' gradients, its loss into ``loss_g[g]``."""
    last = rater.shape[0] - 1
    for n in range(groups[0, g], groups[0, g + 1]):  # notes without ratings keep +0.0, the
        g_nf[n] = 0.0  # rater pass's sums of +0.0 partials
        g_ni[n] = 0.0
    xs, ls, ws = work[g, 0], work[g, 1], work[g, 2]
    kg = groups[1, g]  # the rated note being gathered, then summed
    ks = kg
    p0 = 0.0
    p1 = 0.0
    t0 = 0.0
    t1 = 0.0
    t = 0.0
    j_end = groups[2, g + 1]
    for k0 in range(groups[2, g], j_end, K.PIECE):
        k1 = min(k0 + K.PIECE, j_end)
        for q in range(k0, k1):
            prefetch(rows, np.int64(rater[min(q + AHEAD, last)] & _ID) * ROW)
            v = rater[q]
            u = v & _ID
            n = rated[kg]
            xs[q - k0] = nf[n] * rows[u, 0] + ni[n] * rows[u, 1] + rows[u, 2] + mu
            kg += (v >> 30) & 1
        t = K.derivatives(xs, ls, ws, positive, sw, w_pos, w_neg, k0, k1, want_loss, t)
        for q in range(k0, k1):
            v = rater[q]
            u = v & _ID
            dj = xs[q - k0]
            p0 += dj * rows[u, 0]
            p1 += dj * rows[u, 1]
            if v & _SEG_END:  # the segment's slice partials are complete
                t0 += p0
                t1 += p1
                p0 = 0.0
                p1 = 0.0
                if v & _NOTE_END:  # and so is its note
                    n = rated[ks]
                    g_nf[n] = t0
                    g_ni[n] = t1
                    t0 = 0.0
                    t1 = 0.0
                    ks += 1
    loss_g[g] = t


@numba.njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy", nogil=True)
def note_epoch_nb(rater, positive, sw, rated, rows, groups, work, loss_g, w_pos, w_neg, nf, ni, mu, want_loss,
                  g_nf, g_ni):  # fmt: skip
    """``epoch_nb``'s note gradients (``g_nf``, ``g_ni`` [N]) with raters and μ frozen, and its data
    loss when ``want_loss`` (else 0.0); groups in parallel. Per group of notes, in pieces of
    ``PIECE`` ratings cut anywhere: gather the logits, derivatives as ``epoch_nb`` forms them,
    then each segment's partials in registers, added to its note's sums where a segment ends
    (the rater's flags)."""
    for g in numba.prange(groups.shape[1] - 1):
        _note_group(g, rater, positive, sw, rated, rows, groups, work, loss_g, w_pos, w_neg, nf, ni, mu,
                    want_loss, g_nf, g_ni)  # fmt: skip
    return _total(loss_g)


@numba.njit(cache=True, fastmath={"contract"}, error_model="numpy", nogil=True)
def note_epoch_serial_nb(rater, positive, sw, rated, rows, groups, work, loss_g, w_pos, w_neg, nf, ni, mu,
                         want_loss, g_nf, g_ni):  # fmt: skip
    """``note_epoch_nb`` on the calling thread: the same bits without a parallel region's start
    and barrier, which cost as much as a small fit's epoch (an incremental run's hundreds of
    ratings)."""
    for g in range(groups.shape[1] - 1):
        _note_group(g, rater, positive, sw, rated, rows, groups, work, loss_g, w_pos, w_neg, nf, ni, mu,
                    want_loss, g_nf, g_ni)  # fmt: skip
    return _total(loss_g)


@numba.njit(cache=True, nogil=True)
def _total(loss_g):
    """The groups' losses added in group order."""
    loss = 0.0
    for g in range(loss_g.shape[0]):
        loss += loss_g[g]
    return loss

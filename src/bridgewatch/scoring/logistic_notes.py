"""The logistic model's epoch pass on ratings grouped by note, for fits that train only note blocks.

Final scoring's low-diligence refit (``diligence.fit_final_kept``) trains the note factors, then
the note intercepts, with raters and μ frozen. ``logistic_kernels.epoch_nb`` groups ratings by
rater: at an incremental run's sizes (2-3 ratings per rater) it spends most of its time entering
and leaving raters, forming rater gradients nobody reads and adding up note partials. Here the
ratings are regrouped once per fit (``note_pass``) into groups of whole notes, each group slice
by slice (the rater pass's ``CHUNKS`` slices of whole raters), each slice note by note; each
rating carries its rater id. An epoch gathers the logits (the frozen rater rows ``(f_u, rep_u,
i_u)`` prefetched ``AHEAD`` ratings on; a slice at a time, the rows read are a slice's), turns
them into derivatives with the rater pass's vectorized loop, and sums each note's gradient.

The bits are the rater pass's. Its note gradient is the slice partials added in slice order
(starting from +0.0), each partial its ratings' terms in rater order. Here a note's ratings in
one slice (a segment) are in rater order too, so the same partial forms in registers and is
added to the note's sum, slices in order (a slice without the note's ratings gives +0.0 there,
and adding +0.0 never changes a sum that started from +0.0). Only the data loss is summed in
another order (per group, groups in order): it can differ in its last bits, which moves a
stopping decision only if an epoch's loss change sits within them of the tolerance. Tests pin
equal epochs and parameter bytes against the rater pass.
"""

from __future__ import annotations

import numba
import numpy as np

from bridgewatch.scoring import logistic_kernels as K
from bridgewatch.scoring.prefetch import AHEAD, prefetch
from bridgewatch.scoring.threads import twin_kernels

# Parallel groups of whole notes (about equal ratings; they fix the loss's sum order): up to
# GROUPS, each of at least GROUP_MIN ratings (a group costs ~0.1 µs an epoch even when it is
# empty: at an incremental run's hundreds of ratings 16 groups doubled the pass).
GROUPS = 16
GROUP_MIN = 4096
ROW = 4  # a frozen rater row: (f_u, rep_u, i_u, unused), 32 bytes so it never straddles a line

NotePass = tuple[np.ndarray, ...]

# A rating's rater id carries a flag in its top bit (rater ids stay below MAX_RATERS):
_SEG_END = np.uint32(1 << 31)  # the last of a note's ratings in one slice (a segment)
_ID = np.uint32((1 << 31) - 1)
# The note pass reads a random rater row per rating where the rater pass reads a random note row
# and adds into a random partial row, and it saves the rater pass's per-rater work, so which is
# faster depends on the shape. Measured (ns per rating-epoch, rater pass → note pass): an
# incremental run's fits (3,000-10,000 ratings, 2-3 per rater) 17 → 9; 130,000-190,000 ratings,
# 20,000-50,000 raters of Zipf-spread activity, 4-10 per rater: 12-17 → 11.5-13; 1.3M ratings,
# 400,000 Zipf raters: 8.7 → 11.4 (2 threads); 5M, 500,000 raters: 7.5 → 10.2; 20M ratings,
# 2M notes, 1M raters: 20 → 15. It runs where it paid in every shape measured (``pays``):
# rater rows that stay in the cache (≤ 1.6 MB), few ratings per rater.
MAX_RATERS = 50_000
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
    ``sw``, the other empty): (rater uint32[R] each rating's rater, its top bit set on each
    segment's last rating; positive and sw in that order; seg_note uint32[S] each segment's
    note; rows float64[U, ROW] the frozen rater rows; groups int64[3, G+1] each group's first
    note, segment and rating (``n_groups``); work float64[G, 3, PIECE] scratch; loss_g
    float64[G]). Per rating 4 bytes (the rater) plus the weights, per segment 4."""
    rater, pos_n, sw_n, seg_note, groups = _by_note(
        indptr, sub_ptr, chunk_ptr, note, n_notes, positive, sw, n_groups(note.shape[0])
    )
    rows = np.zeros((rf.shape[0], ROW))
    rows[:, 0], rows[:, 1], rows[:, 2] = rf, rep, ri
    work = np.empty((groups.shape[1] - 1, 3, K.PIECE))
    return rater, pos_n, sw_n, seg_note, rows, groups, work, np.empty(groups.shape[1] - 1)


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
        np.zeros(0, np.uint32),
        empty_rows,
        e.reshape(3, 0),
        empty_work,
        e * 0.0,
    )


@numba.njit(cache=True, nogil=True)
def _by_note(indptr, sub_ptr, chunk_ptr, note, n_notes, positive, sw, n_g):
    """Regroup the rater-ordered ratings into ``n_g`` groups of whole notes, each group slice by
    slice, each slice note by note (a note's ratings in a slice: a segment, in rater order);
    flag each segment's last rating and list each segment's note. Counted, then filled."""
    n_r = note.shape[0]
    n_c = K.CHUNKS
    cut = indptr[sub_ptr[chunk_ptr]]  # each slice's first rating
    start = np.zeros(n_notes + 1, dtype=np.int64)
    for j in range(n_r):
        start[note[j] + 1] += 1
    for n in range(n_notes):
        start[n + 1] += start[n]  # where each note's ratings would start grouped by note
    first = np.empty(n_g + 1, dtype=np.int64)  # each group's first note
    n = 0
    for g in range(n_g + 1):
        while n < n_notes and start[n] * n_g < g * n_r:
            n += 1
        first[g] = n
    first[0], first[n_g] = 0, n_notes
    group = np.empty(n_notes, dtype=np.int64)
    for g in range(n_g):
        group[first[g] : first[g + 1]] = g
    block = np.zeros(n_g * n_c + 1, dtype=np.int64)  # ratings, then segments, per (group, slice)
    seg_block = np.zeros(n_g * n_c + 1, dtype=np.int64)
    last = np.full(n_notes, -1, dtype=np.int64)
    for c in range(n_c):
        for j in range(cut[c], cut[c + 1]):
            b = group[note[j]] * n_c + c + 1
            block[b] += 1
            if last[note[j]] != c:
                last[note[j]] = c
                seg_block[b] += 1
    for b in range(n_g * n_c):
        block[b + 1] += block[b]
        seg_block[b + 1] += seg_block[b]
    rater = np.empty(n_r, dtype=np.uint32)
    seg_note = np.empty(seg_block[n_g * n_c], dtype=np.uint32)
    weighted = sw.shape[0] > 0
    sw_n = np.empty(n_r if weighted else 0)
    pos_n = np.empty(0 if weighted else n_r, dtype=np.bool_)
    count = start[:n_notes]  # reused: the slice's ratings of each note, then where they go
    for c in range(n_c):
        count[:] = 0
        for j in range(cut[c], cut[c + 1]):
            count[note[j]] += 1
        for g in range(n_g):
            pos, s = block[g * n_c + c], seg_block[g * n_c + c]
            for n in range(first[g], first[g + 1]):
                if count[n] > 0:
                    seg_note[s] = n
                    s += 1
                    pos += count[n]
                    count[n] = pos - count[n]
                else:
                    count[n] = -1
        for u in range(sub_ptr[chunk_ptr[c]], sub_ptr[chunk_ptr[c + 1]]):
            for j in range(indptr[u], indptr[u + 1]):
                d = count[note[j]]
                count[note[j]] += 1
                rater[d] = u
                if weighted:
                    sw_n[d] = sw[j]
                else:
                    pos_n[d] = positive[j]
        for n in range(n_notes):
            if count[n] >= 0:
                rater[count[n] - 1] |= _SEG_END
    groups = np.empty((3, n_g + 1), dtype=np.int64)
    for g in range(n_g + 1):
        groups[0, g] = first[g]
        groups[1, g] = seg_block[g * n_c]
        groups[2, g] = block[g * n_c]
    return rater, pos_n, sw_n, seg_note, groups


@numba.njit(inline="always")
def _note_group(g, rater, positive, sw, seg_note, rows, groups, work, loss_g, w_pos, w_neg, nf, ni, mu,
                want_loss, g_nf, g_ni):  # fmt: skip
    """``note_epoch_nb``'s work on group ``g``: its notes' gradients, its loss into ``loss_g[g]``."""
    last = rater.shape[0] - 1
    for n in range(groups[0, g], groups[0, g + 1]):  # each note's sum starts at +0.0, as the
        g_nf[n] = 0.0  # rater pass's (notes without ratings keep it)
        g_ni[n] = 0.0
    xs, ls, ws = work[g, 0], work[g, 1], work[g, 2]
    kg = groups[1, g]  # the segment being gathered, then summed
    ks = kg
    p0 = 0.0
    p1 = 0.0
    t = 0.0
    j_end = groups[2, g + 1]
    for k0 in range(groups[2, g], j_end, K.PIECE):
        k1 = min(k0 + K.PIECE, j_end)
        for q in range(k0, k1):
            prefetch(rows, np.int64(rater[min(q + AHEAD, last)] & _ID) * ROW)
            v = rater[q]
            u = v & _ID
            n = seg_note[kg]
            xs[q - k0] = nf[n] * rows[u, 0] + ni[n] * rows[u, 1] + rows[u, 2] + mu
            kg += v >> 31
        t = K.derivatives(xs, ls, ws, positive, sw, w_pos, w_neg, k0, k1, want_loss, t)
        for q in range(k0, k1):
            v = rater[q]
            u = v & _ID
            dj = xs[q - k0]
            p0 += dj * rows[u, 0]
            p1 += dj * rows[u, 1]
            if v & _SEG_END:  # the segment's slice partial is complete: add it to its note's sum
                n = seg_note[ks]
                g_nf[n] += p0
                g_ni[n] += p1
                p0 = 0.0
                p1 = 0.0
                ks += 1
    loss_g[g] = t


def _note_epoch(rater, positive, sw, seg_note, rows, groups, work, loss_g, w_pos, w_neg, nf, ni, mu,
                want_loss, g_nf, g_ni):  # fmt: skip
    """``epoch_nb``'s note gradients (``g_nf``, ``g_ni`` [N]) with raters and μ frozen, and its data
    loss when ``want_loss`` (else 0.0); groups in parallel. Per group of notes, in pieces of
    ``PIECE`` ratings cut anywhere: gather the logits, derivatives as ``epoch_nb`` forms them,
    then each segment's partials in registers, added to its note's sums where a segment ends
    (the rater's flag)."""
    for g in numba.prange(groups.shape[1] - 1):
        _note_group(g, rater, positive, sw, seg_note, rows, groups, work, loss_g, w_pos, w_neg, nf, ni, mu,
                    want_loss, g_nf, g_ni)  # fmt: skip
    return _total(loss_g)


# The serial form, the same bits without a parallel region's start and barrier, runs on one numba
# thread: those cost as much as a small fit's epoch (an incremental run's hundreds of ratings).
note_epoch_serial_nb, note_epoch_nb = twin_kernels(fastmath={"contract"}, error_model="numpy", nogil=True)(
    _note_epoch
)


@numba.njit(cache=True, nogil=True)
def _total(loss_g):
    """The groups' losses added in group order."""
    loss = 0.0
    for g in range(loss_g.shape[0]):
        loss += loss_g[g]
    return loss

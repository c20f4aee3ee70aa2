"""The logistic epoch pass (``logistic_kernels.epoch_nb``) walked by note block, for X's scale.

``epoch_nb`` walks each slice's ratings rater by rater and gathers every rating's note row at
random. At 2.5M notes the packed rows (40 MB) and a slice's note partials (40 MB) are far larger
than the L3 cache, so the prefetched lines come from memory; the Adam replay's pass ran twice as
fast once its ratings were tiled by block of notes (``mf_adam_kernels``). This is the same walk
for the logistic fits (the low-diligence model's rounds, the harassment model), without moving
a single rating: a *run* is a stretch of one rater's ratings (in the layout's rater order) whose
notes are all in one block of 2^``prefetch.BLOCK_SHIFT`` notes, and each slice visits its runs by
block, then rater, then position. Every per-rating array (notes, targets, weights) stays in rater
order as the layout's callers built it; only the walk changes.

A rater's sums carry from one of its runs to the next in the gradient arrays. The matrix hands
every rater's ratings over in note order, so its runs come in the order of its ratings and each
sum adds the same terms in the same order as ``epoch_nb``; each note's partial adds its raters in
rater order, as before. Every gradient keeps its bits; only the data loss, which the stopping
rule alone reads, adds the same terms in another order. A run set is built once per layout.
"""

from __future__ import annotations

import numba
import numpy as np

from bridgewatch.scoring.logistic_kernels import CHUNKS, PIECE, derivatives
from bridgewatch.scoring.prefetch import AHEAD, prefetch


@numba.njit(cache=True, parallel=True, nogil=True)
def _segment_counts(indptr, first_rater, note, shift, n_blocks):
    """int64[CHUNKS, n_blocks]: each slice's runs per block (slice c: raters
    ``first_rater[c]:first_rater[c+1]``)."""
    counts = np.zeros((CHUNKS, n_blocks), dtype=np.int64)
    for c in numba.prange(CHUNKS):
        for u in range(first_rater[c], first_rater[c + 1]):
            prev = -1
            for j in range(indptr[u], indptr[u + 1]):
                b = np.int64(note[j] >> shift)
                if b != prev:
                    counts[c, b] += 1
                    prev = b
    return counts


@numba.njit(cache=True, parallel=True, nogil=True)
def _fill_runs(indptr, first_rater, note, shift, offsets, run_rater, run_start, run_end):
    """Write each slice's runs at ``offsets[c, b]`` (its first run in block b), in rater then
    position order within a block."""
    for c in numba.prange(CHUNKS):
        pos = offsets[c].copy()
        for u in range(first_rater[c], first_rater[c + 1]):
            prev = -1
            for j in range(indptr[u], indptr[u + 1]):
                b = np.int64(note[j] >> shift)
                if b != prev:
                    r = pos[b]
                    pos[b] = r + 1
                    run_rater[r] = u
                    run_start[r] = j
                    prev = b
                run_end[pos[b] - 1] = j + 1


@numba.njit(cache=True, nogil=True)
def _pieces(run_start, run_end, slice_runs, piece):
    """(piece_ptr int64[P+1]: first run of each piece, slice_piece int64[CHUNKS+1]: first piece of
    each slice, width: the most ratings in one piece): runs grouped into pieces of at least
    ``piece`` ratings (a slice's last may hold fewer), the unit the pass keeps in cache."""
    starts = [np.int64(0)]
    slice_piece = np.zeros(CHUNKS + 1, dtype=np.int64)
    width = 0
    for c in range(CHUNKS):
        held = 0
        for r in range(slice_runs[c], slice_runs[c + 1]):
            held += run_end[r] - run_start[r]
            if held >= piece or r + 1 == slice_runs[c + 1]:
                starts.append(np.int64(r + 1))
                width = max(width, held)
                held = 0
        slice_piece[c + 1] = len(starts) - 1
    return np.array(starts, dtype=np.int64), slice_piece, width


def note_tiles(
    indptr: np.ndarray, first_rater: np.ndarray, note: np.ndarray, n_notes: int, block_shift: int
) -> tuple[tuple[np.ndarray, ...], int]:
    """The runs of a rater-ordered layout (``indptr`` int64[U+1], ``first_rater`` int64[CHUNKS+1]:
    the slices' first raters, ``note`` uint32[R]) for blocks of 2^``block_shift`` notes, as the
    tuple ``epoch_tiled_nb`` takes (run_rater, run_start, run_end, piece_ptr, slice_piece), and
    the scratch width its pieces need. With one block there is nothing to tile: empty arrays
    (``tiled`` is false) and width 0."""
    n_blocks = max(1, ((n_notes - 1) >> block_shift) + 1)
    if n_blocks == 1:
        return untiled(), 0
    shift = np.uint32(block_shift)
    counts = _segment_counts(indptr, first_rater, note, shift, n_blocks)
    offsets = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts.ravel(), out=offsets[1:])
    n_runs = int(offsets[-1])
    run_rater = np.empty(n_runs, dtype=np.uint32)
    run_start = np.empty(n_runs, dtype=np.int64)
    run_end = np.empty(n_runs, dtype=np.int64)
    _fill_runs(indptr, first_rater, note, shift, offsets[:-1].reshape(CHUNKS, n_blocks), run_rater,
               run_start, run_end)  # fmt: skip
    slice_runs = np.ascontiguousarray(offsets[::n_blocks])
    piece_ptr, slice_piece, width = _pieces(run_start, run_end, slice_runs, PIECE)
    return (run_rater, run_start, run_end, piece_ptr, slice_piece), int(width)


def untiled() -> tuple[np.ndarray, ...]:
    """The run tuple of a layout whose pass is ``epoch_nb``'s."""
    empty = np.zeros(0, dtype=np.int64)
    return (np.zeros(0, dtype=np.uint32), empty, empty, empty, empty)


@numba.njit(inline="always")
def tiled(tiles) -> bool:
    return tiles[4].shape[0] > 0


@numba.njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy", nogil=True)
def epoch_tiled_nb(
    tiles, first_rater, note, positive, sw, w_pos, w_neg, rater_w, divisor, packed, rf, ri, rep, mu,
    want_loss, work, notes_c, flags_c, g_rf, g_ri, g_rep, part, loss_c,
):  # fmt: skip
    """``epoch_nb`` walked by ``tiles`` (``note_tiles``): the same arguments, results and weight
    forms; ``notes_c`` uint32 and ``flags_c`` bool [CHUNKS, width] hold a piece's notes and
    targets next to ``work``'s logits, losses and weights, so the gather can prefetch the note
    rows ``AHEAD`` ratings on across runs. Per piece: copy the notes (and targets), gather the
    logits and weights, turn them into derivatives (``derivatives``, vectorized), add up per run.
    """
    run_rater, run_start, run_end, piece_ptr, slice_piece = tiles
    n_n, width = packed.shape[0], packed.shape[1]
    factored = rater_w.shape[0] > 0
    per_rating = sw.shape[0] > 0
    for c in numba.prange(CHUNKS):
        part[c, :, :] = 0.0
        for u in range(first_rater[c], first_rater[c + 1]):
            g_rf[u] = 0.0
            g_ri[u] = 0.0
            g_rep[u] = 0.0
        t = 0.0
        dc, lc, wc = work[c, 0], work[c, 1], work[c, 2]
        nc, fc = notes_c[c], flags_c[c]
        for s in range(slice_piece[c], slice_piece[c + 1]):
            r0, r1 = piece_ptr[s], piece_ptr[s + 1]
            k = 0
            for r in range(r0, r1):
                for j in range(run_start[r], run_end[r]):
                    nc[k] = note[j]
                    if per_rating:
                        wc[k] = sw[j]
                    else:
                        fc[k] = positive[j]
                    k += 1
            last = k - 1
            k = 0
            for r in range(r0, r1):
                u = run_rater[r]
                a_rf, a_rep, a_ri = rf[u], rep[u], ri[u]
                if factored:
                    on_neg, on_pos = rater_w[u, 0], rater_w[u, 1]
                for _ in range(run_end[r] - run_start[r]):
                    ahead = np.int64(nc[min(k + AHEAD, last)])
                    prefetch(packed, ahead * width)
                    prefetch(part, (c * n_n + ahead) * 2)
                    n = nc[k]
                    dc[k] = packed[n, 0] * a_rf + packed[n, 1] * a_rep + a_ri + mu
                    if factored:  # rater term × note term, ÷ R, the sign (epoch_nb's steps)
                        w = ((on_pos if fc[k] else on_neg) * packed[n, 2]) / divisor
                        wc[k] = -w if fc[k] else w
                    elif not per_rating:
                        wc[k] = w_pos if fc[k] else w_neg
                    k += 1
            t = derivatives(dc, lc, wc, positive, wc, w_pos, w_neg, 0, k, want_loss, t)
            k = 0
            for r in range(r0, r1):
                u = run_rater[r]
                a = g_rf[u]
                b = g_ri[u]
                q = g_rep[u]
                a_rf, a_rep = rf[u], rep[u]
                for _ in range(run_end[r] - run_start[r]):
                    dj = dc[k]
                    n = nc[k]
                    a += dj * packed[n, 0]
                    b += dj
                    q += dj * packed[n, 1]
                    part[c, n, 0] += dj * a_rf
                    part[c, n, 1] += dj * a_rep
                    k += 1
                g_rf[u] = a
                g_ri[u] = b
                g_rep[u] = q
        loss_c[c] = t
    loss = 0.0
    for c in range(CHUNKS):
        loss += loss_c[c]
    dsum = 0.0
    for u in range(g_ri.shape[0]):
        dsum += g_ri[u]
    return loss, dsum

"""The data part of the Adam replay's loss and gradient (``mf_adam``) as one parallel pass per epoch.

The squared-error pass over all ratings is most of every prescoring fit, and a serial loop over
ratings in input order cannot be split: any two ratings may share a note or a rater. So the
ratings are regrouped by rater once per fit (a stable counting sort, which keeps each rater's
ratings in input order) and cut into ``CHUNKS`` fixed slices of whole raters with about the same
number of ratings. Each slice owns its raters' gradients outright, and adds its notes' gradients
into a partial array of its own; the note partials, the squared errors and the μ gradient are
then added up in slice order. The slices are fixed by the data, not by the thread count, so the
result is bit-identical for any number of threads (and differs from the old input-order loop
only in the order of the note, squared-error and μ sums; each rater's sums keep their order).

The pass streams the ratings in order but gathers each rating's note parameters and adds into its
note partials at random: once the note arrays outgrow the core's L2 cache (about 30,000 notes)
those are cache misses, and they made a rating cost 3–4 times more at 200,000 notes than at
20,000. So the note parameters are copied once per epoch into one packed row per note
(intercept, factors), laid out like the partials' rows: one cache line to fetch and one to
update per rating instead of three; and the pass prefetches both lines ``prefetch.AHEAD``
ratings ahead, so it rarely waits for them (4x faster at 200,000 notes; the same speed as at
20,000 per rating). Neither changes any arithmetic, so the bits stay.

At X's scale (2.5M notes) the packed rows and one slice's partials are 40 MB each, more than the
L3 cache, so the prefetched lines come from memory: a rating cost 8.1–8.8 ns (two threads, the
public-scale community's 206M ratings), twice what it costs once the walk stays in cache. So
each slice's ratings are tiled by note block (``BLOCK_SHIFT``: 2^18
notes, 4 MB of packed rows and 4 MB of partials, which two threads' blocks share the L3 with): the
slice walks block after block, and within a block its raters in order, each rater's ratings of
that block in input order (a *run*). A rater's sums are carried from one of its runs to the next
in ``g_ri``/``g_rf``. The matrix keeps each rater's ratings in note order, so the runs of a rater
visit its ratings in the same order as before and every gradient keeps its bits; only the
squared error, which only the stopping rule reads, is added up in the new order. Below one
block's notes there is one run per rater: the untiled pass. Tiled, the same epoch's pass took
3.9 ns a rating (0.80 s against 1.66–1.81 s; blocks of 2^17 notes as fast, 2^19 5.0 ns).

``data_loss_and_grads_np`` is the vectorized numpy twin (tests compare the two).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numba
import numpy as np

from bridgewatch.scoring.logistic_kernels import CHUNKS
from bridgewatch.scoring.prefetch import AHEAD, prefetch
from bridgewatch.scoring.threads import threads_for

T = TypeVar("T")

# log2 of the notes per block of the tiled order (module docstring): 4 MB of packed rows and 4 MB
# of one slice's partials at k = 1.
BLOCK_SHIFT = 18


@dataclass(frozen=True, eq=False)
class AdamLayout:
    """Ratings grouped by rater, cut into ``CHUNKS`` slices and tiled by note block within each
    slice, with the pass's scratch arrays.

    ``indptr``: int64[U+1] rater boundaries of the rater order (a slice's ratings are
    ``indptr[cuts[c]]:indptr[cuts[c+1]]`` in both orders); ``cuts``: int64[CHUNKS+1] first rater
    of each slice; ``run_cuts``: int64[CHUNKS+1] first run of each slice; ``run_rater``:
    uint32[T] and ``run_end``: int64[T] each run's rater and end (a run starts where the one
    before it ends, or at its slice's start); ``note``/``value``/``weight``: per rating in the
    tiled order (``weight`` empty when unweighted; ``value`` float64, or the matrix's float32
    when read from it: ``mf_adam.adam_fit_problem``); ``packed``: [N, 1+k] the epoch's note
    parameters (intercept, factors), one row per note; ``part``: [CHUNKS, N, 1+k] note partials
    (intercept, factors); ``sums``: [CHUNKS, 2] (squared error, μ gradient) per slice.
    """

    indptr: np.ndarray
    cuts: np.ndarray
    run_cuts: np.ndarray
    run_rater: np.ndarray
    run_end: np.ndarray
    note: np.ndarray
    value: np.ndarray
    weight: np.ndarray
    packed: np.ndarray
    part: np.ndarray
    sums: np.ndarray

    @property
    def n_ratings(self) -> int:
        return int(self.note.shape[0])


def adam_layout(
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    n_notes: int,
    n_raters: int,
    k: int,
    weight: np.ndarray | None = None,
    block_shift: int | None = None,
) -> AdamLayout:
    """Group one fit's ratings by rater and tile them (O(R)); ``weight``: optional float64[R]
    loss weights."""
    if k < 1:
        raise ValueError("the data pass needs at least one factor")
    rater = np.asarray(rater)  # any integer type: the kernel compiles for it, no conversion copy
    indptr = np.zeros(n_raters + 1, dtype=np.int64)
    np.cumsum(np.bincount(rater, minlength=n_raters), out=indptr[1:])
    w = np.zeros(0) if weight is None else np.asarray(weight, dtype=np.float64)
    grouped = _group_by_rater(rater, np.asarray(note), np.asarray(value, dtype=np.float64), w, indptr)
    return layout_of(indptr, grouped[0], grouped[1], grouped[2], n_notes, k, block_shift)


def layout_of(
    indptr: np.ndarray,
    note: np.ndarray,
    value: np.ndarray,
    weight: np.ndarray,
    n_notes: int,
    k: int,
    block_shift: int | None = None,
) -> AdamLayout:
    """The layout of ratings already grouped by rater (``indptr``: int64[U+1]; ``note`` uint32,
    ``value`` float64 or float32 per rating: the pass widens each value to float64 before any
    arithmetic, so a float32 copy of values float32 holds exactly gives the same bits in half
    the bytes), with its slices, runs and scratch arrays. ``note``, ``value`` and ``weight`` are
    reordered in place into the tiled order (blocks of 2^``block_shift`` notes, by default
    ``BLOCK_SHIFT``, read at the call), which costs one slice's worth of scratch instead of a
    second copy of the ratings."""
    if k < 1:
        raise ValueError("the data pass needs at least one factor")
    if block_shift is None:
        block_shift = BLOCK_SHIFT
    cuts = slice_cuts(indptr)
    n_blocks = max(1, ((n_notes - 1) >> block_shift) + 1)
    counts = _count_runs(indptr, cuts, note, np.uint32(block_shift), n_blocks)
    run_cuts = np.zeros(CHUNKS + 1, dtype=np.int64)
    np.cumsum(counts[:, 1].sum(axis=1), out=run_cuts[1:])
    run_rater = np.empty(int(run_cuts[-1]), dtype=np.uint32)
    run_end = np.empty(int(run_cuts[-1]), dtype=np.int64)
    _tile(indptr, cuts, run_cuts, counts, note, value, weight, np.uint32(block_shift), run_rater, run_end)
    return AdamLayout(
        indptr=indptr,
        cuts=cuts,
        run_cuts=run_cuts,
        run_rater=run_rater,
        run_end=run_end,
        note=note,
        value=value,
        weight=weight,
        packed=np.empty((n_notes, 1 + k)),
        part=np.empty((CHUNKS, n_notes, 1 + k)),
        sums=np.empty((CHUNKS, 2)),
    )


def slice_cuts(indptr: np.ndarray) -> np.ndarray:
    """int64[CHUNKS+1]: the first rater of each slice, given the raters' boundaries ``indptr``
    (int64[U+1]). Slice c starts at the first rater whose ratings begin at or after c/CHUNKS of
    all ratings; these cuts fix the order the note sums are added in, so the bits."""
    n_raters = indptr.shape[0] - 1
    targets = -(-np.arange(CHUNKS + 1, dtype=np.int64) * indptr[-1] // CHUNKS)
    cuts = np.minimum(np.searchsorted(indptr, targets, side="left"), n_raters).astype(np.int64)
    cuts[0], cuts[-1] = 0, n_raters
    return cuts


@numba.njit(cache=True, parallel=True, nogil=True)
def _count_runs(indptr, cuts, note, shift, n_blocks):
    """int64[CHUNKS, 2, n_blocks]: each slice's ratings and runs (one per (rater, note block)
    holding ratings) in each block, which ``_tile`` lays out."""
    counts = np.zeros((CHUNKS, 2, n_blocks), dtype=np.int64)
    for c in numba.prange(CHUNKS):
        seen = np.full(n_blocks, -1, dtype=np.int64)  # the last rater counted in each block
        for u in range(cuts[c], cuts[c + 1]):
            for j in range(indptr[u], indptr[u + 1]):
                b = note[j] >> shift
                counts[c, 0, b] += 1
                if seen[b] != u:
                    seen[b] = u
                    counts[c, 1, b] += 1
    return counts


@numba.njit(cache=True, parallel=True, nogil=True)
def _tile(indptr, cuts, run_cuts, counts, note, value, weight, shift, run_rater, run_end):
    """Reorder each slice's ratings (in place) by note block, stably, so each block holds its
    raters in order, each rater's ratings in input order; write the runs (``counts``:
    ``_count_runs``). With one block the order is already the tiled one and only the runs are
    written."""
    weighted = weight.shape[0] == note.shape[0]
    n_blocks = counts.shape[2]
    for c in numba.prange(CHUNKS):
        start, stop = indptr[cuts[c]], indptr[cuts[c + 1]]
        first = np.zeros(n_blocks + 1, dtype=np.int64)  # each block's first rating, then run
        first_run = np.zeros(n_blocks + 1, dtype=np.int64)
        for b in range(n_blocks):
            first[b + 1] = first[b] + counts[c, 0, b]
            first_run[b + 1] = first_run[b] + counts[c, 1, b]
        seen = np.full(n_blocks, -1, dtype=np.int64)
        if n_blocks > 1:
            t_note = np.empty(stop - start, dtype=note.dtype)
            t_value = np.empty(stop - start, dtype=value.dtype)
            t_weight = np.empty(stop - start if weighted else 0, dtype=weight.dtype)
        else:
            t_note, t_value, t_weight = note[start:stop], value[start:stop], weight[start:0]
        for u in range(cuts[c], cuts[c + 1]):
            for j in range(indptr[u], indptr[u + 1]):
                b = note[j] >> shift
                if seen[b] != u:
                    seen[b] = u
                    run_rater[run_cuts[c] + first_run[b]] = u
                    first_run[b] += 1
                p = first[b]
                first[b] = p + 1
                run_end[run_cuts[c] + first_run[b] - 1] = start + p + 1
                if n_blocks > 1:
                    t_note[p] = note[j]
                    t_value[p] = value[j]
                    if weighted:
                        t_weight[p] = weight[j]
        if n_blocks > 1:
            note[start:stop] = t_note
            value[start:stop] = t_value
            if weighted:
                weight[start:stop] = t_weight


@numba.njit(cache=True, nogil=True)
def _group_by_rater(rater, note, value, weight, indptr):
    """(note uint32, value, weight) per rating in rater order, each rater's in input order: one
    stable counting-sort scatter instead of a permutation and a gather per array. The notes are
    unsigned so the epoch pass's gathers need no negative-index wraparound code."""
    n_r = rater.shape[0]
    weighted = weight.shape[0] == n_r
    note_out = np.empty(n_r, dtype=np.uint32)
    value_out = np.empty(n_r)
    weight_out = np.empty(n_r if weighted else 0)
    pos = indptr[:-1].copy()
    for j in range(n_r):
        p = pos[rater[j]]
        pos[rater[j]] = p + 1
        note_out[p] = note[j]
        value_out[p] = value[j]
        if weighted:
            weight_out[p] = weight[j]
    return note_out, value_out, weight_out


@numba.njit(cache=True, nogil=True)
def _pack_notes(ni, nf, packed):
    """packed[n] = (ni[n], nf[n, 0], ..., nf[n, k-1]): one row (for k = 1, 16 bytes, never split
    across two cache lines) for the pass to gather per rating."""
    k = nf.shape[1]
    for n in range(ni.shape[0]):
        packed[n, 0] = ni[n]
        for f in range(k):
            packed[n, 1 + f] = nf[n, f]


@numba.njit(cache=True, parallel=True, error_model="numpy", nogil=True)
def _data_pass(indptr, cuts, run_cuts, run_rater, run_end, note, value, weight, mu, packed, ri, rf, g_ri,
               g_rf, part, sums):  # fmt: skip
    """Gradient of (1/R)·Σ w·(pred − value)² per slice: rater blocks into ``g_ri``/``g_rf``, note
    partials into ``part[c]``, (squared error, μ gradient) into ``sums[c]``; ``packed`` holds the
    note parameters (``_pack_notes``).

    Per rating the arithmetic is the old serial loop's, operation for operation (w = 1 when
    unweighted multiplies exactly). A rater's sums start at 0 and run over its runs in order; the
    μ gradient adds the slice's rater sums in rater order, as when each rater was one run.
    """
    n_r = note.shape[0]
    k = rf.shape[1]
    width = 1 + k
    weighted = weight.shape[0] == n_r
    scale = 2.0 / n_r
    for c in numba.prange(CHUNKS):
        part[c] = 0.0
        for u in range(cuts[c], cuts[c + 1]):
            g_ri[u] = 0.0
            for f in range(k):
                g_rf[u, f] = 0.0
        acc = np.zeros(k)
        sse = 0.0
        j0 = indptr[cuts[c]]
        last = indptr[cuts[c + 1]] - 1  # the slice's last rating: prefetches stay inside it
        base_c = c * packed.shape[0] * width
        for r in range(run_cuts[c], run_cuts[c + 1]):
            u = run_rater[r]
            base = mu + ri[u]
            # the first factor in registers (k = 1 in production: twice as fast as the loops,
            # whose stores the compiler must assume alias ``rf`` and reload it every rating)
            f0 = rf[u, 0]
            b = g_ri[u]
            a0 = g_rf[u, 0]
            for f in range(1, k):
                acc[f] = g_rf[u, f]
            end = run_end[r]
            for j in range(j0, end):
                ahead = np.int64(note[min(j + AHEAD, last)]) * width
                prefetch(packed, ahead)
                prefetch(part, base_c + ahead)
                n = note[j]
                pred = base + packed[n, 0]
                pred += f0 * packed[n, 1]
                for f in range(1, k):
                    pred += rf[u, f] * packed[n, 1 + f]
                err = pred - value[j]
                w = weight[j] if weighted else 1.0
                sse += w * err * err
                d = scale * w * err
                b += d
                part[c, n, 0] += d
                part[c, n, 1] += d * f0
                a0 += d * packed[n, 1]
                for f in range(1, k):
                    part[c, n, 1 + f] += d * rf[u, f]
                    acc[f] += d * packed[n, 1 + f]
            j0 = end
            g_ri[u] = b
            g_rf[u, 0] = a0
            for f in range(1, k):
                g_rf[u, f] = acc[f]
        g_mu = 0.0
        for u in range(cuts[c], cuts[c + 1]):
            g_mu += g_ri[u]
        sums[c, 0] = sse
        sums[c, 1] = g_mu


@numba.njit(cache=True, nogil=True)
def _note_totals(part, sums, g_ni, g_nf):
    """Add the slices' note partials in slice order; returns (Σ squared error, Σ μ gradient).

    Serial on purpose (as ``logistic_kernels.note_totals_nb``): a second parallel region per
    epoch doubles the barrier waits, which dominate on a machine shared with other work.
    """
    n_c, n_n, width = part.shape
    for n in range(n_n):
        s = 0.0
        for c in range(n_c):
            s += part[c, n, 0]
        g_ni[n] = s
        for f in range(width - 1):
            s = 0.0
            for c in range(n_c):
                s += part[c, n, 1 + f]
            g_nf[n, f] = s
    sse = 0.0
    g_mu = 0.0
    for c in range(n_c):
        sse += sums[c, 0]
        g_mu += sums[c, 1]
    return sse, g_mu


@numba.njit(cache=True, nogil=True)
def data_pass_nb(lay, mu, ni, nf, ri, rf, g_ni, g_nf, g_ri, g_rf):
    """``data_loss_and_grads`` on the layout's arrays (``lay``: ``layout_arrays``), callable from
    jitted code (``mf_adam``'s epoch loop): pack, the parallel pass, the slice totals. Returns
    ((1/R)·Σ w·err², μ gradient)."""
    indptr, cuts, run_cuts, run_rater, run_end, note, value, weight, packed, part, sums = lay
    _pack_notes(ni, nf, packed)
    _data_pass(indptr, cuts, run_cuts, run_rater, run_end, note, value, weight, mu, packed, ri, rf, g_ri,
               g_rf, part, sums)  # fmt: skip
    sse, g_mu = _note_totals(part, sums, g_ni, g_nf)
    return sse / note.shape[0], g_mu


def data_loss_and_grads(
    lay: AdamLayout,
    mu: float,
    ni: np.ndarray,
    nf: np.ndarray,
    ri: np.ndarray,
    rf: np.ndarray,
    g_ni: np.ndarray,
    g_nf: np.ndarray,
    g_ri: np.ndarray,
    g_rf: np.ndarray,
) -> tuple[float, float]:
    """(1/R)·Σ w·err² and its μ gradient; overwrites the ``g_*`` blocks with the data gradient."""
    return data_pass_nb(layout_arrays(lay), mu, ni, nf, ri, rf, g_ni, g_nf, g_ri, g_rf)


def layout_arrays(lay: AdamLayout) -> tuple[np.ndarray, ...]:
    """The layout's arrays as the one tuple the jitted epoch loop takes (numba takes no
    dataclass)."""
    return (lay.indptr, lay.cuts, lay.run_cuts, lay.run_rater, lay.run_end, lay.note, lay.value,
            lay.weight, lay.packed, lay.part, lay.sums)  # fmt: skip


def data_loss_and_grads_np(
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    mu: float,
    ni: np.ndarray,
    nf: np.ndarray,
    ri: np.ndarray,
    rf: np.ndarray,
    weight: np.ndarray | None = None,
) -> tuple[float, float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The numpy twin of ``data_loss_and_grads`` on input-order arrays:
    (loss, μ gradient, g_ni, g_nf, g_ri, g_rf)."""
    n_r = value.shape[0]
    w = np.ones(n_r) if weight is None else np.asarray(weight, dtype=np.float64)
    err = mu + ri[rater] + ni[note] + np.einsum("rf,rf->r", rf[rater], nf[note]) - value
    d = 2.0 / n_r * w * err
    g_nf = np.stack([np.bincount(note, d * rf[rater, f], ni.shape[0]) for f in range(nf.shape[1])], axis=1)
    g_rf = np.stack([np.bincount(rater, d * nf[note, f], ri.shape[0]) for f in range(rf.shape[1])], axis=1)
    g_ni = np.bincount(note, d, ni.shape[0])
    g_ri = np.bincount(rater, d, ri.shape[0])
    loss = float(np.sum(w * err * err)) / n_r
    return loss, float(d.sum()), g_ni, g_nf.reshape(nf.shape), g_ri, g_rf.reshape(rf.shape)


def serial_when_small(fit: Callable[..., T]) -> Callable[..., T]:
    """Run ``fit(note, ...)`` under ``threads_for(len(note))``: a decorator, so the fit's own
    loop stays as it is."""

    @functools.wraps(fit)
    def wrapper(note: np.ndarray, *args: Any, **kwargs: Any) -> T:
        with threads_for(np.shape(note)[0]):
            return fit(note, *args, **kwargs)

    return wrapper

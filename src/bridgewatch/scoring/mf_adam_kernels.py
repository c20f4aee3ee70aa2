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


@dataclass(frozen=True, eq=False)
class AdamLayout:
    """Ratings grouped by rater and cut into ``CHUNKS`` slices, with the pass's scratch arrays.

    ``indptr``: int64[U+1] rater boundaries; ``cuts``: int64[CHUNKS+1] first rater of each slice;
    ``note``/``value``/``weight``: per rating in rater order (``weight`` empty when unweighted;
    ``value`` float64, or the matrix's float32 when read from it: ``mf_adam.adam_fit_problem``);
    ``packed``: [N, 1+k] the epoch's note parameters (intercept, factors), one row per note;
    ``part``: [CHUNKS, N, 1+k] note partials (intercept, factors); ``sums``: [CHUNKS, 2]
    (squared error, μ gradient) per slice.
    """

    indptr: np.ndarray
    cuts: np.ndarray
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
) -> AdamLayout:
    """Group one fit's ratings by rater (O(R)); ``weight``: optional float64[R] loss weights."""
    if k < 1:
        raise ValueError("the data pass needs at least one factor")
    rater = np.asarray(rater)  # any integer type: the kernel compiles for it, no conversion copy
    indptr = np.zeros(n_raters + 1, dtype=np.int64)
    np.cumsum(np.bincount(rater, minlength=n_raters), out=indptr[1:])
    w = np.zeros(0) if weight is None else np.asarray(weight, dtype=np.float64)
    grouped = _group_by_rater(rater, np.asarray(note), np.asarray(value, dtype=np.float64), w, indptr)
    return layout_of(indptr, grouped[0], grouped[1], grouped[2], n_notes, k)


def layout_of(
    indptr: np.ndarray, note: np.ndarray, value: np.ndarray, weight: np.ndarray, n_notes: int, k: int
) -> AdamLayout:
    """The layout of ratings already grouped by rater (``indptr``: int64[U+1]; ``note`` uint32,
    ``value`` float64 or float32 per rating: the pass widens each value to float64 before any
    arithmetic, so a float32 copy of values float32 holds exactly gives the same bits in half
    the bytes), with its slices and scratch arrays."""
    if k < 1:
        raise ValueError("the data pass needs at least one factor")
    return AdamLayout(
        indptr=indptr,
        cuts=slice_cuts(indptr),
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
def _data_pass(indptr, cuts, note, value, weight, mu, packed, ri, rf, g_ri, g_rf, part, sums):
    """Gradient of (1/R)·Σ w·(pred − value)² per slice: rater blocks into ``g_ri``/``g_rf``, note
    partials into ``part[c]``, (squared error, μ gradient) into ``sums[c]``; ``packed`` holds the
    note parameters (``_pack_notes``).

    Per rating the arithmetic is the old serial loop's, operation for operation (w = 1 when
    unweighted multiplies exactly), so only the order of the note sums differs from it.
    """
    n_r = note.shape[0]
    k = rf.shape[1]
    width = 1 + k
    weighted = weight.shape[0] == n_r
    scale = 2.0 / n_r
    for c in numba.prange(CHUNKS):
        part[c] = 0.0
        acc = np.zeros(k)
        sse = 0.0
        g_mu = 0.0
        last = indptr[cuts[c + 1]] - 1  # the slice's last rating: prefetches stay inside it
        base_c = c * packed.shape[0] * width
        for u in range(cuts[c], cuts[c + 1]):
            base = mu + ri[u]
            # the first factor in registers (k = 1 in production: twice as fast as the loops,
            # whose stores the compiler must assume alias ``rf`` and reload it every rating)
            f0 = rf[u, 0]
            b = 0.0
            a0 = 0.0
            acc[:] = 0.0
            for j in range(indptr[u], indptr[u + 1]):
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
            g_ri[u] = b
            g_rf[u, 0] = a0
            for f in range(1, k):
                g_rf[u, f] = acc[f]
            g_mu += b
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
def data_pass_nb(
    indptr, cuts, note, value, weight, packed, part, sums, mu, ni, nf, ri, rf, g_ni, g_nf, g_ri, g_rf
):
    """``data_loss_and_grads`` on the layout's arrays, callable from jitted code (``mf_adam``'s
    epoch loop): pack, the parallel pass, the slice totals. Returns ((1/R)·Σ w·err², μ gradient)."""
    _pack_notes(ni, nf, packed)
    _data_pass(indptr, cuts, note, value, weight, mu, packed, ri, rf, g_ri, g_rf, part, sums)
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
    return data_pass_nb(
        lay.indptr, lay.cuts, lay.note, lay.value, lay.weight, lay.packed, lay.part, lay.sums,
        mu, ni, nf, ri, rf, g_ni, g_nf, g_ri, g_rf,
    )  # fmt: skip


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

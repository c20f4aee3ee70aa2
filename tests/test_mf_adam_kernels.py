"""The Adam replay's parallel data pass: agrees with its numpy twin, same bytes for any thread count."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest

from bridgewatch.io.dataset import Dataset
from bridgewatch.scoring import mf_adam_kernels as K
from bridgewatch.scoring import pipeline, threads
from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf_adam import adam_fit


def problem(n_notes=70, n_raters=200, n_ratings=5000, k=1, seed=0):
    rng = np.random.default_rng(seed)
    # input order shuffled, raters of very different activity (some slices hold one big rater)
    rater = np.minimum(rng.zipf(1.6, n_ratings) - 1, n_raters - 1)
    note = rng.integers(0, n_notes, n_ratings)
    value = rng.random(n_ratings)
    start = (
        0.1,
        rng.normal(0, 0.1, n_notes),
        rng.normal(0, 0.3, (n_notes, k)),
        rng.normal(0, 0.1, n_raters),
        rng.normal(0, 0.3, (n_raters, k)),
    )
    return note, rater, value, start


def run_pass(note, rater, value, start, weight=None, block_shift=None):
    mu, ni, nf, ri, rf = start
    lay = K.adam_layout(note, rater, value, ni.shape[0], ri.shape[0], nf.shape[1], weight, block_shift)
    grads = [np.full_like(a, np.nan) for a in (ni, nf, ri, rf)]  # every entry must be written
    loss, g_mu = K.data_loss_and_grads(lay, mu, ni, nf, ri, rf, *grads)
    return loss, g_mu, grads


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
def test_pass_matches_the_numpy_twin(k, weighted):
    note, rater, value, start = problem(k=k)
    weight = np.random.default_rng(1).random(value.shape[0]) if weighted else None
    loss, g_mu, grads = run_pass(note, rater, value, start, weight)
    want = K.data_loss_and_grads_np(note, rater, value, *start, weight=weight)
    assert np.isclose(loss, want[0], rtol=1e-13) and np.isclose(g_mu, want[1], rtol=1e-12, atol=1e-15)
    for got, ref in zip(grads, want[2:], strict=True):
        assert got.shape == ref.shape
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-16)


def reference_pass(note, rater, value, start, weight=None, block_shift=30):
    """The pass's documented summation order, written plainly (no packing, no prefetch, no threads,
    no runs): per slice, note block after note block; within a block, the slice's raters in order,
    each rater's ratings of that block in input order, its sums carried from block to block; the
    squared error in that order; the μ gradient as the slice's rater sums in rater order; then the
    slices in order."""
    mu, ni, nf, ri, rf = start
    k = nf.shape[1]
    lay = K.adam_layout(note, rater, value, ni.shape[0], ri.shape[0], k, weight, 30)  # untiled
    n_r = note.shape[0]
    n_blocks = (ni.shape[0] - 1 >> block_shift) + 1
    scale = 2.0 / n_r
    g_ni, g_nf, g_ri, g_rf = np.zeros_like(ni), np.zeros_like(nf), np.zeros_like(ri), np.zeros_like(rf)
    part = np.zeros((K.CHUNKS, ni.shape[0], 1 + k))
    sums = np.zeros((K.CHUNKS, 2))
    for c in range(K.CHUNKS):
        for block in range(n_blocks):
            for u in range(lay.cuts[c], lay.cuts[c + 1]):
                b, acc = g_ri[u], g_rf[u].copy()
                for j in range(lay.indptr[u], lay.indptr[u + 1]):
                    n = lay.note[j]
                    if n >> block_shift != block:
                        continue
                    pred = mu + ri[u] + ni[n]
                    for f in range(k):
                        pred += rf[u, f] * nf[n, f]
                    err = pred - lay.value[j]
                    w = lay.weight[j] if weight is not None else 1.0
                    sums[c, 0] += w * err * err
                    d = scale * w * err
                    b += d
                    part[c, n, 0] += d
                    for f in range(k):
                        part[c, n, 1 + f] += d * rf[u, f]
                        acc[f] += d * nf[n, f]
                g_ri[u], g_rf[u] = b, acc
        for u in range(lay.cuts[c], lay.cuts[c + 1]):
            sums[c, 1] += g_ri[u]
    for n in range(ni.shape[0]):
        for c in range(K.CHUNKS):
            g_ni[n] += part[c, n, 0]
            g_nf[n] += part[c, n, 1:]
    sse, g_mu = 0.0, 0.0
    for c in range(K.CHUNKS):
        sse += sums[c, 0]
        g_mu += sums[c, 1]
    return sse / n_r, g_mu, [g_ni, g_nf, g_ri, g_rf]


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("block_shift", [3, 6, 30])
def test_pass_keeps_the_documented_summation_order_to_the_bit(k, weighted, block_shift):
    """Packing the note rows, prefetching and the runs change no arithmetic: the same bytes as the
    plain loop, tiled into 38, 5 or one block of notes."""
    note, rater, value, start = problem(n_notes=300, n_ratings=3000, k=k, seed=3)
    weight = np.random.default_rng(2).random(value.shape[0]) if weighted else None
    got = run_pass(note, rater, value, start, weight, block_shift)
    want = reference_pass(note, rater, value, start, weight, block_shift)
    assert got[:2] == want[:2]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got[2], want[2], strict=True))


def _note_ordered(note, rater, value):
    """The ratings in the matrix's (note, rater) order, so each rater's come in note order."""
    order = np.lexsort((rater, note))
    return note[order], rater[order], value[order]


@pytest.mark.parametrize("k", [1, 2])
def test_tiles_keep_every_gradient_bit_of_ratings_in_note_order(k):
    """What keeps the outputs' bytes at X's scale: the matrix hands each rater's ratings over in
    note order, so its runs visit them in the order the untiled pass did, and every gradient,
    the μ gradient included, has the same bits; only the squared error is added in another order."""
    note, rater, value = _note_ordered(*problem(n_notes=300, n_ratings=6000, k=k, seed=4)[:3])
    start = problem(n_notes=300, n_ratings=6000, k=k, seed=4)[3]
    tiled = run_pass(note, rater, value, start, block_shift=4)
    whole = run_pass(note, rater, value, start, block_shift=30)
    assert tiled[1] == whole[1]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(tiled[2], whole[2], strict=True))
    assert tiled[0] == pytest.approx(whole[0], rel=1e-13)


def test_tiles_hold_every_rating_once_by_block_then_rater():
    note, rater, value, _ = problem(n_notes=300, n_ratings=4000, seed=5)
    weight = np.random.default_rng(3).random(value.shape[0])
    lay = K.adam_layout(note, rater, value, 300, 200, 1, weight, block_shift=5)
    whole = K.adam_layout(note, rater, value, 300, 200, 1, weight, block_shift=30)
    assert np.array_equal(lay.indptr, whole.indptr) and np.array_equal(lay.cuts, whole.cuts)
    assert lay.run_cuts[0] == 0 and lay.run_cuts[-1] == lay.run_rater.shape[0]
    # untiled: one run per rater with ratings
    assert np.array_equal(whole.run_rater, np.flatnonzero(np.diff(whole.indptr)))
    for c in range(K.CHUNKS):
        lo, hi = lay.indptr[lay.cuts[c]], lay.indptr[lay.cuts[c + 1]]
        runs = range(lay.run_cuts[c], lay.run_cuts[c + 1])
        starts = ([lo] + [int(lay.run_end[r]) for r in runs])[: len(runs)]
        assert (not runs and lo == hi) or lay.run_end[runs[-1]] == hi
        keys = []
        for r, j0 in zip(runs, starts, strict=True):
            u, j1 = int(lay.run_rater[r]), int(lay.run_end[r])
            assert lay.cuts[c] <= u < lay.cuts[c + 1] and j0 < j1
            blocks = set((lay.note[j0:j1] >> 5).tolist())
            assert len(blocks) == 1
            keys.append((blocks.pop(), u))
            # the run is the rater's ratings of that block, in input order
            mine = whole.note[whole.indptr[u] : whole.indptr[u + 1]]
            in_block = (mine >> 5) == keys[-1][0]
            assert np.array_equal(lay.note[j0:j1], mine[in_block])
            for tiled, plain in ((lay.value, whole.value), (lay.weight, whole.weight)):
                assert np.array_equal(tiled[j0:j1], plain[whole.indptr[u] : whole.indptr[u + 1]][in_block])
        assert keys == sorted(set(keys))  # by block, then rater, each pair once


def test_a_layout_of_no_ratings_has_no_runs():
    lay = K.adam_layout(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), 10, 5, 1, block_shift=1)
    assert lay.run_rater.shape == (0,) and np.all(lay.run_cuts == 0)


def test_unit_weights_give_the_unweighted_bytes():
    note, rater, value, start = problem()
    plain = run_pass(note, rater, value, start)
    ones = run_pass(note, rater, value, start, np.ones(value.shape[0]))
    assert plain[:2] == ones[:2]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(plain[2], ones[2], strict=True))


def test_slices_cover_every_rater_once_in_order():
    note, rater, value, _ = problem()
    lay = K.adam_layout(note, rater, value, 70, 200, 1)
    assert lay.cuts[0] == 0 and lay.cuts[-1] == 200 and np.all(np.diff(lay.cuts) >= 0)
    # grouped by rater, each rater's ratings in input order (the stable sort)
    r_sorted = np.repeat(np.arange(200), np.diff(lay.indptr))
    order = np.argsort(rater, kind="stable")
    assert np.array_equal(rater[order], r_sorted) and np.array_equal(lay.value, value[order])
    with pytest.raises(ValueError, match="factor"):
        K.adam_layout(note, rater, value, 70, 200, 0)


def _on_threads(threads, fn):
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return fn()
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("block_shift", [2, 30])
def test_pass_and_fit_are_byte_identical_for_one_and_two_threads(monkeypatch, block_shift):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread")
    monkeypatch.setattr(K, "BLOCK_SHIFT", block_shift)  # the fit's layout tiles too
    note, rater, value, start = problem(n_ratings=20_000)
    passes = [_on_threads(t, lambda: run_pass(note, rater, value, start)) for t in (1, 2)]
    assert passes[0][:2] == passes[1][:2]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(passes[0][2], passes[1][2], strict=True))
    monkeypatch.setattr(threads, "SERIAL_BELOW", 0)  # let a small fit use both threads
    fits = [_on_threads(t, lambda: adam_fit(note, rater, value, start, MFConfig(), 0.2)) for t in (1, 2)]
    assert fits[0][1] == fits[1][1] > 5
    assert fits[0][0][0] == fits[1][0][0]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(fits[0][0][1:], fits[1][0][1:], strict=True))


def test_small_fits_run_on_one_thread_and_restore_the_count(monkeypatch):
    seen = []
    monkeypatch.setattr(threads, "SERIAL_BELOW", 100)
    before = numba.get_num_threads()
    for n in (10, 1000):
        with threads.threads_for(n):
            seen.append(numba.get_num_threads())
    assert seen == [1, before] and numba.get_num_threads() == before


def test_a_whole_run_with_every_fit_tiled_gives_the_same_outputs(tiny_community: Dataset, monkeypatch):
    """Blocks of 8 notes tile every Adam replay of a whole run (the tiny community has ~40x as
    many notes), and the four output frames keep every byte: the fits read the matrix's note
    order, so only the squared error's order changes, and no fit stops on another epoch."""
    tiled = []
    real_tile = K._tile

    def tile(indptr, cuts, run_cuts, counts, *rest):
        tiled.append(counts.shape[2])  # blocks
        return real_tile(indptr, cuts, run_cuts, counts, *rest)

    monkeypatch.setattr(K, "_tile", tile)
    outputs = []
    for shift in (30, 3):
        monkeypatch.setattr(K, "BLOCK_SHIFT", shift)
        outputs.append(pipeline.score_dataset(tiny_community, epoch_millis=1795305600000))
        if shift == 30:
            assert tiled and set(tiled) == {1}
            tiled.clear()
    assert sum(n > 1 for n in tiled) >= 10, tiled
    for name in ("scored_notes", "helpfulness_scores", "note_status_history", "aux_note_info"):
        got, want = getattr(outputs[1], name), getattr(outputs[0], name)
        pd.testing.assert_frame_equal(got, want, check_exact=True, obj=name)

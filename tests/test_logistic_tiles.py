"""The logistic epoch pass walked by note block (``logistic_tiles``): the same gradients, bit for
bit, on ratings that come in the matrix's order; every rating visited once; any thread count."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from bridgewatch.scoring import logistic_mf as lm
from bridgewatch.scoring import logistic_tiles as LT
from bridgewatch.scoring import prefetch as hints
from bridgewatch.scoring import threads


def _problem(
    seed: int = 0, r: int = 60_000, n_notes: int = 900, n_raters: int = 3_000, note_order: bool = True
):
    """Raters of very uneven activity; ``note_order``: ratings in (note, rater) order, as the matrix
    keeps them, so each rater's come in note order."""
    rng = np.random.default_rng(seed)
    rater = np.minimum(rng.zipf(1.3, r) - 1, n_raters - 1)
    note = rng.integers(0, n_notes, r)
    if note_order:
        order = np.lexsort((rater, note))
        note, rater = note[order], rater[order]
    target = (rng.uniform(size=r) < 0.2).astype(float)
    weight = np.where(target == 1.0, 5.0, 1.0) * rng.uniform(0.5, 1.5, r)
    p = lm.LogisticMFParams(
        note_factor=rng.normal(size=n_notes),
        note_intercept=rng.normal(size=n_notes),
        rater_factor=rng.normal(size=n_raters),
        rater_intercept=rng.normal(size=n_raters),
        rater_reputation=rng.uniform(0.0, 2.0, n_raters),
        global_intercept=np.array([-1.0]),
    )
    return note, rater, target, weight, p


def _layout(note, rater, p, shift, monkeypatch):
    monkeypatch.setattr(hints, "BLOCK_SHIFT", shift)
    return lm.layout(note, rater, p.note_factor.shape[0], p.rater_factor.shape[0])


def _weights(form: str, lay: lm.RatingLayout, target, weight, p):
    """The three forms of signed weights the pass takes, in ``lay``'s rater order."""
    positive = target[lay.order] == 1.0
    if form == "per_rating":
        return lay.signed_weights(target, weight)
    if form == "class":
        r = lay.n_ratings
        return lm.ClassWeights(positive, -(5.0 / r), 1.0 / r)
    rng = np.random.default_rng(9)
    return lm.FactoredWeights(
        positive, rng.uniform(0.5, 2.0, (p.rater_factor.shape[0], 2)),
        rng.uniform(0.5, 1.5, p.note_factor.shape[0]), float(lay.n_ratings),
    )  # fmt: skip


def _gradient(lay, sw, p):
    grads = {b: np.full_like(getattr(p, b), np.nan) for b in lm.BLOCKS}  # every entry written
    loss = lm.layout_gradient(lay, sw, p, grads, want_loss=True)
    return loss, grads


@pytest.mark.parametrize("form", ["per_rating", "class", "factored"])
@pytest.mark.parametrize("shift", [2, 5])
def test_tiled_pass_keeps_every_gradient_bit_on_note_ordered_ratings(form, shift, monkeypatch):
    note, rater, target, weight, p = _problem()
    whole = _layout(note, rater, p, 30, monkeypatch)
    tiled = _layout(note, rater, p, shift, monkeypatch)
    assert not LT.tiled(whole.tiles) and LT.tiled(tiled.tiles)
    want_loss, want = _gradient(whole, _weights(form, whole, target, weight, p), p)
    got_loss, got = _gradient(tiled, _weights(form, tiled, target, weight, p), p)
    for b in lm.BLOCKS:
        assert got[b].tobytes() == want[b].tobytes(), b
    assert got_loss == pytest.approx(want_loss, rel=1e-13)


def test_tiled_pass_agrees_with_numpy_on_ratings_in_any_order(monkeypatch):
    """Shuffled ratings: a rater's runs then visit its ratings in another order, so its sums are
    not the untiled bits, only the same numbers."""
    note, rater, target, weight, p = _problem(1, note_order=False)
    lay = _layout(note, rater, p, 4, monkeypatch)
    assert LT.tiled(lay.tiles)
    loss, grads = _gradient(lay, lay.signed_weights(target, weight), p)
    want_loss, want = lm.gradient_np(note, rater, target, weight, p, lm.Penalty(0, 0, 0, 0, 0, 0))
    assert loss == pytest.approx(want_loss, rel=1e-11)
    for b in lm.BLOCKS:
        np.testing.assert_allclose(grads[b], want[b], rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("note_order", [True, False])
def test_runs_hold_every_rating_once_by_block_then_rater(note_order, monkeypatch):
    note, rater, _, _, p = _problem(2, r=20_000, note_order=note_order)
    lay = _layout(note, rater, p, 4, monkeypatch)
    run_rater, run_start, run_end, piece_ptr, slice_piece = lay.tiles
    seen = np.zeros(lay.n_ratings, dtype=np.int64)
    for c in range(lm.K.CHUNKS):
        runs = range(piece_ptr[slice_piece[c]], piece_ptr[slice_piece[c + 1]])
        keys = []
        for r in runs:
            u, j0, j1 = int(run_rater[r]), int(run_start[r]), int(run_end[r])
            assert lay.first_rater[c] <= u < lay.first_rater[c + 1]
            assert lay.rater_indptr[u] <= j0 < j1 <= lay.rater_indptr[u + 1]
            blocks = np.unique(lay.note[j0:j1] >> 4)
            assert blocks.shape == (1,)
            keys.append((int(blocks[0]), u, j0))
            seen[j0:j1] += 1
        assert keys == sorted(keys)
        if note_order:  # one run per (block, rater)
            assert len({k[:2] for k in keys}) == len(keys)
    assert np.all(seen == 1)
    # pieces: whole runs of at least PIECE ratings (the slice's last may hold fewer)
    held = np.concatenate([[0], np.cumsum(run_end - run_start)])
    sizes = np.diff(held[piece_ptr]).tolist()
    assert max(sizes) <= lay.notes_c.shape[1] <= lay.work.shape[2]
    assert sorted(sizes)[len(sizes) // 2] >= lm.K.PIECE


def test_one_block_of_notes_is_not_tiled(monkeypatch):
    note, rater, _, _, p = _problem(3, r=5_000, n_notes=16)
    lay = _layout(note, rater, p, 4, monkeypatch)
    assert not LT.tiled(lay.tiles) and lay.notes_c.shape == (lm.K.CHUNKS, 0)


def test_fits_are_byte_identical_tiled_or_not_and_for_one_or_two_threads(monkeypatch):
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread")
    monkeypatch.setattr(threads, "SERIAL_BELOW", 0)
    note, rater, target, weight, p = _problem(4)
    pen = lm.Penalty(1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 1e-3)
    s = lm.AdamSettings(max_epochs=40)
    fits = []
    for shift, n_threads in ((30, 2), (3, 1), (3, 2)):
        lay = _layout(note, rater, p, shift, monkeypatch)
        before = numba.get_num_threads()
        numba.set_num_threads(n_threads)
        try:
            fit, _, epochs = lm.fit_adam_signed(lay, lay.signed_weights(target, weight), p, pen, lm.BLOCKS, s)
        finally:
            numba.set_num_threads(before)
        fits.append((epochs, b"".join(getattr(fit, b).tobytes() for b in lm.BLOCKS)))
    assert fits[0] == fits[1] == fits[2]
    assert fits[0][0] > 5

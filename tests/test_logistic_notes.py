"""The note pass (``logistic_notes``) against the rater pass: the same parameters and epochs."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from bridgewatch.scoring import logistic_kernels as K
from bridgewatch.scoring import logistic_mf as lm
from bridgewatch.scoring import logistic_notes as LN

NOTE_BLOCKS = [("note_factor",), ("note_intercept",), ("note_intercept", "note_factor")]
SETTINGS = [
    lm.AdamSettings(learning_rate=0.05, max_epochs=300, tolerance=1e-5, check_every=5),
    lm.AdamSettings(learning_rate=0.2, max_epochs=37, tolerance=1e-9, check_every=5),  # cut
    lm.AdamSettings(learning_rate=0.1, max_epochs=300, tolerance=1e-7, stop="mf", clip_norm=0.05),
    lm.AdamSettings(learning_rate=0.3, max_epochs=40, tolerance=0.0),
]


def _problem(seed: int, r: int, n_notes: int, n_raters: int):
    """Ratings in a shuffled order, raters of uneven activity, a note rated ~r/10 times (it spans
    many ``PIECE``s), notes 40-44 and the last note unrated; both forms of signed weights."""
    rng = np.random.default_rng(seed)
    rater = np.minimum(rng.zipf(1.5, r) - 1, n_raters - 1)
    note = rng.integers(0, n_notes - 1, r)
    note[(note >= 40) & (note < 45)] = 7
    note[rng.uniform(size=r) < 0.1] = 3
    positive = rng.uniform(size=r) < 0.25
    p = lm.LogisticMFParams(
        note_factor=rng.normal(size=n_notes) * 0.5,
        note_intercept=rng.normal(size=n_notes) * 0.5,
        rater_factor=rng.normal(size=n_raters),
        rater_intercept=rng.normal(size=n_raters) * 0.3,
        rater_reputation=rng.uniform(0.0, 2.0, n_raters),
        global_intercept=np.array([-0.7]),
    )
    pen = lm.Penalty(1e-3, 2e-3, 3e-4, 4e-4, 5e-4, 1e-3)
    lay = lm.layout(note, rater, n_notes, n_raters)
    pos = positive[lay.order]
    cw = lm.ClassWeights(pos, -(4.0 / r), 1.0 / r)
    sw = np.where(pos, -4.0, 1.0) * rng.uniform(0.5, 1.5, r) / r
    return lay, p, pen, cw, sw


def _same(a, b) -> None:
    assert a[2] == b[2]
    assert a[1] == pytest.approx(b[1], rel=1e-12)  # only the data loss's sum order differs
    for block in lm.BLOCKS:
        assert getattr(a[0], block).tobytes() == getattr(b[0], block).tobytes(), block


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("seed", [0, 1])
def test_note_pass_gives_the_rater_pass_bytes(settings, seed):
    lay, p, pen, cw, sw = _problem(seed, r=12_000, n_notes=220, n_raters=900)
    for weights in (cw, sw):
        for trainable in NOTE_BLOCKS:
            ref = lm.fit_adam_signed(lay, weights, p, pen, trainable, settings, by_note=False)
            assert ref[2] > 3
            _same(lm.fit_adam_signed(lay, weights, p, pen, trainable, settings), ref)


def test_note_pass_bytes_for_any_thread_count_at_parallel_size():
    """Above ``SERIAL_BELOW`` the groups run in parallel: same bytes on one thread or all."""
    lay, p, pen, cw, sw = _problem(2, r=250_000, n_notes=3_000, n_raters=40_000)
    s = lm.AdamSettings(learning_rate=0.1, max_epochs=25, tolerance=1e-6, check_every=5)
    ref = lm.fit_adam_signed(lay, sw, p, pen, ("note_factor",), s, by_note=False)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            _same(lm.fit_adam_signed(lay, sw, p, pen, ("note_factor",), s), ref)
    finally:
        numba.set_num_threads(before)


def test_note_pass_regroups_each_notes_ratings_in_rater_order_cut_at_the_slices():
    lay, p, _, cw, sw = _problem(3, r=5_000, n_notes=120, n_raters=700)
    ln = LN.note_pass(lay.rater_indptr, lay.sub_ptr, lay.chunk_ptr, lay.note, lay.n_notes, cw.positive,
                      np.empty(0), p.rater_factor, p.rater_reputation, p.rater_intercept)  # fmt: skip
    notes, segments, rater, positive = ln[0], ln[1], ln[2], ln[3]
    rater_of = np.repeat(np.arange(lay.n_raters), np.diff(lay.rater_indptr))
    order = np.lexsort((np.arange(lay.n_ratings), lay.note))  # stable: rater order within a note
    assert rater.tolist() == rater_of[order].tolist()
    assert positive.tolist() == cw.positive[order].tolist()
    cuts = lay.rater_indptr[lay.sub_ptr[lay.chunk_ptr]]
    slice_of = np.searchsorted(cuts, order, side="right") - 1
    note_sorted = lay.note[order]
    new = np.ones(order.shape[0], dtype=bool)
    new[1:] = (note_sorted[1:] != note_sorted[:-1]) | (slice_of[1:] != slice_of[:-1])
    assert segments[:-1].tolist() == np.flatnonzero(new).tolist() and segments[-1] == lay.n_ratings
    assert np.diff(notes).tolist() == np.bincount(note_sorted[new], minlength=lay.n_notes).tolist()
    assert ln[6][0] == 0 and ln[6][-1] == lay.n_notes and (np.diff(ln[6]) >= 0).all()
    assert ln[7].shape == (LN.GROUPS, 3, K.PIECE)


def test_by_note_refuses_rater_blocks():
    lay, p, pen, cw, _ = _problem(4, r=2_000, n_notes=60, n_raters=100)
    with pytest.raises(ValueError, match="note blocks"):
        lm.fit_adam_signed(lay, cw, p, pen, ("note_factor", "rater_factor"), by_note=True)

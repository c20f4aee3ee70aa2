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
            _same(lm.fit_adam_signed(lay, weights, p, pen, trainable, settings, by_note=True), ref)


def test_note_pass_bytes_for_any_thread_count_at_parallel_size():
    """Above ``SERIAL_BELOW`` the groups run in parallel: same bytes on one thread or all."""
    lay, p, pen, _, sw = _problem(2, r=250_000, n_notes=3_000, n_raters=40_000)
    s = lm.AdamSettings(learning_rate=0.1, max_epochs=25, tolerance=1e-6, check_every=5)
    ref = lm.fit_adam_signed(lay, sw, p, pen, ("note_factor",), s, by_note=False)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            _same(lm.fit_adam_signed(lay, sw, p, pen, ("note_factor",), s, by_note=True), ref)
    finally:
        numba.set_num_threads(before)


def test_note_pass_regroups_the_ratings_by_group_slice_and_note_flagging_segment_ends(monkeypatch):
    """Groups of whole notes; in a group, slice by slice; in a slice, note by note, each note's
    ratings in rater order (a segment); the last rating of each segment flagged, each segment's
    note listed."""
    lay, p, _, cw, sw = _problem(3, r=5_000, n_notes=120, n_raters=700)
    monkeypatch.setattr(LN, "GROUP_MIN", 500)  # 10 groups
    for positive, weights in ((cw.positive, np.empty(0)), (np.empty(0, np.bool_), sw)):
        ln = LN.note_pass(lay.rater_indptr, lay.sub_ptr, lay.chunk_ptr, lay.note, lay.n_notes, positive,
                          weights, p.rater_factor, p.rater_reputation, p.rater_intercept)  # fmt: skip
        rater, pos_n, sw_n, seg_note, rows, groups = ln[:6]
        assert groups.shape == (3, 11) and groups[:, 0].tolist() == [0, 0, 0]
        assert groups[0, -1] == 120 and groups[1, -1] == seg_note.shape[0] and groups[2, -1] == 5_000
        group_of = np.searchsorted(groups[0], np.arange(120), side="right") - 1
        cuts = lay.rater_indptr[lay.sub_ptr[lay.chunk_ptr]]
        slice_of = np.searchsorted(cuts, np.arange(5_000), side="right") - 1
        position = np.arange(5_000)  # rater order; sorted by (group, slice, note), stable
        order = np.lexsort((position, lay.note, slice_of, group_of[lay.note]))
        rater_of = np.repeat(np.arange(lay.n_raters), np.diff(lay.rater_indptr))
        assert (rater & LN._ID).tolist() == rater_of[order].tolist()
        if weights.shape[0]:
            assert sw_n.tobytes() == sw[order].tobytes() and pos_n.shape[0] == 0
        else:
            assert pos_n.tolist() == cw.positive[order].tolist() and sw_n.shape[0] == 0
        key = lay.note[order] * 8 + slice_of[order]
        seg_end = np.append(key[1:] != key[:-1], True)
        assert ((rater & LN._SEG_END) != 0).tolist() == seg_end.tolist()
        assert seg_note.tolist() == lay.note[order][seg_end].tolist()
        firsts = np.searchsorted(group_of[lay.note[order]], np.arange(10))
        assert groups[2, :-1].tolist() == firsts.tolist()
        assert groups[1, :-1].tolist() == np.cumsum(np.append(0, seg_end))[firsts].tolist()
        assert (
            rows[:, :3].tolist()
            == np.stack([p.rater_factor, p.rater_reputation, p.rater_intercept], 1).tolist()
        )
        assert ln[6].shape == (10, 3, K.PIECE)


def test_by_note_refuses_rater_blocks():
    lay, p, pen, cw, _ = _problem(4, r=2_000, n_notes=60, n_raters=100)
    with pytest.raises(ValueError, match="note blocks"):
        lm.fit_adam_signed(lay, cw, p, pen, ("note_factor", "rater_factor"), by_note=True)


def test_the_note_pass_runs_where_it_pays(monkeypatch):
    """``fit_adam_signed`` picks the note pass for notes-only fits with few ratings per rater (an
    incremental run's), the rater pass otherwise."""
    lay, p, pen, cw, _ = _problem(5, r=3_000, n_notes=100, n_raters=1_000)
    assert LN.pays(lay.n_ratings, lay.n_raters)
    assert not LN.pays(20 * LN.MAX_RATERS, 2 * LN.MAX_RATERS) and not LN.pays(11_000, 1_000)
    chosen = []
    real = LN.note_pass
    monkeypatch.setattr(LN, "note_pass", lambda *a: chosen.append(1) or real(*a))
    s = lm.AdamSettings(max_epochs=10)
    lm.fit_adam_signed(lay, cw, p, pen, ("note_factor",), s)
    assert chosen == [1]
    lm.fit_adam_signed(lay, cw, p, pen, ("note_factor", "rater_factor"), s)
    lm.fit_adam_signed(lay, cw, p, pen, (), s)
    assert chosen == [1]

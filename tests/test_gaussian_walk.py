"""The Gaussian passes walking a note-ordered matrix through a selection (``gaussian_walk``)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from bridgewatch.errors import ScoringError
from bridgewatch.scoring import gaussian as G
from bridgewatch.scoring import gaussian_walk as GW


def _matrix(seed: int, n_notes: int = 90, n_raters: int = 150):
    """Note-ordered ratings with empty notes, notes whose selection drops every rating, notes
    whose author rated them (selected or not), authors without factor or unknown."""
    rng = np.random.default_rng(seed)
    per_note = rng.integers(0, 40, n_notes)
    per_note[:3] = 0  # notes without ratings
    indptr = np.zeros(n_notes + 1, dtype=np.int64)
    np.cumsum(per_note, out=indptr[1:])
    n = int(indptr[-1])
    rater = rng.integers(0, n_raters, n).astype(np.int32)
    value = rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), n)
    factor = rng.uniform(-0.8, 0.8, n_raters)
    factor[rng.uniform(size=n_raters) < 0.1] = np.nan  # raters without factor: never selected
    select = (rng.uniform(size=n) < 0.8) & ~np.isnan(factor[rater])
    select[indptr[3] : indptr[6]] = False  # notes with ratings, none selected
    author = rng.integers(-1, n_raters, n_notes)
    for k in range(6, 30, 2):  # authors who rated their own note (every other one unselected)
        if indptr[k + 1] > indptr[k]:
            author[k] = rater[indptr[k]]
            select[indptr[k]] = k % 4 == 0 and not np.isnan(factor[rater[indptr[k]]])
    return indptr, select, rater, value, factor, author


@pytest.mark.parametrize(("seed", "block"), [(0, 1 << 16), (1, 7), (2, 1)])
def test_walk_gives_the_extended_arrays_bits_at_any_thread_count(seed, block, monkeypatch):
    """Same bytes as ``gaussian.gaussian_scores`` on the selected, author-extended arrays (the
    code path it replaced), on one thread or two, in any blocks of notes; close to the numpy
    passes."""
    monkeypatch.setattr(GW, "_SCORE_NOTES", block)
    args = _matrix(seed)
    want = GW.gaussian_scores_np(*args, use_numba=True)
    twin = GW.gaussian_scores_np(*args)
    threads = numba.get_num_threads()
    try:
        for n_threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n_threads)
            got = GW.gaussian_scores(*args)
            for key in want:
                assert got[key].tobytes() == want[key].tobytes(), key
    finally:
        numba.set_num_threads(threads)
    for key in want:
        np.testing.assert_allclose(got[key], twin[key], rtol=1e-10, atol=1e-12)
    empty = np.add.reduceat(np.append(args[1], False).astype(int), args[0][:-1]) == 0
    empty[np.diff(args[0]) == 0] = True
    assert np.isnan(got["intercept"][empty]).all() and not np.isnan(got["intercept"][~empty]).any()


def test_author_rating_only_where_the_extended_arrays_have_it():
    """Note 0: author unrated → implicit rating; note 1: author rated (selected) → none; note 2:
    author's own rating unselected → implicit rating; note 3: author without factor → none."""
    indptr = np.array([0, 6, 12, 18, 24])
    rater = np.tile(np.arange(6, dtype=np.int32), 4)
    value = np.zeros(24, dtype=np.float32)
    factor = np.array([-0.6, -0.3, -0.1, 0.1, 0.3, 0.6, 0.5, np.nan])
    select = np.ones(24, dtype=bool)
    select[12] = False
    author = np.array([6, 1, 0, 7])
    args = (indptr, select, rater, value, factor)
    crh, nf, count = GW.pass_values(*args, author, G.QUANTILE_RANGE, G.CRH_PARAMS)
    assert count.tolist() == [7, 6, 6, 6]
    assert nf[0] == pytest.approx((-(factor[:6].sum()) + factor[6]) / 7)
    no_author, _, count0 = GW.pass_values(*args, None, G.QUANTILE_RANGE, G.CRH_PARAMS)
    assert count0.tolist() == [6, 6, 5, 6]
    near = np.abs(G.QUANTILE_RANGE - factor[6]) < 0.1  # the author's HELPFUL rating lifts the
    assert (crh[0][near] > no_author[0][near] + 0.05).all()  # curve near its factor
    np.testing.assert_array_equal(crh[1], no_author[1])
    np.testing.assert_array_equal(crh[3], no_author[3])


def test_validates_input():
    indptr, select, rater, value, factor, author = _matrix(3)
    bad = select.copy()
    bad[np.flatnonzero(np.isnan(factor[rater]))[0]] = True
    with pytest.raises(ScoringError, match="NaN"):
        GW.gaussian_scores(indptr, bad, rater, value, factor, author)
    with pytest.raises(ScoringError, match="same ratings"):
        GW.gaussian_scores(indptr, select[:-1], rater[:-1], value[:-1], factor, author)
    with pytest.raises(ScoringError, match="author"):
        GW.gaussian_scores(indptr, select, rater, value, factor, author[:-1])

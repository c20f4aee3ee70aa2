"""The Gaussian scorer (§6.2): kernel math by hand, boundary cases, twins, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bridgewatch.errors import ScoringError
from bridgewatch.scoring import gaussian as g


def test_evaluation_points_match_the_reference_layout():
    assert g.QUANTILE_RANGE.shape == (50,)
    assert g.QUANTILE_RANGE[0] == -0.92 and g.QUANTILE_RANGE[-1] == 0.92
    np.testing.assert_array_equal(g.QUANTILE_RANGE, -g.QUANTILE_RANGE[::-1])
    assert g.SMOOTHED_RANGE.shape == (26,)
    # every other point on each side, keeping both ends
    assert g.SMOOTHED_RANGE[0] == -0.92 and g.SMOOTHED_RANGE[12] == g.QUANTILE_RANGE[24]
    assert g.SMOOTHED_RANGE[13] == g.QUANTILE_RANGE[25] and g.SMOOTHED_RANGE[-1] == 0.92


def test_single_point_value_computed_by_hand():
    # One evaluation point at 0: normalized kernel weights are exactly 1 per rating.
    factor = np.array([-0.5, -0.4, -0.3, 0.3, 0.4, 0.5])
    helpful = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    note = np.zeros(6, dtype=np.int64)
    vals, nf = g.pass_values(note, 1, factor, helpful, np.array([0.0]), g.CRH_PARAMS)
    # The only negative rater sits on its own mean: unexpected share ~0, so weight 1.75 exactly.
    soft = 1.0 / (1.0 + np.exp(-200 * (0.0 - 0.14)))
    extra = min(1.0 + 3.0 * soft / 6, 2.0) * 1.75
    prior, prior_weight = 0.35, 0.4  # ln(max(6, 9)) / ln 9 = 1
    expected = (5.0 + prior * prior_weight) / (5.0 + extra + prior_weight)
    assert vals[0, 0] == pytest.approx(expected, rel=1e-12)
    assert vals[0, 0] == pytest.approx(5.14 / 7.15, rel=1e-9)
    assert nf[0] == pytest.approx((-0.5 - 0.4 - 0.3 + 0.3 + 0.4 - 0.5) / 6)
    score = g.geometric_mean_score(vals)
    assert score[0] == pytest.approx(expected)


def test_unexpected_negatives_get_more_weight():
    # Negative raters spread on both sides are "unexpected": their weight grows up to the cap.
    factor = np.array([-0.6, 0.6, -0.2, 0.2, 0.3, -0.3])
    helpful = np.array([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    note = np.zeros(6, dtype=np.int64)
    vals, _ = g.pass_values(note, 1, factor, helpful, np.array([0.0]), g.CRH_PARAMS)
    pct = 2 / 6  # both negatives lie 0.6 from their mean 0 → soft indicator ≈ 1
    extra = min(1.0 + 3.0 * pct, 2.0) * 1.75
    expected = (4.0 + 0.35 * 0.4) / (4.0 + 2 * extra + 0.4)
    assert vals[0, 0] == pytest.approx(expected, rel=1e-9)


def test_few_raters_on_one_side_use_flat_prior():
    factor = np.array([-0.5, -0.4, 0.3, 0.4, 0.5, 0.6])  # only 2 negative-factor raters
    helpful = np.full(6, 0.5)  # somewhat helpful counts 0.7 in the CRH pass
    note = np.zeros(6, dtype=np.int64)
    vals, _ = g.pass_values(note, 1, factor, helpful, np.array([0.0]), g.CRH_PARAMS)
    assert vals[0, 0] == pytest.approx((6 * 0.7 + 0.1 * 0.4) / (6.0 + 0.4))
    off = dataclasses.replace(g.CRH_PARAMS, few_sided_prior=False)
    vals_off, _ = g.pass_values(note, 1, factor, helpful, np.array([0.0]), off)
    assert vals_off[0, 0] == pytest.approx((6 * 0.7 + 0.35 * 0.4) / (6.0 + 0.4))


def test_insufficient_weight_scores_zero():
    # All raters far on the right: the leftmost point gets almost no kernel weight.
    factor = np.full(8, 0.9)
    helpful = np.ones(8)
    note = np.zeros(8, dtype=np.int64)
    out = g.gaussian_scores(note, 1, factor, helpful)
    assert out["crh_score"][0] == 0.0
    assert out["crnh_score"][0] == 0.0
    assert out["intercept"][0] == 0.0
    vals, _ = g.pass_values(note, 1, factor, helpful, g.QUANTILE_RANGE, g.CRH_PARAMS)
    assert (vals == -1).all()


def _random_ratings(seed: int, n_notes: int = 40, per_note: int = 12):
    rng = np.random.default_rng(seed)
    note = np.repeat(np.arange(n_notes), per_note)
    factor = rng.uniform(-0.8, 0.8, note.shape[0])
    quality = rng.uniform(-1, 1, n_notes)
    p = 1 / (1 + np.exp(-(3 * quality[note] + 2 * factor * rng.choice([-1, 1], n_notes)[note])))
    helpful = np.where(rng.uniform(size=note.shape[0]) < p, 1.0, 0.0)
    helpful[rng.uniform(size=note.shape[0]) < 0.2] = 0.5
    perm = rng.permutation(note.shape[0])
    return note[perm], factor[perm], helpful[perm], quality


@pytest.mark.parametrize(
    "params,points", [(g.CRH_PARAMS, g.QUANTILE_RANGE), (g.CRNH_PARAMS, g.SMOOTHED_RANGE)]
)
def test_numba_kernel_matches_numpy_twin(params, points):
    note, factor, helpful, _ = _random_ratings(1)
    n_notes = int(note.max()) + 2  # one note without ratings
    a, fa = g.pass_values(note, n_notes, factor, helpful, points, params, use_numba=True)
    b, fb = g.pass_values(note, n_notes, factor, helpful, points, params, use_numba=False)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fa, fb, rtol=1e-10, atol=1e-12)
    assert np.isnan(a[-1]).all()


@pytest.mark.parametrize(
    "params,points", [(g.CRH_PARAMS, g.QUANTILE_RANGE), (g.CRNH_PARAMS, g.SMOOTHED_RANGE)]
)
def test_kernel_weights_per_rater_give_the_same_bytes_for_any_keys_and_threads(params, points):
    """The kernel weights are computed once per key (a rating's rater): keyed by raters, by
    distinct factor values (no keys), on one thread or two, the pass gives the same bytes."""
    import numba

    rng = np.random.default_rng(7)
    n_notes, n_raters = 300, 120
    note = rng.integers(0, n_notes, 6000)
    rater = rng.integers(0, n_raters, 6000) * 3 + 5  # sparse, large ids: compacted per pass
    factor = rng.uniform(-0.8, 0.8, rater.max() + 1)[rater]
    helpful = rng.choice([0.0, 0.5, 1.0], 6000)
    want = g.pass_values(note, n_notes, factor, helpful, points, params)
    threads = numba.get_num_threads()
    try:
        for n_threads in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(n_threads)
            got = g.pass_values(note, n_notes, factor, helpful, points, params, key=rater)
            assert all(a.tobytes() == b.tobytes() for a, b in zip(got, want, strict=True))
    finally:
        numba.set_num_threads(threads)
    with pytest.raises(ScoringError, match="key"):
        g.pass_values(note, n_notes, factor, helpful, points, params, key=rater[:-1])


def test_helpful_notes_score_positive_and_unhelpful_negative():
    note, factor, helpful, quality = _random_ratings(2, n_notes=60, per_note=30)
    out = g.gaussian_scores(note, 60, factor, helpful)
    intercept = out["intercept"]
    assert np.corrcoef(intercept, quality)[0, 1] > 0.6
    # A note everyone found unhelpful: the CRNH pass wins and the intercept is negative.
    f = np.linspace(-0.6, 0.6, 20)
    bad = g.gaussian_scores(np.zeros(20, dtype=np.int64), 1, f, np.zeros(20))
    assert bad["intercept"][0] < -0.4
    assert bad["intercept"][0] == -bad["crnh_score"][0]
    good = g.gaussian_scores(np.zeros(20, dtype=np.int64), 1, f, np.ones(20))
    assert good["intercept"][0] == good["crh_score"][0] > 0.6


def test_author_rating_added_only_where_missing():
    note = np.array([0, 0, 1, 1, 2])
    rater = np.array([5, 6, 7, 8, 9])
    factor = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    helpful = np.zeros(5)
    author = np.array([5, 3, 4, -1])  # note 0: author rated it; note 3: no ratings
    author_factor = np.array([0.7, -0.2, np.nan, 0.1])
    n2, f2, h2 = g.add_author_ratings(note, factor, helpful, rater, author, author_factor)
    # sorted notes: the implicit rating right after its note's own (where a stable sort puts it)
    assert n2.tolist() == [0, 0, 1, 1, 1, 2]
    assert f2[4] == -0.2 and h2[4] == 1.0 and f2[-1] == 0.5
    *_, k2 = g.add_author_ratings(note, factor, helpful, rater, author, author_factor, key=rater)
    assert k2.tolist() == [5, 6, 7, 8, 3, 9]  # the author's key at its implicit rating
    shuffled = np.array([2, 1, 0, 1, 0])  # unsorted notes: appended
    n3, f3, _ = g.add_author_ratings(shuffled, factor, helpful, rater, author, author_factor)
    assert n3.tolist() == [2, 1, 0, 1, 0, 0, 1] and f3[-2:].tolist() == [0.7, -0.2]


def test_sorted_ratings_score_as_shuffled_ones():
    """Note-sorted ratings (authors' implicit ones inserted, not appended) are read without a
    sort: the same bits as the unsorted ratings, which the pass sorts stably into that order."""
    note, factor, helpful, _ = _random_ratings(5)
    rater = np.arange(note.size)
    author = np.where(np.arange(40) % 3 == 0, -1, np.arange(40) + note.size)
    author_factor = np.linspace(-0.6, 0.6, 40)
    srt = np.argsort(note, kind="stable")
    s_args = (note[srt].astype(np.int32), factor[srt], helpful[srt])
    ext_sorted = g.add_author_ratings(*s_args, rater[srt], author, author_factor)
    ext_appended = g.add_author_ratings(note, factor, helpful, rater, author, author_factor)
    assert ext_sorted[0].size == ext_appended[0].size > note.size
    a = g.gaussian_scores(*s_args[:1], 40, *s_args[1:], author_ratings=ext_sorted)
    b = g.gaussian_scores(note, 40, factor, helpful, author_ratings=ext_appended)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes()


def test_deterministic_and_validates_input():
    note, factor, helpful, _ = _random_ratings(3)
    a = g.gaussian_scores(note, 40, factor, helpful)["intercept"]
    b = g.gaussian_scores(note, 40, factor, helpful)["intercept"]
    assert a.tobytes() == b.tobytes()
    bad = factor.copy()
    bad[0] = np.nan
    with pytest.raises(ScoringError, match="NaN"):
        g.gaussian_scores(note, 40, bad, helpful)
    with pytest.raises(ScoringError, match="out of range"):
        g.gaussian_scores(note, 3, factor, helpful)


def test_geometric_mean_in_blocks_of_notes_gives_the_whole_arrays_bits(monkeypatch):
    rng = np.random.default_rng(4)
    values = rng.uniform(0.05, 0.8, (1001, 50))
    values[rng.uniform(size=1001) < 0.05] = -1.0
    values[rng.uniform(size=1001) < 0.05] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.exp(np.log(values).mean(axis=1))
    want[(values < 0).any(axis=1)] = 0.0
    for rows in (1, 64, 1 << 15):
        monkeypatch.setattr(g, "_SCORE_ROWS", rows)
        assert g.geometric_mean_score(values).tobytes() == want.tobytes()
    assert g.geometric_mean_score(values[:0]).shape == (0,)

"""Tag-outlier filter math (§3.3) on tiny hand-checkable data and a loop-based twin."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridgewatch.schema import NOT_HELPFUL_TAGS, TAG_BIT
from bridgewatch.scoring.tag_filter import (
    distance_weights,
    note_tag_aggregates,
    note_tag_aggregates_kept,
    tag_filter_flags,
    tag_thresholds,
    zscore,
)


def bits(*names: str) -> int:
    return sum(1 << TAG_BIT[n] for n in names)


def test_zscore_population_std_and_nan():
    z = zscore(np.array([1.0, 3.0, np.nan]))
    np.testing.assert_allclose(z[:2], [-1.0, 1.0])
    assert np.isnan(z[2])


def test_distance_weights_shape():
    d = np.array([0.0, 1.0, 2.0, 3.0, 4.0])  # P40 of these = 1.6
    w = distance_weights(d, 40)
    assert w[0] == 1.0
    np.testing.assert_allclose(distance_weights(np.array([0.0, 1.6, 3.2, 1.6, 1.6]), 40)[1], 0.5)
    np.testing.assert_allclose(w[4], 1 / (1 + (4 / 1.6) ** 5))


def slow_aggregates(note, rater, tags, fn, fu):
    """Straightforward per-rating loops, the way the spec reads."""

    def z(v):
        vals = [x for x in v if not math.isnan(x)]
        mu = sum(vals) / len(vals)
        sd = math.sqrt(sum((x - mu) ** 2 for x in vals) / len(vals))
        return [(x - mu) / sd for x in v]

    zn, zu = z(fn), z(fu)
    rows = [
        (n, r, t, abs(zu[r] - zn[n]))
        for n, r, t in zip(note, rater, tags, strict=True)
        if not (math.isnan(zn[n]) or math.isnan(zu[r]))
    ]
    p40 = np.percentile([d for *_, d in rows], 40)
    adj = np.zeros((len(fn), 13))
    wsum = np.zeros(len(fn))
    for n, _r, t, d in rows:
        w = 1 / (1 + (d / p40) ** 5)
        wsum[n] += w
        for j, tag in enumerate(NOT_HELPFUL_TAGS):
            if t >> TAG_BIT[tag] & 1:
                adj[n, j] += w
    return adj, wsum


def test_aggregates_match_loop_twin():
    rng = np.random.default_rng(3)
    n_notes, n_raters, r = 7, 12, 60
    note = rng.integers(0, n_notes, r)
    rater = rng.integers(0, n_raters, r)
    tags = rng.integers(0, 2**22, r).astype(np.uint32)
    fn = rng.normal(size=n_notes)
    fn[6] = np.nan
    fu = rng.normal(size=n_raters)
    fu[0] = np.nan
    agg = note_tag_aggregates(note, rater, tags, fn, fu)
    adj, wsum = slow_aggregates(note, rater, tags, fn, fu)
    present = agg.present
    assert not present[6]
    np.testing.assert_allclose(agg.adjusted[present], adj[present], rtol=1e-12)
    np.testing.assert_allclose(agg.rating_weight[present], wsum[present], rtol=1e-12)
    np.testing.assert_allclose(agg.adjusted_ratio[present], adj[present] / wsum[present, None], rtol=1e-12)
    assert np.isnan(agg.rating_weight[6])


def test_hand_example():
    # Notes at -1, +1 (z = ±1); raters at -1, 0, +1 (z = ±1.2247, 0).
    note = np.array([0, 0, 1, 1])
    rater = np.array([0, 1, 2, 1])
    tags = np.array([bits("notHelpfulIncorrect"), 0, 0, bits("notHelpfulIncorrect", "notHelpfulOffTopic")])
    agg = note_tag_aggregates(note, rater, tags, np.array([-1.0, 1.0]), np.array([-1.0, 0.0, 1.0]))
    a = math.sqrt(1.5) - 1  # |−1.2247 + 1|
    p40 = a + 0.2 * (1 - a)  # linear interpolation between sorted [a, a, 1, 1]
    w_near, w_far = 1 / (1 + (a / p40) ** 5), 1 / (1 + (1 / p40) ** 5)
    inc = NOT_HELPFUL_TAGS.index("notHelpfulIncorrect")
    np.testing.assert_allclose(agg.rating_weight, [w_near + w_far] * 2)
    np.testing.assert_allclose(agg.adjusted[:, inc], [w_near, w_far])
    np.testing.assert_allclose(agg.adjusted_ratio[0, inc], w_near / (w_near + w_far))


def test_thresholds_match_reference_quantile_grid():
    rng = np.random.default_rng(0)
    ratios = rng.random((37, 13))
    th = tag_thresholds(ratios, 95)
    for j in range(13):
        assert th[j] == np.quantile(ratios[:, j], np.arange(0, 1, 0.01))[95]
    assert list(tag_thresholds(np.zeros((0, 13)))) == [0.0] * 13
    ratios[0, 2] = np.nan
    assert np.isnan(tag_thresholds(ratios)[2])


def test_flags_strict_inequalities_exempt_tag_and_names():
    n = 4
    from bridgewatch.scoring.tag_filter import TagAggregates

    adjusted = np.zeros((n, 13))
    ratio = np.zeros((n, 13))
    inc = NOT_HELPFUL_TAGS.index("notHelpfulIncorrect")
    out = NOT_HELPFUL_TAGS.index("notHelpfulOutdated")
    hard = NOT_HELPFUL_TAGS.index("notHelpfulHardToUnderstand")
    adjusted[0, [inc, out]] = 3.0
    ratio[0, [inc, out]] = 0.5
    adjusted[1, inc], ratio[1, inc] = 2.5, 0.5  # total exactly 2.5: not above
    adjusted[2, inc], ratio[2, inc] = 3.0, 0.2  # ratio exactly the threshold: not above
    adjusted[3, hard], ratio[3, hard] = 9.0, 0.9  # exempt
    agg = TagAggregates(adjusted, np.ones(n), ratio, np.ones(n, bool))
    flags, names = tag_filter_flags(agg, np.full(13, 0.2))
    assert list(flags) == [True, False, False, False]
    assert list(names) == ["notHelpfulIncorrect,notHelpfulOutdated", "", "", ""]


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("chunk", [1, 7, 1000, 1 << 20])
def test_aggregates_from_the_matrix_are_the_gathered_ones_to_the_bit(seed, chunk):
    """``note_tag_aggregates_kept`` (distances through the selection, weights chunk by chunk) gives
    the bytes of ``note_tag_aggregates`` on the gathered ``note[keep]``, ``rater[keep]``,
    ``tags[keep]``, with NaN factors on some notes and raters and any chunk size."""
    from bridgewatch.io import matrix as M

    rng = np.random.default_rng(seed)
    r, n_notes, n_raters = 5000, 90, 400
    m = M.build_rating_matrix(
        note=rng.integers(0, n_notes, r).astype(np.int32),
        rater=rng.integers(0, n_raters, r).astype(np.int32),
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), r),
        created_at=np.arange(r, dtype=np.int64),
        tags=np.where(rng.random(r) < 0.3, rng.integers(0, 2**20, r), 0).astype(np.uint32),
        population_sampled=np.zeros(r, dtype=bool),
        note_ids=np.arange(n_notes, dtype=np.int64) * 7 + 3,
        rater_ids=np.array([f"r{i:05d}" for i in range(n_raters)], dtype=object),
    )
    keep = rng.random(r) < 0.6
    nf = rng.normal(size=n_notes)
    nf[rng.random(n_notes) < 0.1] = np.nan
    rf = rng.normal(size=n_raters).astype(np.float32)
    rf[rng.random(n_raters) < 0.1] = np.nan
    gathered = (m.note[keep], m.rater[keep], m.tags[keep])
    old = note_tag_aggregates(*gathered, nf, rf, normalization_percentile=35.0)
    new = note_tag_aggregates_kept(m, keep, nf, rf, normalization_percentile=35.0, chunk=chunk)
    for name in ("adjusted", "rating_weight", "adjusted_ratio", "present"):
        assert getattr(new, name).tobytes() == getattr(old, name).tobytes(), name
    assert new.present.any() and not new.present.all()


def test_aggregates_from_the_matrix_with_nothing_kept():
    from bridgewatch.io import matrix as M

    m = M.build_rating_matrix(
        note=np.array([0, 1], dtype=np.int32), rater=np.array([0, 0], dtype=np.int32),
        value=np.zeros(2, dtype=np.float32), created_at=np.zeros(2, dtype=np.int64),
        tags=np.ones(2, dtype=np.uint32), population_sampled=np.zeros(2, dtype=bool),
        note_ids=np.array([3, 4]), rater_ids=np.array(["a"], dtype=object),
    )  # fmt: skip
    new = note_tag_aggregates_kept(m, np.zeros(2, dtype=bool), np.zeros(2), np.zeros(1))
    assert not new.present.any() and np.isnan(new.rating_weight).all()

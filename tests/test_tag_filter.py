"""Tag-outlier filter math (§3.3) on tiny hand-checkable data and a loop-based twin."""

from __future__ import annotations

import math

import numpy as np

from bridgewatch.schema import NOT_HELPFUL_TAGS, TAG_BIT
from bridgewatch.scoring.tag_filter import (
    distance_weights,
    note_tag_aggregates,
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

"""Incorrect-filter math (§3.4) on a hand-computed example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridgewatch.schema import TAG_BIT
from bridgewatch.scoring.incorrect_filter import (
    IncorrectAggregates,
    incorrect_aggregates,
    incorrect_aggregates_kept,
    incorrect_filter_flags,
    rater_incorrect_totals,
    rater_incorrect_totals_kept,
)

INC = 1 << TAG_BIT["notHelpfulIncorrect"]
OTHER = 1 << TAG_BIT["notHelpfulOther"]
HELP = 1 << TAG_BIT["helpfulClear"]


def test_rater_totals_count_only_nh_tagged_ratings():
    rater = np.array([0, 0, 0, 1, 1, 2])
    tags = np.array([INC, INC | OTHER, HELP, OTHER, 0, HELP], dtype=np.uint32)
    incorrect, total = rater_incorrect_totals(rater, tags, 4)
    assert list(incorrect) == [2, 0, 0, 0]
    assert list(total) == [2, 1, 0, 0]


def test_interval_aggregates_by_hand():
    # Note 0 factor 0.9 (clipped to 0.4). Raters: 0.5→0.4 (in), 0.2 (in, |0.2-0.4|=0.2),
    # 0.1 (out: 0.3 is not < 0.3), -0.5 (out), NaN (out).
    note = np.zeros(6, dtype=int)
    rater = np.array([0, 1, 2, 3, 4, 1])
    tags = np.array([INC, INC | OTHER, INC, INC, INC, 0], dtype=np.uint32)
    fu = np.array([0.5, 0.2, 0.1, -0.5, np.nan])
    r_inc = np.array([1, 2, 5, 1, 1])
    r_tot = np.array([4, 8, 5, 1, 1])
    agg = incorrect_aggregates(note, rater, tags, np.array([0.9, 0.0]), fu, r_inc, r_tot)
    p = 1 / 4 + 2 / 8
    assert agg.incorrect[0] == 2 and agg.voters[0] == 2
    np.testing.assert_allclose(agg.p_incorrect[0], p)
    np.testing.assert_allclose(agg.tf_idf[0], 2 / math.log(1 + p))
    assert np.isnan(agg.voters[1]) and np.isnan(agg.tf_idf[1])


def test_zero_total_rater_counts_rate_zero():
    agg = incorrect_aggregates(
        np.array([0, 0]),
        np.array([0, 1]),
        np.array([OTHER, INC], dtype=np.uint32),
        np.array([0.0]),
        np.array([0.0, 0.0]),
        np.array([0, 1]),
        np.array([0, 2]),
    )
    np.testing.assert_allclose(agg.p_incorrect[0], 0.5)
    assert agg.voters[0] == 2 and agg.incorrect[0] == 1


def test_flags_boundaries():
    def one(inc, voters, tf):
        a = IncorrectAggregates(np.array([inc]), np.array([voters]), np.array([1.0]), np.array([tf]))
        return bool(incorrect_filter_flags(a)[0])

    assert one(2, 3, 2.5)
    assert not one(1, 3, 9.0)
    assert not one(2, 2, 9.0)
    assert not one(2, 3, 2.4999)
    assert not one(np.nan, np.nan, np.nan)
    assert one(2, 3, np.inf)


@pytest.mark.parametrize("seed", range(3))
def test_rater_totals_from_the_matrix_are_the_gathered_ones(seed):
    """``rater_incorrect_totals_kept`` counts what ``rater_incorrect_totals`` counts on the
    gathered ``rater[keep]``, ``tags[keep]``."""
    from bridgewatch.io import matrix as M

    rng = np.random.default_rng(seed)
    r, n_notes, n_raters = 4000, 50, 300
    m = M.build_rating_matrix(
        note=rng.integers(0, n_notes, r).astype(np.int32),
        rater=rng.integers(0, n_raters, r).astype(np.int32),
        value=np.zeros(r, dtype=np.float32),
        created_at=np.arange(r, dtype=np.int64),
        tags=np.where(rng.random(r) < 0.4, rng.integers(0, 2**20, r), 0).astype(np.uint32),
        population_sampled=np.zeros(r, dtype=bool),
        note_ids=np.arange(n_notes, dtype=np.int64),
        rater_ids=np.array([f"r{i}" for i in range(n_raters)], dtype=object),
    )
    keep = rng.random(r) < 0.7
    old = rater_incorrect_totals(m.rater[keep], m.tags[keep], m.n_raters)
    new = rater_incorrect_totals_kept(m, keep)
    assert all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(old, new, strict=True))
    assert new[0].sum() > 0 and (new[1] > new[0]).any()


@pytest.mark.parametrize("seed", range(3))
def test_aggregates_from_the_matrix_are_the_gathered_ones_to_the_bit(seed):
    """``incorrect_aggregates_kept`` gives the bytes of ``incorrect_aggregates`` on the gathered
    ratings, with NaN factors, raters without totals (0/0 → rate 0) and notes outside every interval."""
    from bridgewatch.io import matrix as M

    rng = np.random.default_rng(seed)
    r, n_notes, n_raters = 6000, 80, 300
    m = M.build_rating_matrix(
        note=rng.integers(0, n_notes, r).astype(np.int32),
        rater=rng.integers(0, n_raters, r).astype(np.int32),
        value=np.zeros(r, dtype=np.float32),
        created_at=np.arange(r, dtype=np.int64),
        tags=np.where(rng.random(r) < 0.5, rng.integers(0, 2**20, r), 0).astype(np.uint32),
        population_sampled=np.zeros(r, dtype=bool),
        note_ids=np.arange(n_notes, dtype=np.int64),
        rater_ids=np.array([f"r{i}" for i in range(n_raters)], dtype=object),
    )
    keep = rng.random(r) < 0.7
    nf = rng.normal(scale=0.5, size=n_notes)
    nf[::9] = np.nan
    rf = rng.normal(scale=0.5, size=n_raters).astype(np.float32)
    rf[::11] = np.nan
    inc_num, inc_total = rater_incorrect_totals_kept(m, rng.random(r) < 0.5)
    gathered = (m.note[keep], m.rater[keep], m.tags[keep])
    old = incorrect_aggregates(*gathered, nf, rf, inc_num, inc_total, interval_half_width=0.25)
    new = incorrect_aggregates_kept(m, keep, nf, rf, inc_num, inc_total, interval_half_width=0.25)
    for name in ("incorrect", "voters", "p_incorrect", "tf_idf"):
        assert getattr(new, name).tobytes() == getattr(old, name).tobytes(), name
    assert np.isnan(new.voters).any() and (new.voters > 0).any() and (inc_total == 0).any()

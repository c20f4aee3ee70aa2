"""Harassment tag consensus (§4.5) and the helpful-rating penalty (§4.2)."""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch import schema
from bridgewatch.errors import ScoringError
from bridgewatch.scoring import harassment as hr

ABUSE = np.uint32(1 << schema.TAG_BIT[hr.HARASSMENT_TAG])
OTHER = np.uint32(1 << schema.TAG_BIT[hr.OTHER_TAG])
NOW = 1_700_000_000_000


def test_labels():
    value = np.array([1.0, 0.0, 0.0, 0.5, 0.0, 1.0])
    tags = np.array([0, ABUSE, OTHER, 0, 0, 0], dtype=np.uint32)
    created = np.array([NOW] * 5 + [hr.LAST_RATING_TAGS_CHANGE_MILLIS - 1])
    label = hr.tag_labels(value, tags, created)
    np.testing.assert_array_equal(label[:3], [0.0, 1.0, 0.0])
    assert np.isnan(label[3:]).all()  # somewhat helpful, untagged NH, before the tag change


def test_count_filter_is_one_pass_in_order():
    # note 0 has 2 ratings (dropped); raters then keep ≥ 2 ratings; notes re-checked once
    note = np.array([0, 0, 1, 1, 1, 2, 2, 2])
    rater = np.array([0, 1, 0, 1, 2, 0, 1, 2])
    keep = hr.count_filter(note, rater, np.ones(8, dtype=bool), min_per_note=3, min_per_rater=2)
    assert keep.tolist() == [False, False, True, True, True, True, True, True]


def _planted(seed: int = 0):
    """Note 0 is tagged abusive by raters of both viewpoints; a few raters still rate it helpful.

    Other notes draw the tag from one side only, which the factor term explains instead.
    """
    rng = np.random.default_rng(seed)
    n_notes, n_raters = 30, 80
    viewpoint = np.where(np.arange(n_raters) % 2 == 0, -0.4, 0.4)
    notes, raters = [], []
    for n in range(n_notes):
        rs = rng.choice(n_raters, 60, replace=False)
        notes += [n] * 60
        raters += rs.tolist()
    note, rater = np.array(notes), np.array(raters)
    value = (rng.uniform(size=note.shape[0]) < 0.5).astype(float)
    tags = np.where((value == 0) & (rng.uniform(size=note.shape[0]) < 0.9), OTHER, 0).astype(np.uint32)
    # partisan tagging elsewhere pins the factor axis to the viewpoints
    slant = np.where(np.arange(n_notes) % 2 == 0, -1.0, 1.0)
    partisan = (note != 0) & (slant[note] * viewpoint[rater] < 0) & (rng.uniform(size=note.shape[0]) < 0.2)
    value[partisan] = 0.0
    tags[partisan] = ABUSE
    abusive = note == 0
    flag = abusive & (rng.uniform(size=note.shape[0]) < 0.9)
    value[flag] = 0.0
    tags[flag] = ABUSE
    helpful_on_abusive = np.flatnonzero(abusive & ~flag)
    value[helpful_on_abusive] = 1.0
    created = np.full(note.shape[0], NOW)
    return note, rater, value, tags, created, n_notes, n_raters, viewpoint, rater[helpful_on_abusive]


def test_abusive_note_gets_high_intercept_and_its_helpful_raters_are_penalized():
    note, rater, value, tags, created, n_notes, n_raters, viewpoint, helpers = _planted()
    res = hr.fit_tag_consensus(note, rater, value, tags, created, n_notes, n_raters, None, viewpoint)
    assert 0 < res.positive_rate < 0.3
    assert res.note_intercept[0] >= 2.0
    assert np.nanmax(res.note_intercept[1:]) < 1.0
    pen = hr.harassment_penalty(note, rater, value, res.note_intercept, n_raters)
    assert set(np.flatnonzero(pen > 0)) == set(helpers)
    assert pen[helpers[0]] == pytest.approx(10 * res.note_intercept[0] / 2.0)
    # reruns are bit-identical
    again = hr.fit_tag_consensus(note, rater, value, tags, created, n_notes, n_raters, None, viewpoint)
    assert again.note_intercept.tobytes() == res.note_intercept.tobytes()


def test_flat_penalty_and_threshold():
    note = np.array([0, 0, 1, 1])
    rater = np.array([0, 1, 0, 1])
    value = np.array([1.0, 0.0, 1.0, 1.0])
    intercept = np.array([3.0, 1.9])
    pen = hr.harassment_penalty(note, rater, value, intercept, 2)
    assert pen.tolist() == [15.0, 0.0]
    flat = hr.HarassmentConfig(multiply_penalty_by_score=False)
    assert hr.harassment_penalty(note, rater, value, intercept, 2, flat).tolist() == [10.0, 0.0]
    assert hr.harassment_penalty(note, rater, value, np.array([np.nan, np.nan]), 2).tolist() == [0, 0]


def test_aborts_to_nan_without_positives():
    note, rater, value, tags, created, n_notes, n_raters, _, _ = _planted()
    tags = tags & ~ABUSE
    res = hr.fit_tag_consensus(note, rater, value, tags, created, n_notes, n_raters)
    assert res.positive_rate == 0.0
    assert np.isnan(res.note_intercept).all() and np.isnan(res.global_intercept)
    none = hr.fit_tag_consensus(note[:0], rater[:0], value[:0], tags[:0], created[:0], n_notes, n_raters)
    assert np.isnan(none.note_intercept).all()


def test_bad_input_raises():
    with pytest.raises(ScoringError):
        hr.fit_tag_consensus(np.array([0]), np.array([0, 1]), np.ones(1), np.zeros(1), np.zeros(1), 1, 2)


def _rating_matrix(seed: int, n_ratings: int = 6000, n_notes: int = 600, n_raters: int = 200):
    from bridgewatch.io import matrix as M

    rng = np.random.default_rng(seed)
    abuse = 1 << schema.TAG_BIT[hr.HARASSMENT_TAG]
    other = 1 << schema.TAG_BIT[hr.OTHER_TAG]
    tags = rng.integers(0, 2**20, n_ratings) & ~(abuse | other)
    tags |= np.where(rng.random(n_ratings) < 0.15, abuse, 0) | np.where(rng.random(n_ratings) < 0.2, other, 0)
    launch = hr.LAST_RATING_TAGS_CHANGE_MILLIS
    return M.build_rating_matrix(
        note=rng.integers(0, n_notes, n_ratings).astype(np.int32),
        rater=(rng.zipf(1.6, n_ratings) % n_raters).astype(np.int32),  # many raters under 10
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), n_ratings),
        created_at=launch + rng.integers(-30, 300, n_ratings) * 86_400_000,
        tags=tags.astype(np.uint32),
        population_sampled=np.zeros(n_ratings, dtype=bool),
        note_ids=np.arange(n_notes, dtype=np.int64) * 7 + 3,
        rater_ids=np.array([f"r{i:05d}" for i in range(n_raters)], dtype=object),
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("with_init", [False, True])
def test_fit_from_the_matrix_is_the_gathered_fit_to_the_bit(seed, with_init):
    """``fit_tag_consensus_kept`` (labels, count filter and layout read through the selection)
    gives the bytes of ``fit_tag_consensus`` on the five gathered columns."""
    m = _rating_matrix(seed)
    rng = np.random.default_rng(seed + 5)
    keep = rng.random(m.n_ratings) < 0.8
    nf = rf = None
    if with_init:
        nf, rf = rng.normal(size=m.n_notes), rng.normal(size=m.n_raters).astype(np.float32)
        rf[::7] = np.nan
    cols = (m.note[keep], m.rater[keep], m.value[keep], m.tags[keep], m.created_at[keep])
    old = hr.fit_tag_consensus(*cols, m.n_notes, m.n_raters, nf, rf)
    new = hr.fit_tag_consensus_kept(m, keep, nf, rf)
    for name in ("note_intercept", "note_factor", "rater_intercept", "rater_factor"):
        assert getattr(new, name).tobytes() == getattr(old, name).tobytes(), name
    assert np.isfinite(new.note_intercept).any() and np.isnan(new.note_intercept).any()
    assert (
        np.array([new.global_intercept, new.positive_rate]).tobytes()
        == np.array([old.global_intercept, old.positive_rate]).tobytes()
    )


def test_fit_from_the_matrix_without_labels_or_positives_is_empty():
    m = _rating_matrix(0)
    none = hr.fit_tag_consensus_kept(m, np.zeros(m.n_ratings, dtype=bool))
    assert np.isnan(none.note_intercept).all() and np.isnan(none.positive_rate)
    no_abuse = m.tags & np.uint32(1 << schema.TAG_BIT[hr.HARASSMENT_TAG]) == 0
    zero = hr.fit_tag_consensus_kept(m, no_abuse)
    assert zero.positive_rate == 0.0 and np.isnan(zero.note_intercept).all()
    cols = (m.note[no_abuse], m.rater[no_abuse], m.value[no_abuse], m.tags[no_abuse], m.created_at[no_abuse])
    assert hr.fit_tag_consensus(*cols, m.n_notes, m.n_raters).positive_rate == 0.0


def test_fit_from_the_matrix_reads_the_labels_in_chunks_to_the_same_bits(monkeypatch):
    m = _rating_matrix(4)
    keep = np.random.default_rng(9).random(m.n_ratings) < 0.8
    whole = hr.fit_tag_consensus_kept(m, keep)
    monkeypatch.setattr(hr, "_LABEL_CHUNK", 1000)  # six chunks and a short one
    chunked = hr.fit_tag_consensus_kept(m, keep)
    for name in ("note_intercept", "note_factor", "rater_intercept", "rater_factor"):
        assert getattr(chunked, name).tobytes() == getattr(whole, name).tobytes(), name
    assert np.isfinite(whole.note_intercept).any()

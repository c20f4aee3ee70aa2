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

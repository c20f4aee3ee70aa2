"""Contributor helpfulness: valid ratings and the aboveHelpfulnessThreshold boundaries (§4.1–4.4)."""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.schema import Status
from bridgewatch.scoring import helpfulness as H
from bridgewatch.scoring.config import HelpfulnessConfig

CFG = HelpfulnessConfig()
T0 = 1_700_000_000_000
HOUR = 3_600_000


@pytest.mark.parametrize(
    ("diff", "mean", "agree", "expected"),
    [
        (np.nan, np.nan, 0.66, True),  # not an author, agree ratio exactly at the threshold
        (np.nan, np.nan, 0.659, False),
        (0.0, 0.05, 0.9, True),  # author exactly at both author thresholds
        (-0.01, 0.5, 0.9, False),  # CRH ratio below 5 × CRNH ratio
        (0.5, 0.049, 0.9, False),  # mean note score too low
        (0.5, 0.5, np.nan, False),  # no valid ratings → excluded
    ],
)
def test_above_threshold_boundaries(diff, mean, agree, expected):
    out = H.above_threshold(np.array([diff]), np.array([mean]), np.array([agree]), np.array([agree]), CFG)
    assert bool(out[0]) is expected


def test_valid_ratings_window_status_and_somewhat_helpful():
    # note 0 CRH (created T0, latest non-NMR at T0+10h), note 1 CRNH, note 2 NMR
    note = [0, 0, 0, 0, 0, 1, 2]
    rater = [0, 1, 2, 3, 4, 0, 0]
    value = [1.0, 0.0, 0.5, 1.0, 1.0, 1.0, 1.0]
    created = [T0 + HOUR, T0 + 2 * HOUR, T0 + 3 * HOUR, T0 + 11 * HOUR, T0 + 49 * HOUR, T0 + HOUR, T0 + HOUR]
    m = build_rating_matrix(
        note=np.array(note),
        rater=np.array(rater),
        value=np.array(value),
        created_at=np.array(created),
        tags=np.zeros(7, np.uint32),
        population_sampled=np.zeros(7, bool),
        note_ids=np.array([1, 2, 3], np.int64),
        rater_ids=np.array(["a", "b", "c", "d", "e"], dtype=object),
    )
    keep = np.ones(7, bool)
    status = np.array([Status.CRH, Status.CRNH, Status.NMR], np.int8)
    v = H.valid_ratings(
        m, keep, np.full(3, float(T0)), np.array([T0 + 10 * HOUR, np.nan, np.nan]), status, CFG
    )
    # sorted by (note, rater): positions 0..4 are note 0 raters a..e, 5 note 1 rater a, 6 note 2 rater a
    assert v.valid.tolist() == [True, True, False, False, False, True, False]
    assert v.agrees.tolist() == [True, False, False, False, False, False, False]
    assert v.fail_helpful.tolist()[1] and v.fail_not_helpful.tolist()[5]
    table = H.helpfulness_scores(
        m, v, np.array(["x", "x", "x"], dtype=object), np.array([0.5, -0.3, np.nan]), status, CFG
    )
    rows = table.set_index("raterParticipantId")
    assert rows.loc["a", "raterAgreeRatio"] == 0.5
    assert rows.loc["b", "raterAgreeRatio"] == 0.0
    assert rows.loc["x", "crhCrnhRatioDifference"] == pytest.approx(0.5 - 5 * 0.5)
    assert rows.loc["x", "meanNoteScore"] == pytest.approx(0.1)
    assert not rows["aboveHelpfulnessThreshold"].any()


def test_harassment_penalty_multiplies_by_score():
    m = build_rating_matrix(
        note=np.array([0, 1, 1]),
        rater=np.array([0, 0, 1]),
        value=np.array([1.0, 1.0, 0.0]),
        created_at=np.zeros(3, np.int64),
        tags=np.zeros(3, np.uint32),
        population_sampled=np.zeros(3, bool),
        note_ids=np.array([1, 2], np.int64),
        rater_ids=np.array(["a", "b"], dtype=object),
    )
    pen = H.harassment_penalty(m, np.ones(3, bool), np.array([1.9, 3.0]), CFG)
    assert pen.tolist() == [15.0, 0.0]
    assert H.harassment_penalty(m, np.ones(3, bool), None, CFG) is None

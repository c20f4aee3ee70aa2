"""Preprocessing rules: note classification filter, count filters, high-volume raters, scoping."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.scoring import preprocess as P

LAUNCH = schema.NOT_MISLEADING_UI_LAUNCH_MILLIS


def matrix(note, rater, n_notes, n_raters, created=None):
    r = len(note)
    return build_rating_matrix(
        note=np.asarray(note),
        rater=np.asarray(rater),
        value=np.ones(r),
        created_at=np.zeros(r, np.int64) if created is None else np.asarray(created, np.int64),
        tags=np.zeros(r, np.uint32),
        population_sampled=np.zeros(r, bool),
        note_ids=np.arange(n_notes, dtype=np.int64) + 100,
        rater_ids=np.array([f"u{i:03d}" for i in range(n_raters)], dtype=object),
    )


def test_classification_filter_misleading_nm_date_and_deleted_notes():
    # notes 100 misleading, 101 NM old, 102 NM created exactly at launch, 103 NM after launch,
    # 104 deleted with NSH row, 105 deleted without NSH row
    m = matrix([0, 1, 2, 3, 4, 5], [0] * 6, 6, 1)
    notes = pd.DataFrame(
        {
            "noteId": [100, 101, 102, 103],
            "classification": [
                schema.MISLEADING,
                schema.NOT_MISLEADING,
                schema.NOT_MISLEADING,
                schema.NOT_MISLEADING,
            ],
            "createdAtMillis": [LAUNCH - 10, LAUNCH - 10, LAUNCH, LAUNCH + 1],
            "noteAuthorParticipantId": ["a"] * 4,
        }
    )
    nsh = pd.DataFrame(
        {
            "noteId": [104],
            "createdAtMillis": [LAUNCH + 5],
            "noteAuthorParticipantId": ["a"],
            "timestampMillisOfLatestNonNMRStatus": [np.nan],
        }
    )
    table = P.note_table(m, notes, nsh)
    keep = P.classification_mask(m, table)
    assert keep.tolist() == [True, False, False, True, True, False]


def test_count_filter_notes_then_raters_then_notes_once():
    # note 0: 5 ratings (raters 0-4); note 1: 5 ratings (raters 0-3, 5). Rater 5 has 1 rating,
    # raters 0-3 have 2, rater 4 has 1. With min 2 per rater, raters 4 and 5 go, then both notes
    # fall to 4 ratings and are dropped by the second note pass.
    m = matrix([0] * 5 + [1] * 5, [0, 1, 2, 3, 4, 0, 1, 2, 3, 5], 2, 6)
    keep = np.ones(10, bool)
    assert P.count_filter(m, keep, 5, 0).all()
    assert not P.count_filter(m, keep, 5, 2).any()
    assert P.count_filter(m, keep, 4, 2).sum() == 8
    # the filter is not iterated to a fixed point: one rater pass only
    out = P.count_filter(m, keep, 4, 2)
    assert set(m.rater[out]) == {0, 1, 2, 3}


def test_high_volume_raters_strictly_above_quantile_and_off_for_small_data():
    day = P.DAY_MILLIS
    n_notes = 300
    note = np.arange(n_notes)
    rater = np.r_[np.zeros(100, int), np.arange(1, 201)]
    created = np.full(n_notes, 30 * day)
    m = matrix(note, rater, n_notes, 201, created)
    flagged = P.high_volume_raters(m, quantile=0.99, min_notes=200)
    assert flagged[0] and flagged.sum() == 1
    assert not P.high_volume_raters(m, quantile=0.99, min_notes=1000).any()


def test_scope_groups_topics_and_capture_share():
    m = matrix([0, 0, 1, 1], [0, 1, 0, 2], 2, 3)
    enrollment = pd.DataFrame({"participantId": ["u000", "u001"], "modelingGroup": [13.0, 4.0]})
    groups = P.rater_groups(m, enrollment)
    assert groups.tolist() == [13, 4, P.UNASSIGNED]
    assert P.group_mask(groups, frozenset({13}), True).tolist() == [True, False, True]
    assert P.group_mask(groups, frozenset({13}), False).tolist() == [True, False, False]
    topic = np.array([-1, 2])
    assert P.topic_mask(m, topic, topic=None, exclude_topics=True).tolist() == [True, True, False, False]
    assert P.topic_mask(m, topic, topic=2, exclude_topics=False).tolist() == [False, False, True, True]
    assert P.topic_mask(m, None, topic=2, exclude_topics=False).sum() == 0
    share = P.capture_share(m, np.ones(4, bool), P.group_mask(groups, frozenset({13}), False)[m.rater])
    assert share.tolist() == [0.5, 0.5]

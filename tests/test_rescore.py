"""Which notes incremental final scoring rescores (§6.7), and how it merges with the last run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.scoring.rescore import merge_rows, note_fingerprints, notes_to_rescore, raters_changed

DAY = 86_400_000
NOW = 1_795_305_600_000


def matrix(note_ids, rater_ids, note, rater, value):
    r = len(note)
    return build_rating_matrix(
        note=np.asarray(note), rater=np.asarray(rater), value=np.asarray(value, dtype=np.float32),
        created_at=NOW - DAY + np.arange(r), tags=np.zeros(r, np.uint32),
        population_sampled=np.zeros(r, bool), note_ids=np.asarray(note_ids, dtype=np.int64),
        rater_ids=np.asarray(rater_ids, dtype=object),
    )  # fmt: skip


def frames(note_ids):
    notes = pd.DataFrame({"noteId": note_ids, "classification": "MISINFORMED_OR_POTENTIALLY_MISLEADING"})
    return notes, pd.DataFrame({"noteId": pd.Series([], dtype="int64")})


def test_fingerprints_follow_ids_not_dense_indices() -> None:
    a = matrix([10, 20], ["u1", "u2"], [0, 0, 1], [0, 1, 1], [1.0, 0.0, 0.5])
    # A new rater "u0" shifts every dense rater index; a new rating lands on note 20 only.
    b = matrix([10, 20], ["u0", "u1", "u2"], [0, 0, 1, 1], [1, 2, 2, 0], [1.0, 0.0, 0.5, 1.0])
    fa = note_fingerprints(a, *frames([10, 20]), None)
    fb = note_fingerprints(b, *frames([10, 20]), None)
    assert fa["ratingsHash"][0] == fb["ratingsHash"][0]
    assert fa["ratingsHash"][1] != fb["ratingsHash"][1]
    changed = frames([10, 20])[0].assign(
        classification=["NOT_MISLEADING", "MISINFORMED_OR_POTENTIALLY_MISLEADING"]
    )
    fc = note_fingerprints(a, changed, frames([10, 20])[1], None)
    assert list(fc["noteRowHash"] != fa["noteRowHash"]) == [True, False]


def test_notes_to_rescore_new_ratings_new_notes_changed_raters_and_clock() -> None:
    old = matrix([10, 20, 30], ["u1", "u2"], [0, 1, 2], [0, 1, 1], [1.0, 1.0, 0.0])
    new = matrix([10, 20, 30, 40], ["u1", "u2"], [0, 1, 2, 3], [0, 1, 1, 0], [1.0, 1.0, 0.0, 1.0])
    prev = note_fingerprints(old, *frames([10, 20, 30]), None)
    cur = note_fingerprints(new, *frames([10, 20, 30, 40]), None)
    created = np.full(4, NOW - 100.0 * DAY)
    timer = np.full(4, np.nan)
    kw = {"epoch_millis": NOW, "previous_epoch_millis": NOW - 3_600_000, "lock_millis": 14 * DAY}
    none_changed = np.zeros(2, bool)
    assert list(notes_to_rescore(cur, prev, none_changed, new, created, timer, **kw)) == [0, 0, 0, 1]
    u2 = np.array([False, True])
    assert list(notes_to_rescore(cur, prev, u2, new, created, timer, **kw)) == [0, 1, 1, 1]
    timer[0] = NOW - 1000.0
    created[1] = NOW - 14 * DAY - 1000.0  # crossed the lock age since the last run
    assert list(notes_to_rescore(cur, prev, none_changed, new, created, timer, **kw)) == [1, 1, 0, 1]
    back = {**kw, "previous_epoch_millis": NOW + 1}
    assert notes_to_rescore(cur, prev, none_changed, new, created, timer, **back).all()


def test_merge_rows_takes_rescored_rows_from_the_new_run() -> None:
    new = pd.DataFrame({"noteId": [3, 1, 2], "status": ["n3", "n1", "n2"], "x": [3.0, 1.0, 2.0]})
    prev = pd.DataFrame({"noteId": [1, 2, 9], "status": ["p1", "p2", "p9"], "x": [10.0, 20.0, 90.0]})
    out = merge_rows(new, prev, np.array([2]))
    assert list(out["noteId"]) == [1, 2, 3]  # note 9 vanished; note 3 is new
    assert list(out["status"]) == ["p1", "n2", "n3"]
    assert out.dtypes.to_dict() == new.dtypes.to_dict()


def test_raters_changed_counts_every_high_volume_flip_group_change_and_new_rater() -> None:
    previous = pd.DataFrame(
        {
            "raterParticipantId": ["a", "b", "c", "d"],
            "highVolume": [False, True, False, False],
            "group": [1, 2, 3, 4],
        }
    )
    current = pd.DataFrame(
        {
            "raterParticipantId": ["a", "b", "c", "d", "e"],
            # b flips off (whether or not any scorer found b helpful), c changes group, e is new
            "highVolume": [False, False, False, False, False],
            "group": [1, 2, 5, 4, 1],
        }
    )
    assert raters_changed(previous, current).tolist() == [False, True, True, False, True]

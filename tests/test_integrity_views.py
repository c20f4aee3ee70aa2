"""Integrity views (note/rater tables, group activity) against brute force on planted data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridgewatch.integrity.adapters import detect_integrity, integrity_tables
from bridgewatch.integrity.views import (
    GROUP_ACTIVITY_FILE,
    NOTE_INTEGRITY_FILE,
    RATER_INTEGRITY_FILE,
    RATER_SIMILARITY_FILE,
    ViewParams,
    group_activity,
    group_rating_shares,
    note_view,
    rater_view,
)
from test_integrity_adapters import _dataset

N_NOTES, N_CAMP = 60, 20


def _camps(seed=0):
    """Raters 0..19 side +, 20..39 side −; notes 0..19 liked by +, 20..39 by −, 40..59 by both."""
    rng = np.random.default_rng(seed)
    camp = np.r_[np.ones(N_CAMP), -np.ones(N_CAMP)]
    lean = np.r_[np.ones(20), -np.ones(20), np.zeros(20)]
    note, rater, value = [], [], []
    for n in range(N_NOTES):
        for u in range(2 * N_CAMP):
            if rng.random() < 0.5:
                v = 1.0 if lean[n] in (0, camp[u]) else 0.0
                note.append(n)
                rater.append(u)
                value.append(v if rng.random() > 0.05 else 0.5)
    factor = camp * rng.uniform(0.3, 1.0, 2 * N_CAMP)
    return np.array(note), np.array(rater), np.array(value), factor


def test_note_view_sides_groups_and_flags_match_brute_force():
    note, rater, value, factor = _camps()
    pol = np.random.default_rng(1).uniform(-1, 1, factor.shape[0])
    pol[3] = np.nan
    group = (np.arange(40) >= N_CAMP).astype(np.int32)
    group[5] = -1
    flagged = np.zeros(40, bool)
    flagged[[2, 30]] = True
    v = note_view(note, rater, value, factor, pol, group, flagged, N_NOTES)
    assert len(v) == N_NOTES and v.numRatings.sum() == note.shape[0]
    partisan, bridging = v.iloc[:40], v.iloc[40:]
    assert partisan.sideGap.abs().min() > 0.7 and bridging.sideGap.abs().max() < 0.2
    for n in (0, 25, 50):
        on = note == n
        assert v.flaggedRatings[n] == flagged[rater[on]].sum()
        known = ~np.isnan(pol[rater[on]])
        assert np.isclose(v.raterPolarizationMean[n], pol[rater[on]][known].mean())
        placed = group[rater[on]] >= 0
        share1 = (group[rater[on]][placed] == 1).mean()
        assert np.isclose(v.opinionGroup1Share[n], share1)
        assert np.isclose(v.opinionGroup0Share[n] + v.opinionGroup1Share[n], 1.0)
        pos = on & (factor[rater] > 0)
        assert v.positiveRaters[n] == pos.sum() and np.isclose(v.positiveMeanRating[n], value[pos].mean())


def test_group_shares_nan_where_a_group_did_not_rate():
    share, mean = group_rating_shares(
        np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([1.0, 0.0, 0.5]), np.array([0, 1]), 3, 2
    )
    assert share[0].tolist() == [0.5, 0.5] and mean[0].tolist() == [1.0, 0.0]
    assert share[1].tolist() == [1.0, 0.0] and mean[1, 0] == 0.5 and np.isnan(mean[1, 1])
    assert np.isnan(share[2]).all()


def test_rater_view_nearest_is_rank_one_and_groups_follow_camps():
    note, rater, value, factor = _camps()
    pss = np.zeros(40, np.int32)
    pss[[1, 2]] = 4
    r, top = rater_view(note, rater, value, factor, pss, np.zeros(40, np.int32), N_NOTES, ViewParams(top_k=3))
    assert len(r) == 40 and (r.ratings == np.bincount(rater, minlength=40)).all()
    assert r.postSelectionValue.tolist().count(4) == 2
    first = top[top["rank"] == 1].set_index("rater")
    assert (r.nearestRater[first.index] == first.neighbor).all()
    assert top.groupby("rater").size().max() == 3
    same_camp = np.sign(factor[top.rater]) == np.sign(factor[top.neighbor])
    assert same_camp.mean() > 0.9
    a, b = r.opinionGroup[:N_CAMP], r.opinionGroup[N_CAMP:]
    assert a.nunique() == 1 and b.nunique() == 1 and a.iloc[0] != b.iloc[0]
    assert r.polarization[:40].min() > 0.3


def test_group_activity_counts_per_day():
    day = 86_400_000
    rater = np.array([0, 0, 1, 1, 2, 0])
    created = np.array([5, 10, day + 1, 20, 30, 2 * day])
    act = group_activity(rater, created, np.array([1, 1, 0]))
    assert act.to_dict("list") == {
        "group": [1, 1, 1],
        "dayMillis": [0, day, 2 * day],
        "ratings": [3, 1, 1],
        "raters": [2, 1, 1],
    }
    assert group_activity(rater, created, np.zeros(3, int)).empty


def test_integrity_tables_map_ids_and_report_the_clique():
    matrix, notes = _dataset()
    found = detect_integrity(matrix, notes)
    factor = np.where(np.arange(matrix.n_raters) % 2 == 0, 0.5, -0.5)
    tables = integrity_tables(matrix, found, factor)
    files = {NOTE_INTEGRITY_FILE, RATER_INTEGRITY_FILE, RATER_SIMILARITY_FILE, GROUP_ACTIVITY_FILE}
    assert set(tables) == files
    raters = tables[RATER_INTEGRITY_FILE].set_index("raterParticipantId")
    assert raters.index.tolist() == matrix.rater_ids.tolist()
    assert raters.loc["b1", "postSelectionValue"] > 0 and raters.loc["h00", "postSelectionValue"] == 0
    near = raters.nearestRater.dropna()
    assert set(near) <= set(matrix.rater_ids)
    notes_t = tables[NOTE_INTEGRITY_FILE]
    assert notes_t.noteId.tolist() == matrix.note_ids.tolist()
    assert notes_t.flaggedRatings[:12].tolist() == [2] * 12 and notes_t.flaggedRatings[12:].sum() == 0
    act = tables[GROUP_ACTIVITY_FILE]
    assert set(act.kind) == {"postSelection"} and act.ratings.sum() == 24
    sim = tables[RATER_SIMILARITY_FILE]
    assert isinstance(sim, pd.DataFrame) and set(sim.neighborParticipantId) <= set(matrix.rater_ids)

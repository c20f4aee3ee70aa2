"""Contributor state (§4.6): each enrollment transition at its boundary, counts and impact."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.scoring import contributor as ct
from bridgewatch.scoring.config import ScoringConfig

CFG = ScoringConfig()
NOW = 1_795_305_600_000
ES = schema.ENROLLMENT_STATES


def transition(
    state, impact=0.0, needed=5, crnh_recent=0, crh_all=0, crnh_all=0, notes_all=0, times=0, cfg=CFG
):
    arr = lambda x, t=np.float64: np.array([x], dtype=t)  # noqa: E731
    s, nd, tm, lc = ct.enrollment_transitions(
        arr(ES[state], np.int64),
        arr(impact),
        arr(needed),
        arr(crnh_recent, np.int64),
        arr(crh_all, np.int64),
        arr(crnh_all, np.int64),
        arr(notes_all, np.int64),
        arr(times, np.int64),
        arr(0.0),
        epoch_millis=NOW,
        config=cfg,
    )
    return int(s[0]), float(nd[0]), int(tm[0]), float(lc[0])


@pytest.mark.parametrize(
    "kw, state, needed, times, changed",
    [
        (dict(state="newUser", impact=5), "earnedIn", 5, 0, True),  # earn-in at exactly 5
        (dict(state="newUser", impact=4.9), "newUser", 5, 0, False),
        (dict(state="earnedOutAcknowledged", impact=9, needed=10), "earnedOutAcknowledged", 10, 0, False),
        (dict(state="earnedOutAcknowledged", impact=10, needed=10), "earnedIn", 10, 0, True),
        (dict(state="removed", impact=50), "removed", 5, 0, False),
        (dict(state="apiEarnedIn", impact=50, crnh_recent=4), "apiEarnedIn", 5, 0, False),
        (dict(state="earnedIn", crnh_recent=2), "atRisk", 5, 0, True),  # exactly 2 of last 5
        (dict(state="earnedIn", crnh_recent=1), "earnedIn", 5, 0, False),
        (dict(state="newUser", crnh_recent=2), "newUser", 5, 0, False),
        (dict(state="earnedIn", crnh_recent=3, impact=4), "earnedOutAcknowledged", 5 + 4, 1, True),  # > 2
        (dict(state="atRisk", crnh_recent=3, times=2), "earnedOutAcknowledged", 5 + 5 * 2, 3, True),
        (dict(state="atRisk", crnh_recent=1), "earnedIn", 5, 0, True),  # recover below 2
        (dict(state="atRisk", crnh_recent=2), "atRisk", 5, 0, False),
        # A new user who earns in and has 2 CRNH in the same run goes on to at risk.
        (dict(state="newUser", impact=6, crnh_recent=2), "atRisk", 5, 0, True),
        # Top writer: writing impact ≥ 10 and hit rate ≥ 4% → no escalation.
        (
            dict(state="earnedIn", crnh_recent=3, times=3, crh_all=13, crnh_all=3, notes_all=20),
            "earnedOutAcknowledged",
            5,
            4,
            True,
        ),
        (
            dict(state="earnedIn", crnh_recent=3, times=3, crh_all=12, crnh_all=3, notes_all=20),
            "earnedOutAcknowledged",
            20,
            4,
            True,
        ),
    ],
)
def test_enrollment_transitions(kw, state, needed, times, changed):
    s, nd, tm, lc = transition(**kw)
    assert (s, nd, tm) == (ES[state], needed, times)
    assert (lc == NOW) is changed


def test_earned_out_no_ack_is_written_acknowledged_with_recomputed_target():
    s, nd, tm, lc = transition("earnedOutNoAcknowledge", impact=3, times=2)
    assert (s, nd, tm, lc) == (ES["earnedOutAcknowledged"], 5 + 3 + 5, 2, 0.0)


def test_single_trigger_earn_out_is_optional():
    on = ScoringConfig(contributor=dataclasses.replace(CFG.contributor, single_trigger_earn_out=True))
    assert transition("earnedIn", crnh_recent=1, crh_all=0, crnh_all=1)[0] == ES["earnedIn"]
    assert (
        transition("earnedIn", crnh_recent=1, crh_all=0, crnh_all=1, cfg=on)[0] == ES["earnedOutAcknowledged"]
    )
    assert transition("earnedIn", crnh_recent=1, crh_all=1, crnh_all=1, cfg=on)[0] == ES["earnedIn"]


def test_last_notes_counts_orders_status_first_then_newest_and_respects_earn_out():
    author = np.zeros(8, dtype=np.int64)
    note_id = np.arange(1, 9, dtype=np.int64)
    created = np.array([10, 20, 30, 40, 50, 60, 70, 80], dtype=np.float64)
    status = np.array(
        [schema.CRNH, schema.CRNH, schema.CRH, schema.NMR, schema.NMR, schema.NMR, schema.NMR, schema.NMR],
        dtype=object,
    )
    counts = ct.last_notes_counts(author, note_id, created, status, np.array([0.0]), 1, 5)
    assert counts.tolist() == [[1, 2, 2]]  # 3 rated notes first, then the 2 newest NMR
    counts = ct.last_notes_counts(author, note_id, created, status, np.array([15.0]), 1, 5)
    assert counts.tolist() == [[1, 1, 3]]  # note 1 predates the last earn-out


def test_rating_impact_counts_helpful_on_crnh_twice():
    counts = pd.DataFrame(
        {
            "successfulRatingTotal": [6],
            "unsuccessfulRatingTotal": [2],
            "unsuccessfulRatingNotHelpfulCount": [1],
        }
    )
    assert ct.rating_impact(counts).tolist() == [3.0]


def test_contributor_scores_end_to_end():
    day = 86_400_000
    note_ids = np.array([1, 2, 3], dtype=np.int64)
    raters = np.array(["a", "r1", "r2"], dtype=object)
    m = build_rating_matrix(
        note=np.array([0, 0, 1, 2]),
        rater=np.array([1, 2, 1, 2]),
        value=np.ones(4),
        created_at=np.array([NOW - 5 * day, NOW - 5 * day + 1, NOW - 3 * day, NOW - 1 * day]),
        tags=np.zeros(4),
        population_sampled=np.zeros(4, bool),
        note_ids=note_ids,
        rater_ids=raters,
    )
    notes = pd.DataFrame(
        {
            "noteId": note_ids,
            "noteAuthorParticipantId": ["a", "a", "a"],
            "createdAtMillis": [NOW - 6 * day, NOW - 4 * day, NOW - 2 * day],
            "finalRatingStatus": [schema.CRH, schema.NMR, schema.NMR],
            "coreNoteIntercept": [0.45, 0.2, np.nan],
        }
    )
    nsh = pd.DataFrame(
        {"noteId": note_ids, "timestampMillisOfLatestNonNMRStatus": [NOW - 5 * day, np.nan, np.nan]}
    )
    counts = pd.DataFrame({"raterParticipantId": ["r1"], **{c: [0.0] for c in ct.COUNT_COLUMNS}})
    counts.loc[0, ["successfulRatingHelpfulCount", "successfulRatingTotal"]] = 5
    enr = pd.DataFrame(
        {
            "participantId": ["r1"],
            "enrollmentState": ["newUser"],
            "successfulRatingNeededToEarnIn": [5],
            "timestampOfLastStateChange": [1.0],
            "timestampOfLastEarnOut": [1.0],
            "modelingPopulation": ["CORE"],
            "modelingGroup": [13.0],
            "numberOfTimesEarnedOut": [0],
        }
    )
    out = ct.contributor_scores(m, notes, nsh, counts, enr, epoch_millis=NOW, config=CFG).set_index(
        "raterParticipantId"
    )
    assert out.index.tolist() == ["a", "r1", "r2"]
    assert (
        out.loc["r1", "enrollmentState"] == ES["earnedIn"]
        and out.loc["r1", "timestampOfLastStateChange"] == NOW
    )
    assert out.loc["r2", "enrollmentState"] == ES["newUser"]
    assert out.loc["r2", "ratedAfterDecision"] == 1  # rated note 1 after its status time
    assert out.loc["r1", "ratingsAwaitingMoreRatings"] == 1  # note 2 is NMR; note 1 is CRH
    a = out.loc["a"]
    assert (a.notesCurrentlyRatedHelpful, a.notesAwaitingMoreRatings, a.aggregateRatingReceivedTotal) == (
        1,
        2,
        4,
    )
    assert (a.crhTotal14d, a.nmrTotal14d, a.nmrTotal90d) == (1, 0, 2)  # NMR notes need 10 ratings for 14d
    assert not a.isEmergingWriter  # mean intercept 0.65 / 3 notes, and only 4 ratings in 28 days


def test_writing_record_is_empty_for_participants_without_notes():
    # Same community as above, seen from the raters r1/r2 who wrote nothing.
    note_ids = np.array([1], dtype=np.int64)
    m = build_rating_matrix(
        note=np.array([0, 0]), rater=np.array([0, 1]), value=np.ones(2),
        created_at=np.array([NOW - 10, NOW - 5]), tags=np.zeros(2), population_sampled=np.zeros(2, bool),
        note_ids=note_ids, rater_ids=np.array(["r1", "r2"], dtype=object),
    )  # fmt: skip
    notes = pd.DataFrame(
        {"noteId": note_ids, "noteAuthorParticipantId": ["a"], "createdAtMillis": [NOW - 20],
         "finalRatingStatus": [schema.NMR], "coreNoteIntercept": [np.nan]}
    )  # fmt: skip
    nsh = pd.DataFrame({"noteId": note_ids, "timestampMillisOfLatestNonNMRStatus": [np.nan]})
    counts = pd.DataFrame({"raterParticipantId": ["r1"], **{c: [0.0] for c in ct.COUNT_COLUMNS}})
    enr = _no_enrollment()
    out = ct.contributor_scores(m, notes, nsh, counts, enr, epoch_millis=NOW, config=CFG)
    out = out.set_index("raterParticipantId")
    for col in ("notesCurrentlyRatedHelpful", "notesAwaitingMoreRatings", "aggregateRatingReceivedTotal"):
        assert np.isnan(out.loc["r1", col]) and np.isnan(out.loc["r2", col])
    assert out.loc["a", "notesAwaitingMoreRatings"] == 1 and out.loc["a", "aggregateRatingReceivedTotal"] == 2
    # No tag on the author's note: no top tags, but the column is present.
    assert out.loc["a", "authorTopNotHelpfulTagValues"] in ("", None)
    assert pd.isna(out.loc["r1", "authorTopNotHelpfulTagValues"])


def test_rating_counts_are_empty_without_a_rating_before_status():
    """Bug: every participant got 0 rating counts. The reference counts ratings made within 48 h
    of the note and before its status; a participant with none (an author who never rated, a
    rater who only rated late) has no row there, so those eight columns stay empty."""
    day = 86_400_000
    note_ids = np.array([1, 2], dtype=np.int64)
    m = build_rating_matrix(
        note=np.array([0, 1]), rater=np.array([0, 1]), value=np.ones(2),
        created_at=np.array([NOW - 9 * day, NOW - 9 * day]), tags=np.zeros(2),
        population_sampled=np.zeros(2, bool), note_ids=note_ids,
        rater_ids=np.array(["early", "late"], dtype=object),
    )  # fmt: skip
    notes = pd.DataFrame(
        {"noteId": note_ids, "noteAuthorParticipantId": ["a", "a"],
         "createdAtMillis": [NOW - 10 * day, NOW - 12 * day], "finalRatingStatus": [schema.NMR] * 2,
         "coreNoteIntercept": [np.nan, np.nan]}
    )  # fmt: skip
    nsh = pd.DataFrame({"noteId": note_ids, "timestampMillisOfLatestNonNMRStatus": [np.nan, np.nan]})
    counts = pd.DataFrame({"raterParticipantId": ["early"], **{c: [0.0] for c in ct.COUNT_COLUMNS}})
    enr = _no_enrollment()
    out = ct.contributor_scores(m, notes, nsh, counts, enr, epoch_millis=NOW, config=CFG)
    out = out.set_index("raterParticipantId")
    columns = [*ct.COUNT_COLUMNS, "ratingsAwaitingMoreRatings", "ratedAfterDecision"]
    assert (out.loc["early", columns] == [0, 0, 0, 0, 0, 0, 1, 0]).all()
    assert out.loc["late", columns].isna().all() and out.loc["a", columns].isna().all()


def _one_author_community(author_rates: bool):
    """An earnedIn author with three CRNH notes; a rater r rates each note (and the author rates
    note 1 before its status when ``author_rates``)."""
    day = 86_400_000
    note_ids = np.array([1, 2, 3], dtype=np.int64)
    raters = np.array(["a", "r"], dtype=object) if author_rates else np.array(["r"], dtype=object)
    rows = [(0, 1), (1, 1), (2, 1), (0, 0)] if author_rates else [(0, 0), (1, 0), (2, 0)]
    m = build_rating_matrix(
        note=np.array([n for n, _ in rows]), rater=np.array([r for _, r in rows]),
        value=np.zeros(len(rows)), created_at=np.full(len(rows), NOW - 9 * day), tags=np.zeros(len(rows)),
        population_sampled=np.zeros(len(rows), bool), note_ids=note_ids, rater_ids=raters,
    )  # fmt: skip
    notes = pd.DataFrame(
        {"noteId": note_ids, "noteAuthorParticipantId": ["a"] * 3,
         "createdAtMillis": [NOW - 10 * day] * 3, "finalRatingStatus": [schema.CRNH] * 3,
         "coreNoteIntercept": [-0.2] * 3}
    )  # fmt: skip
    nsh = pd.DataFrame({"noteId": note_ids, "timestampMillisOfLatestNonNMRStatus": [NOW - 8 * day] * 3})
    counts = pd.DataFrame({"raterParticipantId": ["r"], **{c: [1.0] for c in ct.COUNT_COLUMNS}})
    enr = pd.DataFrame(
        {"participantId": ["a"], "enrollmentState": ["earnedIn"], "successfulRatingNeededToEarnIn": [5],
         "timestampOfLastStateChange": [7.0], "timestampOfLastEarnOut": [3.0], "numberOfTimesEarnedOut": [1]}
    )  # fmt: skip
    return m, notes, nsh, counts, enr


def test_state_machine_does_not_see_authored_notes_by_default():
    """Bug: earnedIn authors with 2-3 CRNH of their last 5 went atRisk / earned out, but the
    reference's rater rows never meet its author rows, so no note-based transition fires there."""
    data = _one_author_community(author_rates=True)
    out = ct.contributor_scores(*data, epoch_millis=NOW, config=CFG).set_index("raterParticipantId")
    assert out.loc["a", "enrollmentState"] == ES["earnedIn"]
    assert out.loc["a", "numberOfTimesEarnedOut"] == 1 and out.loc["a", "timestampOfLastStateChange"] == 7.0
    sees = ScoringConfig(contributor=dataclasses.replace(CFG.contributor, state_sees_notes=True))
    out = ct.contributor_scores(*data, epoch_millis=NOW, config=sees).set_index("raterParticipantId")
    assert out.loc["a", "enrollmentState"] == ES["earnedOutAcknowledged"]
    assert out.loc["a", "numberOfTimesEarnedOut"] == 2 and out.loc["a", "timestampOfLastStateChange"] == NOW


def test_author_without_a_rating_row_gets_new_user_defaults():
    """Bug: an enrolled author who never rated before a status kept its enrollment row; the
    reference writes only its author row, with the new-user defaults."""
    out = ct.contributor_scores(*_one_author_community(author_rates=False), epoch_millis=NOW, config=CFG)
    a = out.set_index("raterParticipantId").loc["a"]
    assert a.enrollmentState == ES["newUser"] and a.successfulRatingNeededToEarnIn == 5
    assert a.timestampOfLastEarnOut == 1.0
    assert np.isnan(a.numberOfTimesEarnedOut) and np.isnan(a.timestampOfLastStateChange)


def _no_enrollment() -> pd.DataFrame:
    """An enrollment table with its columns and no participant."""
    return pd.DataFrame(
        columns=["participantId", "enrollmentState", "successfulRatingNeededToEarnIn",
                 "timestampOfLastStateChange", "timestampOfLastEarnOut", "numberOfTimesEarnedOut"]
    )  # fmt: skip


def test_recent_stats_windows_end_48_hours_before_the_scoring_time():
    """Bug: the 14d/90d note counts ran back from the scoring time; the reference's end 48 h
    earlier (its public-data delay), so a CRH note 15 days old still counts in crhTotal14d."""
    day = 86_400_000
    ages = np.array([15.0, 16.5, 91.0, 92.5])  # days before the scoring time
    note_ids = np.arange(1, 5, dtype=np.int64)
    m = build_rating_matrix(
        note=np.arange(4), rater=np.zeros(4, dtype=np.int64), value=np.ones(4),
        created_at=(NOW - ages * day + 1000).astype(np.int64), tags=np.zeros(4),
        population_sampled=np.zeros(4, bool), note_ids=note_ids, rater_ids=np.array(["r"], dtype=object),
    )  # fmt: skip
    notes = pd.DataFrame(
        {"noteId": note_ids, "noteAuthorParticipantId": ["a"] * 4, "createdAtMillis": NOW - ages * day,
         "finalRatingStatus": [schema.CRH, schema.CRH, schema.CRNH, schema.CRNH], "coreNoteIntercept": 0.1}
    )  # fmt: skip
    nsh = pd.DataFrame({"noteId": note_ids, "timestampMillisOfLatestNonNMRStatus": np.nan})
    counts = pd.DataFrame({"raterParticipantId": ["r"], **{c: [0.0] for c in ct.COUNT_COLUMNS}})
    out = ct.contributor_scores(m, notes, nsh, counts, _no_enrollment(), epoch_millis=NOW, config=CFG)
    a = out.set_index("raterParticipantId").loc["a"]
    assert (a.crhTotal14d, a.crhTotal90d, a.crnhTotal90d) == (1, 2, 1)
    at_now = dataclasses.replace(CFG, contributor=dataclasses.replace(CFG.contributor, stats_lag_millis=0))
    out = ct.contributor_scores(m, notes, nsh, counts, _no_enrollment(), epoch_millis=NOW, config=at_now)
    a = out.set_index("raterParticipantId").loc["a"]
    assert (a.crhTotal14d, a.crhTotal90d, a.crnhTotal90d) == (0, 2, 0)


@pytest.mark.parametrize("second_intercept, emerging", [(np.nan, False), (0.5, True)])
def test_emerging_writer_mean_counts_unscored_notes(second_intercept, emerging):
    """Bug: the emerging-writer mean ran over scored notes only; the reference divides the sum of
    intercepts by all of the author's notes, so an unscored note halves a 0.5 mean here."""
    day = 86_400_000
    note_ids = np.array([1, 2], dtype=np.int64)
    m = build_rating_matrix(
        note=np.zeros(12, dtype=np.int64), rater=np.arange(12), value=np.ones(12),
        created_at=np.full(12, NOW - 3 * day), tags=np.zeros(12), population_sampled=np.zeros(12, bool),
        note_ids=note_ids, rater_ids=np.array([f"r{i:02d}" for i in range(12)], dtype=object),
    )  # fmt: skip
    notes = pd.DataFrame(
        {"noteId": note_ids, "noteAuthorParticipantId": ["a", "a"], "createdAtMillis": NOW - 5 * day,
         "finalRatingStatus": [schema.NMR, schema.NMR], "coreNoteIntercept": [0.5, second_intercept]}
    )  # fmt: skip
    nsh = pd.DataFrame({"noteId": note_ids, "timestampMillisOfLatestNonNMRStatus": np.nan})
    counts = pd.DataFrame({"raterParticipantId": ["r00"], **{c: [0.0] for c in ct.COUNT_COLUMNS}})
    out = ct.contributor_scores(m, notes, nsh, counts, _no_enrollment(), epoch_millis=NOW, config=CFG)
    assert bool(out.set_index("raterParticipantId").loc["a", "isEmergingWriter"]) is emerging


def test_rating_window_counts_match_the_mask_form():
    """The one-pass counts equal ``np.bincount`` of the former per-rating masks (candidate,
    awaiting, after, last 28 days), with NaN note times and statuses on both sides."""
    rng = np.random.default_rng(5)
    r, n_notes, n_raters, n = 20000, 300, 700, 900
    note = rng.integers(0, n_notes, r).astype(np.int32)
    rater = rng.integers(0, n_raters, r).astype(np.int32)
    created_at = NOW - rng.integers(0, 60 * ct.DAY_MILLIS, r).astype(np.int64)
    rater_row = rng.permutation(n)[:n_raters].astype(np.int64)
    note_created = NOW - rng.integers(0, 62 * ct.DAY_MILLIS, n_notes).astype(np.float64)
    note_created[rng.random(n_notes) < 0.1] = np.nan
    latest = note_created + rng.integers(0, 3 * ct.DAY_MILLIS, n_notes)
    latest[rng.random(n_notes) < 0.4] = np.nan
    status = rng.choice(np.array([schema.NMR, schema.CRH, schema.CRNH], dtype=object), n_notes)
    delay, recent_from = float(schema.PUBLIC_TSV_TIME_DELAY_MILLIS), float(NOW) - 28 * ct.DAY_MILLIS
    got = ct._rating_window_counts(
        note, rater, created_at, rater_row, note_created, latest, status == schema.NMR, delay, recent_from, n
    )
    # read a chunk at a time (the last one short), the counts are the same
    chunked = ct._rating_window_counts(
        note, rater, created_at, rater_row, note_created, latest, status == schema.NMR, delay, recent_from, n,
        chunk=4096,
    )  # fmt: skip
    for g, c in zip(got, chunked, strict=True):
        np.testing.assert_array_equal(g, c)
    lat = latest[note]
    candidate = (created_at - note_created[note] < schema.PUBLIC_TSV_TIME_DELAY_MILLIS) & (
        np.isnan(lat) | (created_at < lat)
    )
    awaiting = candidate & (status[note] == schema.NMR)
    after = created_at > lat
    u = rater_row[rater]
    expected = (
        np.bincount(u[awaiting], minlength=n),
        np.bincount(u[after], minlength=n),
        np.bincount(u[candidate], minlength=n),
        np.bincount(note[created_at > recent_from], minlength=n_notes),
    )
    assert all(e.sum() > 0 for e in expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_array_equal(g, e)

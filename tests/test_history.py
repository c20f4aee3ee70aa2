"""Note status history (§1.4, §6.6): merge, locking, timers, first/latest status, multi-run chains."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.scoring import history, meta
from bridgewatch.scoring.config import ScoringConfig

CRH, CRNH, NMR = schema.CRH, schema.CRNH, schema.NMR
DAY = 86_400_000
T0 = 1_780_000_000_000
CFG = ScoringConfig()


def notes_frame(ids, created=None, authors=None) -> pd.DataFrame:
    ids = np.asarray(ids, dtype=np.int64)
    return pd.DataFrame(
        {
            "noteId": ids,
            "noteAuthorParticipantId": authors or [f"A{i}" for i in ids],
            "createdAtMillis": created if created is not None else np.full(ids.size, T0),
        }
    )


def final_frame(ids, status, decided="CoreModel (v1.1)", timer=np.nan) -> pd.DataFrame:
    ids = np.asarray(ids, dtype=np.int64)
    n = ids.size
    return pd.DataFrame(
        {
            "noteId": ids,
            "finalRatingStatus": status if isinstance(status, list) else [status] * n,
            "decidedBy": decided if isinstance(decided, list) else [decided] * n,
            "coreRatingStatus": status if isinstance(status, list) else [status] * n,
            meta.UPDATED_TIMER_COLUMN: timer if isinstance(timer, list) else [timer] * n,
        }
    )


def test_merge_adds_new_notes_keeps_deleted_and_sorts():
    nsh = history.update_status_history(
        history.empty_history(),
        notes_frame([5, 3]),
        final_frame([5, 3], NMR),
        epoch_millis=T0 + DAY,
        config=CFG,
    )
    merged = history.merge_notes_into_history(nsh, notes_frame([3, 9]))
    assert merged.noteId.tolist() == [3, 5, 9]
    assert merged.columns.tolist() == list(schema.NOTE_STATUS_HISTORY_COLUMNS)
    assert merged.loc[2, "noteAuthorParticipantId"] == "A9"
    assert pd.isna(merged.loc[2, "currentStatus"])


@pytest.mark.parametrize("field", ["createdAtMillis", "noteAuthorParticipantId"])
def test_merge_mismatch_names_the_note(field):
    nsh = history.merge_notes_into_history(history.empty_history(), notes_frame([42]))
    other = notes_frame(
        [42],
        created=[T0 + 1] if field == "createdAtMillis" else None,
        authors=["B"] if field == "noteAuthorParticipantId" else None,
    )
    with pytest.raises(DataFormatError, match="note 42") as err:
        history.merge_notes_into_history(nsh, other)
    assert err.value.field == field


def test_duplicate_note_is_an_error():
    with pytest.raises(DataFormatError, match="more than once"):
        history.merge_notes_into_history(history.empty_history(), notes_frame([1, 1]))


def step(nsh, ids, status, now, decided="CoreModel (v1.1)", timer=np.nan, created=None):
    return history.update_status_history(
        nsh,
        notes_frame(ids, created=created),
        final_frame(ids, status, decided, timer),
        epoch_millis=now,
        config=CFG,
    )


def test_first_and_latest_non_nmr_bookkeeping():
    t1, t2, t3, t4 = (T0 + k * DAY for k in (1, 2, 3, 4))
    nsh = step(history.empty_history(), [1], NMR, t1)
    row = nsh.iloc[0]
    assert pd.isna(row.firstNonNMRStatus) and row.timestampMillisOfMostRecentStatusChange == t1
    nsh = step(nsh, [1], CRH, t2)
    row = nsh.iloc[0]
    assert (row.firstNonNMRStatus, row.timestampMillisOfFirstNonNMRStatus) == (CRH, t2)
    assert (row.mostRecentNonNMRStatus, row.timestampMillisOfLatestNonNMRStatus) == (CRH, t2)
    nsh = step(nsh, [1], NMR, t3)  # NMR touches neither first nor latest
    row = nsh.iloc[0]
    assert (row.mostRecentNonNMRStatus, row.timestampMillisOfLatestNonNMRStatus) == (CRH, t2)
    assert (row.currentStatus, row.timestampMillisOfMostRecentStatusChange) == (NMR, t3)
    nsh = step(nsh, [1], CRNH, t4)  # a flip moves latest only
    row = nsh.iloc[0]
    assert (row.firstNonNMRStatus, row.timestampMillisOfFirstNonNMRStatus) == (CRH, t2)
    assert (row.mostRecentNonNMRStatus, row.timestampMillisOfLatestNonNMRStatus) == (CRNH, t4)


def test_unchanged_status_keeps_change_time_and_defaults_to_minus_one():
    legacy = history.merge_notes_into_history(history.empty_history(), notes_frame([1]))
    legacy["currentStatus"] = NMR  # a legacy row without a change timestamp
    nsh = step(legacy, [1], NMR, T0 + DAY)
    assert nsh.timestampMillisOfMostRecentStatusChange[0] == -1
    assert nsh.timestampMillisOfCurrentStatus[0] == T0 + DAY


def test_pre_tombstone_notes_keep_old_first_status():
    old = schema.DELETED_NOTE_TOMBSTONES_LAUNCH_MILLIS - DAY
    nsh = step(history.empty_history(), [1], CRH, T0, created=[old])
    assert pd.isna(nsh.firstNonNMRStatus[0]) and nsh.currentStatus[0] == CRH


@pytest.mark.parametrize(
    "age_days, decided, locks",
    [
        (14.01, "CoreModel (v1.1)", True),
        (14.0, "CoreModel (v1.1)", False),  # must be strictly older than 14 days
        (20, "ExpansionPlusModel (v1.1)", False),
        (20, "TopicModel02 (v1.0)", False),
        (20, "NmrDueToMinStableCrhTime (v1.0)", False),
        (20, "ScoringDriftGuard (v1.0)", False),
        (20, "MetaInitialNMR (v1.0)", False),
        (20, "GroupModel15NMR (v1.1)", True),
        (20, "InsufficientExplanation (v1.0)", True),
        (20, "GaussianCoreWithTopicsModel (v1.0)", True),
    ],
)
def test_locking_only_for_trusted_rules_after_14_days(age_days, decided, locks):
    now = int(T0 + age_days * DAY)
    nsh = step(history.empty_history(), [1], CRH, now, decided=decided, timer=now - 1)
    row = nsh.iloc[0]
    assert bool(row.lockedStatus == CRH) == locks
    assert bool(row.timestampMillisOfStatusLock == now) == locks
    # A locked note has its stabilization timer cleared; an unlocked one copies the new timer.
    assert row.timestampMillisOfNmrDueToMinStableCrhTime == (-1 if locks else now - 1)


def test_locked_status_never_changes_and_drift_guard_holds_it():
    now = T0 + 15 * DAY
    nsh = step(history.empty_history(), [1], CRH, now)
    scored = pd.DataFrame({"noteId": [1], "coreRatingStatus": [NMR]})
    out = meta.meta_score(scored, nsh, epoch_millis=now + DAY, config=CFG)
    assert (out.finalRatingStatus[0], out.decidedBy[0]) == (CRH, "ScoringDriftGuard (v1.0)")
    nsh2 = step(nsh, [1], NMR, now + 2 * DAY, decided="CoreModel (v1.1)")
    assert (nsh2.lockedStatus[0], nsh2.timestampMillisOfStatusLock[0]) == (CRH, now)


def test_first_timer_set_once():
    nsh = step(history.empty_history(), [1], NMR, T0 + DAY, timer=T0 + DAY)
    nsh = step(nsh, [1], CRH, T0 + DAY + 3_600_000, timer=-1.0)
    row = nsh.iloc[0]
    assert row.timestampMillisOfFirstNmrDueToMinStableCrhTime == T0 + DAY
    assert row.timestampMillisOfNmrDueToMinStableCrhTime == -1


def test_notes_not_rescored_pass_through():
    nsh = step(history.empty_history(), [1, 2], [CRH, CRNH], T0 + DAY)
    later = history.update_status_history(
        nsh, notes_frame([1, 2]), final_frame([1], NMR), epoch_millis=T0 + 2 * DAY, config=CFG
    )
    pd.testing.assert_series_equal(later.iloc[1], nsh.iloc[1], check_names=False)
    assert later.currentStatus[0] == NMR


def test_chain_of_runs_stabilizes_then_locks():
    """Run N+1 reads run N's output: a note scored CRH every 20 minutes becomes CRH after the delay."""
    created = T0
    nsh = history.empty_history()
    statuses, timers = [], []
    now = created + DAY
    for _ in range(6):
        scored = pd.DataFrame({"noteId": [1], "coreRatingStatus": [CRH], "pflipLabel": ["CRH"]})
        out = meta.meta_score(scored, nsh, epoch_millis=now, config=CFG)
        final = out.assign(coreRatingStatus=CRH)
        nsh = history.update_status_history(nsh, notes_frame([1]), final, epoch_millis=now, config=CFG)
        statuses.append(out.finalRatingStatus[0])
        timers.append(nsh.timestampMillisOfNmrDueToMinStableCrhTime[0])
        now += 20 * 60_000
    # t=0 enter, 20 min wait, 40 min ≥ 30 → CRH and exit; later runs keep CRH without delay.
    assert statuses == [NMR, NMR, CRH, CRH, CRH, CRH]
    assert timers[:3] == [created + DAY, created + DAY, -1]
    assert nsh.firstNonNMRStatus[0] == CRH
    assert nsh.timestampMillisOfFirstNonNMRStatus[0] == created + DAY + 40 * 60_000
    assert pd.isna(nsh.lockedStatus[0])
    # Two weeks later the trusted CoreModel decision locks it.
    now = created + 15 * DAY
    scored = pd.DataFrame({"noteId": [1], "coreRatingStatus": [CRH]})
    out = meta.meta_score(scored, nsh, epoch_millis=now, config=CFG)
    nsh = history.update_status_history(nsh, notes_frame([1]), out, epoch_millis=now, config=CFG)
    assert (nsh.lockedStatus[0], out.decidedBy[0]) == (CRH, "CoreModel (v1.1)")


def test_output_is_deterministic():
    a = step(history.empty_history(), [3, 1, 2], [CRH, NMR, CRNH], T0 + DAY)
    b = step(history.empty_history(), [3, 1, 2], [CRH, NMR, CRNH], T0 + DAY)
    assert a.to_csv(sep="\t") == b.to_csv(sep="\t")
    assert a.noteId.tolist() == [1, 2, 3]


@pytest.mark.parametrize(
    ("age_days", "status_age_days", "expected"),
    [
        (20.0, 5.0, "ALL_NOTES"),
        (13.0, 2.0, "ALL_NOTES,NOTES_CREATED_SOMEWHAT_RECENTLY,NEW_NOTES_NOT_RESCORED_RECENTLY_ENOUGH"),
        (12.0, 0.5, "ALL_NOTES,NOTES_CREATED_SOMEWHAT_RECENTLY"),  # rescored within the last day
        (3.01, 2.0, "ALL_NOTES,NOTES_CREATED_SOMEWHAT_RECENTLY,NEW_NOTES_NOT_RESCORED_RECENTLY_ENOUGH"),
        (3.0, 2.0, "ALL_NOTES,NEW_NOTES_NOT_RESCORED_RECENTLY_ENOUGH"),  # needs more than 3 days
        (13.5, 2.0, "ALL_NOTES,NEW_NOTES_NOT_RESCORED_RECENTLY_ENOUGH"),  # over 13, under 14 days
        (14.0, 2.0, "ALL_NOTES"),
        (5.0, None, "ALL_NOTES,NOTES_CREATED_SOMEWHAT_RECENTLY"),  # new note: no previous status
    ],
)
def test_rescoring_rules_of_a_full_run(age_days, status_age_days, expected):
    day, now = 86_400_000, 1_795_305_600_000
    nsh = pd.DataFrame({"noteId": [7], "timestampMillisOfCurrentStatus": [np.nan]})
    if status_age_days is not None:
        nsh.loc[0, "timestampMillisOfCurrentStatus"] = now - status_age_days * day
    else:
        nsh = nsh.iloc[:0]
    out = history.rescoring_rules(np.array([7]), np.array([now - age_days * day]), nsh, epoch_millis=now)
    assert out.tolist() == [expected]


@pytest.mark.parametrize(
    "values",
    [
        ["a", None, np.nan],
        ["a", pd.NA],
        [None, None],
        [np.nan, None],
        ["a", 1],
        ["a", pd.NaT],
        [],
    ],
)
def test_settled_values_are_those_a_frame_column_gives_back(values):
    raw = np.array(values, dtype=object) if values else np.zeros(0, dtype=object)
    before = raw.copy()
    want = pd.DataFrame({"c": raw})["c"].to_numpy(dtype=object)
    got = history._settled(raw)
    assert [repr(v) for v in got] == [repr(v) for v in want]
    assert [repr(v) for v in raw] == [repr(v) for v in before]  # the input is left as it was


def test_history_columns_come_back_as_from_a_frame_round_trip():
    # An object history column of text with None, another all None: the str column reads NaN
    # where missing (as the frame gives it), the all-None one keeps its None.
    nsh = history.merge_notes_into_history(history.empty_history(), notes_frame([1, 2]))
    nsh["lockedStatus"] = np.array([CRH, None], dtype=object)
    nsh["currentGroupStatus"] = np.array([None, None], dtype=object)
    cols = history._typed_columns(nsh)
    assert repr(cols["lockedStatus"][1]) == "nan"
    assert cols["currentGroupStatus"][0] is None
    out = history.update_status_history(
        nsh, notes_frame([1, 2, 3]), final_frame([2, 3], CRH), epoch_millis=T0 + DAY, config=CFG
    )
    assert list(out["noteId"]) == [1, 2, 3]
    assert out["lockedStatus"].dtype == "str" and out["currentGroupStatus"].dtype == object
    assert out["currentStatus"].tolist()[1:] == [CRH, CRH]


def test_text_columns_of_a_read_history_share_one_object_per_value():
    """A history read from a file holds pandas text columns, whose ``to_numpy(dtype=object)`` is a
    str object a note (~0.7 GiB of them at 1.25M notes): the next history is built from one a
    distinct value, to the values and missing markers the object path gives."""
    n = 400
    ids = np.arange(1, n + 1, dtype=np.int64)
    first = history.update_status_history(
        history.empty_history(),
        notes_frame(ids),
        final_frame(ids, [CRH if i % 3 else NMR for i in range(n)]),
        epoch_millis=T0 + DAY,
        config=CFG,
    )
    as_read = first.copy()
    as_objects = first.copy()
    for c in history._STRING_COLUMNS:
        as_read[c] = as_read[c].astype("str")  # what a TSV or Parquet read gives
        as_objects[c] = as_objects[c].astype(object)
    assert isinstance(as_read["currentStatus"].dtype, pd.StringDtype)
    later = notes_frame(np.arange(1, n + 41, dtype=np.int64))
    final = final_frame(later["noteId"], CRNH)
    args = dict(epoch_millis=T0 + 2 * DAY, config=CFG)
    shared = history.update_status_history(as_read, later, final, **args)
    plain = history.update_status_history(as_objects, later, final, **args)
    pd.testing.assert_frame_equal(shared, plain)
    for c in history._STRING_COLUMNS:
        assert [type(v) for v in shared[c]] == [type(v) for v in plain[c]], c
    merged = history._merged_columns(as_read, later)  # (the frame keeps its text as Arrow)
    assert len({id(v) for v in merged["currentStatus"] if isinstance(v, str)}) == 2  # CRH, NMR
    assert len({id(v) for v in merged["noteAuthorParticipantId"]}) == n + 40  # all distinct


@pytest.mark.parametrize("dtype", ["str", "string", object])
def test_text_objects_are_the_object_arrays_values_shared(dtype):
    from bridgewatch.scoring.outputs import text_objects

    column = pd.Series(["b", None, "a", "b", "", "a"] * 5, dtype=dtype)
    got, want = text_objects(column), column.to_numpy(dtype=object)
    assert [repr(v) for v in got] == [repr(v) for v in want]
    if dtype is not object:
        assert len({id(v) for v in got if isinstance(v, str)}) == 3

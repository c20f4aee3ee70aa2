"""Note status history (NSH): the scorer's persistent per-note state between runs (§1.4, §6.6, §6.7).

A run reads the previous NSH, scores, and writes the next one: current status and which scorer
decided it, the first and latest CRH/CRNH status with their times (they bound which ratings count
as "valid", §4.1), the 14-day status lock (only for trusted rules; the drift guard then holds the
note to it) and the stabilization timer of §6.5. Everything here is column arithmetic over aligned
arrays; one call handles millions of notes in about a second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.meta import LOCKING_ENABLED_RULES, UPDATED_TIMER_COLUMN
from bridgewatch.scoring.outputs import text_objects

NSH_COLUMNS = schema.NOTE_STATUS_HISTORY_COLUMNS
_STRING_COLUMNS = frozenset({"noteAuthorParticipantId", *schema.NSH_TEXT_COLUMNS})
# What each "current*" NSH column copies from the scoring output.
_CURRENT_FROM = {
    "currentCoreStatus": "coreRatingStatus",
    "currentExpansionStatus": "expansionRatingStatus",
    "currentGroupStatus": "groupRatingStatus",
    "currentDecidedBy": "decidedBy",
    "currentModelingGroup": "modelingGroup",
    "currentMultiGroupStatus": "multiGroupRatingStatus",
    "currentModelingMultiGroup": "modelingMultiGroup",
}


def empty_history() -> pd.DataFrame:
    """An NSH frame with no rows and the 24 columns in their dtypes."""
    return _typed(pd.DataFrame({c: [] for c in NSH_COLUMNS}))


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    return _frame(_typed_columns(frame))


def _frame(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """A frame of the NSH ``columns``, which it takes as they are: they are the caller's fresh
    arrays, and a consolidating copy was a second history (its 22 numeric columns alone are
    ~0.4 GiB at X's 2.5M notes, by their dtypes)."""
    return pd.DataFrame(columns, index=pd.RangeIndex(len(columns["noteId"])), copy=False)


def _typed_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """The 24 NSH columns of ``frame`` as arrays in their dtypes, each as a frame of them would
    give it back (``_settled``): the history is worked on as arrays and made a frame once."""
    return {c: _typed_column(frame, c) for c in NSH_COLUMNS}


def _typed_column(frame: pd.DataFrame, c: str) -> np.ndarray:
    """NSH column ``c`` of ``frame`` (NaN where the frame lacks it) as ``_typed_columns`` gives it."""
    col = frame[c] if c in frame.columns else pd.Series(np.nan, index=frame.index)
    if c in ("noteId", "createdAtMillis"):
        return col.to_numpy(dtype=np.int64)
    if c in _STRING_COLUMNS:
        return _settled(text_objects(col))
    return col.to_numpy(dtype=np.float64)


def _settled(values: np.ndarray) -> np.ndarray:
    """object[N] ``values`` as a frame column holding them gives them back: text (pandas' str
    dtype, every value a str or missing) with NaN for each missing value; anything else as it is.
    The same values as that round trip through Arrow text, at a fraction of the cost."""
    if pd.api.types.infer_dtype(values, skipna=True) != "string":
        return values
    out = np.array(values, dtype=object, copy=True)
    out[pd.isna(out)] = np.nan
    return out


def merge_notes_into_history(nsh: pd.DataFrame, notes: pd.DataFrame) -> pd.DataFrame:
    """Outer-join notes into NSH (§1.4): new notes get a row, deleted notes keep theirs.

    ``nsh``: previous history (24 columns, legacy files with fewer columns are filled with NaN);
    ``notes``: noteId, noteAuthorParticipantId, createdAtMillis. Raises ``DataFormatError`` naming
    the first note whose creation time or author differs between the two, or a duplicate noteId.
    Rows come out sorted by noteId (deterministic order).
    """
    return _frame(_merged_columns(nsh, notes))


def _merged_columns(nsh: pd.DataFrame, notes: pd.DataFrame) -> dict[str, np.ndarray]:
    """``merge_notes_into_history``'s columns (``_typed_columns``)."""
    for frame, what in ((nsh, "note status history"), (notes, "notes")):
        dup = frame["noteId"].duplicated()
        if dup.any():
            note = int(frame["noteId"][dup].iloc[0])
            raise DataFormatError(f"{what} lists note {note} more than once", field="noteId")
    # Column by column (the merged ones are the result): all 24 typed, then concatenated, then
    # reordered, were three histories at once (the step rose 3.0 GiB in the eighth public run).
    ids = _typed_column(nsh, "noteId")
    note_ids = notes["noteId"].to_numpy(dtype=np.int64)
    pos = pd.Index(ids).get_indexer(note_ids)
    both = pos >= 0
    _check_same_notes(nsh, notes, note_ids, pos, both)
    n_created = notes["createdAtMillis"].to_numpy(dtype=np.int64)
    n_author = notes["noteAuthorParticipantId"][~both].astype(str).to_numpy(dtype=object)
    fresh = int((~both).sum())
    new = {
        "noteId": note_ids[~both],
        "noteAuthorParticipantId": _settled(n_author),
        "createdAtMillis": n_created[~both],
    }
    order = np.argsort(np.concatenate([ids, new["noteId"]]), kind="stable")
    del ids
    out = {}
    for c in NSH_COLUMNS:
        added = new.get(c)
        if added is None:
            added = np.full(fresh, np.nan, dtype=object if c in _STRING_COLUMNS else np.float64)
        merged = np.concatenate([_typed_column(nsh, c), added])[order]
        out[c] = _settled(merged) if c in _STRING_COLUMNS else merged
    return out


def _check_same_notes(
    nsh: pd.DataFrame, notes: pd.DataFrame, note_ids: np.ndarray, pos: np.ndarray, both: np.ndarray
) -> None:
    """Raise ``DataFormatError`` naming the first note (``both``: in both, at ``pos`` in ``nsh``)
    whose creation time or author differs between the notes and the history. Apart, so that its
    text copies (~0.3 GiB at 1.25M notes) go before the merge."""
    n_created = notes["createdAtMillis"].to_numpy(dtype=np.int64)
    n_author = notes["noteAuthorParticipantId"].astype(str).to_numpy(dtype=object)
    h_created = _typed_column(nsh, "createdAtMillis")[pos[both]]
    h_author = _typed_column(nsh, "noteAuthorParticipantId")[pos[both]]
    h_author = pd.Series(h_author).astype(str).to_numpy(dtype=object)
    for field, ours, theirs in (
        ("createdAtMillis", n_created[both], h_created),
        ("noteAuthorParticipantId", n_author[both], h_author),
    ):
        bad = np.flatnonzero(ours != theirs)
        if bad.size:
            k = bad[0]
            note = int(note_ids[both][k])
            raise DataFormatError(
                f"note {note}: {field} is {ours[k]!r} in notes but {theirs[k]!r} in note status history",
                field=field,
            )


def update_status_history(
    nsh_in: pd.DataFrame,
    notes: pd.DataFrame,
    final: pd.DataFrame,
    *,
    epoch_millis: int,
    config: ScoringConfig,
) -> pd.DataFrame:
    """The next run's NSH from the previous one and this run's final statuses (§6.6).

    ``final``: one row per scored note with noteId, finalRatingStatus, decidedBy, and where they
    exist coreRatingStatus, expansionRatingStatus, groupRatingStatus, modelingGroup,
    multiGroupRatingStatus, modelingMultiGroup, ``updatedTimestampMillisOfNmrDueToMinStableCrhTime``
    (from ``meta_score``) and abovePcrhThresholdTime. Notes in the history but not in ``final``
    (not rescored this run) pass through unchanged. Returns the 24-column schema, sorted by noteId.
    """
    out = _merged_columns(nsh_in, notes)  # (fresh arrays, changed in place below)
    now = float(epoch_millis)
    pos = pd.Index(final["noteId"].to_numpy(dtype=np.int64)).get_indexer(out["noteId"])
    sel = np.flatnonzero(pos >= 0)
    p = pos[sel]

    def take(col: str, dtype) -> np.ndarray:
        if col not in final.columns:
            return np.full(sel.size, np.nan, dtype=dtype)
        if dtype is object:  # (meta's text: an object a distinct value, not a note)
            return text_objects(final[col])[p]
        return final[col].to_numpy(dtype=dtype)[p]

    status = take("finalRatingStatus", object)
    if pd.isna(status).any():
        raise DataFormatError(
            "final statuses contain a note without finalRatingStatus", field="finalRatingStatus"
        )
    old_change = out["timestampMillisOfMostRecentStatusChange"][sel]
    changed = status != out["currentStatus"][sel]
    out["timestampMillisOfMostRecentStatusChange"][sel] = np.where(
        changed, now, np.where(np.isnan(old_change), -1.0, old_change)
    )
    out["currentStatus"][sel] = status
    out["timestampMillisOfCurrentStatus"][sel] = now
    out["timestampMinuteOfFinalScoringOutput"][sel] = np.nan
    for nsh_col, src in _CURRENT_FROM.items():
        out[nsh_col][sel] = take(src, object if nsh_col in _STRING_COLUMNS else np.float64)

    decided = take("decidedBy", object)
    created = out["createdAtMillis"][sel].astype(np.float64)
    unlocked = pd.isna(out["lockedStatus"][sel])
    trusted = np.isin(decided, list(LOCKING_ENABLED_RULES))
    lock = unlocked & (config.history.lock_millis < now - created) & trusted
    out["lockedStatus"][sel[lock]] = status[lock]
    out["timestampMillisOfStatusLock"][sel[lock]] = now

    timer = out["timestampMillisOfNmrDueToMinStableCrhTime"]
    first_timer = out["timestampMillisOfFirstNmrDueToMinStableCrhTime"]
    is_locked = ~pd.isna(out["lockedStatus"][sel])
    timer[sel[is_locked]] = -1.0
    upd = take(UPDATED_TIMER_COLUMN, np.float64)
    move = ~is_locked & ~np.isnan(upd)
    timer[sel[move]] = upd[move]
    first_needed = sel[move][np.isnan(first_timer[sel[move]])]
    first_timer[first_needed] = timer[first_needed]
    if "abovePcrhThresholdTime" in final.columns:
        out["abovePcrhThresholdTime"][sel] = take("abovePcrhThresholdTime", np.float64)

    # First / latest CRH-CRNH status; notes older than the tombstone launch keep their old values.
    modern = created >= schema.DELETED_NOTE_TOMBSTONES_LAUNCH_MILLIS
    rated = modern & (status != schema.NMR)
    first_missing = rated & pd.isna(out["firstNonNMRStatus"][sel])
    for col, ts in (
        ("firstNonNMRStatus", "timestampMillisOfFirstNonNMRStatus"),
        ("mostRecentNonNMRStatus", "timestampMillisOfLatestNonNMRStatus"),
    ):
        out[col][sel[first_missing]] = status[first_missing]
        out[ts][sel[first_missing]] = now
    flip = rated & (status != out["mostRecentNonNMRStatus"][sel])
    out["mostRecentNonNMRStatus"][sel[flip]] = status[flip]
    out["timestampMillisOfLatestNonNMRStatus"][sel[flip]] = now
    for c in _STRING_COLUMNS:  # (one at a time: each is a copy)
        out[c] = _settled(out[c])
    return _frame(out)


# Rescoring subsets a full run reports (§6.7), in the reference's order.
ALL_NOTES = "ALL_NOTES"
NOTES_CREATED_SOMEWHAT_RECENTLY = "NOTES_CREATED_SOMEWHAT_RECENTLY"
NEW_NOTES_NOT_RESCORED_RECENTLY_ENOUGH = "NEW_NOTES_NOT_RESCORED_RECENTLY_ENOUGH"
_DAY = 86_400_000


def rescoring_rules(
    note_ids: np.ndarray, created: np.ndarray, nsh: pd.DataFrame, *, epoch_millis: int
) -> np.ndarray:
    """``rescoringActiveRules`` of a full run (§6.7): which churn-checked subsets hold each note.

    Every note is in ALL_NOTES; notes created 3–13 days ago are "somewhat recent"; notes created
    in the last 14 days whose previous status (NSH ``timestampMillisOfCurrentStatus``, NaN for a
    new note) is over a day old were "not rescored recently enough". The reference reads the wall
    clock here; we use the run's ``epoch_millis`` so a rerun gives the same text.
    ``note_ids``: int[N]; ``created``: float[N] creation times; ``nsh``: the previous status
    history. Returns object[N].
    """
    now = float(epoch_millis)
    created = np.asarray(created, dtype=np.float64)
    col = "timestampMillisOfCurrentStatus"
    prev = np.full(created.shape[0], np.nan)
    if col in nsh.columns and len(nsh):
        h = nsh.drop_duplicates(subset=["noteId"]).set_index("noteId")[col]
        prev = pd.to_numeric(h.reindex(np.asarray(note_ids)), errors="coerce").to_numpy(np.float64)
    somewhat = (created >= now - 13 * _DAY) & (created < now - 3 * _DAY)
    stale = (created > now - 14 * _DAY) & (prev < now - _DAY)
    texts = np.array(
        [
            ALL_NOTES,
            f"{ALL_NOTES},{NEW_NOTES_NOT_RESCORED_RECENTLY_ENOUGH}",
            f"{ALL_NOTES},{NOTES_CREATED_SOMEWHAT_RECENTLY}",
            f"{ALL_NOTES},{NOTES_CREATED_SOMEWHAT_RECENTLY},{NEW_NOTES_NOT_RESCORED_RECENTLY_ENOUGH}",
        ],
        dtype=object,
    )
    return texts[somewhat.astype(np.intp) * 2 + stale.astype(np.intp)]

"""Incremental final scoring (§6.7): which notes to rescore, and how to merge with the last run.

With rater parameters frozen by prescoring, a note's final result depends on its own ratings,
its notes and status-history rows, its topic, a few per-rater flags of its raters, and the clock
(the stabilization timer and the 14-day lock). ``note_fingerprints`` condenses the per-note part
into hashes; ``notes_to_rescore`` compares them with the previous final run's and adds the notes
the clock can move. Every other note keeps the previous run's rows (``merge_rows``).

The reference rescores a looser union (new ratings, notes < 14 days old not rescored in 24 h,
recent flips, stabilization, unlocked notes aged 14–21 days); ours is driven by the inputs that
actually changed, so statuses match a full final run on the same data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridgewatch.io.matrix import RatingMatrix

HOUR_MILLIS = 3_600_000
FINGERPRINTS = ("ratingsHash", "noteRowHash", "historyRowHash", "topic")


def _row_hashes(frame: pd.DataFrame) -> np.ndarray:
    return pd.util.hash_pandas_object(frame, index=False).to_numpy(np.uint64)


def _per_note(frame: pd.DataFrame, note_ids: np.ndarray) -> np.ndarray:
    """uint64[N] hash of each note's row in ``frame`` (0 where the note has no row)."""
    out = np.zeros(note_ids.shape[0], dtype=np.uint64)
    if frame.empty:
        return out
    rows = frame.drop_duplicates(subset=["noteId"])
    pos = pd.Index(note_ids).get_indexer(rows["noteId"].to_numpy(np.int64))
    ok = pos >= 0
    out[pos[ok]] = _row_hashes(rows.reset_index(drop=True))[ok]
    return out


def note_fingerprints(
    matrix: RatingMatrix, notes: pd.DataFrame, status_history: pd.DataFrame, topic: np.ndarray | None
) -> pd.DataFrame:
    """Per note of ``matrix`` (N rows): noteId and the ``FINGERPRINTS`` columns (int64).

    ``ratingsHash`` is an order-free sum of per-rating hashes over (rater id, value, tags, time,
    population-sampled), so it does not depend on the dense ids of one run.
    """
    rater_hash = pd.util.hash_array(np.asarray(matrix.rater_ids, dtype=object).astype(str))
    per_rating = pd.DataFrame(
        {
            "rater": rater_hash[matrix.rater],
            "value": matrix.value.astype(np.float64),
            "tags": matrix.tags.astype(np.int64),
            "created": matrix.created_at,
            "sampled": matrix.population_sampled,
        }
    )
    sums = np.zeros(matrix.n_ratings + 1, dtype=np.uint64)
    np.cumsum(_row_hashes(per_rating), dtype=np.uint64, out=sums[1:])
    ratings = sums[matrix.note_indptr[1:]] - sums[matrix.note_indptr[:-1]]
    t = np.full(matrix.n_notes, -1, dtype=np.int64) if topic is None else np.asarray(topic, dtype=np.int64)
    return pd.DataFrame(
        {
            "noteId": matrix.note_ids,
            "ratingsHash": ratings.view(np.int64),
            "noteRowHash": _per_note(notes, matrix.note_ids).view(np.int64),
            "historyRowHash": _per_note(status_history, matrix.note_ids).view(np.int64),
            "topic": t,
        }
    )


def raters_changed(previous: pd.DataFrame, current: pd.DataFrame) -> np.ndarray:
    """bool[U] per row of ``current``: raters whose per-rater final inputs changed since ``previous``.

    Both frames hold ``raterParticipantId``, ``highVolume`` and ``group`` (the final state's
    rater table). A high-volume flip counts for every rater, helpful or not: the NoHighVol refits
    apply the 5-ratings-per-note filter before the helpfulness filter (MF and Gaussian alike), so
    an unhelpful rater's flip can move a note across it. A rater absent from ``previous`` counts
    as changed (it had no group there).
    """
    old = previous.drop_duplicates(subset=["raterParticipantId"]).set_index("raterParticipantId")
    old = old.reindex(current["raterParticipantId"].to_numpy(dtype=object))
    high = old["highVolume"].fillna(False).to_numpy(bool) != current["highVolume"].to_numpy(bool)
    group = old["group"].fillna(-2).to_numpy(np.int64) != current["group"].to_numpy(np.int64)
    return high | group


def notes_to_rescore(
    current: pd.DataFrame,
    previous: pd.DataFrame,
    rater_changed: np.ndarray,
    matrix: RatingMatrix,
    created: np.ndarray,
    stabilization_timer: np.ndarray,
    *,
    epoch_millis: int,
    previous_epoch_millis: int,
    lock_millis: int,
) -> np.ndarray:
    """bool[N]: notes of ``matrix`` whose final result may differ from the previous run's.

    ``current`` / ``previous``: ``note_fingerprints`` frames (previous: of the last final run);
    ``rater_changed``: bool[U] raters whose per-rater inputs changed (high-volume flag, group);
    ``created``: float64[N] note creation times; ``stabilization_timer``: float64[N] the input
    ``timestampMillisOfNmrDueToMinStableCrhTime``. A clock that went backwards rescores everything.
    """
    n = matrix.n_notes
    if epoch_millis < previous_epoch_millis:
        return np.ones(n, dtype=bool)
    prev = previous.drop_duplicates(subset=["noteId"])
    pos = pd.Index(prev["noteId"].to_numpy(np.int64)).get_indexer(current["noteId"].to_numpy(np.int64))
    out = pos < 0
    for col in FINGERPRINTS:
        before = prev[col].to_numpy(np.int64)[np.maximum(pos, 0)] if len(prev) else 0
        out |= before != current[col].to_numpy(np.int64)
    touched = np.bincount(matrix.note[np.asarray(rater_changed, dtype=bool)[matrix.rater]], minlength=n) > 0
    out |= touched
    out |= np.nan_to_num(stabilization_timer, nan=0.0) > 0
    # The lock needs age > lock_millis: notes that crossed that age between the two runs (with an
    # hour to spare either side).
    age_prev = previous_epoch_millis - created
    age_now = epoch_millis - created
    out |= (age_prev <= lock_millis + HOUR_MILLIS) & (age_now > lock_millis - HOUR_MILLIS)
    out |= np.isnan(created)
    return out


def merge_rows(new: pd.DataFrame, previous: pd.DataFrame, rescored: np.ndarray, key: str = "noteId"):
    """Rows of ``new`` for ``rescored`` ids (int64 array), rows of ``previous`` for the others.

    The row set is ``new``'s (notes that vanished are dropped; a note missing from ``previous``
    keeps its new row); order and dtypes follow ``new``.
    """
    ids = new[key].to_numpy()
    take_prev = ~np.isin(ids, rescored) & np.isin(ids, previous[key].to_numpy())
    old = previous[previous[key].isin(ids[take_prev])]
    old = old[list(new.columns)].astype(new.dtypes.to_dict())
    merged = pd.concat([new[~take_prev], old], ignore_index=True)
    return merged.sort_values(key, kind="stable").reset_index(drop=True)

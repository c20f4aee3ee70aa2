"""Which ratings enter the fits: the reference's preprocessing and per-scorer scoping.

Every function returns a boolean mask over the ratings of a ``RatingMatrix`` (or over its raters),
so filters compose with ``&`` and the matrix itself is never copied. Sections of
``reference-algorithm.md``: §1.7 (note-classification filter, high-volume raters), §2.5 (count
filters), §6.1 (scorer scope: modeling groups, topics, capture threshold).
"""

from __future__ import annotations

import weakref

import numba
import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.io.matrix import RatingMatrix, index_dtype
from bridgewatch.scoring import rating_pass
from bridgewatch.scoring.rating_pass import note_counts

DAY_MILLIS = 86_400_000
UNASSIGNED = -1  # modeling group of raters absent from enrollment (or with an empty group)


def note_table(matrix: RatingMatrix, notes: pd.DataFrame, status_history: pd.DataFrame) -> pd.DataFrame:
    """Per note of ``matrix.note_ids`` (N rows, same order): what the filters and rules need.

    Columns: ``classification`` (NaN for deleted notes: rated, but not in the notes file),
    ``createdAtMillis`` (from notes, else from NSH), ``inStatusHistory`` (bool: the note has an
    NSH row or a notes row — the reference merges notes into NSH before filtering, §1.4),
    ``noteAuthorParticipantId`` and ``timestampMillisOfLatestNonNMRStatus`` (NaN if none).
    """
    ids = pd.Index(matrix.note_ids)
    n = notes.drop_duplicates(subset=["noteId"]).set_index("noteId")
    h = status_history.drop_duplicates(subset=["noteId"]).set_index("noteId")
    out = pd.DataFrame(index=ids)
    out["classification"] = n["classification"].reindex(ids)
    created = n["createdAtMillis"].reindex(ids).astype("float64")
    created = created.fillna(h["createdAtMillis"].reindex(ids).astype("float64"))
    out["createdAtMillis"] = created
    out["inStatusHistory"] = ids.isin(h.index) | ids.isin(n.index)
    author = n["noteAuthorParticipantId"].reindex(ids)
    out["noteAuthorParticipantId"] = author.fillna(h["noteAuthorParticipantId"].reindex(ids))
    col = "timestampMillisOfLatestNonNMRStatus"
    latest = h[col].reindex(ids) if col in h.columns else pd.Series(np.nan, index=ids)
    out[col] = pd.to_numeric(latest, errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def classification_mask(matrix: RatingMatrix, table: pd.DataFrame) -> np.ndarray:
    """bool[R]: §1.7 step 6 — keep ratings on misleading notes, on deleted notes that still have a
    status-history row, and on not-misleading notes created after 2022-10-03 (strictly)."""
    cls = table["classification"].to_numpy(dtype=object)
    created = table["createdAtMillis"].to_numpy(dtype=np.float64)
    deleted = pd.isna(table["classification"]).to_numpy()
    keep_note = (
        (cls == schema.MISLEADING)
        | (deleted & table["inStatusHistory"].to_numpy(dtype=bool))
        | ((cls == schema.NOT_MISLEADING) & (created > schema.NOT_MISLEADING_UI_LAUNCH_MILLIS))
    )
    return keep_note[matrix.note]


def high_volume_raters(
    matrix: RatingMatrix,
    keep: np.ndarray | None = None,
    quantile: float = 0.999,
    windows_days: tuple[int, ...] = (7, 28),
    min_notes: int = 200,
) -> np.ndarray:
    """bool[U]: raters whose rating count in a window ending at the newest rating is strictly above
    that window's ``quantile`` over raters active in it (union over windows; §1.7 step 3).

    Off (all False) when fewer than ``min_notes`` distinct notes are rated (§9.7). Streams the
    columns (``rating_pass.rater_counts_since``): no gathered copy, mask or sort of R ratings.
    """
    flagged = np.zeros(matrix.n_raters, dtype=bool)
    newest = rating_pass.newest_kept(matrix, keep)
    if newest is None:
        return flagged
    per_note = np.diff(matrix.note_indptr) if keep is None else note_counts(matrix, keep)
    if np.count_nonzero(per_note) < min_notes:
        return flagged
    cutoffs = np.array([newest - days * DAY_MILLIS for days in windows_days], dtype=np.int64)
    for counts in rating_pass.rater_counts_since(matrix, keep, cutoffs):
        active = counts > 0
        if not active.any():
            continue
        threshold = np.quantile(counts[active].astype(np.float64), quantile)
        flagged |= active & (counts > threshold)
    return flagged


def reference_rater_bucket(
    n_raters: int,
    high_volume: np.ndarray,
    correlated: np.ndarray | None = None,
    pss_member: np.ndarray | None = None,
) -> np.ndarray:
    """uint8[U]: each rater's block of the reference's rating table, 0..7, the three rater flags
    as one sort key in the order (highVolume, correlated, not PSS) (``reference_rating_rank``
    says why); with note, time and rater it orders the table (``torch_init.table_orders``)."""
    corr = np.zeros(n_raters, dtype=bool) if correlated is None else np.asarray(correlated, dtype=bool)
    pss = np.zeros(n_raters, dtype=bool) if pss_member is None else np.asarray(pss_member, dtype=bool)
    high = np.asarray(high_volume, dtype=bool)
    return (high.astype(np.uint8) << 2) | (corr.astype(np.uint8) << 1) | (~pss).astype(np.uint8)


def reference_rating_rank(
    matrix: RatingMatrix,
    high_volume: np.ndarray,
    correlated: np.ndarray | None = None,
    pss_member: np.ndarray | None = None,
) -> np.ndarray:
    """int32[R] (``index_dtype``): each rating's row in the rating table the reference's scorers receive.

    That table is the preprocessed ratings in file order, after PSS moved the ratings of raters in
    a PSS clique (``pss_member`` bool[U]) to the front sorted by note and time, then stably sorted
    by (highVolumeRater, correlatedRater) (``high_volume``, ``correlated`` bool[U]). Every later
    filter keeps row order, so the table orders the raters and notes of each fit, and with them
    the starting factors drawn for them (``torch_init``). ``RatingMatrix`` does not keep the file
    order; the public files list each note's ratings together, oldest first, so note then time
    (then rater, for determinism) stands for it.
    """
    bucket = reference_rater_bucket(matrix.n_raters, high_volume, correlated, pss_member)
    rank = np.empty(matrix.n_ratings, dtype=index_dtype(matrix.n_ratings))
    _rank_nb(matrix.note_indptr, matrix.created_at, bucket[matrix.rater], rank)
    return rank


@numba.njit(cache=True, nogil=True)
def _rank_nb(note_indptr, created_at, bucket, rank):
    """Fill ``rank`` with each rating's position in the order (bucket, note, time, rater).

    The matrix already lists ratings by note then rater, so that order is a stable sort by time
    within each note followed by a stable counting sort on the 8 buckets: O(R log k) for notes
    of k ratings, where the 6-key ``np.lexsort`` it replaces took ~0.4 s per million ratings."""
    start = np.zeros(9, dtype=np.int64)
    for r in range(bucket.shape[0]):
        start[bucket[r] + 1] += 1
    for b in range(8):
        start[b + 1] += start[b]
    for n in range(note_indptr.shape[0] - 1):
        lo, hi = note_indptr[n], note_indptr[n + 1]
        for k in np.argsort(created_at[lo:hi], kind="mergesort"):
            b = bucket[lo + k]
            rank[lo + k] = start[b]
            start[b] += 1


def count_filter(matrix: RatingMatrix, keep: np.ndarray, min_per_note: int, min_per_rater: int) -> np.ndarray:
    """bool[R]: notes with ≥ ``min_per_note`` ratings, then raters with ≥ ``min_per_rater``, then
    notes once more — no iteration to a fixed point, exactly as the reference (§2.5).

    Every scorer filters its scope this way several times; the passes run in parallel over the
    matrix's note and rater orders (``rating_pass``). The result is read-only when ``keep`` is."""
    keep = np.asarray(keep, dtype=bool)
    mins = (int(min_per_note), int(min_per_rater))
    if keep.flags.writeable:
        return rating_pass.count_filter(matrix, keep, *mins)
    # A read-only mask is a scorer's cached scope (``scorer.scope_mask``), which its prescoring
    # filters twice in a row (its fits, then its diligence model's ratings): keep the last result.
    last = _LAST_FILTER.get(matrix)
    if last is not None and last[0]() is keep and last[1] == mins:
        return last[2]
    out = rating_pass.count_filter(matrix, keep, *mins)
    out.flags.writeable = False
    _LAST_FILTER[matrix] = (weakref.ref(keep), mins, out)
    return out


# Per matrix: (weak reference to a read-only mask, minimums, read-only result) of the last call.
_LAST_FILTER: weakref.WeakKeyDictionary[RatingMatrix, tuple] = weakref.WeakKeyDictionary()


def forget_last_filter(matrix: RatingMatrix) -> None:
    """Drop the last filtered scope kept for ``matrix`` (``count_filter``): once its scorer's
    scopes are forgotten it is never asked for again, yet it stayed (a rating mask, 0.19 GiB at
    X's scale) until the next scorer's first filter replaced it."""
    _LAST_FILTER.pop(matrix, None)


def rater_groups(matrix: RatingMatrix, enrollment: pd.DataFrame | None) -> np.ndarray:
    """int32[U]: each rater's ``modelingGroup`` from enrollment, ``UNASSIGNED`` when absent/empty."""
    groups = np.full(matrix.n_raters, UNASSIGNED, dtype=np.int32)
    if enrollment is None or len(enrollment) == 0:
        return groups
    e = enrollment.drop_duplicates(subset=["participantId"], keep="last")
    idx = matrix.rater_index(e["participantId"].astype(str).to_numpy(dtype=object))
    g = pd.to_numeric(e["modelingGroup"], errors="coerce").to_numpy(dtype=np.float64)
    ok = (idx >= 0) & np.isfinite(g)
    groups[idx[ok]] = g[ok].astype(np.int32)
    return groups


def group_mask(groups: np.ndarray, included: frozenset[int] | None, include_unassigned: bool) -> np.ndarray:
    """bool[U]: raters in scope of a scorer (``included=None`` means every group)."""
    if included is None:
        in_group = groups != UNASSIGNED
    else:
        in_group = np.isin(groups, np.fromiter(included, dtype=np.int32, count=len(included)))
    return in_group | ((groups == UNASSIGNED) & include_unassigned)


def note_topic_mask(
    n_notes: int, note_topic: np.ndarray | None, *, topic: int | None, exclude_topics: bool
) -> np.ndarray:
    """bool[N]: notes in a scorer's topic scope (§6.1). ``note_topic``: int[N], -1 = no topic. A
    topic scorer keeps only notes of ``topic``; ``exclude_topics`` drops every topic note. With no
    topic assignment given, topic scorers get nothing and exclusion drops nothing."""
    if note_topic is None:
        return np.full(n_notes, topic is None, dtype=bool)
    nt = np.asarray(note_topic)
    if topic is not None:
        return nt == topic
    if exclude_topics:
        return nt < 0
    return np.ones(n_notes, dtype=bool)


def topic_mask(
    matrix: RatingMatrix, note_topic: np.ndarray | None, *, topic: int | None, exclude_topics: bool
) -> np.ndarray:
    """bool[R]: ratings on notes in the topic scope of ``note_topic_mask``."""
    notes = note_topic_mask(matrix.n_notes, note_topic, topic=topic, exclude_topics=exclude_topics)
    return notes[matrix.note]


def capture_share(matrix: RatingMatrix, keep: np.ndarray, in_scope_rating: np.ndarray) -> np.ndarray:
    """float64[N]: share of each note's ratings (among ``keep``) that come from in-scope raters; NaN
    for notes without ratings. Compared with a scorer's ``captureThreshold`` (§6.1)."""
    total = note_counts(matrix, keep).astype(np.float64)
    inside = note_counts(matrix, keep & in_scope_rating)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, inside / total, np.nan)


def stable_init_mask(
    matrix: RatingMatrix, keep: np.ndarray, groups: np.ndarray, group: int, min_share: float, min_ratings: int
) -> np.ndarray:
    """bool[R]: §2.6 subset — ratings by raters of ``group`` on notes with ≥ ``min_ratings`` ratings
    (in ``keep``) of which at least ``min_share`` come from that group."""
    from_group = (groups == group)[matrix.rater]
    total = note_counts(matrix, keep)
    inside = note_counts(matrix, keep & from_group)
    with np.errstate(invalid="ignore", divide="ignore"):
        ok_note = (total >= min_ratings) & (inside >= min_share * np.maximum(total, 1))
    return keep & from_group & ok_note[matrix.note]

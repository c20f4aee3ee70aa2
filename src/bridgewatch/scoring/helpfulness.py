"""Contributor helpfulness in prescoring: valid ratings, rater agreement, author record (§4.1–4.4).

The round-2 fit keeps only raters whose ratings agreed with the provisional outcome (agree ratio
≥ 0.66) and, if they wrote scored notes, whose notes did well (CRH − 5·CRNH ratio ≥ 0 and mean
intercept ≥ 0.05). All functions work on arrays indexed like a ``RatingMatrix``; the table for
output is assembled once at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.io.matrix import RatingMatrix, id_objects
from bridgewatch.schema import Status
from bridgewatch.scoring import helpfulness_pass as HP
from bridgewatch.scoring.config import HelpfulnessConfig


@dataclass(frozen=True, eq=False)
class ValidRatings:
    """Per rating (length R of the matrix): its §4.1 outcome as one int8 ``code``: ``INVALID``, or
    which of the four classes a valid rating falls in (they are disjoint and together make up the
    valid ratings). One byte a rating where six bool masks took six: at X's scale the helpfulness
    pass held 1.2 GiB of them through the harassment fit. The masks are derived on demand."""

    code: np.ndarray

    INVALID = HP.INVALID
    SUCCESS_HELPFUL = HP.SUCCESS_HELPFUL
    SUCCESS_NOT_HELPFUL = HP.SUCCESS_NOT_HELPFUL
    FAIL_HELPFUL = HP.FAIL_HELPFUL
    FAIL_NOT_HELPFUL = HP.FAIL_NOT_HELPFUL

    @property
    def valid(self) -> np.ndarray:
        return self.code != self.INVALID

    @property
    def agrees(self) -> np.ndarray:
        """Valid and matching the note's status (a success)."""
        return (self.code == self.SUCCESS_HELPFUL) | (self.code == self.SUCCESS_NOT_HELPFUL)

    @property
    def success_helpful(self) -> np.ndarray:
        return self.code == self.SUCCESS_HELPFUL

    @property
    def success_not_helpful(self) -> np.ndarray:
        return self.code == self.SUCCESS_NOT_HELPFUL

    @property
    def fail_helpful(self) -> np.ndarray:
        return self.code == self.FAIL_HELPFUL

    @property
    def fail_not_helpful(self) -> np.ndarray:
        return self.code == self.FAIL_NOT_HELPFUL

    def rater_counts(self, matrix: RatingMatrix) -> np.ndarray:
        """int64[4, U]: per rater, its valid ratings of each class, in code order (one pass)."""
        return HP.rater_code_counts(matrix, self.code, HP.FAIL_NOT_HELPFUL)


def valid_ratings(
    matrix: RatingMatrix,
    keep: np.ndarray,
    note_created: np.ndarray,
    note_latest_non_nmr: np.ndarray,
    note_status: np.ndarray,
    config: HelpfulnessConfig,
) -> ValidRatings:
    """§4.1. ``keep``: bool[R] ratings in scope; ``note_created``/``note_latest_non_nmr``: float[N]
    (NaN = none); ``note_status``: int8[N] ``Status`` codes of this pass (provisional in prescoring).

    A candidate rating was made < 48 h after the note and, for notes created since the tombstone
    launch, before the note's latest non-NMR status time (or the note has none); for older notes
    only the first 5 such ratings by time count. Valid = candidate, note is CRH or CRNH, and the
    rating is helpful (1.0) or not helpful (0.0) — somewhat-helpful never counts.
    """
    # One parallel pass over the notes (each scorer's helpfulness pass makes one, twice in
    # prescoring); the numpy form made a dozen bool/float temporaries of length R.
    code = HP.valid_rating_codes(
        matrix, keep, note_created, note_latest_non_nmr, note_status,
        window=config.valid_rating_window_millis, launch=schema.DELETED_NOTE_TOMBSTONES_LAUNCH_MILLIS,
        first_n=config.legacy_first_n_ratings, crh=int(Status.CRH), crnh=int(Status.CRNH),
    )  # fmt: skip
    # Released once read: the passes after it up to the next validity pass read created_at only
    # in the harassment labels, which fault it back in (1.5 GiB at X's scale, where at public
    # the helpfulness pass and the harassment set-up peaked on top of it).
    matrix.release("created_at")
    return ValidRatings(code)


@dataclass(frozen=True, eq=False)
class AuthorScores:
    """Per participant of ``participant_ids`` (sorted str): author record over scored notes."""

    crh_crnh_ratio_difference: np.ndarray
    mean_note_score: np.ndarray


def author_helpfulness(
    author_row: np.ndarray,
    n_participants: int,
    intercept: np.ndarray,
    note_status: np.ndarray,
    config: HelpfulnessConfig,
) -> AuthorScores:
    """§4.3 over the scored notes (those with an intercept): ``author_row`` int[S] each one's
    author's row among ``n_participants`` (``participant_ids``), ``intercept`` float[S],
    ``note_status`` int8[S]. Participants without scored notes: NaN."""
    pos, p = author_row, n_participants
    n = np.bincount(pos, minlength=p).astype(np.float64)
    crh = np.bincount(pos, weights=(note_status == Status.CRH).astype(float), minlength=p)
    crnh = np.bincount(pos, weights=(note_status == Status.CRNH).astype(float), minlength=p)
    total = np.bincount(pos, weights=np.asarray(intercept, dtype=np.float64), minlength=p)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(n > 0, crh / n - config.crnh_multiplier * crnh / n, np.nan)
        mean = np.where(n > 0, total / n, np.nan)
    return AuthorScores(diff, mean)


def participant_ids(
    matrix: RatingMatrix, has_valid: np.ndarray, authors: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, ridx, arow): ``ids`` object[P] the sorted union of the raters ``has_valid`` (bool[U])
    and ``authors`` (ids in any order, repeats allowed; a missing one reads "nan", as ``str``
    makes it), as ``np.union1d`` of their strings orders it; ``ridx`` each valid rater's row in
    it, ``arow`` each author's.

    Why in objects and indices, not numpy strings: X's ids are 64 characters, 256 bytes each as a
    numpy string; the string union, searches and the per-note author strings of each helpfulness
    pass held ~1.5 GiB of copies at X's scale (2.5M notes, 1.4M raters). ``matrix.rater_ids``
    is sorted and unique, so the raters' part is a selection; authors are looked up in its hash
    index, and only the few who never rated are sorted and placed among them.
    """
    authors = id_objects(authors)
    ra = matrix.rater_index(authors)  # -1: never rated
    rated = ra >= 0
    chosen = has_valid.copy()
    chosen[ra[rated]] = True
    main = matrix.rater_ids[chosen]
    extra, which = np.unique(authors[~rated], return_inverse=True)
    at = np.searchsorted(main, extra)  # extra ids never equal a rater's
    ids = np.insert(main, at, extra)
    # Row of the k-th chosen rater: k plus the extra ids placed before it; the j-th extra id
    # lands at at[j] + j (np.insert's placement for sorted positions).
    rank = np.cumsum(chosen) - 1
    ridx = rank[has_valid]
    ridx = ridx + np.searchsorted(at, ridx, side="right")
    arow = np.empty(authors.shape[0], dtype=np.int64)
    k = rank[ra[rated]]
    arow[rated] = k + np.searchsorted(at, k, side="right")
    arow[~rated] = (at + np.arange(at.shape[0]))[which]
    return ids, ridx, arow


def helpfulness_scores(
    matrix: RatingMatrix,
    valid: ValidRatings,
    note_author: np.ndarray,
    intercept: np.ndarray,
    note_status: np.ndarray,
    config: HelpfulnessConfig,
    harassment_penalty: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per participant who authored a scored note or has a valid rating (§4.2–4.4).

    ``harassment_penalty``: optional float[U] per rater of the matrix (the §4.2 penalty; the
    harassment model is someone else's hook), 0 when absent. Columns: ``raterParticipantId``,
    ``crhCrnhRatioDifference``, ``meanNoteScore``, ``raterAgreeRatio``, the four success counts,
    ``totalHelpfulHarassmentRatingsPenalty``, ``raterAgreeRatioWithHarassmentAbusePenalty``,
    ``aboveHelpfulnessThreshold``, sorted by participant id.
    """
    # The six per-rater counts in one pass over the ratings.
    # The four class counts per rater in one pass over the ratings' codes.
    per_rater = valid.rater_counts(matrix).astype(np.float64)
    count = per_rater.sum(axis=0)
    agree = per_rater[0] + per_rater[1]
    has_valid = count > 0
    scored = ~np.isnan(intercept)
    ids, ridx, arow = participant_ids(matrix, has_valid, note_author[scored])
    author = author_helpfulness(arow, ids.shape[0], intercept[scored], note_status[scored], config)
    cols = {}
    for name, arr in (
        ("successfulRatingHelpfulCount", per_rater[0]),
        ("successfulRatingNotHelpfulCount", per_rater[1]),
        ("unsuccessfulRatingHelpfulCount", per_rater[2]),
        ("unsuccessfulRatingNotHelpfulCount", per_rater[3]),
        ("_count", count),
        ("_agree", agree),
    ):
        full = np.full(ids.shape[0], np.nan)
        full[ridx] = arr[has_valid]
        cols[name] = full
    penalty = np.zeros(ids.shape[0])
    if harassment_penalty is not None:
        penalty[ridx] = np.asarray(harassment_penalty, dtype=np.float64)[has_valid]
    with np.errstate(invalid="ignore", divide="ignore"):
        agree_ratio = cols["_agree"] / cols["_count"]
        agree_pen = (cols["_agree"] - penalty) / cols["_count"]
    above = above_threshold(
        author.crh_crnh_ratio_difference, author.mean_note_score, agree_ratio, agree_pen, config
    )
    frame = pd.DataFrame(
        {
            "raterParticipantId": ids,
            "crhCrnhRatioDifference": author.crh_crnh_ratio_difference,
            "meanNoteScore": author.mean_note_score,
            "raterAgreeRatio": agree_ratio,
            "successfulRatingHelpfulCount": cols["successfulRatingHelpfulCount"],
            "successfulRatingNotHelpfulCount": cols["successfulRatingNotHelpfulCount"],
            "unsuccessfulRatingHelpfulCount": cols["unsuccessfulRatingHelpfulCount"],
            "unsuccessfulRatingNotHelpfulCount": cols["unsuccessfulRatingNotHelpfulCount"],
            "totalHelpfulHarassmentRatingsPenalty": penalty,
            "raterAgreeRatioWithHarassmentAbusePenalty": agree_pen,
            "aboveHelpfulnessThreshold": above,
        }
    )
    return frame


def above_threshold(
    crh_crnh_diff: np.ndarray,
    mean_note_score: np.ndarray,
    agree_ratio: np.ndarray,
    agree_ratio_penalized: np.ndarray,
    config: HelpfulnessConfig,
) -> np.ndarray:
    """bool: §4.4 — author part (good record, or no scored notes) and both agree ratios ≥ 0.66.

    The reference's third author branch (``isna(diff) & meanNoteScore >= min``) parses as
    ``(isna(diff) & meanNoteScore) >= min``; both NaN together is already covered, and a NaN diff
    with a real mean cannot occur (both come from the same notes), so the intended logic is used.
    """
    with np.errstate(invalid="ignore"):
        author_ok = (crh_crnh_diff >= config.min_crh_vs_crnh_ratio) & (
            mean_note_score >= config.min_mean_note_score
        )
        author_ok |= np.isnan(crh_crnh_diff) & np.isnan(mean_note_score)
        return (
            author_ok
            & (agree_ratio >= config.min_rater_agree_ratio)
            & (agree_ratio_penalized >= config.min_rater_agree_ratio)
        )


def helpful_rater_mask(matrix: RatingMatrix, table: pd.DataFrame) -> np.ndarray:
    """bool[U]: raters of the matrix marked ``aboveHelpfulnessThreshold`` in ``table``."""
    ok = table.loc[table["aboveHelpfulnessThreshold"].astype(bool), "raterParticipantId"]
    idx = matrix.rater_index(ok.to_numpy(dtype=object))
    mask = np.zeros(matrix.n_raters, dtype=bool)
    mask[idx[idx >= 0]] = True
    return mask


def harassment_penalty(
    matrix: RatingMatrix, keep: np.ndarray, harassment_intercept: np.ndarray | None, config: HelpfulnessConfig
) -> np.ndarray | None:
    """float[U] §4.2 penalty per rater: for each helpful (1.0) rating in ``keep`` on a note whose
    ``harassment_intercept`` (float[N], NaN = none) ≥ the minimum, add 10 × intercept / 2.0 (or 10
    when not multiplying). None when no harassment scores are given (the hook is optional)."""
    if harassment_intercept is None:
        return None
    return HP.penalty_per_rater(
        matrix, keep, harassment_intercept, min_score=config.harassment_min_score,
        penalty=config.harassment_penalty, multiply=config.multiply_penalty_by_score,
    )  # fmt: skip

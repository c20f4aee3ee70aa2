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
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.schema import Status
from bridgewatch.scoring.config import HelpfulnessConfig
from bridgewatch.scoring.rating_pass import penalty_per_rater, rater_counts_of, valid_rating_masks


@dataclass(frozen=True, eq=False)
class ValidRatings:
    """Per rating (length R of the matrix): ``valid`` (counts toward helpfulness), ``agrees`` (valid
    and matches the note's status) and the four outcome classes of §4.1."""

    valid: np.ndarray
    agrees: np.ndarray
    success_helpful: np.ndarray
    success_not_helpful: np.ndarray
    fail_helpful: np.ndarray
    fail_not_helpful: np.ndarray


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
    valid, sh, snh, fh, fnh = valid_rating_masks(
        matrix, keep, note_created, note_latest_non_nmr, note_status,
        window=config.valid_rating_window_millis, launch=schema.DELETED_NOTE_TOMBSTONES_LAUNCH_MILLIS,
        first_n=config.legacy_first_n_ratings, crh=int(Status.CRH), crnh=int(Status.CRNH),
    )  # fmt: skip
    return ValidRatings(valid, sh | snh, sh, snh, fh, fnh)


@dataclass(frozen=True, eq=False)
class AuthorScores:
    """Per participant of ``participant_ids`` (sorted str): author record over scored notes."""

    crh_crnh_ratio_difference: np.ndarray
    mean_note_score: np.ndarray


def author_helpfulness(
    participant_ids: np.ndarray,
    note_author: np.ndarray,
    intercept: np.ndarray,
    note_status: np.ndarray,
    config: HelpfulnessConfig,
) -> AuthorScores:
    """§4.3 over notes with an intercept. ``note_author``: object[N] author ids; ``intercept``:
    float[N] (NaN = not scored); ``note_status``: int8[N]. Participants without scored notes: NaN."""
    scored = ~np.isnan(intercept)
    pos = np.searchsorted(participant_ids, note_author[scored].astype(str))
    p = len(participant_ids)
    n = np.bincount(pos, minlength=p).astype(np.float64)
    crh = np.bincount(pos, weights=(note_status[scored] == Status.CRH).astype(float), minlength=p)
    crnh = np.bincount(pos, weights=(note_status[scored] == Status.CRNH).astype(float), minlength=p)
    total = np.bincount(pos, weights=intercept[scored].astype(np.float64), minlength=p)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(n > 0, crh / n - config.crnh_multiplier * crnh / n, np.nan)
        mean = np.where(n > 0, total / n, np.nan)
    return AuthorScores(diff, mean)


def participant_ids(
    matrix: RatingMatrix, has_valid: np.ndarray, authors: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ids, ridx): the sorted union of the raters ``has_valid`` (bool[U]) and ``authors`` (sorted
    unique str), as ``np.union1d`` of their strings gives it, and each valid rater's row in it.

    ``matrix.rater_ids`` is already sorted and unique, so the raters' part is a selection; only the
    authors who never rated are placed among them by string search. A union and a search over
    every rater's id string, as before, cost seconds per scorer on a large community.
    """
    ridx_author = matrix.rater_index(authors.astype(object))
    chosen = has_valid.copy()
    chosen[ridx_author[ridx_author >= 0]] = True
    main = matrix.rater_ids[chosen].astype(str)
    extra = authors[ridx_author < 0]
    width = max(main.dtype.itemsize, extra.dtype.itemsize) // np.dtype("U1").itemsize
    kind = np.dtype(f"U{max(width, 1)}")
    main, extra = main.astype(kind), extra.astype(kind)
    at = np.searchsorted(main, extra)  # extra ids never equal a rater's
    ids = np.insert(main, at, extra)
    # Row of each chosen rater: its rank among them plus the extra ids placed before it.
    rank = np.cumsum(chosen)[has_valid] - 1
    ridx = rank + np.searchsorted(at, rank, side="right")
    return ids, ridx


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
    per_rater = rater_counts_of(
        matrix, (valid.valid, valid.agrees, valid.success_helpful, valid.success_not_helpful,
                 valid.fail_helpful, valid.fail_not_helpful),
    ).astype(np.float64)  # fmt: skip
    count, agree = per_rater[0], per_rater[1]
    has_valid = count > 0
    ids, ridx = participant_ids(matrix, has_valid, np.unique(note_author[~np.isnan(intercept)].astype(str)))
    author = author_helpfulness(ids, note_author, intercept, note_status, config)
    cols = {}
    for name, arr in (
        ("successfulRatingHelpfulCount", per_rater[2]),
        ("successfulRatingNotHelpfulCount", per_rater[3]),
        ("unsuccessfulRatingHelpfulCount", per_rater[4]),
        ("unsuccessfulRatingNotHelpfulCount", per_rater[5]),
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
    return penalty_per_rater(
        matrix, keep, harassment_intercept, min_score=config.harassment_min_score,
        penalty=config.harassment_penalty, multiply=config.multiply_penalty_by_score,
    )  # fmt: skip

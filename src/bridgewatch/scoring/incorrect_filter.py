"""The "incorrect" filter (spec §3.4): many same-side raters calling a note incorrect.

Prescoring counts, per rater, how often their not-helpful-tagged ratings carry "incorrect"
(their base rate). Final scoring sums, per note, over tagged ratings from raters whose clipped
factor lies within ±0.3 of the note's: the incorrect tags, the voters, and the voters' base rates;
tf-idf = incorrect / ln(1 + Σ base rates) rewards "incorrect" from raters who rarely use it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from bridgewatch.io.matrix import RatingMatrix, streamed
from bridgewatch.schema import NOT_HELPFUL_TAGS, TAG_BIT

_NH_MASK = np.uint32(sum(1 << TAG_BIT[t] for t in NOT_HELPFUL_TAGS))
_INCORRECT_BIT = np.uint32(TAG_BIT["notHelpfulIncorrect"])
FACTOR_CLIP = 0.4


def _incorrect(tags: np.ndarray) -> np.ndarray:
    return ((tags >> _INCORRECT_BIT) & np.uint32(1)).astype(np.int64)


def rater_incorrect_totals(
    rater: np.ndarray, tags: np.ndarray, n_raters: int
) -> tuple[np.ndarray, np.ndarray]:
    """Prescoring per-rater totals over ratings with at least one not-helpful tag.

    ``rater``: int[R] rater index; ``tags``: uint32[R]. Returns (int64[U]
    ``incorrectTagRatingsMadeByRater``, int64[U] ``totalRatingsMadeByRater``); both 0 for raters
    without not-helpful-tagged ratings (the reference leaves them NaN; the rate is 0 either way).
    """
    tags = np.asarray(tags, dtype=np.uint32)
    nh = (tags & _NH_MASK) != 0
    r = np.asarray(rater, dtype=np.intp)[nh]
    incorrect = np.bincount(r, weights=_incorrect(tags[nh]), minlength=n_raters).astype(np.int64)
    total = np.bincount(r, minlength=n_raters).astype(np.int64)
    return incorrect, total


def rater_incorrect_totals_kept(matrix: RatingMatrix, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``rater_incorrect_totals`` over the ratings ``keep`` (bool[R]) selects, counted in one pass
    over the matrix (integer counts: the same numbers) without gathering the selection. The
    pass is ``streamed``: the raters and tags it reads go back a chunk at a time."""
    keep = np.asarray(keep, dtype=np.bool_)
    incorrect = np.zeros(matrix.n_raters, dtype=np.int64)
    total = np.zeros(matrix.n_raters, dtype=np.int64)
    rater, tags = matrix.rater, matrix.tags
    for lo, hi in streamed([rater, tags], matrix.n_ratings):
        args = (keep[lo:hi], rater[lo:hi], tags[lo:hi])
        _incorrect_totals_nb(*args, _NH_MASK, _INCORRECT_BIT, incorrect, total)
    return incorrect, total


@numba.njit(cache=True, nogil=True)
def _incorrect_totals_nb(keep, rater, tags, nh_mask, incorrect_bit, incorrect, total):
    for i in range(keep.shape[0]):
        if keep[i] and (tags[i] & nh_mask) != 0:
            total[rater[i]] += 1
            incorrect[rater[i]] += (tags[i] >> incorrect_bit) & np.uint32(1)


@dataclass(frozen=True, eq=False)
class IncorrectAggregates:
    """Per-note interval aggregates (length N); NaN where no rating fell in the interval.

    ``incorrect`` (``notHelpfulIncorrect_interval``), ``voters`` (``num_voters_interval``),
    ``p_incorrect`` (``p_incorrect_user_interval``), ``tf_idf`` (``tf_idf_incorrect_interval``),
    all float64 so absence is NaN.
    """

    incorrect: np.ndarray
    voters: np.ndarray
    p_incorrect: np.ndarray
    tf_idf: np.ndarray


def incorrect_aggregates(
    note: np.ndarray,
    rater: np.ndarray,
    tags: np.ndarray,
    note_factor: np.ndarray,
    rater_factor: np.ndarray,
    rater_incorrect: np.ndarray,
    rater_total: np.ndarray,
    *,
    interval_half_width: float = 0.3,
) -> IncorrectAggregates:
    """Final-scoring aggregates (``get_incorrect_aggregates_final_scoring``) for N notes.

    ``note``/``rater``: int[R] indices into ``note_factor`` (float[N]) and ``rater_factor``,
    ``rater_incorrect``, ``rater_total`` (length U); NaN factors exclude the rating.
    """
    tags = np.asarray(tags, dtype=np.uint32)
    note = np.asarray(note, dtype=np.intp)
    rater = np.asarray(rater, dtype=np.intp)
    n_notes = int(np.shape(note_factor)[0])
    fn = np.clip(np.asarray(note_factor, dtype=np.float64), -FACTOR_CLIP, FACTOR_CLIP)[note]
    fu = np.clip(np.asarray(rater_factor, dtype=np.float64), -FACTOR_CLIP, FACTOR_CLIP)[rater]
    with np.errstate(invalid="ignore"):
        keep = ((tags & _NH_MASK) != 0) & (np.abs(fu - fn) < interval_half_width)
    nk, rk = note[keep], rater[keep]
    total = np.asarray(rater_total, dtype=np.float64)[rk]
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.asarray(rater_incorrect, dtype=np.float64)[rk] / total
    rate = np.where(np.isnan(rate), 0.0, rate)
    voters = np.bincount(nk, minlength=n_notes).astype(np.float64)
    incorrect = np.bincount(nk, weights=_incorrect(tags[keep]), minlength=n_notes).astype(np.float64)
    p = np.bincount(nk, weights=rate, minlength=n_notes).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        tf_idf = incorrect / np.log(1.0 + p)
    absent = voters == 0
    for arr in (voters, incorrect, p, tf_idf):
        arr[absent] = np.nan
    return IncorrectAggregates(incorrect=incorrect, voters=voters, p_incorrect=p, tf_idf=tf_idf)


def incorrect_aggregates_kept(
    matrix: RatingMatrix,
    keep: np.ndarray,
    note_factor: np.ndarray,
    rater_factor: np.ndarray,
    rater_incorrect: np.ndarray,
    rater_total: np.ndarray,
    *,
    interval_half_width: float = 0.3,
) -> IncorrectAggregates:
    """``incorrect_aggregates`` over the ratings ``keep`` (bool[R]) selects, in one pass over the
    matrix: the same aggregates bit for bit (counts are integers; the base rates are added per
    note in rating order, the order ``np.bincount`` adds them in), nothing of length R. The
    pass is ``streamed`` (its chunks add in the same order): the columns it reads go back a
    chunk at a time instead of staying resident under the scorer's later steps."""
    if np.shape(note_factor)[0] != matrix.n_notes:
        raise ValueError("incorrect_aggregates: note_factor must cover the matrix's notes")
    keep = np.asarray(keep, dtype=np.bool_)
    fn = np.clip(np.asarray(note_factor, dtype=np.float64), -FACTOR_CLIP, FACTOR_CLIP)
    fu = np.clip(np.asarray(rater_factor, dtype=np.float64), -FACTOR_CLIP, FACTOR_CLIP)
    rate_num = np.asarray(rater_incorrect, dtype=np.float64)
    rate_den = np.asarray(rater_total, dtype=np.float64)
    voters, incorrect, p = (np.zeros(matrix.n_notes) for _ in range(3))
    note, rater, tags = matrix.note, matrix.rater, matrix.tags
    for lo, hi in streamed([note, rater, tags], matrix.n_ratings):
        _incorrect_sums_nb(
            keep[lo:hi], note[lo:hi], rater[lo:hi], tags[lo:hi], fn, fu, rate_num, rate_den,
            _NH_MASK, _INCORRECT_BIT, float(interval_half_width), voters, incorrect, p,
        )  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        tf_idf = incorrect / np.log(1.0 + p)
    absent = voters == 0
    for arr in (voters, incorrect, p, tf_idf):
        arr[absent] = np.nan
    return IncorrectAggregates(incorrect=incorrect, voters=voters, p_incorrect=p, tf_idf=tf_idf)


@numba.njit(cache=True, error_model="numpy", nogil=True)  # x / 0 is inf or NaN, as in numpy
def _incorrect_sums_nb(
    keep, note, rater, tags, fn, fu, rater_incorrect, rater_total, nh_mask, bit, width, voters, incorrect, p
):
    for i in range(keep.shape[0]):
        if keep[i] and (tags[i] & nh_mask) != 0:
            n, u = note[i], rater[i]
            if abs(fu[u] - fn[n]) < width:  # NaN: False
                voters[n] += 1.0
                incorrect[n] += np.float64((tags[i] >> bit) & np.uint32(1))
                rate = rater_incorrect[u] / rater_total[u]
                if np.isnan(rate):
                    rate = 0.0
                p[n] += rate


def incorrect_filter_flags(
    agg: IncorrectAggregates, *, min_incorrect: int = 2, min_voters: int = 3, tf_idf_threshold: float = 2.5
) -> np.ndarray:
    """bool[N]: incorrect ≥ 2 and voters ≥ 3 and tf-idf ≥ 2.5 (NaN never trips)."""
    with np.errstate(invalid="ignore"):
        return (
            (agg.incorrect >= min_incorrect) & (agg.voters >= min_voters) & (agg.tf_idf >= tf_idf_threshold)
        )

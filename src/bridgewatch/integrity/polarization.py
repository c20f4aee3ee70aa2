"""How divided a note's supporters are, and how strongly each rater follows their side.

Both read the rater factors of the matrix factorization (§2.1): the factor's sign is the side of the
main axis of disagreement, its size how far along it a rater sits. Raters without a factor (NaN)
are left out. For reports; scoring never reads these.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pandas as pd


def note_rater_diversity(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    rater_factor: np.ndarray,
    n_notes: int,
    *,
    dead_zone: float = 0.0,
) -> pd.DataFrame:
    """Spread of rater factors among each note's HELPFUL raters.

    ``rating_note`` int[R], ``rating_rater`` int[R], ``rating_value`` float[R]; ``rater_factor``
    float[U] (NaN = unknown). A factor counts as positive when > ``dead_zone`` and negative when
    < −``dead_zone``. Returns one row per note: note, helpfulRaters, helpfulPositive,
    helpfulNegative, factorMean, factorStd (population), factorRange (max − min, 0 with one rater,
    NaN with none), sideBalance = min(pos, neg) / max(pos, neg) (0 when one side is empty, NaN with
    no sided rater). A note liked across the divide has balance near 1 and a wide range.
    """
    n, pos, neg, s1, s2, hi, lo = _diversity_sums(
        np.asarray(rating_note), np.asarray(rating_rater), np.asarray(rating_value),
        np.asarray(rater_factor, dtype=np.float64), n_notes, float(dead_zone),
    )  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
        balance = np.minimum(pos, neg) / np.maximum(pos, neg)
    rng = np.where(n > 0, hi - lo, np.nan)
    return pd.DataFrame(
        {
            "note": np.arange(n_notes, dtype=np.int32),
            "helpfulRaters": n,
            "helpfulPositive": pos,
            "helpfulNegative": neg,
            "factorMean": mean,
            "factorStd": std,
            "factorRange": rng,
            "sideBalance": balance,
        }
    )


@nb.njit(nogil=True, cache=True)
def _diversity_sums(note, rater, value, factor, n_notes, dead_zone):
    """``note_rater_diversity``'s per-note sums in one pass over the ratings, in their order.

    The same terms added in the same order as the bincount / ``maximum.at`` formulation it
    replaces (identical bits), with O(notes) memory instead of rating-length factor gathers and
    masks (≈ 30 bytes a rating).
    """
    n = np.zeros(n_notes, dtype=np.int64)
    pos = np.zeros(n_notes, dtype=np.int64)
    neg = np.zeros(n_notes, dtype=np.int64)
    s1 = np.zeros(n_notes)
    s2 = np.zeros(n_notes)
    hi = np.full(n_notes, -np.inf)
    lo = np.full(n_notes, np.inf)
    for i in range(note.shape[0]):
        f = factor[rater[i]]
        if value[i] != 1.0 or np.isnan(f):
            continue
        j = note[i]
        n[j] += 1
        if f > dead_zone:
            pos[j] += 1
        if f < -dead_zone:
            neg[j] += 1
        s1[j] += f
        s2[j] += f * f
        if f > hi[j]:  # ties keep the held value, as np.maximum.at / np.minimum.at do
            hi[j] = f
        if f < lo[j]:
            lo[j] = f
    return n, pos, neg, s1, s2, hi, lo


def rater_polarization(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    rater_factor: np.ndarray,
    n_notes: int,
    *,
    min_side_raters: int = 2,
) -> pd.DataFrame:
    """How much each rater rates with their own side rather than the other one.

    For each note and side (sign of the factor), the side's mean rating *without the rater
    themselves* (leave-one-out, so a rater never agrees with their own vote). On notes where both
    sides have ≥ ``min_side_raters`` other raters: ownAgreement = mean of 1 − |r − own side mean|,
    otherAgreement = the same against the other side. polarization = own − other (in [−1, 1];
    0 = rates like everyone, 1 = always with own side against the other), and
    weightedPolarization = |factor| · polarization. Returns one row per rater (shape U): rater,
    factor, side (+1/−1/0), sidedNotes, ownAgreement, otherAgreement, polarization,
    weightedPolarization; NaN where the rater has no factor or no sided note.
    """
    factor = np.asarray(rater_factor, dtype=np.float64)
    n_raters = factor.shape[0]
    k, own_sum, oth_sum = _polarization_sums(
        np.asarray(rating_note), np.asarray(rating_rater), np.asarray(rating_value, dtype=np.float64),
        factor, n_notes, min_side_raters,
    )  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        own_a = own_sum / k
        oth_a = oth_sum / k
    pol = own_a - oth_a
    return pd.DataFrame(
        {
            "rater": np.arange(n_raters, dtype=np.int32),
            "factor": factor,
            "side": np.sign(np.nan_to_num(factor)).astype(np.int8),
            "sidedNotes": k,
            "ownAgreement": own_a,
            "otherAgreement": oth_a,
            "polarization": pol,
            "weightedPolarization": np.abs(factor) * pol,
        }
    )


@nb.njit(nogil=True, cache=True)
def _polarization_sums(note, rater, value, factor, n_notes, min_side_raters):
    """Per rater: sided notes, Σ own-side and Σ other-side agreement (``rater_polarization``).

    Two passes over the ratings, in their order (so every sum adds the same terms in the same order
    as the bincount formulation it replaces: identical bits), with O(notes + raters) memory instead
    of a dozen rating-length temporaries.
    """
    n_raters = factor.shape[0]
    pos_s = np.zeros(n_notes)
    pos_c = np.zeros(n_notes)
    neg_s = np.zeros(n_notes)
    neg_c = np.zeros(n_notes)
    for i in range(note.shape[0]):
        f = factor[rater[i]]
        if f > 0:
            pos_s[note[i]] += value[i]
            pos_c[note[i]] += 1.0
        elif f < 0:
            neg_s[note[i]] += value[i]
            neg_c[note[i]] += 1.0
    k = np.zeros(n_raters, dtype=np.int64)
    own_sum = np.zeros(n_raters)
    oth_sum = np.zeros(n_raters)
    for i in range(note.shape[0]):
        u, n, r = rater[i], note[i], value[i]
        f = factor[u]
        if f > 0:
            own_s, own_c, oth_s, oth_c = pos_s[n] - r, pos_c[n] - 1.0, neg_s[n], neg_c[n]
        elif f < 0:
            own_s, own_c, oth_s, oth_c = neg_s[n] - r, neg_c[n] - 1.0, pos_s[n], pos_c[n]
        else:  # no factor (NaN) or exactly 0: no side
            continue
        if own_c >= min_side_raters and oth_c >= min_side_raters:
            k[u] += 1
            own_sum[u] += 1 - abs(r - own_s / own_c)
            oth_sum[u] += 1 - abs(r - oth_s / oth_c)
    return k, own_sum, oth_sum


def note_side_ratings(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    rater_factor: np.ndarray,
    n_notes: int,
) -> pd.DataFrame:
    """How each side of the factor axis rated each note: the note's own polarization.

    Over all ratings (not only Helpful ones) of raters with a non-zero factor. Returns one row per
    note: note, positiveRaters, negativeRaters, positiveMeanRating, negativeMeanRating (NaN where a
    side did not rate), sideGap = positive − negative mean (in [−1, 1]; near 0 when both sides
    agree, whatever they think; ±1 when they split completely).
    """
    cols: dict[str, np.ndarray] = {"note": np.arange(n_notes, dtype=np.int32)}
    counts, sums = _side_sums(
        np.asarray(rating_note), np.asarray(rating_rater), np.asarray(rating_value),
        np.asarray(rater_factor, dtype=np.float64), n_notes,
    )  # fmt: skip
    means = {}
    for side, name in enumerate(("positive", "negative")):
        with np.errstate(invalid="ignore", divide="ignore"):
            means[name] = sums[side] / counts[side]
        cols[f"{name}Raters"] = counts[side]
    cols["positiveMeanRating"] = means["positive"]
    cols["negativeMeanRating"] = means["negative"]
    cols["sideGap"] = means["positive"] - means["negative"]
    return pd.DataFrame(cols)


@nb.njit(nogil=True, cache=True)
def _side_sums(note, rater, value, factor, n_notes):
    """Per note and side (0: factor > 0, 1: < 0): ratings (int64[2, N]) and Σ rating (float64[2, N]).

    One pass in rating order: the bincount sums bit for bit, without rating-length gathers.
    """
    counts = np.zeros((2, n_notes), dtype=np.int64)
    sums = np.zeros((2, n_notes))
    for i in range(note.shape[0]):
        f = factor[rater[i]]
        side = 0 if f > 0 else (1 if f < 0 else -1)
        if side >= 0:
            counts[side, note[i]] += 1
            sums[side, note[i]] += np.float64(value[i])
    return counts, sums

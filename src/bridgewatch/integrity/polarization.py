"""How divided a note's supporters are, and how strongly each rater follows their side.

Both read the rater factors of the matrix factorization (§2.1): the factor's sign is the side of the
main axis of disagreement, its size how far along it a rater sits. Raters without a factor (NaN)
are left out. For reports; scoring never reads these.
"""

from __future__ import annotations

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
    note = np.asarray(rating_note, dtype=np.int64)
    f = np.asarray(rater_factor, dtype=np.float64)[np.asarray(rating_rater, dtype=np.int64)]
    m = (np.asarray(rating_value) == 1.0) & ~np.isnan(f)
    note, f = note[m], f[m]
    n = np.bincount(note, minlength=n_notes)
    pos = np.bincount(note, weights=f > dead_zone, minlength=n_notes).astype(np.int64)
    neg = np.bincount(note, weights=f < -dead_zone, minlength=n_notes).astype(np.int64)
    s1 = np.bincount(note, weights=f, minlength=n_notes)
    s2 = np.bincount(note, weights=f * f, minlength=n_notes)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s1 / n
        std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
        balance = np.minimum(pos, neg) / np.maximum(pos, neg)
    hi = np.full(n_notes, -np.inf)
    lo = np.full(n_notes, np.inf)
    np.maximum.at(hi, note, f)
    np.minimum.at(lo, note, f)
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
    note = np.asarray(rating_note, dtype=np.int64)
    rater = np.asarray(rating_rater, dtype=np.int64)
    factor = np.asarray(rater_factor, dtype=np.float64)
    n_raters = factor.shape[0]
    f = factor[rater]
    r = np.asarray(rating_value, dtype=np.float64)
    side = np.sign(np.nan_to_num(f))
    sums, cnts = {}, {}
    for s in (1.0, -1.0):
        w = side == s
        sums[s] = np.bincount(note, weights=r * w, minlength=n_notes)
        cnts[s] = np.bincount(note, weights=w, minlength=n_notes)
    sided = side != 0
    own_s = np.where(side > 0, sums[1.0][note], sums[-1.0][note]) - r * sided
    own_c = np.where(side > 0, cnts[1.0][note], cnts[-1.0][note]) - sided
    oth_s = np.where(side > 0, sums[-1.0][note], sums[1.0][note])
    oth_c = np.where(side > 0, cnts[-1.0][note], cnts[1.0][note])
    use = sided & (own_c >= min_side_raters) & (oth_c >= min_side_raters)
    with np.errstate(invalid="ignore", divide="ignore"):
        own = 1 - np.abs(r - own_s / own_c)
        oth = 1 - np.abs(r - oth_s / oth_c)
    k = np.bincount(rater[use], minlength=n_raters)
    with np.errstate(invalid="ignore", divide="ignore"):
        own_a = np.bincount(rater[use], weights=own[use], minlength=n_raters) / k
        oth_a = np.bincount(rater[use], weights=oth[use], minlength=n_raters) / k
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
    note = np.asarray(rating_note, dtype=np.int64)
    f = np.asarray(rater_factor, dtype=np.float64)[np.asarray(rating_rater, dtype=np.int64)]
    r = np.asarray(rating_value, dtype=np.float64)
    cols: dict[str, np.ndarray] = {"note": np.arange(n_notes, dtype=np.int32)}
    means = {}
    for name, side in (("positive", f > 0), ("negative", f < 0)):
        n = np.bincount(note[side], minlength=n_notes)
        with np.errstate(invalid="ignore", divide="ignore"):
            means[name] = np.bincount(note[side], weights=r[side], minlength=n_notes) / n
        cols[f"{name}Raters"] = n
    cols["positiveMeanRating"] = means["positive"]
    cols["negativeMeanRating"] = means["negative"]
    cols["sideGap"] = means["positive"] - means["negative"]
    return pd.DataFrame(cols)

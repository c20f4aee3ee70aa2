"""Harassment/abuse tag consensus (§4.5) and the rater penalty it feeds (§4.2).

A note is "abusive by consensus" when raters of every viewpoint tag it
``notHelpfulSpamHarassmentOrAbuse``. The model is a biased logistic factorization
(``logistic_mf`` with reputation fixed at 1) of the tag label:

- label 1: the rating carries the harassment tag;
- label 0: a HELPFUL rating, or a rating that used ``notHelpfulOther`` (without the target tag);
- other ratings (and ratings before the tag set changed on 2021-12-15) are dropped;
then ≥ 10 ratings per rater and ≥ 5 per note. The positive class is weighted by (1 − p)/p so that
the rare tag is not drowned out. Factors start from the helpfulness model's round-1 factors × 2
(stabilizes orientation), intercepts at 0. The note intercept (logit scale) is
``harassmentNoteIntercept``.

Raters who rated such notes HELPFUL are penalized in the helpfulness test: each helpful rating on a
note with intercept ≥ 2.0 costs 10 × (intercept / 2.0) agreeing ratings (``harassment_penalty``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from bridgewatch import schema
from bridgewatch.errors import ScoringError
from bridgewatch.io.matrix import STREAM_CHUNK, RatingMatrix, streamed
from bridgewatch.scoring import rating_gather as RG
from bridgewatch.scoring import rating_pass as RP
from bridgewatch.scoring.logistic_mf import (
    AdamSettings,
    ClassWeights,
    LogisticMFParams,
    Penalty,
    compact,
    fit_adam,
    fit_adam_signed,
    grouped_layout,
    penalty,
)

HARASSMENT_TAG = "notHelpfulSpamHarassmentOrAbuse"
OTHER_TAG = "notHelpfulOther"
LAST_RATING_TAGS_CHANGE_MILLIS = 1639699200000  # 2021-12-15: tags before this are not comparable


@dataclass(frozen=True)
class HarassmentConfig:
    """Reference constants of the tag-consensus model (``tag_consensus.py``) and the penalty."""

    min_created_at_millis: int = LAST_RATING_TAGS_CHANGE_MILLIS
    min_ratings_per_rater: int = 10
    min_ratings_per_note: int = 5
    note_factor_lambda: float = 0.03
    note_intercept_lambda: float = 0.15
    rater_factor_lambda: float = 0.03
    rater_intercept_lambda: float = 0.15
    global_intercept_lambda: float = 0.15
    init_factor_scale: float = 2.0
    # the helpfulness solver's Adam with init (lr 2.0), its stopping rule and gradient clipping
    adam: AdamSettings = field(
        default_factory=lambda: AdamSettings(
            learning_rate=2.0, max_epochs=5000, tolerance=1e-7, stop="mf", clip_norm=1.0
        )
    )
    min_score_to_penalize: float = 2.0  # minimumHarassmentScoreToPenalize
    helpful_rating_penalty: float = 10.0  # tagConsensusHarassmentHelpfulRatingPenalty
    multiply_penalty_by_score: bool = True


def tag_labels(
    value: np.ndarray, tags: np.ndarray, created_at: np.ndarray, config: HarassmentConfig | None = None
) -> np.ndarray:
    """float64[R]: 1 / 0 label per rating, NaN where the rating is not used (§4.5)."""
    c = config or HarassmentConfig()
    tags = np.asarray(tags, dtype=np.uint32)
    target = (tags >> np.uint32(schema.TAG_BIT[HARASSMENT_TAG])) & np.uint32(1) == 1
    other = (tags >> np.uint32(schema.TAG_BIT[OTHER_TAG])) & np.uint32(1) == 1
    label = np.full(tags.shape[0], np.nan)
    label[(np.asarray(value) == 1.0) | other] = 0.0
    label[target] = 1.0
    label[np.asarray(created_at) < c.min_created_at_millis] = np.nan
    return label


def count_filter(
    note: np.ndarray, rater: np.ndarray, keep: np.ndarray, min_per_note: int, min_per_rater: int
) -> np.ndarray:
    """bool[R]: ``keep`` narrowed to notes with ≥ min_per_note, raters with ≥ min_per_rater, notes again.

    One pass in that order, no iteration to a fixed point (the reference's ``filter_ratings``).
    """
    keep = np.asarray(keep, dtype=bool).copy()
    for idx, k in ((note, min_per_note), (rater, min_per_rater), (note, min_per_note)):
        counts = np.bincount(idx[keep], minlength=int(idx.max()) + 1 if idx.size else 0)
        keep &= counts[idx] >= k
    return keep


@dataclass
class HarassmentResult:
    """Per-note and per-rater parameters over the full maps; NaN where absent or aborted."""

    note_intercept: np.ndarray  # float64[N]: harassmentNoteIntercept
    note_factor: np.ndarray  # float64[N]
    rater_intercept: np.ndarray  # float64[U]
    rater_factor: np.ndarray  # float64[U]
    global_intercept: float  # NaN if aborted
    positive_rate: float


_LABEL_CHUNK = STREAM_CHUNK  # ratings the labels pass reads before handing their times back
_TRAINABLE = ("note_factor", "note_intercept", "rater_factor", "rater_intercept", "global_intercept")


def _start(
    c: HarassmentConfig,
    r: int,
    notes: np.ndarray,
    raters: np.ndarray,
    note_factor_init: np.ndarray | None,
    rater_factor_init: np.ndarray | None,
) -> tuple[Penalty, LogisticMFParams]:
    """The model's penalties for ``r`` ratings of ``notes`` × ``raters`` and its start (zeros,
    reputation 1, factors from the helpfulness model scaled down): both fit forms share it."""
    pen = penalty(
        n_ratings=r, n_notes=notes.shape[0], n_raters=raters.shape[0],
        note_factor=c.note_factor_lambda, note_intercept=c.note_intercept_lambda,
        rater_factor=c.rater_factor_lambda, rater_intercept=c.rater_intercept_lambda,
        global_intercept=c.global_intercept_lambda,
    )  # fmt: skip
    init = LogisticMFParams.zeros(notes.shape[0], raters.shape[0], reputation=1.0)
    if note_factor_init is not None:
        init.note_factor = c.init_factor_scale * np.nan_to_num(np.asarray(note_factor_init, float)[notes])
    if rater_factor_init is not None:
        init.rater_factor = c.init_factor_scale * np.nan_to_num(np.asarray(rater_factor_init, float)[raters])
    return pen, init


def fit_tag_consensus(
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    tags: np.ndarray,
    created_at: np.ndarray,
    n_notes: int,
    n_raters: int,
    note_factor_init: np.ndarray | None = None,
    rater_factor_init: np.ndarray | None = None,
    config: HarassmentConfig | None = None,
) -> HarassmentResult:
    """Fit the harassment tag-consensus model on reputation-filtered prescoring ratings.

    Per rating (length R): ``note``/``rater`` dense indices, ``value`` helpfulness (1.0 = HELPFUL),
    ``tags`` tag bits, ``created_at`` ms. ``*_factor_init``: helpfulness factors over the full maps
    (float[N], float[U], NaN → 0). Returns NaN outputs (no exception) when no rating is labelled or
    the positive rate is 0 or 1, as the reference does.
    """
    c = config or HarassmentConfig()
    note = np.asarray(note, dtype=np.int64)
    rater = np.asarray(rater, dtype=np.int64)
    if not (note.shape == rater.shape == np.shape(value) == np.shape(tags) == np.shape(created_at)):
        raise ScoringError("harassment: per-rating arrays must have the same length")
    if note.size and (note.min() < 0 or note.max() >= n_notes or rater.min() < 0 or rater.max() >= n_raters):
        raise ScoringError("harassment: note or rater index out of range")
    label = tag_labels(value, tags, created_at, c)
    keep = count_filter(note, rater, ~np.isnan(label), c.min_ratings_per_note, c.min_ratings_per_rater)
    empty = HarassmentResult(
        np.full(n_notes, np.nan), np.full(n_notes, np.nan), np.full(n_raters, np.nan),
        np.full(n_raters, np.nan), float("nan"), float("nan"),
    )  # fmt: skip
    if not keep.any():
        return empty
    y = label[keep]
    rate = float(y.mean())
    empty.positive_rate = rate
    if rate in (0.0, 1.0):
        return empty
    notes, ln = compact(note[keep], n_notes)
    raters, lr = compact(rater[keep], n_raters)
    weight = np.where(y == 1.0, (1.0 - rate) / rate, 1.0)
    pen, init = _start(c, y.shape[0], notes, raters, note_factor_init, rater_factor_init)
    p, _, _ = fit_adam(ln, lr, y, weight, init, pen, _TRAINABLE, c.adam)
    out = HarassmentResult(
        np.full(n_notes, np.nan), np.full(n_notes, np.nan), np.full(n_raters, np.nan),
        np.full(n_raters, np.nan), float(p.global_intercept[0]), rate,
    )  # fmt: skip
    out.note_intercept[notes] = p.note_intercept
    out.note_factor[notes] = p.note_factor
    out.rater_intercept[raters] = p.rater_intercept
    out.rater_factor[raters] = p.rater_factor
    return out


def fit_tag_consensus_kept(
    matrix: RatingMatrix,
    keep: np.ndarray,
    note_factor_init: np.ndarray | None = None,
    rater_factor_init: np.ndarray | None = None,
    config: HarassmentConfig | None = None,
) -> HarassmentResult:
    """``fit_tag_consensus`` on the ratings ``keep`` (bool[R]) selects, read from the matrix: the
    same result bit for bit, holding ~5 bytes a fitted rating (the layout's uint32 notes and a bool
    label; the signed weights are two class constants) and a bool[R] selection,
    instead of five gathered columns, their int64 and float64 widenings and the fit's own copies.

    Why it is the same: the labelled ratings and ``count_filter``'s notes → raters → notes pass
    are integer decisions (``rating_pass.count_filter`` is that pass over the matrix); the
    positive rate is a count over a count (the mean of 0/1 values is exact); the layout is read
    rater by rater in matrix order (``rating_gather.kept_by_rater``), the order ``layout``'s
    stable grouping gives, and the signed weights are two constants.
    """
    c = config or HarassmentConfig()
    n_notes, n_raters = matrix.n_notes, matrix.n_raters
    keep = np.asarray(keep, dtype=np.bool_)
    labelled = np.empty(matrix.n_ratings, dtype=np.bool_)
    label_tags = np.uint32(1 << schema.TAG_BIT[HARASSMENT_TAG] | 1 << schema.TAG_BIT[OTHER_TAG])
    # this fit's last read of created_at: handed back chunk by chunk, it never sits whole (1.5
    # GiB at X's scale) on top of the set-up, where the model's memory peaks
    for lo, hi in streamed([matrix.created_at], matrix.n_ratings, _LABEL_CHUNK):
        labelled[lo:hi] = _labelled_nb(
            keep[lo:hi], matrix.value[lo:hi], matrix.tags[lo:hi], matrix.created_at[lo:hi], label_tags,
            np.int64(c.min_created_at_millis),
        )  # fmt: skip
    fit = RP.count_filter(matrix, labelled, c.min_ratings_per_note, c.min_ratings_per_rater)
    del labelled
    empty = HarassmentResult(
        np.full(n_notes, np.nan), np.full(n_notes, np.nan), np.full(n_raters, np.nan),
        np.full(n_raters, np.nan), float("nan"), float("nan"),
    )  # fmt: skip
    shape = RG.problem_shape(matrix, fit)
    notes, raters, indptr = shape["note_full"], shape["rater_full"], shape["rater_indptr"]
    r = int(indptr[-1])
    if r == 0:
        return empty
    bit = 1 << schema.TAG_BIT[HARASSMENT_TAG]
    note, positive = RG.kept_by_rater(matrix, np.packbits(fit), notes, raters, indptr, matrix.tags, bits=bit)
    del fit
    matrix.release_unfitted()  # the labels' tags: the epochs read none
    rate = int(np.count_nonzero(positive)) / r  # = label[keep].mean(): a sum of 0/1 is exact
    empty.positive_rate = rate
    if rate in (0.0, 1.0):
        return empty
    lay = grouped_layout(note, indptr, notes.shape[0])
    sw = ClassWeights(positive, -(((1.0 - rate) / rate) / r), 1.0 / r)  # weights ÷ R, negated on 1s
    pen, init = _start(c, r, notes, raters, note_factor_init, rater_factor_init)
    p, _, _ = fit_adam_signed(lay, sw, init, pen, _TRAINABLE, c.adam)
    out = HarassmentResult(
        np.full(n_notes, np.nan), np.full(n_notes, np.nan), np.full(n_raters, np.nan),
        np.full(n_raters, np.nan), float(p.global_intercept[0]), rate,
    )  # fmt: skip
    out.note_intercept[notes] = p.note_intercept
    out.note_factor[notes] = p.note_factor
    out.rater_intercept[raters] = p.rater_intercept
    out.rater_factor[raters] = p.rater_factor
    return out


@numba.njit(cache=True, nogil=True)
def _labelled_nb(keep, value, tags, created_at, label_tags, min_created_at):
    """bool[R]: kept ratings ``tag_labels`` gives a label (HELPFUL, or tagged with the target or
    ``notHelpfulOther``; not before ``min_created_at``)."""
    out = np.zeros(keep.shape[0], dtype=np.bool_)
    for i in range(keep.shape[0]):
        if keep[i] and (value[i] == 1.0 or (tags[i] & label_tags) != 0) and created_at[i] >= min_created_at:
            out[i] = True
    return out


def harassment_penalty(
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    note_intercept: np.ndarray,
    n_raters: int,
    config: HarassmentConfig | None = None,
) -> np.ndarray:
    """float64[U]: each rater's penalty (in agreeing-rating units) for rating abusive notes HELPFUL.

    Over the given ratings (``ratingsForTraining``: any time, valid or not), every HELPFUL rating on a
    note with ``note_intercept`` ≥ 2.0 adds 10 × (intercept / 2.0) (or a flat 10 when
    ``multiply_penalty_by_score`` is off). ``note_intercept``: float[N], NaN = no score.
    """
    c = config or HarassmentConfig()
    note = np.asarray(note, dtype=np.int64)
    score = np.asarray(note_intercept, dtype=np.float64)[note]
    hit = (np.asarray(value) == 1.0) & (score >= c.min_score_to_penalize)  # NaN compares False
    if c.multiply_penalty_by_score:
        amount = c.helpful_rating_penalty * score / c.min_score_to_penalize
    else:
        amount = np.full(note.shape[0], c.helpful_rating_penalty)
    return np.bincount(np.asarray(rater, dtype=np.int64)[hit], weights=amount[hit], minlength=n_raters)

"""Low-diligence reputation model (§3.5): which notes draw "incorrect / bad sources" tags.

A rating's target is 1 when it carries any of ``notHelpfulIncorrect``, ``notHelpfulIrrelevantSources``
or ``notHelpfulSourcesMissingOrUnreliable`` (helpful ratings included, as 0). A logistic factor model
with a learned rater reputation (``logistic_mf``) separates "this note draws such tags from raters
of every viewpoint" (a high note intercept) from viewpoint-driven tagging (the factor term) and from
raters who tag everything (rater intercept, low reputation). The final note intercept feeds the
``FilterLowDiligence`` rule (> 0.263).

Prescoring fits three rounds on the round-2 (reputation-filtered) ratings:
  1. reputation frozen at 1, everything else learned;
  2. reputation learned too, note intercepts frozen (round-2 intercepts are kept);
  3. factors and reputation frozen; intercepts refit with weights favouring positives, reputable
     raters and (via total^-0.5) notes with few ratings.
Final scoring starts from prescoring: learn note factors (round-2 weighting, round-2 intercepts),
then note intercepts only (round-3 weighting, final rater intercepts and global intercept).

Indices: ``note``/``rater`` are dense indices into the dataset's note and rater id maps (the same
for prescoring and final, as ``RatingMatrix.subset`` keeps them); per-note / per-rater outputs are
float64 arrays over the whole map, NaN where a note or rater had no ratings in the fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numba
import numpy as np

from bridgewatch import schema
from bridgewatch.errors import ScoringError
from bridgewatch.io.matrix import RATING_COLUMNS, RatingMatrix
from bridgewatch.scoring.logistic_mf import (
    AdamSettings,
    ClassWeights,
    FactoredWeights,
    LogisticMFParams,
    Penalty,
    RatingLayout,
    compact,
    fit_adam,
    fit_adam_signed,
    grouped_layout,
    layout,
    penalty,
)
from bridgewatch.scoring.rating_gather import kept_by_rater, problem_shape
from bridgewatch.scoring.torch_init import reputation_model_start

DILIGENCE_TAGS = (
    "notHelpfulIncorrect",
    "notHelpfulIrrelevantSources",
    "notHelpfulSourcesMissingOrUnreliable",
)


@dataclass(frozen=True)
class DiligenceConfig:
    """Reference hyperparameters of the diligence model (``diligence_model.py``, §3.5)."""

    l2_lambda: float = 0.03
    note_bias_multiplier: float = 1.0
    rater_bias_multiplier: float = 10.0
    global_bias_multiplier: float = 0.0
    reputation_multiplier: float = 50.0
    pos_weight: float = 100.0
    third_round_pos_multiplier: float = 5.0
    third_round_note_norm_exp: float = -0.5
    reputation_exp: float = 0.5
    alpha: float = 0.1
    threshold: float = 0.263  # FilterLowDiligence: intercept above this
    adam: AdamSettings = field(
        default_factory=lambda: AdamSettings(learning_rate=0.2, max_epochs=300, tolerance=1e-5, check_every=5)
    )
    # most Adam epochs of prescoring rounds 1, 2, 3 and of each final fit, in place of
    # ``adam.max_epochs`` (None: that one); ``config.DiligenceFitConfig`` sets them (fast profile)
    epoch_caps: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None)

    def settings(self, fit: int) -> AdamSettings:
        """Adam settings of fit ``fit``: 0, 1, 2 the prescoring rounds, 3 the final fits."""
        cap = self.epoch_caps[fit]
        return self.adam if cap is None else replace(self.adam, max_epochs=cap)


@dataclass
class DiligencePrescoring:
    """What final scoring needs from prescoring (arrays over the full note / rater maps)."""

    note_intercept: np.ndarray  # float64[N], round 3
    note_factor: np.ndarray  # float64[N]
    note_intercept_round2: np.ndarray  # float64[N]
    rater_intercept: np.ndarray  # float64[U], round 3
    rater_intercept_round2: np.ndarray  # float64[U]
    rater_factor: np.ndarray  # float64[U]
    rater_reputation: np.ndarray  # float64[U]
    global_intercepts: tuple[float, float, float]  # after rounds 1, 2, 3
    n_ratings: int
    n_notes: int
    n_raters: int


@dataclass(frozen=True, eq=False)
class DiligenceStart:
    """Where the prescoring fit's random start comes from (``torch_init.reputation_model_start``).

    ``seed``: the scorer's seed; ``num_factors``: its helpfulness model's factors (the round-2
    model drew (raters + notes) × ``num_factors`` uniforms before this model is built, on the
    same ratings); ``note_rank`` / ``rater_rank``: int[N] / int[U] each id's position among the
    sorted ids of the whole map (the reference orders its embedding rows by sorted id).
    """

    seed: int
    num_factors: int
    note_rank: np.ndarray
    rater_rank: np.ndarray


def _random_start(start: DiligenceStart, notes: np.ndarray, raters: np.ndarray):
    """(note factor, note intercept, rater intercept) float64 in the fit's compact order."""
    nn, nu = notes.shape[0], raters.shape[0]
    nf, ni, ri = reputation_model_start(start.seed, (nn + nu) * start.num_factors, nn, nu)
    note_row = np.argsort(np.asarray(start.note_rank)[notes], kind="stable")
    rater_row = np.argsort(np.asarray(start.rater_rank)[raters], kind="stable")
    out = np.zeros(nn), np.zeros(nn), np.zeros(nu)
    out[0][note_row], out[1][note_row], out[2][rater_row] = nf, ni, ri
    return out


def _tag_mask() -> int:
    mask = 0
    for tag in DILIGENCE_TAGS:
        mask |= 1 << schema.TAG_BIT[tag]
    return mask


def diligence_targets(tags: np.ndarray) -> np.ndarray:
    """float64[R]: 1.0 where a rating's tag bits (``RatingMatrix.tags``) include a diligence tag."""
    return ((np.asarray(tags, dtype=np.uint32) & np.uint32(_tag_mask())) != 0).astype(np.float64)


def rating_weights(
    note: np.ndarray,
    target: np.ndarray,
    pos_weight: float,
    *,
    reputation: np.ndarray | None = None,
    reputation_exp: float = 1.0,
    alpha: float = 0.0,
    note_norm_exp: float = 0.0,
    n_notes: int | None = None,
) -> np.ndarray:
    """float64[R] loss weights: class weight, then reputation, then note normalization.

    ``reputation`` is per rating (the rater's reputation, clipped at 0 by the caller); the note
    normalization multiplies by (note's total weight + 2^-20)^exp.
    """
    w = np.where(target == 1.0, float(pos_weight), 1.0)
    if reputation is not None:
        w = w * (alpha + reputation**reputation_exp) / (1.0 + alpha)
    if note_norm_exp != 0.0:
        totals = np.bincount(note, weights=w, minlength=n_notes or 0) + 2.0**-20
        w = w * totals[note] ** note_norm_exp
    return w


def _scatter(size: int, present: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.full(size, np.nan)
    out[present] = values
    return out


def _local_ratings(note, rater, target, n_notes: int, n_raters: int):
    """Checked ratings in a compact index space: (notes, raters, local note, local rater, target).

    ``notes``/``raters`` map local indices back to the matrix's; both fits solve only over the
    notes and raters that have ratings.
    """
    note = np.asarray(note, dtype=np.int64)
    rater = np.asarray(rater, dtype=np.int64)
    target = np.asarray(target, dtype=np.float64)
    _check(note, rater, target, n_notes, n_raters)
    notes, ln = compact(note, n_notes)
    raters, lr = compact(rater, n_raters)
    return notes, raters, ln, lr, target


def _check(note, rater, target, n_notes, n_raters) -> None:
    if not (note.shape == rater.shape == target.shape):
        raise ScoringError("diligence: note, rater and target must have the same length")
    if note.size == 0:
        raise ScoringError("diligence: no ratings to fit")
    if note.min() < 0 or note.max() >= n_notes or rater.min() < 0 or rater.max() >= n_raters:
        raise ScoringError("diligence: note or rater index out of range")


def _penalty(c: DiligenceConfig, r: int, nn: int, nu: int, **loss_ratios: float):
    """The model's λ multipliers (§3.5) as one penalty table; prescoring and final share it."""
    return penalty(
        n_ratings=r, n_notes=nn, n_raters=nu,
        note_factor=c.l2_lambda, note_intercept=c.l2_lambda * c.note_bias_multiplier,
        rater_factor=c.l2_lambda, rater_intercept=c.l2_lambda * c.rater_bias_multiplier,
        rater_reputation=c.l2_lambda * c.reputation_multiplier,
        global_intercept=c.l2_lambda * c.global_bias_multiplier,
        **loss_ratios,
    )  # fmt: skip


def fit_prescoring(
    note: np.ndarray,
    rater: np.ndarray,
    target: np.ndarray,
    n_notes: int,
    n_raters: int,
    rater_factor_init: np.ndarray,
    config: DiligenceConfig | None = None,
    start: DiligenceStart | None = None,
) -> DiligencePrescoring:
    """The three prescoring rounds on round-2 ratings.

    ``rater_factor_init``: float[U], the helpfulness model's round-2 rater factors (NaN → 0).
    Note factors, note intercepts and rater intercepts start from the reference's torch draws
    when ``start`` says how (the end point of 300 Adam epochs still depends on the start), else
    at 0; reputation starts at 1 and the global intercept at 0 either way.
    """
    notes, raters, ln, lr, target = _local_ratings(note, rater, target, n_notes, n_raters)
    c = config or DiligenceConfig()
    r, nn, nu = ln.shape[0], notes.shape[0], raters.shape[0]
    pen = _penalty(c, r, nn, nu)
    p = LogisticMFParams.zeros(nn, nu, reputation=1.0)
    p.rater_factor = np.nan_to_num(np.asarray(rater_factor_init, dtype=np.float64)[raters], nan=0.0)
    if start is not None:
        p.note_factor, p.note_intercept, p.rater_intercept = _random_start(start, notes, raters)

    lay = layout(ln, lr, nn, nu)  # the three rounds fit the same ratings: sort them once
    w12 = rating_weights(ln, target, c.pos_weight)
    round1 = ("note_factor", "note_intercept", "rater_factor", "rater_intercept", "global_intercept")
    p, _, _ = fit_adam(ln, lr, target, w12, p, pen, round1, c.settings(0), prepared=lay)
    g1 = float(p.global_intercept[0])
    round2 = ("note_factor", "rater_factor", "rater_intercept", "rater_reputation", "global_intercept")
    p, _, _ = fit_adam(ln, lr, target, w12, p, pen, round2, c.settings(1), prepared=lay)
    g2 = float(p.global_intercept[0])
    ni2, ri2 = p.note_intercept.copy(), p.rater_intercept.copy()
    w3 = rating_weights(
        ln, target, c.pos_weight * c.third_round_pos_multiplier,
        reputation=np.maximum(p.rater_reputation, 0.0)[lr], reputation_exp=c.reputation_exp,
        alpha=c.alpha, note_norm_exp=c.third_round_note_norm_exp, n_notes=nn,
    )  # fmt: skip
    round3 = ("note_intercept", "rater_intercept", "global_intercept")
    p, _, _ = fit_adam(ln, lr, target, w3, p, pen, round3, c.settings(2), prepared=lay)
    g3 = float(p.global_intercept[0])
    return DiligencePrescoring(
        note_intercept=_scatter(n_notes, notes, p.note_intercept),
        note_factor=_scatter(n_notes, notes, p.note_factor),
        note_intercept_round2=_scatter(n_notes, notes, ni2),
        rater_intercept=_scatter(n_raters, raters, p.rater_intercept),
        rater_intercept_round2=_scatter(n_raters, raters, ri2),
        rater_factor=_scatter(n_raters, raters, p.rater_factor),
        rater_reputation=_scatter(n_raters, raters, p.rater_reputation),
        global_intercepts=(g1, g2, g3),
        n_ratings=r,
        n_notes=nn,
        n_raters=nu,
    )


def fit_prescoring_kept(
    matrix: RatingMatrix,
    keep: np.ndarray,
    rater_factor_init: np.ndarray,
    config: DiligenceConfig | None = None,
    start: DiligenceStart | None = None,
) -> DiligencePrescoring:
    """``fit_prescoring`` on the ratings ``keep`` (bool[R]) selects, read from the matrix: the same
    result bit for bit, holding ~5 bytes a kept rating (the layout's uint32 notes and a bool
    target, from which the epoch pass forms every round's weights: rounds 1 and 2 weigh by class,
    two constants; round 3 by a rater term per class and a note term) instead of the ~60 of the
    caller's gathered copies, the local indices, the input-order weights and the layout's
    permutation.

    Why it is the same: ``rating_gather.kept_by_rater`` lists the kept ratings rater by rater in
    matrix order, the order ``layout``'s stable grouping gives; round 1's and 2's signed weights
    are two constants (±w/R); round 3's note totals are summed in matrix order, the order
    ``np.bincount`` adds the input-order weights in, and every other step is the same element-wise
    operation on the same operands, in the same order (a test pins whole fits to ``fit_prescoring``).
    """
    keep = np.asarray(keep, dtype=np.bool_)
    k = _kept(matrix, keep)
    notes, raters, r, nn, nu = k.notes, k.raters, k.n_ratings, k.notes.shape[0], k.raters.shape[0]
    c = config or DiligenceConfig()
    pen = _penalty(c, r, nn, nu)
    p = LogisticMFParams.zeros(nn, nu, reputation=1.0)
    p.rater_factor = np.nan_to_num(np.asarray(rater_factor_init, dtype=np.float64)[raters], nan=0.0)
    if start is not None:
        p.note_factor, p.note_intercept, p.rater_intercept = _random_start(start, notes, raters)

    cw = k.class_weights(c.pos_weight)
    round1 = ("note_factor", "note_intercept", "rater_factor", "rater_intercept", "global_intercept")
    p, _, _ = fit_adam_signed(k.layout, cw, p, pen, round1, c.settings(0))
    g1 = float(p.global_intercept[0])
    round2 = ("note_factor", "rater_factor", "rater_intercept", "rater_reputation", "global_intercept")
    p, _, _ = fit_adam_signed(k.layout, cw, p, pen, round2, c.settings(1))
    g2 = float(p.global_intercept[0])
    ni2, ri2 = p.note_intercept.copy(), p.rater_intercept.copy()
    sw = k.round3_weights(matrix, keep, p.rater_reputation, c)
    round3 = ("note_intercept", "rater_intercept", "global_intercept")
    p, _, _ = fit_adam_signed(k.layout, sw, p, pen, round3, c.settings(2))
    g3 = float(p.global_intercept[0])
    return DiligencePrescoring(
        note_intercept=_scatter(matrix.n_notes, notes, p.note_intercept),
        note_factor=_scatter(matrix.n_notes, notes, p.note_factor),
        note_intercept_round2=_scatter(matrix.n_notes, notes, ni2),
        rater_intercept=_scatter(matrix.n_raters, raters, p.rater_intercept),
        rater_intercept_round2=_scatter(matrix.n_raters, raters, ri2),
        rater_factor=_scatter(matrix.n_raters, raters, p.rater_factor),
        rater_reputation=_scatter(matrix.n_raters, raters, p.rater_reputation),
        global_intercepts=(g1, g2, g3),
        n_ratings=r,
        n_notes=nn,
        n_raters=nu,
    )


def _take_zeroed(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.nan_to_num(a[idx], nan=0.0)


def _final_start(
    c: DiligenceConfig, pre: DiligencePrescoring, notes: np.ndarray, raters: np.ndarray, r: int
) -> tuple[Penalty, LogisticMFParams]:
    """Final scoring's penalties (loss-ratio form with prescoring's ratings per note and per
    rater) and its start: prescoring's round-2 parameters of the ``notes`` and ``raters`` fitted
    (NaN → 0), so both fit forms start from the same bits."""
    pen = _penalty(
        c, r, notes.shape[0], raters.shape[0],
        note_loss_ratio=pre.n_ratings / max(pre.n_notes, 1),
        rater_loss_ratio=pre.n_ratings / max(pre.n_raters, 1),
    )  # fmt: skip
    p = LogisticMFParams(
        note_factor=_take_zeroed(pre.note_factor, notes),
        note_intercept=_take_zeroed(pre.note_intercept_round2, notes),
        rater_factor=_take_zeroed(pre.rater_factor, raters),
        rater_intercept=_take_zeroed(pre.rater_intercept_round2, raters),
        rater_reputation=_take_zeroed(pre.rater_reputation, raters),
        global_intercept=np.array([pre.global_intercepts[1]]),
    )
    return pen, p


def fit_final_kept(
    matrix: RatingMatrix, keep: np.ndarray, pre: DiligencePrescoring, config: DiligenceConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``fit_final`` on the ratings ``keep`` (bool[R]) selects, read from the matrix as
    ``fit_prescoring_kept`` reads them: the same (note intercept, note factor), bit for bit."""
    keep = np.asarray(keep, dtype=np.bool_)
    k = _kept(matrix, keep)
    notes, raters = k.notes, k.raters
    c = config or DiligenceConfig()
    pen, p = _final_start(c, pre, notes, raters, k.n_ratings)
    p, _, _ = fit_adam_signed(
        k.layout, k.class_weights(c.pos_weight), p, pen, ("note_factor",), c.settings(3)
    )
    p.global_intercept = np.array([pre.global_intercepts[2]])
    p.rater_intercept = _take_zeroed(pre.rater_intercept, raters)
    sw = k.round3_weights(matrix, keep, p.rater_reputation, c)
    p, _, _ = fit_adam_signed(k.layout, sw, p, pen, ("note_intercept",), c.settings(3))
    return _scatter(matrix.n_notes, notes, p.note_intercept), _scatter(matrix.n_notes, notes, p.note_factor)


@dataclass(frozen=True, eq=False)
class _Kept:
    """A selection's ratings in rater order, as both fits from the matrix hold them: ``notes`` /
    ``raters`` (local → matrix index), ``positive`` bool[K] (the target), the shared layout."""

    notes: np.ndarray
    raters: np.ndarray
    positive: np.ndarray
    layout: RatingLayout

    @property
    def n_ratings(self) -> int:
        return self.layout.n_ratings

    def class_weights(self, pos_weight: float) -> ClassWeights:
        """``rating_weights(…, pos_weight)`` then ``signed_weights``: two constants, ±w/R."""
        r, pw = self.n_ratings, float(pos_weight)
        return ClassWeights(self.positive, -(pw / r), 1.0 / r)

    def round3_weights(
        self, matrix: RatingMatrix, keep: np.ndarray, reputation: np.ndarray, c: DiligenceConfig
    ) -> FactoredWeights:
        """The last round's signed weights: ``rating_weights`` with the reputation term and note
        normalization (the note totals summed in matrix order), factored per rater and per note
        so the epoch pass forms each (float64 per rating was 8 of its ~13 bytes a fitted
        rating). The operations are
        ``rating_weights``' in its order: (class weight × reputation term) ÷ norm, per rater and
        class here; × note term, ÷ R in the pass."""
        nn = self.notes.shape[0]
        pw3 = float(c.pos_weight * c.third_round_pos_multiplier)
        per_rater = float(c.alpha) + np.maximum(reputation, 0.0) ** c.reputation_exp
        norm = 1.0 + c.alpha
        if c.third_round_note_norm_exp != 0.0:
            totals = _note_totals_nb(
                keep, matrix.note, matrix.rater, matrix.tags, np.uint32(_tag_mask()),
                _local_map(self.notes, matrix.n_notes), _local_map(self.raters, matrix.n_raters),
                per_rater, pw3, norm, nn,
            )  # fmt: skip
            per_note = (totals + 2.0**-20) ** c.third_round_note_norm_exp
            matrix.release()  # what the totals read: the epochs read no column (``_kept``)
        else:
            per_note = np.ones(nn)  # × 1.0: exact
        rater = np.empty((per_rater.shape[0], 2))
        rater[:, 0] = (1.0 * per_rater) / norm
        rater[:, 1] = (pw3 * per_rater) / norm
        return FactoredWeights(self.positive, rater, per_note, float(self.n_ratings))


# The columns ``_kept``'s gather reads (``rating_gather.kept_by_rater`` of the tags).
_GATHERED = ("by_rater", "note", "tags")


def _kept(matrix: RatingMatrix, keep: np.ndarray) -> _Kept:
    shape = problem_shape(matrix, keep)
    notes, raters, indptr = shape["note_full"], shape["rater_full"], shape["rater_indptr"]
    if int(indptr[-1]) == 0:
        raise ScoringError("diligence: no ratings to fit")
    packed = np.packbits(keep)
    # The passes before (the scorer's intercepts, its raters' incorrect-tag totals) leave their
    # columns resident; the gather reads three (``_GATHERED``). The Gaussian scorers' final fits
    # peak in this gather (at `large`, with glibc's allocations mapped as at X's scale), and at
    # X's scale the other columns are ~1.2 GiB by size.
    matrix.release(*(name for name in RATING_COLUMNS if name not in _GATHERED))
    note, positive = kept_by_rater(matrix, packed, notes, raters, indptr, matrix.tags, bits=_tag_mask())
    del packed
    # Every column, not only the ones no fit reads: these epochs read the layout's own copies
    # (notes, targets) and no column at all. At X's scale the notes, raters, values and rater
    # order mapped resident were ~4 GiB under the Gaussian scorers' fits, where they peak; the
    # passes after fault them back in from the page cache.
    matrix.release()
    return _Kept(notes, raters, positive, grouped_layout(note, indptr, notes.shape[0]))


def _local_map(full: np.ndarray, n: int) -> np.ndarray:
    """int64[n]: the local index of each full index listed in ``full`` (0 elsewhere: unread)."""
    out = np.zeros(n, dtype=np.int64)
    out[full] = np.arange(full.shape[0], dtype=np.int64)
    return out


@numba.njit(cache=True, nogil=True)
def _note_totals_nb(keep, note, rater, tags, mask, note_map, rater_map, per_rater, pw, norm, n_notes):
    """float64[n_notes]: ``rating_weights``' note totals before the normalization (class weight
    × per-rater reputation term / ``norm``), summed in matrix order, as ``np.bincount`` sums the
    input-order weights."""
    out = np.zeros(n_notes)
    for i in range(keep.shape[0]):
        if keep[i]:
            c = pw if (tags[i] & mask) != 0 else 1.0
            w = c * per_rater[rater_map[rater[i]]]
            w = w / norm
            out[note_map[note[i]]] += w
    return out


def fit_final(
    note: np.ndarray,
    rater: np.ndarray,
    target: np.ndarray,
    n_notes: int,
    n_raters: int,
    pre: DiligencePrescoring,
    config: DiligenceConfig | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Final-scoring diligence fit; returns (note intercept, note factor), float64[N] each.

    Rater parameters come from ``pre`` and stay frozen; raters absent from prescoring get
    reputation 0 (their ratings then carry only the ``alpha`` share of weight in the last step).
    Penalties use the loss-ratio form with prescoring's ratings per note and per rater.
    """
    notes, raters, ln, lr, target = _local_ratings(note, rater, target, n_notes, n_raters)
    c = config or DiligenceConfig()
    nn, nu = notes.shape[0], raters.shape[0]
    pen, p = _final_start(c, pre, notes, raters, ln.shape[0])
    lay = layout(ln, lr, nn, nu)
    w2 = rating_weights(ln, target, c.pos_weight)
    p, _, _ = fit_adam(ln, lr, target, w2, p, pen, ("note_factor",), c.settings(3), prepared=lay)
    p.global_intercept = np.array([pre.global_intercepts[2]])
    p.rater_intercept = _take_zeroed(pre.rater_intercept, raters)
    w3 = rating_weights(
        ln, target, c.pos_weight * c.third_round_pos_multiplier,
        reputation=np.maximum(p.rater_reputation, 0.0)[lr], reputation_exp=c.reputation_exp,
        alpha=c.alpha, note_norm_exp=c.third_round_note_norm_exp, n_notes=nn,
    )  # fmt: skip
    p, _, _ = fit_adam(ln, lr, target, w3, p, pen, ("note_intercept",), c.settings(3), prepared=lay)
    return _scatter(n_notes, notes, p.note_intercept), _scatter(n_notes, notes, p.note_factor)

"""A weighted logistic factor model over rating arrays, shared by the auxiliary scorers.

Model (one factor dimension, as everywhere in the reference):

    logit_r = f_n·f_u + i_n·rep_u + i_u + mu          (n = note of rating r, u = its rater)
    L = (1/R) Σ_r w_r · BCE(logit_r, y_r) + Σ_blocks c_block · Σ param²

``rep_u`` is a rater "reputation" that scales the note intercept; it stays at 1.0 (and frozen) for a
plain biased factorization such as the harassment tag-consensus model (§4.5) and is learned by the
low-diligence model (§3.5). ``w_r`` folds in the positive-class weight. The penalty coefficients
``c`` are in sum form: the reference's mean-form regularization ``λ·mean(p²)`` is ``λ/N · Σ p²``,
and its "loss ratio" form is ``λ·ρ/R · Σ p²`` (see ``penalty``).

The optimizer is full-batch Adam (the reference's torch Adam, same update and stopping rules). Its
gradient is one fused numba pass over the ratings grouped by rater (``logistic_kernels``; the numpy
twin ``gradient_np`` takes some fifteen passes), the loss is only evaluated on the epochs the
stopping rule reads it, and the update runs in place. Sums run in a fixed order, so reruns are
bit-identical for any thread count. Blocks can be frozen per call, which is how the multi-round
fits of §3.5 are expressed; ``layout`` is built once per rating set and shared by those rounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numba
import numpy as np

from bridgewatch.scoring import logistic_kernels as K
from bridgewatch.scoring import logistic_notes as LN
from bridgewatch.scoring.mf_kernels import sum_squares
from bridgewatch.scoring.threads import threads_for

BLOCKS = (
    "note_factor",
    "note_intercept",
    "rater_factor",
    "rater_intercept",
    "rater_reputation",
    "global_intercept",
)


@dataclass
class LogisticMFParams:
    """Model parameters: float64 arrays of length N (notes) or U (raters), plus ``mu``."""

    note_factor: np.ndarray
    note_intercept: np.ndarray
    rater_factor: np.ndarray
    rater_intercept: np.ndarray
    rater_reputation: np.ndarray
    global_intercept: np.ndarray = field(default_factory=lambda: np.zeros(1))

    @classmethod
    def zeros(cls, n_notes: int, n_raters: int, reputation: float = 1.0) -> LogisticMFParams:
        return cls(
            note_factor=np.zeros(n_notes),
            note_intercept=np.zeros(n_notes),
            rater_factor=np.zeros(n_raters),
            rater_intercept=np.zeros(n_raters),
            rater_reputation=np.full(n_raters, float(reputation)),
            global_intercept=np.zeros(1),
        )

    def copy(self) -> LogisticMFParams:
        return LogisticMFParams(**{b: np.array(getattr(self, b), dtype=np.float64) for b in BLOCKS})


@dataclass(frozen=True)
class Penalty:
    """Sum-form L2 coefficients per block (loss term ``c · Σ p²``)."""

    note_factor: float = 0.0
    note_intercept: float = 0.0
    rater_factor: float = 0.0
    rater_intercept: float = 0.0
    rater_reputation: float = 0.0
    global_intercept: float = 0.0


def penalty(
    *,
    n_ratings: int,
    n_notes: int,
    n_raters: int,
    note_factor: float,
    note_intercept: float,
    rater_factor: float,
    rater_intercept: float,
    rater_reputation: float = 0.0,
    global_intercept: float = 0.0,
    note_loss_ratio: float | None = None,
    rater_loss_ratio: float | None = None,
) -> Penalty:
    """Sum-form coefficients from the reference's λs (mean form, or loss-ratio form when given).

    Mean form divides a block's λ by its row count; the loss-ratio form divides by ``R / ρ`` so the
    effective per-parameter penalty does not depend on how many notes this fit happens to contain.
    The global term is never averaged.
    """
    note_div = max(n_notes, 1) if note_loss_ratio is None else n_ratings / note_loss_ratio
    rater_div = max(n_raters, 1) if rater_loss_ratio is None else n_ratings / rater_loss_ratio
    return Penalty(
        note_factor=note_factor / note_div,
        note_intercept=note_intercept / note_div,
        rater_factor=rater_factor / rater_div,
        rater_intercept=rater_intercept / rater_div,
        rater_reputation=rater_reputation / rater_div,
        global_intercept=global_intercept,
    )


@dataclass(frozen=True)
class AdamSettings:
    """Optimizer and stopping rule.

    ``stop="periodic"`` (reputation models): at most ``max_epochs + 1`` steps, every
    ``check_every`` epochs stop when the loss moved less than ``tolerance`` since the last check.
    ``stop="mf"`` (the helpfulness solver's rule, §2.3): continue while the loss moves more than
    ``tolerance`` and it has not risen after epoch 100; ``max_epochs`` is a safety cap.
    """

    learning_rate: float = 0.2
    max_epochs: int = 300
    tolerance: float = 1e-5
    check_every: int = 5
    stop: str = "periodic"
    clip_norm: float | None = None
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def logits(note: np.ndarray, rater: np.ndarray, p: LogisticMFParams) -> np.ndarray:
    """float64[R]: the model's logit for every rating."""
    return (
        p.note_factor[note] * p.rater_factor[rater]
        + p.note_intercept[note] * p.rater_reputation[rater]
        + p.rater_intercept[rater]
        + p.global_intercept[0]
    )


def objective(
    note: np.ndarray,
    rater: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    p: LogisticMFParams,
    pen: Penalty,
) -> float:
    """The loss L (weighted mean BCE plus penalties) at ``p``."""
    x = logits(note, rater, p)
    data = float(np.sum(weight * (_softplus(x) - target * x))) / max(note.shape[0], 1)
    reg = sum(getattr(pen, b) * sum_squares(getattr(p, b)) for b in BLOCKS)
    return data + reg


def gradient_np(
    note: np.ndarray,
    rater: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    p: LogisticMFParams,
    pen: Penalty,
) -> tuple[float, dict[str, np.ndarray]]:
    """The loss and its gradient per block in vectorized numpy: the reference twin of ``gradient``."""
    n_notes, n_raters = p.note_factor.shape[0], p.rater_factor.shape[0]
    x = logits(note, rater, p)
    r = max(note.shape[0], 1)
    loss = float(np.sum(weight * (_softplus(x) - target * x))) / r
    d = weight * (_sigmoid(x) - target) / r
    grads = {
        "note_factor": np.bincount(note, d * p.rater_factor[rater], n_notes),
        "note_intercept": np.bincount(note, d * p.rater_reputation[rater], n_notes),
        "rater_factor": np.bincount(rater, d * p.note_factor[note], n_raters),
        "rater_intercept": np.bincount(rater, d, n_raters),
        "rater_reputation": np.bincount(rater, d * p.note_intercept[note], n_raters),
        "global_intercept": np.array([d.sum()]),
    }
    return _add_penalty(loss, grads, p, pen)


@dataclass(frozen=True, eq=False)
class RatingLayout:
    """Ratings ordered by rater (stable), cut into fixed slices, with scratch for the epoch pass.

    Depends only on which (note, rater) pairs are rated, not on targets or weights, so one layout
    serves every fit over the same ratings (the three prescoring rounds; both final rounds).
    ``order``: the permutation from input order to rater order.
    """

    order: np.ndarray
    note: np.ndarray
    rater_indptr: np.ndarray
    sub_ptr: np.ndarray
    chunk_ptr: np.ndarray
    n_notes: int
    n_raters: int
    work: np.ndarray
    packed: np.ndarray
    note_part: np.ndarray

    @property
    def n_ratings(self) -> int:
        return int(self.note.shape[0])

    def signed_weights(self, target: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """float64[R] in rater order: weight/R, negated where the target is 1 (``K.epoch_nb``)."""
        t = np.asarray(target, dtype=np.float64)[self.order]
        w = np.asarray(weight, dtype=np.float64)[self.order] / max(self.n_ratings, 1)
        return np.where(t == 1.0, -w, w)


@dataclass(frozen=True, eq=False)
class ClassWeights:
    """Signed weights that are one constant per class (weight/R, negated for target 1):
    ``positive`` bool[R] in rater order, ``on_positive`` / ``on_negative`` the two constants. The
    epoch pass then streams the bool (1 byte a rating) instead of float64 ``signed_weights``."""

    positive: np.ndarray
    on_positive: float
    on_negative: float


@dataclass(frozen=True, eq=False)
class FactoredWeights:
    """Signed weights that factor into a rater term per class and a note term: rating j of rater
    u on note n weighs ``(rater[u, positive[j]] · note[n]) / divisor``, negated for target 1.
    The epoch pass forms them from the bool and the note's line it gathers anyway, so a fit holds
    1 byte a rating instead of float64 ``signed_weights`` (the low-diligence model's last rounds:
    reputation per rater, normalization per note). ``rater`` float64[U, 2] is (on a negative, on a
    positive); ``materialize`` gives the float64 weights they stand for, bit for bit."""

    positive: np.ndarray
    rater: np.ndarray
    note: np.ndarray
    divisor: float

    def materialize(self, lay: RatingLayout) -> np.ndarray:
        """float64[R] in ``lay``'s rater order: the weights ``K.epoch_nb`` forms, for passes that
        stream them (the note pass)."""
        out = np.empty(lay.n_ratings)
        K.factored_weights(
            lay.rater_indptr, lay.note, self.positive, self.rater, self.note, float(self.divisor), out
        )
        return out


SignedWeights = np.ndarray | ClassWeights | FactoredWeights
_NO_RATER_W = np.zeros((0, 2))


def _weight_args(sw: SignedWeights) -> tuple[np.ndarray, np.ndarray, float, float, np.ndarray, float]:
    """``K.epoch_nb``'s (positive, sw, w_pos, w_neg, rater_w, divisor) arguments for any form of
    weights (a ``FactoredWeights``' note term goes into the packed note rows: ``_packed``)."""
    if isinstance(sw, FactoredWeights):
        positive = np.asarray(sw.positive, dtype=np.bool_)
        rater_w = np.ascontiguousarray(sw.rater, dtype=np.float64)
        return positive, np.empty(0), 0.0, 0.0, rater_w, float(sw.divisor)
    if isinstance(sw, ClassWeights):
        positive = np.asarray(sw.positive, dtype=np.bool_)
        return positive, np.empty(0), float(sw.on_positive), float(sw.on_negative), _NO_RATER_W, 1.0
    return np.empty(0, dtype=np.bool_), np.asarray(sw, dtype=np.float64), 0.0, 0.0, _NO_RATER_W, 1.0


def _packed(lay: RatingLayout, sw: SignedWeights) -> np.ndarray:
    """The note rows ``K.epoch_nb`` gathers: the layout's [N, 2], or for ``FactoredWeights`` [N, 4]
    with the note term in column 2 (32 bytes a row: a gather still reads one cache line)."""
    if not isinstance(sw, FactoredWeights):
        return lay.packed
    # on a 64-byte boundary: a large array starts 16 bytes into its pages (malloc's header), and
    # then every other row straddles two lines, a second miss the prefetch does not cover
    # (single-threaded at 6M ratings, 300,000 notes: 30.4 ns a rating-epoch, 26.7 aligned)
    raw = np.zeros(lay.n_notes * 4 + 8)
    skip = (-raw.ctypes.data % 64) // 8
    rows = raw[skip : skip + lay.n_notes * 4].reshape(lay.n_notes, 4)
    rows[:, 2] = sw.note
    return rows


def compact(idx: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(sorted indices present, local index per rating) for ``idx`` in [0, size): what
    ``np.unique(idx, return_inverse=True)`` returns, by counting (O(R + size), no sort)."""
    present = np.flatnonzero(np.bincount(idx, minlength=size))
    local = np.zeros(size, dtype=np.int64)
    local[present] = np.arange(present.shape[0])
    return present, local[idx]


def _indptr(index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=n), out=out[1:])
    return out


def layout(note: np.ndarray, rater: np.ndarray, n_notes: int, n_raters: int) -> RatingLayout:
    """Group the ratings by rater (a stable counting sort, O(R)); once per rating set."""
    rater = np.asarray(rater, dtype=np.int64)
    indptr = _indptr(rater, n_raters)
    order = K.group_order(rater, indptr)
    # unsigned: no wraparound code in the gathers
    return grouped_layout(np.asarray(note, dtype=np.uint32)[order], indptr, n_notes, order)


def grouped_layout(
    note: np.ndarray, indptr: np.ndarray, n_notes: int, order: np.ndarray | None = None
) -> RatingLayout:
    """The layout of ratings already grouped by rater: ``note`` uint32[R] (local note of each,
    rater by rater), ``indptr`` int64[U+1] (each rater's slice). ``order``: the permutation from
    input order, when there is an input order (``signed_weights`` needs it); else empty."""
    sub_ptr, chunk_ptr = K.sub_blocks(indptr)
    n_raters = indptr.shape[0] - 1
    return RatingLayout(
        order=np.empty(0, dtype=np.int64) if order is None else order,
        note=note,
        rater_indptr=indptr,
        sub_ptr=sub_ptr,
        chunk_ptr=chunk_ptr,
        n_notes=int(n_notes),
        n_raters=int(n_raters),
        work=np.empty((K.CHUNKS, 3, K.scratch_width(indptr, sub_ptr))),
        packed=np.empty((n_notes, 2)),
        note_part=np.empty((K.CHUNKS, n_notes, 2)),
    )


def _check_targets(target: np.ndarray) -> None:
    if not np.isin(target, (0.0, 1.0)).all():
        raise ValueError("targets must be 0 or 1")


def gradient(
    note: np.ndarray,
    rater: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    p: LogisticMFParams,
    pen: Penalty,
) -> tuple[float, dict[str, np.ndarray]]:
    """The loss and its gradient per block (same shapes as the blocks); targets 0 or 1."""
    _check_targets(np.asarray(target, dtype=np.float64))
    lay = layout(note, rater, p.note_factor.shape[0], p.rater_factor.shape[0])
    grads = {b: np.empty_like(getattr(p, b)) for b in BLOCKS}
    loss = layout_gradient(lay, lay.signed_weights(target, weight), p, grads, want_loss=True)
    for b in BLOCKS:
        K.add_scaled(grads[b], 2.0 * getattr(pen, b), getattr(p, b))
    return loss + penalty_loss(p, pen), grads


def layout_gradient(
    lay: RatingLayout,
    sw: SignedWeights,
    p: LogisticMFParams,
    grads: dict[str, np.ndarray],
    *,
    want_loss: bool,
) -> float:
    """The data part of the gradient into ``grads`` (every block, preallocated); returns the data
    loss when ``want_loss`` (else 0.0: the loss adds a third to the pass, and most epochs skip it)."""
    packed = _packed(lay, sw)
    K.pack_notes(p.note_factor, p.note_intercept, packed)
    loss, dsum = K.epoch_nb(
        lay.rater_indptr, lay.sub_ptr, lay.chunk_ptr, lay.note, *_weight_args(sw), packed,
        p.rater_factor, p.rater_intercept, p.rater_reputation, float(p.global_intercept[0]), want_loss,
        lay.work, grads["rater_factor"], grads["rater_intercept"], grads["rater_reputation"], lay.note_part,
        np.empty(K.CHUNKS),
    )  # fmt: skip
    K.note_totals_nb(lay.note_part, grads["note_factor"], grads["note_intercept"])
    grads["global_intercept"][0] = dsum
    return loss


def penalty_loss(p: LogisticMFParams, pen: Penalty) -> float:
    """Σ_blocks c · Σ p² (summed in a fixed order)."""
    return sum(getattr(pen, b) * sum_squares(getattr(p, b)) for b in BLOCKS)


def _add_penalty(
    loss: float, grads: dict[str, np.ndarray], p: LogisticMFParams, pen: Penalty
) -> tuple[float, dict[str, np.ndarray]]:
    for b in BLOCKS:
        c = getattr(pen, b)
        value = getattr(p, b)
        loss += c * sum_squares(value)
        grads[b] = grads[b] + 2.0 * c * value
    return loss, grads


def fit_adam(
    note: np.ndarray,
    rater: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    init: LogisticMFParams,
    pen: Penalty,
    trainable: tuple[str, ...],
    settings: AdamSettings = AdamSettings(),
    *,
    prepared: RatingLayout | None = None,
) -> tuple[LogisticMFParams, float, int]:
    """Full-batch Adam on the ``trainable`` blocks, starting from ``init`` (not modified).

    Inputs per rating (length R): ``note``/``rater`` int indices, ``target`` 0/1, ``weight`` ≥ 0.
    ``prepared``: ``layout(note, rater, ...)`` when the caller fits the same ratings again.
    Returns (fitted params, final loss, epochs run). The loss is evaluated only on the epochs the
    stopping rule reads it (and the last one), which changes nothing else.
    """
    target = np.asarray(target, dtype=np.float64)
    _check_targets(target)
    n_notes, n_raters = init.note_factor.shape[0], init.rater_factor.shape[0]
    lay = prepared if prepared is not None else layout(note, rater, n_notes, n_raters)
    if lay.n_ratings != target.shape[0]:
        raise ValueError("prepared layout does not match the ratings or parameters")
    return fit_adam_signed(lay, lay.signed_weights(target, weight), init, pen, trainable, settings)


def fit_adam_signed(
    lay: RatingLayout,
    sw: SignedWeights,
    init: LogisticMFParams,
    pen: Penalty,
    trainable: tuple[str, ...],
    settings: AdamSettings = AdamSettings(),
    *,
    by_note: bool | None = None,
) -> tuple[LogisticMFParams, float, int]:
    """``fit_adam`` from a layout and its signed weights (``RatingLayout.signed_weights``, or
    ``ClassWeights`` where they are one constant per class), for callers that build both in rater
    order themselves (``diligence.fit_prescoring_kept``: no per-rating arrays in input order, no
    ``order``). ``by_note``: run the epochs on ratings regrouped by note (``logistic_notes``; the
    same parameters and epochs), which needs every trained block to be a note block; ``None``:
    whenever they all are and it is the faster pass (``logistic_notes.pays``)."""
    unknown = set(trainable) - set(BLOCKS)
    if unknown:
        raise ValueError(f"unknown parameter blocks: {sorted(unknown)}")
    p = init.copy()
    n_notes, n_raters = p.note_factor.shape[0], p.rater_factor.shape[0]
    positive, per_rating, w_pos, w_neg, rater_w, divisor = _weight_args(sw)
    n_weights = max(positive.shape[0], per_rating.shape[0])
    if (lay.n_ratings, lay.n_notes, lay.n_raters) != (n_weights, n_notes, n_raters):
        raise ValueError("prepared layout does not match the ratings or parameters")
    if isinstance(sw, FactoredWeights) and (sw.rater.shape != (n_raters, 2) or sw.note.shape != (n_notes,)):
        raise ValueError("factored weights do not match the layout's raters and notes")
    s = settings
    if s.stop not in ("periodic", "mf"):
        raise ValueError(f"unknown stopping rule {s.stop!r}")
    blocks = tuple(getattr(p, b) for b in BLOCKS)
    grads = tuple(np.empty_like(a) for a in blocks)
    train = np.array([b in trainable for b in BLOCKS])
    m = tuple(np.zeros_like(a) for a in blocks)
    v = tuple(np.zeros_like(a) for a in blocks)
    pen_c = np.array([float(getattr(pen, b)) for b in BLOCKS])
    clip = -1.0 if s.clip_norm is None else float(s.clip_norm)
    notes_only = bool(trainable) and set(trainable) <= {"note_factor", "note_intercept"}
    if by_note and not notes_only:
        raise ValueError("by_note needs only note blocks trained")
    if by_note is None:
        by_note = notes_only and LN.pays(lay.n_ratings, n_raters)
    with threads_for(lay.n_ratings):
        if by_note:
            if isinstance(sw, FactoredWeights):  # the note pass streams its weights (small fits only)
                positive, per_rating = np.empty(0, dtype=np.bool_), sw.materialize(lay)
                rater_w = _NO_RATER_W
            ln = LN.note_pass(
                lay.rater_indptr, lay.sub_ptr, lay.chunk_ptr, lay.note, n_notes, positive, per_rating,
                p.rater_factor, p.rater_reputation, p.rater_intercept,
            )  # fmt: skip
        else:
            ln = LN.no_note_pass()
        loss, epochs = _run_nb(
            lay.rater_indptr, lay.sub_ptr, lay.chunk_ptr, lay.note, positive, per_rating, w_pos, w_neg,
            rater_w, divisor, lay.work, _packed(lay, sw), lay.note_part, ln, numba.get_num_threads() == 1,
            blocks, grads, m, v, train, pen_c, s.stop == "periodic",
            int(s.max_epochs), float(s.tolerance), int(s.check_every), float(s.learning_rate), clip,
            float(s.beta1), float(s.beta2), float(s.eps),
        )  # fmt: skip
    return p, loss, epochs


@numba.njit(cache=True, nogil=True)
def _evaluate_nb(
    indptr, sub_ptr, chunk_ptr, note, positive, sw, w_pos, w_neg, rater_w, divisor, work, packed, part, ln,
    serial, blocks, grads, train, pen_c, frozen_pen, want,
):  # fmt: skip
    """One gradient (``layout_gradient``, or ``LN.note_epoch_nb`` when the note pass ``ln`` is not
    empty: then only the note gradients; ``serial``: on the calling thread) plus the penalty
    gradients of the trained blocks; the loss (data + ``penalty_loss``, blocks in ``BLOCKS``
    order, ``frozen_pen`` the frozen blocks' terms) when ``want``, else NaN."""
    nf, ni, rf, ri, rep, mu = blocks
    g_nf, g_ni, g_rf, g_ri, g_rep, g_mu = grads
    if ln[5].shape[1] > 0:
        if serial:
            data = LN.note_epoch_serial_nb(*ln, w_pos, w_neg, nf, ni, mu[0], want, g_nf, g_ni)
        else:
            data = LN.note_epoch_nb(*ln, w_pos, w_neg, nf, ni, mu[0], want, g_nf, g_ni)
    else:
        K.pack_notes(nf, ni, packed)
        data, dsum = K.epoch_nb(
            indptr, sub_ptr, chunk_ptr, note, positive, sw, w_pos, w_neg, rater_w, divisor, packed, rf, ri,
            rep, mu[0], want, work, g_rf, g_ri, g_rep, part, np.empty(K.CHUNKS),
        )  # fmt: skip
        K.note_totals_nb(part, g_nf, g_ni)
        g_mu[0] = dsum
    for b in range(len(blocks)):
        if train[b]:
            K.add_scaled(grads[b], 2.0 * pen_c[b], blocks[b])
    if not want:
        return np.nan
    reg = 0.0
    for b in range(len(blocks)):
        reg = reg + (pen_c[b] * sum_squares(blocks[b]) if train[b] else frozen_pen[b])
    return data + reg


@numba.njit(cache=True, nogil=True)
def _run_nb(indptr, sub_ptr, chunk_ptr, note, positive, sw, w_pos, w_neg, rater_w, divisor, work, packed,
            part, ln, serial, blocks, grads, m, v, train, pen_c, periodic, max_epochs, tolerance, check_every,
            lr, clip, b1, b2, eps):  # fmt: skip
    """``fit_adam``'s epoch loop in one jitted call (the Python loop it replaced, operation for
    operation: a test pins the bytes): the ``periodic`` or ``mf`` stopping rule of ``AdamSettings``;
    ``clip`` < 0: no gradient clipping. Updates the trained ``blocks`` in place; returns (loss,
    epochs). Bias corrections call libm's ``pow``, as CPython's float power does. ``ln``: the note
    pass (``logistic_notes``), or empty for the rater pass; ``serial``: the note pass's groups on
    the calling thread (one numba thread: no parallel region to start every epoch)."""
    frozen_pen = np.zeros(len(blocks))  # the frozen blocks' penalty terms, the same every epoch
    for b in range(len(blocks)):
        if not train[b]:
            frozen_pen[b] = pen_c[b] * sum_squares(blocks[b])
    ev = (indptr, sub_ptr, chunk_ptr, note, positive, sw, w_pos, w_neg, rater_w, divisor, work, packed, part,
          ln, serial)  # fmt: skip
    step = 0
    loss = np.nan
    epoch = 0
    if periodic:
        have_prior = False
        prior = 0.0
        while epoch <= max_epochs:
            check = tolerance > 0 and epoch % check_every == 0
            want = check or epoch == max_epochs
            loss = _evaluate_nb(*ev, blocks, grads, train, pen_c, frozen_pen, want)
            if check:
                if have_prior and abs(prior - loss) < tolerance:
                    break
                prior = loss
                have_prior = True
            step = _adam_step_nb(blocks, grads, m, v, train, step, lr, clip, b1, b2, eps)
            epoch += 1
        return loss, epoch
    prev = 1e10
    loss = _evaluate_nb(*ev, blocks, grads, train, pen_c, frozen_pen, True)
    rising = False
    while abs(loss - prev) > tolerance and not rising and epoch < max_epochs:
        prev = loss
        step = _adam_step_nb(blocks, grads, m, v, train, step, lr, clip, b1, b2, eps)
        loss = _evaluate_nb(*ev, blocks, grads, train, pen_c, frozen_pen, True)
        epoch += 1
        rising = epoch > 100 and loss > prev
    return loss, epoch


@numba.njit(cache=True, nogil=True)
def _adam_step_nb(blocks, grads, m, v, train, step, lr, clip, b1, b2, eps):
    """One Adam step on the trained blocks (clipping by their global norm when ``clip`` ≥ 0);
    returns the new step count."""
    step += 1
    scale = 1.0
    if clip >= 0:
        sq = 0.0
        for b in range(len(blocks)):
            if train[b]:
                sq = sq + sum_squares(grads[b])
        total = np.sqrt(sq)
        if total > clip:
            scale = clip / (total + 1e-6)
    lr_bc1 = lr / (1.0 - math.pow(b1, float(step)))
    sqrt_bc2 = np.sqrt(1.0 - math.pow(b2, float(step)))
    for b in range(len(blocks)):
        if train[b]:
            K.adam_nb(blocks[b], grads[b], m[b], v[b], scale, b1, b2, lr_bc1, sqrt_bc2, eps)
    return step


def with_blocks(p: LogisticMFParams, **blocks: np.ndarray) -> LogisticMFParams:
    """A copy of ``p`` with some blocks replaced (float64 copies)."""
    return replace(p.copy(), **{k: np.array(v, dtype=np.float64) for k, v in blocks.items()})

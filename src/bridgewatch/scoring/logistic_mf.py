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
gradient is a few numba passes over the ratings (the numpy twin ``gradient_np`` takes some fifteen
and dominated whole-pipeline time); sums run in a fixed order, so reruns are bit-identical for any
thread count.
Blocks can be frozen per call, which is how the multi-round fits of §3.5 are expressed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numba
import numpy as np

from bridgewatch.scoring.mf_kernels import sum_squares

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


_CHUNKS = 16  # fixed partial-sum count: the loss adds up the same way for any thread count


@numba.njit(cache=True, parallel=True)
def _residuals_nb(note, rater, target, weight, nf, ni, rf, ri, rep, mu, d):
    """d[j] ← the loss derivative of rating j; returns the mean weighted BCE and Σ d.

    Gathering the parameters and evaluating exp/log1p in separate loops runs three times faster
    than one fused loop (LLVM keeps the gather loop free of calls).
    """
    n_r = note.shape[0]
    r = max(n_r, 1)
    for j in numba.prange(n_r):
        d[j] = nf[note[j]] * rf[rater[j]] + ni[note[j]] * rep[rater[j]] + ri[rater[j]] + mu
    step = (n_r + _CHUNKS - 1) // _CHUNKS
    part = np.zeros(_CHUNKS)
    dpart = np.zeros(_CHUNKS)
    for c in numba.prange(_CHUNKS):
        s = 0.0
        t = 0.0
        for j in range(c * step, min(n_r, (c + 1) * step)):
            x = d[j]
            e = np.exp(-abs(x))
            s += weight[j] * ((max(x, 0.0) + np.log1p(e)) - target[j] * x)
            inv = 1.0 / (1.0 + e)
            sig = inv if x >= 0 else e * inv  # a select, not a branch: signs are random
            d[j] = weight[j] * (sig - target[j]) / r
            t += d[j]
        part[c] = s
        dpart[c] = t
    loss = 0.0
    dsum = 0.0
    for c in range(_CHUNKS):
        loss += part[c]
        dsum += dpart[c]
    return loss / r, dsum


@numba.njit(cache=True, parallel=True)
def _rater_side_nb(indptr, note, d, nf, ni, g_rf, g_ri, g_rep):
    """Rater blocks of the gradient; ratings grouped by rater (``indptr``), one thread per rater."""
    for u in numba.prange(indptr.shape[0] - 1):
        a = 0.0
        b = 0.0
        c = 0.0
        for j in range(indptr[u], indptr[u + 1]):
            a += d[j] * nf[note[j]]
            b += d[j]
            c += d[j] * ni[note[j]]
        g_rf[u] = a
        g_ri[u] = b
        g_rep[u] = c


@numba.njit(cache=True, parallel=True)
def _note_side_nb(note, rater, d, rf, rep, part):
    """Note blocks of the gradient as ``_CHUNKS`` partial sums over fixed slices of the ratings.

    The notes' accumulators stay in cache while the ratings stream by in rater order (a gather
    through a note-ordered permutation was five times slower); the caller adds the partials in
    chunk order, so the result does not depend on the thread count.
    """
    n_r = note.shape[0]
    step = (n_r + _CHUNKS - 1) // _CHUNKS
    for c in numba.prange(_CHUNKS):
        for j in range(c * step, min(n_r, (c + 1) * step)):
            part[c, note[j], 0] += d[j] * rf[rater[j]]
            part[c, note[j], 1] += d[j] * rep[rater[j]]


@dataclass(frozen=True, eq=False)
class RatingLayout:
    """Ratings ordered by rater, with scratch space for the per-epoch passes.

    Every gradient sum runs in parallel with a fixed order (rater rows; fixed rating slices for the
    notes), so results do not depend on the thread count. Built once per fit, reused every epoch.
    """

    note: np.ndarray
    rater: np.ndarray
    target: np.ndarray
    weight: np.ndarray
    rater_indptr: np.ndarray
    work: np.ndarray
    note_part: np.ndarray


def _indptr(index: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(index, minlength=n), out=out[1:])
    return out


def layout(
    note: np.ndarray, rater: np.ndarray, target: np.ndarray, weight: np.ndarray, n_notes: int, n_raters: int
) -> RatingLayout:
    """Sort the ratings by rater (stable); O(R log R), once per fit."""
    order = np.argsort(np.asarray(rater), kind="stable")
    note = np.asarray(note, dtype=np.int64)[order]
    rater = np.asarray(rater, dtype=np.int64)[order]
    return RatingLayout(
        note=note,
        rater=rater,
        target=np.asarray(target, dtype=np.float64)[order],
        weight=np.asarray(weight, dtype=np.float64)[order],
        rater_indptr=_indptr(rater, n_raters),
        work=np.empty(note.shape[0]),
        note_part=np.empty((_CHUNKS, n_notes, 2)),
    )


def gradient(
    note: np.ndarray,
    rater: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    p: LogisticMFParams,
    pen: Penalty,
) -> tuple[float, dict[str, np.ndarray]]:
    """The loss and its gradient per block (same shapes as the blocks)."""
    lay = layout(note, rater, target, weight, p.note_factor.shape[0], p.rater_factor.shape[0])
    return layout_gradient(lay, p, pen)


def layout_gradient(
    lay: RatingLayout, p: LogisticMFParams, pen: Penalty
) -> tuple[float, dict[str, np.ndarray]]:
    """``gradient`` over a prepared layout: three parallel passes, nothing of size R allocated."""
    n_raters = p.rater_factor.shape[0]
    grads = {b: np.empty(n_raters) for b in ("rater_factor", "rater_intercept", "rater_reputation")}
    d = lay.work
    loss, dsum = _residuals_nb(
        lay.note, lay.rater, lay.target, lay.weight,
        p.note_factor, p.note_intercept, p.rater_factor, p.rater_intercept, p.rater_reputation,
        float(p.global_intercept[0]), d,
    )  # fmt: skip
    _rater_side_nb(
        lay.rater_indptr, lay.note, d, p.note_factor, p.note_intercept,
        grads["rater_factor"], grads["rater_intercept"], grads["rater_reputation"],
    )  # fmt: skip
    lay.note_part.fill(0.0)
    _note_side_nb(lay.note, lay.rater, d, p.rater_factor, p.rater_reputation, lay.note_part)
    total = lay.note_part.sum(axis=0)
    grads["note_factor"], grads["note_intercept"] = total[:, 0].copy(), total[:, 1].copy()
    grads["global_intercept"] = np.array([dsum])
    return _add_penalty(loss, grads, p, pen)


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
) -> tuple[LogisticMFParams, float, int]:
    """Full-batch Adam on the ``trainable`` blocks, starting from ``init`` (not modified).

    Inputs per rating (length R): ``note``/``rater`` int indices, ``target`` 0/1, ``weight`` ≥ 0.
    Returns (fitted params, final loss, epochs run).
    """
    unknown = set(trainable) - set(BLOCKS)
    if unknown:
        raise ValueError(f"unknown parameter blocks: {sorted(unknown)}")
    p = init.copy()
    note = np.asarray(note, dtype=np.int64)
    rater = np.asarray(rater, dtype=np.int64)
    target = np.asarray(target, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    lay = layout(note, rater, target, weight, p.note_factor.shape[0], p.rater_factor.shape[0])
    s = settings
    m = {b: np.zeros_like(getattr(p, b)) for b in trainable}
    v = {b: np.zeros_like(getattr(p, b)) for b in trainable}
    step = 0

    def adam_step(grads: dict[str, np.ndarray]) -> None:
        nonlocal step
        step += 1
        if s.clip_norm is not None:
            total = np.sqrt(sum(sum_squares(grads[b]) for b in trainable))
            if total > s.clip_norm:
                scale = s.clip_norm / (total + 1e-6)
                grads = {b: grads[b] * scale for b in trainable}
        bc1 = 1.0 - s.beta1**step
        bc2 = 1.0 - s.beta2**step
        for b in trainable:
            g = grads[b]
            m[b] = s.beta1 * m[b] + (1.0 - s.beta1) * g
            v[b] = s.beta2 * v[b] + (1.0 - s.beta2) * g * g
            denom = np.sqrt(v[b]) / np.sqrt(bc2) + s.eps
            setattr(p, b, getattr(p, b) - (s.learning_rate / bc1) * m[b] / denom)

    if s.stop == "periodic":
        prior = None
        epoch = 0
        loss = float("nan")
        while epoch <= s.max_epochs:
            loss, grads = layout_gradient(lay, p, pen)
            if s.tolerance > 0 and epoch % s.check_every == 0:
                if prior is not None and abs(prior - loss) < s.tolerance:
                    break
                prior = loss
            adam_step(grads)
            epoch += 1
        return p, loss, epoch
    if s.stop == "mf":
        prev = 1e10
        loss, grads = layout_gradient(lay, p, pen)
        epoch = 0
        while abs(loss - prev) > s.tolerance and not (epoch > 100 and loss > prev) and epoch < s.max_epochs:
            prev = loss
            adam_step(grads)
            loss, grads = layout_gradient(lay, p, pen)
            epoch += 1
        return p, loss, epoch
    raise ValueError(f"unknown stopping rule {s.stop!r}")


def with_blocks(p: LogisticMFParams, **blocks: np.ndarray) -> LogisticMFParams:
    """A copy of ``p`` with some blocks replaced (float64 copies)."""
    return replace(p.copy(), **{k: np.array(v, dtype=np.float64) for k, v in blocks.items()})

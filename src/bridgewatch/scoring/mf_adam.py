"""The reference's own optimizer for the prescoring factorizations: full-batch Adam (§2.3).

The objective (``mf`` module docstring) has a nearly flat valley: adding c to every rater factor
and −c·f_n to every note intercept leaves the predictions unchanged, and only the weak penalties
pick a point in it. The reference never reaches that point: its Adam stops as soon as one epoch
lowers the loss by less than 1e-7, and where it stops along the valley moves note intercepts by a
few thousandths — enough to flip notes that sit at 0.40 in the provisional labels, and from there
which raters pass the helpfulness filter. Agreeing with the reference therefore means running its
optimizer, not a better one: same loss, same updates (Adam with default betas after global
gradient-norm clipping to 1.0), same learning rates, same starting points, same stopping rule.

All arithmetic is float64 with fixed summation order, so reruns are bit-identical.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np

from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf_adam_kernels import (
    AdamLayout,
    adam_layout,
    data_loss_and_grads,
    data_pass_nb,
    layout_arrays,
    layout_of,
    serial_when_small,
)
from bridgewatch.scoring.mf_kernels import sum_squares
from bridgewatch.scoring.rating_gather import kept_by_rater
from bridgewatch.scoring.threads import threads_for

if TYPE_CHECKING:
    from bridgewatch.scoring.mf import MFProblem

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8


@numba.njit(cache=True, nogil=True)
def _mean_penalty(x, g, lam, rows):
    """λ·Σx²/rows over a whole block (rows ≤ 0: its size, i.e. λ·mean(x²)); adds its gradient into
    ``g``. Returns the penalty. A positive ``rows`` is the reference's loss-ratio form (§2.2)."""
    flat_x, flat_g = x.ravel(), g.ravel()
    size = flat_x.shape[0]
    den = rows if rows > 0 else size
    s = 0.0
    for i in range(size):
        s += flat_x[i] * flat_x[i]
        flat_g[i] += 2.0 * lam * flat_x[i] / den
    return lam * s / den


@numba.njit(cache=True, nogil=True)
def _diamond_penalty(ni, nf, g_ni, g_nf, lam, rows):
    """λ_diamond·Σ|f_n·i_n| / rows (rows ≤ 0: mean over the N·k products); gradients use sign(0)
    = 0 like torch's abs. Returns the penalty."""
    n, k = nf.shape
    den = rows if rows > 0 else n * k
    s = 0.0
    for i in range(n):
        for f in range(k):
            prod = nf[i, f] * ni[i]
            s += abs(prod)
            sign = 1.0 if prod > 0 else (-1.0 if prod < 0 else 0.0)
            g_nf[i, f] += lam * sign * ni[i] / den
            g_ni[i] += lam * sign * nf[i, f] / den
    return lam * s / den


def penalty_weights(config: MFConfig) -> np.ndarray:
    """The penalties' λ as the loss kernels take them: (λ_fu, λ_iu, λ_fn, λ_in, λ_μ, λ_diamond)."""
    c = config
    return np.array(
        [
            c.user_factor_lambda,
            c.user_intercept_lambda,
            c.note_factor_lambda,
            c.note_intercept_lambda,
            c.global_intercept_lambda,
            c.diamond_lambda,
        ]
    )


def _loss_and_grads(lay, mu, ni, nf, ri, rf, lam, rows, use_mu, g_ni, g_nf, g_ri, g_rf):
    """Mean (weighted) squared error plus penalties; gradients into the ``g_*`` arrays.

    ``lay``: the fit's ratings grouped by rater, with their loss weights (§2.9) if any
    (``mf_adam_kernels.adam_layout``; the data part is one parallel pass summed in a fixed order);
    ``lam`` = (λ_fu, λ_iu, λ_fn, λ_in, λ_μ, λ_diamond); ``rows`` = (rater rows, note rows) dividing
    the penalties (≤ 0: mean over the block). Returns (loss, d loss / d μ).
    """
    data, g_mu = data_loss_and_grads(lay, mu, ni, nf, ri, rf, g_ni, g_nf, g_ri, g_rf)
    return _add_penalties(data, g_mu, mu, ni, nf, ri, rf, lam, rows, use_mu, g_ni, g_nf, g_ri, g_rf)


@numba.njit(cache=True, nogil=True)
def _add_penalties(data, g_mu, mu, ni, nf, ri, rf, lam, rows, use_mu, g_ni, g_nf, g_ri, g_rf):
    """The penalties' loss and gradients on top of the data part (``data``, ``g_mu``)."""
    reg = _mean_penalty(ri, g_ri, lam[1], rows[0])
    reg += _mean_penalty(rf, g_rf, lam[0], rows[0])
    reg += _mean_penalty(ni, g_ni, lam[3], rows[1])
    reg += _mean_penalty(nf, g_nf, lam[2], rows[1])
    if lam[5] > 0:
        reg += _diamond_penalty(ni, nf, g_ni, g_nf, lam[5], rows[1])
    lmu = lam[4]
    if use_mu:
        reg += lmu * mu * mu
        g_mu += 2.0 * lmu * mu
    else:
        g_mu = 0.0
    return data + reg, g_mu


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _adam_update(p, g, m, v, coef, lr_t, bc2_sqrt):
    """One Adam step on a flat view of a parameter block (gradient already known).

    ``error_model="numpy"`` drops the division's exception branch so the loop vectorizes (7x);
    sqrt and division are correctly rounded either way, so the bits do not change."""
    flat_p, flat_g, flat_m, flat_v = p.ravel(), g.ravel(), m.ravel(), v.ravel()
    for i in range(flat_p.shape[0]):
        gi = flat_g[i] * coef
        flat_m[i] = _BETA1 * flat_m[i] + (1.0 - _BETA1) * gi
        flat_v[i] = _BETA2 * flat_v[i] + (1.0 - _BETA2) * gi * gi
        flat_p[i] -= lr_t * flat_m[i] / (np.sqrt(flat_v[i]) / bc2_sqrt + _EPS)


@serial_when_small
def adam_fit(
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    start: tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    config: MFConfig,
    learning_rate: float,
    *,
    use_global_intercept: bool = True,
    weights: np.ndarray | None = None,
    note_rows: float | None = None,
) -> tuple[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray], int]:
    """Run the reference's ``_fit_model`` loop on compact arrays; returns the final parameters
    (μ, i_n, f_n, i_u, f_u — fresh arrays) and the number of epochs.

    ``weights``: float64[R] per-rating loss weights (the normalized loss, §2.9); ``note_rows``: the
    simulated number of notes of the loss-ratio form (R/ρ_n, §2.2) dividing the note penalties
    (None: their mean over the fit's notes; final scoring's note refit with raters and μ frozen is
    ``mf_adam_notes.fit_notes``). The loop stops when an epoch changes the loss by ≤
    ``config.adam_convergence``, or after epoch 100 when the loss went up, or (a safeguard the
    reference lacks) after ``config.adam_max_epochs``.
    """
    if np.shape(value)[0] == 0:  # nothing to fit (e.g. an incremental run rescoring no note)
        return _empty(start, use_global_intercept)
    k = np.shape(start[2])[1]
    lay = adam_layout(note, rater, value, np.shape(start[1])[0], np.shape(start[3])[0], k, weights)
    return _run(lay, start, config, learning_rate, use_global_intercept, note_rows)


def adam_fit_problem(
    problem: MFProblem,
    start: tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    config: MFConfig,
    learning_rate: float,
    *,
    use_global_intercept: bool = True,
) -> tuple[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray], int]:
    """``adam_fit(problem.note, problem.rater, problem.value, ...)`` without those arrays: the
    layout is read from the problem's matrix (``rating_gather.kept_by_rater``), its values kept in
    the matrix's float32, so a fit holds 8 bytes a rating (note, value in rater order) instead of
    the problem's 24 and the layout's 12. The same numbers in the same order: the same bits."""
    if problem.n_ratings == 0:
        return _empty(start, use_global_intercept)
    with threads_for(problem.n_ratings):
        note, value = kept_by_rater(
            problem.matrix, problem.kept, problem.note_full, problem.rater_full, problem.rater_indptr
        )
        k = np.shape(start[2])[1]
        lay = layout_of(problem.rater_indptr, note, value, np.zeros(0), problem.n_notes, k)
        del note, value
        return _run(lay, start, config, learning_rate, use_global_intercept, None)


def _empty(start, use_global_intercept: bool):
    """``adam_fit``'s answer for no ratings: the start, copied."""
    mu0, ni0, nf0, ri0, rf0 = start
    copies = [np.array(a, dtype=np.float64) for a in (ni0, nf0, ri0, rf0)]
    return (float(mu0) if use_global_intercept else 0.0, *copies), 0


def _run(lay: AdamLayout, start, config: MFConfig, learning_rate: float, use_global_intercept: bool,
         note_rows: float | None):  # fmt: skip
    """The epoch loop of ``adam_fit`` on a built layout."""
    mu0, ni0, nf0, ri0, rf0 = start
    mu = np.array([float(mu0) if use_global_intercept else 0.0])
    blocks = [np.array(ni0, dtype=np.float64), np.array(nf0, dtype=np.float64)]
    blocks += [np.array(ri0, dtype=np.float64), np.array(rf0, dtype=np.float64)]
    ni, nf, ri, rf = blocks
    grads = [np.zeros_like(b) for b in blocks]
    g_mu = np.zeros(1)
    first = [np.zeros_like(b) for b in blocks] + [np.zeros(1)]
    second = [np.zeros_like(b) for b in blocks] + [np.zeros(1)]
    lam = penalty_weights(config)
    rows = np.array([0.0, 0.0 if note_rows is None else float(note_rows)])
    epoch = _epochs(
        layout_arrays(lay), mu, ni, nf, ri, rf, g_mu, *grads, *first, *second, lam, rows,
        use_global_intercept, float(learning_rate), float(config.adam_convergence),
        float(config.adam_clip_norm), int(config.adam_max_epochs),
    )  # fmt: skip
    return (float(mu[0]), ni, nf, ri, rf), epoch


@numba.njit(cache=True, nogil=True)
def _evaluate(lay, mu, ni, nf, ri, rf, g_mu, g_ni, g_nf, g_ri, g_rf, lam, rows, use_mu):
    """``_loss_and_grads`` on the layout's arrays (``layout_arrays``); the μ gradient into
    ``g_mu[0]``. Returns the loss."""
    data, gm = data_pass_nb(lay, mu[0], ni, nf, ri, rf, g_ni, g_nf, g_ri, g_rf)
    loss, gm = _add_penalties(data, gm, mu[0], ni, nf, ri, rf, lam, rows, use_mu, g_ni, g_nf, g_ri, g_rf)
    g_mu[0] = gm
    return loss


@numba.njit(cache=True, nogil=True)
def _epochs(ev, mu, ni, nf, ri, rf, g_mu, g_ni, g_nf, g_ri, g_rf, m_ni, m_nf, m_ri, m_rf, m_mu, v_ni,
            v_nf, v_ri, v_rf, v_mu, lam, rows, use_mu, learning_rate, convergence, clip_norm,
            max_epochs):  # fmt: skip
    """The reference's epoch loop (``adam_fit``) in one jitted call; updates the parameter blocks
    in place and returns the number of epochs.

    Operation for operation the Python loop it replaced (the bits are pinned by a test): the
    gradient norm adds the blocks' squares in order (ni, nf, ri, rf, μ), ``min(1, x)`` keeps
    Python's tie and NaN behaviour (1 unless x < 1), and the bias corrections call libm's ``pow``
    as CPython's float power does."""
    prev = 1e10
    loss = _evaluate(ev, mu, ni, nf, ri, rf, g_mu, g_ni, g_nf, g_ri, g_rf, lam, rows, use_mu)
    epoch = 0
    while abs(loss - prev) > convergence and not (epoch > 100 and loss > prev):
        if epoch >= max_epochs:
            break
        prev = loss
        sq = sum_squares(g_ni.ravel()) + sum_squares(g_nf.ravel())
        sq = sq + sum_squares(g_ri.ravel())
        sq = sq + sum_squares(g_rf.ravel())
        total = np.sqrt(sq + g_mu[0] * g_mu[0])
        ratio = clip_norm / (total + 1e-6)
        coef = ratio if ratio < 1.0 else 1.0
        t = float(epoch + 1)
        lr_t = learning_rate / (1.0 - math.pow(_BETA1, t))
        bc2_sqrt = np.sqrt(1.0 - math.pow(_BETA2, t))
        _adam_update(ni, g_ni, m_ni, v_ni, coef, lr_t, bc2_sqrt)
        _adam_update(nf, g_nf, m_nf, v_nf, coef, lr_t, bc2_sqrt)
        _adam_update(ri, g_ri, m_ri, v_ri, coef, lr_t, bc2_sqrt)
        _adam_update(rf, g_rf, m_rf, v_rf, coef, lr_t, bc2_sqrt)
        if use_mu:
            _adam_update(mu, g_mu, m_mu, v_mu, coef, lr_t, bc2_sqrt)
        loss = _evaluate(ev, mu, ni, nf, ri, rf, g_mu, g_ni, g_nf, g_ri, g_rf, lam, rows, use_mu)
        epoch += 1
    return epoch

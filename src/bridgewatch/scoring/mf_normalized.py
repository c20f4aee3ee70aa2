"""The normalized-loss variant of the factorization (§2.9, "expanded consensus", group 14).

A fit with ``MFConfig.normalized_loss`` runs twice, as the reference's ``run_mf`` does: a plain fit
whose (sign-identified) rater factors set per-rating weights, then a fresh model fitted with the
weighted loss ``mean(w·err²)``. The fresh model re-draws its note factors (note intercepts and μ
start at 0) and takes raters from the fit's rater start when one was given, else re-draws them —
so a cold round 1 restarts from exactly its first start. Its learning rate is the no-init one,
since no note start is passed.

Final scoring of such a scorer inherits a quirk of the reference: the fresh model is built after
the rater and global parameters of the first model were frozen, so nothing of it is frozen. Its
final fit retrains raters and μ (from prescoring's raters and μ = 0) together with re-drawn notes,
the note penalties in the loss-ratio form; those retrained raters are what its filters see.
"""

from __future__ import annotations

import numpy as np

from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf_adam import adam_fit
from bridgewatch.scoring.torch_init import TorchInit


def normalized_weights(rater: np.ndarray, rater_factor: np.ndarray, config: MFConfig) -> np.ndarray:
    """float64[R] loss weights of ``NormalizedLoss`` for ratings by ``rater`` (int[R], compact)
    given each rater's factor (float[U]): ratings of positive-factor raters scaled by
    (#ratings with factor ≤ 0)/(#ratings with factor > 0) and all rescaled to keep the total
    (``norm_global_sign``), then × (note's total weight)^``norm_note_exp`` and × (rater's total
    weight)^``norm_rater_exp`` (0 = off)."""
    rater = np.asarray(rater, dtype=np.int64)
    n = rater.shape[0]
    w = np.ones(n)
    if config.norm_global_sign and n:
        pos = np.asarray(rater_factor, dtype=np.float64)[rater] > 0
        n_pos = int(pos.sum())
        if 0 < n_pos < n:
            total = w.sum()
            w[pos] *= (n - n_pos) / n_pos
            w *= total / w.sum()
    return w


def scale_by_totals(w: np.ndarray, index: np.ndarray, exponent: float) -> np.ndarray:
    """``w`` × (total weight of each rating's row in ``index``)^``exponent`` (0: unchanged)."""
    if not exponent:
        return w
    totals = np.bincount(index, weights=w)
    return w * totals[index] ** exponent


def weights_for(note: np.ndarray, rater: np.ndarray, rater_factor: np.ndarray, config: MFConfig):
    """The full weight pipeline (global sign, then note, then rater normalization)."""
    w = normalized_weights(rater, rater_factor, config)
    w = scale_by_totals(w, np.asarray(note, dtype=np.int64), config.norm_note_exp)
    return scale_by_totals(w, np.asarray(rater, dtype=np.int64), config.norm_rater_exp)


def fresh_start(problem, config: MFConfig, seed, rater_start, torch_init: TorchInit | None):
    """(μ, i_n, f_n, i_u, f_u) of the re-created model: zero intercepts and μ, re-drawn note
    factors, raters from ``rater_start`` ((i_u, f_u) or None: re-drawn too)."""
    from bridgewatch.scoring.mf import initial_params  # mf builds on this module

    _, ni, nf, ri, rf = initial_params(problem, config.num_factors, seed, None, torch_init)
    if rater_start is not None:
        ri, rf = rater_start
    return 0.0, np.zeros_like(ni), nf, np.array(ri, dtype=np.float64), np.array(rf, dtype=np.float64)


def normalized_refit(problem, config: MFConfig, seed, rater_start, rater_factor, torch_init, *,
                     use_global_intercept: bool = True, note_rows: float | None = None):  # fmt: skip
    """The weighted second fit: weights from ``rater_factor`` (float[U], compact), start from
    ``fresh_start``. Returns ((μ, i_n, f_n, i_u, f_u), epochs)."""
    w = weights_for(problem.note, problem.rater, rater_factor, config)
    start = fresh_start(problem, config, seed, rater_start, torch_init)
    return adam_fit(
        problem.note, problem.rater, problem.value, start, config, config.adam_no_init_learning_rate,
        use_global_intercept=use_global_intercept, weights=w, note_rows=note_rows,
    )  # fmt: skip


def normalized_final_fit(problem, params, rho_note: float, config: MFConfig, seed, torch_init):
    """Final scoring of a normalized-loss scorer (the quirk in the module docstring): weights from
    prescoring's rater factors, raters starting from prescoring (``params``: full-space
    ``MFParams``) and trained with μ and re-drawn notes, note penalties over R/ρ_n simulated
    notes. Returns compact (μ, i_n, f_n, i_u, f_u); no sign flip (final fits keep the sign)."""
    ri = np.nan_to_num(params.rater_intercept[problem.rater_full], nan=0.0)
    rf = np.nan_to_num(params.rater_factor[problem.rater_full], nan=0.0)
    note_rows = problem.n_ratings / max(float(rho_note), 1e-12)
    fit, _ = normalized_refit(problem, config, seed, (ri, rf), rf[:, 0], torch_init, note_rows=note_rows)
    return fit

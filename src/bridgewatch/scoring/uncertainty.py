"""Pseudo-rater uncertainty bounds on note intercepts (§5).

The reference adds, to every note, one HELPFUL rating from an extreme pseudo-rater (intercept =
the lowest real rater intercept, factor ∈ {min, 0, max} of real factors) and refits note
parameters with raters and μ frozen — four fits in all with the unchanged data. That refit is a
fresh model without the loss-ratio option, i.e. plain mean regularization: in sum form the note
penalty is λ·R'/N, where R' counts the ratings of that dataset (R, or R + N with the pseudo
ratings) and N the notes. Per note the min/max over the four fits are the interval
(``coreNoteInterceptMin/Max``); UcbCRNH reads the max.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf import MFProblem
from bridgewatch.scoring.note_solve import normal_equations, solve_normal


@dataclass(frozen=True, eq=False)
class InterceptBounds:
    """Full-space float64[N_full] arrays (NaN outside the fit): min/max/median of the intercept over
    the four refits, the refit on the original ratings, and min/max of the first factor."""

    intercept_min: np.ndarray
    intercept_max: np.ndarray
    intercept_median: np.ndarray
    intercept_refit: np.ndarray
    factor_min: np.ndarray
    factor_max: np.ndarray


def pseudo_rater_bounds(
    problem: MFProblem, rater_intercept: np.ndarray, rater_factor: np.ndarray, mu: float, config: MFConfig
) -> InterceptBounds:
    """Refit every note of ``problem`` four times (§5) and return per-note bounds.

    ``rater_intercept``: float[U_full], ``rater_factor``: float[U_full, k] (frozen; only the first
    factor gets extreme values, others are 0 for the pseudo-raters).
    """
    rf_full = np.asarray(rater_factor, dtype=np.float64).reshape(problem.n_raters_full, -1)
    ri_fit = np.asarray(rater_intercept, dtype=np.float64)[problem.rater_full]
    rf_fit = rf_full[problem.rater_full]
    k = rf_fit.shape[1]
    a, b = normal_equations(problem, rater_intercept, rf_full, mu)
    n, r = problem.n_notes, problem.n_ratings
    fits = []
    rho = r / max(n, 1)
    fits.append(solve_normal(a, b, config.note_intercept_lambda * rho, config.note_factor_lambda * rho))
    rho_p = (r + n) / max(n, 1)
    p_int = float(ri_fit.min()) if ri_fit.size else 0.0
    factors = (float(rf_fit[:, 0].min()), 0.0, float(rf_fit[:, 0].max())) if rf_fit.size else (0.0, 0.0, 0.0)
    for f in factors:
        x = np.zeros(k + 1)
        x[0] = 1.0
        x[1] = f
        t = 1.0 - mu - p_int
        fits.append(
            solve_normal(
                a + np.outer(x, x)[None],
                b + (x * t)[None],
                config.note_intercept_lambda * rho_p,
                config.note_factor_lambda * rho_p,
            )
        )
    ints = np.stack([s[:, 0] for s in fits], axis=1)
    facs = np.stack([s[:, 1] for s in fits], axis=1)

    def full(values: np.ndarray) -> np.ndarray:
        out = np.full(problem.n_notes_full, np.nan)
        out[problem.note_full] = values
        return out

    return InterceptBounds(
        intercept_min=full(ints.min(axis=1)),
        intercept_max=full(ints.max(axis=1)),
        intercept_median=full(np.median(ints, axis=1)),
        intercept_refit=full(ints[:, 0]),
        factor_min=full(facs.min(axis=1)),
        factor_max=full(facs.max(axis=1)),
    )

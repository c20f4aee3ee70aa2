"""Pseudo-rater uncertainty bounds on note intercepts (§5).

The reference adds, to every note, one HELPFUL rating from an extreme pseudo-rater (intercept =
the lowest real rater intercept, factor ∈ {min, 0, max} of real factors) and refits note
parameters with raters and μ frozen — four fits in all with the unchanged data. That refit is a
fresh model without the loss-ratio option, i.e. plain mean regularization: in sum form the note
penalty is λ·R'/N, where R' counts the ratings of that dataset (R, or R + N with the pseudo
ratings) and N the notes. Per note the min/max over the four fits are the interval
(``coreNoteInterceptMin/Max``); UcbCRNH reads the max. With ``MFConfig.adam_final_fits`` each
refit replays the reference's Adam from the final note parameters (``note_solve.adam_notes``),
which stops short of the optimum as the reference's does; else they are solved exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf import MFProblem
from bridgewatch.scoring.mf_adam_notes import fit_ratings
from bridgewatch.scoring.note_solve import adam_notes, normal_equations, solve_normal


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
    problem: MFProblem,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    mu: float,
    config: MFConfig,
    start: tuple[np.ndarray, np.ndarray] | None = None,
    *,
    reference: MFProblem | None = None,
) -> InterceptBounds:
    """Refit every note of ``problem`` four times (§5) and return per-note bounds.

    ``rater_intercept``: float[U_full], ``rater_factor``: float[U_full, k] (frozen; only the first
    factor gets extreme values, others are 0 for the pseudo-raters); ``start``: the final fit's
    note intercepts float[N_full] and factors float[N_full, k], where Adam refits begin.
    ``reference``: the whole final-round problem when ``problem`` holds only some of its notes
    (partial rescoring): the pseudo-raters' extreme values and the penalties' ratings per note
    are that problem's, as a run over all of it would use.
    """
    rf_full = np.asarray(rater_factor, dtype=np.float64).reshape(problem.n_raters_full, -1)
    ref = problem if reference is None else reference
    ri_ref = np.asarray(rater_intercept, dtype=np.float64)[ref.rater_full]
    rf_ref = rf_full[ref.rater_full]
    p_int = float(ri_ref.min()) if ri_ref.size else 0.0
    factors = (float(rf_ref[:, 0].min()), 0.0, float(rf_ref[:, 0].max())) if rf_ref.size else (0.0, 0.0, 0.0)
    density = None if reference is None else reference.n_ratings / max(reference.n_notes, 1)
    if config.adam_final_fits:
        ri_full = np.ascontiguousarray(rater_intercept, dtype=np.float64)
        fits = _adam_refits(problem, ri_full, rf_full, mu, config, start, p_int, factors, density)
    else:
        fits = _exact_refits(problem, rater_intercept, rf_full, mu, config, p_int, factors, density)
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


def _adam_refits(problem, ri_full, rf_full, mu, config, start, p_int, factors, density=None) -> list:
    """The four Adam refits as float[N, 1 + k] (intercept, factors) each, in the reference's
    order: the original ratings, then one helpful pseudo-rating per note for each factor (read
    through the selection, the pseudo-rating after each note's own: no rating copied).
    ``density``: ratings per note of the whole problem when ``problem`` is part of it (the mean
    penalties then divide by the notes that many ratings would make); None: ``problem``'s own."""
    n, k = problem.n_notes, rf_full.shape[1]
    rows, rows_p = n, n
    if density is not None:
        rows, rows_p = problem.n_ratings / max(density, 1e-12), (problem.n_ratings + n) / (density + 1.0)
    if start is None:
        s = (np.zeros(n), np.zeros((n, k)))
    else:
        ni = np.nan_to_num(np.asarray(start[0], dtype=np.float64)[problem.note_full], nan=0.0)
        nf = np.asarray(start[1], dtype=np.float64).reshape(problem.n_notes_full, -1)[problem.note_full]
        s = (ni, np.nan_to_num(nf, nan=0.0))
    ratings = fit_ratings(problem)  # laid out once for the four fits
    out = [np.column_stack(adam_notes(problem, ri_full, rf_full, mu, s, rows, config, ratings=ratings))]
    for f in factors:
        extra = np.zeros(k)
        extra[0] = f
        pseudo = (p_int, extra)
        fit = adam_notes(problem, ri_full, rf_full, mu, s, rows_p, config, pseudo=pseudo, ratings=ratings)
        out.append(np.column_stack(fit))
    return out


def _exact_refits(problem, rater_intercept, rf_full, mu, config, p_int, factors, density=None):
    """The four refits solved exactly (normal equations plus the pseudo-rating's outer product),
    float[N, 1 + k] each; ``density`` as in ``_adam_refits``."""
    k = rf_full.shape[1]
    a, b = normal_equations(problem, rater_intercept, rf_full, mu)
    n, r = problem.n_notes, problem.n_ratings
    fits = []
    rho = r / max(n, 1) if density is None else density
    fits.append(solve_normal(a, b, config.note_intercept_lambda * rho, config.note_factor_lambda * rho))
    rho_p = (r + n) / max(n, 1) if density is None else density + 1.0
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
    return fits

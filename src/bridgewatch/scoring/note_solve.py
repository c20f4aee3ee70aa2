"""Final scoring of notes with frozen rater parameters (§2.8).

With raters and μ frozen, the reference's note-only refit decouples per note into the ridge
regression of ``r − μ − i_u`` on ``[1, f_u]`` with sum-form penalties ``λ_in·ρ_n`` (intercept) and
``λ_fn·ρ_n`` (each factor), ρ_n = finalRoundNumRatings / finalRoundNumNotes from prescoring. The
live scorer calls ``score_note`` on one note's ratings, a closed-form solve.

The reference reaches that optimum with Adam from prescoring's note parameters and stops about
1e-3 short of it (its 1e-7 loss-change rule), which moves notes sitting on a threshold (0.30,
0.40). So batch scoring replays that fit (``adam_notes``) by default; with ``MFConfig.solver =
"als"`` or ``final_solver = "exact"`` (the fast profile) ``score_notes`` solves exactly through the
solver's row kernel, one pass over each note's ratings instead of an epoch per Adam step.
"""

from __future__ import annotations

import numpy as np

from bridgewatch.scoring import mf_kernels as K
from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf import MFProblem
from bridgewatch.scoring.mf_adam_notes import fit_problem_notes
from bridgewatch.scoring.sweeps import LocalEngine, SweepEngine, in_process


def score_note(
    ratings_values: np.ndarray,
    rater_intercepts: np.ndarray,
    rater_factors: np.ndarray,
    mu: float,
    rho_n: float,
    config: MFConfig,
) -> tuple[float, np.ndarray]:
    """(intercept, factor[k]) of one note from its ratings.

    ``ratings_values``: float[m] helpfulness of the note's m ratings; ``rater_intercepts``: float[m]
    and ``rater_factors``: float[m] or float[m, k], the frozen parameters of each rating's rater.
    With no ratings the answer is (0, zeros): the ridge optimum of an empty note.
    """
    y = np.asarray(ratings_values, dtype=np.float64)
    f = np.asarray(rater_factors, dtype=np.float64).reshape(y.shape[0], -1)
    k = f.shape[1] if f.size else config.num_factors
    x = np.concatenate([np.ones((y.shape[0], 1)), f.reshape(y.shape[0], k)], axis=1)
    t = y - mu - np.asarray(rater_intercepts, dtype=np.float64)
    a = x.T @ x
    a[0, 0] += config.note_intercept_lambda * rho_n
    a[np.arange(1, k + 1), np.arange(1, k + 1)] += config.note_factor_lambda * rho_n
    sol = np.linalg.solve(a, x.T @ t)
    return float(sol[0]), sol[1:]


def score_notes(
    problem: MFProblem,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    mu: float,
    rho_n: float,
    config: MFConfig,
    kernels: str = "numba",
    engine: SweepEngine | None = None,
    init: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized ``score_note`` over every note of ``problem`` (one note half-sweep of ``engine``),
    or with ``config.adam_final_fits`` the reference's Adam note refit from ``init`` (full-space
    note intercepts float[N_full] and factors float[N_full, k]; NaN or None → 0).

    ``rater_intercept``: float[U_full], ``rater_factor``: float[U_full, k] frozen parameters in the
    full rater space (every rater of the problem must have finite values). Returns full-space
    ``(intercept float64[N_full], factor float64[N_full, k])``, NaN for notes outside the problem.
    """
    ri_full, rf_full = _full_raters(problem, rater_intercept, rater_factor)
    k = rf_full.shape[1]
    if config.adam_final_fits:
        rows = problem.n_ratings / max(float(rho_n), 1e-12)
        ni, nf = adam_notes(problem, ri_full, rf_full, mu, _start(problem, k, init), rows, config)
        return _full(problem, ni, nf)
    pen_int, pen_fac = config.note_intercept_lambda * rho_n, config.note_factor_lambda * rho_n
    engine = LocalEngine(kernels) if engine is None else engine
    if in_process(engine):  # read through the selection: no per-rating copies
        ni, nf = np.zeros(problem.n_notes), np.zeros((problem.n_notes, k))
        m = problem.matrix
        K.solve_notes_kept_nb(m.note_indptr, problem.note_full, problem.kept, m.rater, m.value, float(mu),
                              ri_full, rf_full, pen_int, pen_fac, ni, nf)  # fmt: skip
        return _full(problem, ni, nf)
    sweeps = engine.bind(problem)
    try:
        ni, nf = sweeps.solve_notes(
            float(mu), ri_full[problem.rater_full], rf_full[problem.rater_full], pen_int, pen_fac
        )
    finally:
        sweeps.close()
    return _full(problem, ni, nf)


def _full_raters(problem: MFProblem, rater_intercept, rater_factor) -> tuple[np.ndarray, np.ndarray]:
    """Full-space rater parameters as contiguous float64 (U_full) and (U_full, k) arrays."""
    ri = np.ascontiguousarray(rater_intercept, dtype=np.float64)
    rf = np.ascontiguousarray(np.asarray(rater_factor, dtype=np.float64).reshape(problem.n_raters_full, -1))
    return ri, rf


def adam_notes(problem: MFProblem, ri_full, rf_full, mu, start, note_rows, config: MFConfig, pseudo=None,
               ratings=None):  # fmt: skip
    """The reference's frozen-rater note refit of ``problem``: Adam at ``adam_init_learning_rate``
    from ``start`` = (i_n float[N], f_n float[N, k]) in its note space, note penalties over
    ``note_rows`` simulated notes (R/ρ_n; the number of notes for plain mean regularization);
    ``pseudo``: (i_u, f_u) of a rater adding one helpful rating to every note (§5); ``ratings``:
    ``mf_adam_notes.fit_ratings(problem)`` when the caller has it. Read through the selection
    (``mf_adam_notes.fit_problem_notes``). Returns (i_n, f_n)."""
    ni, nf, _ = fit_problem_notes(
        problem, float(mu), start, ri_full, rf_full, config, config.adam_init_learning_rate,
        note_rows=note_rows, pseudo=pseudo, ratings=ratings,
    )  # fmt: skip
    return ni, nf


def _start(problem: MFProblem, k: int, init) -> tuple[np.ndarray, np.ndarray]:
    if init is None:
        return np.zeros(problem.n_notes), np.zeros((problem.n_notes, k))
    ni = np.nan_to_num(np.asarray(init[0], dtype=np.float64)[problem.note_full], nan=0.0)
    nf = np.asarray(init[1], dtype=np.float64).reshape(problem.n_notes_full, -1)[problem.note_full]
    return ni, np.nan_to_num(nf, nan=0.0)


def _full(problem: MFProblem, ni: np.ndarray, nf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k = nf.shape[1]
    out_i = np.full(problem.n_notes_full, np.nan)
    out_f = np.full((problem.n_notes_full, k), np.nan)
    out_i[problem.note_full] = ni
    out_f[problem.note_full] = nf
    return out_i, out_f


def normal_equations(
    problem: MFProblem, rater_intercept: np.ndarray, rater_factor: np.ndarray, mu: float
) -> tuple[np.ndarray, np.ndarray]:
    """Per-note sufficient statistics (A float[N, d, d], b float[N, d]), d = k + 1, without penalty.

    Pseudo-rater refits (§5) add one rating to every note; adding its outer product to A is
    cheaper than rebuilding the problem. Read from the matrix through the fit's selection
    (``mf_kernels.normal_equations_kept_nb``): no per-rating array, where the vectorized form
    held ~48 bytes a fitted rating (~7 GB for a Core final fit of ~150M ratings at X's scale,
    from the dtypes).
    """
    ri, rf = _full_raters(problem, rater_intercept, rater_factor)
    n, d = problem.n_notes, rf.shape[1] + 1
    a = np.zeros((n, d, d))
    b = np.zeros((n, d))
    m = problem.matrix
    K.normal_equations_kept_nb(m.note_indptr, problem.note_full, problem.kept, m.rater, m.value, float(mu),
                               ri, rf, a, b)  # fmt: skip
    return a, b


def solve_normal(a: np.ndarray, b: np.ndarray, pen_int: float, pen_fac: float) -> np.ndarray:
    """Batched ridge solve: (A + diag(pen_int, pen_fac, ...))⁻¹ b → float[N, d]."""
    a = a.copy()
    a[:, 0, 0] += pen_int
    for f in range(1, a.shape[1]):
        a[:, f, f] += pen_fac
    return np.linalg.solve(a, b[:, :, None])[:, :, 0]

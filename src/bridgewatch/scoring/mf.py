"""The biased matrix factorization r̂ = μ + i_u + i_n + f_u·f_n and its two solvers.

The objective is the reference's *as implemented* (``reference-algorithm.md`` §2.2): mean squared
error over ratings plus λ·mean-over-rows penalties, which in sum form is

    J = Σ (r − r̂)² + λ_iu·ρ_u·Σ i_u² + λ_fu·ρ_u·Σ f_u² + λ_in·ρ_n·Σ i_n² + λ_fn·ρ_n·Σ f_n² + λ_μ·R·μ²

with ρ_u = R/U and ρ_n = R/N (ratings per rater / per note of this fit) unless a loss ratio is given.
The reference minimizes the mean form with full-batch Adam and stops early in a nearly flat valley
of this function; prescoring fits replay that optimizer (``mf_adam``, ``MFConfig.solver="adam"``)
because where it stops decides notes at the thresholds. ``solver="als"`` minimizes the same function
exactly by alternating closed-form ridge solves (all notes given raters, all raters given notes, μ
given both); fits with frozen raters (final scoring) are exact either way, as Adam converges on
those convex problems. Parameters live in the *full* index space
of a ``RatingMatrix`` (NaN for notes/raters not in the fit), so fits on different subsets of one
dataset can warm-start each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numba
import numpy as np

from bridgewatch.io.matrix import RatingMatrix, index_dtype
from bridgewatch.scoring import mf_kernels as K
from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.rating_gather import compact_problem, problem_shape
from bridgewatch.scoring.sweeps import LocalEngine, SweepEngine, in_process
from bridgewatch.scoring.threads import SERIAL_BELOW
from bridgewatch.scoring.torch_init import TorchInit, table_orders, torch_factors


@dataclass(frozen=True, eq=False)
class MFProblem:
    """One fit's ratings: the ``keep`` selection of a matrix, in compact CSR form (only the notes
    and raters with ratings in the fit).

    Shapes: R ratings, N notes and U raters present in the fit; ``n_notes_full``/``n_raters_full``
    are the sizes of the dataset's id spaces. Held: ``matrix``, ``kept`` (the selection as bits,
    ``np.packbits`` of bool[R_full]: a copy at 1/8 byte a rating, so the caller may reuse its mask),
    ``note_indptr``: int64[N+1], ``rater_indptr``: int64[U+1] (over the rater order),
    ``note_full``: int64[N], ``rater_full``: int64[U], compact → full index.

    The per-rating arrays are made from the matrix on first use and then kept (``rating_arrays``):

    - ``note``/``rater``: int32[R] compact indices, ratings ordered by (note, rater);
    - ``value``: float64[R]; ``identity``: arange(R) (only the ALS note sweep reads it);
    - ``by_rater``: positions ordered by (rater, note); ``rating_full``: position of each rating in
      the source matrix. Positions are ``matrix.index_dtype``: int32 below 2**31 ratings.

    The Adam fits of prescoring never make them: their layout and their squared error read the
    matrix's own arrays through the selection (``mf_adam.adam_fit_problem``, ``squared_error``).
    At X's scale those arrays are 24 bytes a rating of the fit over all ratings, about 4.6 GiB.
    """

    matrix: RatingMatrix = field(repr=False)
    kept: np.ndarray = field(repr=False)
    note_indptr: np.ndarray
    rater_indptr: np.ndarray
    note_full: np.ndarray
    rater_full: np.ndarray
    n_notes_full: int
    n_raters_full: int

    @property
    def n_ratings(self) -> int:
        return int(self.note_indptr[-1])

    @property
    def n_notes(self) -> int:
        return int(self.note_full.shape[0])

    @property
    def n_raters(self) -> int:
        return int(self.rater_full.shape[0])

    @property
    def keep(self) -> np.ndarray:
        """bool[R_full]: the selection, unpacked afresh."""
        return np.unpackbits(self.kept, count=self.matrix.n_ratings).view(bool)

    @cached_property
    def _arrays(self) -> dict[str, np.ndarray]:
        return self._compact()

    def _compact(self) -> dict[str, np.ndarray]:
        names = ("note_indptr", "rater_indptr", "note_full", "rater_full")
        return compact_problem(self.matrix, self.keep, {name: getattr(self, name) for name in names})

    def rating_arrays(self) -> dict[str, np.ndarray]:
        """The per-rating arrays (``note``, ``rater``, ``value``, ``by_rater``, ``rating_full``):
        the kept ones once any was read, else made afresh and not kept (for a caller that needs
        them for a moment, as the cold start's rank lookup)."""
        return self.__dict__.get("_arrays") or self._compact()

    @property
    def note(self) -> np.ndarray:
        return self._arrays["note"]

    @property
    def rater(self) -> np.ndarray:
        return self._arrays["rater"]

    @property
    def value(self) -> np.ndarray:
        return self._arrays["value"]

    @property
    def by_rater(self) -> np.ndarray:
        return self._arrays["by_rater"]

    @property
    def rating_full(self) -> np.ndarray:
        return self._arrays["rating_full"]

    @cached_property
    def identity(self) -> np.ndarray:
        return np.arange(self.n_ratings, dtype=index_dtype(self.n_ratings))

    def rater_map(self) -> np.ndarray:
        """int64[U_full]: compact index of each full rater (0 where absent: never read there)."""
        out = np.zeros(self.n_raters_full, dtype=np.int64)
        out[self.rater_full] = np.arange(self.n_raters, dtype=np.int64)
        return out

    def squared_error(self, mu, ni, nf, ri, rf) -> float:
        """Σ (value − r̂)² over the fit's ratings in (note, rater) order, read from the matrix:
        ``mf_kernels.squared_error_nb`` over ``note``/``rater``/``value``, bit for bit, without them."""
        m = self.matrix
        args = (m.note_indptr, self.note_full, self.kept, m.rater, m.value, self.rater_map())
        return float(K.squared_error_kept_nb(*args, mu, ni, nf, ri, rf))


def build_problem(matrix: RatingMatrix, keep: np.ndarray | None = None) -> MFProblem:
    """The fit of the ratings where ``keep`` (bool[R_full]) is true; O(R), no sort.

    The matrix is already sorted by (note, rater) and ``by_rater`` by (rater, note); both orders
    survive subsetting, so compact indices come from cumulative counts. Only the per-note and
    per-rater arrays are made here (two counting passes); the per-rating ones when first read
    (``MFProblem``; in parallel, ``rating_gather.compact_problem``).
    """
    keep = np.ones(matrix.n_ratings, dtype=bool) if keep is None else np.asarray(keep, dtype=bool)
    if keep.shape != (matrix.n_ratings,):
        raise ValueError(f"build_problem: keep has shape {keep.shape}, the matrix {matrix.n_ratings} ratings")
    # the columns it reads stay (every fit would fault them back in)
    matrix.release_unfitted()
    shape = problem_shape(matrix, keep)
    bits = np.packbits(keep)
    return MFProblem(matrix, bits, **shape, n_notes_full=matrix.n_notes, n_raters_full=matrix.n_raters)


@dataclass(frozen=True, eq=False)
class MFParams:
    """Fitted parameters in the full index space; NaN where a note/rater was not in the fit.

    ``note_intercept`` float64[N_full], ``note_factor`` float64[N_full, k], ``rater_intercept``
    float64[U_full], ``rater_factor`` float64[U_full, k], ``mu`` float.
    """

    mu: float
    note_intercept: np.ndarray
    note_factor: np.ndarray
    rater_intercept: np.ndarray
    rater_factor: np.ndarray


@dataclass(frozen=True)
class MFFit:
    """A fit's parameters and diagnostics (``loss`` is the mean-form objective, ``mse`` the train error)."""

    params: MFParams
    loss: float
    mse: float
    iterations: int
    converged: bool


@dataclass(frozen=True)
class Penalties:
    """Sum-form penalty weights of one fit (see the module docstring)."""

    note_int: float
    note_fac: float
    rater_int: float
    rater_fac: float
    mu: float


def penalties(
    problem: MFProblem, config: MFConfig, rho_note: float | None = None, rho_rater: float | None = None
) -> Penalties:
    """Sum-form weights λ·ρ; ρ defaults to ratings per note/rater of this fit (mean regularization)."""
    r = max(problem.n_ratings, 1)
    rn = r / max(problem.n_notes, 1) if rho_note is None else float(rho_note)
    ru = r / max(problem.n_raters, 1) if rho_rater is None else float(rho_rater)
    return Penalties(
        note_int=config.note_intercept_lambda * rn,
        note_fac=config.note_factor_lambda * rn,
        rater_int=config.user_intercept_lambda * ru,
        rater_fac=config.user_factor_lambda * ru,
        mu=config.global_intercept_lambda * r,
    )


def objective(problem: MFProblem, pen: Penalties, mu, ni, nf, ri, rf) -> float:
    """Mean-form objective (the reference's loss value) for compact parameter arrays."""
    sse = problem.squared_error(mu, ni, nf, ri, rf)
    total = (
        sse
        + pen.note_int * K.sum_squares(ni)
        + pen.note_fac * K.sum_squares(nf.ravel())
        + pen.rater_int * K.sum_squares(ri)
        + pen.rater_fac * K.sum_squares(rf.ravel())
        + pen.mu * mu * mu
    )
    return total / max(problem.n_ratings, 1)


def initial_params(
    problem: MFProblem,
    num_factors: int,
    seed: int | None,
    init: MFParams | None,
    torch_init: TorchInit | None = None,
):
    """Compact starting arrays: warm start from ``init`` (missing/NaN → 0) or seeded xavier factors.

    Cold start mirrors the reference: intercepts and μ zero, factors uniform in ±sqrt(6/(n+k)) —
    drawn exactly as the reference's torch model draws them when ``torch_init`` says how
    (``torch_init`` module), else from numpy's generator seeded with ``seed``.
    """
    n, u, k = problem.n_notes, problem.n_raters, num_factors
    if init is not None:
        ni = np.nan_to_num(init.note_intercept[problem.note_full].astype(np.float64), nan=0.0)
        nf = np.nan_to_num(init.note_factor[problem.note_full].astype(np.float64), nan=0.0)
        ri = np.nan_to_num(init.rater_intercept[problem.rater_full].astype(np.float64), nan=0.0)
        rf = np.nan_to_num(init.rater_factor[problem.rater_full].astype(np.float64), nan=0.0)
        mu = 0.0 if not np.isfinite(init.mu) else float(init.mu)
        return mu, ni, nf.reshape(n, k), ri, rf.reshape(u, k)
    if torch_init is not None:
        rater_order, note_order = table_orders(problem, torch_init)
        if not torch_init.rater_grouped:
            problem.matrix.release("created_at")  # read at one rating a rater: not for the fit to carry
        nf, rf = torch_factors(rater_order, note_order, k, torch_init)
        return 0.0, np.zeros(n), nf, np.zeros(u), rf
    rng = np.random.default_rng(seed)
    nf = rng.uniform(-1.0, 1.0, size=(n, k)) * np.sqrt(6.0 / (n + k))
    rf = rng.uniform(-1.0, 1.0, size=(u, k)) * np.sqrt(6.0 / (u + k))
    return 0.0, np.zeros(n), nf, np.zeros(u), rf


def fit_mf(
    problem: MFProblem,
    config: MFConfig,
    *,
    seed: int | None = 0,
    init: MFParams | None = None,
    rho_note: float | None = None,
    rho_rater: float | None = None,
    freeze_raters: bool = False,
    freeze_mu: bool = False,
    use_global_intercept: bool = True,
    flip: bool = True,
    kernels: str = "numba",
    num_threads: int | None = None,
    engine: SweepEngine | None = None,
    init_mu: bool = True,
    torch_init: TorchInit | None = None,
) -> MFFit:
    """Minimize the reference objective by alternating ridge solves; return full-space params.

    One sweep solves every note (given raters and μ), then every rater (given notes and μ), then
    μ in closed form. Stops when no parameter moves by more than ``config.tolerance`` or after
    ``config.max_iterations`` sweeps. With ``freeze_raters`` (and ``freeze_mu``) one note sweep is
    the exact optimum (final scoring, §2.8). ``flip`` applies the sign convention of §2.4.
    ``kernels="numpy"`` runs the numpy twins (tests). Deterministic for any ``num_threads``.
    ``engine`` runs the sweeps elsewhere (``bridgewatch.engines``); default: in process.

    With ``config.solver == "adam"`` a fit that trains raters runs the reference's optimizer
    instead (``mf_adam``): learning rate 0.2 when ``init`` is given, else 1.0; μ starts from
    ``init.mu`` only if ``init_mu`` (the reference passes it to round 1, not to round 2); it runs
    in process (``engine`` serves the ALS sweeps). ``config.global_intercept=False`` (or
    ``use_global_intercept=False``) keeps μ at 0. ``torch_init``: draw a cold start's factors
    as the reference's torch model does (``initial_params``). With ``config.normalized_loss`` the
    Adam fit is followed by the weighted refit of §2.9 (``mf_normalized``).
    """
    k = config.num_factors
    use_global_intercept = use_global_intercept and config.global_intercept
    pen = penalties(problem, config, rho_note, rho_rater)
    mu, ni, nf, ri, rf = initial_params(problem, k, seed, init, torch_init)
    if not use_global_intercept or not init_mu:
        mu = 0.0
    if config.solver == "adam" and not freeze_raters and not freeze_mu and rho_note is None:
        from bridgewatch.scoring import mf_adam

        lr = config.adam_init_learning_rate if init is not None else config.adam_no_init_learning_rate
        p, start = problem, (mu, ni, nf, ri, rf)
        (mu, ni, nf, ri, rf), epochs = mf_adam.adam_fit_problem(
            p, start, config, lr, use_global_intercept=use_global_intercept
        )
        if config.normalized_loss:
            from bridgewatch.scoring.mf_normalized import normalized_refit

            rf_id = flip_factors(nf, rf)[1] if flip else rf
            raters = (start[3], start[4]) if init is not None else None
            (mu, ni, nf, ri, rf), more = normalized_refit(
                p, config, seed, raters, rf_id[:, 0], torch_init, use_global_intercept=use_global_intercept
            )
            epochs += more
        return _finish(problem, pen, mu, ni, nf, ri, rf, flip, epochs, epochs < config.adam_max_epochs, None)
    sweeps = (engine or LocalEngine(kernels)).bind(problem)
    old_threads = numba.get_num_threads()
    if num_threads is not None:
        numba.set_num_threads(max(1, min(num_threads, numba.config.NUMBA_NUM_THREADS)))
    elif in_process(engine) and problem.n_ratings < SERIAL_BELOW:
        numba.set_num_threads(1)  # as the Adam fits (``threads_for``): a sweep is too short to pay a barrier
    try:
        converged = False
        it = 0
        max_it = 1 if (freeze_raters and (freeze_mu or not use_global_intercept)) else config.max_iterations
        for it in range(1, max_it + 1):  # noqa: B007
            prev = (mu, ni, nf, ri, rf)
            ni, nf = sweeps.solve_notes(mu, ri, rf, pen.note_int, pen.note_fac)
            if not freeze_raters:
                ri, rf = sweeps.solve_raters(mu, ni, nf, pen.rater_int, pen.rater_fac)
            if use_global_intercept and not freeze_mu:
                mu = sweeps.residual_sum(ni, nf, ri, rf) / (problem.n_ratings + pen.mu)
            delta = max(
                abs(mu - prev[0]),
                _maxabs(ni - prev[1]),
                _maxabs(nf - prev[2]),
                _maxabs(ri - prev[3]),
                _maxabs(rf - prev[4]),
            )
            if delta <= config.tolerance:
                converged = True
                break
        if max_it == 1:
            converged = True
    finally:
        sweeps.close()
        numba.set_num_threads(old_threads)
    return _finish(problem, pen, mu, ni, nf, ri, rf, flip, it, converged, init if freeze_raters else None)


def _finish(problem, pen, mu, ni, nf, ri, rf, flip, iterations, converged, rater_source) -> MFFit:
    if flip:
        nf, rf = flip_factors(nf, rf)
    loss = objective(problem, pen, mu, ni, nf, ri, rf)
    sse = problem.squared_error(mu, ni, nf, ri, rf)
    params = to_full(problem, mu, ni, nf, ri, rf, rater_source)
    return MFFit(params, loss, sse / max(problem.n_ratings, 1), iterations, converged)


def _maxabs(a: np.ndarray) -> float:
    return float(np.max(np.abs(a))) if a.size else 0.0


def flip_factors(note_factor: np.ndarray, rater_factor: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sign convention (§2.4): per factor, if fewer than half of raters with nonzero factor are
    negative, negate that factor for all notes and raters."""
    note_factor = note_factor.copy()
    rater_factor = rater_factor.copy()
    for f in range(rater_factor.shape[1]):
        col = rater_factor[:, f]
        nonzero = int(np.count_nonzero(col))
        if nonzero and np.count_nonzero(col < 0) / nonzero < 0.5:
            note_factor[:, f] *= -1.0
            rater_factor[:, f] *= -1.0
    return note_factor, rater_factor


def to_full(problem: MFProblem, mu, ni, nf, ri, rf, rater_source: MFParams | None = None) -> MFParams:
    """Scatter compact arrays into the full id space (NaN elsewhere).

    With ``rater_source`` (frozen-rater fits) rater parameters are copied whole from it.
    """
    k = nf.shape[1]
    note_int = np.full(problem.n_notes_full, np.nan)
    note_fac = np.full((problem.n_notes_full, k), np.nan)
    note_int[problem.note_full] = ni
    note_fac[problem.note_full] = nf
    if rater_source is not None:
        rater_int, rater_fac = rater_source.rater_intercept, rater_source.rater_factor
    else:
        rater_int = np.full(problem.n_raters_full, np.nan)
        rater_fac = np.full((problem.n_raters_full, k), np.nan)
        rater_int[problem.rater_full] = ri
        rater_fac[problem.rater_full] = rf
    return MFParams(float(mu), note_int, note_fac, rater_int, rater_fac)

"""The seam between the factorization and where its hot sweeps run.

``fit_mf`` and ``score_notes`` only orchestrate: they hand the ratings of one fit to an engine
(``SweepEngine.bind``) and ask the bound object for half-sweeps — every note's ridge solve given
the raters, every rater's given the notes — and for the residual sum behind μ. Scoring keeps no
knowledge of Spark: engines live below it (``bridgewatch.engines``, DESIGN.md layers) and satisfy
these protocols; ``LocalEngine`` (numba or numpy kernels) is the default and what
``bridgewatch.engines.local`` hands out.

Arrays follow ``mf.MFProblem``'s compact indexing: N notes, U raters, k factors, float64.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from bridgewatch.scoring import mf_kernels as K

if TYPE_CHECKING:
    from bridgewatch.scoring.mf import MFProblem


class BoundSweeps(Protocol):
    """One fit's ratings, loaded where the engine computes; parameters travel as numpy arrays."""

    def solve_notes(
        self, mu: float, rater_int: np.ndarray, rater_fac: np.ndarray, pen_int: float, pen_fac: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(note_int float64[N], note_fac float64[N, k]): every note's ridge solve given the raters."""
        ...

    def solve_raters(
        self, mu: float, note_int: np.ndarray, note_fac: np.ndarray, pen_int: float, pen_fac: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rater_int float64[U], rater_fac float64[U, k]): every rater's solve given the notes."""
        ...

    def residual_sum(
        self, note_int: np.ndarray, note_fac: np.ndarray, rater_int: np.ndarray, rater_fac: np.ndarray
    ) -> float:
        """Σ over ratings of value − i_n − i_u − f_n·f_u (the numerator of μ's closed form)."""
        ...

    def close(self) -> None:
        """Release what ``bind`` loaded (cached tables on a cluster); idempotent."""
        ...


class SweepEngine(Protocol):
    """Where the sweeps run. ``name`` is what ``bridgewatch score --engine`` calls it."""

    name: str

    def bind(self, problem: MFProblem) -> BoundSweeps: ...


class LocalSweeps:
    """The in-process path: the fused per-row kernels of ``mf_kernels`` over CSR views."""

    def __init__(self, problem: MFProblem, kernels: str = "numba") -> None:
        self._p = problem
        self._solve = K.solve_rows_nb if kernels == "numba" else K.solve_rows_np
        self._resid = K.residual_sum_nb if kernels == "numba" else K.residual_sum_np

    def solve_notes(self, mu, rater_int, rater_fac, pen_int, pen_fac):
        p = self._p
        ni, nf = np.zeros(p.n_notes), np.zeros((p.n_notes, rater_fac.shape[1]))
        self._solve(p.note_indptr, p.identity, p.rater, p.value, mu, rater_int, rater_fac,
                    pen_int, pen_fac, ni, nf)  # fmt: skip
        return ni, nf

    def solve_raters(self, mu, note_int, note_fac, pen_int, pen_fac):
        p = self._p
        ri, rf = np.zeros(p.n_raters), np.zeros((p.n_raters, note_fac.shape[1]))
        self._solve(p.rater_indptr, p.by_rater, p.note, p.value, mu, note_int, note_fac,
                    pen_int, pen_fac, ri, rf)  # fmt: skip
        return ri, rf

    def residual_sum(self, note_int, note_fac, rater_int, rater_fac):
        p = self._p
        return float(self._resid(p.note, p.rater, p.value, note_int, note_fac, rater_int, rater_fac))

    def close(self) -> None:
        return None


class LocalEngine:
    """numba kernels (``kernels="numba"``, the default) or their numpy twins (``"numpy"``)."""

    name = "local"

    def __init__(self, kernels: str = "numba") -> None:
        self.kernels = kernels

    def bind(self, problem: MFProblem) -> LocalSweeps:
        return LocalSweeps(problem, self.kernels)


def in_process(engine: SweepEngine | None) -> bool:
    """Whether ``engine`` runs the sweeps here with the numba kernels: none given, or the local
    engine with its default kernels, which is what ``bridgewatch score --engine local`` (the CLI's
    default) passes. Exactly that class: a subclass (a test's, say) keeps the engine's own path.

    Why: the paths that read a fit's ratings through its selection instead of compact copies
    (``note_solve.score_notes``), the two scorers at a time of a small community (``pipeline``)
    and the single thread of a short fit (``mf.fit_mf``) are in-process choices. Keyed on
    ``engine is None`` alone, the CLI's runs never took them: each final note solve built its
    fit's compact arrays (~28 bytes a fitted rating by their dtypes; at `large`, 0.31 GiB of
    the 0.54 GiB Core's final scoring held at its peak, memray), though both forms give the same
    bits."""
    return engine is None or (type(engine) is LocalEngine and engine.kernels == "numba")

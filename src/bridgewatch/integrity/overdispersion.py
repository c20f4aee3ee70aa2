"""Overdispersed counts for the concerted-surprise test (Bridgewatch; ``integrity.surprise``).

The test compares a note side's surprising NOT_HELPFUL ratings with what honest disagreement
gives. Honest notes' surprise rates vary around the expectation the rank-1 model and its
calibration give (notes differ in ways one factor does not hold), so a count x of mean λ has
Var = λ(1 + αλ), not λ: the more ratings a note has, the further its honest misfit lies beyond a
Poisson (measured α ≈ 0.15–0.25 on every simulated community, tiny to large; docs/surprise.md).
A Poisson test therefore flags honest notes at a rate that grows with the community's ratings per
note; a negative binomial (a Poisson whose rate varies as a gamma) of the same α does not.
"""

from __future__ import annotations

import numpy as np
from scipy.special import betainc, gammainc


def side_means(count: np.ndarray, expect: np.ndarray, prior: float) -> np.ndarray:
    """float[2, N]: each side's honest mean, ``expect`` inflated by the other side's own excess
    (``prior`` pseudo-counts; 0: none): a misfit of the note's honest raters shows on both sides,
    a bloc turns one camp."""
    lam = np.empty_like(expect)
    for s in (0, 1):
        misfit = np.maximum(1.0, (count[1 - s] + prior) / (expect[1 - s] + prior)) if prior > 0 else 1.0
        lam[s] = np.maximum(misfit * expect[s], 1e-300)
    return lam


def upper_tail(count: np.ndarray, lam: np.ndarray, alpha: float) -> np.ndarray:
    """P(X ≥ max(count, 1)) for X negative binomial of mean ``lam`` and variance lam · (1 + alpha ·
    lam) (size 1 / alpha); ``alpha`` 0: the Poisson tail (bit for bit the test without it)."""
    x = np.maximum(count, 1.0)
    if alpha <= 0:
        return gammainc(x, lam)
    k = 1.0 / alpha
    return betainc(x, k, lam / (lam + k))


def estimate_dispersion(count: np.ndarray, lam: np.ndarray, tested: np.ndarray, trim: float) -> float:
    """α ≥ 0 from the ``tested`` bool[N] notes' two sides (``count``, their means ``lam``, float[2, N]).

    Moment estimate Σ((x − λ)² − x) / Σ λ² (x ~ Poisson(λ·Gamma): E(x − λ)² = λ + αλ²) over the
    notes none of whose sides has an upper tail below ``trim`` under the current α. Robust from
    below: first under a Poisson (α = 0, which leaves out the most), then under each new α,
    until the set left out stops changing (at most 20 steps), so α grows only while honest notes
    come back in, and a bloc's targets, far out under any α the honest notes support, stay out. A
    plain moment estimate (``trim`` 0) lets a bloc set α and hide itself (a planted bloc of 12
    targets among 400 notes turns 0.1–0.5 into ~2, and the 1/(sides) trim, about one honest side,
    lets the targets back in). A whole note leaves: a bloc's excess also inflates its other side's
    mean (``side_means``). The trim leaves out ~1% of honest notes too, so α reads a little low
    (honest ``large``: 0.188 against 0.205 untrimmed; a synthetic gamma world 0.14–0.15 against
    0.2); the negative binomial's tail is conservative enough to absorb it (docs/surprise.md).
    Deterministic; O(N) per step.
    """
    keep = None
    alpha = 0.0
    for _ in range(20):
        tail = np.where(count > 0, upper_tail(count, lam, alpha), 1.0)
        now = tested & (tail >= trim).all(axis=0)
        if keep is not None and np.array_equal(now, keep):
            break
        keep = now
        num = float((((count - lam) ** 2 - count) * keep).sum())
        den = float((lam * lam * keep).sum())
        alpha = max(0.0, num / den) if den > 0 else 0.0
    return alpha

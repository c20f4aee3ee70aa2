"""Metrics of a scoring run against the simulator's truth (issue 5 item 6).

Pure functions over aligned arrays, so the evaluation sweep (``sim.evaluate``) and the tests share
one definition of "the attack worked", "an attacker was caught" and "an honest note was scored
right". Statuses are compared by rank: Not Helpful (-1) < Needs More Ratings / Needs Your Help (0)
< Helpful (+1); an attack "moves" a note when its rank changes in the attacker's direction.

Truth of an honest note (from ``truth.tsv``): *helpful* when each camp's members find it at least
somewhat helpful on average (``min(campHelpfulLeft, campHelpfulRight) >= 0.5``: the mean expected
helpfulNum over the camp's honest, diligent raters, ``sim.history.camp_means``), *not helpful*
when neither camp does (``max(...) < 0.5``); notes one camp likes and the other does not are
neither, and a bridging scorer should leave them unrated. (An earlier version used
``expHelpfulLeft/Right``, a rater at viewpoint ±1; the camps sit at ±0.7, so that bar asked a note
to please raters more partisan than ~80% of their own camp, and most "false" Helpful notes were
notes the camps' actual members find helpful.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bridgewatch.schema import CRH, CRNH

TRUTH_THRESHOLD = 0.5


def status_rank(statuses: np.ndarray) -> np.ndarray:
    """int8[n]: +1 Helpful, -1 Not Helpful, 0 any other status (NMR, NYH, missing)."""
    s = np.asarray(statuses, dtype=object)
    return ((s == CRH).astype(np.int8) - (s == CRNH).astype(np.int8)).astype(np.int8)


def ratio(num: int, den: int) -> float:
    """num/den, NaN when the denominator is 0 (an undefined rate is not a perfect one)."""
    return num / den if den else math.nan


@dataclass(frozen=True)
class Shift:
    """What an attack did to its targets.

    ``moved`` of ``eligible`` targets (not already at the end it pushes to) changed rank in the
    attacker's direction (e.g. Not Helpful -> Needs More Ratings counts for an "up" attack);
    ``flipped`` of ``flip_eligible`` crossed the line that matters to readers: an "up" target
    became Helpful, a "down" target that was Helpful lost it.
    """

    eligible: int
    moved: int
    flip_eligible: int
    flipped: int

    @property
    def rate(self) -> float:
        return ratio(self.moved, self.eligible)

    @property
    def flip_rate(self) -> float:
        return ratio(self.flipped, self.flip_eligible)


def attack_shift(baseline: np.ndarray, attacked: np.ndarray, sign: np.ndarray) -> Shift:
    """Compare target statuses without (``baseline``) and with the attack (``attacked``).

    ``sign``: int[n] +1 for notes pushed up, -1 for notes pushed down. A note already Helpful
    cannot be pushed up (nor a Not Helpful one down), so it is not eligible.
    """
    sign = np.asarray(sign, dtype=np.int8)
    rank_before, rank_after = status_rank(baseline), status_rank(attacked)
    before, after = rank_before * sign, rank_after * sign
    eligible = before < 1
    return Shift(
        int(eligible.sum()),
        int((eligible & (after > before)).sum()),
        int(flip_eligible(baseline, sign).sum()),
        int(flipped(baseline, attacked, sign).sum()),
    )


def flip_eligible(baseline: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """bool[n]: targets that can cross the line: an "up" one not Helpful yet, a "down" one Helpful."""
    rank = status_rank(baseline)
    return np.where(np.asarray(sign) > 0, rank < 1, rank == 1)


def flipped(baseline: np.ndarray, attacked: np.ndarray, sign: np.ndarray) -> np.ndarray:
    """bool[n]: targets ``attack_shift`` counts as flipped (crossed the line the attack pushes at)."""
    rank = status_rank(attacked)
    return flip_eligible(baseline, sign) & np.where(np.asarray(sign) > 0, rank == 1, rank < 1)


@dataclass(frozen=True)
class Detection:
    flagged: int
    true_positive: int
    actual: int

    @property
    def precision(self) -> float:
        return ratio(self.true_positive, self.flagged)

    @property
    def recall(self) -> float:
        return ratio(self.true_positive, self.actual)


def detection(flagged: np.ndarray, bad: np.ndarray) -> Detection:
    """Flagged accounts (bool[u]) against the truth's bad actors (bool[u])."""
    flagged, bad = np.asarray(flagged, bool), np.asarray(bad, bool)
    return Detection(int(flagged.sum()), int((flagged & bad).sum()), int(bad.sum()))


def truth_labels(exp_left: np.ndarray, exp_right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(helpful bool[n], not_helpful bool[n]) from the truth's expected helpfulness of each camp."""
    lo, hi = np.minimum(exp_left, exp_right), np.maximum(exp_left, exp_right)
    return lo >= TRUTH_THRESHOLD, hi < TRUTH_THRESHOLD


@dataclass(frozen=True)
class Accuracy:
    """Precision and recall of the Helpful and Not Helpful statuses on honest notes."""

    helpful_precision: float
    helpful_recall: float
    not_helpful_precision: float
    not_helpful_recall: float
    helpful: int  # notes scored Helpful


def honest_accuracy(
    statuses: np.ndarray, helpful: np.ndarray, not_helpful: np.ndarray, scorable: np.ndarray
) -> Accuracy:
    """Statuses (object[n]) of honest notes against the truth labels (bool[n] each).

    Precision counts every note given the status; recall counts only ``scorable`` notes (enough
    ratings for any status), since no scorer can rate a note nobody rated.
    """
    rank = status_rank(statuses)
    crh, crnh = rank > 0, rank < 0
    scorable = np.asarray(scorable, bool)
    return Accuracy(
        ratio(int((crh & helpful).sum()), int(crh.sum())),
        ratio(int((crh & helpful & scorable).sum()), int((helpful & scorable).sum())),
        ratio(int((crnh & not_helpful).sum()), int(crnh.sum())),
        ratio(int((crnh & not_helpful & scorable).sum()), int((not_helpful & scorable).sum())),
        int(crh.sum()),
    )

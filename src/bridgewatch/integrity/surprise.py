"""Concerted surprise: notes that one side's raters rate down against their own viewpoint (Bridgewatch).

Not in the reference. A *stealth bloc* (``sim.attacks`` ``stealth_bloc``; arXiv 2511.02615's bad
raters) adds no rating: its members rate the notes they would rate anyway, at the same times, and
only turn their ratings of the targets NOT_HELPFUL. Their timing, co-rating and action sets are
honest, so PSS, quasi-cliques and ``coordination`` see nothing; what is concerted is their
*direction* on the targets. At the small evaluation scale a member turns ~0.27 target ratings on
average (most none), so no test on a rater or a rater pair has the counts to tell a member from an
honest rater (``bench/stealth_bloc.py``: bloc pairs sharing ≥ 2 surprising notes are outnumbered
7:1 by honest pairs). The evidence is per note: a target collects many NOT_HELPFUL ratings from
raters whose own viewpoint says HELPFUL.

1. Residuals the campaign cannot absorb. Under a matrix-factorization fit that includes the
   campaign, a target's note factor and intercept move to explain the bloc (at p = 20% only a third
   of the turned ratings stay surprising). Raters' parameters are sound (a member's turned ratings
   are a few of its many), so each note is refitted alone with the raters' intercepts and factors
   held fixed (``rater_intercept``, ``rater_factor`` from a first fit; the runner passes them), by
   iteratively reweighted least squares with Tukey's biweight (``tukey_c``), a 2-parameter ridge
   solve per note and iteration. A split camp then fits its majority and the turned ratings stand
   out: rating − prediction < −``residual`` on a NOT_HELPFUL rating is a *surprising* rating.
2. Notes with concerted surprise: a note's surprising share (surprising / ratings) above the
   ``note_quantile`` of all notes with ≥ ``min_ratings`` ratings (the data calibrate the test: most
   notes are honest), with at least ``min_events`` surprising ratings.
3. Set aside: on those notes the surprising ratings are set aside and the note is judged by the
   rest (as ``coordination`` does for a detected group's concerted ratings). Honest raters'
   surprising ratings there go too: that is a robust, residual-discounting note refit on the few
   notes the test singles out (≈ 1 − ``note_quantile`` of them), never a judgement of a rater.
4. Rounds (``rounds``): when the bloc is the majority of a target's own camp (p = 20% at the
   small scale), the robust refit adopts it: the note factor turns to explain the camp's
   NOT_HELPFUL votes, the fit predicts the camp's split (~0.5), and neither half is surprising
   (13 of the 14 targets p = 20% still flipped after step 3 were not flagged; on each, ~12 honest
   members of the camp rated HELPFUL and ~13 members turned). Nothing in that note's own ratings
   tells the halves apart: a member rates like its camp everywhere else, and the NH share's
   gradient along the camp's viewpoint, the camp's split, its concentration on one side, and the
   share under a refit with a shrunk note factor (ridge 2–20) all rank targets no better than
   step 2 (45–52 of 100 targets above the honest q95). The evidence is across notes: raters whose
   ratings step 3 set aside were caught rating against their own viewpoint on a concerted note, so
   a later round refits every note with those *suspects'* NOT_HELPFUL ratings given no weight
   (still judged against the refit). Where they were the bloc's majority, the bloc is a minority
   of the refit again and its other turned ratings stand out. The round only *adds* notes, whose
   share then exceeds ``round_quantile`` of the first round's shares (a stricter bar than step 2:
   most suspects are honest raters of the honest notes step 2 refits, and leaving them out raises
   every note's share a little); the first round's notes and set-aside stand. Re-ranking every note
   instead (a fresh ``note_quantile`` each round) found more at p = 20% (3/30 flipped) but moved
   the quantile's budget to honest notes at p = 5% (5/34 flipped against 3/34) and cost honest
   Helpful precision a point. Measured on ``bridgewatch evaluate --scale small`` communities,
   first round → 3 rounds: p = 20% targets flagged 47 → 68 of 100, turned ratings set aside 415
   → 718 of 981; p = 5% and 10% unchanged or better; honest notes flagged on the no-attack twin
   168 → 182 (ratings set aside 0.45% → 0.48%). Each round is one more kernel pass.
5. Groups, for the views and detection only, from the first round's set-aside (the direct
   evidence; later rounds judge with suspects left out): raters sharing surprising ratings on ≥
   ``min_shared`` flagged notes (pairs counted per flagged note among its at most ``max_per_note``
   surprising raters, so no rater × rater matrix), connected, ≥ ``min_group`` raters. A rater in no
   group is not flagged, so an honest rater's stray surprise costs it nothing.

The pipeline runs it after the coordination collapse (``adapters.detect_integrity``), on the ratings
that remain, first fit included: a set-aside campaign would otherwise own its targets' refits.

Why a quantile rather than a significance test: notes differ far more than a binomial null allows
(rank-1 viewpoints miss a second axis of disagreement; leniency and diligence vary), so at 1% the
binomial test flags ~6% of honest notes and no target at p = 5%. The data's own quantile is robust
while targets are a small share of the notes; it always refits the top 1 − ``note_quantile`` of
notes, also on an honest community. That is why ``[integrity] surprise`` is off by default. Golden
agreement with X (``bench/agreement.py --case mini|small --config``), finalRatingStatus / core
status: off 100 / 100% (mini), 100 / 99.92% (small); on 99.70 / 93.65%, 99.72 / 93.48%; on with
``surprise_prescoring = false`` (the set-aside in final scoring only: raters' parameters and
helpfulness scores stay as without the defence, and only the refitted notes move) 99.95 /
96.30%, 99.96 / 96.82%.

Measured (``bridgewatch evaluate --scale small --config`` with surprise on; targets Helpful when
the bloc abstains that its ratings push out; one round → 3 rounds): stealth_bloc p = 5% 3/34 →
3/34, 10% 3/34 → 3/34, 20% 14/30 → 6/30 (without the defence 8/34, 16/33, 25/28); every other
scenario unchanged (coordinated_bloc 0 flipped, detection precision and recall 1.00 on sybil,
infiltration, ring and timing); honest Helpful precision worst 0.958 → 0.958; the defences
cost no Helpful recall (−0.8 → −0.7 points); no honest rater flagged. What remains at 20% are
targets none of whose turned raters were caught elsewhere, or whose turned ratings stay under
the quantile. Phased runs: prescoring saves the set-aside ratings by (noteId, rater) in its state
and final scoring sets the same aside (the first fit is not repeated there).

Cost: ``iterations`` passes over each note's ratings (O(R · iterations), one numba kernel over the
note-sorted ratings, O(ratings of one note) scratch); the quantile is O(N); pairs are at most
flagged notes × max_per_note² / 2. Memory: bool[R] outputs and O(N + U + pairs) more; never
O(U²). The runner's first fit is one more MF fit of the kept ratings (1.3 s CPU at the small
scale, 300k ratings). Deterministic: no randomness, serial kernel, stable sorts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
from scipy.special import gammainc

from bridgewatch.integrity.components import connected_components


@dataclass(frozen=True)
class SurpriseParams:
    """Knobs of the concerted-surprise defence (Bridgewatch; tuned on ``bridgewatch evaluate``)."""

    residual: float = 0.7  # a NOT_HELPFUL rating this far below the robust prediction is surprising
    fdr: float = 0.1  # Benjamini–Hochberg false discovery rate of the flagged notes
    side_prior: float = 3.0  # pseudo-counts pulling the other side's excess (a note's misfit) to 1
    rater_prior: float = 5.0  # pseudo-counts pulling a rater's own surprise rate to the model's
    bins: int = 20  # quantile bins of the robust prediction the honest surprise rate is read in
    min_events: int = 3  # surprising ratings on one side a flagged note needs
    min_ratings: int = 5  # notes with fewer ratings are never flagged (minRatingsNeeded)
    tukey_c: float = 0.8  # Tukey biweight scale of the per-note refit (ratings are in [0, 1])
    iterations: int = 10
    ridge: float = 0.1  # per-note ridge on (intercept, factor)
    min_shared: int = 2  # flagged notes two raters must share surprising ratings on to be linked
    min_group: int = 3
    max_per_note: int = 64  # surprising raters paired per flagged note (bounds the pair count)
    rounds: int = 3  # refits; each after the first leaves out the suspects' NOT_HELPFUL ratings

    def check(self) -> None:
        """Raise ``ValueError`` on a setting outside its range."""
        if not self.residual > 0 or not 0 < self.fdr <= 1 or self.side_prior < 0 or self.rater_prior < 0:
            raise ValueError("surprise: need residual > 0, 0 < fdr <= 1 and priors >= 0")
        if self.tukey_c <= 0 or self.ridge < 0 or self.iterations < 1:
            raise ValueError("surprise: need tukey_c > 0, ridge >= 0, iterations >= 1")
        counts = (self.min_events, self.min_ratings, self.min_shared, self.min_group, self.max_per_note)
        if min(*counts, self.rounds, self.bins) < 1:
            raise ValueError("surprise: counts must be >= 1")


@nb.njit(nogil=True, cache=True)
def _robust_notes(indptr, rater, value, exclude, mu, r_int, r_fac, c, iters, ridge):
    """float[R] robust predictions (NaN: rater not fitted): per note, IRLS (Tukey biweight) of
    value − mu − r_int on r_fac; ``exclude`` bool[R] ratings have no weight in the fit."""
    out = np.full(rater.shape[0], np.nan)
    for n in range(indptr.shape[0] - 1):
        lo, hi = indptr[n], indptr[n + 1]
        m = hi - lo
        if m == 0:
            continue
        y = np.empty(m)
        f = np.empty(m)
        w = np.empty(m)
        good = np.empty(m, dtype=np.bool_)
        for i in range(m):
            u = rater[lo + i]
            y[i] = value[lo + i] - mu - r_int[u]
            f[i] = r_fac[u]
            good[i] = np.isfinite(y[i]) and np.isfinite(f[i])
            w[i] = 1.0 if good[i] and not exclude[lo + i] else 0.0
            if not good[i]:
                y[i] = 0.0
                f[i] = 0.0
        a = 0.0
        b = 0.0
        for _ in range(iters):
            sw = swf = swff = swy = swfy = 0.0
            for i in range(m):
                sw += w[i]
                swf += w[i] * f[i]
                swff += w[i] * f[i] * f[i]
                swy += w[i] * y[i]
                swfy += w[i] * f[i] * y[i]
            a11, a22 = sw + ridge, swff + ridge
            det = a11 * a22 - swf * swf
            if det <= 0.0:
                break
            a = (a22 * swy - swf * swfy) / det
            b = (a11 * swfy - swf * swy) / det
            for i in range(m):
                if not good[i] or exclude[lo + i]:
                    continue  # an unfitted rater, or an excluded rating, stays out
                t = min(1.0, abs(y[i] - a - b * f[i]) / c)
                w[i] = (1.0 - t * t) ** 2
        for i in range(m):
            if good[i]:
                out[lo + i] = value[lo + i] - (y[i] - a - b * f[i])
    return out


def robust_predictions_numpy(
    note: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    n_notes: int,
    mu: float,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    params: SurpriseParams,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Twin of ``robust_predictions`` in numpy (all notes at once with ``bincount``; for tests)."""
    y = value - mu - rater_intercept[rater]
    f = rater_factor[rater]
    ok = np.isfinite(y) & np.isfinite(f)
    y, f = np.where(ok, y, 0.0), np.where(ok, f, 0.0)
    fit = ok if exclude is None else ok & ~exclude
    w = fit.astype(np.float64)
    a = np.zeros(n_notes)
    b = np.zeros(n_notes)
    live = np.ones(n_notes, dtype=bool)

    def s(v: np.ndarray) -> np.ndarray:
        return np.bincount(note, weights=v, minlength=n_notes)

    for _ in range(params.iterations):
        sw, swf, swff, swy, swfy = s(w), s(w * f), s(w * f * f), s(w * y), s(w * f * y)
        a11, a22 = sw + params.ridge, swff + params.ridge
        det = a11 * a22 - swf * swf
        live &= det > 0
        safe = np.where(live, det, 1.0)
        a = np.where(live, (a22 * swy - swf * swfy) / safe, a)
        b = np.where(live, (a11 * swfy - swf * swy) / safe, b)
        t = np.minimum(1.0, np.abs(y - a[note] - b[note] * f) / params.tukey_c)
        w = np.where(fit, (1.0 - t * t) ** 2, 0.0)
    return np.where(ok, value - (y - a[note] - b[note] * f), np.nan)


def robust_predictions(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    mu: float,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    params: SurpriseParams,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """float[R]: each rating's prediction under its note's robust refit (NaN: rater not fitted).

    Ratings sorted by note (``note_indptr`` int64[N+1]), ``rating_rater`` int[R], ``rating_value``
    float[R] (helpfulNum); ``mu`` and ``rater_intercept`` / ``rater_factor`` float[U] (first factor;
    NaN: rater not fitted) from a first fit of all ratings. ``exclude`` bool[R] (None: none):
    ratings left out of the refit, still predicted by it.
    """
    params.check()
    indptr = np.ascontiguousarray(note_indptr, dtype=np.int64)
    rater = np.ascontiguousarray(rating_rater)
    value = np.ascontiguousarray(rating_value, dtype=np.float64)
    r_int = np.ascontiguousarray(rater_intercept, dtype=np.float64)
    r_fac = np.ascontiguousarray(rater_factor, dtype=np.float64)
    if r_int.ndim != 1 or r_int.shape != r_fac.shape:
        raise ValueError("rater_intercept and rater_factor must be 1-D arrays of the same length")
    if rater.shape[0] != value.shape[0] or (indptr.shape[0] and indptr[-1] != rater.shape[0]):
        raise ValueError("note_indptr, rating_rater and rating_value do not describe the same ratings")
    if rater.shape[0] and (int(rater.min()) < 0 or int(rater.max()) >= r_int.shape[0]):
        raise ValueError(f"rater indices must lie in [0, {r_int.shape[0]})")
    out = np.zeros(rater.shape[0], np.bool_) if exclude is None else np.ascontiguousarray(exclude, np.bool_)
    if out.shape != rater.shape:
        raise ValueError("exclude must be a bool array with one entry per rating")
    return _robust_notes(
        indptr, rater, value, out, float(mu), r_int, r_fac, params.tukey_c, params.iterations, params.ridge
    )


def surprising(prediction: np.ndarray, rating_value: np.ndarray, params: SurpriseParams) -> np.ndarray:
    """bool[R]: NOT_HELPFUL ratings whose robust prediction exceeds ``params.residual`` (the rating
    lies more than that below it; NaN predictions never surprise)."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(rating_value) == 0.0) & (np.asarray(prediction) > params.residual)


def _honest_rate(
    prediction: np.ndarray, events: np.ndarray, fitted: np.ndarray, at_risk: np.ndarray, bins: int
) -> np.ndarray:
    """float[R]: P(surprising | prediction) on the ``at_risk`` ratings (0 elsewhere), read in
    ``bins`` quantile bins of the ``fitted`` ratings' predictions: the rate the data's own ratings,
    most of them honest, show."""
    out = np.zeros(prediction.shape[0])
    if not fitted.any():
        return out
    edges = np.quantile(prediction[fitted], np.linspace(0.0, 1.0, bins + 1)[1:-1])
    hits = np.bincount(np.searchsorted(edges, prediction[fitted], side="right"),
                       weights=events[fitted].astype(np.float64), minlength=bins)  # fmt: skip
    total = np.bincount(np.searchsorted(edges, prediction[fitted], side="right"), minlength=bins)
    out[at_risk] = (hits / np.maximum(total, 1))[np.searchsorted(edges, prediction[at_risk], side="right")]
    return out


def note_pvalues(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    prediction: np.ndarray,
    rater_factor: np.ndarray,
    params: SurpriseParams,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """float[N]: per note, the p-value of its surprising ratings on its more surprised side under
    honest disagreement (module docstring, step 2); 1 for notes that cannot be flagged."""
    indptr = np.asarray(note_indptr, dtype=np.int64)
    rater = np.asarray(rating_rater)
    per = np.diff(indptr)
    n_notes = per.shape[0]
    note = np.repeat(np.arange(n_notes), per)
    events = surprising(prediction, rating_value, params)
    with np.errstate(invalid="ignore"):
        at_risk = prediction > params.residual
    # read on the fitted ratings only: the left-out ones are the suspects' (a bloc's) turned ratings
    fitted = at_risk if exclude is None else at_risk & ~np.asarray(exclude, bool)
    rate = _honest_rate(prediction, events, fitted, at_risk, params.bins)
    if params.rater_prior > 0:  # a rater's own surprise rate, without this rating, shrunk to 1
        n_raters = rater_factor.shape[0]
        seen = np.bincount(rater, weights=events.astype(np.float64), minlength=n_raters)
        expected = np.bincount(rater, weights=rate, minlength=n_raters)
        ratio = (seen[rater] - events + params.rater_prior) / (expected[rater] - rate + params.rater_prior)
        rate = np.minimum(rate * ratio, 1.0)
    side = np.nan_to_num(np.asarray(rater_factor, dtype=np.float64))[rater] > 0

    def by_note(v: np.ndarray) -> np.ndarray:
        return np.bincount(note, weights=v, minlength=n_notes)

    count = [by_note((events & (side == s)).astype(np.float64)) for s in (True, False)]
    expect = [by_note(rate * (side == s)) for s in (True, False)]
    p = np.ones(n_notes)
    c = params.side_prior
    for s in (0, 1):
        # a misfit of the note's honest raters shows on both sides; a bloc turns one camp
        misfit = np.maximum(1.0, (count[1 - s] + c) / (expect[1 - s] + c)) if c > 0 else 1.0
        test = (per >= params.min_ratings) & (count[s] >= params.min_events)
        lam = np.maximum(misfit * expect[s], 1e-300)
        p = np.where(test, np.minimum(p, gammainc(np.maximum(count[s], 1.0), lam)), p)  # P(Poisson ≥ count)
    return np.minimum(1.0, 2.0 * p)  # the more surprised of two sides


def benjamini_hochberg(pvalues: np.ndarray, tested: np.ndarray, fdr: float) -> np.ndarray:
    """bool[N]: the ``tested`` entries Benjamini–Hochberg's step-up rejects at ``fdr``."""
    p = np.asarray(pvalues)[tested]
    out = np.zeros(np.asarray(pvalues).shape[0], dtype=bool)
    if p.shape[0] == 0:
        return out
    ranked = np.sort(p)
    ok = np.flatnonzero(ranked <= fdr * np.arange(1, p.shape[0] + 1) / p.shape[0])
    if ok.shape[0]:
        out[tested] = p <= ranked[ok[-1]]
    return out


def surprise_groups(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    surprising: np.ndarray,
    flagged: np.ndarray,
    n_raters: int,
    params: SurpriseParams,
) -> np.ndarray:
    """int32[U]: group 1.. of raters linked by surprising ratings on ≥ ``min_shared`` common flagged
    notes (components of ≥ ``min_group``, numbered by their lowest rater), 0 for none."""
    indptr = np.asarray(note_indptr, dtype=np.int64)
    rater = np.asarray(rating_rater)
    keys = []
    for n in np.flatnonzero(flagged).tolist():
        lo, hi = int(indptr[n]), int(indptr[n + 1])
        who = np.unique(rater[lo:hi][surprising[lo:hi]].astype(np.int64))[: params.max_per_note]
        i, j = np.triu_indices(who.shape[0], k=1)
        keys.append(who[i] * n_raters + who[j])
    label = np.zeros(n_raters, dtype=np.int32)
    if not keys:
        return label
    pair, count = np.unique(np.concatenate(keys), return_counts=True)
    pair = pair[count >= params.min_shared]
    comp = connected_components(pair // n_raters, pair % n_raters, n_raters)
    size = np.bincount(comp, minlength=int(comp.max()) + 1 if comp.shape[0] else 1)
    big = (comp > 0) & (size[comp] >= params.min_group)
    kept = np.unique(comp[big])
    label[big] = (np.searchsorted(kept, comp[big]) + 1).astype(np.int32)
    return label


def surprise_filter(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    mu: float,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    params: SurpriseParams | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(keep bool[R], group int32[U], flagged bool[N]): the defence in one call (module docstring).

    ``keep`` is false on the surprising ratings of the flagged notes; ``group`` labels the raters
    the views and detection report (U = ``len(rater_intercept)``).
    """
    params = params if params is not None else SurpriseParams()
    indptr = np.asarray(note_indptr, dtype=np.int64)
    per = np.diff(indptr)
    rater = np.asarray(rating_rater)
    value = np.asarray(rating_value)
    exclude = None
    flagged = np.zeros(per.shape[0], dtype=bool)
    drop = np.zeros(rater.shape[0], dtype=bool)
    suspect = np.zeros(len(rater_intercept), dtype=bool)
    group = np.zeros(len(rater_intercept), dtype=np.int32)
    rated = per >= params.min_ratings
    for round_ in range(params.rounds):
        pred = robust_predictions(indptr, rater, value, mu, rater_intercept, rater_factor, params, exclude)
        p = note_pvalues(indptr, rater, value, pred, rater_factor, params, exclude)
        new = benjamini_hochberg(p, rated, params.fdr) & ~flagged
        if not new.any():
            break
        flagged |= new
        drop |= surprising(pred, value, params) & np.repeat(new, per)
        if round_ == 0:  # groups from the direct evidence only: later rounds judge with them left out
            group = surprise_groups(indptr, rater, drop, flagged, len(rater_intercept), params)
        # later rounds refit every note without the NOT_HELPFUL ratings of the raters set aside so far
        suspect[rater[drop]] = True
        exclude = suspect[rater] & (value == 0.0)
    return ~drop, group, flagged

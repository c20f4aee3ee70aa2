"""Concerted surprise: notes that one side's raters rate down against their own viewpoint (Bridgewatch).

Not in the reference. A *stealth bloc* (``sim.attacks`` ``stealth_bloc``; arXiv 2511.02615's bad
raters) adds no rating: its members rate the notes they would rate anyway, at the same times, and
only turn their ratings of the targets NOT_HELPFUL. Their timing, co-rating and action sets are
honest, so PSS, quasi-cliques and ``coordination`` see nothing; what is concerted is their
*direction* on the targets. At the small evaluation scale a member turns ~0.25 target ratings on
average (most none), so no test on a rater or a rater pair has the counts to tell a member from an
honest rater (``bench/stealth_bloc.py``: bloc pairs sharing ≥ 2 surprising notes are outnumbered
7:1 by honest pairs). The evidence is per note: a target collects many NOT_HELPFUL ratings from
raters of one side whose own viewpoint says HELPFUL.

1. Residuals the campaign cannot absorb. Under a matrix-factorization fit that includes the
   campaign, a target's note factor and intercept move to explain the bloc. Raters' parameters are
   sound (a member's turned ratings are a few of its many), so each note is refitted alone with the
   raters' intercepts and factors held fixed (``rater_intercept``, ``rater_factor`` from a first
   fit; the runner passes them), by iteratively reweighted least squares with Tukey's biweight
   (``tukey_c``), a 2-parameter ridge solve per note and iteration (``robust_predictions``). A split
   camp then fits its majority and the turned ratings stand out: a NOT_HELPFUL rating whose robust
   prediction exceeds ``residual`` is *surprising*.
2. A significance test against honest disagreement (``note_pvalues``). Honest raters are surprising
   too, at a rate that falls with the prediction; the data calibrate it: P(surprising | prediction)
   read in ``bins`` quantile bins over all fitted ratings (most are honest), times each rater's own
   surprise rate over its other ratings (shrunk by ``rater_prior`` pseudo-counts: a careless rater
   surprises everywhere). A note's expected count per *side* (sign of the rater factor) sums those
   rates. A bloc turns one camp, so the test is one-sided: the surprising count on one side against
   its expectation, inflated by the other side's own excess (``side_prior`` pseudo-counts; a
   note the rank-1 model misfits, e.g. along a second axis of disagreement, surprises both sides,
   and that misfit is not a bloc's); the smaller side p-value, doubled. Not a Poisson of it:
   honest notes' surprise rates vary around their expectation (Var = λ(1 + αλ), α ≈ 0.15–0.25 on
   every simulated community), so a Poisson test flags honest notes, the more the more ratings
   they have (the honest ``large`` community: 1.3% of its notes). The count is a negative binomial
   of overdispersion α, estimated from the notes each round (``note_dispersion``: a moment
   estimate that leaves out the notes far in the tail, so a bloc cannot raise α to hide itself).
   Notes need ≥ ``min_ratings`` ratings and ≥ ``min_events`` surprising ratings on the side.
3. Notes flagged by Benjamini–Hochberg at false discovery rate ``fdr`` over the rated notes, and
   their surprising ratings set aside (the note is judged by the rest, as ``coordination`` does for
   a detected group's concerted ratings; honest raters' surprising ratings there go too). On an
   honest community the test flags, with probability about 1 − ``fdr``, nothing at all, so
   outputs stay X's; under an attack many targets are significant together and the step-up
   threshold loosens with them (group evidence across notes, not one note's share).
4. Rounds (``rounds``): when the bloc is the majority of a target's own camp, the robust refit
   adopts it (the note factor turns to explain the camp's NOT_HELPFUL votes) and neither half is
   surprising. Raters whose ratings step 3 set aside were caught rating against their own
   viewpoint on a significant note, so the next round refits every note with those *suspects'*
   NOT_HELPFUL ratings given no weight (still judged against the refit) and tests again; the honest
   rates are read on the fitted ratings only (the left-out ones are mostly the bloc's turned
   ratings, and calibrating on them would explain the bloc away). A round only adds notes, and
   stops when it adds none: on a community where round 1 flags nothing there are no suspects.
5. Groups, for the views and detection only, from the first round's set-aside (the direct
   evidence): raters sharing surprising ratings on ≥ ``min_shared`` flagged notes (pairs counted
   per flagged note among its at most ``max_per_note`` surprising raters, so no rater × rater
   matrix), connected, ≥ ``min_group`` raters. A rater in no group is not flagged.

The pipeline runs it after the coordination collapse (``adapters.detect_integrity``), on the ratings
that remain, first fit included: a set-aside campaign would otherwise own its targets' refits.

Why not the share quantile this module used before (the top 5% of notes by surprising share):
it refits ~5% of notes on any community, so an honest one's outputs left X's. Flagged notes on
honest and attacked communities, what the test cannot catch and the measured cost are in
docs/surprise.md; the pipeline runs the defence when ``integrity.surprise`` is set (the default).

Cost: ``iterations`` passes over each note's ratings per round (O(R · iterations · rounds), one
numba kernel over the note-sorted ratings, O(ratings of one note) scratch); the test is two
kernel passes for the at-risk predictions, one quantile of them, three passes (``_side_sums``)
and one sort of the notes' p-values, O(R + N log N); pairs are at most flagged notes ×
max_per_note² / 2. Memory: a round keeps each note's refit (``note_fits``: two float64 per note),
not a float[R] prediction; the kernels recompute a rating's prediction from it (``_prediction``,
the same expressions, so the same bits). Per rating it holds the bool[R] set-aside, one float64
per fitted at-risk rating while the quantiles are taken (~30% of ratings at ``large``), then
int16[R] bins; O(N + U + pairs) more; never O(U²). Deterministic: no randomness, serial kernels, stable sorts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from bridgewatch.integrity.components import connected_components
from bridgewatch.integrity.overdispersion import estimate_dispersion, side_means, upper_tail


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
    # the notes' overdispersion α of the test's negative binomial (Var = λ(1 + αλ)); None: estimated
    # from the notes each round (``note_dispersion``), 0: the Poisson test of session 7
    dispersion: float | None = None
    dispersion_trim: float = 0.01  # notes with a side's tail below this stay out of α's estimate

    def check(self) -> None:
        """Raise ``ValueError`` on a setting outside its range."""
        if not self.residual > 0 or not 0 < self.fdr <= 1 or self.side_prior < 0 or self.rater_prior < 0:
            raise ValueError("surprise: need residual > 0, 0 < fdr <= 1 and priors >= 0")
        if (self.dispersion is not None and not self.dispersion >= 0) or not 0 <= self.dispersion_trim < 1:
            raise ValueError("surprise: need dispersion >= 0 (or None: estimated), 0 <= dispersion_trim < 1")
        if self.tukey_c <= 0 or self.ridge < 0 or self.iterations < 1:
            raise ValueError("surprise: need tukey_c > 0, ridge >= 0, iterations >= 1")
        counts = (self.min_events, self.min_ratings, self.min_shared, self.min_group, self.max_per_note)
        if min(*counts, self.rounds, self.bins) < 1 or self.bins > 4096:
            raise ValueError("surprise: counts must be >= 1 (bins at most 4096)")


@nb.njit(nogil=True, cache=True, inline="always")
def _prediction(v, mu, r_int, r_fac, a, b):
    """One rating's robust prediction from its note's refit (a, b) and its rater's (intercept,
    factor): the same float64 expressions the refit uses (``value`` − residual), so a prediction
    recomputed here is bit-identical to one stored; NaN where the rater is not fitted."""
    y = v - mu - r_int
    if not (np.isfinite(y) and np.isfinite(r_fac)):
        return np.nan
    return v - (y - a - b * r_fac)


@nb.njit(nogil=True, cache=True)
def _note_fits(indptr, rater, value, suspect, mu, r_int, r_fac, c, iters, ridge):
    """(a float[N], b float[N]): per note, IRLS (Tukey biweight) of value − mu − r_int on r_fac;
    the NOT_HELPFUL ratings of ``suspect`` bool[U] raters have no weight in the fit."""
    n_notes = indptr.shape[0] - 1
    out_a = np.zeros(n_notes)
    out_b = np.zeros(n_notes)
    for n in range(n_notes):
        lo, hi = indptr[n], indptr[n + 1]
        m = hi - lo
        if m == 0:
            continue
        y = np.empty(m)
        f = np.empty(m)
        w = np.empty(m)
        fit = np.empty(m, dtype=np.bool_)
        for i in range(m):
            u = rater[lo + i]
            y[i] = value[lo + i] - mu - r_int[u]
            f[i] = r_fac[u]
            good = np.isfinite(y[i]) and np.isfinite(f[i])
            fit[i] = good and not (suspect[u] and value[lo + i] == 0.0)
            w[i] = 1.0 if fit[i] else 0.0
            if not good:
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
                if not fit[i]:
                    continue  # an unfitted rater, or a left-out rating, stays out
                t = min(1.0, abs(y[i] - a - b * f[i]) / c)
                w[i] = (1.0 - t * t) ** 2
        out_a[n] = a
        out_b[n] = b
    return out_a, out_b


@nb.njit(nogil=True, cache=True)
def _predictions(indptr, rater, value, mu, r_int, r_fac, a, b):
    """float[R]: every rating's ``_prediction`` (for ``robust_predictions``; the defence itself
    never holds them all)."""
    out = np.empty(rater.shape[0])
    for n in range(indptr.shape[0] - 1):
        for i in range(indptr[n], indptr[n + 1]):
            u = rater[i]
            out[i] = _prediction(value[i], mu, r_int[u], r_fac[u], a[n], b[n])
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


Fit = tuple[np.ndarray, np.ndarray]  # (a float[N], b float[N]): each note's robust intercept and factor


def _checked(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    suspect: np.ndarray | None,
) -> tuple[np.ndarray, ...]:
    """The kernels' contiguous arguments, checked. ``rating_value`` keeps a float32 dtype (the
    matrix's; the kernels widen each value exactly, so a float64[R] copy would change no bit)."""
    indptr = np.ascontiguousarray(note_indptr, dtype=np.int64)
    rater = np.ascontiguousarray(rating_rater)
    value = np.asarray(rating_value)
    value = np.ascontiguousarray(value, dtype=value.dtype if value.dtype == np.float32 else np.float64)
    r_int = np.ascontiguousarray(rater_intercept, dtype=np.float64)
    r_fac = np.ascontiguousarray(rater_factor, dtype=np.float64)
    if r_int.ndim != 1 or r_int.shape != r_fac.shape:
        raise ValueError("rater_intercept and rater_factor must be 1-D arrays of the same length")
    if rater.shape[0] != value.shape[0] or (indptr.shape[0] and indptr[-1] != rater.shape[0]):
        raise ValueError("note_indptr, rating_rater and rating_value do not describe the same ratings")
    if rater.shape[0] and (int(rater.min()) < 0 or int(rater.max()) >= r_int.shape[0]):
        raise ValueError(f"rater indices must lie in [0, {r_int.shape[0]})")
    sus = np.zeros(r_int.shape[0], np.bool_) if suspect is None else np.ascontiguousarray(suspect, np.bool_)
    if sus.shape != r_int.shape:
        raise ValueError("suspect must be a bool array with one entry per rater")
    return indptr, rater, value, r_int, r_fac, sus


def note_fits(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    mu: float,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    params: SurpriseParams,
    suspect: np.ndarray | None = None,
) -> Fit:
    """(a float[N], b float[N]): each note's robust refit (module docstring, step 1), O(N).

    Ratings sorted by note (``note_indptr`` int64[N+1]), ``rating_rater`` int[R], ``rating_value``
    float[R] (helpfulNum); ``mu`` and ``rater_intercept`` / ``rater_factor`` float[U] (first factor;
    NaN: rater not fitted) from a first fit of all ratings. ``suspect`` bool[U] (None: none): raters
    whose NOT_HELPFUL ratings are left out of the refit (still predicted by it). The defence keeps
    these two numbers per note, not a float[R] prediction: each kernel recomputes a rating's
    prediction where it reads it (``_prediction``).
    """
    params.check()
    indptr, rater, value, r_int, r_fac, sus = _checked(
        note_indptr, rating_rater, rating_value, rater_intercept, rater_factor, suspect
    )
    return _note_fits(
        indptr, rater, value, sus, float(mu), r_int, r_fac, params.tukey_c, params.iterations, params.ridge
    )


def robust_predictions(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    mu: float,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    params: SurpriseParams,
    suspect: np.ndarray | None = None,
) -> np.ndarray:
    """float[R]: each rating's prediction under its note's robust refit (``note_fits``; NaN: rater
    not fitted). For tests and ``bench/stealth_bloc.py``; the defence never holds it."""
    args = (note_indptr, rating_rater, rating_value)
    fit = note_fits(*args, mu, rater_intercept, rater_factor, params, suspect)
    indptr, rater, value, r_int, r_fac, _ = _checked(*args, rater_intercept, rater_factor, suspect)
    return _predictions(indptr, rater, value, float(mu), r_int, r_fac, *fit)


def surprising(prediction: np.ndarray, rating_value: np.ndarray, params: SurpriseParams) -> np.ndarray:
    """bool[R]: NOT_HELPFUL ratings whose robust prediction exceeds ``params.residual`` (the rating
    lies more than that below it; NaN predictions never surprise)."""
    with np.errstate(invalid="ignore"):
        return (np.asarray(rating_value) == 0.0) & (np.asarray(prediction) > params.residual)


@nb.njit(nogil=True, cache=True)
def _at_risk(indptr, rater, value, suspect, mu, r_int, r_fac, a, b, residual):
    """float[F]: the predictions above ``residual`` of the fitted ratings (not a suspect's
    NOT_HELPFUL), in rating order: the only per-rating array the test holds (two passes)."""
    n_notes = indptr.shape[0] - 1
    count = 0
    for n in range(n_notes):
        for i in range(indptr[n], indptr[n + 1]):
            u = rater[i]
            if not (suspect[u] and value[i] == 0.0):
                count += _prediction(value[i], mu, r_int[u], r_fac[u], a[n], b[n]) > residual
    out = np.empty(count)
    k = 0
    for n in range(n_notes):
        for i in range(indptr[n], indptr[n + 1]):
            u = rater[i]
            if not (suspect[u] and value[i] == 0.0):
                p = _prediction(value[i], mu, r_int[u], r_fac[u], a[n], b[n])
                if p > residual:
                    out[k] = p
                    k += 1
    return out


@nb.njit(nogil=True, cache=True, inline="always")
def _bin(p, edges):
    """The rate bin of prediction ``p``: bisect right, bins hold [edge k-1, edge k)."""
    lo, hi = 0, edges.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if p < edges[mid]:
            hi = mid
        else:
            lo = mid + 1
    return lo


@nb.njit(nogil=True, cache=True)
def _side_sums(indptr, rater, value, suspect, mu, r_int, r_fac, a, b, side, residual, edges, prior):
    """(count float[2, N], expect float[2, N]): per note and side (0: factor > 0), surprising ratings
    and their honest expectation (``note_pvalues_numpy`` step by step, without its float[R] arrays:
    the first pass recomputes the predictions and keeps only their int16 bins, −1: not at risk)."""
    n_bins = edges.shape[0] + 1
    n_notes = indptr.shape[0] - 1
    bin_of = np.full(rater.shape[0], -1, dtype=np.int16)
    hits = np.zeros(n_bins)
    total = np.zeros(n_bins)
    for n in range(n_notes):
        for i in range(indptr[n], indptr[n + 1]):
            u = rater[i]
            p = _prediction(value[i], mu, r_int[u], r_fac[u], a[n], b[n])
            if p > residual:  # NaN: never at risk
                k = _bin(p, edges)
                bin_of[i] = k
                if not (suspect[u] and value[i] == 0.0):
                    total[k] += 1.0
                    hits[k] += 1.0 if value[i] == 0.0 else 0.0
    rate = hits / np.maximum(total, 1.0)
    seen = np.zeros(r_int.shape[0])
    expected = np.zeros(r_int.shape[0])
    if prior > 0:
        for i in range(rater.shape[0]):
            if bin_of[i] >= 0:
                seen[rater[i]] += 1.0 if value[i] == 0.0 else 0.0
                expected[rater[i]] += rate[bin_of[i]]
    count = np.zeros((2, n_notes))
    expect = np.zeros((2, n_notes))
    for n in range(n_notes):
        for i in range(indptr[n], indptr[n + 1]):
            if bin_of[i] < 0:
                continue
            u = rater[i]
            e = 1.0 if value[i] == 0.0 else 0.0
            r = rate[bin_of[i]]
            if prior > 0:
                r = min(r * (seen[u] - e + prior) / (expected[u] - r + prior), 1.0)
            s = 0 if side[u] else 1
            count[s, n] += e
            expect[s, n] += r
    return count, expect


@nb.njit(nogil=True, cache=True)
def _set_aside(indptr, rater, value, mu, r_int, r_fac, a, b, residual, notes, drop):
    """Mark in ``drop`` bool[R] the surprising ratings (``surprising``) of the ``notes`` bool[N]."""
    for n in range(indptr.shape[0] - 1):
        if notes[n]:
            for i in range(indptr[n], indptr[n + 1]):
                u = rater[i]
                if value[i] == 0.0 and _prediction(value[i], mu, r_int[u], r_fac[u], a[n], b[n]) > residual:
                    drop[i] = True


def note_dispersion(per: np.ndarray, count: np.ndarray, expect: np.ndarray, params: SurpriseParams) -> float:
    """The honest notes' overdispersion α (module docstring, step 2): ``params.dispersion``, or
    ``overdispersion.estimate_dispersion`` over the notes with ≥ ``min_ratings`` ratings, trimmed
    at ``dispersion_trim``."""
    if params.dispersion is not None:
        return float(params.dispersion)
    lam = side_means(count, expect, params.side_prior)
    return estimate_dispersion(count, lam, per >= params.min_ratings, params.dispersion_trim)


def _pvalues(per: np.ndarray, count: np.ndarray, expect: np.ndarray, params: SurpriseParams) -> np.ndarray:
    """float[N] from the per-side sums (module docstring, step 2): the smaller side's negative
    binomial tail (``note_dispersion``) against its expectation inflated by the other side's
    excess, doubled; 1 where untested."""
    lam = side_means(count, expect, params.side_prior)
    alpha = note_dispersion(per, count, expect, params)
    p = np.ones(per.shape[0])
    for s in (0, 1):
        test = (per >= params.min_ratings) & (count[s] >= params.min_events)
        p = np.where(test, np.minimum(p, upper_tail(count[s], lam[s], alpha)), p)
    return np.minimum(1.0, 2.0 * p)


def _edges(at_risk: np.ndarray, bins: int, overwrite: bool = False) -> np.ndarray:
    """float[bins − 1]: quantiles of the fitted at-risk ratings' predictions ``at_risk`` (the
    rate's bins); ``overwrite``: partition ``at_risk`` in place instead of a copy (same values)."""
    if not at_risk.shape[0]:
        return np.full(bins - 1, np.inf)
    return np.quantile(at_risk, np.linspace(0.0, 1.0, bins + 1)[1:-1], overwrite_input=overwrite)


def note_pvalues(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    mu: float,
    rater_intercept: np.ndarray,
    rater_factor: np.ndarray,
    fit: Fit,
    params: SurpriseParams,
    suspect: np.ndarray | None = None,
) -> np.ndarray:
    """float[N]: per note, the p-value of its surprising ratings on its more surprised side under
    honest disagreement (module docstring, step 2); 1 for notes that cannot be flagged.

    ``fit`` from ``note_fits`` (with the same ``suspect``): the honest rate is read on the fitted
    ratings only, since the left-out ones are the suspects' (a bloc's) turned ratings. Numba
    kernels that recompute each prediction from ``fit`` (``_at_risk``, ``_side_sums``); O(R)
    time; one float64 per fitted at-risk rating (the quantiles'), then int16[R] bins, and
    O(N + U) memory.
    """
    indptr, rater, value, r_int, r_fac, sus = _checked(
        note_indptr, rating_rater, rating_value, rater_intercept, rater_factor, suspect
    )
    a, b = (np.ascontiguousarray(x, dtype=np.float64) for x in fit)
    mu, residual = float(mu), float(params.residual)
    edges = _edges(_at_risk(indptr, rater, value, sus, mu, r_int, r_fac, a, b, residual), params.bins, True)
    side = np.nan_to_num(r_fac) > 0
    count, expect = _side_sums(
        indptr, rater, value, sus, mu, r_int, r_fac, a, b, side, residual, edges, float(params.rater_prior)
    )
    return _pvalues(np.diff(indptr), count, expect, params)


def note_pvalues_numpy(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    prediction: np.ndarray,
    rater_factor: np.ndarray,
    params: SurpriseParams,
    exclude: np.ndarray | None = None,
) -> np.ndarray:
    """Twin of ``note_pvalues`` in numpy (float[R] arrays at every step; the tests' oracle)."""
    indptr = np.asarray(note_indptr, dtype=np.int64)
    rater = np.asarray(rating_rater)
    per = np.diff(indptr)
    note = np.repeat(np.arange(per.shape[0]), per)
    events = surprising(prediction, rating_value, params)
    with np.errstate(invalid="ignore"):
        at_risk = prediction > params.residual
    fitted = at_risk if exclude is None else at_risk & ~np.asarray(exclude, bool)
    edges = _edges(prediction[fitted], params.bins)
    k = np.searchsorted(edges, np.nan_to_num(prediction), side="right")
    hits = np.bincount(k[fitted], weights=events[fitted].astype(np.float64), minlength=params.bins)
    total = np.bincount(k[fitted], minlength=params.bins)
    rate = np.where(at_risk, (hits / np.maximum(total, 1))[k], 0.0)
    if params.rater_prior > 0:  # a rater's own surprise rate, without this rating, shrunk to 1
        n_raters = rater_factor.shape[0]
        seen = np.bincount(rater, weights=events.astype(np.float64), minlength=n_raters)
        expected = np.bincount(rater, weights=rate, minlength=n_raters)
        ratio = (seen[rater] - events + params.rater_prior) / (expected[rater] - rate + params.rater_prior)
        rate = np.where(at_risk, np.minimum(rate * ratio, 1.0), 0.0)
    side = np.nan_to_num(np.asarray(rater_factor, dtype=np.float64))[rater] > 0

    def by_side(v: np.ndarray) -> np.ndarray:
        return np.stack(
            [np.bincount(note, weights=v * (side == s), minlength=per.shape[0]) for s in (True, False)]
        )

    count, expect = by_side(events.astype(np.float64)), by_side(rate)
    return _pvalues(per, count, expect, params)


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
    params.check()
    indptr, rater, value, r_int, r_fac, suspect = _checked(
        note_indptr, rating_rater, rating_value, rater_intercept, rater_factor, None
    )
    per = np.diff(indptr)
    mu = float(mu)
    flagged = np.zeros(per.shape[0], dtype=bool)
    drop = np.zeros(rater.shape[0], dtype=bool)
    group = np.zeros(r_int.shape[0], dtype=np.int32)
    rated = per >= params.min_ratings
    for round_ in range(params.rounds):
        # later rounds refit every note without the NOT_HELPFUL ratings of the raters set aside so far
        fit = note_fits(indptr, rater, value, mu, r_int, r_fac, params, suspect)
        p = note_pvalues(indptr, rater, value, mu, r_int, r_fac, fit, params, suspect)
        new = benjamini_hochberg(p, rated, params.fdr) & ~flagged
        if not new.any():
            break
        flagged |= new
        _set_aside(indptr, rater, value, mu, r_int, r_fac, *fit, float(params.residual), new, drop)
        if round_ == 0:  # groups from the direct evidence only: later rounds judge with them left out
            group = surprise_groups(indptr, rater, drop, flagged, r_int.shape[0], params)
        suspect[rater[drop]] = True
    return ~drop, group, flagged

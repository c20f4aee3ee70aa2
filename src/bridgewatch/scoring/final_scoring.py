"""Final scoring of one MF scorer (§2.8, §5), against its frozen prescoring (``scorer.prescore``).

``score_final`` / ``final_columns`` score every note with the prescoring rater parameters frozen,
plus the NoHighVol / NoCorrelated / PopulationSampled refits and the pseudo-rater bounds;
``final_rating_mask`` is the final round's ratings, ``captured_out`` and ``reported_notes`` the
notes a scorer reports. Split from ``scorer`` (prescoring and the run's inputs), which it reads.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring.capture import drop_captured_out
from bridgewatch.scoring.config import MFConfig, ScoringConfig
from bridgewatch.scoring.mf import MFProblem, build_problem
from bridgewatch.scoring.note_solve import score_notes
from bridgewatch.scoring.rating_pass import final_round, note_counts, note_counts_by
from bridgewatch.scoring.recent import Recent
from bridgewatch.scoring.rescore import ReusedFits, reuse_or_fit, same_fit, taken
from bridgewatch.scoring.rules import note_counts_by_rater_sign_kept
from bridgewatch.scoring.scorer import (
    PrescoreResult,
    ScoringInputs,
    forget_scopes,
    scope_mask,
    scored_raters,
    scorer_mf,
    scorer_torch_init,
)
from bridgewatch.scoring.scorer_specs import ScorerSpec
from bridgewatch.scoring.sweeps import SweepEngine
from bridgewatch.scoring.uncertainty import pseudo_rater_bounds


def final_rating_mask(inputs: ScoringInputs, spec: ScorerSpec, pre: PrescoreResult, config: ScoringConfig):
    """(bool[R] final-round ratings, bool[R] scope): notes with ≥ 5 in-scope ratings, raters with
    prescoring parameters (and above the helpfulness threshold where the scorer uses it) — §2.8."""
    m = inputs.matrix
    scope, _ = scope_mask(inputs, spec)
    # Keyed by identity; the value holds ``spec`` and ``pre`` so that their ids stay theirs.
    key = (id(spec), id(pre), config.filters.min_ratings_per_note)
    cached = _FINAL_MASK.get(inputs, key)
    if cached is not None:
        return cached[2], scope  # type: ignore[index]
    keep = final_round(m, scope, config.filters.min_ratings_per_note, pre.helpful_raters)
    keep.flags.writeable = False
    _FINAL_MASK.put(inputs, key, (spec, pre, keep))
    return keep, scope


# Per ScoringInputs object: the last final-round masks (one bool[R] each); a scorer's final
# scoring asks for its own two or three times (fit, filters, rater factors).
_FINAL_MASK = Recent(2)


def forget_masks(inputs: ScoringInputs) -> None:
    """Drop the scopes and final-round masks kept for ``inputs`` once a scorer's final scoring is
    done. The next scorer asks for its own (a Gaussian scorer for its base's, computed again: one
    pass), and a kept final mask also holds its scorer's expanded prescoring, so keeping the
    last few held 3 scopes, 2 masks and 2 dense states through every later fit and the outputs'
    assembly (~1.5 GiB of masks alone at 206M ratings, by their size)."""
    forget_scopes(inputs)
    _FINAL_MASK.clear(inputs)


def final_round_counts(
    m: RatingMatrix, pre: PrescoreResult, scope: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """float[N] ``NumFinalRoundRatings``: the reference counts a note's in-scope ratings by every
    rater its prescoring scored — not only the ratings the final fit used (golden cases agree
    exactly); NaN for notes without any. Scorers without reputation count the fitted ratings."""
    if pre.helpfulness is None:
        counts = note_counts(m, keep).astype(np.float64)
    else:
        counts = note_counts_by(m, scope, scored_raters(m, pre)).astype(np.float64)
    counts[counts == 0] = np.nan
    return counts


def captured_out(inputs: ScoringInputs, spec: ScorerSpec) -> np.ndarray:
    """bool[N]: notes whose share of ratings from in-scope raters is below the scorer's capture
    threshold (§6.1); all False without one."""
    if spec.capture_threshold is None:
        return np.zeros(inputs.matrix.n_notes, dtype=bool)
    share = inputs.capture
    if share is None:
        _, in_group = scope_mask(inputs, spec)
        share = P.capture_share(inputs.matrix, inputs.base_keep, in_group)
    return ~(share >= spec.capture_threshold)


def reported_notes(inputs: ScoringInputs, spec: ScorerSpec) -> np.ndarray:
    """bool[N]: notes this scorer gives a result for (§6.1) — every note of the status history
    in its topic scope that passes the capture test. The reference outer-joins its note counts
    with the (topic-filtered) status history, so without a capture threshold even a note with
    no in-scope rating gets a status (InitialNMR); a capture test needs ratings to pass."""
    topics = P.note_topic_mask(
        inputs.matrix.n_notes, inputs.note_topic, topic=spec.topic, exclude_topics=spec.exclude_topics
    )
    in_history = inputs.notes["inStatusHistory"].to_numpy(dtype=bool)
    return topics & in_history & ~captured_out(inputs, spec)


def final_note_fit(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    pre: PrescoreResult,
    config: ScoringConfig,
    mask: np.ndarray,
    rho_note: float,
    engine: SweepEngine | None = None,
    problem: MFProblem | None = None,
    mf: MFConfig | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One final fit of note parameters on the ratings ``mask`` (bool[R]), §2.8: (intercept
    float64[N], factor float64[N, k], rater factor float64[U] its rules and filters read).

    Raters and μ stay at prescoring's values — except for a normalized-loss scorer, whose final
    fit retrains them (``mf_normalized``); its rater factors are then the retrained ones (NaN for
    raters outside the fit) instead of prescoring's. ``problem``: ``build_problem(matrix, mask)``
    when the caller has it already (each build is a few passes over the ratings).
    """
    m = inputs.matrix
    mfc = scorer_mf(spec, config) if mf is None else mf
    problem = build_problem(m, mask) if problem is None else problem
    ri, rf, mu = pre.params.rater_intercept, pre.params.rater_factor, pre.params.mu
    if not mfc.normalized_loss or not problem.n_ratings:
        start = (pre.params.note_intercept, pre.params.note_factor)
        intercept, factor = score_notes(problem, ri, rf, mu, rho_note, mfc, engine=engine, init=start)
        return intercept, factor, rf[:, 0].astype(np.float64)
    from bridgewatch.scoring.mf import to_full
    from bridgewatch.scoring.mf_normalized import normalized_final_fit

    torch_init = scorer_torch_init(inputs, pre.seed, rater_grouped=True)
    fit = normalized_final_fit(problem, pre.params, rho_note, mfc, pre.seed, torch_init)
    full = to_full(problem, *fit)
    return full.note_intercept, full.note_factor, full.rater_factor[:, 0]


def final_rater_factor(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    pre: PrescoreResult,
    config: ScoringConfig,
    engine: SweepEngine | None = None,
) -> np.ndarray:
    """float64[U] rater factors final scoring's filters use: prescoring's, for raters allowed in
    final scoring (NaN elsewhere); a normalized-loss scorer's retrained ones (``final_note_fit``)."""
    helpful = pre.helpful_raters
    if not scorer_mf(spec, config).normalized_loss:
        return np.where(helpful, pre.params.rater_factor[:, 0].astype(np.float64), np.nan)
    keep, _ = final_rating_mask(inputs, spec, pre, config)
    return final_note_fit(inputs, spec, pre, config, keep, pre.rho_note, engine)[2]


def score_final(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    pre: PrescoreResult,
    config: ScoringConfig,
    engine: SweepEngine | None = None,
    *,
    capture: bool = True,
    reuse: ReusedFits | None = None,
) -> pd.DataFrame:
    """Final scoring (§2.8, §5): one row per note of the matrix (N rows, ``noteId`` order), the
    frame of ``final_columns`` (see there); notes below the capture threshold get NaN parameters
    unless ``capture`` is False."""
    columns = final_columns(inputs, spec, pre, config, engine, reuse=reuse)
    if capture:
        columns = drop_captured_out(columns, captured_out(inputs, spec), spec)
    return pd.DataFrame(columns)


def final_columns(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    pre: PrescoreResult,
    config: ScoringConfig,
    engine: SweepEngine | None = None,
    *,
    reuse: ReusedFits | None = None,
) -> dict[str, np.ndarray]:
    """Final scoring (§2.8, §5) as columns of N values (the matrix's notes, ``noteId`` order).

    Columns (prefix = ``spec.prefix``): ``noteId``, ``{p}NoteIntercept``, ``{p}NoteFactor1``,
    ``{p}NumFinalRoundRatings``, ``{p}NoteInterceptNoHighVol``, ``{p}NoteInterceptNoCorrelated``,
    ``{p}NoteInterceptPopulationSampled``, ``{p}NoteInterceptMin/Max`` (pseudo-raters, NaN if off),
    ``numRatings`` (in-scope ratings, the minRatingsNeeded count), and the side counts the rules
    need: ``minSignCount``, ``negMeanHelpful``, ``posMeanHelpful``, ``netMinHelpful``,
    ``netMinHelpfulRatio``. Every fitted note has its parameters: rules and filters see them all,
    as the reference's do, and ``drop_captured_out`` blanks the capture test's failures after.
    ``reuse``: fits of some notes carried over from the previous run (partial rescoring): only
    their NoHighVol refit runs; not for a normalized-loss scorer, whose final fit moves raters.
    """
    m = inputs.matrix
    mfc = scorer_mf(spec, config)
    keep, scope = final_rating_mask(inputs, spec, pre, config)
    rho = pre.rho_note
    ri, rf, mu = pre.params.rater_intercept, pre.params.rater_factor, pre.params.mu
    fit_keep = reuse_or_fit(reuse, keep, m.note)
    problem = build_problem(m, fit_keep)
    if fit_keep.any() or reuse is None:
        intercept, factor, fit_rf = final_note_fit(inputs, spec, pre, config, fit_keep, rho, engine, problem)
    else:  # every note's fit is reused
        k = pre.params.note_factor.shape[1]
        intercept, factor = np.full(m.n_notes, np.nan), np.full((m.n_notes, k), np.nan)
        fit_rf = rf[:, 0].astype(np.float64)

    fitted = intercept  # the final fit's own values (reused ones replace some below)
    refit_mf = mfc.for_refits()

    def refit(subset: np.ndarray, rho_n: float, name: str | None) -> np.ndarray:
        # Each refit is a final scoring of its own on the subset: notes need 5 ratings *in the
        # subset* before the rater filter, as in the reference's ``_score_notes_and_users``.
        mask = final_round(m, scope & subset, config.filters.min_ratings_per_note, pre.helpful_raters)
        if name is not None:
            mask = reuse_or_fit(reuse, mask, m.note)
        out = np.full(m.n_notes, np.nan)
        if mask.any():
            out = same_fit(mask, rho_n, fit_keep, rho, fitted)
            if out is None:
                out = final_note_fit(inputs, spec, pre, config, mask, rho_n, engine, mf=refit_mf)[0]
        return out if name is None else taken(reuse, name, out)

    no_high = refit(~inputs.high_volume[m.rater], rho, None)
    intercept = taken(reuse, "intercept", intercept)
    no_corr = (
        refit(~inputs.correlated[m.rater], rho, "noCorrelated")
        if inputs.correlated is not None
        else intercept.copy()
    )
    pop = refit(m.population_sampled, 10.0, "populationSampled")
    lo = hi = np.full(m.n_notes, np.nan)
    if spec.pseudoraters and problem.n_ratings:
        whole = None if reuse is None else build_problem(m, keep)
        start = (intercept, factor)
        bounds = pseudo_rater_bounds(problem, ri, rf, mu, refit_mf, start=start, reference=whole)
        lo, hi = bounds.intercept_min, bounds.intercept_max
    lo, hi = taken(reuse, "interceptMin", lo), taken(reuse, "interceptMax", hi)
    factor1 = taken(reuse, "factor", factor[:, 0])
    sides = note_counts_by_rater_sign_kept(m.note, m.rater, m.value, keep, fit_rf, m.n_notes)
    p = spec.prefix
    columns = {
        "noteId": m.note_ids,
        f"{p}NoteIntercept": intercept,
        f"{p}NoteFactor1": factor1,
        f"{p}NumFinalRoundRatings": final_round_counts(m, pre, scope, keep),
        f"{p}NoteInterceptNoHighVol": no_high,
        f"{p}NoteInterceptNoCorrelated": no_corr,
        f"{p}NoteInterceptPopulationSampled": pop,
        f"{p}NoteInterceptMin": lo,
        f"{p}NoteInterceptMax": hi,
        "numRatings": note_counts(m, scope),
        "minSignCount": sides.min_sign_count,
        "negMeanHelpful": sides.neg_mean_helpful,
        "posMeanHelpful": sides.pos_mean_helpful,
        "netMinHelpful": sides.net_min_helpful,
        "netMinHelpfulRatio": sides.net_min_helpful_ratio,
    }
    # The fits read the notes, raters and values whole, and nothing after them in the scorer
    # does (its filters stream theirs, its low-diligence fit builds its own layout). Mapped from
    # the cache, those pages stayed resident to the next step that hands them back: after a
    # normalized-loss scorer, which has no low-diligence fit, into the next scorer (~0.8 GiB at
    # X's 206M ratings).
    m.release()
    return columns

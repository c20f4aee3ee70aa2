"""A Gaussian scorer end to end (§6.2): Core's prescoring, the kernel intercepts, the rule chain.

The Gaussian scorers fit nothing of their own for raters: they take the prescoring of the scorer
named in ``spec.prescoring`` (MFCoreScorer) and only replace the final-round note model by the
kernel-smoothed curve of ``gaussian.gaussian_scores`` (run over the matrix itself by
``gaussian_walk``). Everything around it — scope, capture test, filters, rule chain, output
columns — is the ``ScorerRun`` machinery every MF scorer uses, so a Gaussian run slots into
assembly and meta scoring like any other.

As in the reference, each robustness variant (without high-volume raters, without correlated
raters, population-sampled ratings only) re-applies the ≥ 5 ratings per note filter to its own
subset before scoring, and only the full run gets the frozen-rater MF note factor.
"""

from __future__ import annotations

import dataclasses
import weakref

import numpy as np
import pandas as pd

from bridgewatch.scoring import gaussian as G
from bridgewatch.scoring import gaussian_walk as GW
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.final_scoring import final_round_counts, reported_notes
from bridgewatch.scoring.incorrect_filter import (
    rater_incorrect_totals_kept,
)
from bridgewatch.scoring.mf import build_problem
from bridgewatch.scoring.note_solve import score_notes
from bridgewatch.scoring.rating_pass import any_rater_in, final_round, note_counts
from bridgewatch.scoring.rescore import ReusedFits, reuse_or_fit, taken
from bridgewatch.scoring.rules import RuleInputs, compute_statuses, note_counts_by_rater_sign_kept
from bridgewatch.scoring.scorer import ScoringInputs, forget_scopes, scope_mask
from bridgewatch.scoring.scorer_run import (
    ScorerRun,
    expand_prescore,
    low_diligence,
    note_filters,
    rater_factor,
)
from bridgewatch.scoring.scorer_specs import ScorerSpec
from bridgewatch.scoring.sweeps import SweepEngine

# Per ScoringInputs object: every Gaussian pass of a run (3 scorers x 4 rating subsets) needs the
# same authors, and looking up thousands of string ids each time was a fixed cost per pass.
_AUTHORS: weakref.WeakKeyDictionary[ScoringInputs, np.ndarray] = weakref.WeakKeyDictionary()


def note_authors(inputs: ScoringInputs) -> np.ndarray:
    """int[N]: each note's author as a rater index of the matrix, -1 when the author never rated
    (read-only; computed once per ``inputs``)."""
    cached = _AUTHORS.get(inputs)
    if cached is None:
        cached = _note_authors(inputs)
        cached.flags.writeable = False
        _AUTHORS[inputs] = cached
    return cached


def _note_authors(inputs: ScoringInputs) -> np.ndarray:
    authors = inputs.notes["noteAuthorParticipantId"].to_numpy(dtype=object)
    known = np.array([isinstance(a, str) for a in authors], dtype=bool)
    out = np.full(authors.shape[0], -1, dtype=np.int64)
    if known.any():
        out[known] = inputs.matrix.rater_index(authors[known])
    return out


def pass_params(spec: ScorerSpec) -> tuple[G.GaussianPassParams, G.GaussianPassParams]:
    """The (CRH, CRNH) pass constants of a Gaussian ``spec``: §6.2's, with its own bandwidth."""
    if spec.gaussian_bandwidth is None:
        return G.CRH_PARAMS, G.CRNH_PARAMS
    bw = spec.gaussian_bandwidth
    return (
        dataclasses.replace(G.CRH_PARAMS, bandwidth=bw),
        dataclasses.replace(G.CRNH_PARAMS, bandwidth=bw),
    )


def gaussian_intercepts(
    inputs: ScoringInputs,
    subset: np.ndarray,
    helpful_raters: np.ndarray,
    factor: np.ndarray,
    config,
    params: tuple[G.GaussianPassParams, G.GaussianPassParams] = (G.CRH_PARAMS, G.CRNH_PARAMS),
    reuse: ReusedFits | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kernel intercepts over one rating subset (bool[R], already in scope).

    Notes need ≥ ``min_ratings_per_note`` ratings within ``subset``; then only ratings of
    ``helpful_raters`` (bool[U]) count, each at its rater's prescoring ``factor`` (float[U]), and
    every note's author adds an implicit HELPFUL rating to the CRH pass. ``params``: the (CRH,
    CRNH) pass constants. Returns (intercept float64[N], kernel note factor float64[N], bool[R]
    the ratings used). ``reuse``: the kernel skips its ``fixed`` notes (NaN there); each note's
    kernel reads only its own ratings, so the others' values do not change.
    """
    m = inputs.matrix
    used = final_round(m, subset, config.filters.min_ratings_per_note, helpful_raters)
    fit = reuse_or_fit(reuse, used, m.note)
    # The passes walk the matrix's note order through ``fit``, the authors' implicit ratings
    # inline: no per-rating copies (they were ~95 bytes a fitted rating), the same bits.
    crh, crnh = params
    out = GW.gaussian_scores(
        m.note_indptr, fit, m.rater, m.value, factor, note_authors(inputs), crh_params=crh, crnh_params=crnh
    )
    return out["intercept"], out["note_factor"], used


def kept_no_high(
    inputs: ScoringInputs,
    scope: np.ndarray,
    helpful_raters: np.ndarray,
    min_ratings: int,
    reuse: ReusedFits | None,
) -> ReusedFits | None:
    """The NoHighVol pass's reuse: the ``reuse.fixed`` notes whose kernel input is the one the
    previous run had, with that run's values (None: none known, run the pass on every note).

    The pass reads a note's in-``scope`` ratings by raters not high-volume, if there are at
    least ``min_ratings`` of them, and of those only the ones by ``helpful_raters``. A fixed
    note's ratings, scope and raters' groups are unchanged (else it would be fully rescored), so
    only the raters in ``reuse.high_flipped`` can move its input: with their flags put back, a
    note whose pass would read exactly the same ratings keeps the previous value (the kernel
    reads each note's own ratings only, so the others' values do not depend on it).
    """
    if reuse is None or reuse.high_flipped is None or "noHighVol" not in reuse.values:
        return None
    m = inputs.matrix
    high = np.asarray(inputs.high_volume, dtype=bool)
    before = high ^ np.asarray(reuse.high_flipped, dtype=bool)
    now = final_round(m, scope & ~high[m.rater], min_ratings, helpful_raters)
    then = final_round(m, scope & ~before[m.rater], min_ratings, helpful_raters)
    moved = note_counts(m, now != then) > 0
    same = np.asarray(reuse.fixed, dtype=bool) & ~moved
    if not same.any():
        return None
    return ReusedFits(same, {"noHighVol": reuse.values["noHighVol"]})


def run_gaussian(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    config: ScoringConfig,
    previous_status: np.ndarray,
    base: ScorerRun,
    *,
    engine: SweepEngine | None = None,
    reuse: ReusedFits | None = None,
) -> ScorerRun:
    """Final scoring of a Gaussian ``spec`` on top of ``base``, the run whose prescoring it reuses.

    The tag thresholds, per-rater incorrect-tag rates and low-diligence prescoring are ``base``'s,
    as the reference passes MFCoreScorer's prescoring output to the Gaussian scorers. ``engine``
    runs the frozen-rater MF refit that gives the note factor (default: in process). ``reuse``:
    fits carried over for some notes (partial rescoring): only their NoHighVol pass runs, and
    not even that where its input did not move (``kept_no_high``).
    """
    m = inputs.matrix
    pre = expand_prescore(base.pre)  # (a kept run's is packed)
    base_diligence = None if base.diligence is None else expand_prescore(base.diligence)
    tf = config.tag_filter
    scope = scope_mask(inputs, spec)[0]  # (not the in-group mask: a rating mask held for nothing)
    rf = rater_factor(pre)
    helpful = pre.helpful_raters
    params = pass_params(spec)

    def intercept_of(subset: np.ndarray, name: str | None) -> np.ndarray:
        if not subset.any():
            return taken(reuse, name, np.full(m.n_notes, np.nan)) if name else np.full(m.n_notes, np.nan)
        if name is None:
            return gaussian_intercepts(inputs, subset, helpful, rf, config, params)[0]
        return taken(reuse, name, gaussian_intercepts(inputs, subset, helpful, rf, config, params, reuse)[0])

    fitted, kernel_factor, keep = gaussian_intercepts(inputs, scope, helpful, rf, config, params, reuse)
    intercept = taken(reuse, "intercept", fitted)
    # The displayed factor comes from a frozen-rater MF refit; the kernel's factor fills the gaps.
    # The reference builds that MF with default λs, whatever the base scorer's own (group 15).
    mf_cfg = config.mf
    problem = build_problem(m, reuse_or_fit(reuse, keep, m.note))
    mf_factor = np.full(m.n_notes, np.nan)
    if problem.n_ratings:
        ri, rfs = pre.params.rater_intercept, pre.params.rater_factor
        start = (pre.params.note_intercept, pre.params.note_factor)
        mf_factor = score_notes(
            problem, ri, rfs, pre.params.mu, pre.rho_note, mf_cfg, engine=engine, init=start
        )[1][:, 0]
    # The refit read the notes, raters and values whole; the passes below read the raters and
    # values again a block of notes at a time, and the notes not at all: they go back now,
    # not under the next passes' kernel tables (12 bytes a rating, 2.3 GiB at X's scale).
    del problem
    m.release()
    factor = taken(reuse, "factor", np.where(np.isnan(mf_factor), kernel_factor, mf_factor))
    no_high_subset = scope & ~inputs.high_volume[m.rater]
    kept = kept_no_high(inputs, scope, helpful, config.filters.min_ratings_per_note, reuse)
    if kept is None or not no_high_subset.any():
        no_high = intercept_of(no_high_subset, None)
    else:
        fresh = gaussian_intercepts(inputs, no_high_subset, helpful, rf, config, params, kept)[0]
        no_high = taken(kept, "noHighVol", fresh)
    del no_high_subset  # (each rating mask is 1 byte a rating: 0.19 GiB at X's scale)
    corr = inputs.correlated
    if corr is None:
        no_corr = intercept.copy()
    elif scope.any() and not any_rater_in(m.rater, scope, corr):  # the pass above, on the same ratings
        no_corr = taken(reuse, "noCorrelated", fitted.copy())
    else:
        no_corr = intercept_of(scope & ~corr[m.rater], "noCorrelated")
    pop = intercept_of(scope & m.population_sampled, "populationSampled")
    num_final = final_round_counts(m, pre, scope, keep)
    num_ratings = note_counts(m, scope)
    scored = reported_notes(inputs, spec)
    # The reference's filters run before it drops the notes failing the capture test, so their
    # factors still shape the z-normalization and the distance percentile of the tag weights.
    filter_factor = factor.copy()
    # What a later partial rescoring reuses: the values before the capture test blanks them.
    fits = {"intercept": intercept.copy(), "factor": filter_factor, "noCorrelated": no_corr.copy(),
            "populationSampled": pop.copy(), "interceptMin": np.full(m.n_notes, np.nan),
            "interceptMax": np.full(m.n_notes, np.nan), "noHighVol": no_high.copy()}  # fmt: skip
    for arr in (intercept, factor, no_high, no_corr, pop):
        arr[~scored] = np.nan

    # The filters read the base scorer's prescoring: tag thresholds and incorrect-tag habits.
    base_scope = scope_mask(inputs, base.spec)[0]
    round2 = base_scope & helpful[m.rater]
    # Neither scope is read again, and the kept scopes (with their in-group masks) are four
    # rating masks under the filters' and the low-diligence fit's arrays, where this scorer
    # peaks: they go now, not at the scorer's end (``final_scoring.forget_masks``).
    del scope, base_scope
    forget_scopes(inputs)
    inc_num, inc_total = rater_incorrect_totals_kept(m, round2)
    # Same ratings and rater factors as the base scorer's reputation fit: reuse it when it exists.
    # It runs before the filters (as in ``final_scorer``): their tag aggregates are not held
    # under its arrays, and round 2's mask goes before the filters' passes.
    fit_keep = reuse_or_fit(reuse, keep, m.note)
    low_dil = taken(
        reuse, "lowDiligence", low_diligence(inputs, spec, config, pre, fit_keep, round2, base_diligence)
    )
    del round2, fit_keep
    thresholds = base.tag_thresholds
    agg, tag_flags, tag_names, inc, inc_flags = note_filters(
        m, keep, filter_factor, rf, thresholds, inc_num, inc_total, tf
    )
    sides = note_counts_by_rater_sign_kept(
        m.note, m.rater, m.value, keep, pre.params.rater_factor[:, 0], m.n_notes
    )
    # The reference computes the kernel in float32; compare its thresholds in float32 too.
    rule_intercept = intercept.astype(np.float32)
    rule_inputs = RuleInputs(
        intercept=rule_intercept,
        factor=factor.astype(np.float32),
        num_ratings=num_ratings,
        is_not_misleading=inputs.is_not_misleading,
        previous_status=previous_status,
        min_sign_count=sides.min_sign_count,
        neg_mean_helpful=sides.neg_mean_helpful,
        pos_mean_helpful=sides.pos_mean_helpful,
        net_min_helpful=sides.net_min_helpful,
        net_min_helpful_ratio=sides.net_min_helpful_ratio,
        tag_filtered=tag_flags,
        filter_tags=tag_names,
        incorrect_filtered=inc_flags,
        low_diligence_intercept=low_dil,
        intercept_no_high_vol=no_high.astype(np.float32),
        intercept_no_correlated=no_corr.astype(np.float32),
    )
    result = compute_statuses(rule_inputs, spec.rules, final_round=True)
    p = spec.prefix
    nan = np.full(m.n_notes, np.nan)
    final = pd.DataFrame(
        {
            "noteId": m.note_ids,
            f"{p}NoteIntercept": intercept,
            f"{p}NoteFactor1": factor,
            f"{p}NumFinalRoundRatings": num_final,
            f"{p}NoteInterceptNoHighVol": no_high,
            f"{p}NoteInterceptNoCorrelated": no_corr,
            f"{p}NoteInterceptPopulationSampled": pop,
            f"{p}NoteInterceptMin": nan,
            f"{p}NoteInterceptMax": nan,
            "numRatings": num_ratings,
        }
    )
    fits["lowDiligence"] = np.asarray(low_dil, dtype=np.float64)
    return ScorerRun(spec, base.pre, final, result, scored, agg, inc, low_dil, thresholds, fits=fits)

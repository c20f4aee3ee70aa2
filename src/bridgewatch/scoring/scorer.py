"""Prescoring and final scoring of one MF scorer (§2.6–2.8), for any ``ScorerSpec``.

``prescore`` runs round 1 (with stable initialization), provisional statuses, contributor
helpfulness and round 2; ``score_final`` scores every note with the prescoring rater parameters
frozen, plus the NoHighVol / NoCorrelated / PopulationSampled refits and pseudo-rater bounds. Both
take a ``ScoringInputs`` built once per run by ``prepare_inputs``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.scoring import helpfulness as H
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring.capture import drop_captured_out
from bridgewatch.scoring.config import MFConfig, ScoringConfig
from bridgewatch.scoring.harassment import HarassmentConfig, fit_tag_consensus_kept
from bridgewatch.scoring.mf import MFParams, MFProblem, build_problem, fit_mf
from bridgewatch.scoring.note_solve import score_notes
from bridgewatch.scoring.rating_pass import note_counts
from bridgewatch.scoring.recent import Recent
from bridgewatch.scoring.rescore import ReusedFits, reuse_or_fit, same_fit, taken
from bridgewatch.scoring.rules import RuleInputs, compute_statuses, note_counts_by_rater_sign_kept
from bridgewatch.scoring.scorer_specs import ScorerSpec
from bridgewatch.scoring.sweeps import SweepEngine
from bridgewatch.scoring.torch_init import TorchInit
from bridgewatch.scoring.uncertainty import pseudo_rater_bounds


@dataclass(frozen=True, eq=False)
class ScoringInputs:
    """What every scorer reads, built once per run (arrays indexed like ``matrix``).

    - ``notes``: N-row frame from ``preprocess.note_table``; ``base_keep``: bool[R] after the
      classification filter (§1.7); ``rater_group``: int32[U] (``preprocess.UNASSIGNED`` = none);
    - ``high_volume``: bool[U]; ``correlated``: bool[U] or None (quasi-clique raters);
    - ``note_topic``: int[N] topic id, -1 = none, or None when no topic model ran;
    - ``harassment_intercept``: float[N] or None: the §4.5 model's note intercepts for every
      scorer; None (the default) fits each scorer's own model on its own ratings in prescoring;
    - ``rater_bucket``: uint8[U] each rater's block of the reference's rating table
      (``preprocess.reference_rater_bucket``), which with note and time orders the factors a cold
      fit draws (``torch_init.table_orders``); None: no reference order (numpy's draws).
    """

    matrix: RatingMatrix
    notes: pd.DataFrame
    base_keep: np.ndarray
    rater_group: np.ndarray
    high_volume: np.ndarray
    correlated: np.ndarray | None = None
    note_topic: np.ndarray | None = None
    harassment_intercept: np.ndarray | None = None
    rater_bucket: np.ndarray | None = None

    @cached_property
    def is_not_misleading(self) -> np.ndarray:
        """bool[N] (read-only): computed once per inputs, as every scorer's rules ask for it."""
        out = (self.notes["classification"] == schema.NOT_MISLEADING).to_numpy(dtype=bool)
        out.flags.writeable = False
        return out


def prepare_inputs(
    matrix: RatingMatrix,
    notes: pd.DataFrame,
    status_history: pd.DataFrame,
    enrollment: pd.DataFrame | None,
    config: ScoringConfig,
    *,
    note_topic: np.ndarray | None = None,
    correlated: np.ndarray | None = None,
    harassment_intercept: np.ndarray | None = None,
    volume_matrix: RatingMatrix | None = None,
    pss_member: np.ndarray | None = None,
    rank: bool = True,
    high_volume: np.ndarray | None = None,
) -> ScoringInputs:
    """Preprocess once (§1.7): note table, classification filter, groups, high-volume raters.

    ``volume_matrix``: the ratings high-volume tagging counts, in ``matrix``'s id spaces. The
    reference tags raters while preprocessing, before the note-classification and PSS filters, so
    the pipeline passes the unfiltered dataset; without it ``matrix``'s kept ratings are counted.
    ``high_volume``: bool[U] those tags, computed already (``high_volume_flags``); then
    ``volume_matrix`` is not read.
    ``pss_member``: bool[U] raters in a PSS clique, whose ratings lead the reference's table.
    ``rank``: False leaves ``rater_bucket`` None, for a caller that sets its own
    (``note_space.with_ratings``).
    """
    table = P.note_table(matrix, notes, status_history)
    keep = P.classification_mask(matrix, table)
    if high_volume is not None:
        high = high_volume
    elif volume_matrix is not None:
        high = high_volume_flags(volume_matrix, None, config)
    else:
        high = high_volume_flags(matrix, keep, config)
    groups = P.rater_groups(matrix, enrollment)
    bucket = P.reference_rater_bucket(matrix.n_raters, high, correlated, pss_member) if rank else None
    return ScoringInputs(
        matrix, table, keep, groups, high, correlated, note_topic, harassment_intercept, bucket
    )


def high_volume_flags(matrix: RatingMatrix, keep: np.ndarray | None, config: ScoringConfig) -> np.ndarray:
    """bool[U] high-volume raters among ``matrix``'s ratings where ``keep`` (None = all), §1.7."""
    f = config.filters
    return P.high_volume_raters(
        matrix, keep, f.high_volume_quantile, f.high_volume_windows_days, f.min_notes_for_prod_data
    )


# Per ScoringInputs object: the scopes of the last few scorers, asked for by a scorer's fit,
# filters, capture test and reported notes (four passes over the ratings per scorer otherwise).
# Only the last few: each entry is 2 bytes a rating (~0.4 GB at X's 206M ratings) and a run asks
# for one scorer's (plus, for a Gaussian scorer, its base scorer's) at a time, or two scorers'
# when they run two at a time; keeping every scorer's would hold ~27 of them (~11 GB) to the end.
_SCOPES = Recent(3)


def scope_mask(inputs: ScoringInputs, spec: ScorerSpec) -> tuple[np.ndarray, np.ndarray]:
    """(bool[R] ratings this scorer sees, bool[R] of those made by in-group raters) — §6.1.

    Kept for the last few scorers asked about per ``inputs``; the arrays are read-only."""
    try:
        hash(spec)
    except TypeError:  # a spec holding an unhashable field: no cache
        return _scope_mask(inputs, spec)
    cached = _SCOPES.get(inputs, spec)
    if cached is not None:
        return cached  # type: ignore[return-value]
    out = _scope_mask(inputs, spec)
    for a in out:
        a.flags.writeable = False
    _SCOPES.put(inputs, spec, out)
    return out


def _scope_mask(inputs: ScoringInputs, spec: ScorerSpec) -> tuple[np.ndarray, np.ndarray]:
    m = inputs.matrix
    in_group = P.group_mask(inputs.rater_group, spec.included_groups, spec.include_unassigned)[m.rater]
    topic = P.topic_mask(m, inputs.note_topic, topic=spec.topic, exclude_topics=spec.exclude_topics)
    scope = inputs.base_keep & topic
    if spec.topic is None:
        scope = scope & in_group
    if spec.strict_inclusion and spec.capture_threshold is not None:
        share = P.capture_share(m, inputs.base_keep & topic, in_group)
        scope = scope & (share >= spec.capture_threshold)[m.note]
    return scope, in_group


@dataclass(frozen=True, eq=False)
class PrescoreResult:
    """Prescoring output of one scorer.

    ``params``: round-2 ("final round") parameters; ``first_round``: round-1 parameters;
    ``helpfulness``: per-participant table (``helpfulness.helpfulness_scores``) or None for
    scorers without reputation; ``helpful_raters``: bool[U] raters allowed in final scoring;
    ``provisional_status``: int8[N] round-1 labels; ``final_round_num_ratings/notes/users``:
    sizes of the round-2 fit (ρ_n for final scoring); ``round1_mse``: train error of round 1;
    ``harassment_intercept``: float[N] ``harassmentNoteIntercept`` used for the penalty (None
    without reputation); ``seed``: the seed the fits drew their starts with (final scoring of a
    normalized-loss scorer draws again); ``scored``: bool[U] raters the helpfulness table scored
    (``scored_raters``) and ``scored_extra``: object[E] the ids it scored outside them, when known
    without the table (a final run's prescoring state holds them), else None.
    """

    spec: ScorerSpec
    params: MFParams
    first_round: MFParams
    helpfulness: pd.DataFrame | None
    helpful_raters: np.ndarray
    provisional_status: np.ndarray
    final_round_num_ratings: int
    final_round_num_notes: int
    final_round_num_users: int
    round1_mse: float
    harassment_intercept: np.ndarray | None = None
    seed: int = 42
    scored: np.ndarray | None = None
    scored_extra: np.ndarray | None = None

    @property
    def global_intercept(self) -> float:
        return self.params.mu

    @property
    def rho_note(self) -> float:
        return self.final_round_num_ratings / max(self.final_round_num_notes, 1)


def _mf(spec: ScorerSpec, config: ScoringConfig) -> MFConfig:
    """The scorer's factorization settings: its own (groups 14, 15, 18, InDimensionTwo) or the
    configuration's. A scorer's own settings fix its objective (λs), not the optimizer, so they
    take ``config.mf``'s solver choice (and ALS's sweep limits) too; except an objective ALS cannot
    minimize (group 14: diamond penalty, normalized loss), which keeps the reference's Adam."""
    own = spec.mf
    if own is None:
        return config.mf
    if own.normalized_loss or own.diamond_lambda > 0:
        return own
    return replace(
        own,
        solver=config.mf.solver,
        final_solver=config.mf.final_solver,
        max_iterations=config.mf.max_iterations,
        tolerance=config.mf.tolerance,
    )


def fit_round1(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    train: np.ndarray,
    config: ScoringConfig,
    seed: int,
    engine: SweepEngine | None = None,
):
    """Round-1 fit with stable initialization (§2.6) when the spec asks for it and group data exists.

    Without ratings from the stable-init group (a self-hosted system without modeling groups) the
    fit simply starts from scratch instead of failing.
    """
    mfc = _mf(spec, config)
    init = None
    if spec.stable_init and mfc.use_stable_init:
        f = config.filters
        sub = P.stable_init_mask(
            inputs.matrix,
            train,
            inputs.rater_group,
            mfc.stable_init_group,
            mfc.stable_init_min_share,
            f.min_ratings_per_note,
        )
        if sub.any():
            helper = _torch_init(inputs, seed, unseeded_model=True)
            problem = build_problem(inputs.matrix, sub)
            init = fit_mf(problem, mfc, seed=seed, engine=engine, torch_init=helper).params
    cold = _torch_init(inputs, seed, unseeded_model=False) if init is None else None
    problem = build_problem(inputs.matrix, train)
    return fit_mf(problem, mfc, seed=seed, init=init, engine=engine, torch_init=cold)


def _torch_init(
    inputs: ScoringInputs, seed: int, *, unseeded_model: bool = False, rater_grouped: bool = False
) -> TorchInit | None:
    """How a fit draws random factors (``torch_init``); None without a reference row order."""
    if inputs.rater_bucket is None:
        return None
    return TorchInit(seed, inputs.rater_bucket, unseeded_model=unseeded_model, rater_grouped=rater_grouped)


def harassment_intercepts(
    matrix: RatingMatrix, keep: np.ndarray, round1: MFParams, config: ScoringConfig
) -> np.ndarray:
    """float[N] ``harassmentNoteIntercept`` (§4.5) fitted on the ratings in ``keep``, factors
    started from the round-1 helpfulness fit, at most ``config.harassment.max_epochs`` Adam epochs;
    NaN where the model has no score or aborts."""
    c = HarassmentConfig()
    c = replace(c, adam=replace(c.adam, max_epochs=config.harassment.max_epochs))
    return fit_tag_consensus_kept(
        matrix,
        keep,
        note_factor_init=round1.note_factor[:, 0],
        rater_factor_init=round1.rater_factor[:, 0],
        config=c,
    ).note_intercept


def prescore(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    config: ScoringConfig,
    seed: int = 42,
    engine: SweepEngine | None = None,
    warm: PrescoreResult | None = None,
) -> PrescoreResult:
    """§2.7 steps 1–7 for one scorer. The harassment model (steps 5–6) is fitted here unless
    ``inputs.harassment_intercept`` supplies its note intercepts; ``engine`` runs the
    factorization's sweeps (default: in process). ``warm``: an earlier prescoring of this scorer
    in the same index space; both rounds then start from its parameters instead of the
    stable-initialization fit (fewer sweeps on slightly newer data)."""
    m = inputs.matrix
    scope, _ = scope_mask(inputs, spec)
    f = config.filters
    train = P.count_filter(m, scope, f.min_ratings_per_note, f.min_ratings_per_rater)
    if not train.any():
        from bridgewatch.errors import ScoringError

        raise ScoringError(f"{spec.name}: no ratings left after the 5-per-note / 10-per-rater filters")
    if warm is None:
        round1 = fit_round1(inputs, spec, train, config, seed, engine)
    else:
        mfc = _mf(spec, config)
        round1 = fit_mf(build_problem(m, train), mfc, seed=seed, init=warm.first_round, engine=engine)
    p1 = round1.params
    num_ratings = note_counts(m, scope)
    prov = compute_statuses(
        RuleInputs(p1.note_intercept, p1.note_factor[:, 0], num_ratings, inputs.is_not_misleading),
        spec.rules,
        final_round=False,
    ).status
    if not spec.use_reputation:
        n_r = int(train.sum())
        return PrescoreResult(
            spec,
            p1,
            p1,
            None,
            ~np.isnan(p1.rater_intercept),
            prov,
            n_r,
            int(np.count_nonzero(~np.isnan(p1.note_intercept))),
            int(np.count_nonzero(~np.isnan(p1.rater_intercept))),
            round1.mse,
            seed=seed,
        )
    hc = spec.helpfulness if spec.helpfulness is not None else config.helpfulness
    notes = inputs.notes
    valid = H.valid_ratings(
        m,
        scope,
        notes["createdAtMillis"].to_numpy(np.float64),
        notes["timestampMillisOfLatestNonNMRStatus"].to_numpy(np.float64),
        prov,
        hc,
    )
    author = notes["noteAuthorParticipantId"].to_numpy(dtype=object)
    harassment = inputs.harassment_intercept
    if harassment is None:
        # §2.7 steps 4–5: the tag-consensus model learns from the raters who pass the filter
        # before any harassment penalty, so the penalty cannot feed back into its own data.
        before = H.helpfulness_scores(m, valid, author, p1.note_intercept, prov, hc)
        harassment = harassment_intercepts(m, train & H.helpful_rater_mask(m, before)[m.rater], p1, config)
    penalty = H.harassment_penalty(m, train, harassment, hc)
    table = H.helpfulness_scores(m, valid, author, p1.note_intercept, prov, hc, penalty)
    helpful = H.helpful_rater_mask(m, table)
    final_keep = train & helpful[m.rater]
    # The reference starts round 2 from round 1's notes and raters but μ = 0 (§2.7 step 7).
    init2 = p1 if warm is None else warm.params
    round2 = fit_mf(
        build_problem(m, final_keep), _mf(spec, config), seed=seed, init=init2, engine=engine,
        init_mu=warm is not None, torch_init=_torch_init(inputs, seed, rater_grouped=True),
    )  # fmt: skip
    p2 = round2.params
    return PrescoreResult(
        spec,
        p2,
        p1,
        table,
        helpful & ~np.isnan(p2.rater_intercept),
        prov,
        int(final_keep.sum()),
        int(np.count_nonzero(~np.isnan(p2.note_intercept))),
        int(np.count_nonzero(~np.isnan(p2.rater_intercept))),
        round1.mse,
        harassment,
        seed,
    )


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
    keep = P.count_filter(m, scope, config.filters.min_ratings_per_note, 0) & pre.helpful_raters[m.rater]
    keep.flags.writeable = False
    _FINAL_MASK.put(inputs, key, (spec, pre, keep))
    return keep, scope


# Per ScoringInputs object: the last final-round masks (one bool[R] each); a scorer's final
# scoring asks for its own two or three times (fit, filters, rater factors).
_FINAL_MASK = Recent(2)


# What final scoring reads of a prescoring helpfulness table (``scored_raters``).
SCORED_RATER_COLUMNS = ("raterParticipantId", "aboveHelpfulnessThreshold")


def scored_raters(m: RatingMatrix, pre: PrescoreResult) -> np.ndarray:
    """bool[U]: raters the prescoring's helpfulness table scored (above the threshold or not);
    raters with parameters for a scorer without reputation."""
    if pre.helpfulness is None:
        return ~np.isnan(pre.params.rater_intercept)
    if pre.scored is not None:
        mask = np.array(pre.scored, dtype=bool)
        if pre.scored_extra is not None and len(pre.scored_extra):
            idx = m.rater_index(np.asarray(pre.scored_extra, dtype=object))
            mask[idx[idx >= 0]] = True
        return mask
    table = pre.helpfulness
    ids = table.loc[table["aboveHelpfulnessThreshold"].notna(), "raterParticipantId"]
    idx = m.rater_index(ids.to_numpy(dtype=object))
    mask = np.zeros(m.n_raters, dtype=bool)
    mask[idx[idx >= 0]] = True
    return mask


def final_round_counts(
    m: RatingMatrix, pre: PrescoreResult, scope: np.ndarray, keep: np.ndarray
) -> np.ndarray:
    """float[N] ``NumFinalRoundRatings``: the reference counts a note's in-scope ratings by every
    rater its prescoring scored — not only the ratings the final fit used (golden cases agree
    exactly); NaN for notes without any. Scorers without reputation count the fitted ratings."""
    used = keep if pre.helpfulness is None else scope & scored_raters(m, pre)[m.rater]
    counts = note_counts(m, used).astype(np.float64)
    counts[counts == 0] = np.nan
    return counts


def captured_out(inputs: ScoringInputs, spec: ScorerSpec) -> np.ndarray:
    """bool[N]: notes whose share of ratings from in-scope raters is below the scorer's capture
    threshold (§6.1); all False without one."""
    if spec.capture_threshold is None:
        return np.zeros(inputs.matrix.n_notes, dtype=bool)
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
    mfc = _mf(spec, config) if mf is None else mf
    problem = build_problem(m, mask) if problem is None else problem
    ri, rf, mu = pre.params.rater_intercept, pre.params.rater_factor, pre.params.mu
    if not mfc.normalized_loss or not problem.n_ratings:
        start = (pre.params.note_intercept, pre.params.note_factor)
        intercept, factor = score_notes(problem, ri, rf, mu, rho_note, mfc, engine=engine, init=start)
        return intercept, factor, rf[:, 0].astype(np.float64)
    from bridgewatch.scoring.mf import to_full
    from bridgewatch.scoring.mf_normalized import normalized_final_fit

    torch_init = _torch_init(inputs, pre.seed, rater_grouped=True)
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
    if not _mf(spec, config).normalized_loss:
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
    mfc = _mf(spec, config)
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
        mask = P.count_filter(m, scope & subset, config.filters.min_ratings_per_note, 0)
        mask &= pre.helpful_raters[m.rater]
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
    return {
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

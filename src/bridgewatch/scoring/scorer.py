"""Prescoring of one MF scorer (§2.6–2.7), for any ``ScorerSpec``, and the run's scoring inputs.

``prescore`` runs round 1 (with stable initialization), provisional statuses, contributor
helpfulness and round 2, on a ``ScoringInputs`` built once per run by ``prepare_inputs``. Final
scoring against its result is ``final_scoring``.
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
from bridgewatch.scoring.config import MFConfig, ScoringConfig
from bridgewatch.scoring.harassment import HarassmentConfig, fit_tag_consensus_kept
from bridgewatch.scoring.mf import MFParams, build_problem, fit_mf
from bridgewatch.scoring.rating_pass import note_counts
from bridgewatch.scoring.recent import Recent
from bridgewatch.scoring.rules import RuleInputs, compute_statuses
from bridgewatch.scoring.scorer_specs import ScorerSpec
from bridgewatch.scoring.sweeps import SweepEngine
from bridgewatch.scoring.torch_init import TorchInit


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
      fit draws (``torch_init.table_orders``); None: no reference order (numpy's draws);
    - ``capture``: float64[N] or None: one scorer's capture shares (§6.1) measured over the
      whole matrix, for inputs restricted to that scorer's ratings (``scope_space.on_scope``),
      which lack the other ratings the shares count; None: measured on ``matrix``.
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
    capture: np.ndarray | None = None

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


def forget_scopes(inputs: ScoringInputs) -> None:
    """Drop the scopes kept for ``inputs``: prescoring asks for one scorer's at a time and never
    again once that scorer is done, so a kept one only weighs on the next scorer's fits (two
    older masks were ~0.8 GB at X's 206M ratings, by their size, through each big fit)."""
    _SCOPES.clear(inputs)
    P.forget_last_filter(inputs.matrix)


def _scope_mask(inputs: ScoringInputs, spec: ScorerSpec) -> tuple[np.ndarray, np.ndarray]:
    m = inputs.matrix
    in_group = P.group_mask(inputs.rater_group, spec.included_groups, spec.include_unassigned)[m.rater]
    topic = P.topic_mask(m, inputs.note_topic, topic=spec.topic, exclude_topics=spec.exclude_topics)
    scope = inputs.base_keep & topic
    if spec.topic is None:
        scope = scope & in_group
    if spec.strict_inclusion and spec.capture_threshold is not None:
        share = inputs.capture
        if share is None:
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


def scorer_mf(spec: ScorerSpec, config: ScoringConfig) -> MFConfig:
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
    mfc = scorer_mf(spec, config)
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
            helper = scorer_torch_init(inputs, seed, unseeded_model=True)
            problem = build_problem(inputs.matrix, sub)
            init = fit_mf(problem, mfc, seed=seed, engine=engine, torch_init=helper).params
    cold = scorer_torch_init(inputs, seed, unseeded_model=False) if init is None else None
    problem = build_problem(inputs.matrix, train)
    return fit_mf(problem, mfc, seed=seed, init=init, engine=engine, torch_init=cold)


def scorer_torch_init(
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
        mfc = scorer_mf(spec, config)
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
        build_problem(m, final_keep), scorer_mf(spec, config), seed=seed, init=init2, engine=engine,
        init_mu=warm is not None, torch_init=scorer_torch_init(inputs, seed, rater_grouped=True),
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

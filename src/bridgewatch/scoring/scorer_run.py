"""One MF scorer end to end: prescoring, final scoring, the filters, and the status rule chain.

Every scorer of the inventory (§6.1) runs through ``run_scorer``: a scorer is a ``ScorerSpec``,
never a subclass. The filters read the scorer's own parameters: tag-outlier thresholds and
per-rater incorrect-tag rates from prescoring (§2.7 step 9, §3.4), low-diligence intercepts from
the reputation model fitted on the round-2 ratings (§3.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd

from bridgewatch.errors import ScoringError
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.schema import Status
from bridgewatch.scoring import diligence as D
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring.capture import drop_captured_out
from bridgewatch.scoring.compact import expand_fields, pack_fields
from bridgewatch.scoring.config import ScoringConfig, TagFilterConfig
from bridgewatch.scoring.final_scoring import (
    captured_out,
    final_columns,
    final_rater_factor,
    final_rating_mask,
    reported_notes,
)
from bridgewatch.scoring.incorrect_filter import (
    IncorrectAggregates,
    incorrect_aggregates_kept,
    incorrect_filter_flags,
    rater_incorrect_totals_kept,
)
from bridgewatch.scoring.mf import MFParams
from bridgewatch.scoring.rescore import FIT_COLUMNS, OPTIONAL_FITS, ReusedFits, reuse_or_fit, taken
from bridgewatch.scoring.rules import RuleInputs, RuleResult, compute_statuses
from bridgewatch.scoring.scorer import PrescoreResult, ScoringInputs, forget_scopes, prescore, scope_mask
from bridgewatch.scoring.scorer_specs import ScorerSpec
from bridgewatch.scoring.sweeps import SweepEngine
from bridgewatch.scoring.tag_filter import (
    TagAggregates,
    note_tag_aggregates_kept,
    tag_filter_flags,
    tag_thresholds,
)

# A threshold this high switches the low-diligence filter off (group 14); skip the model then.
_DILIGENCE_OFF = 100.0


@dataclass(frozen=True, eq=False)
class ScorerRun:
    """What one scorer produced, over the N notes of the matrix.

    ``final``: the ``final_scoring.score_final`` frame; ``result``: the final-round rule chain; ``scored``:
    bool[N], notes this scorer gives a result for (an intercept after the capture test);
    ``tags``/``incorrect``/``low_diligence``: filter inputs (aux_note_info columns for Core; the
    pipeline keeps ``tags`` and ``incorrect`` for Core only, ``assemble.kept_for_outputs``);
    ``diligence``: the reputation model's prescoring, for scorers that reuse this one's (Gaussian).
    Once kept for the outputs (``assemble.kept_for_outputs``), ``final``'s columns, ``fits`` and
    ``low_diligence`` may be sparse (``compact``): read them through ``np.asarray``/``to_numpy``;
    ``pre`` and ``diligence`` are packed (``pack_prescore``): read them through ``expand_prescore``.
    """

    spec: ScorerSpec
    pre: PrescoreResult
    final: pd.DataFrame
    result: RuleResult
    scored: np.ndarray
    tags: TagAggregates | None
    incorrect: IncorrectAggregates | None
    low_diligence: np.ndarray
    tag_thresholds: np.ndarray
    diligence: D.DiligencePrescoring | None = None
    fits: dict[str, np.ndarray] | None = None


def fit_values(
    final: Mapping[str, np.ndarray], prefix: str, low_diligence: np.ndarray
) -> dict[str, np.ndarray]:
    """``rescore.FIT_NAMES`` → float64[N]: a scorer's fitted values as its rules read them (before
    the capture test blanks them), what a later partial rescoring reuses."""
    out = {
        name: np.asarray(final[f"{prefix}{column}"], dtype=np.float64)
        for name, column in FIT_COLUMNS.items()
        if name not in OPTIONAL_FITS
    }
    out["lowDiligence"] = np.asarray(low_diligence, dtype=np.float64)
    return out


def rater_factor(pre: PrescoreResult) -> np.ndarray:
    """float[U] round-2 rater factors of raters allowed in final scoring, NaN elsewhere."""
    rf = pre.params.rater_factor[:, 0].astype(np.float64)
    return np.where(pre.helpful_raters, rf, np.nan)


def _id_rank(ids: np.ndarray) -> np.ndarray:
    """int64[len(ids)]: each id's position among the sorted ids."""
    rank = np.empty(len(ids), dtype=np.int64)
    rank[np.argsort(np.asarray(ids), kind="stable")] = np.arange(len(ids))
    return rank


def diligence_start(inputs: ScoringInputs, pre: PrescoreResult) -> D.DiligenceStart:
    """The reference's random start of the diligence prescoring fit: drawn after the scorer's
    round-2 model (same seed, same ratings), rows by sorted note and rater id (§3.5)."""
    m = inputs.matrix
    k = pre.params.note_factor.shape[1]
    return D.DiligenceStart(pre.seed, k, _id_rank(m.note_ids), _id_rank(m.rater_ids))


def diligence_config(config: ScoringConfig) -> D.DiligenceConfig:
    """The reputation model's settings with ``config.diligence``'s epoch caps (the reference's
    300 each by default; the fast profile lowers them)."""
    c = config.diligence
    caps = (c.round1_max_epochs, c.round2_max_epochs, c.round3_max_epochs, c.final_max_epochs)
    return D.DiligenceConfig(epoch_caps=caps)


@dataclass(frozen=True, eq=False)
class ScorerPrescore:
    """Everything final scoring needs from one scorer's prescoring (§6.8), in the matrix's index space.

    ``pre``: the MF rounds and helpfulness filter; ``thresholds``: float64[13] tag-outlier
    thresholds (§2.7 step 9); ``incorrect_num`` / ``incorrect_total``: int[U] each rater's
    "incorrect" tags and ratings in round 2 (§3.4); ``diligence``: the reputation model's
    prescoring parameters (§3.5), None when the scorer does not run it.
    """

    pre: PrescoreResult
    thresholds: np.ndarray
    incorrect_num: np.ndarray
    incorrect_total: np.ndarray
    diligence: D.DiligencePrescoring | None

    @property
    def spec(self) -> ScorerSpec:
        return self.pre.spec


# The dataclasses a prescoring state nests, packed and expanded with it.
_NESTED = (PrescoreResult, MFParams, D.DiligencePrescoring)
ScorerPrescoreT = TypeVar("ScorerPrescoreT")


def pack_prescore(state: ScorerPrescoreT) -> ScorerPrescoreT:
    """``state`` (a ``ScorerPrescore``, ``PrescoreResult`` or ``DiligencePrescoring``) with its per-note
    and per-rater arrays and its helpfulness table kept small (``compact.pack_fields``): what a
    one-process run keeps of each scorer between its prescoring and the assembly of the outputs.

    Why: ~27 scorers each hold two rounds' parameters, the low-diligence model, the helpfulness
    table and per-rater counts over every note and rater (~65 bytes a note and ~120 a rater a
    scorer), mostly NaN or 0 outside a group or topic scorer's scope, the rest float32 values
    stored as float64. Read a packed state only through ``expand_prescore``.
    """
    return pack_fields(state, _NESTED)


def expand_prescore(state: ScorerPrescoreT) -> ScorerPrescoreT:
    """``state`` with every array as it was before ``pack_prescore`` (bit for bit); a state that
    was never packed comes back with the same values."""
    return expand_fields(state, _NESTED)


def tag_filter_config(spec: ScorerSpec, config: ScoringConfig) -> TagFilterConfig:
    """The scorer's tag-outlier and "incorrect" filter settings (group 14 overrides two, §3.2)."""
    return spec.tag_filter if spec.tag_filter is not None else config.tag_filter


def _diligence_on(spec: ScorerSpec) -> bool:
    """Every MF scorer fits the low-diligence model, topic scorers (no reputation filter)
    included, as the reference's prescoring and final scoring do; group 14 switches it off."""
    return spec.rules.low_diligence_threshold < _DILIGENCE_OFF


def prescore_scorer(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    config: ScoringConfig,
    *,
    seed: int = 42,
    warm: ScorerPrescore | None = None,
    engine: SweepEngine | None = None,
) -> ScorerPrescore:
    """Prescoring of one scorer: the MF rounds plus the prescoring side of its filters.

    Tag thresholds come from provisionally-CRH notes (§2.7 step 9), per-rater "incorrect" habits
    from round-2 ratings (§3.4), and the low-diligence reputation model is fitted on those same
    ratings (§3.5). Raises ``ScoringError`` when the scorer has too little data. ``warm``: an
    earlier prescoring of this scorer (same index space) to start the MF rounds from.
    """
    m = inputs.matrix
    tf = tag_filter_config(spec, config)
    pre = prescore(inputs, spec, config, seed, engine, warm=None if warm is None else warm.pre)
    scope, _ = scope_mask(inputs, spec)
    round2 = scope & pre.helpful_raters[m.rater]
    pre_nf = pre.params.note_factor[:, 0].astype(np.float64)
    pre_agg = note_tag_aggregates_kept(
        m, scope, pre_nf, pre.params.rater_factor[:, 0], normalization_percentile=tf.normalization_percentile
    )
    crh = (pre.provisional_status == Status.CRH) & pre_agg.present
    thresholds = tag_thresholds(pre_agg.adjusted_ratio[crh], tf.tag_percentile)
    inc_num, inc_total = rater_incorrect_totals_kept(m, round2)
    dil = None
    # The reference fits it on round 2's ratings: the count-filtered training ratings of the
    # raters above the helpfulness threshold (all of them for topic scorers).
    f = config.filters
    final_round = P.count_filter(m, scope, f.min_ratings_per_note, f.min_ratings_per_rater)
    final_round = final_round & pre.helpful_raters[m.rater]
    if _diligence_on(spec) and final_round.any():
        dil = D.fit_prescoring_kept(
            m, final_round, rater_factor(pre), diligence_config(config), start=diligence_start(inputs, pre)
        )
    return ScorerPrescore(pre, thresholds, inc_num, inc_total, dil)


def note_filters(
    m: RatingMatrix,
    keep: np.ndarray,
    factor: np.ndarray,
    rf: np.ndarray,
    thresholds: np.ndarray,
    inc_num: np.ndarray,
    inc_total: np.ndarray,
    tf: TagFilterConfig,
) -> tuple[TagAggregates, np.ndarray, np.ndarray, IncorrectAggregates, np.ndarray]:
    """The tag-outlier and "incorrect" filters over the final ratings ``keep`` (§3.3, §3.4).

    Returns (tag aggregates, tag flags, tag names, incorrect aggregates, incorrect flags); every
    scorer kind (MF and Gaussian) filters its notes this one way.
    """
    agg = note_tag_aggregates_kept(m, keep, factor, rf, normalization_percentile=tf.normalization_percentile)
    tag_flags, tag_names = tag_filter_flags(agg, thresholds, min_adjusted_total=tf.min_adjusted_total)
    inc = incorrect_aggregates_kept(
        m, keep, factor, rf, inc_num, inc_total,
        interval_half_width=tf.incorrect_interval_half_width,
    )  # fmt: skip
    inc_flags = incorrect_filter_flags(
        inc,
        min_incorrect=tf.incorrect_min_count,
        min_voters=tf.incorrect_min_voters,
        tf_idf_threshold=tf.incorrect_tf_idf_threshold,
    )
    return agg, tag_flags, tag_names, inc, inc_flags


def low_diligence(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    config: ScoringConfig,
    pre: PrescoreResult,
    final_keep: np.ndarray,
    train: np.ndarray,
    prescoring: D.DiligencePrescoring | None = None,
) -> np.ndarray:
    """float[N] low-diligence intercepts: the reputation model fitted on ``train`` (prescoring
    side; ``prescoring`` when that fit is already at hand) and then on ``final_keep`` (final
    side), NaN where the scorer does not use it."""
    if not _diligence_on(spec) or not train.any():
        return np.full(inputs.matrix.n_notes, np.nan)
    m = inputs.matrix
    dil = prescoring
    if dil is None:
        dil = D.fit_prescoring_kept(
            m, train, rater_factor(pre), diligence_config(config), start=diligence_start(inputs, pre)
        )
    state = ScorerPrescore(pre, np.zeros(0), train, train, dil)
    return _final_low_diligence(inputs, spec, config, state, final_keep)


def _final_low_diligence(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    config: ScoringConfig,
    state: ScorerPrescore,
    final_keep: np.ndarray,
):
    m = inputs.matrix
    if not _diligence_on(spec) or state.diligence is None or not final_keep.any():
        return np.full(m.n_notes, np.nan)
    intercept, _ = D.fit_final_kept(m, final_keep, state.diligence, diligence_config(config))
    return intercept


def run_scorer(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    config: ScoringConfig,
    previous_status: np.ndarray,
    *,
    seed: int = 42,
    engine: SweepEngine | None = None,
) -> ScorerRun:
    """Prescore and final-score one scorer, then apply its rule chain (§2.7, §2.8, §3.1).

    ``previous_status``: int8[N] published status per note (``rules.NO_STATUS`` where none), for
    CRH inertia.
    """
    state = prescore_scorer(inputs, spec, config, seed=seed, engine=engine)
    return final_scorer(inputs, state, config, previous_status, engine=engine)


def final_scorer(
    inputs: ScoringInputs,
    state: ScorerPrescore,
    config: ScoringConfig,
    previous_status: np.ndarray,
    engine: SweepEngine | None = None,
    reuse: ReusedFits | None = None,
) -> ScorerRun:
    """Final scoring of one scorer against its frozen prescoring ``state`` (§2.8, §3.1).

    ``state`` must be in the index space of ``inputs.matrix`` (see ``phases.remap_prescoring``).
    ``reuse``: fits carried over for some notes (partial rescoring, ``rescore.ReusedFits``);
    ignored by a normalized-loss scorer, whose final fit retrains raters on every note.
    """
    m = inputs.matrix
    spec, pre = state.spec, state.pre
    tf = tag_filter_config(spec, config)
    if (spec.mf if spec.mf is not None else config.mf).normalized_loss:
        reuse = None
    rf = final_rater_factor(inputs, spec, pre, config, engine)
    thresholds, inc_num, inc_total = state.thresholds, state.incorrect_num, state.incorrect_total

    # Rules and filters see every fitted note (the tag filter's factor z-normalization included);
    # notes failing the capture test are dropped from the output only (§6.1).
    final = final_columns(inputs, spec, pre, config, engine, reuse=reuse)
    drop = captured_out(inputs, spec)
    keep = final_rating_mask(inputs, spec, pre, config)[0]  # (not its scope: see below)
    p = spec.prefix
    intercept = np.asarray(final[f"{p}NoteIntercept"], dtype=np.float64)
    factor = np.asarray(final[f"{p}NoteFactor1"], dtype=np.float64)
    # A note gets this scorer's status even without an intercept (InitialNMR), as the reference's.
    scored = reported_notes(inputs, spec)
    # The capture test above read the scopes for the last time: their masks (scope, in-group and
    # count_filter's kept result, 3 bytes a rating) go before the filters and the low-diligence
    # fit, where the scorer peaks, not at its end (``final_scoring.forget_masks``).
    forget_scopes(inputs)

    # The low-diligence fit, where the scorer peaks, runs before the filters, so the filters'
    # tag aggregates (two float64[N, 12], ~0.5 GiB at X's 2.5M notes by size) are not held
    # under its arrays; neither reads the other's results.
    low_dil = taken(
        reuse,
        "lowDiligence",
        _final_low_diligence(inputs, spec, config, state, reuse_or_fit(reuse, keep, m.note)),
    )
    agg, tag_flags, tag_names, inc, inc_flags = note_filters(
        m, keep, factor, rf, thresholds, inc_num, inc_total, tf
    )

    def col(name: str) -> np.ndarray:
        return np.asarray(final[name], dtype=np.float64)

    rule_inputs = RuleInputs(
        intercept=intercept,
        factor=factor,
        num_ratings=final["numRatings"],
        is_not_misleading=inputs.is_not_misleading,
        intercept_max=col(f"{p}NoteInterceptMax") if spec.pseudoraters else None,
        previous_status=previous_status,
        min_sign_count=col("minSignCount"),
        neg_mean_helpful=col("negMeanHelpful"),
        pos_mean_helpful=col("posMeanHelpful"),
        net_min_helpful=col("netMinHelpful"),
        net_min_helpful_ratio=col("netMinHelpfulRatio"),
        tag_filtered=tag_flags,
        filter_tags=tag_names,
        incorrect_filtered=inc_flags,
        low_diligence_intercept=low_dil,
        intercept_no_high_vol=col(f"{p}NoteInterceptNoHighVol"),
        intercept_no_correlated=col(f"{p}NoteInterceptNoCorrelated"),
    )
    result = compute_statuses(rule_inputs, spec.rules, final_round=True)
    fits = fit_values(final, p, low_dil)
    frame = pd.DataFrame(drop_captured_out(final, drop, spec))
    return ScorerRun(spec, pre, frame, result, scored, agg, inc, low_dil, thresholds, state.diligence, fits)


def run_spec(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    config: ScoringConfig,
    previous_status: np.ndarray,
    done: Mapping[str, ScorerRun],
    *,
    seed: int = 42,
    engine: SweepEngine | None = None,
) -> ScorerRun:
    """Run any scorer of the inventory: MF specs through ``run_scorer``; a spec that reuses
    another's prescoring (``spec.prescoring``) on top of that scorer's run in ``done``."""
    if spec.kernel == "mf" and spec.prescoring is None:
        return run_scorer(inputs, spec, config, previous_status, seed=seed, engine=engine)
    return run_derived(inputs, spec, config, previous_status, done, engine=engine)


def run_derived(
    inputs: ScoringInputs,
    spec: ScorerSpec,
    config: ScoringConfig,
    previous_status: np.ndarray,
    done: Mapping[str, ScorerRun],
    *,
    engine: SweepEngine | None = None,
    reuse: ReusedFits | None = None,
) -> ScorerRun:
    """Final scoring of a spec built on another scorer's prescoring (the Gaussian scorers);
    ``reuse`` as in ``final_scorer``."""
    base = done.get(spec.prescoring or "")
    if base is None:
        raise ScoringError(f"{spec.name}: needs the prescoring of {spec.prescoring}, which did not run")
    if spec.kernel != "gaussian":
        raise ScoringError(f"{spec.name}: unknown scorer kernel {spec.kernel!r}")
    from bridgewatch.scoring.gaussian_run import run_gaussian  # it builds on this module

    return run_gaussian(inputs, spec, config, previous_status, base, engine=engine, reuse=reuse)

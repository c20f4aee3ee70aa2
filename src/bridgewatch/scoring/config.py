"""Every tunable constant of the scorer, in one typed, frozen table.

Defaults are the reference scorer's constants (``reference-algorithm.md``; each field names its
section). A section is a frozen dataclass; ``ScoringConfig`` holds one of each. Values are checked
before any work (``validate``), can be overridden from a TOML file whose tables are the section
names (``load_config``), and feed the CLI and docs through ``describe``. Learned state (rater
parameters, thresholds learned in prescoring) never lives here.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridgewatch.errors import ConfigError


def param(default: Any, help: str, spec: str, ge: float | None = None, le: float | None = None, choices=None):
    """A config field: default, one-line help, spec section, optional inclusive bounds or choices."""
    meta = {"help": help, "spec": spec, "ge": ge, "le": le, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MFConfig:
    """The factorization objective and solver (§2.1–2.4)."""

    num_factors: int = param(1, "latent factor dimension", "§2.1", ge=1, le=8)
    user_factor_lambda: float = param(0.03, "λ_fu, mean-form penalty on rater factors", "§2.2", ge=0)
    note_factor_lambda: float = param(0.03, "λ_fn, mean-form penalty on note factors", "§2.2", ge=0)
    user_intercept_lambda: float = param(0.15, "λ_iu, penalty on rater intercepts", "§2.2", ge=0)
    note_intercept_lambda: float = param(0.15, "λ_in, penalty on note intercepts", "§2.2", ge=0)
    global_intercept_lambda: float = param(0.15, "λ_mu, penalty on the global intercept", "§2.2", ge=0)
    global_intercept: bool = param(True, "fit a global intercept μ (False: μ stays 0)", "§6.1")
    diamond_lambda: float = param(0.0, "λ_diamond, mean-form penalty on |f_n·i_n|", "§2.2", ge=0)
    normalized_loss: bool = param(False, "refit with per-rating normalized weights (group 14)", "§2.9")
    norm_global_sign: bool = param(True, "normalized loss: globalSignNorm", "§2.9")
    norm_note_exp: float = param(0.0, "normalized loss: noteNormExp (0 = off)", "§2.9")
    norm_rater_exp: float = param(-0.25, "normalized loss: raterNormExp (0 = off)", "§2.9")
    solver: str = param(
        "adam", "prescoring fits: 'adam' (reference optimizer) or 'als'", "§2.3", choices=("adam", "als")
    )
    final_solver: str = param(
        "adam",
        "final scoring's frozen-rater note fits: 'adam' (replay the reference's), 'exact' (their"
        " closed-form optimum) or 'exact_refits' (Adam for the fit the rules read, exact for the"
        " robustness and pseudo-rater refits); with solver 'als' all are exact",
        "ours",
        choices=("adam", "exact", "exact_refits"),
    )
    max_iterations: int = param(500, "most ALS sweeps per fit", "ours", ge=1)
    tolerance: float = param(1e-9, "stop when the relative objective change is below this", "ours", ge=0)
    adam_init_learning_rate: float = param(0.2, "initLearningRate (note and rater init given)", "§2.2", ge=0)
    adam_no_init_learning_rate: float = param(1.0, "noInitLearningRate", "§2.2", ge=0)
    adam_convergence: float = param(1e-7, "stop when an epoch changes the loss by no more", "§2.3", ge=0)
    adam_clip_norm: float = param(1.0, "global gradient-norm clipping", "§2.3", ge=0)
    adam_max_epochs: int = param(100_000, "safeguard on Adam epochs (the reference has none)", "ours", ge=1)
    max_first_round_train_error: float = param(0.16, "abort if round-1 MSE exceeds this", "§2.3", ge=0)
    stable_init_group: int = param(13, "modeling group used for stable initialization", "§2.6")
    stable_init_min_share: float = param(0.75, "note share of ratings from that group", "§2.6", 0, 1)
    use_stable_init: bool = param(True, "fit the stable-init group first, then warm start", "§2.6")

    @property
    def adam_final_fits(self) -> bool:
        """Whether a final-scoring note fit under these settings replays the reference's Adam:
        the reference stops ~1e-3 short of the fit's optimum, which decides notes on a
        threshold, so only ALS or an opted-in ``final_solver`` trades that for a direct solve."""
        return self.solver == "adam" and self.final_solver != "exact"

    def for_refits(self) -> MFConfig:
        """The settings of final scoring's refits (pseudo-rater bounds, robustness intercepts):
        under ``exact_refits`` they are solved exactly while the fit the rules read keeps Adam."""
        return (
            dataclasses.replace(self, final_solver="exact") if self.final_solver == "exact_refits" else self
        )


@dataclass(frozen=True)
class FilterConfig:
    """Which notes and raters enter the fits (§1.7, §2.5)."""

    min_ratings_per_note: int = param(5, "minNumRatersPerNote", "§2.5", ge=1)
    min_ratings_per_rater: int = param(10, "minNumRatingsPerRater", "§2.5", ge=1)
    min_notes_for_prod_data: int = param(200, "below this many notes some guards switch off", "§9.7")
    high_volume_quantile: float = param(0.999, "high-volume rater quantile", "§1.7", ge=0, le=1)
    high_volume_windows_days: tuple[int, ...] = param((7, 28), "high-volume windows", "§1.7")


@dataclass(frozen=True)
class RuleConfig:
    """Status thresholds of one scorer (§3.1–3.2); Core's values are the defaults."""

    min_ratings_needed: int = param(5, "minRatingsNeeded for any CRH/CRNH rule", "§2.5", ge=1)
    crh_threshold: float = param(0.40, "GeneralCRH intercept threshold", "§3.1")
    crnh_threshold_intercept: float = param(-0.05, "GeneralCRNH intercept term", "§3.1")
    crnh_threshold_factor_multiplier: float = param(-0.8, "GeneralCRNH |factor| multiplier", "§3.1")
    crnh_threshold_nm_intercept: float = param(-0.15, "NmCRNH threshold (NM notes)", "§3.1")
    crnh_threshold_ucb_intercept: float = param(-0.04, "UcbCRNH upper-bound threshold", "§3.1")
    inertia_delta: float = param(0.01, "CRH inertia margin", "§3.1")
    factor_threshold: float = param(0.5, "FilterLargeFactor |f_n| limit", "§3.1", ge=0)
    firm_reject_threshold: float | None = param(0.3, "RejectLowIntercept (None: off)", "§3.1")
    min_minority_net_helpful: int | None = param(4, "MinMinorityRaters (None: off)", "§3.1")
    min_minority_net_helpful_ratio: float | None = param(0.05, "RaterBalance ratio", "§3.1")
    rater_balance_lower: int = param(4, "RaterBalance applies from this net-helpful", "§3.1")
    rater_balance_upper: int = param(10, "RaterBalance applies below this net-helpful", "§3.1")
    no_high_vol_threshold: float = param(0.37, "NoHighVolIntercept threshold", "§3.1")
    no_correlated_threshold: float = param(0.37, "NoCorrelatedIntercept threshold", "§3.1")
    low_diligence_threshold: float = param(0.263, "FilterLowDiligence threshold", "§3.5")
    ratio_crnh_min_sign_count: int = param(3, "RatioCRNH min raters per factor side", "§3.1")
    ratio_crnh_max_side_mean: float = param(0.4, "RatioCRNH max mean helpful per side", "§3.1")
    ratio_crnh_max_mean: float = param(0.3, "RatioCRNH max mean of the two sides", "§3.1")


@dataclass(frozen=True)
class HelpfulnessConfig:
    """Contributor helpfulness and the round-2 inclusion test (§4.1–4.4)."""

    min_rater_agree_ratio: float = param(0.66, "minRaterAgreeRatio", "§4.4", ge=0, le=1)
    min_crh_vs_crnh_ratio: float = param(0.0, "minCRHVsCRNHRatio", "§4.4")
    min_mean_note_score: float = param(0.05, "minMeanNoteScore", "§4.4")
    crnh_multiplier: float = param(5.0, "CRNHMultiplier in crhCrnhRatioDifference", "§4.3", ge=0)
    valid_rating_window_millis: int = param(172_800_000, "ratings count if < 48 h after note", "§4.1")
    legacy_first_n_ratings: int = param(5, "pre-tombstone notes: first N ratings only", "§4.1")
    harassment_min_score: float = param(2.0, "minimumHarassmentScoreToPenalize", "§4.2")
    harassment_penalty: float = param(10.0, "tagConsensusHarassmentHelpfulRatingPenalty", "§4.2")
    multiply_penalty_by_score: bool = param(True, "multiplyPenaltyByHarassmentScore", "§4.2")


@dataclass(frozen=True)
class ExplanationConfig:
    """Explanation tags (§3.6)."""

    min_ratings_to_get_tag: int = param(2, "minRatingsToGetTag", "§3.6", ge=1)
    min_tags_needed_for_status: int = param(2, "minTagsNeededForStatus", "§3.6", ge=0)


@dataclass(frozen=True)
class TagFilterConfig:
    """Tag-outlier and 'incorrect' filters (§3.3–3.4)."""

    tag_percentile: int = param(95, "tagFilterPercentile of prescoring CRH ratios", "§3.3", 0, 100)
    normalization_percentile: int = param(40, "tagPercentileForNormalization", "§3.3", 0, 100)
    min_adjusted_total: float = param(2.5, "minAdjustedTotal", "§3.3", ge=0)
    incorrect_interval_half_width: float = param(0.3, "intervalHalfWidth", "§3.4", ge=0)
    incorrect_min_count: int = param(2, "min incorrect tags", "§3.4", ge=0)
    incorrect_min_voters: int = param(3, "min voters in interval", "§3.4", ge=0)
    incorrect_tf_idf_threshold: float = param(2.5, "incorrectFilterThreshold", "§3.4")


@dataclass(frozen=True)
class HistoryConfig:
    """Status history: locking and the stabilization delay (§6.5–6.6)."""

    lock_millis: int = param(14 * 86_400_000, "noteLockMillis", "§6.6", ge=0)
    min_stable_crh_minutes: float = param(30.0, "required stable CRH time", "§6.5", ge=0)
    max_stable_crh_minutes: float = param(60.0, "max delay for CRH candidates", "§6.5", ge=0)
    max_stable_nyh_minutes: float = param(360.0, "max delay for NYH candidates", "§6.5", ge=0)


@dataclass(frozen=True)
class ContributorConfig:
    """Enrollment state machine (§4.6)."""

    rating_impact_for_earn_in: int = param(5, "ratingImpactForEarnIn", "§4.6", ge=0)
    max_history_earn_out: int = param(5, "maxHistoryEarnOut", "§4.6", ge=1)
    at_risk_crnh_count: int = param(2, "isAtRiskCRNHCount", "§4.6", ge=0)
    earn_out_increment: int = param(5, "extra rating impact per earn-out", "§4.6", ge=0)
    top_writer_writing_impact: int = param(10, "topWriterWritingImpact", "§4.6")
    top_writer_hit_rate: float = param(0.04, "topWriterHitRate", "§4.6")
    emerging_mean_note_score: float = param(0.3, "emergingMeanNoteScore (strictly above)", "§4.6")
    emerging_rating_count: int = param(10, "emergingRatingCount in the last 28 days", "§4.6", ge=0)
    recent_stats_days: int = param(14, "window of the *14d contributor stats", "§4.6", ge=1)
    recent_stats_min_ratings: int = param(10, "14d stats: no-status notes need this many ratings", "§4.6")
    long_stats_days: int = param(90, "window of the *90d contributor stats", "§4.6", ge=1)
    stats_lag_millis: int = param(
        172_800_000,
        "the 14d/90d windows end this long before the scoring time (publicTSVTimeDelay, 48 h)",
        "§4.6",
        ge=0,
    )
    single_trigger_earn_out: bool = param(False, "earn out on a CRNH if CRNH > CRH (reference: off)", "§4.6")
    state_sees_notes: bool = param(
        False, "state machine reads authored notes (reference: no, its rows never join)", "§4.6"
    )


@dataclass(frozen=True)
class MetaConfig:
    """Combining the scorers into one final status (§6.4)."""

    group_min_safeguard: float = param(0.3, "group promotion: core/expansion intercept must exceed", "§6.4")
    group_max_safeguard: float = param(0.40, "group promotion: ... and stay below (CRH threshold)", "§6.4")
    group14_min_safeguard: float = param(0.25, "group 14 promotion lower band, no upper bound", "§6.4")
    group33_min_safeguard: float = param(0.25, "group 33 promotion lower band, no upper bound", "§6.4")
    topic_nmr_intercept: float = param(0.24, "topic demotion: topic intercept below this", "§6.4")
    topic_nmr_factor: float = param(0.51, "topic demotion: |topic factor| above this", "§6.4")
    topic_in_dim_two_nmr_intercept: float = param(0.51, "InDimensionTwo topic intercept", "§6.4")
    topic_in_dim_two_nmr_factor: float = param(1.0, "InDimensionTwo topic |factor|", "§6.4")
    pop_sampled_min_ratings: int = param(8, "population-sampled veto: min sampled ratings", "§6.4", ge=0)
    pop_sampled_min_per_sign: int = param(2, "population-sampled veto: min per factor sign", "§6.4", ge=0)
    pop_sampled_max_intercept: float = param(0.30, "population-sampled intercept below this", "§6.4")
    pop_sampled_divergence: float = param(0.15, "core minus sampled intercept at least this", "§6.4")


@dataclass(frozen=True)
class IntegrityConfig:
    """Bridgewatch's defence beyond the reference's §7: coordinated rater groups
    (``integrity.coordination``): on the notes where a group acts in concert its ratings are set
    aside (or kept as one rating, ``coordination_keep_earliest``); concerted surprise
    (``integrity.surprise``): on notes that collect many NOT_HELPFUL ratings against the raters' own
    viewpoints, significantly more than honest disagreement gives, those ratings are set aside.
    Surprise is on by default since its test takes the honest notes' overdispersion (surp10): it
    flags no note of the golden communities (outputs byte-identical to it off) nor of the honest
    simulated ones, ``large`` included (the Poisson test before flagged 1.3% of its notes); it
    costs one more MF fit per run. Both off: integrity is the reference's."""

    coordination: bool = param(True, "set aside coordinated groups' ratings on the notes they act on", "ours")
    coordination_min_shared: int = param(5, "same (note, value) ratings two members share", "ours", ge=1)
    coordination_min_similarity: float = param(0.4, "shared / (smaller rater's ratings + 10)", "ours", 0, 1)
    coordination_min_group: int = param(5, "raters in a coordinated group", "ours", ge=2)
    coordination_keep_earliest: bool = param(
        False, "keep a group's earliest rating on those notes (PSS's rule) instead of none", "ours"
    )
    surprise: bool = param(
        True, "set aside NOT_HELPFUL ratings against the rater's own viewpoint on notes that collect "
        "significantly many (integrity.surprise; one more MF fit per run)", "ours",
    )  # fmt: skip
    surprise_residual: float = param(0.7, "NH this far below its note's refit: surprising", "ours", ge=0)
    surprise_fdr: float = param(0.1, "Benjamini–Hochberg false discovery rate of flagged notes", "ours", 0, 1)
    surprise_min_events: int = param(3, "surprising ratings a flagged note needs", "ours", ge=1)
    surprise_prescoring: bool = param(
        False, "set the surprising ratings aside in prescoring too (false: in final scoring only, so "
        "raters' parameters and helpfulness stay as without the defence: the same protection, and a "
        "false flag moves its note alone)", "ours",
    )  # fmt: skip


@dataclass(frozen=True)
class DiligenceFitConfig:
    """Epoch caps of the low-diligence reputation model's Adam fits (§3.5). The reference stops
    each at 300 epochs, or earlier once the loss moves less than 1e-5 between checks five epochs
    apart; at scale round 1 reaches that cap without converging and is the largest single cost of a
    Core-family prescoring. Lower caps (the fast profile, ``docs/fast.md``) trade a little agreement
    with the reference for CPU; the defaults are the reference's."""

    round1_max_epochs: int = param(
        300, "prescoring round 1 (reputation fixed at 1): most epochs", "§3.5", ge=1
    )
    round2_max_epochs: int = param(300, "prescoring round 2 (reputation learned): most epochs", "§3.5", ge=1)
    round3_max_epochs: int = param(300, "prescoring round 3 (intercepts refit): most epochs", "§3.5", ge=1)
    final_max_epochs: int = param(300, "each of final scoring's two fits: most epochs", "§3.5", ge=1)


@dataclass(frozen=True)
class HarassmentFitConfig:
    """The tag-consensus harassment model's Adam fit (§4.5): the helpfulness solver's stopping rule
    (loss change below 1e-7, or a rise after epoch 100) with a safety cap, 5000 epochs by default.
    A lower cap (the fast profile) stops the fit earlier; the defaults are the reference's."""

    max_epochs: int = param(5000, "most Adam epochs of the tag-consensus fit", "§4.5", ge=1)


@dataclass(frozen=True)
class ScoringConfig:
    """The whole configuration: one instance of each section."""

    mf: MFConfig = field(default_factory=MFConfig)
    filters: FilterConfig = field(default_factory=FilterConfig)
    rules: RuleConfig = field(default_factory=RuleConfig)
    helpfulness: HelpfulnessConfig = field(default_factory=HelpfulnessConfig)
    explanation: ExplanationConfig = field(default_factory=ExplanationConfig)
    tag_filter: TagFilterConfig = field(default_factory=TagFilterConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    contributor: ContributorConfig = field(default_factory=ContributorConfig)
    meta: MetaConfig = field(default_factory=MetaConfig)
    integrity: IntegrityConfig = field(default_factory=IntegrityConfig)
    diligence: DiligenceFitConfig = field(default_factory=DiligenceFitConfig)
    harassment: HarassmentFitConfig = field(default_factory=HarassmentFitConfig)

    def validate(self) -> ScoringConfig:
        """Check every bound; raise ``ConfigError`` naming the first bad field."""
        for section in dataclasses.fields(self):
            sub = getattr(self, section.name)
            for f in dataclasses.fields(sub):
                _check(f"{section.name}.{f.name}", getattr(sub, f.name), f)
        return self


def _check(name: str, value: Any, f: dataclasses.Field) -> None:
    if isinstance(value, float) and math.isnan(value):
        raise ConfigError(f"{name} must be a number, got NaN")
    lo, hi = f.metadata.get("ge"), f.metadata.get("le")
    choices = f.metadata.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}")
    if value is None or isinstance(value, bool | tuple | str):
        return
    if lo is not None and value < lo:
        raise ConfigError(f"{name} must be ≥ {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name} must be ≤ {hi}, got {value}")


def _coerce(name: str, value: Any, current: Any) -> Any:
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{name} must be true or false, got {value!r}")
        return value
    if isinstance(current, int) and not isinstance(current, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{name} must be an integer, got {value!r}")
        return value
    if isinstance(current, float) or current is None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{name} must be a number, got {value!r}")
        return float(value)
    if isinstance(current, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{name} must be a list, got {value!r}")
        return tuple(value)
    return value


def with_overrides(config: ScoringConfig, overrides: dict[str, Any]) -> ScoringConfig:
    """Apply ``{section: {field: value}}`` overrides, type-checked, then validate."""
    sections = {f.name for f in dataclasses.fields(config)}
    updates = {}
    for section, values in overrides.items():
        if section not in sections:
            raise ConfigError(f"unknown config section [{section}]; known: {sorted(sections)}")
        if not isinstance(values, dict):
            raise ConfigError(f"config section [{section}] must be a table")
        sub = getattr(config, section)
        names = {f.name for f in dataclasses.fields(sub)}
        changes = {}
        for key, value in values.items():
            if key not in names:
                raise ConfigError(f"unknown config key {section}.{key}")
            changes[key] = _coerce(f"{section}.{key}", value, getattr(sub, key))
        updates[section] = dataclasses.replace(sub, **changes)
    return dataclasses.replace(config, **updates).validate()


# Shipped configurations (``bridgewatch score --profile NAME``): TOML files beside this module.
PROFILES_DIR = Path(__file__).with_name("profiles")
PROFILES = ("fast",)


def profile_path(name: str) -> Path:
    """The TOML file of the shipped profile ``name`` (``PROFILES``)."""
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
    return PROFILES_DIR / f"{name}.toml"


def load_config(path: str | os.PathLike[str] | None = None, profile: str | None = None) -> ScoringConfig:
    """Defaults, overridden by the shipped ``profile`` if given, then by the TOML file at ``path``
    if given (so a file can adjust a profile)."""
    config = ScoringConfig()
    if profile is not None:
        config = _load_toml(config, profile_path(profile))
    if path is None:
        return config.validate()
    return _load_toml(config, path)


def _load_toml(config: ScoringConfig, path: str | os.PathLike[str]) -> ScoringConfig:
    """``config`` overridden by the TOML file at ``path``; errors name the file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return with_overrides(config, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


def describe(config: ScoringConfig | None = None) -> list[tuple[str, Any, str, str]]:
    """Rows of (name, value, help, spec section) for docs and ``--help`` text."""
    config = config or ScoringConfig()
    rows = []
    for section in dataclasses.fields(config):
        sub = getattr(config, section.name)
        for f in dataclasses.fields(sub):
            rows.append(
                (f"{section.name}.{f.name}", getattr(sub, f.name), f.metadata["help"], f.metadata["spec"])
            )
    return rows

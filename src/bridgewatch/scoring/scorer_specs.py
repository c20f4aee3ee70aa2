"""The scorers as data (§6.1, §3.2): one pipeline, many configurations.

A ``ScorerSpec`` says which raters and notes a scorer sees, which status thresholds it uses and
which optional steps (stable initialization, reputation filter, pseudo-raters) it runs. The same
``prescore``/``score_final`` functions run every MF spec; a Gaussian spec reuses another scorer's
prescoring and only swaps the final note model (``scorer_run.run_spec`` dispatches).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from bridgewatch.scoring.config import HelpfulnessConfig, MFConfig, RuleConfig, TagFilterConfig

CORE_GROUPS = frozenset({1, 2, 3, 6, 8, 9, 10, 11, 13, 14, 19, 21, 25})
COVERAGE_GROUPS = CORE_GROUPS - {21}
EXPANSION_GROUPS = frozenset({0, 4, 5, 7, 12, 15, 16, 20, 22, 23, 24, 26, 27, 28, 29, 33})
EXPANSION_PLUS_GROUPS = frozenset({17, 18, 30, 31, 32})
MULTI_GROUP_1 = frozenset({4, 5, 7, 12, 26})
# Topic ids 1..5 (0 = Unassigned). Every assigned topic, InDimensionTwo included, takes its notes
# out of Core's scope (§6.1 excludeTopics); only the first four have an MF topic scorer in final
# scoring: InDimensionTwo's MF scorer only prescores, its final topic scorer is Gaussian (§6.1).
TOPICS = ("UkraineConflict", "GazaConflict", "MessiRonaldo", "Scams", "InDimensionTwo")
MF_TOPICS = TOPICS[:4]


@dataclass(frozen=True)
class ScorerSpec:
    """One MF scorer.

    - ``name``: the reference's scorer name; ``prefix``: output column prefix ("core" →
      ``coreNoteIntercept``); ``included_groups``: rater modeling groups in scope (None = all);
      ``include_unassigned``: raters without a group count as in scope;
    - ``topic``: topic id a topic scorer scores (None for others); ``exclude_topics``: drop
      ratings on topic-assigned notes (Core); ``capture_threshold``: min share of a note's ratings
      from in-scope raters to keep this scorer's result (None = keep all); ``strict_inclusion``:
      apply that share before training too;
    - ``stable_init``: group-13 first fit (§2.6); ``use_reputation``: the two-round helpfulness
      filter (§2.7; topic scorers skip it); ``pseudoraters``: §5 bounds (Core, CoreWithTopics);
    - ``rules``: status thresholds; ``mf``/``helpfulness``/``tag_filter``: per-scorer overrides
      (None = global);
    - ``kernel``: "mf" (fit by matrix factorization) or "gaussian" (kernel-smoothed curve, §6.2);
      ``prescoring``: name of the scorer whose prescoring this one reuses (None = its own);
    - ``report``: False for a prescoring-only scorer (MFGroupScorer_15): its final results stay
      out of the outputs, its prescoring serves the scorer built on it;
    - ``gaussian_bandwidth``: kernel bandwidth of both Gaussian passes (None = §6.2's 0.1 / 0.2);
    - ``confident_min``: a topic scorer's note is confident with more than this many rated raters
      on each factor side (``topicNoteConfident``).
    """

    name: str
    prefix: str
    included_groups: frozenset[int] | None
    include_unassigned: bool = True
    topic: int | None = None
    exclude_topics: bool = False
    capture_threshold: float | None = 0.5
    strict_inclusion: bool = False
    stable_init: bool = False
    use_reputation: bool = True
    pseudoraters: bool = False
    rules: RuleConfig = field(default_factory=RuleConfig)
    mf: MFConfig | None = None
    helpfulness: HelpfulnessConfig | None = None
    tag_filter: TagFilterConfig | None = None
    kernel: str = "mf"
    prescoring: str | None = None
    report: bool = True
    gaussian_bandwidth: float | None = None
    confident_min: int = 4


_NO_FIRM = dataclasses.replace(RuleConfig(), firm_reject_threshold=None)


def core() -> ScorerSpec:
    return ScorerSpec(
        "MFCoreScorer", "core", CORE_GROUPS, exclude_topics=True, stable_init=True, pseudoraters=True
    )


def core_with_topics() -> ScorerSpec:
    return ScorerSpec(
        "MFCoreWithTopicsScorer",
        "coreWithTopics",
        CORE_GROUPS,
        stable_init=True,
        pseudoraters=True,
        rules=_NO_FIRM,
    )


def expansion() -> ScorerSpec:
    return ScorerSpec("MFExpansionScorer", "expansion", CORE_GROUPS | EXPANSION_GROUPS, stable_init=True)


def expansion_plus() -> ScorerSpec:
    groups = CORE_GROUPS | EXPANSION_GROUPS | EXPANSION_PLUS_GROUPS
    return ScorerSpec(
        "MFExpansionPlusScorer",
        "expansionPlus",
        groups,
        capture_threshold=None,
        stable_init=True,
        rules=_NO_FIRM,
    )


def group(i: int) -> ScorerSpec:
    """Group scorers 1–14, 15, 18, 33 (§3.2 overrides for 14, 15, 18, 33). Group 14 is the
    "expanded consensus" trial: its own λs with a diamond penalty, the normalized loss of §2.9
    and learning rate 0.02, capture 0.51. Group 15's MF scorer only prescores:
    ``gaussian_group`` scores its notes (§6.1)."""
    rules, mf, helpful, capture, report, tags = _NO_FIRM, None, None, 0.8, True, None
    if i == 14:
        capture = 0.51
        rules = dataclasses.replace(
            _NO_FIRM,
            crh_threshold=0.15,
            crnh_threshold_intercept=-0.01,
            crnh_threshold_factor_multiplier=0.0,
            crnh_threshold_nm_intercept=-0.02,
            factor_threshold=0.4,
            no_high_vol_threshold=0.12,
            no_correlated_threshold=0.12,
            low_diligence_threshold=1000.0,
        )
        mf = dataclasses.replace(
            MFConfig(),
            note_intercept_lambda=0.03 * 30,
            user_intercept_lambda=0.03 * 5,
            global_intercept_lambda=0.03 * 5,
            note_factor_lambda=0.03 / 3,
            user_factor_lambda=0.03 / 4,
            diamond_lambda=0.03 * 25,
            normalized_loss=True,
            norm_global_sign=True,
            norm_note_exp=0.0,
            norm_rater_exp=-0.25,
            adam_init_learning_rate=0.02,
            adam_no_init_learning_rate=0.02,
        )
        tags = dataclasses.replace(TagFilterConfig(), tag_percentile=90, incorrect_tf_idf_threshold=1.5)
        helpful = dataclasses.replace(
            HelpfulnessConfig(),
            min_mean_note_score=-0.01,
            harassment_min_score=2.5,
            multiply_penalty_by_score=False,
        )
    elif i == 18:
        capture = 0.51
        rules = dataclasses.replace(
            _NO_FIRM, crh_threshold=0.2, no_high_vol_threshold=0.18, no_correlated_threshold=0.18
        )
        mf = dataclasses.replace(MFConfig(), user_intercept_lambda=0.03, global_intercept_lambda=0.0)
    elif i == 15:
        mf = dataclasses.replace(
            MFConfig(), note_intercept_lambda=0.09, user_intercept_lambda=0.03, global_intercept_lambda=0.0
        )
        report = False
    return ScorerSpec(
        f"MFGroupScorer_{i}",
        "group",
        frozenset({i}),
        include_unassigned=False,
        capture_threshold=capture,
        strict_inclusion=(i == 33),
        rules=rules,
        mf=mf,
        helpfulness=helpful,
        tag_filter=tags,
        report=report,
    )


def multi_group_1() -> ScorerSpec:
    return ScorerSpec(
        "MFMultiGroupScorer_1",
        "multiGroup",
        MULTI_GROUP_1,
        include_unassigned=False,
        capture_threshold=0.8,
        rules=_NO_FIRM,
    )


def topic(topic_id: int, name: str) -> ScorerSpec:
    rules = dataclasses.replace(_NO_FIRM, min_minority_net_helpful=None, min_minority_net_helpful_ratio=None)
    return ScorerSpec(
        f"MFTopicScorer_{name}",
        "topic",
        None,
        topic=topic_id,
        capture_threshold=None,
        use_reputation=False,
        rules=rules,
    )


def topic_in_dimension_two() -> ScorerSpec:
    """MFTopicScorer_InDimensionTwo (§6.1): prescoring only, for the Gaussian topic scorer built
    on it; no global intercept and λ_iu = 5."""
    spec = topic(len(TOPICS), TOPICS[-1])
    mf = dataclasses.replace(MFConfig(), global_intercept=False, user_intercept_lambda=5.0)
    return dataclasses.replace(spec, mf=mf, report=False)


# GaussianTopicScorer's thresholds: Core's MF ones (CRH 0.40, CRNH −0.05 − 0.8·|f|, NM −0.15) but
# UCB −0.5, no firm reject and no net-helpful minimum (the Gaussian scorers have none).
GAUSSIAN_TOPIC_RULES = dataclasses.replace(
    _NO_FIRM,
    crnh_threshold_ucb_intercept=-0.5,
    min_minority_net_helpful=None,
    min_minority_net_helpful_ratio=None,
)


def gaussian_topic(topic_id: int = len(TOPICS)) -> ScorerSpec:
    """GaussianTopicScorer_InDimensionTwo (§6.1): the kernel scorer on its MF topic scorer's
    prescoring, bandwidth 0.05, confident from one rater on each factor side; its results are
    the topic's ``topic*`` columns (TopicModel05 demotes)."""
    name = TOPICS[topic_id - 1]
    return ScorerSpec(
        f"GaussianTopicScorer_{name}",
        "topic",
        None,
        topic=topic_id,
        capture_threshold=None,
        use_reputation=False,
        rules=GAUSSIAN_TOPIC_RULES,
        kernel="gaussian",
        prescoring=f"MFTopicScorer_{name}",
        gaussian_bandwidth=0.05,
        confident_min=0,
    )


# Gaussian thresholds (§3.2): CRH from 0.51, CRNH only below -0.5 whatever the factor, no firm
# reject and no net-helpful minimum; the tilted kernel already demands support along the axis.
GAUSSIAN_RULES = dataclasses.replace(
    _NO_FIRM,
    crh_threshold=0.51,
    crnh_threshold_intercept=-0.5,
    crnh_threshold_factor_multiplier=0.0,
    crnh_threshold_nm_intercept=-0.6,
    crnh_threshold_ucb_intercept=-0.5,
    factor_threshold=1.0,
    min_minority_net_helpful=None,
    min_minority_net_helpful_ratio=None,
    no_high_vol_threshold=0.45,
    no_correlated_threshold=0.45,
)


def gaussian(*, with_topics: bool = False) -> ScorerSpec:
    """GaussianScorer / GaussianCoreWithTopicsScorer (§6.1, §6.2): Core's prescoring rater
    factors, coverage groups (core minus 21); the plain one leaves topic notes out."""
    return ScorerSpec(
        "GaussianCoreWithTopicsScorer" if with_topics else "GaussianScorer",
        "gaussianCoreWithTopics" if with_topics else "gaussian",
        COVERAGE_GROUPS,
        exclude_topics=not with_topics,
        rules=GAUSSIAN_RULES,
        kernel="gaussian",
        prescoring="MFCoreScorer",
    )


# GaussianGroupScorer_15 (§3.2): Core's MF thresholds but CRH from 0.25, UCB −0.5, no net-helpful
# minimum (the Gaussian scorers have none).
GAUSSIAN_GROUP_RULES = dataclasses.replace(
    _NO_FIRM,
    crh_threshold=0.25,
    crnh_threshold_ucb_intercept=-0.5,
    min_minority_net_helpful=None,
    min_minority_net_helpful_ratio=None,
)


def gaussian_group(i: int = 15) -> ScorerSpec:
    """GaussianGroupScorer_15 (§6.1): the kernel scorer on group 15's own prescoring
    (MFGroupScorer_15); its results are group 15's ``group*`` columns (GroupModel15NMR demotes)."""
    return ScorerSpec(
        f"GaussianGroupScorer_{i}",
        "group",
        frozenset({i}),
        include_unassigned=False,
        capture_threshold=0.8,
        rules=GAUSSIAN_GROUP_RULES,
        kernel="gaussian",
        prescoring=f"MFGroupScorer_{i}",
    )


def default_scorers() -> list[ScorerSpec]:
    """The production scorer inventory (§6.1), in the reference's order; a scorer that reuses
    another's prescoring comes after it."""
    specs = [core(), core_with_topics(), expansion(), expansion_plus()]
    specs += [group(i) for i in (*range(1, 16), 18, 33)]
    specs += [multi_group_1()]
    specs += [topic(i + 1, name) for i, name in enumerate(MF_TOPICS)]
    specs += [topic_in_dimension_two()]
    specs += [gaussian(), gaussian(with_topics=True), gaussian_group(15), gaussian_topic()]
    return specs

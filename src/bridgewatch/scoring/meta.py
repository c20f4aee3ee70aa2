"""Meta scoring: combine the per-scorer statuses into one final status per note (§6.4–6.5).

Every scorer (core, expansion, groups, Gaussian, topics, ...) has already produced its own status
column. Here an ordered list of rules turns those columns, the previous run's status history and the
explanation-tag check into ``finalRatingStatus``. Each rule *emits* a set of notes with a status;
the last rule to emit a note decides it (``decidedBy``) and every emitting rule is listed in
``metaScorerActiveRules``, in rule order — exactly the reference's bookkeeping, so outputs compare
string for string.

Statuses are handled as int8 codes (``schema.Status``; -1 = no status) and the active rules of a
note as one uint64 bit set, so the whole pass is a few dozen vectorized operations per note array
(2.5M notes in about a second) instead of the reference's per-rule DataFrame merges.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.errors import ScoringError
from bridgewatch.scoring.config import ScoringConfig

NMR, CRH, CRNH = int(schema.Status.NMR), int(schema.Status.CRH), int(schema.Status.CRNH)
FR, NYH = int(schema.Status.FIRM_REJECT), int(schema.Status.NEEDS_YOUR_HELP)
NONE = -1

# Topic models in the reference's enum order (Unassigned has no model).
TOPICS = ("UkraineConflict", "GazaConflict", "MessiRonaldo", "Scams", "InDimensionTwo")
PROMOTING_GROUPS = tuple(range(1, 15))
NMR_GROUPS = (33, 18, 15)  # demote-only rules, in the order they run

# Rule names exactly as the reference writes them, in the order the rules run.
META_INITIAL_NMR = "MetaInitialNMR (v1.0)"
EXPANSION_PLUS_MODEL = "ExpansionPlusModel (v1.1)"
EXPANSION_MODEL = "ExpansionModel (v1.1)"
CORE_WITH_TOPICS_MODEL = "CoreWithTopicsModel (v1.1)"
CORE_MODEL = "CoreModel (v1.1)"
MULTI_GROUP_MODEL = "MultiGroupModel01 (v1.0)"
GROUP_MODELS = tuple(f"GroupModel{i:02d} (v1.1)" for i in PROMOTING_GROUPS)
GROUP_MODEL_33 = "GroupModel33 (v1.1)"
NMR_GROUP_MODELS = tuple(f"GroupModel{g}NMR (v1.1)" for g in NMR_GROUPS)
GAUSSIAN_MODEL = "GaussianModel (v1.0)"
GAUSSIAN_CORE_WITH_TOPICS_MODEL = "GaussianCoreWithTopicsModel (v1.0)"
TOPIC_MODELS = tuple(f"TopicModel{i:02d} (v1.0)" for i in range(1, len(TOPICS) + 1))
POPULATION_SAMPLED = "PopulationSampledIntercept (v1.0)"
NMR_DUE_TO_MIN_STABLE_CRH_TIME = "NmrDueToMinStableCrhTime (v1.0)"
SCORING_DRIFT_GUARD = "ScoringDriftGuard (v1.0)"
INSUFFICIENT_EXPLANATION = "InsufficientExplanation (v1.0)"

RULE_ORDER = (
    META_INITIAL_NMR,
    EXPANSION_PLUS_MODEL,
    EXPANSION_MODEL,
    CORE_WITH_TOPICS_MODEL,
    CORE_MODEL,
    MULTI_GROUP_MODEL,
    *GROUP_MODELS,
    GROUP_MODEL_33,
    *NMR_GROUP_MODELS,
    GAUSSIAN_MODEL,
    GAUSSIAN_CORE_WITH_TOPICS_MODEL,
    *TOPIC_MODELS,
    POPULATION_SAMPLED,
    NMR_DUE_TO_MIN_STABLE_CRH_TIME,
    SCORING_DRIFT_GUARD,
    INSUFFICIENT_EXPLANATION,
)
RULE_INDEX = {name: i for i, name in enumerate(RULE_ORDER)}

# Rules trusted to lock a note's status after 14 days (§6.6). Untrusted: ExpansionPlus, topics,
# the stabilization delay, the drift guard itself, MetaInitialNMR, the retired CoverageModel.
LOCKING_ENABLED_RULES = frozenset(
    {
        CORE_MODEL,
        CORE_WITH_TOPICS_MODEL,
        EXPANSION_MODEL,
        *(f"GroupModel{i:02d} (v1.1)" for i in range(1, 16)),
        *NMR_GROUP_MODELS,
        "GroupModel18 (v1.1)",
        GROUP_MODEL_33,
        MULTI_GROUP_MODEL,
        INSUFFICIENT_EXPLANATION,
        GAUSSIAN_MODEL,
        GAUSSIAN_CORE_WITH_TOPICS_MODEL,
    }
)

UPDATED_TIMER_COLUMN = "updatedTimestampMillisOfNmrDueToMinStableCrhTime"
PFLIP_LABEL_COLUMN = "pflipLabel"  # "CRH" = no flip predicted; anything else (or missing) = flip
CRH_EXPLAINED = "crhExplained"
CRNH_EXPLAINED = "crnhExplained"

_CODE_OF = {name: int(code) for name, code in schema.STATUS_CODES.items()}
_NAMES = pd.Index(list(_CODE_OF), dtype=object)
_CODES = np.array(list(_CODE_OF.values()), dtype=np.int64)
_NAME_OF = np.array([schema.STATUS_NAMES[schema.Status(i)] for i in range(5)] + [np.nan], dtype=object)


def status_codes(values: Iterable | None, n: int) -> np.ndarray:
    """int8[n] status codes of an array of status strings; NaN/None/missing column → -1."""
    if values is None:
        return np.full(n, NONE, dtype=np.int8)
    # A hash lookup of the names (``Series.map`` through a dict cost ~10x more: ~6 calls a run),
    # through an object index: a bare array would first become an arrow-backed text index (5x).
    names = np.asarray(values, dtype=object)
    pos = _NAMES.get_indexer(pd.Index(names, dtype=object, copy=False))
    missing = pos < 0
    unknown = missing & ~pd.isna(names)
    if unknown.any():
        bad = names[np.argmax(unknown)]
        raise ScoringError(f"unknown note status {bad!r}; expected one of {sorted(_CODE_OF)}")
    return np.where(missing, NONE, _CODES[pos]).astype(np.int8)


def status_names(codes: np.ndarray) -> np.ndarray:
    """object[n] status strings of int8 codes (-1 → NaN)."""
    return _NAME_OF[np.where(codes < 0, 5, codes)]


def explanation_flags(tag_counts: pd.DataFrame, config: ScoringConfig) -> pd.DataFrame:
    """Per note, whether it has enough explanation tags to keep CRH / CRNH (§3.6).

    ``tag_counts``: noteId plus the 22 tag count columns of ``schema.RATING_TAGS`` (aux_note_info
    layout). Returns noteId, ``crhExplained`` (≥ 2 helpful tags each used ≥ 2 times) and
    ``crnhExplained`` (same over the not-helpful tags). The top-two tag choice itself lives in the
    explanation module; only the count of qualifying tags matters for status.
    """
    ex = config.explanation

    def enough(tags: tuple[str, ...]) -> np.ndarray:
        counts = tag_counts[list(tags)].to_numpy(dtype=np.float64)
        return (counts >= ex.min_ratings_to_get_tag).sum(axis=1) >= ex.min_tags_needed_for_status

    return pd.DataFrame(
        {
            "noteId": tag_counts["noteId"].to_numpy(),
            CRH_EXPLAINED: enough(schema.HELPFUL_TAGS),
            CRNH_EXPLAINED: enough(schema.NOT_HELPFUL_TAGS),
        }
    )


class _Rules:
    """Status, active-rule bit set and deciding rule of every note, updated rule by rule."""

    def __init__(self, n: int, enabled: frozenset[str] | None) -> None:
        self.status = np.full(n, NMR, dtype=np.int8)
        self.active = np.zeros(n, dtype=np.uint64)
        self.decided = np.full(n, -1, dtype=np.int16)
        self.enabled = enabled

    def on(self, rule: str) -> bool:
        return self.enabled is None or rule in self.enabled

    def emit(self, rule: str, mask: np.ndarray, new_status: np.ndarray | int) -> None:
        """Rule ``rule`` emits ``new_status`` for the notes in ``mask`` (bool[n])."""
        k = RULE_INDEX[rule]
        if isinstance(new_status, np.ndarray):
            self.status[mask] = new_status[mask]
        else:
            self.status[mask] = new_status
        self.active[mask] |= np.uint64(1) << np.uint64(k)
        self.decided[mask] = k


def _float(scored: pd.DataFrame, col: str) -> np.ndarray | None:
    return scored[col].to_numpy(dtype=np.float64) if col in scored.columns else None


def _status(scored: pd.DataFrame, col: str) -> np.ndarray | None:
    return status_codes(scored[col].to_numpy(), len(scored)) if col in scored.columns else None


def _safeguard_ok(n: int, core_i, exp_i, lo: float, hi: float | None) -> np.ndarray:
    """Core intercept (else expansion) strictly inside (lo, hi); neither present → not actionable."""
    core_i = np.full(n, np.nan) if core_i is None else core_i
    exp_i = np.full(n, np.nan) if exp_i is None else exp_i
    chosen = np.where(np.isnan(core_i), exp_i, core_i)
    ok = chosen > lo
    if hi is not None:
        ok &= chosen < hi
    return ok & ~np.isnan(chosen)


def stabilize(
    status: np.ndarray,
    previous_status: np.ndarray,
    timer: np.ndarray,
    first_non_nmr: np.ndarray,
    topic_unconfident: np.ndarray,
    flip_predicted: np.ndarray,
    *,
    epoch_millis: int,
    config: ScoringConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stabilization delay ``NmrDueToMinStableCrhTime`` (§6.5), on arrays of n notes.

    ``status``/``previous_status``/``first_non_nmr``: int8 codes (this run so far, NSH
    currentStatus, NSH firstNonNMRStatus); ``timer``: float64 NSH stabilization timestamp (NaN never
    entered, > 0 entered then, -1 exited); ``topic_unconfident``/``flip_predicted``: bool.
    Returns (new status int8[n], emitted bool[n], updated timer float64[n], NaN = leave as is).
    """
    h = config.history
    minute = 60_000.0
    new = np.full(status.shape[0], NONE, dtype=np.int8)
    updated = np.full(status.shape[0], np.nan)
    prev_crh = previous_status == CRH
    nyh_to_crh = prev_crh & (status == NYH)
    cand = ~prev_crh & ((status == CRH) | (status == NYH) | (timer > 0))
    updated[cand] = timer[cand]
    going_crh = cand & (status == CRH)
    going_nyh = cand & (status == NYH)
    going = going_crh | going_nyh
    never = np.isnan(timer)
    exited = timer < 0
    in_stab = timer > 0
    elapsed = epoch_millis - timer

    m = going & never  # (A) enter
    new[m], updated[m] = NMR, epoch_millis
    m = going_crh & exited  # (B) re-enter on CRH; NYH stays out
    new[m], updated[m] = NMR, epoch_millis
    new[going_nyh & exited] = NMR
    longer_crh = going_crh & in_stab & (elapsed > h.max_stable_crh_minutes * minute)
    new[longer_crh], updated[longer_crh] = CRH, -1.0
    longer_nyh = going_nyh & in_stab & (elapsed > h.max_stable_nyh_minutes * minute)
    new[longer_nyh], updated[longer_nyh] = NMR, -1.0
    longer = longer_crh | longer_nyh
    shorter = elapsed < h.min_stable_crh_minutes * minute
    new[going & in_stab & shorter] = NMR
    mid = going & in_stab & ~shorter & ~longer
    new[mid & topic_unconfident] = NMR
    flipped = first_non_nmr == CRH
    hold = mid & ~topic_unconfident & (flipped | flip_predicted)
    new[hold] = NMR
    clear = mid & ~topic_unconfident & ~flipped & ~flip_predicted
    new[clear & going_nyh] = NMR
    m = clear & going_crh
    new[m], updated[m] = CRH, -1.0
    updated[cand & ~going & in_stab] = -1.0  # (2) stopped trying while in the period

    emitted = ((new != NONE) & (new != status)) | nyh_to_crh
    out = np.where(new != NONE, new, status).astype(np.int8)
    out[nyh_to_crh] = CRH
    return out, emitted, updated


def meta_score(
    scored: pd.DataFrame,
    nsh: pd.DataFrame,
    *,
    epoch_millis: int,
    config: ScoringConfig,
    enabled_rules: Iterable[str] | None = None,
    explanation: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Final status of every note in ``scored`` by the §6.4 rule chain.

    ``scored``: one row per note, ``noteId`` plus whichever per-scorer columns exist (scored_notes
    names: ``coreRatingStatus``, ``coreNoteIntercept``, ``expansion*``, ``expansionPlusRatingStatus``,
    ``coreWithTopicsRatingStatus``, ``multiGroupRatingStatus``/``modelingMultiGroup``,
    ``groupRatingStatus``/``modelingGroup``, ``gaussian[CoreWithTopics]RatingStatus``,
    ``topicNoteIntercept``/``topicNoteFactor1``/``topicNoteConfident``/``noteTopic``,
    ``coreNoteInterceptPopulationSampled``, ``core{Neg,Pos}Factor_populationSampledRatingCount``,
    optional ``pflipLabel``). A missing column means that scorer did not run: its rule emits nothing.
    ``nsh``: previous status history (noteId, currentStatus, lockedStatus, firstNonNMRStatus,
    timestampMillisOfNmrDueToMinStableCrhTime); notes absent from it are new.
    ``explanation``: noteId + ``crhExplained``/``crnhExplained`` (see ``explanation_flags``), or
    the 22 tag count columns; None skips InsufficientExplanation.
    ``enabled_rules``: rule names to run (None = all).

    Returns one row per note of ``scored`` (same order): noteId, finalRatingStatus, decidedBy,
    metaScorerActiveRules, unlockedRatingStatus, preStabilizationRatingStatus,
    updatedTimestampMillisOfNmrDueToMinStableCrhTime, crhBool, crnhBool, awaitingBool.
    """
    n = len(scored)
    note_ids = scored["noteId"].to_numpy(dtype=np.int64)
    if pd.Index(note_ids).has_duplicates:
        raise ScoringError("meta_score: scored notes contain duplicate noteIds")
    mc = config.meta
    rules = _Rules(n, None if enabled_rules is None else frozenset(enabled_rules))
    hist = _align(nsh, note_ids)

    rules.emit(META_INITIAL_NMR, np.ones(n, dtype=bool), NMR)
    for rule, col in (
        (EXPANSION_PLUS_MODEL, "expansionPlusRatingStatus"),
        (EXPANSION_MODEL, "expansionRatingStatus"),
        (CORE_WITH_TOPICS_MODEL, "coreWithTopicsRatingStatus"),
        (CORE_MODEL, "coreRatingStatus"),
    ):
        src = _status(scored, col)
        if src is not None and rules.on(rule):
            rules.emit(rule, src != NONE, np.where(src == FR, NMR, src).astype(np.int8))

    core, expansion = _status(scored, "coreRatingStatus"), _status(scored, "expansionRatingStatus")
    core = np.full(n, NONE, np.int8) if core is None else core
    expansion = np.full(n, NONE, np.int8) if expansion is None else expansion
    rejects = (FR, CRNH)
    blocked = np.isin(core, rejects) | ((core == NONE) & np.isin(expansion, rejects))
    core_i, exp_i = _float(scored, "coreNoteIntercept"), _float(scored, "expansionNoteIntercept")

    multi, multi_group = _status(scored, "multiGroupRatingStatus"), _float(scored, "modelingMultiGroup")
    if multi is not None and multi_group is not None and rules.on(MULTI_GROUP_MODEL):
        keep = ~(blocked & np.isin(multi, (CRH, NYH))) & (multi_group == 1) & (multi != NONE)
        rules.emit(MULTI_GROUP_MODEL, keep, np.where(multi == FR, NMR, multi).astype(np.int8))

    group, group_id = _status(scored, "groupRatingStatus"), _float(scored, "modelingGroup")
    if group is not None and group_id is not None:
        promos = [
            (g, name, mc.group_min_safeguard, config.rules.crh_threshold)
            for g, name in zip(PROMOTING_GROUPS, GROUP_MODELS, strict=True)
        ]
        promos[13] = (14, GROUP_MODELS[13], mc.group14_min_safeguard, None)
        promos.append((33, GROUP_MODEL_33, mc.group33_min_safeguard, None))
        for g, name, lo, hi in promos:
            if not rules.on(name):
                continue
            s = rules.status
            m = (
                ~blocked
                & (group_id == g)
                & np.isin(group, (CRH, NYH))
                & np.isin(s, (NMR, NYH))
                & ~((group == NYH) & (s == NYH))
                & _safeguard_ok(n, core_i, exp_i, lo, hi)
            )
            rules.emit(name, m, group)
        for g, name in zip(NMR_GROUPS, NMR_GROUP_MODELS, strict=True):
            if rules.on(name):
                m = (group_id == g) & np.isin(group, (NMR, CRNH)) & np.isin(rules.status, (CRH, NYH))
                rules.emit(name, m, NMR)

    for rule, col in (
        (GAUSSIAN_MODEL, "gaussianRatingStatus"),
        (GAUSSIAN_CORE_WITH_TOPICS_MODEL, "gaussianCoreWithTopicsRatingStatus"),
    ):
        src = _status(scored, col)
        if src is None or not rules.on(rule):
            continue
        s = rules.status
        m = ((np.isin(src, (CRH, NYH)) & ~blocked) | (src == CRNH)) & np.isin(s, (NMR, NYH))
        rules.emit(rule, m & ~((src == NYH) & (s == NYH)), src)

    topic = scored["noteTopic"].to_numpy(dtype=object) if "noteTopic" in scored.columns else None
    confident = _bool_or_nan(scored, "topicNoteConfident")
    topic_i, topic_f = _float(scored, "topicNoteIntercept"), _float(scored, "topicNoteFactor1")
    if topic is not None and topic_i is not None and topic_f is not None:
        for name, rule in zip(TOPICS, TOPIC_MODELS, strict=True):
            if not rules.on(rule):
                continue
            lo, fmax = (
                (mc.topic_in_dim_two_nmr_intercept, mc.topic_in_dim_two_nmr_factor)
                if name == "InDimensionTwo"
                else (mc.topic_nmr_intercept, mc.topic_nmr_factor)
            )
            low = (topic_i < lo) | (np.abs(topic_f) > fmax)
            m = np.isin(rules.status, (CRH, NYH)) & low & (confident == 1.0) & (topic == name)
            rules.emit(rule, m, NMR)

    ps_i = _float(scored, "coreNoteInterceptPopulationSampled")
    neg = _float(scored, "coreNegFactor_populationSampledRatingCount")
    pos = _float(scored, "corePosFactor_populationSampledRatingCount")
    have_ps = all(x is not None for x in (core_i, ps_i, neg, pos))
    if have_ps and rules.on(POPULATION_SAMPLED):
        m = (
            (rules.status == CRH)
            & ~np.isnan(core_i)
            & ~np.isnan(ps_i)
            & (neg + pos >= mc.pop_sampled_min_ratings)
            & (neg >= mc.pop_sampled_min_per_sign)
            & (pos >= mc.pop_sampled_min_per_sign)
            & (ps_i < mc.pop_sampled_max_intercept)
            & (core_i - ps_i >= mc.pop_sampled_divergence)
        )
        rules.emit(POPULATION_SAMPLED, m, NMR)

    pre_stab = rules.status.copy()
    updated_timer = np.full(n, np.nan)
    if rules.on(NMR_DUE_TO_MIN_STABLE_CRH_TIME):
        unconfident = (topic is not None) & pd.notna(topic) & (confident == 0.0)
        if PFLIP_LABEL_COLUMN in scored.columns:
            flip = scored[PFLIP_LABEL_COLUMN].to_numpy(dtype=object) != "CRH"
        else:
            flip = np.ones(n, dtype=bool)
        new, emitted, updated_timer = stabilize(
            rules.status,
            hist["currentStatus"],
            hist["timer"],
            hist["firstNonNMRStatus"],
            np.asarray(unconfident, dtype=bool),
            flip,
            epoch_millis=epoch_millis,
            config=config,
        )
        rules.emit(NMR_DUE_TO_MIN_STABLE_CRH_TIME, emitted, new)

    unlocked = np.full(n, NONE, dtype=np.int8)
    if rules.on(SCORING_DRIFT_GUARD):
        locked = hist["lockedStatus"]
        m = (locked != NONE) & (locked != rules.status)
        unlocked[m] = rules.status[m]
        rules.emit(SCORING_DRIFT_GUARD, m, locked)

    if explanation is not None and rules.on(INSUFFICIENT_EXPLANATION):
        crh_ok, crnh_ok = _explained(explanation, note_ids, config)
        s = rules.status
        rules.emit(INSUFFICIENT_EXPLANATION, ((s == CRH) & ~crh_ok) | ((s == CRNH) & ~crnh_ok), NMR)

    final = rules.status
    return pd.DataFrame(
        {
            "noteId": note_ids,
            "finalRatingStatus": status_names(final),
            "decidedBy": np.asarray(RULE_ORDER, dtype=object)[rules.decided],
            "metaScorerActiveRules": _rule_strings(rules.active),
            "unlockedRatingStatus": status_names(unlocked),
            "preStabilizationRatingStatus": status_names(pre_stab),
            UPDATED_TIMER_COLUMN: updated_timer,
            "crhBool": final == CRH,
            "crnhBool": final == CRNH,
            "awaitingBool": final == NMR,
        }
    )


def _bool_or_nan(scored: pd.DataFrame, col: str) -> np.ndarray:
    """float64[n]: 1.0 true, 0.0 false, NaN missing (the reference's nullable bool)."""
    if col not in scored.columns:
        return np.full(len(scored), np.nan)
    v = scored[col]
    out = np.full(len(v), np.nan)
    known = v.notna().to_numpy()
    raw = v.to_numpy(dtype=object)[known]
    out[known] = [1.0 if (x is True or x == 1 or str(x).lower() == "true") else 0.0 for x in raw]
    return out


def _align(nsh: pd.DataFrame, note_ids: np.ndarray) -> dict[str, np.ndarray]:
    """NSH state of each scored note (codes / floats), missing notes as never-seen."""
    n = note_ids.shape[0]
    pos = pd.Index(nsh["noteId"].to_numpy(dtype=np.int64)).get_indexer(note_ids)
    found = pos >= 0
    out = {}
    for col in ("currentStatus", "lockedStatus", "firstNonNMRStatus"):
        codes = np.full(n, NONE, dtype=np.int8)
        if col in nsh.columns:
            codes[found] = status_codes(nsh[col].to_numpy()[pos[found]], int(found.sum()))
        out[col] = codes
    timer = np.full(n, np.nan)
    col = "timestampMillisOfNmrDueToMinStableCrhTime"
    if col in nsh.columns:
        timer[found] = nsh[col].to_numpy(dtype=np.float64)[pos[found]]
    out["timer"] = timer
    return out


def _explained(explanation: pd.DataFrame, note_ids: np.ndarray, config: ScoringConfig):
    if CRH_EXPLAINED not in explanation.columns:
        explanation = explanation_flags(explanation, config)
    pos = pd.Index(explanation["noteId"].to_numpy(dtype=np.int64)).get_indexer(note_ids)
    found = pos >= 0
    crh = np.zeros(note_ids.shape[0], dtype=bool)
    crnh = np.zeros(note_ids.shape[0], dtype=bool)
    crh[found] = explanation[CRH_EXPLAINED].to_numpy(dtype=bool)[pos[found]]
    crnh[found] = explanation[CRNH_EXPLAINED].to_numpy(dtype=bool)[pos[found]]
    return crh, crnh


def _rule_strings(active: np.ndarray) -> np.ndarray:
    """Comma-joined rule names of each bit set, in rule order (few distinct sets → cheap)."""
    uniq, inverse = np.unique(active, return_inverse=True)
    names = np.array(
        [",".join(r for k, r in enumerate(RULE_ORDER) if int(u) >> k & 1) for u in uniq], dtype=object
    )
    return names[inverse]

"""The per-scorer status rule chain (spec §3.1), vectorized over notes.

Each rule tests every note at once and "emits" a status for the notes it matches; rules run in
the reference's fixed order and the last rule that emits a note decides its status. Several rules
look at the status left by the rules before them (filters skip CRNH notes, the NYH rules act only
on notes still CRH), so the chain is sequential over rules but vectorized over notes: 17 passes of
cheap numpy comparisons, fine for millions of notes.

Which rules ran for a note is kept as a bit mask (bit ``r`` = rule ``r``, in chain order); the
comma-joined names the reference writes to ``*ActiveRules`` are built per distinct mask only.

Comparisons follow numpy's rules for Python-float thresholds: a float32 input is compared in
float32, as the reference's float32 columns are. NaN never satisfies a comparison, so a note
absent from the fit (NaN intercept) keeps NMR.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numba
import numpy as np

from bridgewatch.io.matrix import streamed
from bridgewatch.schema import Status
from bridgewatch.scoring.config import RuleConfig

NO_STATUS = -1  # previous_status code for "no published status" (new note or empty NSH cell)


class Rule(IntEnum):
    """Rule ids in chain order; the value is also the bit in ``RuleResult.rule_mask``."""

    INITIAL_NMR = 0
    GENERAL_CRH = 1
    GENERAL_CRNH = 2
    UCB_CRNH = 3
    RATIO_CRNH = 4
    NM_CRNH = 5
    GENERAL_CRH_INERTIA = 6
    TAG_FILTER = 7
    FILTER_INCORRECT = 8
    FILTER_LOW_DILIGENCE = 9
    FILTER_LARGE_FACTOR = 10
    REJECT_LOW_INTERCEPT = 11
    MIN_MINORITY_RATERS = 12
    RATER_BALANCE = 13
    NO_HIGH_VOL_INTERCEPT = 14
    NO_CORRELATED_INTERCEPT = 15


# The names the reference writes (RuleID.get_name()). CRHSuperThreshold / ElevatedCRHInertia are
# omitted: no production scorer sets crhSuperThreshold (§3.1 rule 9).
RULE_NAMES: dict[Rule, str] = {
    Rule.INITIAL_NMR: "InitialNMR (v1.0)",
    Rule.GENERAL_CRH: "GeneralCRH (v1.0)",
    Rule.GENERAL_CRNH: "GeneralCRNH (v1.0)",
    Rule.UCB_CRNH: "UcbCRNH (v1.0)",
    Rule.RATIO_CRNH: "RatioCRNH (v1.0)",
    Rule.NM_CRNH: "NmCRNH (v1.0)",
    Rule.GENERAL_CRH_INERTIA: "GeneralCRHInertia (v1.0)",
    Rule.TAG_FILTER: "TagFilter (v1.0)",
    Rule.FILTER_INCORRECT: "FilterIncorrect (v1.0)",
    Rule.FILTER_LOW_DILIGENCE: "FilterLowDiligence (v1.0)",
    Rule.FILTER_LARGE_FACTOR: "FilterLargeFactor (v1.0)",
    Rule.REJECT_LOW_INTERCEPT: "RejectLowIntercept (v1.0)",
    Rule.MIN_MINORITY_RATERS: "MinMinorityRaters (v1.0)",
    Rule.RATER_BALANCE: "RaterBalance (v1.0)",
    Rule.NO_HIGH_VOL_INTERCEPT: "NoHighVolIntercept (v1.0)",
    Rule.NO_CORRELATED_INTERCEPT: "NoCorrelatedIntercept (v1.0)",
}


@dataclass(frozen=True)
class RuleInputs:
    """Per-note inputs of the chain, all arrays of length N (the notes this scorer scores).

    Optional fields left ``None`` mean the input is absent and the rules that need it do not run
    (as in the reference when a column is missing): ``intercept_max`` → UcbCRNH;
    ``previous_status`` → GeneralCRHInertia; the side counts → RatioCRNH, MinMinorityRaters,
    RaterBalance; ``tag_filtered`` → TagFilter; ``incorrect_filtered`` → FilterIncorrect;
    ``low_diligence_intercept`` → FilterLowDiligence; the refit intercepts → NoHighVol /
    NoCorrelated.

    - ``intercept``, ``factor``: float[N] note intercept i_n and factor f_n, NaN = not in the fit.
    - ``num_ratings``: int[N], all in-scope ratings of the note (minRatingsNeeded test).
    - ``is_not_misleading``: bool[N], classification == NOT_MISLEADING (deleted notes: False).
    - ``intercept_max``: float[N], pseudo-rater upper bound ``internalNoteIntercept_max``.
    - ``previous_status``: int8[N], NSH ``currentStatus`` as ``Status`` codes, ``NO_STATUS`` if none.
    - ``min_sign_count``, ``neg_mean_helpful``, ``pos_mean_helpful``, ``net_min_helpful``,
      ``net_min_helpful_ratio``: from ``note_counts_by_rater_sign`` (float32 means, NaN = no side).
    - ``tag_filtered``: bool[N], tag-outlier trigger (§3.3); ``filter_tags``: object[N] of the
      comma-joined triggering tag names ("" where none), copied to ``active_filter_tags``.
    - ``incorrect_filtered``: bool[N], incorrect-filter trigger (§3.4).
    - ``low_diligence_intercept``: float[N] (§3.5).
    - ``intercept_no_high_vol``, ``intercept_no_correlated``: float[N] refit intercepts.
    """

    intercept: np.ndarray
    factor: np.ndarray
    num_ratings: np.ndarray
    is_not_misleading: np.ndarray
    intercept_max: np.ndarray | None = None
    previous_status: np.ndarray | None = None
    min_sign_count: np.ndarray | None = None
    neg_mean_helpful: np.ndarray | None = None
    pos_mean_helpful: np.ndarray | None = None
    net_min_helpful: np.ndarray | None = None
    net_min_helpful_ratio: np.ndarray | None = None
    tag_filtered: np.ndarray | None = None
    filter_tags: np.ndarray | None = None
    incorrect_filtered: np.ndarray | None = None
    low_diligence_intercept: np.ndarray | None = None
    intercept_no_high_vol: np.ndarray | None = None
    intercept_no_correlated: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class RuleResult:
    """Outcome of the chain for N notes.

    - ``status``: int8[N] ``Status`` codes (FIRM_REJECT and NEEDS_YOUR_HELP included).
    - ``rule_mask``: uint32[N], bit ``Rule.X`` set when rule X emitted the note.
    - ``deciding_rule``: int8[N], the ``Rule`` that emitted last (decided the status).
    - ``active_filter_tags``: object[N], tags of TagFilter where it fired, else "".
    """

    status: np.ndarray
    rule_mask: np.ndarray
    deciding_rule: np.ndarray
    active_filter_tags: np.ndarray

    @property
    def active_rules(self) -> list[str]:
        """Per note, the comma-joined rule names in chain order (the reference's ``*ActiveRules``)."""
        return list(active_rule_strings(self.rule_mask))

    def deciding_rule_names(self) -> np.ndarray:
        """object[N]: the reference name of each note's deciding rule."""
        names = np.array([RULE_NAMES[r] for r in Rule], dtype=object)
        return names[self.deciding_rule.astype(np.intp)]


def active_rule_strings(rule_mask: np.ndarray) -> np.ndarray:
    """object[N] of comma-joined rule names for uint32[N] masks, built once per distinct mask."""
    uniq, inverse = np.unique(np.asarray(rule_mask, dtype=np.uint32), return_inverse=True)
    texts = np.empty(uniq.shape[0], dtype=object)
    for i, m in enumerate(uniq):
        texts[i] = ",".join(RULE_NAMES[r] for r in Rule if int(m) >> int(r) & 1)
    return texts[inverse.reshape(-1)]


def compute_statuses(inputs: RuleInputs, rules: RuleConfig, *, final_round: bool) -> RuleResult:
    """Run the §3.1 chain. ``final_round=False`` is prescoring's provisional labelling (rules 1–6,
    RatioCRNH off); ``True`` adds inertia, filters and the NYH robustness rules.
    """
    intercept = np.asarray(inputs.intercept)
    n = intercept.shape[0]
    factor = np.asarray(inputs.factor)
    nm = np.asarray(inputs.is_not_misleading, dtype=bool)
    enough = np.asarray(inputs.num_ratings) >= rules.min_ratings_needed
    _check_lengths(inputs, n)

    status = np.full(n, Status.NMR, dtype=np.int8)
    mask = np.zeros(n, dtype=np.uint32)
    deciding = np.zeros(n, dtype=np.int8)
    filter_tags = np.full(n, "", dtype=object)

    def emit(rule: Rule, sel: np.ndarray, new_status: Status) -> None:
        status[sel] = new_status
        mask[sel] |= np.uint32(1 << int(rule))
        deciding[sel] = int(rule)

    emit(Rule.INITIAL_NMR, np.ones(n, dtype=bool), Status.NMR)
    emit(Rule.GENERAL_CRH, enough & (intercept >= rules.crh_threshold) & ~nm, Status.CRH)
    crnh_line = rules.crnh_threshold_intercept + rules.crnh_threshold_factor_multiplier * np.abs(factor)
    emit(Rule.GENERAL_CRNH, enough & (intercept <= crnh_line), Status.CRNH)
    if inputs.intercept_max is not None:
        ucb = np.asarray(inputs.intercept_max) < rules.crnh_threshold_ucb_intercept
        emit(Rule.UCB_CRNH, enough & ucb, Status.CRNH)
    if final_round and inputs.min_sign_count is not None:
        emit(Rule.RATIO_CRNH, enough & _ratio_crnh(inputs, rules), Status.CRNH)
    emit(Rule.NM_CRNH, nm & (intercept < rules.crnh_threshold_nm_intercept), Status.CRNH)

    if final_round:
        if inputs.previous_status is not None:
            was_crh = np.asarray(inputs.previous_status) == Status.CRH
            inertia = intercept >= rules.crh_threshold - rules.inertia_delta
            emit(
                Rule.GENERAL_CRH_INERTIA,
                (status != Status.CRH) & enough & inertia & was_crh & ~nm,
                Status.CRH,
            )
        reject = Status.FIRM_REJECT if rules.firm_reject_threshold is not None else Status.NMR
        if inputs.tag_filtered is not None:
            sel = (status != Status.CRNH) & np.asarray(inputs.tag_filtered, dtype=bool)
            emit(Rule.TAG_FILTER, sel, reject)
            if inputs.filter_tags is not None:
                filter_tags[sel] = np.asarray(inputs.filter_tags, dtype=object)[sel]
        if inputs.incorrect_filtered is not None:
            sel = (status != Status.CRNH) & np.asarray(inputs.incorrect_filtered, dtype=bool)
            emit(Rule.FILTER_INCORRECT, sel, reject)
        if inputs.low_diligence_intercept is not None:
            low = np.asarray(inputs.low_diligence_intercept) > rules.low_diligence_threshold
            emit(Rule.FILTER_LOW_DILIGENCE, (status != Status.CRNH) & low, reject)
        emit(
            Rule.FILTER_LARGE_FACTOR,
            (status == Status.CRH) & (np.abs(factor) > rules.factor_threshold),
            reject,
        )
        if rules.firm_reject_threshold is not None:
            low = intercept < rules.firm_reject_threshold
            emit(Rule.REJECT_LOW_INTERCEPT, (status != Status.CRNH) & low, Status.FIRM_REJECT)
        if inputs.net_min_helpful is not None:
            net = np.asarray(inputs.net_min_helpful)
            if rules.min_minority_net_helpful is not None:
                few = net < rules.min_minority_net_helpful
                emit(Rule.MIN_MINORITY_RATERS, (status == Status.CRH) & few, Status.NEEDS_YOUR_HELP)
            if rules.min_minority_net_helpful_ratio is not None and inputs.net_min_helpful_ratio is not None:
                ratio = np.asarray(inputs.net_min_helpful_ratio)
                unbalanced = (
                    (net >= rules.rater_balance_lower)
                    & (net < rules.rater_balance_upper)
                    & (ratio < rules.min_minority_net_helpful_ratio)
                )
                emit(Rule.RATER_BALANCE, (status == Status.CRH) & unbalanced, Status.NEEDS_YOUR_HELP)
        if inputs.intercept_no_high_vol is not None:
            low = np.asarray(inputs.intercept_no_high_vol) < rules.no_high_vol_threshold
            emit(Rule.NO_HIGH_VOL_INTERCEPT, (status == Status.CRH) & low, Status.NEEDS_YOUR_HELP)
        if inputs.intercept_no_correlated is not None:
            low = np.asarray(inputs.intercept_no_correlated) < rules.no_correlated_threshold
            emit(Rule.NO_CORRELATED_INTERCEPT, (status == Status.CRH) & low, Status.NEEDS_YOUR_HELP)

    return RuleResult(status=status, rule_mask=mask, deciding_rule=deciding, active_filter_tags=filter_tags)


def _ratio_crnh(inputs: RuleInputs, rules: RuleConfig) -> np.ndarray:
    """RatioCRNH condition (§3.1 rule 5) in float32, as the reference's float32 side means."""
    neg = np.asarray(inputs.neg_mean_helpful, dtype=np.float32)
    pos = np.asarray(inputs.pos_mean_helpful, dtype=np.float32)
    side_max = np.float32(rules.ratio_crnh_max_side_mean)
    return (
        (np.asarray(inputs.min_sign_count) >= rules.ratio_crnh_min_sign_count)
        & (neg <= side_max)
        & (pos <= side_max)
        & ((neg + pos) / np.float32(2) <= np.float32(rules.ratio_crnh_max_mean))
    )


def _check_lengths(inputs: RuleInputs, n: int) -> None:
    for name, value in vars(inputs).items():
        if value is not None and np.shape(value)[0] != n:
            raise ValueError(f"RuleInputs.{name} has {np.shape(value)[0]} rows, intercept has {n}")


@dataclass(frozen=True, eq=False)
class SideCounts:
    """Per-note rating counts split by the rater factor's sign (§3.1 rules 5, 14, 15).

    All arrays have length N. ``neg_count``/``pos_count``/``min_sign_count``/``net_min_helpful``:
    int32; ``neg_mean_helpful``/``pos_mean_helpful``: float32, NaN where the side has no rating;
    ``net_min_helpful_ratio``: float32, 0 where the note has no rating with a rater factor.
    """

    neg_count: np.ndarray
    pos_count: np.ndarray
    min_sign_count: np.ndarray
    neg_mean_helpful: np.ndarray
    pos_mean_helpful: np.ndarray
    net_min_helpful: np.ndarray
    net_min_helpful_ratio: np.ndarray


@numba.njit(cache=True, nogil=True)
def _side_counts_kept(note, rater, helpful, keep, factor, counts, sums):
    """One pass over the ratings where ``keep``, each at its rater's ``factor`` (per rater), with
    no copy of the kept ratings (~40 bytes a rating), adding to int64[6, N] ``counts`` (neg, pos,
    neg helpful, neg not helpful, pos helpful, pos not helpful) and float64[2, N] helpfulness
    ``sums`` (neg, pos), in rating order as ``np.bincount`` adds them (so the sums are bit for bit
    its, whether the ratings come in one call or in consecutive chunks). Ratings without a factor
    (NaN) or with a note outside [0, N) count nowhere."""
    n_notes = counts.shape[1]
    for i in range(note.shape[0]):
        if not keep[i]:
            continue
        f = np.float64(factor[rater[i]])
        n = note[i]
        if np.isnan(f) or n < 0 or n >= n_notes:
            continue
        side = 0 if f < 0 else 1
        v = np.float64(helpful[i])
        counts[side, n] += 1
        sums[side, n] += v
        if v == 1.0:
            counts[2 + 2 * side, n] += 1
        elif v == 0.0:
            counts[3 + 2 * side, n] += 1


def note_counts_by_rater_sign(
    note: np.ndarray, rater_factor: np.ndarray, helpful: np.ndarray, n_notes: int
) -> SideCounts:
    """Side counts of each note's ratings (``get_note_counts_by_rater_sign``).

    ``note``: int[R] note index in [0, n_notes); ``rater_factor``: float[R] the rater's round-2
    factor for each rating (NaN: rater has no factor, rating ignored); ``helpful``: float[R]
    helpfulNum in {0, 0.5, 1}. Factor < 0 is the "neg" side, ≥ 0 the "pos" side.
    netMinHelpful = max(0, min over sides of (#helpful − #not helpful)); its ratio divides by all
    the note's ratings with a factor.
    """
    note = np.asarray(note, dtype=np.int64)
    # Each rating its own "rater": the kept kernel then reads this per-rating factor (one path
    # for both forms; this one serves small callers and the tests).
    each = np.arange(note.shape[0], dtype=np.int64)
    keep = np.ones(note.shape[0], dtype=np.bool_)
    factor = np.asarray(rater_factor, dtype=np.float64)
    helpful = np.asarray(helpful, dtype=np.float64)
    counts, sums = _side_arrays(n_notes)
    _side_counts_kept(note, each, helpful, keep, factor, counts, sums)
    return _side_result(counts, sums)


def _side_arrays(n_notes: int) -> tuple[np.ndarray, np.ndarray]:
    """Zeroed (int64[6, N] counts, float64[2, N] sums) for ``_side_counts_kept`` to add to."""
    return np.zeros((6, int(n_notes)), dtype=np.int64), np.zeros((2, int(n_notes)), dtype=np.float64)


def note_counts_by_rater_sign_kept(
    note: np.ndarray,
    rater: np.ndarray,
    helpful: np.ndarray,
    keep: np.ndarray,
    rater_factor: np.ndarray,
    n_notes: int,
) -> SideCounts:
    """``note_counts_by_rater_sign`` of a matrix's ratings where ``keep`` (bool[R]); ``note``,
    ``rater``, ``helpful``: the matrix's per-rating arrays, ``rater_factor``: float[U] per rater.
    Same bits as the per-rating form on ``note[keep]``, ``rater_factor[rater[keep]]``,
    ``helpful[keep]``, with no per-rating copy. The pass is ``streamed``: mapped columns go back
    a chunk at a time (at X's scale these three are ~2.3 GiB, which stayed resident to the end
    of every scorer, where the Gaussian scorers peak)."""
    if not (note.shape == rater.shape == helpful.shape == keep.shape):
        raise ValueError("note_counts_by_rater_sign_kept: per-rating arrays of different lengths")
    counts, sums = _side_arrays(n_notes)
    for lo, hi in streamed([note, rater, helpful], note.shape[0]):
        _side_counts_kept(note[lo:hi], rater[lo:hi], helpful[lo:hi], keep[lo:hi], rater_factor, counts, sums)
    return _side_result(counts, sums)


def _side_result(counts: np.ndarray, sums: np.ndarray) -> SideCounts:
    """``SideCounts`` from the side kernels' counts and sums."""
    neg_n, pos_n = counts[0], counts[1]
    with np.errstate(invalid="ignore", divide="ignore"):
        neg_mean = (sums[0] / neg_n).astype(np.float32)
        pos_mean = (sums[1] / pos_n).astype(np.float32)
    neg_net = counts[2] - counts[3]
    pos_net = counts[4] - counts[5]
    net = np.maximum(np.minimum(neg_net, pos_net), 0)
    total = neg_n + pos_n
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(total > 0, net / np.maximum(total, 1), 0.0).astype(np.float32)
    return SideCounts(
        neg_count=neg_n.astype(np.int32),
        pos_count=pos_n.astype(np.int32),
        min_sign_count=np.minimum(neg_n, pos_n).astype(np.int32),
        neg_mean_helpful=neg_mean,
        pos_mean_helpful=pos_mean,
        net_min_helpful=net.astype(np.int32),
        net_min_helpful_ratio=ratio,
    )

"""Contributor state: rating impact, writing record and the enrollment state machine (§4.6).

Runs after final scoring. Inputs are per-rating arrays (``RatingMatrix``), the final status of every
note, the valid-rating success/failure counts of the helpfulness module and the previous enrollment
file; the output is the contributor columns of ``helpfulness_scores.tsv``. The state machine is a
pure function over int arrays (``enrollment_transitions``) so each transition and its boundary is
tested directly.
"""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.io.matrix import STREAM_CHUNK, RatingMatrix, streamed, union_with_raters
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.explanation import author_top_not_helpful_tags, tag_counts

ES = schema.ENROLLMENT_STATES
EARNED_IN, AT_RISK, EARNED_OUT_NO_ACK = ES["earnedIn"], ES["atRisk"], ES["earnedOutNoAcknowledge"]
EARNED_OUT_ACK, NEW_USER, REMOVED = ES["earnedOutAcknowledged"], ES["newUser"], ES["removed"]
API = (ES["apiTestUser"], ES["apiEarnedIn"], ES["apiEarnedOut"])
DAY_MILLIS = 86_400_000
COUNT_COLUMNS = (
    "successfulRatingHelpfulCount",
    "successfulRatingNotHelpfulCount",
    "successfulRatingTotal",
    "unsuccessfulRatingHelpfulCount",
    "unsuccessfulRatingNotHelpfulCount",
    "unsuccessfulRatingTotal",
)


def rating_impact(counts: pd.DataFrame) -> np.ndarray:
    """float64[U]: successes − failures − helpful-on-CRNH failures (those cost 2)."""
    c = counts.fillna(0)
    return (
        c["successfulRatingTotal"].to_numpy(np.float64)
        - c["unsuccessfulRatingTotal"].to_numpy(np.float64)
        - c["unsuccessfulRatingNotHelpfulCount"].to_numpy(np.float64)
    )


def last_notes_counts(
    author: np.ndarray,
    note_id: np.ndarray,
    created: np.ndarray,
    status: np.ndarray,
    last_earn_out: np.ndarray,
    n_authors: int,
    max_history: int,
) -> np.ndarray:
    """int64[n_authors, 3] CRH / CRNH / NMR counts over each author's last notes since earn-out.

    Per note: ``author`` int index, ``note_id`` int64, ``created`` ms, ``status`` final status
    string; ``last_earn_out`` float64[n_authors]. Notes created after the author's last earn-out are
    ordered CRH/CRNH before NMR, then newest noteId first; the first ``max_history`` count.
    """
    keep = created > last_earn_out[author]
    a, nid, st = author[keep], note_id[keep], status[keep]
    is_nmr = (st != schema.CRH) & (st != schema.CRNH)
    order = np.lexsort((-nid, is_nmr, a))
    a, st = a[order], st[order]
    start = np.searchsorted(a, a, side="left")
    rank = np.arange(a.size) - start
    take = rank < max_history
    out = np.zeros((n_authors, 3), dtype=np.int64)
    for k, s in enumerate((schema.CRH, schema.CRNH)):
        out[:, k] = np.bincount(a[take & (st == s)], minlength=n_authors)
    out[:, 2] = np.bincount(a[take & (st != schema.CRH) & (st != schema.CRNH)], minlength=n_authors)
    return out


def enrollment_transitions(
    state: np.ndarray,
    impact: np.ndarray,
    needed: np.ndarray,
    crnh_recent: np.ndarray,
    crh_all: np.ndarray,
    crnh_all: np.ndarray,
    notes_all: np.ndarray,
    times_out: np.ndarray,
    last_change: np.ndarray,
    *,
    epoch_millis: int,
    config: ScoringConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Apply the §4.6 transitions in order; arrays of U contributors.

    ``state`` int codes (``schema.ENROLLMENT_STATES``), ``impact`` rating impact, ``needed``
    successfulRatingNeededToEarnIn, ``crnh_recent`` CRNH among the last notes since earn-out,
    ``crh_all``/``crnh_all``/``notes_all`` all-time authored counts, ``times_out``
    numberOfTimesEarnedOut, ``last_change`` timestampOfLastStateChange.
    Returns new (state, needed, times_out, last_change).
    """
    cc = config.contributor
    state, needed = state.copy(), needed.astype(np.float64).copy()
    times_out, last_change = times_out.copy(), last_change.astype(np.float64).copy()
    api = np.isin(state, API)

    def move(mask: np.ndarray, to: int) -> None:
        state[mask] = to
        last_change[mask] = epoch_millis

    move(~np.isin(state, (REMOVED, EARNED_IN, AT_RISK)) & ~api & (impact >= needed), EARNED_IN)
    excluded = (REMOVED, NEW_USER, EARNED_OUT_NO_ACK, EARNED_OUT_ACK, AT_RISK)
    move(~np.isin(state, excluded) & ~api & (crnh_recent == cc.at_risk_crnh_count), AT_RISK)
    out = ~np.isin(state, (REMOVED, NEW_USER, EARNED_OUT_ACK)) & ~api & (crnh_recent > cc.at_risk_crnh_count)
    times_out[out] += 1
    move(out, EARNED_OUT_NO_ACK)
    move((state == AT_RISK) & (crnh_recent < cc.at_risk_crnh_count), EARNED_IN)
    single = (
        cc.single_trigger_earn_out
        & (crnh_all > crh_all)
        & (crnh_recent > 0)
        & ~np.isin(state, (EARNED_OUT_NO_ACK, EARNED_OUT_ACK, NEW_USER, REMOVED))
    )
    times_out[single] += 1
    move(single, EARNED_OUT_NO_ACK)

    earned_out = state == EARNED_OUT_NO_ACK
    base = cc.rating_impact_for_earn_in + np.maximum(np.nan_to_num(impact), 0)
    escalated = base + cc.earn_out_increment * np.maximum(times_out - 1, 0)
    writing = crh_all - crnh_all
    top = (writing >= cc.top_writer_writing_impact) & (
        writing / np.maximum(notes_all, 1) >= cc.top_writer_hit_rate
    )
    needed[earned_out] = np.where(top, base, escalated)[earned_out]
    state[earned_out] = EARNED_OUT_ACK
    return state, needed, times_out, last_change


def _rating_window_counts(
    note, rater, created_at, rater_row, note_created, latest, note_nmr, delay: float, recent_from: float,
    n: int, chunk: int = STREAM_CHUNK,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """One pass over the ratings: per participant (``rater_row[rater]`` < ``n``) the ratings made
    within ``delay`` of their note's creation and before its latest non-NMR status (candidates),
    those of them on a note now NMR (awaiting), the ratings after that status (after); per note,
    the ratings made after ``recent_from``. Integer counts, as ``np.bincount`` of the masks gives
    them; the comparisons are numpy's (int64 times against float64, NaN compares false).

    Why a kernel: the mask expressions held ~40-50 bytes a rating of temporaries at once (the
    per-rating participant index, the notes' times and status names gathered per rating), the
    contributor phase's peak. Why a chunk at a time (``streamed``): the three columns it reads
    (16 bytes a rating, 3.1 GiB at X's scale) are read here for the last time."""
    awaiting = np.zeros(n, dtype=np.int64)
    after = np.zeros(n, dtype=np.int64)
    candidate = np.zeros(n, dtype=np.int64)
    last28 = np.zeros(note_created.shape[0], dtype=np.int64)
    columns = (note, rater, created_at)
    for lo, hi in streamed(columns, note.shape[0], chunk):
        _window_counts_nb(
            *(c[lo:hi] for c in columns), rater_row, note_created, latest, note_nmr, delay, recent_from,
            awaiting, after, candidate, last28,
        )  # fmt: skip
    return awaiting, after, candidate, last28


@numba.njit(cache=True, nogil=True)
def _window_counts_nb(
    note, rater, created_at, rater_row, note_created, latest, note_nmr, delay, recent_from,
    awaiting, after, candidate, last28,
):  # fmt: skip
    for i in range(note.shape[0]):
        k = note[i]
        c = np.float64(created_at[i])
        lat = latest[k]
        if c > recent_from:
            last28[k] += 1
        u = rater_row[rater[i]]
        if c - note_created[k] < delay and (np.isnan(lat) or c < lat):
            candidate[u] += 1
            if note_nmr[k]:
                awaiting[u] += 1
        if c > lat:
            after[u] += 1


def contributor_scores(
    ratings: RatingMatrix,
    notes: pd.DataFrame,
    nsh: pd.DataFrame,
    rating_counts: pd.DataFrame,
    enrollment: pd.DataFrame,
    *,
    epoch_millis: int,
    config: ScoringConfig,
) -> pd.DataFrame:
    """Contributor columns of helpfulness_scores, one row per participant (sorted by id).

    ``ratings``: all ratings; ``notes``: one row per note with noteId, noteAuthorParticipantId,
    createdAtMillis, finalRatingStatus, and coreNoteIntercept where scored; ``nsh``: the updated
    status history (timestampMillisOfLatestNonNMRStatus); ``rating_counts``: raterParticipantId and
    the six valid-rating success/failure counts; ``enrollment``: the previous enrollment file.
    Participants = raters ∪ authors ∪ enrolled.
    """
    cc = config.contributor
    now = float(epoch_millis)
    enr = enrollment.copy()
    states = enr["enrollmentState"]
    if states.dtype == object or str(states.dtype) in ("str", "string"):
        enr["enrollmentState"] = states.map(ES)
    ids = union_with_raters(
        ratings.rater_ids,
        notes["noteAuthorParticipantId"].astype(str),
        enr["participantId"].astype(str),
        rating_counts["raterParticipantId"].astype(str),
    )
    idx = pd.Index(ids)
    n = ids.size

    # Per note: author index, status, rating counts (all time and last 28 days).
    note_ids = notes["noteId"].to_numpy(np.int64)
    author = idx.get_indexer(notes["noteAuthorParticipantId"].astype(str))
    status = notes["finalRatingStatus"].to_numpy(dtype=object)
    created = notes["createdAtMillis"].to_numpy(np.float64)
    rpos = ratings.note_index(note_ids)
    per_note = np.diff(ratings.note_indptr)
    num_ratings = np.where(rpos >= 0, per_note[np.maximum(rpos, 0)], 0)

    # Per rating: the rated note's final status and latest non-NMR time.
    status_of_rnote = np.full(ratings.n_notes, schema.NMR, dtype=object)
    known = rpos >= 0
    status_of_rnote[rpos[known]] = status[known]
    latest = np.full(ratings.n_notes, np.nan)
    hpos = ratings.note_index(nsh["noteId"].to_numpy(np.int64))
    hk = hpos >= 0
    latest[hpos[hk]] = nsh["timestampMillisOfLatestNonNMRStatus"].to_numpy(np.float64)[hk]
    rater_row = idx.get_indexer(np.asarray(ratings.rater_ids, dtype=object))
    note_created = np.full(ratings.n_notes, np.nan)
    note_created[rpos[known]] = created[known]
    awaiting, after, candidate, last28 = _rating_window_counts(
        ratings.note, ratings.rater, ratings.created_at, rater_row, note_created, latest,
        status_of_rnote == schema.NMR, float(schema.PUBLIC_TSV_TIME_DELAY_MILLIS), now - 28 * DAY_MILLIS, n,
    )  # fmt: skip
    num_last28 = np.where(rpos >= 0, last28[np.maximum(rpos, 0)], 0)
    out = pd.DataFrame({"raterParticipantId": ids})
    out["ratingsAwaitingMoreRatings"] = awaiting.astype(np.float64)
    out["ratedAfterDecision"] = after.astype(np.float64)

    counts = rating_counts.assign(raterParticipantId=rating_counts["raterParticipantId"].astype(str))
    counts = counts.set_index("raterParticipantId").reindex(ids)[list(COUNT_COLUMNS)].fillna(0.0)
    for c in COUNT_COLUMNS:
        out[c] = counts[c].to_numpy(np.float64)
    impact = rating_impact(counts.reset_index())
    # The reference counts these over ratings made before the note's status (and within 48 h):
    # a participant with none of those has no row there, so the columns stay empty (not 0).
    no_window = candidate == 0
    for c in (*COUNT_COLUMNS, "ratingsAwaitingMoreRatings", "ratedAfterDecision"):
        out.loc[no_window, c] = np.nan

    # Authored notes: all time, and the last notes since earn-out (state transitions).
    e = enr.assign(participantId=enr["participantId"].astype(str)).set_index("participantId").reindex(ids)
    state = e["enrollmentState"].fillna(NEW_USER).to_numpy(np.int64)
    last_earn_out = e["timestampOfLastEarnOut"].fillna(1.0).to_numpy(np.float64, copy=True)
    last_earn_out[state == EARNED_OUT_ACK] = now
    has = author >= 0
    a = author[has]
    crh_all = np.bincount(a[status[has] == schema.CRH], minlength=n)
    crnh_all = np.bincount(a[status[has] == schema.CRNH], minlength=n)
    notes_all = np.bincount(a, minlength=n)
    last = last_notes_counts(
        a, note_ids[has], created[has], status[has], last_earn_out, n, cc.max_history_earn_out
    )
    # Writing record: empty (not 0) for participants who wrote no note, as the reference.
    wrote = notes_all > 0
    out["notesCurrentlyRatedHelpful"] = np.where(wrote, crh_all, np.nan)
    out["notesCurrentlyRatedNotHelpful"] = np.where(wrote, crnh_all, np.nan)
    out["notesAwaitingMoreRatings"] = np.where(wrote, notes_all - crh_all - crnh_all, np.nan)
    received = np.bincount(a, weights=num_ratings[has], minlength=n)
    out["aggregateRatingReceivedTotal"] = np.where(wrote, received, np.nan)
    nh = tag_counts(ratings.note, ratings.tags, ratings.n_notes, schema.NOT_HELPFUL_TAGS)
    note_nh = np.zeros((len(notes), nh.shape[1]), dtype=np.int64)
    note_nh[known] = nh[rpos[known]]
    min_tag = config.explanation.min_ratings_to_get_tag
    top = author_top_not_helpful_tags(author, note_nh, n, min_ratings=min_tag)
    out["authorTopNotHelpfulTagValues"] = np.where(wrote, top, None)

    _enrollment_columns(
        out, e, impact, last[:, 1], crh_all, crnh_all, notes_all, last_earn_out, ~no_window,
        epoch_millis=epoch_millis, config=config,
    )  # fmt: skip

    core_i = (
        notes["coreNoteIntercept"].to_numpy(np.float64)
        if "coreNoteIntercept" in notes
        else np.full(len(notes), np.nan)
    )
    # The reference's mean runs over all of the author's notes, an unscored note adding 0 to the
    # sum and 1 to the count (pandas sums skip NaN; its note count does not).
    scored = has & ~np.isnan(core_i)
    n_scored = np.bincount(author[scored], minlength=n)
    n_notes = np.bincount(author[has], minlength=n)
    mean_i = np.bincount(author[scored], weights=core_i[scored], minlength=n) / np.maximum(n_notes, 1)
    ratings28 = np.bincount(a, weights=num_last28[has], minlength=n)
    out["isEmergingWriter"] = (
        (n_scored > 0) & (mean_i > cc.emerging_mean_note_score) & (ratings28 >= cc.emerging_rating_count)
    )

    # The reference's windows end 48 h (its public-data delay) before the scoring time: on the
    # golden cases every 14d/90d count matches with that anchor and ~1% differ with "now".
    age = now - cc.stats_lag_millis - created[has]
    st = status[has]
    rated14 = (st != schema.NMR) | (num_ratings[has] >= cc.recent_stats_min_ratings)
    for days, window in (
        ("14d", (age <= cc.recent_stats_days * DAY_MILLIS) & rated14),
        ("90d", age <= cc.long_stats_days * DAY_MILLIS),
    ):
        for label, s in (("crh", schema.CRH), ("crnh", schema.CRNH), ("nmr", schema.NMR)):
            out[f"{label}Total{days}"] = np.bincount(a[window & (st == s)], minlength=n)
    return out


def _enrollment_columns(
    out: pd.DataFrame,
    e: pd.DataFrame,
    impact: np.ndarray,
    crnh_recent: np.ndarray,
    crh_all: np.ndarray,
    crnh_all: np.ndarray,
    notes_all: np.ndarray,
    last_earn_out: np.ndarray,
    rating_row: np.ndarray,
    *,
    epoch_millis: int,
    config: ScoringConfig,
) -> None:
    """Write the five enrollment columns of ``out`` (participants aligned with ``e``).

    The reference keys its rating counts and its authored-note counts differently, so its outer
    join never puts both on one row: the state machine sees no authored notes (no at-risk or
    earn-out from notes), and a participant with no rating row (``rating_row`` False: no rating
    before a status) keeps only its author row, written with the new-user defaults (state newUser,
    target 5, last earn-out 1, no state-change time or earn-out count). ``state_sees_notes``
    restores the documented behaviour (§4.6) where both meet.
    """
    cc = config.contributor
    n = len(out)
    sees = cc.state_sees_notes
    zero = np.zeros(n, dtype=np.int64)
    state, needed, times_out, last_change = enrollment_transitions(
        e["enrollmentState"].fillna(NEW_USER).to_numpy(np.int64),
        impact,
        e["successfulRatingNeededToEarnIn"].fillna(cc.rating_impact_for_earn_in).to_numpy(),
        crnh_recent if sees else zero,
        crh_all if sees else zero,
        crnh_all if sees else zero,
        notes_all if sees else zero,
        e["numberOfTimesEarnedOut"].fillna(0).to_numpy(np.int64),
        e["timestampOfLastStateChange"].to_numpy(np.float64),
        epoch_millis=epoch_millis,
        config=config,
    )
    times = times_out.astype(np.float64)
    last_earn_out = last_earn_out.copy()
    if not sees:
        author_only = ~rating_row
        state[author_only] = NEW_USER
        needed[author_only] = cc.rating_impact_for_earn_in
        last_change[author_only] = np.nan
        times[author_only] = np.nan
        last_earn_out[author_only] = 1.0
    out["enrollmentState"] = state
    out["successfulRatingNeededToEarnIn"] = needed
    out["timestampOfLastStateChange"] = last_change
    out["timestampOfLastEarnOut"] = last_earn_out
    out["numberOfTimesEarnedOut"] = times

"""Tables derived from the latent truth: prior status history, enrollment, and the truth file.

The prior status history stands in for an earlier scoring run (``SimConfig.prior_run_millis``):
a note's status follows how helpful each camp would find it (``expHelpfulLeft/Right``) with noise,
notes with few planned ratings stay NMR, and notes older than 14 days are locked, as X's history
would be (§6.6).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd

from bridgewatch.schema import CRH, CRNH, MISLEADING, NMR, NOT_MISLEADING, NOTE_LOCK_MILLIS
from bridgewatch.sim.community import CORE_GROUPS, ENROLLMENT, ROLES, Community
from bridgewatch.sim.config import SimConfig
from bridgewatch.sim.ratings import expected_helpfulness, latent_mean
from bridgewatch.sim.text import TOPIC_NAMES

STATUS_NAMES = (NMR, CRH, CRNH)  # int8 codes 0, 1, 2
CORE_DECIDER = "CoreModel (v1.1)"
INITIAL_DECIDER = "MetaInitialNMR (v1.0)"
HOUR = 3_600_000

TRUTH_COLUMNS = (
    "kind",
    "id",
    "quality",
    "slant",
    "expHelpfulLeft",
    "expHelpfulRight",
    "classification",
    "tweetId",
    "topic",
    "homeGroup",
    "isAttackTarget",
    "attackRole",
    "priorStatus",
    "viewpoint",
    "leniency",
    "activity",
    "modelingGroup",
    "isBadActor",
    "isLowDiligence",
    "buddyOf",
    "numRatings",
    "slant2",
    "viewpoint2",
    "attackDirection",
    "campHelpfulLeft",
    "campHelpfulRight",
)
CAMP_SAMPLE = 2048  # members per camp averaged for campHelpful* (all of them in smaller communities)


def camp_helpfulness(comm: Community, cfg: SimConfig) -> tuple[np.ndarray, np.ndarray]:
    """Expected helpfulNum of each note (N,) for a neutral rater at viewpoint -1 and at +1 on axis 1."""
    out = []
    for v in (-1.0, 1.0):
        z = comm.quality + cfg.slant_weight * v * comm.slant[:, 0]
        out.append(expected_helpfulness(z, cfg))
    return out[0], out[1]


def camp_means(
    comm: Community, cfg: SimConfig, rng: np.random.Generator, chunk: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Mean expected helpfulNum of each note (N,) over the members of the -1 and the +1 camp.

    A camp is the honest, diligent raters on that side of axis 1 (attack roles do not matter: a bloc
    member's sincere opinion is its camp's, so the attacked community and its no-attack twin get the
    same truth). Members keep their own viewpoint (every axis) and leniency, so this is what a
    typical member of the camp expects, not a rater at the axis end: the camps sit at
    ±``polarization`` (0.7 by default) with a spread, and ``camp_helpfulness`` (viewpoint ±1, the
    prior run's stand-in) judges a note by a rater more partisan than about 80% of its camp. Camps
    larger than ``CAMP_SAMPLE`` are averaged over a seeded sample of that many members.
    """
    out = []
    for side in (-1.0, 1.0):
        members = np.flatnonzero(comm.honest & ~comm.low_diligence & (comm.viewpoint[:, 0] * side > 0))
        if members.size > CAMP_SAMPLE:
            members = np.sort(rng.choice(members, size=CAMP_SAMPLE, replace=False))
        mean = np.full(comm.n_notes, np.nan)
        for lo in range(0, comm.n_notes, chunk):
            notes = np.arange(lo, min(comm.n_notes, lo + chunk), dtype=np.int32)
            note, rater = np.repeat(notes, members.size), np.tile(members, notes.size)
            z = latent_mean(comm, cfg, note, rater)
            mean[notes] = expected_helpfulness(z, cfg).reshape(notes.size, members.size).mean(axis=1)
        out.append(mean)
    return out[0], out[1]


def prior_status(comm: Community, cfg: SimConfig, rng: np.random.Generator) -> np.ndarray:
    """(N,) int8 status code of the simulated prior run (index into STATUS_NAMES)."""
    left, right = camp_helpfulness(comm, cfg)
    noise = 0.05 * rng.standard_normal((2, comm.n_notes))
    crh = np.minimum(left, right) + noise[0] > 0.62
    crnh = np.maximum(left, right) + noise[1] < 0.32
    status = np.where(crh, 1, np.where(crnh, 2, 0)).astype(np.int8)
    status[comm.planned < 5] = 0
    return status


def status_history(
    comm: Community, cfg: SimConfig, status: np.ndarray, rng: np.random.Generator, chunk: int = 250_000
) -> Iterator[pd.DataFrame]:
    """NSH rows (one per note created before the prior run) in the reference's columns (§1.4).

    Yielded in chunks of ``chunk`` rows so that the text columns of a public-scale history are
    never all in memory at once.
    """
    run = cfg.prior_run_millis
    idx = np.flatnonzero(comm.note_millis < run)
    created = comm.note_millis[idx]
    st = status[idx]
    age = run - created
    fresh = age < 12 * HOUR
    st = np.where(fresh, 0, st)
    decided = np.where(
        st > 0, created + (rng.random(idx.size) * np.minimum(age, 48 * HOUR)).astype(np.int64), 0
    )
    locked = age > NOTE_LOCK_MILLIS
    lock_at = (
        created
        + NOTE_LOCK_MILLIS
        + (rng.random(idx.size) * np.minimum(age - NOTE_LOCK_MILLIS, 6 * HOUR)).astype(np.int64)
    )
    names = np.array(STATUS_NAMES, dtype=object)[st]
    non_nmr = st > 0
    is_crh = st == 1

    def ts(mask: np.ndarray, values: np.ndarray) -> pd.Series:
        return pd.Series(np.where(mask, values, 0), dtype="Int64").mask(~mask)

    def text(mask: np.ndarray, values: np.ndarray) -> np.ndarray:
        return np.where(mask, values, None)

    stab = np.where(
        is_crh, decided - (rng.random(idx.size) * np.minimum(decided - created, HOUR)).astype(np.int64), 0
    )
    frame = pd.DataFrame(
        {
            "noteId": comm.note_id[idx],
            "createdAtMillis": created,
            "timestampMillisOfFirstNonNMRStatus": ts(non_nmr, decided),
            "firstNonNMRStatus": text(non_nmr, names),
            "timestampMillisOfCurrentStatus": np.full(idx.size, run, dtype=np.int64),
            "currentStatus": names,
            "timestampMillisOfLatestNonNMRStatus": ts(non_nmr, decided),
            "mostRecentNonNMRStatus": text(non_nmr, names),
            "timestampMillisOfStatusLock": ts(locked, lock_at),
            "lockedStatus": text(locked, names),
            "currentCoreStatus": names,
            "currentExpansionStatus": names,
            "currentDecidedBy": np.where(fresh, INITIAL_DECIDER, CORE_DECIDER),
            "currentModelingGroup": np.maximum(comm.home_group[idx], 0),
            "timestampMillisOfMostRecentStatusChange": np.where(non_nmr, decided, -1),
            "timestampMillisOfNmrDueToMinStableCrhTime": ts(is_crh, np.full(idx.size, -1)),
            "timestampMinuteOfFinalScoringOutput": pd.Series([pd.NA] * idx.size, dtype="Int64"),
            "timestampMillisOfFirstNmrDueToMinStableCrhTime": ts(is_crh, stab),
        }
    )
    for lo in range(0, max(idx.size, 1), chunk):
        part = frame.iloc[lo : lo + chunk].copy()
        authors = comm.rater_id_bytes[comm.author[idx[lo : lo + chunk]]]
        part.insert(1, "noteAuthorParticipantId", authors.view("S64").ravel().astype(str))
        yield part


def enrollment(comm: Community, cfg: SimConfig) -> pd.DataFrame:
    """One enrollment row per rater (§1.5): state, group, population, earn-out bookkeeping."""
    state = np.array(ENROLLMENT, dtype=object)[comm.enrollment]
    earned_out = comm.enrollment == ENROLLMENT.index("earnedOutNoAcknowledge")
    core = np.isin(comm.group, CORE_GROUPS)
    return pd.DataFrame(
        {
            "participantId": comm.rater_id_bytes.view("S64").ravel().astype(str),
            "enrollmentState": state,
            "successfulRatingNeededToEarnIn": np.where(earned_out, 10, 5),
            "timestampOfLastStateChange": comm.joined_millis,
            "timestampOfLastEarnOut": np.where(earned_out, comm.joined_millis, 1),
            "modelingPopulation": np.where(core, "CORE", "EXPANSION"),
            "modelingGroup": comm.group.astype(np.int64),
            "numberOfTimesEarnedOut": earned_out.astype(np.int64),
        }
    )


def _fmt(values: np.ndarray, digits: int) -> np.ndarray:
    """Fixed-precision text for floats (byte-stable across platforms)."""
    return np.char.mod(f"%.{digits}f", np.round(values.astype(np.float64), digits) + 0.0)


def truth(
    comm: Community,
    cfg: SimConfig,
    status: np.ndarray,
    note_ratings: np.ndarray,
    rater_ratings: np.ndarray,
    rng: np.random.Generator,
    chunk: int = 250_000,
) -> Iterator[pd.DataFrame]:
    """The latent truth, notes then raters, in chunks of text columns ``TRUTH_COLUMNS``.

    ``expHelpfulLeft/Right``: a neutral rater at viewpoint ∓1 (``camp_helpfulness``);
    ``campHelpfulLeft/Right``: the camps' members on average (``camp_means``, drawn with ``rng``),
    which the evaluation's truth labels use.
    """
    N, R = comm.n_notes, comm.n_raters
    left, right = camp_helpfulness(comm, cfg)
    camp_left, camp_right = camp_means(comm, cfg, rng)
    topic = comm.post_topic[comm.note_post]
    topics = np.array(("", *TOPIC_NAMES), dtype=object)
    activity = comm.activity / max(comm.activity.sum(), 1e-300) * R
    for lo in range(0, N, chunk):
        s = slice(lo, min(N, lo + chunk))
        n = s.stop - s.start
        notes = {
            "kind": np.full(n, "note", dtype=object),
            "id": comm.note_id[s].astype(str),
            "quality": _fmt(comm.quality[s], 5),
            "slant": _fmt(comm.slant[s, 0], 5),
            "expHelpfulLeft": _fmt(left[s], 4),
            "expHelpfulRight": _fmt(right[s], 4),
            "classification": np.where(comm.misleading[s], MISLEADING, NOT_MISLEADING),
            "tweetId": comm.post_id[comm.note_post[s]].astype(str),
            "topic": topics[topic[s] + 1],
            "homeGroup": comm.home_group[s].astype(str),
            "isAttackTarget": comm.target[s].astype(np.int8).astype(str),
            "attackRole": np.where(comm.target[s], cfg.attack or "", ""),
            "priorStatus": np.array(STATUS_NAMES, dtype=object)[status[s]],
            "numRatings": note_ratings[s].astype(str),
            "slant2": _fmt(comm.slant[s, 1], 5) if cfg.dims == 2 else np.full(n, ""),
            "attackDirection": np.select(
                [comm.target_sign[s] > 0, comm.target_sign[s] < 0], ["up", "down"], ""
            ),
            "campHelpfulLeft": _fmt(camp_left[s], 4),
            "campHelpfulRight": _fmt(camp_right[s], 4),
        }
        yield pd.DataFrame(notes).reindex(columns=list(TRUTH_COLUMNS), fill_value="")
    for lo in range(0, R, chunk):
        s = slice(lo, min(R, lo + chunk))
        n = s.stop - s.start
        raters = {
            "kind": np.full(n, "rater", dtype=object),
            "id": comm.rater_id_bytes[s].view("S64").ravel().astype(str),
            "viewpoint": _fmt(comm.viewpoint[s, 0], 5),
            "leniency": _fmt(comm.leniency[s], 5),
            "activity": _fmt(activity[s], 5),
            "modelingGroup": comm.group[s].astype(str),
            "isBadActor": (comm.role[s] > 0).astype(np.int8).astype(str),
            "isLowDiligence": comm.low_diligence[s].astype(np.int8).astype(str),
            "attackRole": np.array(ROLES, dtype=object)[comm.role[s]],
            "numRatings": rater_ratings[s].astype(str),
            "viewpoint2": _fmt(comm.viewpoint[s, 1], 5) if cfg.dims == 2 else np.full(n, ""),
        }
        yield pd.DataFrame(raters).reindex(columns=list(TRUTH_COLUMNS), fill_value="")

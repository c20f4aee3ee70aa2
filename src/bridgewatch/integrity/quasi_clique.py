"""Quasi-clique detection (§7.2): groups of raters who keep rating the same notes the same way.

Scope: ratings of MISLEADING notes on real tweets, created within the last 13 weeks of the data.
Two raters *collide* on a tweet when they gave the same helpfulNum to the same note of it; collisions
are counted once per tweet with the windowed pair counter (``pairs.count_pairs``, window = ∞), and
pairs with ≥ 5 collisions are kept. Pairs with > 50 collisions seed a greedy growth: a *group action*
(tweet, note, helpfulNum) is one done by ≥ 25% of the members and by ≥ min(size, 4) of them; the
outside rater matching group actions on the most tweets joins if, with them, ≥ 25 tweets still carry
group actions and every member matches ≥ 25% of those tweets. All pairs touching a finished clique
are dropped; cliques of ≥ 5 raters are kept, numbered 1.. from smallest to largest (as the reference
orders them), ties in discovery order.

Deterministic where the reference is not: seeds are taken by (count desc, pair key asc) and the
candidate with the lowest rater index wins ties. Where the reference counts only members with at
least one matching tweet against the 25% rule, every member is checked here (the spec's wording).
A rater in two cliques reports the smaller id.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bridgewatch.integrity import pairs as _pairs

WEEK_MS = 7 * 86_400_000


@dataclass(frozen=True)
class QuasiCliqueParams:
    """Reference constants of ``QuasiCliqueDetection`` (§7.2)."""

    recency_cutoff_millis: int = 13 * WEEK_MS
    note_inclusion_threshold: float = 0.25
    rater_inclusion_threshold: float = 0.25
    min_clique_tweets: int = 25
    min_clique_raters: int = 5
    max_clique_size: int = 2000
    min_inclusion_ratings: int = 4
    min_rater_pair_count: int = 50
    min_aligned_ratings: int = 5


def quasi_cliques(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    note_tweet: np.ndarray,
    note_created: np.ndarray,
    note_misleading: np.ndarray,
    n_raters: int,
    params: QuasiCliqueParams = QuasiCliqueParams(),
) -> tuple[np.ndarray, list[dict]]:
    """Find quasi-cliques of raters.

    ``rating_note`` int32[R] note index, ``rating_rater`` int32[R], ``rating_value`` float[R] in
    {0, 0.5, 1}; per note (length N): ``note_tweet`` int64 (−1 = none), ``note_created`` int64 ms,
    ``note_misleading`` bool. Returns ``quasiCliqueValue`` int32[U] (0 = none, ids from 1) and one
    dict per clique (``id``, ``raters`` int32 array, ``tweets`` int64 array of the group-action tweets).
    """
    note_tweet = np.asarray(note_tweet, dtype=np.int64)
    note_created = np.asarray(note_created, dtype=np.int64)
    value = np.zeros(n_raters, dtype=np.int32)
    if np.shape(rating_note)[0] == 0:
        return value, []
    # The scope is decided per note, then read once per rating (1 byte a rating): the 13-week
    # window holds a few percent of a long history's ratings, and only those are widened to int64
    # (widening all of them first held ~40 bytes a rating at once, by dtype).
    rated = np.zeros(note_created.shape[0], dtype=bool)
    rated[rating_note] = True
    latest = note_created[rated].max()
    in_scope = (
        (note_created > latest - params.recency_cutoff_millis)
        & (note_tweet != -1)
        & np.asarray(note_misleading, dtype=bool)
    )
    idx = np.flatnonzero(in_scope[rating_note])
    note = np.asarray(rating_note)[idx].astype(np.int64)
    rater = np.asarray(rating_rater)[idx].astype(np.int64)
    helpful_num = np.rint(np.asarray(rating_value)[idx].astype(np.float64) * 2).astype(np.int64)
    tweet, group = note_tweet[note], note * 3 + helpful_num
    perm, gptr, tptr = _pairs.order_by_tweet(tweet, group, np.zeros(idx.shape[0], dtype=np.int64))
    keys, counts = _pairs.count_pairs(
        rater[perm].astype(np.int32),
        np.zeros(perm.shape[0], dtype=np.int64),
        gptr,
        tptr,
        _pairs.NO_WINDOW,
        min_count=params.min_aligned_ratings,
    )
    lo, hi = _pairs.unpack_pairs(keys)
    in_pairs = np.zeros(n_raters, dtype=bool)
    in_pairs[lo] = True
    in_pairs[hi] = True
    sub = np.flatnonzero(in_pairs[rater])
    actions = _Actions(
        tweet=tweet[sub],
        note=note[sub],
        helpful_num=helpful_num[sub],
        rater=rater[sub],
        n_raters=n_raters,
    )
    seeds = counts > params.min_rater_pair_count
    s_lo, s_hi, s_count = lo[seeds], hi[seeds], counts[seeds]
    order = np.lexsort((keys[seeds], -s_count))
    s_lo, s_hi = s_lo[order], s_hi[order]
    alive = np.ones(s_lo.shape[0], dtype=bool)
    found: list[tuple[np.ndarray, np.ndarray]] = []
    for e in range(s_lo.shape[0]):
        if not alive[e]:
            continue
        members, tweets = _grow(actions, [int(s_lo[e]), int(s_hi[e])], params)
        inside = np.zeros(n_raters, dtype=bool)
        inside[members] = True
        alive &= ~(inside[s_lo] | inside[s_hi])
        if members.shape[0] >= params.min_clique_raters:
            found.append((members, tweets))
    found.sort(key=lambda c: c[0].shape[0])  # stable: ties keep discovery order
    cliques = []
    for i, (members, tweets) in enumerate(found, start=1):
        fresh = members[value[members] == 0]
        value[fresh] = i
        cliques.append({"id": i, "raters": members, "tweets": tweets})
    return value, cliques


class _Actions:
    """Scoped ratings of paired raters, indexed by action (tweet, note, helpfulNum) and by rater."""

    def __init__(self, *, tweet, note, helpful_num, rater, n_raters):
        order = np.lexsort((rater, helpful_num, note, tweet))
        tweet, note, helpful_num, rater = tweet[order], note[order], helpful_num[order], rater[order]
        m = tweet.shape[0]
        new = np.ones(m, dtype=bool)
        if m > 1:
            new[1:] = (
                (tweet[1:] != tweet[:-1]) | (note[1:] != note[:-1]) | (helpful_num[1:] != helpful_num[:-1])
            )
        self.action = np.cumsum(new) - 1  # per rating, ids increase with tweet
        self.tweet_ids, tweet = np.unique(tweet, return_inverse=True)  # dense: tweet ids are ~2^60
        self.action_tweet = tweet[new]
        self.rater = rater
        self.tweet = tweet
        self.n_actions = int(self.action_tweet.shape[0])
        self.n_raters = n_raters
        by_rater = np.argsort(rater, kind="stable")
        self.rater_ratings = by_rater
        self.rater_ptr = np.r_[0, np.cumsum(np.bincount(rater, minlength=n_raters))]

    def ratings_of(self, r: int) -> np.ndarray:
        return self.rater_ratings[self.rater_ptr[r] : self.rater_ptr[r + 1]]


def _group_actions(counts: np.ndarray, size: int, p: QuasiCliqueParams) -> np.ndarray:
    return (counts >= size * p.note_inclusion_threshold) & (counts >= min(size, p.min_inclusion_ratings))


def _grow(acts: _Actions, seed: list[int], p: QuasiCliqueParams) -> tuple[np.ndarray, np.ndarray]:
    members = list(seed)
    is_member = np.zeros(acts.n_raters, dtype=bool)
    is_member[members] = True
    counts = np.zeros(acts.n_actions, dtype=np.int64)
    for r in members:
        np.add.at(counts, acts.action[acts.ratings_of(r)], 1)
    tweets = np.zeros(0, dtype=np.int64)
    for _ in range(p.max_clique_size):
        group = _group_actions(counts, len(members), p)
        tweets = np.unique(acts.action_tweet[group])
        hit = group[acts.action] & ~is_member[acts.rater]
        if not hit.any():
            break
        n_tw = acts.tweet_ids.shape[0]
        rt = np.unique(acts.rater[hit] * n_tw + acts.tweet[hit])  # distinct (rater, tweet)
        score = np.bincount(rt // n_tw, minlength=acts.n_raters)
        candidate = int(np.argmax(score))  # first maximum: lowest index wins ties
        new_counts = counts.copy()
        np.add.at(new_counts, acts.action[acts.ratings_of(candidate)], 1)
        new_group = _group_actions(new_counts, len(members) + 1, p)
        satisfied = np.unique(acts.action_tweet[new_group]).shape[0]
        if satisfied < p.min_clique_tweets:
            break
        ok = True
        for r in [*members, candidate]:
            mine = acts.ratings_of(r)
            matched = np.unique(acts.tweet[mine][new_group[acts.action[mine]]]).shape[0]
            if matched < p.rater_inclusion_threshold * satisfied:
                ok = False
                break
        if not ok:
            break
        members.append(candidate)
        is_member[candidate] = True
        counts = new_counts
    return np.sort(np.array(members, dtype=np.int32)), acts.tweet_ids[tweets]


def correlated_rater(rating_rater: np.ndarray, quasi_clique_value: np.ndarray) -> np.ndarray:
    """``correlatedRater`` per rating (bool[R]): the rater belongs to a quasi-clique (§7.1, §2.8)."""
    return (np.asarray(quasi_clique_value) > 0)[rating_rater]  # no int64 copy of the rater column

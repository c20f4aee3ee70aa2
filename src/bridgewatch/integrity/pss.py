"""Post-selection similarity (§7.1): find raters who pick the same posts at the same time, and
collapse each such group ("clique") to one voice before scoring.

Two sources of suspect pairs, joined into connected components:

A. author → rater affinity: a rater who rates an author's notes HELPFUL within 1/5/20 minutes of
   their creation, for a large share of the author's notes (writerCoverage) or of the rater's own fast
   helpful ratings (raterAffinity). Cheap: a few sorts over ratings made within 20 minutes.
B. rater ↔ rater co-selection: two raters who rate the same note within 20 minutes of each other, on
   many distinct tweets; scored by smoothed NPMI and minSim. This is the heavy part; it runs on the
   windowed pair counter of ``pairs.py`` (never quadratic in raters; see its complexity note).

Ids: all functions work in one *participant space* (``participant_space``): raters first, in
``RatingMatrix.rater_ids`` order, then authors who never rated. Clique ids are int32, 0 = none,
1.. numbered by each clique's smallest participant index, so reruns give identical ids.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bridgewatch.integrity import pairs as _pairs
from bridgewatch.integrity.components import connected_components
from bridgewatch.io.matrix import id_objects, release_pages

MINUTE_MS = 60_000
_BLOCK = 1 << 24  # ratings per block where a full-length temporary would cost 8 bytes a rating


@dataclass(frozen=True)
class PSSParams:
    """Reference constants of ``PostSelectionSimilarity`` (§7.1)."""

    window_millis: int = 20 * MINUTE_MS
    pmi_regularization: float = 500.0
    npmi_threshold: float = 0.55
    min_sim_threshold: float = 0.4
    min_sim_pseudocounts: float = 10.0
    min_unique_posts: int = 10
    latency_minutes: tuple[int, ...] = (1, 5, 20)
    writer_coverage_thresholds: tuple[float, ...] = (0.2, 0.3, 0.4)
    rater_affinity_thresholds: tuple[float, ...] = (0.2, 0.45, 0.7)
    min_denominator: int = 10
    min_notes_for_filter: int = 200  # §9.7: below this many notes apply_pss keeps everything
    # The reference hands final scoring only participants with both a PSS and a quasi-clique value
    # (``adapters.final_scoring_filter``); False applies every PSS clique there too.
    final_needs_quasi_clique: bool = True


def participant_space(rater_ids: np.ndarray, author_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One id space for raters and note authors.

    ``rater_ids``: object[U] sorted (``RatingMatrix.rater_ids``); ``author_ids``: object[N] author of
    each note. Returns ``ids`` object[P] (the U raters, then the other authors sorted) and
    ``author_index`` int32[N] into ``ids``; rater indices stay valid as participant indices. A
    missing author reads "nan" (``id_objects``).

    Authors are found in a hash index of the raters; only those who never rated are sorted (as
    strings, the order ``np.unique`` gives). A numpy string copy of every author (256 bytes an id
    at X's 64 characters) and a dict of every participant cost ~1 GiB and seconds at X's scale.
    """
    rater_ids = np.asarray(rater_ids, dtype=object)
    authors = id_objects(author_ids)
    pos = pd.Index(rater_ids).get_indexer(authors)  # the raters are unique: -1 = never rated
    stranger = pos < 0
    extra, which = np.unique(authors[stranger], return_inverse=True)
    pos[stranger] = rater_ids.shape[0] + which
    return np.concatenate([rater_ids, extra]), pos.astype(np.int32)


def author_rater_pairs(
    note_author: np.ndarray,
    note_created: np.ndarray,
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_created: np.ndarray,
    rating_helpful: np.ndarray,
    n_participants: int,
    params: PSSParams = PSSParams(),
    writer_total: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Suspect (author, rater) pairs from fast helpful ratings (§7.1 A).

    ``note_author`` int32[N] participant index of each note's author; ``note_created`` int64[N];
    ``rating_note`` int32[R] (−1 = note unknown, ignored); ``rating_rater`` int32[R] participant index;
    ``rating_created`` int64[R]; ``rating_helpful`` bool[R]. Latency = rating time − note time, with no
    lower bound (as in the reference). writerTotal counts all of the author's notes: pass
    ``writer_total`` int[P] when the note arrays hold only rated notes (default: counted from them).

    Returns the pairs as (lo int32[S], hi int32[S]) with lo < hi, unique and sorted; self-pairs are
    ignored.
    """
    note_author = np.asarray(note_author, dtype=np.int64)
    note_created = np.asarray(note_created, dtype=np.int64)
    if writer_total is None:
        writer_total = np.bincount(note_author[note_author >= 0], minlength=n_participants)
    longest = max(params.latency_minutes) * MINUTE_MS
    picked: list[tuple[np.ndarray, np.ndarray]] = []
    for lo in range(0, np.shape(rating_note)[0], _BLOCK):  # blocks: temporaries stay O(block)
        sl = slice(lo, lo + _BLOCK)
        note = np.asarray(rating_note[sl], dtype=np.int64)
        idx = np.flatnonzero(np.asarray(rating_helpful[sl], dtype=bool) & (note >= 0))
        idx = idx[note_author[note[idx]] >= 0]  # notes without a known author cannot pair
        latency = np.asarray(rating_created[sl], dtype=np.int64)[idx] - note_created[note[idx]]
        fast = latency <= longest
        picked.append((lo + idx[fast], latency[fast]))
    idx = np.concatenate([p[0] for p in picked]) if picked else np.zeros(0, dtype=np.int64)
    latency = np.concatenate([p[1] for p in picked]) if picked else np.zeros(0, dtype=np.int64)
    author = note_author[np.asarray(rating_note)[idx]]
    rater = np.asarray(rating_rater)[idx].astype(np.int64)
    suspects: list[np.ndarray] = []
    for minutes, cov_thr, aff_thr in zip(
        params.latency_minutes,
        params.writer_coverage_thresholds,
        params.rater_affinity_thresholds,
        strict=True,
    ):
        m = latency <= minutes * MINUTE_MS
        a, r = author[m], rater[m]
        rater_total = np.bincount(r, minlength=n_participants)
        keys, pair_total = np.unique((a << 32) | r, return_counts=True)
        ka, kr = keys >> 32, keys & 0xFFFFFFFF
        wt, rt = writer_total[ka], rater_total[kr]
        # Ratios compared as the reference does (division, not multiplication: 3/10 >= 0.3 holds).
        coverage_hit = (wt >= params.min_denominator) & (pair_total / np.maximum(wt, 1) >= cov_thr)
        affinity_hit = (rt >= params.min_denominator) & (pair_total / np.maximum(rt, 1) >= aff_thr)
        hit = (coverage_hit | affinity_hit) & (ka != kr)
        lo, hi = np.minimum(ka[hit], kr[hit]), np.maximum(ka[hit], kr[hit])
        suspects.append((lo << 32) | hi)
    keys = np.unique(np.concatenate(suspects)) if suspects else np.zeros(0, dtype=np.int64)
    return _pairs.unpack_pairs(keys)


def min_count_to_pass(n_pairs: int, params: PSSParams = PSSParams()) -> int:
    """Smallest co-rating count with which any pair could pass NPMI or minSim (§7.1 B).

    Both scores grow with the count and shrink with the raters' totals, so evaluating them at the
    smallest totals allowed (``min_unique_posts``) bounds every pair; pairs below are dropped early.
    """
    t = params.min_unique_posts
    by_minsim = math.ceil(params.min_sim_threshold * (t + params.min_sim_pseudocounts))
    for c in range(1, by_minsim):
        npmi = _npmi(np.float64(c), np.float64(t), np.float64(t), n_pairs, params.pmi_regularization)
        if npmi >= params.npmi_threshold:
            return max(1, c - 1)  # one below, against rounding: exactness does not depend on it
    return max(1, by_minsim - 1)


def _npmi(c, ta, tb, n, reg):
    with np.errstate(divide="ignore", invalid="ignore"):
        pmi = np.log(c * n / ((ta + reg) * (tb + reg)))
        return pmi / -np.log(c / n)


def co_selection_pairs(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_created: np.ndarray,
    note_tweet: np.ndarray,
    n_raters: int,
    params: PSSParams = PSSParams(),
    *,
    memory_bytes: int = 2 << 30,
    num_threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> dict[str, np.ndarray]:
    """Rater pairs that co-select posts (§7.1 B), with their scores.

    ``note_indptr`` int64[N+1]: ratings grouped by note (``RatingMatrix`` order); ``rating_rater``
    int32[R]; ``rating_created`` int64[R]; ``note_tweet`` int64[N] (−1 = no real tweet, ignored).
    Two ratings of the same note co-occur when their times differ by ≤ ``window_millis`` (inclusive);
    a pair counts once per tweet. Only raters with ≥ ``min_unique_posts`` distinct tweets are paired.
    ``memory_bytes`` bounds the pair counter (``pairs.count_pairs``); the layout takes 12 bytes a rating.

    Returns columns (arrays of length S, sorted by pair): ``raterA``/``raterB`` int32 (A < B),
    ``coRatings`` int64, ``totalA``/``totalB`` int64, ``smoothedNpmi``/``minSim`` float64, for pairs
    passing NPMI ≥ ``npmi_threshold`` or minSim ≥ ``min_sim_threshold``; plus ``N`` (0-d int64).
    """
    raters, times, gptr, tptr = _pairs.gather_notes_by_tweet(
        note_indptr, note_tweet, rating_created, rating_rater
    )
    if progress is not None:
        progress(f"co-selection: {raters.shape[0]:,} ratings on real tweets laid out")
    totals, n_pairs = _pairs.distinct_per_tweet(raters, gptr, tptr, n_raters)
    m = _pairs.drop_raters(raters, times, gptr, totals >= params.min_unique_posts)  # groups, tweets stay
    keys, counts = _pairs.count_pairs(
        raters[:m],
        times[:m],
        gptr,
        tptr,
        params.window_millis,
        min_count=min_count_to_pass(n_pairs, params),
        memory_bytes=memory_bytes,
        num_threads=num_threads,
        progress=progress,
    )
    a, b = _pairs.unpack_pairs(keys)
    ta, tb = totals[a], totals[b]
    c = counts.astype(np.float64)
    npmi = _npmi(c, ta.astype(np.float64), tb.astype(np.float64), n_pairs, params.pmi_regularization)
    min_sim = c / (np.minimum(ta, tb) + params.min_sim_pseudocounts)
    hit = (npmi >= params.npmi_threshold) | (min_sim >= params.min_sim_threshold)
    return {
        "raterA": a[hit],
        "raterB": b[hit],
        "coRatings": counts[hit],
        "totalA": ta[hit],
        "totalB": tb[hit],
        "smoothedNpmi": npmi[hit],
        "minSim": min_sim[hit],
        "N": np.int64(n_pairs),
    }


def post_selection_similarity(
    note_indptr: np.ndarray,
    rating_rater: np.ndarray,
    rating_created: np.ndarray,
    rating_helpful: np.ndarray,
    note_author: np.ndarray,
    note_created: np.ndarray,
    note_tweet: np.ndarray,
    n_participants: int,
    params: PSSParams = PSSParams(),
    *,
    writer_total: np.ndarray | None = None,
    memory_bytes: int = 2 << 30,
    num_threads: int = 1,
    progress: Callable[[str], None] | None = None,
    rating_note: np.ndarray | None = None,
) -> np.ndarray:
    """PSS clique of every participant: int32[P], 0 = none, cliques numbered from 1 (§7.1).

    Ratings are grouped by note (``note_indptr`` int64[N+1], RatingMatrix order); ``rating_rater``
    int32[R] and note arrays (length N) are in participant space (``participant_space``).
    ``memory_bytes`` bounds the pair counter's working memory (``pairs.count_pairs``); on top of the
    inputs, the rest needs about 12 bytes a rating (the co-selection layout). ``rating_note``:
    int32[R] each rating's note, when the caller holds it (a matrix's ``note``, resident already
    in the integrity phase); else it is made from ``note_indptr`` (4 B/R, 0.77 GiB at X's scale).
    Where that column is a read-only file mapping its pages go back once the author pairs are
    found: the co-selection step, where this function peaks, does not read it.

    Complexity: O(R log g + (1 + K)·E) time (g ratings of a note, E the summed 20-minute window
    occupancy, K the counting passes: about the thread count T up to E ≈ 2·10^9 with 2 GiB,
    see ``pairs``), O(R + memory_bytes) memory; linear in ratings and window pairs, never quadratic in
    raters. Measured (``bench/pss.py``, 2 threads): 206M ratings of the simulator's public shape
    (E = 2.5 R) take 1.7 min (load average 3.5; 3.6 min at 10), 6.7 GiB peak with 3.3 GiB inputs.
    """
    note_indptr = np.asarray(note_indptr, dtype=np.int64)
    n_notes = note_indptr.shape[0] - 1
    if rating_note is None:
        rating_note = np.repeat(np.arange(n_notes, dtype=np.int32), np.diff(note_indptr))
    elif np.shape(rating_note)[0] != note_indptr[-1]:
        raise ValueError(f"rating_note has {np.shape(rating_note)[0]} ratings, note_indptr {note_indptr[-1]}")
    a_lo, a_hi = author_rater_pairs(
        note_author,
        note_created,
        rating_note,
        rating_rater,
        rating_created,
        rating_helpful,
        n_participants,
        params,
        writer_total,
    )
    release_pages(rating_note)  # a mapped column of the caller's: its pages, not the array
    del rating_note  # the co-selection layout needs the room
    co = co_selection_pairs(
        note_indptr,
        rating_rater,
        rating_created,
        note_tweet,
        n_participants,
        params,
        memory_bytes=memory_bytes,
        num_threads=num_threads,
        progress=progress,
    )
    lo = np.concatenate([a_lo, co["raterA"]])
    hi = np.concatenate([a_hi, co["raterB"]])
    return connected_components(lo, hi, n_participants)


def apply_pss(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_created: np.ndarray,
    note_author: np.ndarray,
    clique: np.ndarray,
    n_notes: int,
    params: PSSParams = PSSParams(),
) -> np.ndarray:
    """Which ratings survive the PSS filter: bool[R] (§7.1 application).

    ``rating_note`` int32[R] note index; ``rating_rater`` int32[R] participant index;
    ``rating_created`` int64[R]; ``note_author`` int32[N] participant index (−1 unknown);
    ``clique`` int32[P] from ``post_selection_similarity``; ``n_notes`` the number of notes in the
    notes table (below ``min_notes_for_filter`` nothing is dropped, §9.7).

    A rating by a clique member is dropped when the note's author is in the same clique; otherwise
    only the earliest rating per (note, clique) is kept (ties: the earlier rating in input order).
    """
    keep = np.ones(np.shape(rating_note)[0], dtype=bool)
    if n_notes < params.min_notes_for_filter:
        return keep
    clique = np.asarray(clique, dtype=np.int32)
    member = np.flatnonzero(clique[np.asarray(rating_rater)] > 0)  # only members' ratings are touched
    rc = clique[np.asarray(rating_rater)[member]]
    note = np.asarray(rating_note)[member].astype(np.int64)
    note_author = np.asarray(note_author, dtype=np.int64)
    author_clique = np.where(note_author >= 0, clique[np.maximum(note_author, 0)], 0)
    same = rc == author_clique[note]
    keep[member[same]] = False
    rest, rc, note = member[~same], rc[~same], note[~same]
    order = np.lexsort((rest, np.asarray(rating_created)[rest], rc, note))
    rest, rc, note = rest[order], rc[order], note[order]
    if rest.shape[0] == 0:
        return keep
    first = np.r_[True, (note[1:] != note[:-1]) | (rc[1:] != rc[:-1])]
    keep[rest[~first]] = False
    return keep

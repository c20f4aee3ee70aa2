"""Count how often two raters act together, without ever holding a rater × rater matrix.

Both integrity detectors (§7.1 B and §7.2) reduce to one question: for each pair of raters, on how
many distinct posts (tweets) did they do "the same thing at about the same time"? The reference
answers it with a Python dict of pairs that reaches ~10^9 entries and takes hours. Here:

1. Ratings are laid out as *groups* (a note, or a (note, helpfulNum) cell) inside *tweets*, each group
   sorted by time (``order_by_tweet``). Two ratings co-occur when they are in the same group and their
   times differ by at most ``window`` ms (pass a huge window for "same group at any time").
2. A numba kernel slides the window over each group and writes each co-occurring pair as one int64
   key ``lo << 32 | hi`` (lo < hi, rater ids < 2^31). Keys of one tweet are sorted and de-duplicated
   in place before moving on, so a pair counts at most once per tweet.
3. Keys are counted by sorting (``np.sort``, vectorised) and run-length encoding, in chunks of at
   most ``chunk_keys`` keys. When the emitted pairs do not fit one chunk, pair keys are split into K
   hash partitions (top bits of ``key * golden``); partition p is produced by its own pass over the
   ratings, so memory stays bounded and partitions run on parallel threads (kernels release the GIL,
   so does ``np.sort``). Partitions are disjoint in keys, so results are exact and concatenated in key
   order: the output is the same for any K and any thread count.

Complexity: with R ratings, E = Σ_ratings (ratings of the same group in the window before it)
emitted pairs ("window occupancy" summed), and K = ceil(E / chunk_keys) partitions:
time O(R log g + K·(R + E) + E log(E/K)) where g is a group's size (the per-group time sort);
memory O(R) for the layout plus O(chunk_keys) per worker thread (8 bytes a key, twice while sorting)
plus O(P) for the pairs kept (P distinct pairs with count ≥ ``min_count``, 12 bytes each).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_LO_SHIFT = np.int64(32)
_HI_MASK = np.int64(0xFFFFFFFF)
NO_WINDOW = np.int64(2**62)  # a window larger than any time difference: "same group, any time"


def pack_pairs(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """int64 keys of rater pairs (int32 ids, lo < hi): ``lo << 32 | hi``."""
    return (np.asarray(lo, dtype=np.int64) << _LO_SHIFT) | np.asarray(hi, dtype=np.int64)


def unpack_pairs(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of ``pack_pairs``: (lo int32[P], hi int32[P])."""
    keys = np.asarray(keys, dtype=np.int64)
    return (keys >> _LO_SHIFT).astype(np.int32), (keys & _HI_MASK).astype(np.int32)


def order_by_tweet(
    tweet: np.ndarray, group: np.ndarray, created: np.ndarray, select: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lay ratings out by (tweet, group, time), with CSR pointers for groups and tweets.

    ``tweet``: int64[R] post of each rating; ``group``: int64[R] the co-occurrence cell (e.g. note
    index, or note·3 + helpfulNum); ``created``: int64[R] ms; ``select``: bool[R] which ratings take
    part (all if None). Ties keep input order (stable sort), so the layout is deterministic.

    Returns ``perm`` int64[M] (selected ratings in layout order), ``group_ptr`` int64[G+1] (group g
    is ``perm[group_ptr[g]:group_ptr[g+1]]``) and ``tweet_ptr`` int64[T+1] (tweet k holds groups
    ``tweet_ptr[k]:tweet_ptr[k+1]``).
    """
    idx = np.arange(tweet.shape[0], dtype=np.int64)
    if select is not None:
        idx = idx[np.asarray(select, dtype=bool)]
    tw, gr = tweet[idx], group[idx]
    perm = idx[np.lexsort((created[idx], gr, tw))]
    tw, gr = tweet[perm], group[perm]
    m = perm.shape[0]
    new_group = np.ones(m, dtype=bool)
    new_tweet = np.ones(m, dtype=bool)
    if m > 1:
        new_tweet[1:] = tw[1:] != tw[:-1]
        new_group[1:] = new_tweet[1:] | (gr[1:] != gr[:-1])
    group_starts = np.flatnonzero(new_group)
    group_ptr = np.append(group_starts, m).astype(np.int64)
    tweet_ptr = np.append(np.flatnonzero(new_tweet[group_starts]), group_starts.shape[0]).astype(np.int64)
    return perm, group_ptr, tweet_ptr


def order_notes_by_tweet(
    note_indptr: np.ndarray, note_tweet: np.ndarray, created: np.ndarray, select: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast ``order_by_tweet`` for ratings already grouped by note (``RatingMatrix`` order).

    ``note_indptr`` int64[N+1] CSR over ratings; ``note_tweet`` int64[N] (groups with tweet −1 are
    skipped); ``created`` int64[R]; ``select`` bool[R]. Groups are notes, ordered by (tweet, note);
    inside a note ratings are sorted by time, ties in input order. Avoids a global sort of R keys:
    O(R log g) with g the ratings of a note. Returns (perm int64[M], group_ptr, tweet_ptr).
    """
    note_tweet = np.asarray(note_tweet, dtype=np.int64)
    notes = np.flatnonzero(note_tweet != -1)
    notes = notes[np.argsort(note_tweet[notes], kind="stable")].astype(np.int64)
    perm = np.empty(int(np.count_nonzero(select)), dtype=np.int64)
    group_ptr = np.empty(notes.shape[0] + 1, dtype=np.int64)
    group_note = np.empty(notes.shape[0], dtype=np.int64)
    m, g = _csr_layout(
        np.asarray(note_indptr, dtype=np.int64),
        notes,
        np.asarray(created, dtype=np.int64),
        np.asarray(select, dtype=np.bool_),
        perm,
        group_ptr,
        group_note,
    )
    perm, group_ptr, group_note = perm[:m], group_ptr[: g + 1], group_note[:g]
    tw = note_tweet[group_note]
    new_tweet = np.r_[True, tw[1:] != tw[:-1]] if g else np.zeros(0, dtype=bool)
    tweet_ptr = np.append(np.flatnonzero(new_tweet), g).astype(np.int64)
    return perm, group_ptr, tweet_ptr


@nb.njit(cache=True)
def _csr_layout(note_indptr, notes, created, select, perm, group_ptr, group_note):
    pos = 0
    g = 0
    for n in notes:
        a, b = note_indptr[n], note_indptr[n + 1]
        cnt = 0
        for i in range(a, b):
            if select[i]:
                cnt += 1
        if cnt == 0:
            continue
        idx = np.empty(cnt, dtype=np.int64)
        c = 0
        for i in range(a, b):
            if select[i]:
                idx[c] = i
                c += 1
        order = np.argsort(created[idx], kind="mergesort")
        for q in range(cnt):
            perm[pos + q] = idx[order[q]]
        group_ptr[g] = pos
        group_note[g] = n
        g += 1
        pos += cnt
    group_ptr[g] = pos
    return pos, g


@nb.njit(nogil=True, cache=True)
def distinct_per_tweet(raters, group_ptr, tweet_ptr, n_raters):
    """Per rater, the number of distinct tweets rated (int64[U]); and N, the distinct (tweet, rater) pairs."""
    totals = np.zeros(n_raters, dtype=np.int64)
    n_pairs = 0
    for k in range(tweet_ptr.shape[0] - 1):
        a, b = group_ptr[tweet_ptr[k]], group_ptr[tweet_ptr[k + 1]]
        seg = np.sort(raters[a:b])
        for q in range(seg.shape[0]):
            if q == 0 or seg[q] != seg[q - 1]:
                totals[seg[q]] += 1
                n_pairs += 1
    return totals, n_pairs


@nb.njit(nogil=True, cache=True)
def window_pair_bounds(times: np.ndarray, group_ptr: np.ndarray, tweet_ptr: np.ndarray, window: int):
    """Per tweet, the number of in-window rating pairs before de-duplication: int64[T].

    An upper bound on the keys a tweet emits; its sum is E in the module complexity.
    """
    n_tweets = tweet_ptr.shape[0] - 1
    out = np.zeros(n_tweets, dtype=np.int64)
    for k in range(n_tweets):
        total = 0
        for g in range(tweet_ptr[k], tweet_ptr[k + 1]):
            a, b = group_ptr[g], group_ptr[g + 1]
            ws = a
            for i in range(a, b):
                while times[i] - times[ws] > window:
                    ws += 1
                total += i - ws
        out[k] = total
    return out


@nb.njit(nogil=True, cache=True)
def _emit_pairs(
    raters, times, group_ptr, tweet_ptr, window, tweet_lo, tweet_hi, bounds, part_bits, part, out
):
    """Write once-per-tweet pair keys of tweets [tweet_lo, tweet_hi) in partition ``part`` to ``out``.

    Stops before a tweet whose bound no longer fits; returns (keys written, next tweet).
    """
    pos = 0
    shift = np.uint64(64 - part_bits) if part_bits > 0 else np.uint64(0)
    cap = out.shape[0]
    for k in range(tweet_lo, tweet_hi):
        if pos + bounds[k] > cap:
            return pos, k
        start = pos
        for g in range(tweet_ptr[k], tweet_ptr[k + 1]):
            a, b = group_ptr[g], group_ptr[g + 1]
            ws = a
            for i in range(a, b):
                ti = times[i]
                while ti - times[ws] > window:
                    ws += 1
                ri = np.int64(raters[i])
                for j in range(ws, i):
                    rj = np.int64(raters[j])
                    if rj == ri:
                        continue
                    key = (min(ri, rj) << 32) | max(ri, rj)
                    if part_bits > 0:
                        h = (np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> shift
                        if np.int64(h) != part:
                            continue
                    out[pos] = key
                    pos += 1
        if pos - start > 1:
            seg = np.sort(out[start:pos])
            w = start
            out[w] = seg[0]
            for q in range(1, seg.shape[0]):
                if seg[q] != seg[q - 1]:
                    w += 1
                    out[w] = seg[q]
            pos = w + 1
    return pos, tweet_hi


def emit_pairs_numpy(raters, times, group_ptr, tweet_ptr, window) -> np.ndarray:
    """Plain-Python twin of the numba emitter (all partitions): sorted int64 keys with repeats.

    One entry per (tweet, pair) that co-occurs; for tests on small inputs only.
    """
    keys: list[int] = []
    for k in range(len(tweet_ptr) - 1):
        seen: set[int] = set()
        for g in range(tweet_ptr[k], tweet_ptr[k + 1]):
            a, b = int(group_ptr[g]), int(group_ptr[g + 1])
            for i in range(a, b):
                for j in range(a, b):
                    if i == j or raters[i] == raters[j] or abs(int(times[i]) - int(times[j])) > window:
                        continue
                    lo, hi = sorted((int(raters[i]), int(raters[j])))
                    seen.add((lo << 32) | hi)
        keys.extend(seen)
    return np.sort(np.array(keys, dtype=np.int64))


def _run_length(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if sorted_keys.shape[0] == 0:
        return sorted_keys[:0].copy(), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    counts = np.diff(np.r_[starts, sorted_keys.shape[0]]).astype(np.int64)
    return sorted_keys[starts], counts


def _merge_runs(runs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    if len(runs) == 1:
        return runs[0]
    keys = np.concatenate([r[0] for r in runs])
    counts = np.concatenate([r[1] for r in runs])
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts, starts) if keys.shape[0] else counts


def _count_partition(
    raters, times, group_ptr, tweet_ptr, window, bounds, part_bits, part, chunk_keys, min_count
):
    n_tweets = tweet_ptr.shape[0] - 1
    buf = np.empty(max(chunk_keys, 1), dtype=np.int64)
    runs: list[tuple[np.ndarray, np.ndarray]] = []
    k = 0
    while k < n_tweets:
        if bounds[k] > buf.shape[0]:  # one huge tweet: give it a buffer of its own
            big = np.empty(int(bounds[k]), dtype=np.int64)
            pos, nxt = _emit_pairs(
                raters, times, group_ptr, tweet_ptr, window, k, k + 1, bounds, part_bits, part, big
            )
            chunk = big[:pos]
        else:
            pos, nxt = _emit_pairs(
                raters, times, group_ptr, tweet_ptr, window, k, n_tweets, bounds, part_bits, part, buf
            )
            chunk = buf[:pos]
        runs.append(_run_length(np.sort(chunk)))
        k = nxt
    if not runs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys, counts = _merge_runs(runs)
    keep = counts >= min_count
    return keys[keep], counts[keep]


def count_pairs(
    raters: np.ndarray,
    times: np.ndarray,
    group_ptr: np.ndarray,
    tweet_ptr: np.ndarray,
    window: int,
    *,
    min_count: int = 1,
    chunk_keys: int = 1 << 26,
    num_threads: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Count, per rater pair, the tweets on which the two co-occur within ``window`` ms.

    ``raters``: int32[M] and ``times``: int64[M] in layout order (``x[perm]`` of ``order_by_tweet``);
    ``group_ptr`` int64[G+1], ``tweet_ptr`` int64[T+1] as returned there. Pairs with fewer than
    ``min_count`` tweets are dropped as soon as their count is final (a pair that cannot pass a
    threshold need not be stored). ``chunk_keys`` bounds the keys held per worker (see module doc).

    Returns ``keys`` int64[P] sorted ascending (``unpack_pairs`` gives the raters) and ``counts``
    int64[P]. The result does not depend on ``chunk_keys`` or ``num_threads``.
    """
    raters = np.ascontiguousarray(raters, dtype=np.int32)
    times = np.ascontiguousarray(times, dtype=np.int64)
    group_ptr = np.ascontiguousarray(group_ptr, dtype=np.int64)
    tweet_ptr = np.ascontiguousarray(tweet_ptr, dtype=np.int64)
    window = int(window)
    bounds = window_pair_bounds(times, group_ptr, tweet_ptr, window)
    total = int(bounds.sum())
    n_parts = max(1, math.ceil(total / max(chunk_keys, 1)))
    if num_threads > 1 and total > 4 * 1_000_000:
        n_parts = max(n_parts, num_threads)
    part_bits = max(0, math.ceil(math.log2(n_parts))) if n_parts > 1 else 0
    n_parts = 1 << part_bits
    chunk = int(min(chunk_keys, max(1, math.ceil(1.25 * total / n_parts) + 1024)))
    if progress is not None:
        progress(f"pair counting: {total:,} window pairs, {n_parts} partition(s)")

    def one(p: int):
        return _count_partition(
            raters, times, group_ptr, tweet_ptr, window, bounds, part_bits, p, chunk, min_count
        )

    if num_threads > 1 and n_parts > 1:
        with ThreadPoolExecutor(max_workers=num_threads) as pool:
            results = list(pool.map(one, range(n_parts)))
    else:
        results = [one(p) for p in range(n_parts)]
    keys = np.concatenate([r[0] for r in results])
    counts = np.concatenate([r[1] for r in results])
    order = np.argsort(keys, kind="stable")
    return keys[order], counts[order]

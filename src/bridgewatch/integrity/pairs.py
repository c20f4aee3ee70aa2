"""Count how often two raters act together, without ever holding a rater × rater matrix.

Both integrity detectors (§7.1 B and §7.2) reduce to one question: for each pair of raters, on how
many distinct posts (tweets) did they do "the same thing at about the same time"? The reference
answers it with a Python dict of pairs that reaches ~10^9 entries and takes hours. Here:

1. Ratings are laid out as *groups* (a note, or a (note, helpfulNum) cell) inside *tweets*, each group
   sorted by time (``order_by_tweet``). Two ratings co-occur when they are in the same group and their
   times differ by at most ``window`` ms (pass a huge window for "same group at any time").
2. A numba kernel slides the window over each group and produces each co-occurring pair as one
   int64 key ``lo << 32 | hi`` (lo < hi, rater ids < 2^31). A pair counts at most once per tweet:
   tweets with one busy note need nothing; with 2-8 notes a pair is skipped when the two raters were
   already within the window on an earlier note (looked up in O(1)); otherwise a per-tweet hash set.
3. Keys are counted by an in-place LSD radix sort (only the bits rater ids use) and run-length
   encoding, in chunks of at most ``chunk_keys`` keys; pairs below ``min_count`` are dropped.
   Memory stays bounded in one of two ways (``count_pairs``): K hash partitions (top bits of
   ``key * golden``), one emission pass each; or, for large inputs with ``min_count`` ≥ 2, a
   pre-filter pass into saturating uint8 counters (PCY-style) so that the counting pass keeps only
   keys that can reach ``min_count``. Partitions are disjoint in keys and run on parallel threads
   (kernels release the GIL); results are exact and in key order, the same for any chunk size,
   thread count or strategy.

Complexity, with R ratings, g a group's size, E = Σ_ratings (ratings of the same group within the
window before it) — the summed window occupancy, i.e. the emitted pairs — and S the emitted keys
that survive the pre-filter:
- layout: O(R log g) time, O(R) memory (sorts only inside each note);
- partitioned: O(K·(R + E) + E·d) time with K = ceil(E / chunk_keys) and d radix passes (4 up to
  2^22 raters), O(chunk_keys) memory per thread (16 bytes a key while sorting);
- pre-filtered: O(2·(R + E) + S·d) time, one random counter update per emitted key (the cost that
  dominates at scale), 2^b bytes for the counters (b ≤ 30 by default) + O(S) for survivors;
  S ≈ (true pairs with count ≥ min_count) + E·P[Poisson(E/2^b) ≥ min_count − 1].
Never O(U²) in raters U: only pairs that actually co-occur are ever produced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

from bridgewatch.integrity.keycount import merge_runs, radix_sort_keys, run_length_counts
from bridgewatch.integrity.layout import distinct_per_tweet, order_by_tweet, order_notes_by_tweet

__all__ = [
    "NO_WINDOW",
    "count_pairs",
    "distinct_per_tweet",
    "order_by_tweet",
    "order_notes_by_tweet",
    "pack_pairs",
    "radix_sort_keys",
    "unpack_pairs",
    "window_pair_bounds",
]

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


_GATHER_MAX_GROUPS = 8
_NONE = -(2**62)


@nb.njit(nogil=True, cache=True)
def dedupe_modes(raters, group_ptr, tweet_ptr, bounds, table_bits):
    """How each tweet's keys are made unique: int8[T].

    0: nothing to do (one group with ≥ 2 ratings, distinct raters: the usual tweet with one note).
    3: "look back": 2..8 such groups, distinct raters in each; a pair met in group q is skipped when
       the same two raters were already within the window in an earlier group (exact, O(1) a pair
       after gathering each rating's times in the earlier groups).
    1: a hash set (a rater repeats in a group, or many groups); 2: sort, when the hash set would
       need more than 2^``table_bits`` slots.
    """
    n_tweets = tweet_ptr.shape[0] - 1
    mode = np.zeros(n_tweets, dtype=np.int8)
    for k in range(n_tweets):
        if bounds[k] < 2:
            continue
        busy = 0
        dup = False
        for g in range(tweet_ptr[k], tweet_ptr[k + 1]):
            if group_ptr[g + 1] - group_ptr[g] < 2:
                continue
            busy += 1
            seg = np.sort(raters[group_ptr[g] : group_ptr[g + 1]])
            for q in range(1, seg.shape[0]):
                if seg[q] == seg[q - 1]:
                    dup = True
                    break
        if not dup and busy <= 1:
            continue
        if not dup and busy <= _GATHER_MAX_GROUPS:
            mode[k] = 3
        else:
            mode[k] = 1 if 2 * bounds[k] <= (1 << table_bits) else 2
    return mode


@nb.njit(nogil=True, cache=True)
def _emit_pairs(
    raters,
    times,
    group_ptr,
    tweet_ptr,
    window,
    tweet_lo,
    tweet_hi,
    bounds,
    modes,
    part_bits,
    part,
    out,
    sink,
    counters,
    counter_bits,
    min_count,
):
    """Once-per-tweet pair keys of tweets [tweet_lo, tweet_hi) in partition ``part``.

    ``sink`` 0: write them to ``out``; 1: only add one to the saturating uint8 ``counters`` slot of
    each key (``out`` is scratch for one tweet); 2: write only keys whose slot reached ``min_count``.
    Partition and slot are the top bits of one hash, so partitions own disjoint counter ranges.
    Stops before a tweet whose bound no longer fits; returns (keys written, next tweet).
    """
    cshift = np.uint64(64 - counter_bits)
    floor = min(min_count, 255)
    pos = 0
    shift = np.uint64(64 - part_bits) if part_bits > 0 else np.uint64(0)
    tbits = 1
    for k in range(tweet_lo, tweet_hi):
        if modes[k] == 1:
            while (1 << tbits) < 2 * bounds[k]:
                tbits += 1
    table = np.zeros(1 << tbits, dtype=np.int64)  # 0 = empty: a key is never 0 (lo < hi)
    tmask = (1 << tbits) - 1
    tshift = np.uint64(64 - tbits)
    n_raters = 0
    for i in range(raters.shape[0]):
        n_raters = max(n_raters, np.int64(raters[i]) + 1)
    seen_at = np.full(n_raters, _NONE, dtype=np.int64)  # rater -> time in the group being scattered
    busy = np.empty(_GATHER_MAX_GROUPS, dtype=np.int64)
    cap = out.shape[0]
    for k in range(tweet_lo, tweet_hi):
        if pos + bounds[k] > cap:
            return pos, k
        start = pos
        mode = modes[k]
        n_busy = 0
        for g in range(tweet_ptr[k], tweet_ptr[k + 1]):
            a, b = group_ptr[g], group_ptr[g + 1]
            if b - a < 2:
                continue
            n_prev = n_busy if mode == 3 else 0
            prior = np.empty((n_prev, b - a), dtype=np.int64)
            for pq in range(n_prev):  # times of this group's raters in each earlier group
                a2, b2 = group_ptr[busy[pq]], group_ptr[busy[pq] + 1]
                for i in range(a2, b2):
                    seen_at[raters[i]] = times[i]
                for i in range(a, b):
                    prior[pq, i - a] = seen_at[raters[i]]
                for i in range(a2, b2):
                    seen_at[raters[i]] = _NONE
            if mode == 3:
                busy[n_busy] = g
                n_busy += 1
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
                    if n_prev > 0:
                        again = False
                        for pq in range(n_prev):
                            pi, pj = prior[pq, i - a], prior[pq, j - a]
                            if pi != _NONE and pj != _NONE and abs(pi - pj) <= window:
                                again = True
                                break
                        if again:
                            continue
                    elif mode == 1:
                        slot = np.int64((np.uint64(key) * np.uint64(0xC2B2AE3D27D4EB4F)) >> tshift)
                        while table[slot] != 0 and table[slot] != key:
                            slot = (slot + 1) & tmask
                        if table[slot] == key:
                            continue
                        table[slot] = key
                    out[pos] = key
                    pos += 1
        if mode == 1:  # empty the table again; every key of the tweet goes, so no tombstones
            for q in range(start, pos):
                slot = np.int64((np.uint64(out[q]) * np.uint64(0xC2B2AE3D27D4EB4F)) >> tshift)
                while table[slot] != out[q]:
                    slot = (slot + 1) & tmask
                table[slot] = 0
        elif mode == 2 and pos - start > 1:
            seg = np.sort(out[start:pos])
            w = start
            out[w] = seg[0]
            for q in range(1, seg.shape[0]):
                if seg[q] != seg[q - 1]:
                    w += 1
                    out[w] = seg[q]
            pos = w + 1
        if sink == 1:
            for q in range(start, pos):
                slot = (np.uint64(out[q]) * np.uint64(0x9E3779B97F4A7C15)) >> cshift
                if counters[slot] < 255:
                    counters[slot] += 1
            pos = start
        elif sink == 2:
            w = start
            for q in range(start, pos):
                slot = (np.uint64(out[q]) * np.uint64(0x9E3779B97F4A7C15)) >> cshift
                if counters[slot] >= floor:
                    out[w] = out[q]
                    w += 1
            pos = w
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


def _count_partition(
    raters,
    times,
    group_ptr,
    tweet_ptr,
    window,
    bounds,
    modes,
    part_bits,
    part,
    chunk_keys,
    min_count,
    id_bits,
    sink=0,
    counters=None,
    counter_bits=1,
):
    n_tweets = tweet_ptr.shape[0] - 1
    if counters is None:
        counters = np.zeros(1, dtype=np.uint8)
    buf = np.empty(max(chunk_keys, 1), dtype=np.int64)
    scratch = np.empty_like(buf)
    runs: list[tuple[np.ndarray, np.ndarray]] = []
    k = 0
    while k < n_tweets:
        args = (raters, times, group_ptr, tweet_ptr, window)
        tail = (bounds, modes, part_bits, part)
        if bounds[k] > buf.shape[0]:  # one huge tweet: give it a buffer of its own
            big = np.empty(int(bounds[k]), dtype=np.int64)
            pos, nxt = _emit_pairs(*args, k, k + 1, *tail, big, sink, counters, counter_bits, min_count)
            chunk, scratch_now = big[:pos], np.empty(pos, dtype=np.int64)
        else:
            pos, nxt = _emit_pairs(*args, k, n_tweets, *tail, buf, sink, counters, counter_bits, min_count)
            chunk, scratch_now = buf[:pos], scratch
        only_run = k == 0 and nxt == n_tweets  # counts are final: drop small ones at once
        sorted_chunk = radix_sort_keys(chunk, scratch_now, id_bits)
        runs.append(run_length_counts(sorted_chunk, min_count if only_run else 1))
        k = nxt
    if not runs:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    keys, counts = merge_runs(runs)
    keep = counts >= min_count
    return keys[keep], counts[keep]


def _prefilter(
    raters, times, group_ptr, tweet_ptr, window, bounds, modes, part_bits, part, counters, counter_bits
):
    n_tweets = tweet_ptr.shape[0] - 1
    scratch = np.empty(int(bounds.max()) if n_tweets else 1, dtype=np.int64)
    _emit_pairs(
        raters,
        times,
        group_ptr,
        tweet_ptr,
        window,
        0,
        n_tweets,
        bounds,
        modes,
        part_bits,
        part,
        scratch,
        1,
        counters,
        counter_bits,
        1,
    )


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
    dedupe_table_bits: int = 22,
    filter_table_bits: int = 30,
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Count, per rater pair, the tweets on which the two co-occur within ``window`` ms.

    ``raters``: int32[M] and ``times``: int64[M] in layout order (``x[perm]`` of ``order_by_tweet``);
    ``group_ptr`` int64[G+1], ``tweet_ptr`` int64[T+1] as returned there. Pairs with fewer than
    ``min_count`` tweets are dropped (a pair that cannot pass a threshold need not be stored).
    A tweet's keys are de-duplicated with a hash set of up to 2^``dedupe_table_bits`` slots, or by
    sorting them when it emits more than half that.

    Two strategies, chosen by size, both exact:
    - *partitioned*: when ``min_count`` ≤ 1 or all window pairs fit in ``chunk_keys``: K hash
      partitions, each emitted, radix-sorted and run-length counted in its own pass.
    - *pre-filtered* (large inputs with ``min_count`` ≥ 2): a first pass adds every key to a
      saturating uint8 counter of 2^b slots (b ≤ ``filter_table_bits``; a slot holds at least the
      count of each key hashed there), a second pass keeps only keys whose slot reached
      ``min_count``, which are then counted exactly. Two emission passes instead of K, and memory
      2^b bytes plus the survivors; the survivors grow with the table's load (E / 2^b).

    Returns ``keys`` int64[P] sorted ascending (``unpack_pairs`` gives the raters) and ``counts``
    int64[P]. The result does not depend on ``chunk_keys``, ``num_threads`` or the strategy.
    """
    raters = np.ascontiguousarray(raters, dtype=np.int32)
    times = np.ascontiguousarray(times, dtype=np.int64)
    group_ptr = np.ascontiguousarray(group_ptr, dtype=np.int64)
    tweet_ptr = np.ascontiguousarray(tweet_ptr, dtype=np.int64)
    window = int(window)
    bounds = window_pair_bounds(times, group_ptr, tweet_ptr, window)
    modes = dedupe_modes(raters, group_ptr, tweet_ptr, bounds, dedupe_table_bits)
    id_bits = max(1, int(raters.max()).bit_length()) if raters.shape[0] else 1
    total = int(bounds.sum())
    threads = max(1, num_threads)
    prefilter = min_count >= 2 and total > chunk_keys
    n_parts = threads if prefilter else max(threads, math.ceil(total / max(chunk_keys, 1)))
    part_bits = max(0, math.ceil(math.log2(n_parts))) if n_parts > 1 else 0
    n_parts = 1 << part_bits
    counter_bits = 1
    counters = np.zeros(1, dtype=np.uint8)
    if prefilter:
        counter_bits = max(part_bits + 1, min(filter_table_bits, math.ceil(math.log2(2 * total))))
        counters = np.zeros(1 << counter_bits, dtype=np.uint8)
        chunk = int(min(chunk_keys, 1 << 22))
    else:
        chunk = int(min(chunk_keys, max(1, math.ceil(1.25 * total / n_parts) + 1024)))
    if progress is not None:
        how = f"pre-filter 2^{counter_bits} slots" if prefilter else "partitioned"
        progress(f"pair counting: {total:,} window pairs, {n_parts} partition(s), {how}")
    args = (raters, times, group_ptr, tweet_ptr, window, bounds, modes, part_bits)

    def first(p: int):
        _prefilter(*args, p, counters, counter_bits)

    def second(p: int):
        sink = 2 if prefilter else 0
        return _count_partition(*args, p, chunk, min_count, id_bits, sink, counters, counter_bits)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        if prefilter:
            list(pool.map(first, range(n_parts)))
        results = list(pool.map(second, range(n_parts)))
    keys = np.concatenate([r[0] for r in results])
    counts = np.concatenate([r[1] for r in results])
    order = np.argsort(keys, kind="stable")
    return keys[order], counts[order]

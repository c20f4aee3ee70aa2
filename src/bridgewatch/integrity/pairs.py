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
3. Keys are split into hash partitions (the top bits of ``key · golden``); each partition is emitted
   whole into one buffer, counted by an in-place LSD radix sort (only the bits rater ids use) and
   run-length encoding, and pairs below ``min_count`` are dropped. Partitions are disjoint in keys,
   so they run on parallel threads (kernels release the GIL) and need no merging.

Memory is bounded by ``memory_bytes`` whatever the input size (``count_pairs``): the number of
partitions K is chosen so that one partition's keys fit a thread's share of it, and a partition that
still overflows its buffer is split in two and emitted again. With ``min_count`` ≥ 2 and more keys
than fit at once, a pre-filter pass first adds every window pair to saturating 4-bit counters
(PCY-style; up to half the budget), and the counting passes keep only keys whose counter reached
``min_count``, so K follows the survivors, not all pairs. Results are exact and in key order, the
same for any budget, thread count or strategy.

Complexity, with R ratings, g a group's size, E = Σ_ratings (ratings of the same group within the
window before it) — the summed window occupancy, i.e. the emitted pairs — M = ``memory_bytes``,
T threads, d radix passes (4 up to 2^22 raters) and S the keys that survive the pre-filter:
- layout: O(R log g) time, O(R) memory (sorts only inside each note);
- without pre-filter: K = ceil(16·E·T / M) partitions (≥ T), O(K·(R + E) + E·d) time, K/T passes
  per thread; memory M plus the returned pairs;
- pre-filtered: one counting pass, O(R + E) with one random counter update per window pair (the
  cost that dominates at scale), then K = ceil(16·S·T / (M − 2^b/2)) partitions over the
  survivors: O((1 + K)·(R + E) + S·d) time, 2^b ≤ M slots of 4 bits (b ≈ log2 E);
  S ≈ (true pairs with count ≥ min_count) + E·P[Poisson(E/2^b) ≥ min_count − 1], so K stays about
  T while the load E/2^b is about 1 or less (2^b ≤ 2^31 with M = 2 GiB); beyond, K grows with S.
Never O(U²) in raters U: only pairs that actually co-occur are ever produced.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba as nb
import numpy as np

from bridgewatch.errors import ScoringError
from bridgewatch.integrity.keycount import radix_sort_keys, run_length_counts
from bridgewatch.integrity.layout import (
    distinct_per_tweet,
    drop_raters,
    gather_notes_by_tweet,
    order_by_tweet,
    order_notes_by_tweet,
)

__all__ = [
    "NO_WINDOW",
    "count_pairs",
    "distinct_per_tweet",
    "drop_raters",
    "gather_notes_by_tweet",
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


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # partition and counter slot: top bits of key · golden
_MIX = np.uint64(0xC2B2AE3D27D4EB4F)  # slot in a tweet's de-duplication table
_KEY_BYTES = 16  # a buffered key and its radix-sort scratch
_MIN_KEYS = 64  # smallest partition buffer, whatever the budget (tests force tiny ones)
_MAX_PART_BITS = 40  # deeper splits cannot help: one pair fills a whole buffer


@nb.njit(nogil=True, cache=True)
def _emit_pairs(
    raters,
    times,
    group_ptr,
    tweet_ptr,
    window,
    bounds,
    modes,
    n_ids,
    part_bits,
    part,
    out,
    sink,
    counters,
    counter_bits,
    floor,
):
    """Once-per-tweet pair keys of partition ``part`` (the top ``part_bits`` bits of key · golden).

    ``sink`` 0: write them to ``out``; 2: write only those whose counter slot reached ``floor``;
    1: add one to the saturating 4-bit counter slot (top ``counter_bits`` bits of the same hash,
    two slots a byte of ``counters``, so partitions own disjoint bytes) of every window pair in
    the partition, repeats within a tweet included (an over-count only makes the pre-filter keep
    more), writing nothing.
    Returns the number of keys written, or −1 as soon as ``out`` is full (the caller splits).
    """
    n_tweets = tweet_ptr.shape[0] - 1
    pshift = np.uint64(64 - part_bits) if part_bits > 0 else np.uint64(0)
    cshift = np.uint64(64 - counter_bits)
    tbits = 1
    if sink != 1:
        for k in range(n_tweets):
            if modes[k] == 1:
                while (1 << tbits) < 2 * bounds[k]:
                    tbits += 1
    table = np.zeros(1 << tbits, dtype=np.int64)  # 0 = empty: a key is never 0 (lo < hi)
    tmask = (1 << tbits) - 1
    tshift = np.uint64(64 - tbits)
    seen_at = np.full(n_ids if sink != 1 else 1, _NONE, dtype=np.int64)  # rater -> time in a group
    busy = np.empty(_GATHER_MAX_GROUPS, dtype=np.int64)
    cap = out.shape[0]
    pos = 0
    for k in range(n_tweets):
        if bounds[k] == 0:
            continue
        start = pos
        mode = modes[k] if sink != 1 else 0
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
                    h = np.uint64(key) * _GOLDEN
                    if part_bits > 0 and np.int64(h >> pshift) != part:
                        continue
                    if sink != 0:
                        slot = h >> cshift
                        nib = (slot & np.uint64(1)) << np.uint64(2)
                        count = (counters[slot >> np.uint64(1)] >> nib) & 15
                        if sink == 1:
                            if count < 15:
                                counters[slot >> np.uint64(1)] += np.uint8(1 << nib)
                            continue
                        if count < floor:
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
                        slot = np.int64((np.uint64(key) * _MIX) >> tshift)
                        while table[slot] != 0 and table[slot] != key:
                            slot = (slot + 1) & tmask
                        if table[slot] == key:
                            continue
                        table[slot] = key
                    if pos == cap:
                        return -1
                    out[pos] = key
                    pos += 1
        if mode == 1:  # empty the table again; every key of the tweet goes, so no tombstones
            for q in range(start, pos):
                slot = np.int64((np.uint64(out[q]) * _MIX) >> tshift)
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
    return pos


@nb.njit(nogil=True, cache=True)
def _survivor_mass(counters, floor):
    """Σ of the 4-bit counter slots that reached ``floor``: about how many keys the counting passes keep."""
    total = 0
    for byte in counters:
        lo, hi = np.int64(byte & 15), np.int64(byte >> 4)
        total += (lo if lo >= floor else 0) + (hi if hi >= floor else 0)
    return total


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


class _Counter:
    """One ``count_pairs`` call: the layout, the budget split, and how a partition is counted."""

    def __init__(self, raters, times, group_ptr, tweet_ptr, window, min_count, table_bits):
        self.layout = (raters, times, group_ptr, tweet_ptr, window)
        self.bounds = window_pair_bounds(times, group_ptr, tweet_ptr, window)
        self.modes = dedupe_modes(raters, group_ptr, tweet_ptr, self.bounds, table_bits)
        self.n_ids = int(raters.max()) + 1 if raters.shape[0] else 1
        self.min_count = min_count
        self.counters = np.zeros(1, dtype=np.uint8)
        self.counter_bits = 1
        self.sink = 0

    def emit(self, part_bits: int, part: int, out: np.ndarray, sink: int) -> int:
        return _emit_pairs(
            *self.layout, self.bounds, self.modes, self.n_ids, part_bits, part, out, sink,
            self.counters, self.counter_bits, min(self.min_count, 15),
        )  # fmt: skip

    def prefilter(self, part_bits: int, part: int) -> None:
        self.emit(part_bits, part, np.empty(0, dtype=np.int64), 1)

    def count(self, part_bits: int, part: int, cap: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """(keys, counts) of one partition; split in two (and emitted again) if ``cap`` keys overflow."""
        buf = np.empty(cap, dtype=np.int64)  # pages are touched only as keys arrive
        pos = self.emit(part_bits, part, buf, self.sink)
        if pos < 0:
            del buf
            if part_bits >= _MAX_PART_BITS:
                raise ScoringError("pair counter: one rater pair fills a whole buffer; raise memory_bytes")
            return [run for q in (0, 1) for run in self.count(part_bits + 1, 2 * part + q, cap)]
        keys = radix_sort_keys(buf[:pos], np.empty(pos, dtype=np.int64), max(1, self.n_ids.bit_length()))
        return [run_length_counts(keys, self.min_count)]


def _pow2_bits(n: float) -> int:
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def count_pairs(
    raters: np.ndarray,
    times: np.ndarray,
    group_ptr: np.ndarray,
    tweet_ptr: np.ndarray,
    window: int,
    *,
    min_count: int = 1,
    memory_bytes: int = 2 << 30,
    num_threads: int = 1,
    dedupe_table_bits: int = 22,
    candidates: np.ndarray | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Count, per rater pair, the tweets on which the two co-occur within ``window`` ms.

    ``raters``: int32[M] and ``times``: int64[M] in layout order (``x[perm]`` of ``order_by_tweet``);
    ``group_ptr`` int64[G+1], ``tweet_ptr`` int64[T+1] as returned there. Pairs with fewer than
    ``min_count`` tweets are dropped (a pair that cannot pass a threshold need not be stored).
    A tweet's keys are de-duplicated with a hash set of up to 2^``dedupe_table_bits`` slots, or by
    sorting them when it emits more than half that.

    ``memory_bytes`` bounds the working memory (pre-filter counters plus one key buffer per thread;
    the returned pairs come on top): see the module notes for how it sets the partitions.
    ``candidates`` (int64 keys, sorted, unique): count only these pairs. They fill the pre-filter's
    counters instead of a counting pass, so only they (and keys sharing their counter slots, dropped
    at the end) are ever buffered and sorted: how ``similarity.top_k_similar`` counts agreements
    of the pairs it already knows co-rated, without holding every agreeing pair.

    Returns ``keys`` int64[P] sorted ascending (``unpack_pairs`` gives the raters) and ``counts``
    int64[P]. The result does not depend on ``memory_bytes``, ``num_threads`` or the strategy.
    """
    raters = np.ascontiguousarray(raters, dtype=np.int32)
    times = np.ascontiguousarray(times, dtype=np.int64)
    group_ptr = np.ascontiguousarray(group_ptr, dtype=np.int64)
    tweet_ptr = np.ascontiguousarray(tweet_ptr, dtype=np.int64)
    job = _Counter(raters, times, group_ptr, tweet_ptr, int(window), min_count, dedupe_table_bits)
    total = int(job.bounds.sum())
    threads = max(1, num_threads)
    budget = max(int(memory_bytes), 2 * threads * _KEY_BYTES * _MIN_KEYS)
    cap = budget // (threads * _KEY_BYTES)
    expected = total
    with ThreadPoolExecutor(max_workers=threads) as pool:
        if candidates is not None:
            candidates = np.ascontiguousarray(candidates, dtype=np.int64)
            bits = min(max(_pow2_bits(4 * candidates.shape[0]), 10), int(math.log2(budget)))
            job.counters, job.counter_bits, job.sink = _candidate_counters(candidates, bits), bits, 2
            job.min_count = max(min_count, 1)
            cap = max((budget - job.counters.nbytes) // (threads * _KEY_BYTES), _MIN_KEYS)
            expected = min(total, 4 * candidates.shape[0])
        elif min_count >= 2 and total > threads * cap:
            first_bits = _pow2_bits(threads)
            bits = min(max(_pow2_bits(total), first_bits + 1, 10), int(math.log2(budget)))
            job.counters, job.counter_bits, job.sink = np.zeros(1 << (bits - 1), dtype=np.uint8), bits, 2
            cap = (budget - job.counters.nbytes) // (threads * _KEY_BYTES)
            if progress is not None:
                progress(f"pair counting: {total:,} window pairs, pre-filter into 2^{bits} counters")
            list(pool.map(lambda p: job.prefilter(first_bits, p), range(1 << first_bits)))
            expected = int(_survivor_mass(job.counters, min(min_count, 15)))
        part_bits = _pow2_bits(max(threads, 1.25 * expected / cap))
        if progress is not None:
            progress(f"pair counting: ~{expected:,} keys in {1 << part_bits} partition(s) of ≤ {cap:,}")
        parts = pool.map(lambda p: job.count(part_bits, p, cap), range(1 << part_bits))
        runs = [run for part in parts for run in part]
    keys = np.concatenate([r[0] for r in runs])
    counts = np.concatenate([r[1] for r in runs])
    del runs, parts  # each step below frees its input before the next: ≈ 32 bytes a pair at most
    if candidates is not None:  # keys that only shared a candidate's counter slot
        pos = np.minimum(np.searchsorted(candidates, keys), max(candidates.shape[0] - 1, 0))
        hit = candidates[pos] == keys if candidates.shape[0] else np.zeros(keys.shape[0], dtype=bool)
        del pos
        keys, counts = keys[hit], counts[hit]
        del hit
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    counts = counts[order]
    return keys, counts


def _candidate_counters(keys: np.ndarray, bits: int) -> np.ndarray:
    """The pre-filter's 4-bit counters (2^``bits`` slots, two a byte) saturated at each key's slot."""
    counters = np.zeros(1 << (bits - 1), dtype=np.uint8)
    slot = (keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - bits)
    np.bitwise_or.at(
        counters, (slot >> np.uint64(1)).astype(np.int64), (15 << ((slot & 1) * 4)).astype(np.uint8)
    )
    return counters

"""Counting-sort kernels that order ratings by (note, rater) and by rater, in O(R).

Ids are dense (note < N, rater < U), so two stable counting passes beat a comparison sort of
int64 keys (R log R, plus an R/2 buffer) in both time and memory. Each numba kernel has a
plain-numpy twin (``*_numpy``) that a test checks it against.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, parallel=True)
def counting_sort(key: np.ndarray, src: np.ndarray, out: np.ndarray, n_keys: int, chunks: int) -> None:
    """``out`` = ``src`` stably ordered by ``key[src[j]]`` (``src`` empty: 0..len(out)-1).

    The input is cut into ``chunks`` slices counted and scattered on parallel threads; each
    slice's rows of a key go after the earlier slices' rows of that key, so the result is the
    serial counting sort's whatever ``chunks`` is. ``key``: int32 values < ``n_keys``.
    """
    r = out.shape[0]
    ident = src.shape[0] == 0
    step = (r + chunks - 1) // chunks
    counts = np.zeros((chunks, n_keys), np.int64)
    for c in nb.prange(chunks):
        row = counts[c]
        for j in range(c * step, min(r, (c + 1) * step)):
            row[key[j if ident else src[j]]] += 1
    total = 0
    for k in range(n_keys):
        for c in range(chunks):
            v = counts[c, k]
            counts[c, k] = total
            total += v
    for c in nb.prange(chunks):
        row = counts[c]
        for j in range(c * step, min(r, (c + 1) * step)):
            i = j if ident else src[j]
            k = key[i]
            out[row[k]] = i
            row[k] += 1


def pair_order(
    note: np.ndarray,
    rater: np.ndarray,
    n_notes: int,
    n_raters: int,
    temp: np.ndarray,
    out: np.ndarray,
    chunks: int | None = None,
) -> np.ndarray:
    """``out`` filled with the permutation sorting by (note, rater), stable (equal pairs keep
    input order), and returned: a counting sort by rater into ``temp``, then by note.

    ``note``/``rater``: int32[R] dense indices; ``temp`` (scratch) and ``out``: [R] of an integer
    type that holds R - 1 (int32 below 2**31 ratings: half the memory of int64). ``chunks``:
    parallel slices (None: numba's thread count); the result does not depend on it.
    """
    chunks = chunks or nb.get_num_threads()
    counting_sort(rater, np.empty(0, temp.dtype), temp, n_raters, chunks)
    counting_sort(note, temp, out, n_notes, chunks)
    return out


def pair_order_numpy(
    note: np.ndarray,
    rater: np.ndarray,
    n_notes: int,
    n_raters: int,
    temp: np.ndarray | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Twin of ``pair_order``."""
    return np.lexsort((rater, note)).astype(np.int64)


@nb.njit(cache=True)
def repeated_pair(note: np.ndarray, rater: np.ndarray, order: np.ndarray) -> bool:
    """Whether two ratings share (note, rater); ``order`` sorts by (note, rater)."""
    for j in range(order.shape[0] - 1):
        a, b = order[j], order[j + 1]
        if note[a] == note[b] and rater[a] == rater[b]:
            return True
    return False


def repeated_pair_numpy(note: np.ndarray, rater: np.ndarray, order: np.ndarray) -> bool:
    """Twin of ``repeated_pair``."""
    n, r = note[order], rater[order]
    return bool(((n[1:] == n[:-1]) & (r[1:] == r[:-1])).any())


@nb.njit(cache=True)
def permute_in_place(order, a, b, c, d, e, f):  # type: ignore[no-untyped-def]
    """``x[:] = x[order]`` for the six [R] arrays at once, in place: each cycle of the
    permutation is walked once with a bit per position, so no column is ever held twice."""
    r = order.shape[0]
    done = np.zeros((r + 7) // 8, np.uint8)
    for s in range(r):
        if done[s >> 3] & (1 << (s & 7)):
            continue
        ta, tb, tc, td, te, tf = a[s], b[s], c[s], d[s], e[s], f[s]
        j = s
        while True:
            done[j >> 3] |= 1 << (j & 7)
            k = order[j]
            if k == s:
                a[j], b[j], c[j], d[j], e[j], f[j] = ta, tb, tc, td, te, tf
                break
            a[j], b[j], c[j], d[j], e[j], f[j] = a[k], b[k], c[k], d[k], e[k], f[k]
            j = k


def permute_in_place_numpy(order: np.ndarray, *arrays: np.ndarray) -> None:
    """Twin of ``permute_in_place``."""
    for x in arrays:
        x[:] = x[order]


def stable_order(key: np.ndarray, n_keys: int, chunks: int | None = None) -> np.ndarray:
    """int32[R] (int64 from 2**31 on) stable permutation sorting int32 ``key`` (values < ``n_keys``)."""
    out = np.empty(key.shape[0], np.int32 if key.shape[0] < 2**31 else np.int64)
    counting_sort(key, np.empty(0, np.int64), out, n_keys, chunks or nb.get_num_threads())
    return out


def stable_order_numpy(key: np.ndarray, n_keys: int) -> np.ndarray:
    """Twin of ``stable_order``."""
    return np.argsort(key, kind="stable").astype(np.int32 if key.shape[0] < 2**31 else np.int64)


@nb.njit(cache=True)
def _hash_bytes(data: np.ndarray, start: int, end: int) -> tuple[np.uint64, np.uint64]:
    # Two independent 64-bit FNV-1a style hashes: a 128-bit key makes collisions negligible
    # (~1e-26 for 1e6 distinct ids).
    h1 = np.uint64(0xCBF29CE484222325)
    h2 = np.uint64(0x84222325CBF29CE4)
    p1 = np.uint64(0x100000001B3)
    p2 = np.uint64(0x1000193000001B3)
    for k in range(start, end):
        b = np.uint64(data[k])
        h1 = (h1 ^ b) * p1
        h2 = (h2 ^ (b + np.uint64(0x9E))) * p2
    h1 ^= np.uint64(end - start)
    return h1, h2


@nb.njit(cache=True)
def encode_strings(offsets: np.ndarray, data: np.ndarray, table: dict, next_code: int) -> np.ndarray:
    """Codes (int32[K]) for K strings given as arrow offsets (int32[K+1]) and bytes (uint8[...]).

    ``table`` (128-bit hash -> code) is updated in place; new strings get ``next_code``,
    ``next_code + 1``, ... in input order. A new code equals the running size of ``table``.
    """
    k = offsets.shape[0] - 1
    out = np.empty(k, dtype=np.int32)
    for i in range(k):
        key = _hash_bytes(data, offsets[i], offsets[i + 1])
        code = table.get(key, -1)
        if code < 0:
            code = next_code
            table[key] = code
            next_code += 1
        out[i] = code
    return out


def new_string_table() -> dict:
    """An empty numba dict for ``encode_strings``."""
    from numba import types
    from numba.typed import Dict

    return Dict.empty(key_type=types.UniTuple(types.uint64, 2), value_type=types.int32)


def encode_strings_numpy(strings: list[str], table: dict[str, int]) -> np.ndarray:
    """Twin of ``encode_strings`` keyed by the strings themselves."""
    return np.array([table.setdefault(s, len(table)) for s in strings], dtype=np.int32)


@nb.njit(cache=True, inline="always")
def _key8(off: np.ndarray, data: np.ndarray, i: int, depth: int) -> np.uint64:
    """Bytes ``depth..depth+7`` of string ``i`` as a big-endian uint64, zero padded."""
    a, b = off[i] + depth, off[i + 1]
    k = np.uint64(0)
    for j in range(8):
        k <<= np.uint64(8)
        if a + j < b:
            k |= np.uint64(data[a + j])
    return k


@nb.njit(cache=True)
def sort_strings(off: np.ndarray, data: np.ndarray) -> np.ndarray:
    """int64[K] order of K distinct strings (arrow layout: bytes ``data[off[i]:off[i+1]]``) by
    their bytes, i.e. the order of Python ``str`` for UTF-8.

    Most-significant-digit radix sort on eight-byte digits: one sort of the first eight
    bytes, then only runs that tie go on to the next eight (hex participant ids: nearly none).
    Strings equal up to the zero padding differ in length; the shorter is a prefix: it comes first.
    """
    n = off.shape[0] - 1
    order = np.arange(n)
    keys = np.empty(n, np.uint64)
    stack = [(0, n, 0)]
    while len(stack):
        lo, hi, depth = stack.pop()
        if hi - lo < 2:
            continue
        longest = 0
        for j in range(lo, hi):
            keys[j] = _key8(off, data, order[j], depth)
            longest = max(longest, off[order[j] + 1] - off[order[j]])
        if longest <= depth:  # all padding: by length
            for j in range(lo, hi):
                keys[j] = off[order[j] + 1] - off[order[j]]
        idx = np.argsort(keys[lo:hi])  # ties go on to deeper digits: no need for stability
        order[lo:hi] = order[lo:hi][idx]
        keys[lo:hi] = keys[lo:hi][idx]
        if longest <= depth:
            continue
        a = lo
        for j in range(lo + 1, hi + 1):
            if j == hi or keys[j] != keys[a]:
                if j - a > 1:
                    stack.append((a, j, depth + 8))
                a = j
    return order


def sort_strings_numpy(strings: list[str]) -> np.ndarray:
    """Twin of ``sort_strings`` (on the strings themselves)."""
    return np.array(sorted(range(len(strings)), key=strings.__getitem__), dtype=np.int64)

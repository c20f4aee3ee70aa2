"""Counting-sort kernels that order ratings by (note, rater) and by rater, in O(R).

Ids are dense (note < N, rater < U), so two stable counting passes beat a comparison sort of
int64 keys (R log R, plus an R/2 buffer) in both time and memory. Each numba kernel has a
plain-numpy twin (``*_numpy``) that a test checks it against.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True)
def pair_order(
    note: np.ndarray, rater: np.ndarray, n_notes: int, n_raters: int, temp: np.ndarray
) -> np.ndarray:
    """int64[R] permutation sorting by (note, rater), stable (equal pairs keep input order).

    ``note``/``rater``: int32[R] dense indices; ``temp``: scratch int32[R] (int64 if R >= 2**31).
    """
    r = note.shape[0]
    start = np.zeros(n_raters + 1, dtype=np.int64)
    for i in range(r):
        start[rater[i] + 1] += 1
    for u in range(n_raters):
        start[u + 1] += start[u]
    by_rater = temp
    for i in range(r):
        u = rater[i]
        by_rater[start[u]] = i
        start[u] += 1
    nstart = np.zeros(n_notes + 1, dtype=np.int64)
    for i in range(r):
        nstart[note[i] + 1] += 1
    for n in range(n_notes):
        nstart[n + 1] += nstart[n]
    out = np.empty(r, dtype=np.int64)
    for j in range(r):
        i = by_rater[j]
        n = note[i]
        out[nstart[n]] = i
        nstart[n] += 1
    return out


def pair_order_numpy(
    note: np.ndarray, rater: np.ndarray, n_notes: int, n_raters: int, temp: np.ndarray | None = None
) -> np.ndarray:
    """Twin of ``pair_order``."""
    return np.lexsort((rater, note)).astype(np.int64)


@nb.njit(cache=True)
def stable_order(key: np.ndarray, n_keys: int) -> np.ndarray:
    """int64[R] stable permutation sorting int32 ``key`` (values < ``n_keys``)."""
    r = key.shape[0]
    start = np.zeros(n_keys + 1, dtype=np.int64)
    for i in range(r):
        start[key[i] + 1] += 1
    for k in range(n_keys):
        start[k + 1] += start[k]
    out = np.empty(r, dtype=np.int64)
    for i in range(r):
        k = key[i]
        out[start[k]] = i
        start[k] += 1
    return out


def stable_order_numpy(key: np.ndarray, n_keys: int) -> np.ndarray:
    """Twin of ``stable_order``."""
    return np.argsort(key, kind="stable").astype(np.int64)


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

"""Counting int64 keys: an in-place LSD radix sort for pair keys and run-length counting.

Used by ``pairs.count_pairs`` on each partition of emitted pair keys. ``run_length_numpy`` and ``np.sort``
are the plain-numpy twins of the numba kernels.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(nogil=True, cache=True)
def radix_sort_keys(keys: np.ndarray, scratch: np.ndarray, id_bits: int) -> np.ndarray:
    """Sort pair keys (``lo << 32 | hi``, both < 2^``id_bits``) by LSD radix, in place.

    Only the 2·``id_bits`` bits in use are visited, in digits of at most 11 bits (≤ 2048 buckets:
    the histogram stays in L1); a million raters cost 4 passes of one read and one scatter each.
    ``scratch`` (int64, at least as long) is clobbered. Returns ``keys``, now sorted.
    """
    n = keys.shape[0]
    shifts = []
    widths = []
    for base in (0, 32):
        n_digits = (id_bits + 10) // 11
        width = (id_bits + n_digits - 1) // n_digits
        for q in range(n_digits):
            shifts.append(base + q * width)
            widths.append(width)
    src = keys
    dst = scratch[:n]
    for p in range(len(shifts)):
        sh = shifts[p]
        mask = (1 << widths[p]) - 1
        count = np.zeros(mask + 2, dtype=np.int64)
        for i in range(n):
            count[((src[i] >> sh) & mask) + 1] += 1
        for d in range(mask + 1):
            count[d + 1] += count[d]
        for i in range(n):
            d = (src[i] >> sh) & mask
            dst[count[d]] = src[i]
            count[d] += 1
        src, dst = dst, src
    if len(shifts) % 2 == 1:
        keys[:] = src
    return keys


@nb.njit(nogil=True, cache=True)
def run_length_counts(sorted_keys, min_count):
    """(keys, counts) of runs of at least ``min_count`` in ``sorted_keys`` (fresh arrays, exact size)."""
    n = sorted_keys.shape[0]
    m = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and sorted_keys[j] == sorted_keys[i]:
            j += 1
        if j - i >= min_count:
            m += 1
        i = j
    keys = np.empty(m, dtype=np.int64)
    counts = np.empty(m, dtype=np.int64)
    m = 0
    i = 0
    while i < n:
        j = i + 1
        while j < n and sorted_keys[j] == sorted_keys[i]:
            j += 1
        if j - i >= min_count:
            keys[m] = sorted_keys[i]
            counts[m] = j - i
            m += 1
        i = j
    return keys, counts


def run_length_numpy(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if sorted_keys.shape[0] == 0:
        return sorted_keys[:0].copy(), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    counts = np.diff(np.r_[starts, sorted_keys.shape[0]]).astype(np.int64)
    return sorted_keys[starts], counts

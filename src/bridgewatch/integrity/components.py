"""Connected components of a pair list, with ids that do not depend on the pair order.

The reference merges suspect pairs into cliques with a dict-based union-find fed from a Python set,
so its clique ids change from run to run. Here components are numbered 1, 2, ... in the order of
their smallest member index, and members outside any pair get 0: same input set, same ids.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from bridgewatch.errors import ScoringError


@nb.njit(cache=True)
def _find(parent, x):
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


@nb.njit(cache=True)
def _union_find(lo, hi, n):
    parent = np.arange(n).astype(np.int64)
    for e in range(lo.shape[0]):
        a = _find(parent, np.int64(lo[e]))
        b = _find(parent, np.int64(hi[e]))
        if a != b:  # the smaller index becomes the root: the root is the component's minimum
            if a < b:
                parent[b] = a
            else:
                parent[a] = b
    touched = np.zeros(n, dtype=np.bool_)
    for e in range(lo.shape[0]):
        touched[lo[e]] = True
        touched[hi[e]] = True
    label = np.zeros(n, dtype=np.int32)
    next_id = 0
    for x in range(n):  # roots are minima, so they are met before the rest of their component
        if not touched[x]:
            continue
        r = _find(parent, x)
        if r == x:
            next_id += 1
            label[x] = next_id
        else:
            label[x] = label[r]
    return label


def connected_components(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Component id of each of ``n`` nodes given edges (``lo`` int32[E], ``hi`` int32[E]).

    Returns int32[n]: 0 for nodes on no edge, else 1.. numbered by the component's smallest node.
    """
    lo = np.ascontiguousarray(lo, dtype=np.int64)
    hi = np.ascontiguousarray(hi, dtype=np.int64)
    if lo.shape[0] and (min(lo.min(), hi.min()) < 0 or max(lo.max(), hi.max()) >= n):
        raise ScoringError("connected_components: edge endpoint outside [0, n)")
    return _union_find(lo, hi, int(n))


def connected_components_numpy(lo: np.ndarray, hi: np.ndarray, n: int) -> np.ndarray:
    """Twin of ``connected_components`` by label propagation in numpy (slow; for tests)."""
    lo = np.asarray(lo, dtype=np.int64)
    hi = np.asarray(hi, dtype=np.int64)
    label = np.arange(n, dtype=np.int64)
    while True:
        m = np.minimum(label[lo], label[hi])
        new = label.copy()
        np.minimum.at(new, lo, m)
        np.minimum.at(new, hi, m)
        new = new[new]
        if np.array_equal(new, label):
            break
        label = new
    touched = np.zeros(n, dtype=bool)
    touched[lo] = True
    touched[hi] = True
    out = np.zeros(n, dtype=np.int32)
    roots = np.unique(label[touched])
    out[touched] = (np.searchsorted(roots, label[touched]) + 1).astype(np.int32)
    return out

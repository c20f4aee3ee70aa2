"""Which raters rate alike: top-k similar raters and Polis-style opinion groups.

Both are for reports and moderators, not for scoring. Neither builds a dense rater × rater matrix:
top-k similarity counts co-rated pairs with the pair counter of ``pairs.py`` (cost Σ_notes n², so
popular notes contribute a fixed sample of their raters, sized to a pair budget); opinion groups
embed raters with a truncated SVD of the sparse, note-centred rating matrix and cluster the
embedding with k-means.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from bridgewatch.integrity import pairs as _pairs

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def note_sample_cap(note_sizes: np.ndarray, cap: int | None, max_pairs: int) -> int:
    """Raters kept per note: the largest m ≤ ``cap`` with Σ_notes C(min(n, m), 2) ≤ ``max_pairs``.

    ``note_sizes`` int[N] raters per note. At least 2 (one pair per note), whatever the budget.
    """
    sizes = np.asarray(note_sizes, dtype=np.int64)
    hi = int(sizes.max()) if sizes.size else 2
    hi = max(2, min(hi, cap) if cap is not None else hi)

    def pairs(m: int) -> int:
        k = np.minimum(sizes, m)
        return int((k * (k - 1) // 2).sum())

    lo = 2
    while lo < hi:  # the pair count grows with m: binary search
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if pairs(mid) <= max_pairs else (lo, mid - 1)
    return lo


def sample_raters_per_note(note: np.ndarray, rater: np.ndarray, m: int) -> np.ndarray:
    """bool[R]: on each note, the ``m`` raters with the lowest fixed pseudo-random priority.

    The priority is a hash of the rater alone, so a rater kept on one popular note tends to be kept
    on the others: co-rating counts among kept raters stay exact instead of being thinned on every
    note. Ties (equal priority) keep input order; the result depends on the ratings only.
    """
    note = np.asarray(note, dtype=np.int64)
    prio = (np.asarray(rater, dtype=np.uint64) * _GOLDEN) >> np.uint64(33)  # 31 bits
    order = np.argsort((note << 31) | prio.astype(np.int64), kind="stable")
    sorted_note = note[order]
    start = np.r_[0, np.flatnonzero(sorted_note[1:] != sorted_note[:-1]) + 1]
    rank = np.arange(order.shape[0]) - np.repeat(start, np.diff(np.r_[start, order.shape[0]]))
    keep = np.zeros(order.shape[0], dtype=bool)
    keep[order[rank < m]] = True
    return keep


def top_k_similar(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    n_raters: int,
    *,
    k: int = 10,
    shrinkage: float = 5.0,
    min_co_rated: int = 3,
    max_raters_per_note: int | None = 200,
    max_pairs: int = 200_000_000,
    memory_bytes: int = 2 << 30,
    num_threads: int = 1,
) -> pd.DataFrame:
    """The ``k`` raters most similar to each rater, by agreement on co-rated notes.

    ``rating_note`` int[R], ``rating_rater`` int[R], ``rating_value`` float[R] in {0, 0.5, 1}.
    For a pair: ``coRated`` notes both rated, ``agreed`` of those with the same value; similarity =
    agreed / (coRated + ``shrinkage``), an agreement share shrunk toward 0 so that 3/3 ranks below
    40/42. Pairs with fewer than ``min_co_rated`` co-rated notes are ignored.

    Bounded at any scale: a note with more than m raters contributes only m of them
    (``sample_raters_per_note``), m = ``note_sample_cap`` (≤ ``max_raters_per_note``, and small
    enough that at most ``max_pairs`` rater pairs are emitted over all notes). Complexity:
    O(R log R) to sample, O(P) pair work with P = Σ_notes C(min(n, m), 2) ≤ ``max_pairs``, memory
    O(R + ``memory_bytes``) (``pairs.count_pairs``, on ``num_threads`` threads: the result does
    not depend on them); no rater × rater work. Agreements are counted only for the pairs with
    ``min_co_rated`` co-ratings (``count_pairs(candidates=...)``), not for every agreeing pair.

    Returns a frame with columns rater, neighbor, rank (1..k), coRated, agreed, similarity, sorted
    by (rater, rank); ties are broken by the neighbor index.
    """
    rater = np.asarray(rating_rater, dtype=np.int32)
    if _sorted_by_note(rating_note):  # RatingMatrix order: lay out per note, no R-length sort
        note_ = np.asarray(rating_note)
        value = np.asarray(rating_value)
        m = note_sample_cap(_segment_sizes(note_), max_raters_per_note, max_pairs)

        def layout(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            return _sampled_layout(note_, rater, value, m, cells)

    else:
        note = np.asarray(rating_note, dtype=np.int64)
        hnum = np.rint(np.asarray(rating_value, dtype=np.float64) * 2).astype(np.int64)
        m = note_sample_cap(np.bincount(note), max_raters_per_note, max_pairs)
        select = sample_raters_per_note(note, rater, m)

        def layout(cells: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            group = note if cells == 1 else note * 3 + hnum
            perm, gptr, tptr = _pairs.order_by_tweet(note, group, np.zeros_like(note), select)
            return rater[perm], gptr, tptr

    def count(cells: int, min_count: int, candidates: np.ndarray | None = None):
        raters, gptr, tptr = layout(cells)
        return _pairs.count_pairs(
            raters,
            np.zeros(raters.shape[0], dtype=np.int64),  # no window: times are never compared
            gptr,
            tptr,
            _pairs.NO_WINDOW,
            min_count=min_count,
            memory_bytes=memory_bytes,
            num_threads=num_threads,
            candidates=candidates,
        )

    co_keys, co_counts = count(1, min_co_rated)
    ag_keys, ag_counts = count(3, 1, co_keys)  # agreeing is co-rating: only those pairs
    n_top, nbr, sim, co, ag = _top_k_pairs(co_keys, co_counts, ag_keys, ag_counts, shrinkage, n_raters, k)
    del co_keys, co_counts, ag_keys, ag_counts
    held = np.arange(k)[None, :] < n_top[:, None]  # rater-major: rows come out by (rater, rank)
    return pd.DataFrame(
        {
            "rater": np.repeat(np.arange(n_raters, dtype=np.int32), n_top),
            "neighbor": nbr[held],
            "rank": np.broadcast_to(np.arange(1, k + 1, dtype=np.int32), held.shape)[held],
            "coRated": co[held],
            "agreed": ag[held],
            "similarity": sim[held],
        }
    )


@nb.njit(cache=True)
def _top_k_pairs(co_keys, co_counts, ag_keys, ag_counts, shrinkage, n_raters, k):
    """Each rater's ``k`` best neighbours over the counted pairs, in one pass with O(U·k) memory.

    ``co_keys`` / ``co_counts``: co-rated pairs (sorted keys); ``ag_keys`` / ``ag_counts``: the
    agreeing subset (sorted, ⊆ ``co_keys``), merged on the fly. Every pair offers itself to both of
    its raters; a rater keeps a small list sorted by (similarity desc, neighbour asc), the order a
    global (rater, −similarity, neighbour) sort gives, so the rows are the same without holding
    2·P pair rows. Returns (kept int64[U], neighbour int32[U, k], similarity, coRated, agreed).
    """
    n_top = np.zeros(n_raters, dtype=np.int64)
    nbr = np.full((n_raters, k), -1, dtype=np.int32)
    sim = np.zeros((n_raters, k), dtype=np.float64)
    co = np.zeros((n_raters, k), dtype=np.int64)
    ag = np.zeros((n_raters, k), dtype=np.int64)
    q = 0
    for p in range(co_keys.shape[0]):
        key = co_keys[p]
        while q < ag_keys.shape[0] and ag_keys[q] < key:
            q += 1
        agreed = ag_counts[q] if q < ag_keys.shape[0] and ag_keys[q] == key else 0
        c = co_counts[p]
        s = agreed / (c + shrinkage)
        lo, hi = np.int32(key >> 32), np.int32(key & 0xFFFFFFFF)
        for side in range(2):
            u, v = (lo, hi) if side == 0 else (hi, lo)
            j = n_top[u]
            if j == k:  # full: replace the worst if this pair beats it
                if not (s > sim[u, k - 1] or (s == sim[u, k - 1] and v < nbr[u, k - 1])):
                    continue
                j = k - 1
            else:
                n_top[u] = j + 1
            while j > 0 and (s > sim[u, j - 1] or (s == sim[u, j - 1] and v < nbr[u, j - 1])):
                nbr[u, j], sim[u, j] = nbr[u, j - 1], sim[u, j - 1]
                co[u, j], ag[u, j] = co[u, j - 1], ag[u, j - 1]
                j -= 1
            nbr[u, j], sim[u, j], co[u, j], ag[u, j] = v, s, c, agreed
    return n_top, nbr, sim, co, ag


def _sorted_by_note(note: np.ndarray) -> bool:
    note = np.asarray(note)
    return note.shape[0] > 0 and bool(_is_sorted(note))


@nb.njit(cache=True)
def _is_sorted(a):
    i = 1
    while i < a.shape[0] and a[i] >= a[i - 1]:
        i += 1
    return i >= a.shape[0]


@nb.njit(cache=True)
def _segment_sizes(note):
    """Ratings per note of note-sorted ratings (notes without ratings left out): int64[notes rated]."""
    n = 1
    for i in range(1, note.shape[0]):
        if note[i] != note[i - 1]:
            n += 1
    sizes = np.zeros(n, dtype=np.int64)
    g = 0
    for i in range(note.shape[0]):
        if i > 0 and note[i] != note[i - 1]:
            g += 1
        sizes[g] += 1
    return sizes


@nb.njit(cache=True)
def _sampled_layout(note, rater, value, m, cells):
    """``sample_raters_per_note`` + ``order_by_tweet`` for note-sorted ratings, note by note.

    Each note is a tweet; its ``m`` raters of lowest priority are kept (all, with ≤ m), in input
    order; ``cells`` 1: one group per note, 3: one group per (note, helpfulNum), Not Helpful first
    (the stable (note, cell) order). Returns (raters int32[M], group_ptr, tweet_ptr) with
    O(largest note) scratch instead of the generic path's dozen R-length sort arrays.
    """
    n_r = note.shape[0]
    kept = 0
    n_groups = 0
    n_notes = 0
    a = 0
    while a < n_r:  # sizes first: outputs are allocated once
        b = a + 1
        while b < n_r and note[b] == note[a]:
            b += 1
        kept += min(b - a, m)
        n_notes += 1
        n_groups += cells
        a = b
    raters = np.empty(kept, dtype=np.int32)
    group_ptr = np.empty(n_groups + 1, dtype=np.int64)
    tweet_ptr = np.empty(n_notes + 1, dtype=np.int64)
    pos = 0
    g = 0
    t = 0
    a = 0
    while a < n_r:
        b = a + 1
        while b < n_r and note[b] == note[a]:
            b += 1
        n = b - a
        take = np.ones(n, dtype=np.bool_)
        if n > m:
            prio = np.empty(n, dtype=np.int64)
            for i in range(n):
                prio[i] = np.int64((np.uint64(rater[a + i]) * _GOLDEN) >> np.uint64(33))
            order = np.argsort(prio, kind="mergesort")
            take[:] = False
            for q in range(m):
                take[order[q]] = True
        tweet_ptr[t] = g
        t += 1
        for c in range(cells):
            start = pos
            for i in range(n):
                if take[i] and (cells == 1 or np.int64(np.rint(value[a + i] * 2)) == c):
                    raters[pos] = rater[a + i]
                    pos += 1
            if pos > start:
                group_ptr[g] = start
                g += 1
        a = b
    group_ptr[g] = pos
    tweet_ptr[t] = g
    return raters, group_ptr[: g + 1], tweet_ptr


def rater_rows(
    rater: np.ndarray, note: np.ndarray, x: np.ndarray, n_raters: int, n_notes: int
) -> sp.csr_matrix:
    """``sp.csr_matrix((x, (rater, note)), shape=(n_raters, n_notes))``, built without COO copies.

    When no (rater, note) cell repeats, the canonical CSR is the ratings stably sorted by rater
    with each row's notes ascending, which RatingMatrix order (note-major) already gives: one
    argsort and three gathers (≈ 20 bytes a rating) instead of scipy's COO round trip (≈ 60; 12 GiB
    at the public scale). Other inputs (repeats, unsorted notes) go through scipy itself.
    """
    order = np.argsort(rater, kind="stable")
    index = np.int32 if max(order.shape[0], n_notes, n_raters) < 2**31 - 1 else np.int64
    cols = np.asarray(note)[order].astype(index, copy=False)
    per_row = np.bincount(rater, minlength=n_raters)
    indptr = np.zeros(n_raters + 1, dtype=index)
    np.cumsum(per_row, out=indptr[1:])
    inner = np.ones(cols.shape[0], dtype=bool)
    inner[indptr[:-1][per_row > 0]] = False  # each row's first entry
    if cols.shape[0] > 1 and not np.all(cols[1:][inner[1:]] > cols[:-1][inner[1:]]):
        return sp.csr_matrix((x, (rater, note)), shape=(n_raters, n_notes))
    return sp.csr_matrix((np.asarray(x)[order], cols, indptr), shape=(n_raters, n_notes))


def rating_embedding(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    n_notes: int,
    n_raters: int,
    *,
    dims: int = 2,
    seed: int = 0,
) -> np.ndarray:
    """A ``dims``-D embedding of raters: float64[U, dims] (rows of U·S of a truncated SVD).

    Ratings map to +1 / 0 / −1 (helpful / somewhat / not), each note's observed mean is removed
    (missing stays 0), and ``svds`` runs with a start vector drawn from ``seed``. Each axis's sign is
    fixed so that its largest-magnitude rater coordinate is positive: same input, same picture.
    All zeros when every note was rated unanimously.
    """
    note = np.asarray(rating_note)  # int32 ids stay int32: the rows are the same, R·8 bytes less
    rater = np.asarray(rating_rater)
    x = np.asarray(rating_value, dtype=np.float64) * 2 - 1
    sums = np.bincount(note, weights=x, minlength=n_notes)
    cnt = np.bincount(note, minlength=n_notes)
    x -= (sums / np.maximum(cnt, 1))[note]
    unanimous = not np.any(x)
    m = rater_rows(rater, note, x, n_raters, n_notes)
    del x  # the matrix holds its own copy
    dims = min(dims, min(m.shape) - 1)
    if unanimous:  # every note rated unanimously: nothing to tell raters apart (ARPACK would fail)
        return np.zeros((n_raters, max(dims, 1)))
    v0 = np.random.default_rng(seed).standard_normal(min(m.shape))
    u, s, _ = svds(m, k=dims, v0=v0, solver="arpack")
    order = np.argsort(-s, kind="stable")
    emb = u[:, order] * s[order]
    for j in range(emb.shape[1]):
        if emb[np.argmax(np.abs(emb[:, j])), j] < 0:
            emb[:, j] = -emb[:, j]
    return emb


def kmeans(points: np.ndarray, n_clusters: int, *, seed: int = 0, iterations: int = 100) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding from ``seed``: labels int32[n] for points float[n, d].

    Labels are renumbered by cluster size (largest first, ties by smallest member) so they do not
    depend on the seeding order.
    """
    rng = np.random.default_rng(seed)
    n = points.shape[0]
    centers = [points[rng.integers(n)]]
    for _ in range(1, n_clusters):
        d2 = np.min(((points[:, None, :] - np.array(centers)[None]) ** 2).sum(-1), axis=1)
        total = d2.sum()
        pick = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
        centers.append(points[pick])
    c = np.array(centers)
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        labels_new = np.argmin(((points[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        if _ > 0 and np.array_equal(labels_new, labels):
            break
        labels = labels_new
        for j in range(n_clusters):
            if np.any(labels == j):
                c[j] = points[labels == j].mean(axis=0)
    sizes = np.bincount(labels, minlength=n_clusters)
    first = np.array([np.flatnonzero(labels == j)[0] if sizes[j] else n for j in range(n_clusters)])
    rank = np.lexsort((first, -sizes))
    relabel = np.empty(n_clusters, dtype=np.int32)
    relabel[rank] = np.arange(n_clusters, dtype=np.int32)
    return relabel[labels]


def opinion_groups(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    n_notes: int,
    n_raters: int,
    *,
    n_groups: int = 2,
    min_ratings: int = 5,
    seed: int = 0,
) -> pd.DataFrame:
    """Opinion groups as Polis shows them: a 2-D map of raters and a k-means grouping of it.

    Raters with fewer than ``min_ratings`` ratings get NaN coordinates and group −1 (too little to
    place). Returns a frame with one row per rater: rater, ratings, x, y, group.
    """
    note = np.asarray(rating_note)
    rater = np.asarray(rating_rater)
    counts = np.bincount(rater, minlength=n_raters)
    placed = counts >= min_ratings
    keep = placed[rater]
    xy = np.full((n_raters, 2), np.nan)
    group = np.full(n_raters, -1, dtype=np.int32)
    if placed.sum() > n_groups and keep.any():
        value = np.asarray(rating_value)
        if not keep.all():  # copies only when some raters are left out
            note, rater, value = note[keep], rater[keep], value[keep]
        del keep
        emb = rating_embedding(note, rater, value, n_notes, n_raters, dims=2, seed=seed)
        if emb.shape[1] == 1:
            emb = np.c_[emb, np.zeros(emb.shape[0])]
        xy[placed] = emb[placed]
        group[placed] = kmeans(emb[placed], n_groups, seed=seed)
    return pd.DataFrame(
        {
            "rater": np.arange(n_raters, dtype=np.int32),
            "ratings": counts,
            "x": xy[:, 0],
            "y": xy[:, 1],
            "group": group,
        }
    )

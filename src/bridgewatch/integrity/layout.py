"""Lay ratings out for the pair counter: by tweet, then group (note or note cell), then time.

``pairs.count_pairs`` walks ratings tweet by tweet and, inside a tweet, group by group in time
order; these functions build that order and its CSR pointers. ``order_notes_by_tweet`` is the fast
path for ratings already grouped by note (``RatingMatrix``): it sorts only inside each note.
"""

from __future__ import annotations

import numba as nb
import numpy as np


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
    note_indptr: np.ndarray, note_tweet: np.ndarray, created: np.ndarray, select: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fast ``order_by_tweet`` for ratings already grouped by note (``RatingMatrix`` order).

    ``note_indptr`` int64[N+1] CSR over ratings; ``note_tweet`` int64[N] (groups with tweet −1 are
    skipped); ``created`` int64[R]; ``select`` bool[R] (None: all). Groups are notes, ordered by
    (tweet, note); inside a note ratings are sorted by time, ties in input order. Avoids a global
    sort of R keys: O(R log g) with g the ratings of a note. Returns (perm int64[M], group_ptr,
    tweet_ptr).
    """
    (perm,), group_ptr, tweet_ptr = _note_layout(note_indptr, note_tweet, created, select, None)
    return perm, group_ptr, tweet_ptr


def gather_notes_by_tweet(
    note_indptr: np.ndarray, note_tweet: np.ndarray, created: np.ndarray, rater: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``order_notes_by_tweet`` of every rating, returning what the pair counter reads instead of perm.

    ``rater`` int32[R]. Returns (raters int32[M], times int64[M], group_ptr, tweet_ptr): 12 bytes a
    rating where perm and the two gathers would hold 20 at once.
    """
    (raters, times), group_ptr, tweet_ptr = _note_layout(note_indptr, note_tweet, created, None, rater)
    return raters, times, group_ptr, tweet_ptr


def _note_layout(note_indptr, note_tweet, created, select, rater):
    note_tweet = np.asarray(note_tweet, dtype=np.int64)
    note_indptr = np.asarray(note_indptr, dtype=np.int64)
    created = np.asarray(created, dtype=np.int64)
    notes = np.flatnonzero(note_tweet != -1)
    notes = notes[np.argsort(note_tweet[notes], kind="stable")].astype(np.int64)
    select = np.zeros(0, dtype=np.bool_) if select is None else np.asarray(select, dtype=np.bool_)
    n_sel = int(np.count_nonzero(select)) if select.shape[0] else int(note_indptr[-1])
    gather = rater is not None
    rater = np.asarray(rater, dtype=np.int32) if gather else np.zeros(0, dtype=np.int32)
    perm = np.empty(0 if gather else n_sel, dtype=np.int64)
    out_r = np.empty(n_sel if gather else 0, dtype=np.int32)
    out_t = np.empty(n_sel if gather else 0, dtype=np.int64)
    group_ptr = np.empty(notes.shape[0] + 1, dtype=np.int64)
    group_note = np.empty(notes.shape[0], dtype=np.int64)
    m, g = _csr_layout(note_indptr, notes, created, select, rater, perm, out_r, out_t, group_ptr, group_note)
    group_ptr, group_note = group_ptr[: g + 1], group_note[:g]
    tw = note_tweet[group_note]
    new_tweet = np.r_[True, tw[1:] != tw[:-1]] if g else np.zeros(0, dtype=bool)
    tweet_ptr = np.append(np.flatnonzero(new_tweet), g).astype(np.int64)
    out = (out_r[:m], out_t[:m]) if gather else (perm[:m],)
    return out, group_ptr, tweet_ptr


@nb.njit(cache=True)
def _csr_layout(note_indptr, notes, created, select, rater, perm, out_r, out_t, group_ptr, group_note):
    """Per note, its selected ratings by time: into ``perm``, or gathered into ``out_r``/``out_t``."""
    everyone = select.shape[0] == 0
    gather = out_r.shape[0] > 0
    pos = 0
    g = 0
    for n in notes:
        a, b = note_indptr[n], note_indptr[n + 1]
        cnt = 0
        for i in range(a, b):
            if everyone or select[i]:
                cnt += 1
        if cnt == 0:
            continue
        idx = np.empty(cnt, dtype=np.int64)
        c = 0
        for i in range(a, b):
            if everyone or select[i]:
                idx[c] = i
                c += 1
        order = np.argsort(created[idx], kind="mergesort")
        for q in range(cnt):
            j = idx[order[q]]
            if gather:
                out_r[pos + q] = rater[j]
                out_t[pos + q] = created[j]
            else:
                perm[pos + q] = j
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
def drop_raters(raters, times, group_ptr, keep):
    """Remove, in place, the ratings of raters with ``keep[rater]`` false; returns the new length M'.

    ``raters`` int32[M], ``times`` int64[M] in layout order and ``group_ptr`` int64[G+1] are
    rewritten (groups and tweets stay, possibly emptied); the first M' entries are the layout of the
    kept ratings, in the same order. O(M) time, no extra memory.
    """
    w = 0
    for g in range(group_ptr.shape[0] - 1):
        a, b = group_ptr[g], group_ptr[g + 1]
        group_ptr[g] = w
        for i in range(a, b):
            if keep[raters[i]]:
                raters[w] = raters[i]
                times[w] = times[i]
                w += 1
    group_ptr[group_ptr.shape[0] - 1] = w
    return w


def drop_raters_numpy(raters, times, group_ptr, keep):
    """Twin of ``drop_raters`` returning new arrays: (raters, times, group_ptr)."""
    sel = np.asarray(keep)[raters]
    group_of = np.repeat(np.arange(group_ptr.shape[0] - 1), np.diff(group_ptr))
    sizes = np.bincount(group_of[sel], minlength=group_ptr.shape[0] - 1)
    return raters[sel], times[sel], np.r_[0, np.cumsum(sizes)].astype(np.int64)

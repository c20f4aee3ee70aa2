"""Post-selection similarity (§7.1): pair counting, NPMI math, cliques, and the rating filter."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bridgewatch.errors import ScoringError
from bridgewatch.integrity import keycount, layout, pairs
from bridgewatch.integrity.components import connected_components, connected_components_numpy
from bridgewatch.integrity.pss import (
    MINUTE_MS,
    PSSParams,
    apply_pss,
    author_rater_pairs,
    co_selection_pairs,
    min_count_to_pass,
    participant_space,
    post_selection_similarity,
)

W = 20 * MINUTE_MS


def _layout(tweet, note, rater, t):
    tweet, note, t = (np.asarray(x, dtype=np.int64) for x in (tweet, note, t))
    rater = np.asarray(rater, dtype=np.int32)
    perm, gptr, tptr = pairs.order_by_tweet(tweet, note, t)
    return rater[perm], t[perm], gptr, tptr


def _count(tweet, note, rater, t, window=W, **kw):
    r, tt, gptr, tptr = _layout(tweet, note, rater, t)
    keys, counts = pairs.count_pairs(r, tt, gptr, tptr, window, **kw)
    lo, hi = pairs.unpack_pairs(keys)
    return {(int(a), int(b)): int(c) for a, b, c in zip(lo, hi, counts, strict=True)}


def test_window_boundary_is_inclusive():
    # Raters 0,1 exactly 20 min apart co-rate; rater 2 is 1 ms too late for rater 1.
    got = _count([7, 7, 7], [1, 1, 1], [0, 1, 2], [0, W, 2 * W + 1])
    assert got == {(0, 1): 1}


def test_pair_counted_once_per_tweet_across_notes():
    # Same pair co-rates two notes of tweet 5 (once) and one note of tweet 6 (once more).
    got = _count([5, 5, 5, 5, 6, 6], [1, 1, 2, 2, 3, 3], [3, 4, 4, 3, 3, 4], [0, 10, 0, 5, 0, 1])
    assert got == {(3, 4): 2}


def test_window_is_per_note_not_per_tweet():
    # Close in time but on different notes of one tweet: not a co-rating.
    assert _count([5, 5], [1, 2], [0, 1], [0, 1]) == {}


def _random_layout(seed=3, n=3000, n_raters=120):
    rng = np.random.default_rng(seed)
    tweet = rng.integers(0, 40, n)
    note = tweet * 3 + rng.integers(0, 3, n)
    rater = rng.integers(0, n_raters, n).astype(np.int32)
    t = rng.integers(0, 6 * 3600_000, n)
    return _layout(tweet, note, rater, t)


def test_numba_emitter_agrees_with_numpy_twin_and_partitioning_is_exact():
    r, tt, gptr, tptr = _random_layout()
    twin_keys, twin_counts = keycount.run_length_numpy(pairs.emit_pairs_numpy(r, tt, gptr, tptr, W))
    for memory, threads, bits in ((1 << 30, 1, 22), (1, 1, 22), (1, 2, 22), (50_000, 2, 22), (1 << 30, 1, 3)):
        keys, counts = pairs.count_pairs(
            r, tt, gptr, tptr, W, memory_bytes=memory, num_threads=threads, dedupe_table_bits=bits
        )
        np.testing.assert_array_equal(keys, twin_keys)
        np.testing.assert_array_equal(counts, twin_counts)
    for memory, threads in ((1 << 30, 1), (1, 1), (1, 2), (1, 3), (20_000, 2)):
        # small budgets switch to the pre-filter; its tiny tables are saturated but stay exact
        keys, counts = pairs.count_pairs(
            r, tt, gptr, tptr, W, min_count=3, memory_bytes=memory, num_threads=threads
        )
        np.testing.assert_array_equal(keys, twin_keys[twin_counts >= 3])
        np.testing.assert_array_equal(counts, twin_counts[twin_counts >= 3])


def test_tiny_budget_forces_many_partitions_and_splits_but_counts_stay_exact():
    # Bug: the pair counter held every surviving key of a thread in memory (2 partitions at 190M
    # ratings, OOM at 24 GB). Now a budget sets the partitions and an overflowing one is split.
    r, tt, gptr, tptr = _random_layout(seed=5, n=6000, n_raters=60)
    want = pairs.count_pairs(r, tt, gptr, tptr, W)
    said: list[str] = []
    for min_count in (1, 4):
        got = pairs.count_pairs(
            r, tt, gptr, tptr, W, min_count=min_count, memory_bytes=1, progress=said.append
        )
        keep = want[1] >= min_count
        assert got[0].tobytes() == want[0][keep].tobytes() and got[1].tobytes() == want[1][keep].tobytes()
    parts = [int(m.split(" in ")[1].split(" partition")[0]) for m in said if "partition(s)" in m]
    assert parts[0] >= 16  # 64-key buffers: the emitted keys need many partitions
    assert any("pre-filter" in m for m in said)
    split = pairs._Counter(r, tt, gptr, tptr, W, 1, 22)
    assert len(split.count(0, 0, 64)) > 1  # one partition of 64 keys overflows and is split


def test_drop_raters_in_place_matches_numpy_twin():
    r, tt, gptr, _ = _random_layout(seed=6)
    keep = np.random.default_rng(6).random(120) < 0.6
    want = layout.drop_raters_numpy(r, tt, gptr, keep)
    r2, t2, g2 = r.copy(), tt.copy(), gptr.copy()
    m = layout.drop_raters(r2, t2, g2, keep)
    np.testing.assert_array_equal(r2[:m], want[0])
    np.testing.assert_array_equal(t2[:m], want[1])
    np.testing.assert_array_equal(g2, want[2])


def test_fast_note_layout_matches_lexsort_layout():
    rng = np.random.default_rng(4)
    n_notes, n = 50, 2000
    note = np.sort(rng.integers(0, n_notes, n))
    note_tweet = rng.integers(-1, 12, n_notes)
    t = rng.integers(0, 10**6, n)
    indptr = np.r_[0, np.cumsum(np.bincount(note, minlength=n_notes))]
    sel = rng.random(n) < 0.8
    perm, gptr, tptr = pairs.order_notes_by_tweet(indptr, note_tweet, t, sel)
    sel2 = sel & (note_tweet[note] != -1)
    perm2, gptr2, tptr2 = pairs.order_by_tweet(note_tweet[note], note, t, sel2)
    np.testing.assert_array_equal(perm, perm2)
    np.testing.assert_array_equal(gptr, gptr2)
    np.testing.assert_array_equal(tptr, tptr2)
    rater = rng.integers(0, 99, n).astype(np.int32)
    r3, t3, gptr3, tptr3 = pairs.gather_notes_by_tweet(indptr, note_tweet, t, rater)
    perm4, gptr4, tptr4 = pairs.order_notes_by_tweet(indptr, note_tweet, t, None)
    np.testing.assert_array_equal(r3, rater[perm4])
    np.testing.assert_array_equal(t3, t[perm4])
    np.testing.assert_array_equal(gptr3, gptr4)
    np.testing.assert_array_equal(tptr3, tptr4)
    np.testing.assert_array_equal(
        perm4, pairs.order_by_tweet(note_tweet[note], note, t, note_tweet[note] != -1)[0]
    )


def test_npmi_and_minsim_on_hand_computed_example():
    # 30 tweets. Raters 0 and 1 rate tweets 0..11 together (12 co-ratings, totals 12 each);
    # raters 2..5 rate tweets 12..29 spaced an hour apart (no co-ratings).
    tweet, rater, t = [], [], []
    for k in range(12):
        tweet += [k, k]
        rater += [0, 1]
        t += [0, 60_000]
    for k in range(12, 30):
        for j, r in enumerate((2, 3, 4, 5)):
            tweet.append(k)
            rater.append(r)
            t.append(j * 3_600_000)
    tweet = np.array(tweet, dtype=np.int64)
    note = tweet.copy()  # one note per tweet
    order = np.argsort(note, kind="stable")
    note, rater, t = note[order], np.array(rater, dtype=np.int32)[order], np.array(t)[order]
    indptr = np.r_[0, np.cumsum(np.bincount(note, minlength=30))]
    out = co_selection_pairs(indptr, rater, t, np.arange(30), 6)
    n = 12 * 2 + 18 * 4
    assert int(out["N"]) == n
    assert list(out["raterA"]) == [0] and list(out["raterB"]) == [1]
    pmi = math.log(12 * n / (512 * 512))
    npmi = pmi / -math.log(12 / n)
    assert out["smoothedNpmi"][0] == pytest.approx(npmi, rel=1e-12)
    assert out["minSim"][0] == pytest.approx(12 / 22)  # passes by minSim (NPMI is negative here)
    assert npmi < 0.55


def test_min_count_to_pass_is_a_true_lower_bound():
    p = PSSParams()
    for n in (100, 10_000, 10**8):
        c = min_count_to_pass(n, p)
        for cc in range(1, c):
            npmi = math.log(cc * n / (510 * 510)) / -math.log(cc / n) if cc < n else math.inf
            assert npmi < p.npmi_threshold and cc / 20 < p.min_sim_threshold


def test_union_find_ids_are_deterministic_and_match_twin():
    lo = np.array([5, 1, 8, 2, 9], dtype=np.int32)
    hi = np.array([6, 2, 9, 3, 10], dtype=np.int32)
    want = np.array([0, 1, 1, 1, 0, 2, 2, 0, 3, 3, 3, 0], dtype=np.int32)
    rng = np.random.default_rng(0)
    for _ in range(5):
        o = rng.permutation(5)
        np.testing.assert_array_equal(connected_components(lo[o], hi[o], 12), want)
        np.testing.assert_array_equal(connected_components_numpy(lo[o], hi[o], 12), want)
    with pytest.raises(ScoringError):
        connected_components(np.array([0]), np.array([12]), 12)


def test_union_find_twin_on_random_graphs():
    rng = np.random.default_rng(1)
    for _ in range(5):
        lo, hi = rng.integers(0, 300, 200), rng.integers(0, 300, 200)
        np.testing.assert_array_equal(
            connected_components(lo, hi, 300), connected_components_numpy(lo, hi, 300)
        )


def test_author_rater_window_thresholds():
    # Author 0 writes 10 notes at t=0. Rater 1 rates 2 of them helpful within 1 minute:
    # writerCoverage1m = 0.2 -> suspect. Rater 2 rates 3 of them within 2-4 min: coverage5m 0.3
    # -> suspect. Rater 3 rates 3 within 10 min (coverage20m 0.3 < 0.4) -> not suspect.
    note_author = np.zeros(10, dtype=np.int32)
    note_created = np.zeros(10, dtype=np.int64)
    rn = [0, 1, 0, 1, 2, 0, 1, 2]
    rr = [1, 1, 2, 2, 2, 3, 3, 3]
    rt = [MINUTE_MS] * 2 + [3 * MINUTE_MS] * 3 + [10 * MINUTE_MS] * 3
    lo, hi = author_rater_pairs(
        note_author, note_created, np.array(rn), np.array(rr), np.array(rt), np.ones(8, dtype=bool), 4
    )
    assert list(zip(lo.tolist(), hi.tolist(), strict=True)) == [(0, 1), (0, 2)]


def _ring_world(seed=0, n_honest=200, n_ring=6, n_tweets=400):
    """Honest raters rate random tweets at random times; a ring co-rates 30 tweets within minutes."""
    rng = np.random.default_rng(seed)
    rows = []  # (note, rater, time)
    note_time = rng.integers(0, 90 * 86_400_000, n_tweets)
    for n in range(n_tweets):
        for r in rng.choice(n_honest, 12, replace=False):
            rows.append((n, int(r), int(note_time[n] + rng.integers(0, 3 * 86_400_000))))
    ring = np.arange(n_honest, n_honest + n_ring)
    for n in rng.choice(n_tweets, 30, replace=False):
        for r in ring:
            rows.append((int(n), int(r), int(note_time[n] + 3_600_000 + rng.integers(0, 5 * MINUTE_MS))))
    rows.sort()
    a = np.array(rows, dtype=np.int64)
    return a[:, 0], a[:, 1].astype(np.int32), a[:, 2], note_time, ring, n_honest + n_ring


def test_planted_timing_ring_is_found_and_honest_raters_are_not():
    note, rater, t, note_time, ring, n_part = _ring_world()
    n_notes = note_time.shape[0]
    indptr = np.r_[0, np.cumsum(np.bincount(note, minlength=n_notes))]
    clique = post_selection_similarity(
        indptr,
        rater,
        t,
        np.zeros(rater.shape[0], dtype=bool),
        np.zeros(n_notes, dtype=np.int32),
        note_time,
        np.arange(n_notes),
        n_part,
    )
    assert np.all(clique[ring] == 1)
    assert np.count_nonzero(clique) == ring.shape[0]


def test_planted_author_ring_is_found():
    # Author 300 writes 20 notes; raters 301, 302 rate 12 of them helpful within 30 s.
    rng = np.random.default_rng(2)
    note_author = np.full(20, 300, dtype=np.int32)
    note_created = rng.integers(0, 10**9, 20)
    rn, rr, rt = [], [], []
    for n in range(12):
        for r in (301, 302):
            rn.append(n)
            rr.append(r)
            rt.append(note_created[n] + 30_000)
    for n in range(20):  # honest raters, late
        for r in rng.choice(300, 5, replace=False):
            rn.append(n)
            rr.append(int(r))
            rt.append(note_created[n] + 86_400_000)
    lo, hi = author_rater_pairs(
        note_author, note_created, np.array(rn), np.array(rr), np.array(rt), np.ones(len(rn), dtype=bool), 303
    )
    clique = connected_components(lo, hi, 303)
    assert clique[300] == clique[301] == clique[302] == 1
    assert np.count_nonzero(clique) == 3


def test_apply_pss_keeps_earliest_per_note_and_clique_and_drops_same_clique_authors():
    clique = np.array([0, 1, 1, 1, 2, 0], dtype=np.int32)  # participants 0..5
    note_author = np.array([5, 3], dtype=np.int32)  # note 1 written by clique-1 member 3
    rn = np.array([0, 0, 0, 0, 0, 1, 1, 1])
    rr = np.array([1, 2, 4, 0, 3, 1, 4, 0])
    rt = np.array([30, 10, 5, 1, 10, 1, 2, 3])
    keep = apply_pss(rn, rr, rt, note_author, clique, n_notes=500)
    # note 0: clique 1 raters 1(t30), 2(t10), 3(t10) -> keep rater 2 (earliest, first in input on tie)
    assert keep.tolist() == [False, True, True, True, False, False, True, True]
    assert apply_pss(rn, rr, rt, note_author, clique, n_notes=199).all()


def test_participant_space_puts_raters_first():
    ids, author_index = participant_space(np.array(["a", "c"], dtype=object), np.array(["c", "b", "z", "b"]))
    assert ids.tolist() == ["a", "c", "b", "z"]
    assert author_index.tolist() == [1, 2, 3, 2] and author_index.dtype == np.int32


@pytest.mark.parametrize("seed", range(3))
def test_participant_space_is_the_string_form(seed: int):
    """The hash-index form gives the ids and indices of the numpy-string form it replaced."""
    rng = np.random.default_rng(seed)
    raters = np.array(sorted({f"{rng.integers(0, 10**6):064X}" for _ in range(200)}), dtype=object)
    pool = np.concatenate([raters, np.array(["zz", "0", "0", "nan", "mid"], dtype=object)])
    authors = pool[rng.integers(0, pool.shape[0], 500)]
    ids, author_index = participant_space(raters, authors)
    uniq = np.unique(authors.astype(str)).astype(object)
    want = np.concatenate([raters, uniq[~np.isin(uniq, raters)]])
    assert ids.tolist() == want.tolist()
    assert ids[author_index].tolist() == authors.tolist()
    missing = participant_space(raters, np.array([raters[3], np.nan], dtype=object))
    assert missing[0][-1] == "nan" and missing[1].tolist() == [3, raters.shape[0]]


def test_radix_sort_and_run_length_agree_with_numpy():
    rng = np.random.default_rng(7)
    for id_bits in (1, 5, 11, 12, 23, 31):
        lo = rng.integers(0, 2**id_bits, 5000)
        hi = rng.integers(0, 2**id_bits, 5000)
        keys = pairs.pack_pairs(lo, hi)
        want = np.sort(keys)
        np.testing.assert_array_equal(keycount.radix_sort_keys(keys, np.empty(6000, np.int64), id_bits), want)
        np.testing.assert_array_equal(keys, want)  # sorted in place
    keys = np.sort(rng.integers(0, 50, 2000).astype(np.int64))
    k1, c1 = keycount.run_length_numpy(keys)
    for m in (1, 30, 45):
        k2, c2 = keycount.run_length_counts(keys, m)
        np.testing.assert_array_equal(k2, k1[c1 >= m])
        np.testing.assert_array_equal(c2, c1[c1 >= m])


def test_distinct_per_tweet_and_window_bounds_agree_with_numpy():
    rng = np.random.default_rng(8)
    n = 2000
    tweet = rng.integers(0, 30, n)
    note = tweet * 2 + rng.integers(0, 2, n)
    rater = rng.integers(0, 90, n).astype(np.int32)
    t = rng.integers(0, 3 * 3600_000, n)
    r, tt, gptr, tptr = _layout(tweet, note, rater, t)
    totals, n_pairs = pairs.distinct_per_tweet(r, gptr, tptr, 90)
    uniq = np.unique(np.c_[tweet, rater], axis=0)
    assert n_pairs == uniq.shape[0]
    np.testing.assert_array_equal(totals, np.bincount(uniq[:, 1], minlength=90))
    bounds = pairs.window_pair_bounds(tt, gptr, tptr, W)
    note_sorted = note[pairs.order_by_tweet(tweet, note, t)[0]]
    for k in range(tptr.shape[0] - 1):
        a, b = gptr[tptr[k]], gptr[tptr[k + 1]]
        same = note_sorted[a:b, None] == note_sorted[None, a:b]
        close = np.abs(tt[a:b, None] - tt[None, a:b]) <= W
        assert bounds[k] == np.triu(same & close, 1).sum()


def test_pss_rerun_is_byte_identical():
    note, rater, t, note_time, _, n_part = _ring_world(seed=4)
    n_notes = note_time.shape[0]
    indptr = np.r_[0, np.cumsum(np.bincount(note, minlength=n_notes))]
    args = (
        indptr,
        rater,
        t,
        np.ones(rater.shape[0], dtype=bool),
        np.zeros(n_notes, dtype=np.int32),
        note_time,
        np.arange(n_notes),
        n_part,
    )
    a = post_selection_similarity(*args)
    b = post_selection_similarity(*args, memory_bytes=1, num_threads=2)
    assert a.tobytes() == b.tobytes()


def test_candidate_pairs_are_counted_exactly_and_alone():
    r, tt, gptr, tptr = _random_layout(seed=7)
    keys, counts = pairs.count_pairs(r, tt, gptr, tptr, W)
    rng = np.random.default_rng(0)
    picked = np.sort(rng.choice(keys, keys.shape[0] // 3, replace=False))
    absent = pairs.pack_pairs(np.array([500, 501]), np.array([502, 503]))  # never co-occur
    cand = np.union1d(picked, absent)
    want = np.isin(keys, picked)
    for memory, threads, min_count in ((1 << 30, 1, 1), (1 << 30, 2, 1), (1, 2, 1), (20_000, 3, 2)):
        got_k, got_c = pairs.count_pairs(
            r,
            tt,
            gptr,
            tptr,
            W,
            memory_bytes=memory,
            num_threads=threads,
            candidates=cand,
            min_count=min_count,
        )
        keep = want & (counts >= min_count)
        np.testing.assert_array_equal(got_k, keys[keep])
        np.testing.assert_array_equal(got_c, counts[keep])
    none_k, none_c = pairs.count_pairs(r, tt, gptr, tptr, W, candidates=np.zeros(0, dtype=np.int64))
    assert none_k.shape == (0,) and none_c.shape == (0,)


def test_pss_reads_the_callers_rating_notes_as_it_would_make_them():
    note, rater, t, note_time, _, n_part = _ring_world(seed=5)
    order = np.argsort(note, kind="stable")  # note order, as a matrix lists its ratings
    note, rater, t = note[order], rater[order], t[order]
    n_notes = note_time.shape[0]
    indptr = np.r_[0, np.cumsum(np.bincount(note, minlength=n_notes))]
    author = (np.arange(n_notes) % n_part).astype(np.int32)  # authors, so the fast-helpful pairs count
    args = (
        indptr,
        rater,
        t,
        np.ones(rater.shape[0], dtype=bool),
        author,
        note_time,
        np.arange(n_notes),
        n_part,
    )
    made = post_selection_similarity(*args)
    given = post_selection_similarity(*args, rating_note=note.astype(np.int32))
    assert made.tobytes() == given.tobytes() and made.any()
    with pytest.raises(ValueError, match="rating_note has"):
        post_selection_similarity(*args, rating_note=note[:-1].astype(np.int32))

"""Similarity, opinion groups, diversity and polarization on planted two-camp data."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridgewatch.integrity.polarization import note_rater_diversity, rater_polarization
from bridgewatch.integrity.similarity import (
    kmeans,
    note_sample_cap,
    opinion_groups,
    rating_embedding,
    sample_raters_per_note,
    top_k_similar,
)

N_CAMP, N_CENTRIST = 30, 4


def _two_camps(seed=0):
    """Raters 0..29 camp A (factor > 0), 30..59 camp B (< 0), 60..63 centrists who always say
    'somewhat'. Notes 0..39 favour A, 40..79 favour B, 80..99 bridge (both sides find helpful)."""
    rng = np.random.default_rng(seed)
    n_raters = 2 * N_CAMP + N_CENTRIST
    camp = np.r_[np.ones(N_CAMP), -np.ones(N_CAMP), np.zeros(N_CENTRIST)]
    factor = camp * rng.uniform(0.5, 1.5, n_raters)
    factor[2 * N_CAMP :] = rng.choice([-0.05, 0.05], N_CENTRIST)
    lean = np.r_[np.ones(40), -np.ones(40), np.zeros(20)]
    note, rater, value = [], [], []
    for n in range(100):
        for u in range(n_raters):
            if rng.random() > 0.6:
                continue
            if camp[u] == 0:
                v = 0.5
            elif lean[n] == 0:
                v = 1.0
            else:
                v = 1.0 if lean[n] == camp[u] else 0.0
            if camp[u] != 0 and rng.random() < 0.1:
                v = 1.0 - v
            note.append(n)
            rater.append(u)
            value.append(v)
    return np.array(note), np.array(rater), np.array(value), factor, camp, n_raters


def test_top_k_neighbours_come_from_own_camp():
    note, rater, value, _, camp, n_raters = _two_camps()
    top = top_k_similar(note, rater, value, n_raters, k=5)
    camp_rows = top[top.rater < 2 * N_CAMP]
    same = camp[camp_rows.rater.to_numpy()] == camp[camp_rows.neighbor.to_numpy()]
    assert same.mean() > 0.95
    assert top.groupby("rater").size().max() == 5
    assert (top["rank"].to_numpy() >= 1).all() and (top.similarity <= 1).all()
    # ranks are ordered by similarity within each rater
    for _, g in top.groupby("rater"):
        assert np.all(np.diff(g.similarity.to_numpy()) <= 0)


def test_top_k_counts_match_brute_force():
    note, rater, value, _, _, n_raters = _two_camps(seed=1)
    top = top_k_similar(note, rater, value, n_raters, k=3, shrinkage=0.0, min_co_rated=1)
    v = np.full((n_raters, 100), np.nan)
    v[rater, note] = value
    for row in top.head(20).itertuples():
        both = ~np.isnan(v[row.rater]) & ~np.isnan(v[row.neighbor])
        assert row.coRated == both.sum()
        assert row.agreed == (v[row.rater][both] == v[row.neighbor][both]).sum()


def test_top_k_pair_work_is_capped_by_a_consistent_rater_sample():
    # Unbounded before: every note up to 200 raters paired all of them (Σ n² at 206M ratings).
    note, rater, value, _, _, n_raters = _two_camps(seed=2)
    sizes = np.bincount(note)
    m = note_sample_cap(sizes, 200, max_pairs=3_000)
    k = np.minimum(sizes, m)
    assert (
        (k * (k - 1) // 2).sum()
        <= 3_000
        < (np.minimum(sizes, m + 1) * (np.minimum(sizes, m + 1) - 1) // 2).sum()
    )
    keep = sample_raters_per_note(note, rater, m)
    assert (np.bincount(note[keep], minlength=sizes.size) == k).all()
    # the same raters are kept on every note where any are dropped: one priority per rater
    kept_somewhere = np.zeros(n_raters, bool)
    kept_somewhere[rater[keep]] = True
    dropped_somewhere = np.zeros(n_raters, bool)
    dropped_somewhere[rater[~keep]] = True
    assert kept_somewhere.sum() < n_raters and (kept_somewhere & ~dropped_somewhere).sum() >= m
    top = top_k_similar(note, rater, value, n_raters, k=3, shrinkage=0.0, min_co_rated=1, max_pairs=3_000)
    assert set(top.rater) <= set(rater[keep]) and set(top.neighbor) <= set(rater[keep])
    v = np.full((n_raters, 100), np.nan)
    v[rater[keep], note[keep]] = value[keep]
    for row in top.head(20).itertuples():  # counts are exact over the kept ratings
        both = ~np.isnan(v[row.rater]) & ~np.isnan(v[row.neighbor])
        assert row.coRated == both.sum()
    assert note_sample_cap(sizes, 200, max_pairs=10**9) == sizes.max()


def test_opinion_groups_recover_camps_deterministically():
    note, rater, value, _, _, n_raters = _two_camps()
    g = opinion_groups(note, rater, value, 100, n_raters, n_groups=2, seed=3)
    labels = g.group.to_numpy()[: 2 * N_CAMP]
    a, b = labels[:N_CAMP], labels[N_CAMP:]
    assert len(set(a)) == 1 and len(set(b)) == 1 and a[0] != b[0]
    again = opinion_groups(note, rater, value, 100, n_raters, n_groups=2, seed=3)
    assert g.equals(again)
    emb = rating_embedding(note, rater, value, 100, n_raters)
    assert np.sign(emb[:N_CAMP, 0]).tolist().count(np.sign(emb[0, 0])) == N_CAMP


def test_opinion_groups_leave_sparse_raters_unplaced():
    note, rater, value, _, _, n_raters = _two_camps()
    keep = ~((rater == 5) & (note > 2))  # rater 5 keeps at most 3 ratings
    g = opinion_groups(note[keep], rater[keep], value[keep], 100, n_raters, min_ratings=5)
    assert g.group[5] == -1 and np.isnan(g.x[5])


def test_kmeans_labels_ordered_by_size():
    pts = np.r_[np.zeros((5, 2)), np.ones((9, 2)) * 10]
    assert kmeans(pts, 2, seed=1).tolist() == [1] * 5 + [0] * 9


def test_diversity_separates_bridging_from_partisan_notes():
    note, rater, value, factor, _, _ = _two_camps()
    d = note_rater_diversity(note, rater, value, factor, 100)
    bridging, partisan = d.iloc[80:], d.iloc[:80]
    assert bridging.sideBalance.mean() > 0.7 and partisan.sideBalance.mean() < 0.25
    assert bridging.factorStd.mean() > 1.4 * partisan.factorStd.mean()  # 10% noise widens partisan notes
    assert (d.helpfulPositive + d.helpfulNegative == d.helpfulRaters).all()  # no zero factors here
    f = factor.copy()
    f[0] = np.nan
    d2 = note_rater_diversity(note, rater, value, f, 100)
    assert d2.helpfulRaters.sum() == d.helpfulRaters.sum() - ((rater == 0) & (value == 1.0)).sum()


def test_polarization_high_for_camps_near_zero_for_centrists():
    note, rater, value, factor, _, _ = _two_camps()
    p = rater_polarization(note, rater, value, factor, 100)
    camps = p.iloc[: 2 * N_CAMP]
    centrists = p.iloc[2 * N_CAMP :]
    assert camps.polarization.min() > 0.3
    assert centrists.polarization.abs().max() < 0.1
    assert np.allclose(p.weightedPolarization, np.abs(factor) * p.polarization)


def test_embedding_of_unanimous_ratings_is_zero_not_an_arpack_error():
    note = np.repeat(np.arange(6), 4)
    rater = np.tile(np.arange(4), 6)
    emb = rating_embedding(note, rater, np.ones(24), 6, 4)
    assert emb.shape == (4, 2) and not emb.any()
    g = opinion_groups(note, rater, np.ones(24), 6, 4, n_groups=2)
    assert (g.group >= 0).all()


def test_top_k_same_on_any_thread_count():
    rng = np.random.default_rng(4)
    n = 30_000
    note, rater = rng.integers(0, 300, n), rng.integers(0, 800, n)
    key = np.unique(note * 1000 + rater)
    note, rater = key // 1000, key % 1000
    value = rng.choice([0.0, 0.5, 1.0], note.shape[0])
    one = top_k_similar(note, rater, value, 1000, max_raters_per_note=40)
    for threads in (2, 3):
        again = top_k_similar(note, rater, value, 1000, max_raters_per_note=40, num_threads=threads)
        pd.testing.assert_frame_equal(one, again)


def _polarization_numpy(note, rater, r, factor, n_notes, min_side_raters=2):
    """The bincount formulation the numba kernel replaced: (sidedNotes, own, other agreement)."""
    f = factor[rater]
    side = np.sign(np.nan_to_num(f))
    sums, cnts = {}, {}
    for s in (1.0, -1.0):
        w = side == s
        sums[s] = np.bincount(note, weights=r * w, minlength=n_notes)
        cnts[s] = np.bincount(note, weights=w, minlength=n_notes)
    sided = side != 0
    own_s = np.where(side > 0, sums[1.0][note], sums[-1.0][note]) - r * sided
    own_c = np.where(side > 0, cnts[1.0][note], cnts[-1.0][note]) - sided
    oth_s = np.where(side > 0, sums[-1.0][note], sums[1.0][note])
    oth_c = np.where(side > 0, cnts[-1.0][note], cnts[1.0][note])
    use = sided & (own_c >= min_side_raters) & (oth_c >= min_side_raters)
    with np.errstate(invalid="ignore", divide="ignore"):
        own = 1 - np.abs(r - own_s / own_c)
        oth = 1 - np.abs(r - oth_s / oth_c)
        k = np.bincount(rater[use], minlength=factor.shape[0])
        own_a = np.bincount(rater[use], weights=own[use], minlength=factor.shape[0]) / k
        oth_a = np.bincount(rater[use], weights=oth[use], minlength=factor.shape[0]) / k
    return k, own_a, oth_a


def test_polarization_kernel_matches_bincount_formulation_bit_for_bit():
    rng = np.random.default_rng(9)
    n = 50_000
    note = rng.integers(0, 400, n).astype(np.int32)
    rater = rng.integers(0, 2_000, n).astype(np.int32)
    r = rng.choice([0.0, 0.5, 1.0], n)
    factor = rng.normal(size=2_000)
    factor[rng.random(2_000) < 0.2] = np.nan
    factor[:5] = 0.0
    factor[5:7] = (np.inf, -np.inf)
    got = rater_polarization(note, rater, r, factor, 400, min_side_raters=3)
    k, own, oth = _polarization_numpy(note.astype(np.int64), rater.astype(np.int64), r, factor, 400, 3)
    assert np.array_equal(got["sidedNotes"].to_numpy(), k)
    assert got["ownAgreement"].to_numpy().tobytes() == own.tobytes()
    assert got["otherAgreement"].to_numpy().tobytes() == oth.tobytes()
    assert np.isnan(own).sum() > 0 and (k > 0).sum() > 1000


def test_rater_rows_is_scipys_csr_and_embedding_unchanged():
    import scipy.sparse as sp

    from bridgewatch.integrity.similarity import rater_rows

    rng = np.random.default_rng(2)
    key = np.unique(rng.integers(0, 300, 20_000) * 1000 + rng.integers(0, 900, 20_000))
    note, rater = key // 1000, key % 1000  # note-major, as RatingMatrix
    x = rng.normal(size=note.shape[0])
    shuffled = rng.permutation(note.shape[0])
    repeat = np.r_[np.arange(note.shape[0]), 5]
    for n, r, v in (
        (note, rater, x),
        (note[shuffled], rater[shuffled], x[shuffled]),
        (note[repeat], rater[repeat], x[repeat]),
    ):
        want = sp.csr_matrix((v, (r, n)), shape=(1000, 300))
        got = rater_rows(r, n, v, 1000, 300)
        for part in ("indptr", "indices", "data"):
            assert np.array_equal(getattr(got, part), getattr(want, part)), part
    value = rng.choice([0.0, 0.5, 1.0], note.shape[0])
    a = opinion_groups(note, rater, value, 300, 1000)
    b = opinion_groups(note[shuffled], rater[shuffled], value[shuffled], 300, 1000)
    assert np.isfinite(a["x"]).sum() > 500
    pd.testing.assert_frame_equal(a, opinion_groups(note, rater, value, 300, 1000))
    assert np.allclose(a["x"].abs().to_numpy(), b["x"].abs().to_numpy(), equal_nan=True, atol=1e-6)


def _lexsort_top_k(frame_pairs: pd.DataFrame, k: int) -> pd.DataFrame:
    """The top-k rows as a global (rater, −similarity, neighbor) sort gives them: the reference
    ``top_k_similar``'s streaming selection must reproduce row for row."""
    flipped = frame_pairs.rename(columns={"rater": "neighbor", "neighbor": "rater"})
    both = pd.concat([frame_pairs, flipped], ignore_index=True)
    both = both.assign(neg=-both.similarity).sort_values(["rater", "neg", "neighbor"], kind="stable")
    both["rank"] = both.groupby("rater").cumcount() + 1
    both = both[both["rank"] <= k]
    return both[["rater", "neighbor", "rank", "coRated", "agreed", "similarity"]].reset_index(drop=True)


def test_top_k_streaming_selection_matches_a_global_sort_and_the_generic_layout():
    rng = np.random.default_rng(5)
    key = np.unique(rng.integers(0, 150, 20_000) * 100_000 + rng.integers(0, 400, 20_000))
    note, rater = (key // 100_000).astype(np.int32), (key % 100_000).astype(np.int32)  # matrix order
    value = rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), note.shape[0])
    for cap, k in ((200, 4), (25, 7)):
        got = top_k_similar(note, rater, value, 400, k=k, max_raters_per_note=cap, memory_bytes=1 << 14)
        every = top_k_similar(note, rater, value, 400, k=400, max_raters_per_note=cap)  # every pair
        pairs = every[every.rater < every.neighbor].drop(columns="rank")
        want = _lexsort_top_k(pairs, k)
        for col in want:
            assert np.array_equal(got[col].to_numpy(), want[col].to_numpy().astype(got[col].dtype)), col
        shuffled = rng.permutation(note.shape[0])  # not note-sorted: the generic sort-based layout
        other = top_k_similar(
            note[shuffled], rater[shuffled], value[shuffled], 400, k=k, max_raters_per_note=cap
        )
        if cap >= 200:  # no sampling: the layouts may order ties differently only when sampling
            pd.testing.assert_frame_equal(got, other)

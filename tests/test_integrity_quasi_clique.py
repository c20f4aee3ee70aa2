"""Quasi-clique detection (§7.2) on planted dense blocks."""

from __future__ import annotations

import numpy as np

from bridgewatch.integrity.quasi_clique import QuasiCliqueParams, correlated_rater, quasi_cliques

DAY = 86_400_000


def _world(
    seed=0, n_honest=300, block=(300, 301, 302, 303, 304, 305, 306, 307), n_tweets=200, block_tweets=60
):
    """One misleading note per tweet. Honest raters give random values to ~30 notes; the block
    rates ``block_tweets`` notes all HELPFUL."""
    rng = np.random.default_rng(seed)
    note, rater, value = [], [], []
    for r in range(n_honest):
        for n in rng.choice(n_tweets, 30, replace=False):
            note.append(int(n))
            rater.append(r)
            value.append(rng.choice([0.0, 0.5, 1.0]))
    targets = rng.choice(n_tweets, block_tweets, replace=False)
    for r in block:
        for n in targets:
            note.append(int(n))
            rater.append(r)
            value.append(1.0)
    note_created = np.full(n_tweets, 50 * DAY, dtype=np.int64)
    return (
        np.array(note),
        np.array(rater),
        np.array(value),
        np.arange(n_tweets, dtype=np.int64),
        note_created,
        np.ones(n_tweets, dtype=bool),
        n_honest + len(block),
    )


def test_planted_dense_block_is_found_exactly():
    note, rater, value, tweet, created, misleading, n = _world()
    qc, cliques = quasi_cliques(note, rater, value, tweet, created, misleading, n)
    assert len(cliques) == 1
    assert cliques[0]["raters"].tolist() == list(range(300, 308))
    assert cliques[0]["tweets"].shape[0] == 60
    assert np.all(qc[300:308] == 1) and np.all(qc[:300] == 0)
    flags = correlated_rater(rater, qc)
    assert flags.sum() == 8 * 60 and np.all(flags == (rater >= 300))


def test_scope_excludes_old_not_misleading_and_tweetless_notes():
    note, rater, value, tweet, created, misleading, n = _world()
    for mask_fn in (
        lambda c, m, t: (c.__setitem__(slice(None), 0), c.__setitem__(0, 200 * DAY)),  # all too old
        lambda c, m, t: m.__setitem__(slice(None), False),
        lambda c, m, t: t.__setitem__(slice(None), -1),
    ):
        c, m, t = created.copy(), misleading.copy(), tweet.copy()
        mask_fn(c, m, t)
        qc, cliques = quasi_cliques(note, rater, value, t, c, m, n)
        assert cliques == [] and not qc.any()


def test_block_too_small_or_too_sparse_is_not_a_clique():
    # 4 raters: below min_clique_raters = 5.
    note, rater, value, tweet, created, misleading, n = _world(block=(300, 301, 302, 303))
    assert quasi_cliques(note, rater, value, tweet, created, misleading, n)[1] == []
    # 8 raters on 50 tweets: seeds need more than 50 collisions.
    note, rater, value, tweet, created, misleading, n = _world(block_tweets=50)
    assert quasi_cliques(note, rater, value, tweet, created, misleading, n)[1] == []
    p = QuasiCliqueParams(min_rater_pair_count=40)
    assert len(quasi_cliques(note, rater, value, tweet, created, misleading, n, p)[1]) == 1


def test_deterministic_rerun():
    args = _world(seed=5)
    a, ca = quasi_cliques(*args)
    b, cb = quasi_cliques(*args)
    assert a.tobytes() == b.tobytes()
    assert [c["raters"].tolist() for c in ca] == [c["raters"].tolist() for c in cb]

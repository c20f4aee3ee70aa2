"""Which notes incremental final scoring rescores (§6.7), and how it merges with the last run."""

from __future__ import annotations

import numpy as np
import pandas as pd

from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.scoring import rescore as RS
from bridgewatch.scoring.note_space import reuse_on_notes
from bridgewatch.scoring.rescore import merge_rows, note_fingerprints, notes_to_rescore, raters_changed

DAY = 86_400_000
NOW = 1_795_305_600_000


def matrix(note_ids, rater_ids, note, rater, value):
    r = len(note)
    return build_rating_matrix(
        note=np.asarray(note), rater=np.asarray(rater), value=np.asarray(value, dtype=np.float32),
        created_at=NOW - DAY + np.arange(r), tags=np.zeros(r, np.uint32),
        population_sampled=np.zeros(r, bool), note_ids=np.asarray(note_ids, dtype=np.int64),
        rater_ids=np.asarray(rater_ids, dtype=object),
    )  # fmt: skip


def frames(note_ids):
    notes = pd.DataFrame({"noteId": note_ids, "classification": "MISINFORMED_OR_POTENTIALLY_MISLEADING"})
    return notes, pd.DataFrame({"noteId": pd.Series([], dtype="int64")})


def test_fingerprints_follow_ids_not_dense_indices() -> None:
    a = matrix([10, 20], ["u1", "u2"], [0, 0, 1], [0, 1, 1], [1.0, 0.0, 0.5])
    # A new rater "u0" shifts every dense rater index; a new rating lands on note 20 only.
    b = matrix([10, 20], ["u0", "u1", "u2"], [0, 0, 1, 1], [1, 2, 2, 0], [1.0, 0.0, 0.5, 1.0])
    fa = note_fingerprints(a, *frames([10, 20]), None)
    fb = note_fingerprints(b, *frames([10, 20]), None)
    assert fa["ratingsHash"][0] == fb["ratingsHash"][0]
    assert fa["ratingsHash"][1] != fb["ratingsHash"][1]
    changed = frames([10, 20])[0].assign(
        classification=["NOT_MISLEADING", "MISINFORMED_OR_POTENTIALLY_MISLEADING"]
    )
    fc = note_fingerprints(a, changed, frames([10, 20])[1], None)
    assert list(fc["noteRowHash"] != fa["noteRowHash"]) == [True, False]


def test_notes_to_rescore_new_ratings_new_notes_changed_raters_and_clock() -> None:
    old = matrix([10, 20, 30], ["u1", "u2"], [0, 1, 2], [0, 1, 1], [1.0, 1.0, 0.0])
    new = matrix([10, 20, 30, 40], ["u1", "u2"], [0, 1, 2, 3], [0, 1, 1, 0], [1.0, 1.0, 0.0, 1.0])
    prev = note_fingerprints(old, *frames([10, 20, 30]), None)
    cur = note_fingerprints(new, *frames([10, 20, 30, 40]), None)
    created = np.full(4, NOW - 100.0 * DAY)
    timer = np.full(4, np.nan)
    kw = {"epoch_millis": NOW, "previous_epoch_millis": NOW - 3_600_000, "lock_millis": 14 * DAY}
    none_changed = np.zeros(2, bool)
    assert list(notes_to_rescore(cur, prev, none_changed, new, created, timer, **kw)) == [0, 0, 0, 1]
    u2 = np.array([False, True])
    assert list(notes_to_rescore(cur, prev, u2, new, created, timer, **kw)) == [0, 1, 1, 1]
    timer[0] = NOW - 1000.0
    created[1] = NOW - 14 * DAY - 1000.0  # crossed the lock age since the last run
    assert list(notes_to_rescore(cur, prev, none_changed, new, created, timer, **kw)) == [1, 1, 0, 1]
    back = {**kw, "previous_epoch_millis": NOW + 1}
    assert notes_to_rescore(cur, prev, none_changed, new, created, timer, **back).all()


def test_merge_rows_takes_rescored_rows_from_the_new_run() -> None:
    new = pd.DataFrame({"noteId": [3, 1, 2], "status": ["n3", "n1", "n2"], "x": [3.0, 1.0, 2.0]})
    prev = pd.DataFrame({"noteId": [1, 2, 9], "status": ["p1", "p2", "p9"], "x": [10.0, 20.0, 90.0]})
    out = merge_rows(new, prev, np.array([2]))
    assert list(out["noteId"]) == [1, 2, 3]  # note 9 vanished; note 3 is new
    assert list(out["status"]) == ["p1", "n2", "n3"]
    assert out.dtypes.to_dict() == new.dtypes.to_dict()


def test_merge_rows_orders_by_key_over_a_universe_whatever_the_previous_order() -> None:
    new = pd.DataFrame({"noteId": [5, 2, 7], "s": pd.array(["n5", "n2", "n7"], dtype="string")})
    prev = pd.DataFrame({"noteId": [9, 7, 1, 2, 5], "s": ["p9", "p7", "p1", "p2", "p5"]})
    out = merge_rows(new, prev, np.array([2]), universe=np.array([7, 1, 2, 5, 4]))
    # 9 left the universe, 4 is in no table, 2 was rescored, 1/5/7 keep their previous rows
    assert list(out["noteId"]) == [1, 2, 5, 7]
    assert list(out["s"]) == ["p1", "n2", "p5", "p7"]
    assert out["s"].dtype == new["s"].dtype and list(out.index) == [0, 1, 2, 3]


def test_raters_changed_counts_every_high_volume_flip_group_change_and_new_rater() -> None:
    previous = pd.DataFrame(
        {
            "raterParticipantId": ["a", "b", "c", "d"],
            "highVolume": [False, True, False, False],
            "group": [1, 2, 3, 4],
        }
    )
    current = pd.DataFrame(
        {
            "raterParticipantId": ["a", "b", "c", "d", "e"],
            # b flips off (whether or not any scorer found b helpful), c changes group, e is new
            "highVolume": [False, False, False, False, False],
            "group": [1, 2, 5, 4, 1],
        }
    )
    assert raters_changed(previous, current).tolist() == [False, True, True, False, True]


def _mix(x: np.ndarray) -> np.ndarray:
    """The vectorized splitmix64 finalizer the fingerprints were computed with (the oracle)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def test_ratings_hash_is_the_vectorized_chain_summed_per_note() -> None:
    """The one-pass ``ratingsHash`` equals the former vectorized form: the chained per-rating
    hash over every column, summed per note with wrapping uint64 arithmetic."""
    from bridgewatch.scoring.rescore import _id_hashes

    rng = np.random.default_rng(2)
    r, n_notes, n_raters = 5000, 70, 300
    m = build_rating_matrix(
        note=rng.integers(0, n_notes - 5, r), rater=rng.integers(0, n_raters, r),
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), r),
        created_at=NOW - rng.integers(0, 90 * DAY, r), tags=rng.integers(0, 1 << 24, r, dtype=np.uint32),
        population_sampled=rng.random(r) < 0.1, note_ids=np.arange(n_notes, dtype=np.int64) * 7 + 1,
        rater_ids=np.array([f"r{u:04d}" for u in range(n_raters)], dtype=object),
    )  # fmt: skip
    h = _mix(np.asarray(m.population_sampled, dtype=np.uint64))
    h = _mix(h ^ np.asarray(m.created_at, dtype=np.int64).view(np.uint64))
    h = _mix(h ^ np.asarray(m.tags, dtype=np.uint64))
    h = _mix(h ^ np.asarray(m.value, dtype=np.float64).view(np.uint64))
    h = _mix(h ^ _id_hashes(m.rater_ids)[m.rater])
    sums = np.zeros(m.n_ratings + 1, dtype=np.uint64)
    np.cumsum(h, dtype=np.uint64, out=sums[1:])
    expected = (sums[m.note_indptr[1:]] - sums[m.note_indptr[:-1]]).view(np.int64)
    got = note_fingerprints(m, *frames(list(m.note_ids)), None)["ratingsHash"].to_numpy()
    assert (expected[-5:] == 0).all() and (expected[:-5] != 0).all()
    np.testing.assert_array_equal(got, expected)


def test_reuse_on_notes_selects_each_scorers_notes_and_keeps_a_shared_mask_shared() -> None:
    fixed = np.array([True, False, True, True])
    values = {"intercept": np.array([1.0, 2.0, 3.0, 4.0]), "noHighVol": np.array([5.0, 6.0, 7.0, 8.0])}
    flipped = np.array([True, False])
    reuse = {
        "A": RS.ReusedFits(fixed, values, flipped),
        "B": RS.ReusedFits(fixed, {"intercept": values["intercept"]}),
    }
    rows = np.array([False, True, True, True])
    out = reuse_on_notes(reuse, rows)
    np.testing.assert_array_equal(out["A"].fixed, [False, True, True])
    assert out["A"].fixed is out["B"].fixed  # one gather of the ratings serves every scorer
    np.testing.assert_array_equal(out["A"].values["noHighVol"], [6.0, 7.0, 8.0])
    np.testing.assert_array_equal(out["B"].values["intercept"], [2.0, 3.0, 4.0])
    assert out["A"].high_flipped is flipped and out["B"].high_flipped is None
    np.testing.assert_array_equal(out["A"].take("intercept", np.zeros(3)), [0.0, 3.0, 4.0])

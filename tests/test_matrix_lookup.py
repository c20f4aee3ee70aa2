"""RatingMatrix id lookups: the cached hash index answers exactly as a binary search would."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bridgewatch.io import matrix as M


def _matrix(rater_ids: list[str]) -> M.RatingMatrix:
    n = len(rater_ids)
    return M.build_rating_matrix(
        note=np.zeros(n, dtype=np.int32),
        rater=np.arange(n, dtype=np.int32),
        value=np.ones(n, dtype=np.float32),
        created_at=np.arange(n, dtype=np.int64),
        tags=np.zeros(n, dtype=np.uint32),
        population_sampled=np.zeros(n, dtype=bool),
        note_ids=np.array([7], dtype=np.int64),
        rater_ids=np.array(rater_ids, dtype=object),
    )


def test_rater_index_matches_binary_search_and_marks_unknown_ids():
    m = _matrix(["a", "c", "e"])
    query = np.array(["e", "b", "a", "zz", "c", "a"], dtype=object)
    got = m.rater_index(query)
    assert got.dtype == np.int64
    assert got.tolist() == [2, -1, 0, -1, 1, 0]
    assert got.tolist() == M._lookup(m.rater_ids, query).tolist()


def test_rater_index_cache_is_per_id_array_and_shared_by_subsets():
    a, b = _matrix(["a", "b"]), _matrix(["b", "c"])
    assert a.rater_index(np.array(["b"], dtype=object)).tolist() == [1]
    assert b.rater_index(np.array(["b"], dtype=object)).tolist() == [0]
    sub = a.subset(np.array([False, True]))
    assert sub.rater_ids is a.rater_ids
    assert sub.rater_index(np.array(["a", "b"], dtype=object)).tolist() == [0, 1]


def test_rater_index_empty_matrix_and_many_arrays():
    assert _matrix([]).rater_index(np.array(["a"], dtype=object)).tolist() == [-1]
    for i in range(2 * M._MAX_ID_INDEXES):  # evicts old entries without mixing them up
        ids = [f"r{i}", f"s{i}"]
        got = _matrix(ids).rater_index(np.array([f"s{i}", "r0"], dtype=object))
        assert got.tolist() == [1, 0 if i == 0 else -1]


def test_first_positions_of_text_ids_equal_the_pandas_lookup() -> None:
    space = np.array(["b", "a", "c", "a"], dtype=object)  # "a" twice: its first position counts
    values = np.array(["a", "zz", "c", "b", "a"], dtype=object)
    want = [1, -1, 2, 0, 1]
    np.testing.assert_array_equal(M.first_positions(space, values), want)
    got = M.first_positions(pd.Series(space).astype("str"), pd.Series(values).astype("str"))  # text columns
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    unique = space[:3]
    np.testing.assert_array_equal(M.first_positions(unique, values), pd.Index(unique).get_indexer(values))
    assert M.first_positions(space, np.array([], dtype=object)).shape == (0,)


@pytest.mark.parametrize("seed", range(4))
def test_union_with_raters_is_the_numpy_string_union(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raters = np.array(sorted({f"{rng.integers(0, 10**6):064X}" for _ in range(300)}), dtype=object)
    strangers = np.array(["nan", "zz-stranger", "0-first", "0-first", np.nan, ""], dtype=object)
    pool = np.concatenate([raters, strangers])
    others = [pool[rng.integers(0, pool.shape[0], k)] for k in (0, 50, 400)]
    got = M.union_with_raters(raters, *others, pd.Series(others[1], dtype="str"))
    old = np.unique(np.concatenate([raters, *others, others[1]]).astype(str))  # the form it replaced
    assert got.dtype == object
    np.testing.assert_array_equal(got.astype(str), old)
    assert M.union_with_raters(raters).tolist() == raters.tolist()
    assert (
        M.union_with_raters(raters[:0], others[1]).astype(str).tolist()
        == np.unique(others[1].astype(str)).tolist()
    )
    twice = np.concatenate([raters, raters[:3]])  # not unique: no hash index, the same union
    np.testing.assert_array_equal(
        M.union_with_raters(twice, others[2]).astype(str),
        np.unique(np.concatenate([raters, others[2]]).astype(str)),
    )

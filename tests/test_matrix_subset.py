"""RatingMatrix.subset selects without sorting again: it must equal a fresh build of the kept ratings."""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch.io import matrix as M
from bridgewatch.scoring.mf import build_problem
from matrices import ARRAYS, INDEXES, random_matrix


def _rebuilt(m: M.RatingMatrix, keep: np.ndarray) -> M.RatingMatrix:
    """The kept ratings built from scratch (a full stable re-sort): what ``subset`` used to do."""
    return M.build_rating_matrix(
        **{name: getattr(m, name)[keep] for name in ARRAYS}, note_ids=m.note_ids, rater_ids=m.rater_ids
    )


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("share", [0.0, 0.3, 0.9, 1.0])
def test_subset_equals_a_fresh_build_of_the_kept_ratings(seed: int, share: float):
    rng = np.random.default_rng(seed)
    m = random_matrix(rng, 3000, 40, 150)  # ~0.5 ratings per (note, rater): many repeats
    keep = rng.random(m.n_ratings) < share
    got, want = m.subset(keep), _rebuilt(m, keep)
    for name in ARRAYS + INDEXES:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert got.note_ids is m.note_ids and got.rater_ids is m.rater_ids


def test_subset_of_a_subset_and_the_fit_built_on_it_match_one_selection():
    rng = np.random.default_rng(11)
    m = random_matrix(rng, 2000, 25, 80)
    a = rng.random(m.n_ratings) < 0.7
    b = rng.random(int(a.sum())) < 0.6
    both = np.zeros(m.n_ratings, dtype=bool)
    both[np.flatnonzero(a)[b]] = True
    twice, once = m.subset(a).subset(b), m.subset(both)
    for name in ARRAYS + INDEXES:
        np.testing.assert_array_equal(getattr(twice, name), getattr(once, name), err_msg=name)
    # a fit on the subset sees what a fit on the same ratings selected from the whole matrix sees
    p_sub, p_full = build_problem(twice), build_problem(m, both)
    fields = ("note", "rater", "value", "note_indptr", "by_rater", "rater_indptr", "note_full", "rater_full")
    for name in fields:
        np.testing.assert_array_equal(getattr(p_sub, name), getattr(p_full, name), err_msg=name)


def test_kept_order_is_the_stable_sort_of_the_kept_keys():
    rng = np.random.default_rng(3)
    key = rng.integers(0, 20, 500)
    order = np.argsort(key, kind="stable")
    keep = rng.random(500) < 0.5
    np.testing.assert_array_equal(M.kept_order(order, keep), np.argsort(key[keep], kind="stable"))


def test_subset_rejects_a_mask_of_the_wrong_length():
    m = random_matrix(np.random.default_rng(0), 50, 5, 10)
    with pytest.raises(ValueError, match="50 ratings"):
        m.subset(np.ones(49, dtype=bool))


@pytest.mark.parametrize("share", [0.05, 0.5, 1.0])
def test_on_notes_equals_a_fresh_build_in_a_space_of_those_notes(share: float):
    rng = np.random.default_rng(5)
    m = random_matrix(rng, 3000, 40, 150)
    rows = rng.random(m.n_notes) < share
    keep = rows[m.note]
    dense = np.cumsum(rows) - 1
    arrays = {name: getattr(m, name)[keep] for name in ARRAYS}
    arrays["note"] = dense[arrays["note"]].astype(m.note.dtype)
    want = M.build_rating_matrix(**arrays, note_ids=m.note_ids[rows], rater_ids=m.rater_ids)
    got = m.on_notes(rows)
    for name in ARRAYS + INDEXES:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(got.note_ids, m.note_ids[rows])
    assert got.rater_ids is m.rater_ids
    with pytest.raises(ValueError, match="on_notes"):
        m.on_notes(rows[:-1])

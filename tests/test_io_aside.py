"""A dataset's ratings set aside while a subset is scored: the whole matrix comes back equal, array
for array, and while a subset is out the whole one is not held (the memory the loan exists for)."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridgewatch.io import Dataset, read_dataset
from bridgewatch.io import matrix as M
from bridgewatch.io.aside import RatingsLoan, rejoin, set_aside
from bridgewatch.scoring import pipeline
from bridgewatch.sim.config import config_for_scale
from bridgewatch.sim.simulate import simulate
from matrices import ARRAYS, INDEXES, random_matrix

EPOCH = 1795305600000


def _assert_same(got: M.RatingMatrix, want: M.RatingMatrix) -> None:
    for name in ARRAYS + INDEXES:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert got.note_ids is want.note_ids and got.rater_ids is want.rater_ids


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("share", [0.0, 0.5, 0.97])
def test_rejoin_puts_back_the_matrix_set_aside(seed: int, share: float) -> None:
    rng = np.random.default_rng(seed)
    m = random_matrix(rng, 3000, 40, 150)
    keep = rng.random(m.n_ratings) < share
    kept, dropped = set_aside(m, keep)
    _assert_same(kept, m.subset(keep))
    assert all(dropped[name].shape == (int((~keep).sum()),) for name in ARRAYS)
    columns = {name: getattr(kept, name) for name in ARRAYS}
    _assert_same(rejoin(columns, dropped, keep, m.note_ids, m.rater_ids), m)
    assert not columns and not dropped  # handed over, column by column


def _tiny(path: Path) -> Dataset:
    simulate(config_for_scale("tiny", seed=5), path)
    return read_dataset(path)


def test_a_loan_holds_the_subset_in_place_of_the_whole_matrix(tmp_path: Path) -> None:
    dataset = _tiny(tmp_path)
    original = dataset.ratings
    snapshot = {name: getattr(original, name).copy() for name in ARRAYS + INDEXES}
    ids = original.note_ids, original.rater_ids
    gone = weakref.ref(original)
    keep = np.random.default_rng(1).random(original.n_ratings) < 0.9
    del original
    loan = RatingsLoan(dataset)
    kept = loan.select(keep)
    gc.collect()
    assert gone() is None, "the whole matrix outlived the subset it was lent as"
    assert dataset.ratings is kept and kept.n_ratings == int(keep.sum())
    assert loan.select(keep.copy()) is kept  # the same selection again: no new subset
    sub_gone = weakref.ref(kept)
    del kept
    whole = loan.whole()
    gc.collect()
    assert sub_gone() is None and dataset.ratings is whole
    for name, want in snapshot.items():
        np.testing.assert_array_equal(getattr(whole, name), want, err_msg=name)
    assert (whole.note_ids, whole.rater_ids) == ids
    loan.close()
    assert dataset.ratings is whole


def test_scoring_with_dropped_ratings_lends_the_matrix_and_gives_it_back(tmp_path: Path) -> None:
    """score_dataset with ratings dropped (prescoring and final masks differing): the same frames as
    the phase entry points, which subset the dataset's own matrix (the old path); during the
    scorers the dataset's whole matrix is not held; afterwards an equal one is back."""
    dataset = _tiny(tmp_path)
    rng = np.random.default_rng(0)
    n = dataset.ratings.n_ratings
    keep = rng.random(n) < 0.95
    final_keep = keep | (rng.random(n) < 0.5)
    pre = pipeline.prescore_dataset(dataset, rating_keep=keep)
    final = pipeline.final_dataset(dataset, pre, epoch_millis=EPOCH, rating_keep=final_keep)
    helpfulness = pipeline.contributor_frame(dataset, pre, final.notes, epoch_millis=EPOCH)
    snapshot = {name: getattr(dataset.ratings, name).copy() for name in ARRAYS + INDEXES}
    whole = weakref.ref(dataset.ratings)
    held: list[tuple[str, int, bool]] = []

    def progress(name: str) -> None:
        gc.collect()
        held.append((name, dataset.ratings.n_ratings, whole() is not None))

    result = pipeline.score_dataset(
        dataset, epoch_millis=EPOCH, rating_keep=keep, final_keep=final_keep, progress=progress
    )
    pd.testing.assert_frame_equal(result.scored_notes, final.scored_notes, check_exact=True)
    pd.testing.assert_frame_equal(result.aux_note_info, final.aux_note_info, check_exact=True)
    pd.testing.assert_frame_equal(result.note_status_history, final.note_status_history, check_exact=True)
    pd.testing.assert_frame_equal(result.helpfulness_scores, helpfulness, check_exact=True)
    scorers = [(name, count, alive) for name, count, alive in held if name.startswith(("prescore", "final"))]
    assert scorers and not any(alive for _, _, alive in scorers)
    assert {count for _, count, _ in scorers} == {int(keep.sum()), int(final_keep.sum())}
    assert held[-1][0] == "contributor scoring" and held[-1][1] == n
    for name, want in snapshot.items():
        np.testing.assert_array_equal(getattr(dataset.ratings, name), want, err_msg=name)

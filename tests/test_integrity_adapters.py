"""detect_integrity on a RatingMatrix: id mapping, PSS keep mask and correlatedRater flags."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.integrity.adapters import detect_integrity, final_scoring_filter, nth_true
from bridgewatch.integrity.pss import PSSParams
from bridgewatch.integrity.quasi_clique import correlated_rater
from bridgewatch.io.matrix import build_rating_matrix

MIN = 60_000


def _dataset(n_notes=240, seed=0):
    """Author 'w' writes 20 notes; buddies 'b1', 'b2' rate 12 of them helpful within 30 s. Honest
    raters rate every note an hour later. 240 notes so the PSS filter is on (§9.7)."""
    rng = np.random.default_rng(seed)
    note_ids = np.arange(1000, 1000 + n_notes, dtype=np.int64)
    authors = np.array(["w"] * 20 + [f"a{i % 30}" for i in range(n_notes - 20)], dtype=object)
    created = rng.integers(0, 10**10, n_notes)
    notes = pd.DataFrame(
        {
            "noteId": note_ids,
            "noteAuthorParticipantId": authors,
            "createdAtMillis": created,
            "tweetId": note_ids * 10,
            "classification": schema.MISLEADING,
        }
    )
    rows = []
    for n in range(12):
        rows += [(n, "b1", created[n] + 30_000), (n, "b2", created[n] + 30_000)]
    for n in range(n_notes):
        for r in rng.choice(80, 6, replace=False):
            rows.append((n, f"h{r:02d}", created[n] + 60 * MIN + int(rng.integers(0, 10**6))))
    rater_ids = np.array(sorted({r for _, r, _ in rows}), dtype=object)
    note = np.array([n for n, _, _ in rows])
    rater = np.searchsorted(rater_ids, np.array([r for _, r, _ in rows], dtype=object))
    m = len(rows)
    matrix = build_rating_matrix(
        note=note,
        rater=rater,
        value=np.ones(m, np.float32),
        created_at=np.array([t for *_, t in rows]),
        tags=np.zeros(m, np.uint32),
        population_sampled=np.zeros(m, bool),
        note_ids=note_ids,
        rater_ids=rater_ids,
    )
    return matrix, notes


def test_buddies_and_writer_form_one_clique_and_their_ratings_go():
    matrix, notes = _dataset()
    res = detect_integrity(matrix, notes)
    vals = res.values_frame()
    assert sorted(vals.raterParticipantId) == ["b1", "b2", "w"]
    assert vals.postSelectionValue.nunique() == 1
    buddy = np.isin(matrix.rater_ids[matrix.rater], ["b1", "b2"])
    # every buddy rating is on a note by the writer in their own clique: all dropped
    assert not res.keep[buddy].any() and res.keep[~buddy].all()
    assert not correlated_rater(matrix.rater, res.quasi_clique_value).any()


def test_small_notes_table_keeps_everything():
    matrix, notes = _dataset(n_notes=150)
    assert detect_integrity(matrix, notes).keep.all()


def test_final_scoring_filter_applies_only_groups_that_are_also_quasi_cliques():
    matrix, notes = _dataset()
    res = detect_integrity(matrix, notes)
    args = (matrix, notes, res.participant_ids, res.post_selection_value)
    keep, corr = final_scoring_filter(*args, res.correlated_ids)  # the clique is no quasi-clique
    assert keep.all() and not corr.any()
    # b1 and the writer also in a quasi-clique (h00 only there): b1's ratings of the writer's notes
    # go, b2's stay; correlatedRater flags b1 alone (the writer never rated, h00 has no PSS clique)
    both = np.array(["b1", "w", "h00"], dtype=object)
    keep, corr = final_scoring_filter(*args, both)
    who = matrix.rater_ids[matrix.rater]
    assert not keep[who == "b1"].any() and keep[who != "b1"].all()
    assert matrix.rater_ids[corr].tolist() == ["b1"]
    keep, corr = final_scoring_filter(*args, both, PSSParams(final_needs_quasi_clique=False))
    assert keep.tobytes() == res.keep.tobytes()
    assert sorted(matrix.rater_ids[corr]) == ["b1", "h00"]


def test_nth_true_is_flatnonzero_picked_by_rank():
    rng = np.random.default_rng(3)
    mask = rng.random(10_000) < 0.3
    ranks = np.sort(rng.choice(int(mask.sum()), size=50, replace=False))
    np.testing.assert_array_equal(nth_true(mask, ranks), np.flatnonzero(mask)[ranks])
    assert nth_true(mask, np.empty(0, dtype=np.int64)).shape == (0,)
    np.testing.assert_array_equal(nth_true(mask, [int(mask.sum()) - 1]), np.flatnonzero(mask)[-1:])


@pytest.mark.parametrize("ranks", [[3, 3], [5, 2], [-1]])
def test_nth_true_refuses_ranks_out_of_order(ranks):
    with pytest.raises(ValueError, match="ascending"):
        nth_true(np.ones(10, dtype=bool), ranks)


def test_nth_true_names_a_rank_past_the_true_entries():
    with pytest.raises(ValueError, match="fewer than 4 true"):
        nth_true(np.array([True, False, True, True]), [0, 3])

"""Group and topic scorers score on their own ratings (``scope_space.on_scope``) with the results
they had on the whole matrix."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd
import pytest

from bridgewatch.io.dataset import Dataset
from bridgewatch.scoring import pipeline, scope_space
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.scorer_specs import default_scorers, group

EPOCH = 1795305600000


@pytest.fixture(scope="module")
def dataset(tiny_community: Dataset) -> Dataset:
    return tiny_community


def _scored(dataset: Dataset, monkeypatch, restrict: bool) -> tuple[pipeline.PipelineResult, dict[str, int]]:
    """A whole run, one scorer at a time, and the ratings each MF scorer's final scoring saw."""
    seen: dict[str, int] = {}
    real = pipeline.final_scorer

    def final(inputs, state, *args, **kwargs):
        seen[state.spec.name] = inputs.matrix.n_ratings
        return real(inputs, state, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(pipeline, "final_scorer", final)
        if not restrict:
            patch.setattr(pipeline, "on_scope", lambda inputs, spec: inputs)
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            result = pipeline.score_dataset(dataset, epoch_millis=EPOCH)
        finally:
            numba.set_num_threads(threads)
    return result, seen


def test_scorers_on_their_scope_give_the_whole_matrix_results(dataset: Dataset, monkeypatch) -> None:
    whole, seen_whole = _scored(dataset, monkeypatch, restrict=False)
    own, seen_own = _scored(dataset, monkeypatch, restrict=True)
    r = dataset.ratings.n_ratings
    assert set(seen_whole.values()) == {r}
    # Core and Expansion see most ratings: the whole matrix; the small scorers their own
    assert seen_own["MFCoreScorer"] == r
    small = [n for n in seen_own if n.startswith(("MFGroupScorer", "MFTopicScorer", "MFMultiGroup"))]
    assert len(small) >= 2 and all(0 < seen_own[n] < r / 2 for n in small), seen_own
    for name in ("scored_notes", "helpfulness_scores", "note_status_history", "aux_note_info"):
        pd.testing.assert_frame_equal(getattr(own, name), getattr(whole, name), check_exact=True, obj=name)


def test_the_capture_test_counts_the_ratings_outside_the_scope(dataset: Dataset) -> None:
    """The restricted inputs carry the capture shares of the whole matrix: on the subset alone
    every note's ratings would all be in-group (share 1) and no note would be captured out."""
    cfg = ScoringConfig()
    inputs = pipeline._inputs(dataset, dataset.ratings, cfg, None, None)
    spec = group(33)  # strict inclusion: the scope itself is cut by the capture test
    assert spec.strict_inclusion and spec.capture_threshold is not None
    own = scope_space.on_scope(inputs, spec)
    assert own.matrix.n_ratings < inputs.matrix.n_ratings and own.capture is not None
    in_group = P.group_mask(inputs.rater_group, spec.included_groups, spec.include_unassigned)
    want = P.capture_share(inputs.matrix, inputs.base_keep, in_group[inputs.matrix.rater])
    np.testing.assert_array_equal(own.capture, want)
    assert (want[np.isfinite(want)] < 1).any()  # shares the subset alone could not give
    assert own.matrix.note_ids is inputs.matrix.note_ids and own.matrix.rater_ids is inputs.matrix.rater_ids


def test_a_scope_of_most_ratings_scores_on_the_whole_matrix(dataset: Dataset) -> None:
    cfg = ScoringConfig()
    inputs = pipeline._inputs(dataset, dataset.ratings, cfg, None, None)
    core = next(s for s in default_scorers() if s.name == "MFCoreScorer")
    assert scope_space.on_scope(inputs, core) is inputs

"""Random rating matrices shared by the tests of the matrix's subsets and loans."""

from __future__ import annotations

import numpy as np

from bridgewatch.io import matrix as M

ARRAYS = ("note", "rater", "value", "created_at", "tags", "population_sampled")
INDEXES = ("note_indptr", "by_rater", "rater_indptr")


def random_matrix(rng: np.random.Generator, n_ratings: int, n_notes: int, n_raters: int) -> M.RatingMatrix:
    """Unsorted input with repeated (note, rater) pairs, so ties exercise the stable orders."""
    return M.build_rating_matrix(
        note=rng.integers(0, n_notes, n_ratings).astype(np.int32),
        rater=rng.integers(0, n_raters, n_ratings).astype(np.int32),
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), n_ratings),
        created_at=rng.integers(0, 10**12, n_ratings),
        tags=rng.integers(0, 2**20, n_ratings).astype(np.uint32),
        population_sampled=rng.random(n_ratings) < 0.1,
        note_ids=np.arange(n_notes, dtype=np.int64) * 7 + 3,
        rater_ids=np.array([f"r{i:05d}" for i in range(n_raters)], dtype=object),
    )

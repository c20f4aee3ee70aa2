"""A dataset's ratings taken apart while a job scores a subset of them, and put back together.

When the integrity filters drop ratings, the scoring job fits a subset (``RatingMatrix.subset``)
while its volume counts, contributor scoring and the integrity views after it read every rating.
Holding the whole matrix beside the subset costs 29 bytes a kept rating (~5.6 GiB at X's 206M
ratings) through prescoring and final scoring. A ``RatingsLoan`` instead holds the subset and
the dropped ratings' columns (25 bytes each; integrity drops a few percent), and puts the whole
matrix back, column by column, when it is asked for: equal array for array to the one taken
apart (``rejoin``), so nothing computed from it changes.
"""

from __future__ import annotations

import numpy as np

from bridgewatch.io.dataset import Dataset
from bridgewatch.io.kernels import stable_order
from bridgewatch.io.matrix import RatingMatrix, counts_indptr

# The per-rating columns; the indexes (``note_indptr``, ``by_rater``, ``rater_indptr``) follow
# from them.
COLUMNS = ("note", "rater", "value", "created_at", "tags", "population_sampled")


def set_aside(matrix: RatingMatrix, keep: np.ndarray) -> tuple[RatingMatrix, dict[str, np.ndarray]]:
    """(``matrix.subset(keep)``, {column: [D] values of the D ratings ``keep`` drops, in matrix order})."""
    drop = ~np.asarray(keep, dtype=bool)
    return matrix.subset(keep), {name: getattr(matrix, name)[drop] for name in COLUMNS}


def rejoin(
    kept: dict[str, np.ndarray], dropped: dict[str, np.ndarray], keep: np.ndarray, note_ids, rater_ids
) -> RatingMatrix:
    """The matrix ``set_aside`` took apart: ``kept`` (the subset's columns) and ``dropped`` (its
    second result) merged back in matrix order by ``keep`` (bool[R]).

    Both dicts are emptied as each column is merged, so a caller that hands over its only
    references holds at most one column twice. ``by_rater`` is computed as the ratings reader
    computes it (``io.build``: a stable counting sort of the note-ordered raters), so every array
    equals the original's.
    """
    keep = np.asarray(keep, dtype=bool)
    drop = ~keep
    out: dict[str, np.ndarray] = {}
    for name in COLUMNS:
        part = kept.pop(name)
        col = np.empty(keep.shape[0], dtype=part.dtype)
        col[keep] = part
        del part
        col[drop] = dropped.pop(name)
        out[name] = col
    n_notes, n_raters = int(note_ids.shape[0]), int(rater_ids.shape[0])
    return RatingMatrix(
        **out,
        note_ids=note_ids,
        rater_ids=rater_ids,
        note_indptr=counts_indptr(out["note"], n_notes),
        by_rater=stable_order(out["rater"], n_raters),
        rater_indptr=counts_indptr(out["rater"], n_raters),
    )


class RatingsLoan:
    """A dataset's matrix lent to one scoring job, which scores subsets of it.

    ``select(keep)`` returns the ratings ``keep`` selects; while that subset is out, the dataset
    holds it in place of its whole matrix (plus, here, the dropped ratings' columns), so the whole
    one is freed once its other holders let go (a caller keeping ``dataset.ratings`` keeps it,
    and loses only the memory). ``whole()`` and ``close()`` put the whole matrix back: a new
    object with equal arrays and the same id maps. Callers hold no reference to a subset when they
    ask for the whole matrix (or another subset), or it lives on beside it. While the whole matrix
    is being put back the dataset holds none (a failure there, out of memory, leaves it so).
    """

    def __init__(self, dataset: Dataset) -> None:
        self._dataset = dataset
        self._keep: np.ndarray | None = None  # bool[R] of the subset the dataset holds now
        self._dropped: dict[str, np.ndarray] = {}

    def select(self, keep: np.ndarray | None) -> RatingMatrix:
        """The ratings ``keep`` (bool[R], None = all) selects: the whole matrix when it keeps all."""
        if keep is None or np.all(keep):
            return self.whole()
        if self._keep is not None and np.array_equal(keep, self._keep):
            return self._dataset.ratings
        whole = self.whole()
        kept, self._dropped = set_aside(whole, keep)
        del whole
        self._keep = np.asarray(keep, dtype=bool)
        self._swap(kept)
        return kept

    def whole(self) -> RatingMatrix:
        """The whole matrix, back in the dataset."""
        if self._keep is None:
            return self._dataset.ratings
        kept = self._swap(None)
        columns = {name: getattr(kept, name) for name in COLUMNS}
        ids = kept.note_ids, kept.rater_ids
        del kept
        whole = rejoin(columns, self._dropped, self._keep, *ids)
        self._keep = None
        self._swap(whole)
        return whole

    def close(self) -> None:
        """Give the whole matrix back to the dataset (idempotent)."""
        self.whole()

    def _swap(self, matrix: RatingMatrix | None) -> RatingMatrix:
        """Put ``matrix`` in the (frozen) dataset in place of its matrix; return the one it held.
        Only a loan does this: ``Dataset`` is frozen for everyone else."""
        held = self._dataset.ratings
        object.__setattr__(self._dataset, "ratings", matrix)
        return held

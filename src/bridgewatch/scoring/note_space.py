"""The note space an incremental final run scores in (§6.7): the rescored notes only.

Final scoring of a note depends on its own ratings and the frozen rater parameters; an
incremental run therefore scores its rescored notes in a space of those notes alone
(``RatingMatrix.on_notes``), so every per-note array its scorers, meta scoring and output frames
build holds ~1,000 notes instead of every note of the dataset (at ``small``, 944 of 5,000).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.scoring.preprocess import reference_rater_bucket
from bridgewatch.scoring.rescore import ReusedFits
from bridgewatch.scoring.scorer import ScoringInputs


def with_ratings(
    inputs: ScoringInputs, sub: RatingMatrix, sel: np.ndarray, correlated: np.ndarray | None
) -> ScoringInputs:
    """``inputs`` on ``sub``, the matrix of its ratings ``sel`` (bool[R]). The reference's table
    order is read from the matrix a fit is given and each rater's bucket, so a subset is ordered
    as the whole dataset is (PSS membership is not kept here: the buckets of ``correlated``)."""
    bucket = reference_rater_bucket(sub.n_raters, inputs.high_volume, correlated)
    return dataclasses.replace(inputs, matrix=sub, base_keep=inputs.base_keep[sel], rater_bucket=bucket)


def on_notes(inputs: ScoringInputs, rows: np.ndarray, correlated: np.ndarray | None) -> ScoringInputs:
    """``inputs`` restricted to the notes ``rows`` (bool[N]) selects and their ratings, in a note
    space of those notes only (``RatingMatrix.on_notes``): an incremental run's scorers, meta and
    outputs then hold per-note arrays of the rescored notes instead of every note's. Each note's
    results depend on its own ratings and the frozen rater parameters only, so they are the same
    (an incremental run's outputs are byte-identical to scoring them in the whole note space)."""
    on = with_ratings(inputs, inputs.matrix.on_notes(rows), rows[inputs.matrix.note], correlated)

    def notes(values: np.ndarray | None) -> np.ndarray | None:
        return None if values is None else np.asarray(values)[rows]

    return dataclasses.replace(
        on,
        notes=inputs.notes[rows].reset_index(drop=True),
        note_topic=notes(inputs.note_topic),
        harassment_intercept=notes(inputs.harassment_intercept),
    )


def reuse_on_notes(reuse: Mapping[str, ReusedFits], rows: np.ndarray) -> dict[str, ReusedFits]:
    """``reuse`` in the note space of ``RatingMatrix.on_notes(rows)`` (bool[N]): each scorer's
    ``fixed`` notes and ``values`` at the selected notes only. A ``fixed`` array the scorers share
    stays one shared array (``_refitted`` keeps its gather over the ratings by identity)."""
    rows = np.asarray(rows, dtype=bool)
    fixed: dict[int, np.ndarray] = {}
    out = {}
    for name, r in reuse.items():
        f = fixed.get(id(r.fixed))
        if f is None:
            f = fixed[id(r.fixed)] = np.asarray(r.fixed, dtype=bool)[rows]
        values = {k: np.asarray(v)[rows] for k, v in r.values.items()}
        out[name] = ReusedFits(f, values, r.high_flipped)
    return out

"""The capture test's effect on a scorer's final columns (§6.1).

A scorer whose in-scope raters gave too small a share of a note's ratings reports no model values
for it (the reference drops those notes' rows after scoring). Kept apart from ``scorer`` so the
blanking is one small pure function over columns that scorer kinds and tests share.
"""

from __future__ import annotations

import numpy as np

from bridgewatch.scoring.scorer_specs import ScorerSpec

# The per-note model columns the capture test blanks (``{prefix}Note{name}``).
_CAPTURED_COLUMNS = ("Intercept", "Factor1", "InterceptNoHighVol", "InterceptNoCorrelated",
                     "InterceptPopulationSampled", "InterceptMin", "InterceptMax")  # fmt: skip


def drop_captured_out(
    columns: dict[str, np.ndarray], drop: np.ndarray, spec: ScorerSpec
) -> dict[str, np.ndarray]:
    """``score_final``'s columns with the model columns of ``drop`` notes set to NaN (the reference
    removes those notes' rows after scoring, §6.1); a new dict, the input's arrays untouched.

    Columns, not a frame: final scoring reads a scorer's ~20 columns a few times and builds its
    frame once, after this (each frame built or column read through pandas was a fixed cost per
    scorer, ~27 of them in every final run, incremental or not)."""
    drop = np.asarray(drop, dtype=bool)
    out = dict(columns)
    if not drop.any():
        return out
    for name in _CAPTURED_COLUMNS:
        col = f"{spec.prefix}Note{name}"
        out[col] = np.where(drop, np.nan, np.asarray(columns[col], dtype=np.float64))
    return out

"""A plain summary of a ``Dataset`` (what ``bridgewatch validate`` prints)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from bridgewatch import schema
from bridgewatch.io.dataset import Dataset


def _date(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def summarize(ds: Dataset) -> dict[str, object]:
    """Counts, date range, rating mix and classification mix of a dataset (plain Python values)."""
    m = ds.ratings
    times = np.concatenate([m.created_at, ds.notes["createdAtMillis"].to_numpy(np.int64)])
    mix = {
        schema.HELPFUL: int((m.value == 1.0).sum()),
        schema.SOMEWHAT_HELPFUL: int((m.value == 0.5).sum()),
        schema.NOT_HELPFUL: int((m.value == 0.0).sum()),
    }
    cls = ds.notes["classification"].fillna("(none)").value_counts().sort_index()
    return {
        "notes": len(ds.notes),
        "ratings": m.n_ratings,
        "raters": m.n_raters,
        "rated_notes": int((np.diff(m.note_indptr) > 0).sum()),
        "status_history_rows": len(ds.status_history),
        "enrollment_rows": len(ds.enrollment),
        "first": _date(int(times.min())) if times.size else None,
        "last": _date(int(times.max())) if times.size else None,
        "rating_mix": mix,
        "population_sampled": int(m.population_sampled.sum()),
        "classification": {str(k): int(v) for k, v in cls.items()},
        "warnings": list(ds.warnings),
    }

"""Writing the four public input files (TSV or Parquet), in the reference's column order.

Every writer is atomic (``io/atomic.py``): a failure leaves no half-written file. What
``read_dataset`` reads back from these files equals what was written (round trip).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bridgewatch import schema
from bridgewatch.io.atomic import atomic_path
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.io.tsv import write_tsv

PathLike = str | os.PathLike[str]
_LEVEL_NAME = {v: k for k, v in schema.HELPFULNESS_LEVELS.items()}


def ratings_frame(matrix: RatingMatrix, tweet_ids: Mapping[int, int] | None = None) -> pd.DataFrame:
    """A RatingMatrix as public ratings rows (``schema.RATING_COLUMNS``), sorted by (note, rater).

    Columns the matrix does not hold are filled the way current public files fill them: version 2,
    agree/disagree/helpful/notHelpful 0, ratedOnTweetId from ``tweet_ids`` (noteId -> tweetId) or
    -1, empty suggestion.
    """
    note_ids = matrix.note_ids[matrix.note]
    levels = np.array([_LEVEL_NAME[0.0], _LEVEL_NAME[0.5], _LEVEL_NAME[1.0]], dtype=object)
    level_idx = np.rint(matrix.value.astype(np.float64) * 2).astype(np.int64)
    out: dict[str, object] = {
        "noteId": note_ids,
        "raterParticipantId": matrix.rater_ids[matrix.rater],
        "createdAtMillis": matrix.created_at,
        "version": np.full(matrix.n_ratings, 2, dtype=np.int64),
        "agree": np.zeros(matrix.n_ratings, dtype=np.int64),
        "disagree": np.zeros(matrix.n_ratings, dtype=np.int64),
        "helpful": np.zeros(matrix.n_ratings, dtype=np.int64),
        "notHelpful": np.zeros(matrix.n_ratings, dtype=np.int64),
        "helpfulnessLevel": levels[level_idx],
    }
    for tag in schema.RATING_TAGS:
        out[tag] = ((matrix.tags >> np.uint32(schema.TAG_BIT[tag])) & np.uint32(1)).astype(np.int64)
    if tweet_ids:
        out["ratedOnTweetId"] = pd.Series(note_ids).map(tweet_ids).fillna(-1).astype(np.int64).to_numpy()
    else:
        out["ratedOnTweetId"] = np.full(matrix.n_ratings, -1, dtype=np.int64)
    out["ratingSourceBucketed"] = np.where(
        matrix.population_sampled, schema.RATING_SOURCE_POPULATION_SAMPLED, schema.RATING_SOURCE_DEFAULT
    )
    out["suggestion"] = ""
    out["suggestionId"] = ""
    return pd.DataFrame(out, columns=list(schema.RATING_COLUMNS))


def write_notes(path: PathLike, notes: pd.DataFrame | Iterable[pd.DataFrame]) -> None:
    """Notes TSV in ``schema.NOTE_COLUMNS`` order (``.parquet`` suffix: Parquet)."""
    _write(path, notes, schema.NOTE_COLUMNS)


def write_ratings(path: PathLike, ratings: pd.DataFrame | Iterable[pd.DataFrame] | RatingMatrix) -> None:
    """Ratings in ``schema.RATING_COLUMNS`` order; a ``RatingMatrix`` is expanded with ``ratings_frame``."""
    if isinstance(ratings, RatingMatrix):
        ratings = ratings_frame(ratings)
    _write(path, ratings, schema.RATING_COLUMNS)


def write_status_history(path: PathLike, nsh: pd.DataFrame | Iterable[pd.DataFrame]) -> None:
    """Note status history in ``schema.NOTE_STATUS_HISTORY_COLUMNS`` order."""
    _write(path, nsh, schema.NOTE_STATUS_HISTORY_COLUMNS)


def write_enrollment(path: PathLike, enrollment: pd.DataFrame | Iterable[pd.DataFrame]) -> None:
    """User enrollment in ``schema.ENROLLMENT_COLUMNS`` order."""
    _write(path, enrollment, schema.ENROLLMENT_COLUMNS)


def _write(path: PathLike, frames: pd.DataFrame | Iterable[pd.DataFrame], columns: tuple[str, ...]) -> None:
    if str(path).endswith(".parquet"):
        frame = frames if isinstance(frames, pd.DataFrame) else pd.concat(list(frames), ignore_index=True)
        write_parquet(path, frame, columns)
    else:
        write_tsv(path, frames, columns)


def write_parquet(path: PathLike, frame: pd.DataFrame, columns: tuple[str, ...]) -> None:
    """One frame as Parquet, columns in ``columns`` order (absent ones written as nulls), atomically."""
    out = frame.reindex(columns=list(columns))
    table = pa.Table.from_pandas(out, preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def write_dataset(dataset: object, directory: PathLike, *, fmt: str = "tsv") -> dict[str, Path]:
    """Write the four input files into ``directory`` (``fmt`` = "tsv" or "parquet").

    ``dataset`` is a ``Dataset`` or any object/mapping with ``notes``, ``ratings`` (DataFrame or
    RatingMatrix), ``status_history`` and ``enrollment`` (the last two may be None or absent).
    Returns the paths written, keyed like ``find_input_files``.
    """
    if fmt not in ("tsv", "parquet"):
        raise ValueError(f"fmt must be 'tsv' or 'parquet', not {fmt!r}")
    get = dataset.get if isinstance(dataset, Mapping) else lambda k: getattr(dataset, k, None)
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    suffix = ".tsv" if fmt == "tsv" else ".parquet"
    paths = {
        "notes": d / f"notes-00000{suffix}",
        "ratings": d / f"ratings-00000{suffix}",
        "status": d / f"noteStatusHistory-00000{suffix}",
        "enrollment": d / f"userEnrollment-00000{suffix}",
    }
    notes = get("notes")
    write_notes(paths["notes"], notes)
    ratings = get("ratings")
    if isinstance(ratings, RatingMatrix):
        tweets = None
        if isinstance(notes, pd.DataFrame) and "tweetId" in notes:
            tweets = dict(zip(notes["noteId"].tolist(), notes["tweetId"].tolist(), strict=True))
        ratings = ratings_frame(ratings, tweets)
    write_ratings(paths["ratings"], ratings)
    written = {"notes": paths["notes"], "ratings": paths["ratings"]}
    for key, attr, writer in (
        ("status", "status_history", write_status_history),
        ("enrollment", "enrollment", write_enrollment),
    ):
        frame = get(attr)
        if frame is not None:
            writer(paths[key], frame)
            written[key] = paths[key]
    return written

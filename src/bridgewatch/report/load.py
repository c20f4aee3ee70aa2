"""Find and read a scoring run's output files for the report.

A run directory is either the scorer's ``--outdir`` (``scored_notes.tsv`` and friends) or a
``bridgewatch run --dir`` directory holding it as ``scored/``. The integrity views are optional
(``bridgewatch score --no-integrity`` writes none): the page then says they are missing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.integrity.views import (
    GROUP_ACTIVITY_FILE,
    NOTE_INTEGRITY_FILE,
    RATER_INTEGRITY_FILE,
)

REQUIRED = (schema.SCORED_NOTES_FILE, schema.HELPFULNESS_SCORES_FILE)
NOTE_COLUMNS = ("noteId", "finalRatingStatus", "coreRatingStatus", "coreNoteIntercept", "coreNoteFactor1")
_ID_TYPES = {"noteId": "int64", "raterParticipantId": str, "nearestRater": str}


@dataclass(frozen=True)
class RunOutputs:
    """The frames the page is drawn from; integrity frames are None when not written."""

    directory: Path
    scored_notes: pd.DataFrame
    helpfulness: pd.DataFrame
    note_integrity: pd.DataFrame | None
    rater_integrity: pd.DataFrame | None
    group_activity: pd.DataFrame | None


def resolve_run_dir(path: str | os.PathLike[str]) -> Path:
    """The directory holding ``scored_notes.tsv``: ``path`` itself or its ``scored/``."""
    base = Path(path)
    if not base.is_dir():
        raise DataFormatError("not a directory", path=str(base))
    for candidate in (base, base / "scored"):
        if (candidate / schema.SCORED_NOTES_FILE).is_file():
            return candidate
    raise DataFormatError(
        f"no scoring outputs here (expected {schema.SCORED_NOTES_FILE}, or a run's scored/ folder); "
        "run `bridgewatch score DATA --outdir DIR` or `bridgewatch run --dir DIR` first",
        path=str(base),
    )


def _read(path: Path, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    try:
        header = pd.read_csv(path, sep="\t", nrows=0).columns
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataFormatError(f"cannot read: {exc}", path=str(path)) from exc
    if columns is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise DataFormatError("missing column", path=str(path), field=", ".join(missing))
    dtypes = {c: t for c, t in _ID_TYPES.items() if c in header}
    try:
        return pd.read_csv(path, sep="\t", usecols=list(columns) if columns else None, dtype=dtypes)
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"cannot parse: {exc}", path=str(path)) from exc


def load_outputs(path: str | os.PathLike[str]) -> RunOutputs:
    """Read the run in ``path`` (see ``resolve_run_dir``); raises ``DataFormatError`` naming the
    file and field when a required output is missing or malformed."""
    directory = resolve_run_dir(path)
    for name in REQUIRED:
        if not (directory / name).is_file():
            raise DataFormatError("missing scoring output", path=str(directory / name))
    scored = _read(directory / schema.SCORED_NOTES_FILE, NOTE_COLUMNS)
    helpfulness = _read(
        directory / schema.HELPFULNESS_SCORES_FILE, ("raterParticipantId", "coreRaterFactor1")
    )
    optional = {}
    for name in (NOTE_INTEGRITY_FILE, RATER_INTEGRITY_FILE, GROUP_ACTIVITY_FILE):
        optional[name] = _read(directory / name) if (directory / name).is_file() else None
    return RunOutputs(
        directory,
        scored,
        helpfulness,
        optional[NOTE_INTEGRITY_FILE],
        optional[RATER_INTEGRITY_FILE],
        optional[GROUP_ACTIVITY_FILE],
    )

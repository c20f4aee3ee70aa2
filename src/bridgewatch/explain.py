"""Why a note has its status, read back from a run's outputs (``bridgewatch explain``).

Everything comes from the files a run wrote (scored_notes, note_status_history, aux_note_info;
Parquet when present, else TSV), so any run can be explained later, including one made by X's
scorer. ``explain_note`` returns plain sections of (label, value) rows; the CLI prints them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.errors import DataFormatError

# Scorer column families of scored_notes, in the meta-scoring priority order (§6.4).
SCORER_PREFIXES = (
    "core",
    "coreWithTopics",
    "expansion",
    "expansionPlus",
    "multiGroup",
    "group",
    "gaussian",
    "gaussianCoreWithTopics",
    "coverage",
    "topic",
)
_SCORER_FIELDS = (
    ("RatingStatus", "status"),
    ("NoteIntercept", "intercept"),
    ("NoteFactor1", "factor"),
    ("NoteInterceptMin", "interval min"),
    ("NoteInterceptMax", "interval max"),
    ("NoteInterceptNoHighVol", "intercept without high-volume raters"),
    ("NoteInterceptNoCorrelated", "intercept without correlated raters"),
    ("NumFinalRoundRatings", "final-round ratings"),
    ("ActiveRules", "active rules"),
)
_DECISION = (
    "finalRatingStatus", "decidedBy", "decidedByRule", "statusExplanation", "metaScorerActiveRules",
    "classification", "numRatings", "modelingGroup", "noteTopic", "topicNoteConfident",
)  # fmt: skip
_TAGS = ("firstTag", "secondTag", "activeFilterTags")
_HISTORY = (
    ("currentStatus", "timestampMillisOfCurrentStatus"),
    ("firstNonNMRStatus", "timestampMillisOfFirstNonNMRStatus"),
    ("mostRecentNonNMRStatus", "timestampMillisOfLatestNonNMRStatus"),
    ("lockedStatus", "timestampMillisOfStatusLock"),
    (None, "timestampMillisOfMostRecentStatusChange"),
    (None, "timestampMillisOfNmrDueToMinStableCrhTime"),
    ("currentDecidedBy", None),
)
_AUX = ("unlockedRatingStatus", "preStabilizationRatingStatus", "lowDiligenceIntercept", "ratingWeight")


@dataclass(frozen=True)
class Section:
    title: str
    rows: tuple[tuple[str, str], ...]


def _read(run: Path, name: str, required: bool) -> pd.DataFrame | None:
    for path in (run / name.replace(".tsv", ".parquet"), run / name):
        if path.is_file():
            if path.suffix == ".parquet":
                return pd.read_parquet(path)
            return pd.read_csv(path, sep="\t", dtype={"noteId": "int64"}, low_memory=False)
    if required:
        raise DataFormatError("not a scoring run: no scored notes here", path=str(run / name))
    return None


def _row(frame: pd.DataFrame | None, note_id: int) -> pd.Series | None:
    if frame is None or "noteId" not in frame.columns:
        return None
    hit = frame[frame["noteId"].astype("int64") == note_id]
    return None if hit.empty else hit.iloc[0]


def _plain(value: object) -> object:
    return value.item() if isinstance(value, np.generic) else value


def _missing(value: object) -> bool:
    value = _plain(value)
    return value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA


def fmt(value: object) -> str:
    """Numbers to 4 decimals, millisecond timestamps with their UTC time, missing values as '-'."""
    value = _plain(value)
    if _missing(value):
        return "-"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 10**11:
        when = pd.Timestamp(value, unit="ms", tz="UTC").strftime("%Y-%m-%d %H:%M:%S UTC")
        return f"{value} ({when})"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _pairs(row: pd.Series, columns) -> tuple[tuple[str, str], ...]:
    return tuple((c, fmt(row[c])) for c in columns if c in row.index and not _missing(row[c]))


def _interval_reading(row: pd.Series, prefix: str) -> str | None:
    """How to read a scorer's intercept interval next to its intercept.

    The interval is the range of four refits with pseudo-raters (§5), and those refits use plain
    mean regularization where the fit used loss-ratio regularization, so the fitted intercept often
    lies outside it (the reference's own outputs do this for most notes). Shown bare, that looks like
    a bug; said out loud, the reader knows only the upper bound decides anything (UcbCRNH).
    """
    names = [f"{prefix}{suffix}" for suffix in ("NoteIntercept", "NoteInterceptMin", "NoteInterceptMax")]
    if not all(name in row.index and not _missing(row[name]) for name in names):
        return None
    intercept, low, high = (float(_plain(row[name])) for name in names)
    if low <= intercept <= high:
        where = "the intercept lies inside the pseudo-rater refit range"
    else:
        side = "below" if intercept < low else "above"
        where = (
            f"the intercept lies {side} the pseudo-rater refit range, which comes from refits "
            "with a different regularization"
        )
    return f"{where}; only its upper bound ({fmt(high)}) is tested: Not Helpful when < -0.04 (UcbCRNH)"


def explain_note(run: str | os.PathLike[str], note_id: int) -> list[Section]:
    """The sections explaining ``note_id``'s status in the run written to ``run``.

    Raises ``DataFormatError`` when ``run`` is not a run directory or the note is not in it.
    """
    root = Path(run)
    if not root.is_dir():
        raise DataFormatError("no such run directory", path=str(root))
    scored = _read(root, schema.SCORED_NOTES_FILE, required=True)
    row = _row(scored, note_id)
    if row is None:
        raise DataFormatError(f"note {note_id} is not in this run", path=str(root / schema.SCORED_NOTES_FILE))
    sections = [Section("decision", (("noteId", str(note_id)), *_pairs(row, _DECISION)))]
    for prefix in SCORER_PREFIXES:
        rows = tuple(
            (label, fmt(row[f"{prefix}{suffix}"]))
            for suffix, label in _SCORER_FIELDS
            if f"{prefix}{suffix}" in row.index and not _missing(row[f"{prefix}{suffix}"])
        )
        reading = _interval_reading(row, prefix)
        if reading:
            rows = (*rows, ("interval reading", reading))
        if rows:
            sections.append(Section(f"scorer {prefix}", rows))
    sections.append(Section("tags", _pairs(row, _TAGS) or (("tags", "none"),)))
    history = _row(_read(root, schema.NOTE_STATUS_HISTORY_FILE, required=False), note_id)
    if history is not None:
        rows = []
        for status, stamp in _HISTORY:
            if (status or stamp) not in history.index:
                continue
            value = fmt(history.get(status)) if status else fmt(history.get(stamp))
            if status and stamp:
                value = f"{value} at {fmt(history.get(stamp))}"
            rows.append((status or stamp, value))
        locked = not _missing(history.get("lockedStatus"))
        rows.append(("locked", "yes" if locked else "no"))
        sections.append(Section("status history", tuple(rows)))
    aux = _row(_read(root, schema.AUX_NOTE_INFO_FILE, required=False), note_id)
    if aux is not None:
        sections.append(Section("filters and stabilization", _pairs(aux, _AUX)))
    return sections

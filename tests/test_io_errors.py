"""Every rejected file names the file, the 1-based line (header = 1) and the field."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.io import read_dataset
from bridgewatch.io.writers import write_notes
from test_io_helpers import T0, note_row, rating_row, tsv, write_basic


def _error(tmp_path: Path) -> DataFormatError:
    with pytest.raises(DataFormatError) as info:
        read_dataset(tmp_path)
    return info.value


@pytest.mark.parametrize(
    ("file", "columns", "drop"),
    [
        (schema.NOTES_FILE, schema.NOTE_COLUMNS, "classification"),
        (schema.NOTES_FILE, schema.NOTE_COLUMNS, "noteAuthorParticipantId"),
        (schema.RATINGS_FILE, schema.RATING_COLUMNS, "createdAtMillis"),
        (schema.STATUS_FILE, schema.NOTE_STATUS_HISTORY_COLUMNS, "noteId"),
        (schema.ENROLLMENT_FILE, schema.ENROLLMENT_COLUMNS, "enrollmentState"),
    ],
)
def test_missing_required_column(tmp_path: Path, file: str, columns: tuple[str, ...], drop: str) -> None:
    write_basic(tmp_path)
    tsv(tmp_path / file, [c for c in columns if c != drop], [])
    err = _error(tmp_path)
    assert err.path.endswith(file) and err.field == drop and err.line == 1
    assert f"required column {drop!r}" in str(err)


def test_ratings_without_any_helpfulness_column(tmp_path: Path) -> None:
    write_basic(tmp_path)
    header = [c for c in schema.RATING_COLUMNS if c not in ("helpful", "notHelpful", "helpfulnessLevel")]
    tsv(tmp_path / schema.RATINGS_FILE, header, [rating_row(10, "A")])
    err = _error(tmp_path)
    assert "at least one of" in str(err) and err.path.endswith(schema.RATINGS_FILE)


def test_column_named_twice(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(tmp_path / schema.RATINGS_FILE, [*schema.RATING_COLUMNS, "participantId"], [rating_row(10, "A")])
    err = _error(tmp_path)
    assert "appears twice" in str(err) and err.field == "participantId"


@pytest.mark.parametrize(
    ("file", "row", "field", "expect"),
    [
        (schema.RATINGS_FILE, rating_row(20, "B", noteId="12x"), "noteId", "expected an integer"),
        (
            schema.RATINGS_FILE,
            rating_row(20, "B", createdAtMillis="soon"),
            "createdAtMillis",
            "expected an integer",
        ),
        (schema.RATINGS_FILE, rating_row(20, "B", helpfulClear=2), "helpfulClear", "expected 0 or 1"),
        (schema.RATINGS_FILE, rating_row(20, "B", "VERY_HELPFUL"), "helpfulnessLevel", "expected one of"),
        (
            schema.RATINGS_FILE,
            rating_row(20, "B", ratingSourceBucketed="RANDOM"),
            "ratingSourceBucketed",
            "expected one of",
        ),
        (
            schema.RATINGS_FILE,
            rating_row(20, "B", createdAtMillis=T0 // 1000),
            "createdAtMillis",
            "not in milliseconds",
        ),
        (
            schema.RATINGS_FILE,
            rating_row(20, "B", createdAtMillis=T0 * 1000),
            "createdAtMillis",
            "not in milliseconds",
        ),
        (schema.RATINGS_FILE, rating_row(20, ""), "raterParticipantId", "empty value"),
        (schema.NOTES_FILE, note_row(20, cls="MAYBE"), "classification", "expected one of"),
        (
            schema.NOTES_FILE,
            note_row(20, createdAtMillis=T0 // 1000),
            "createdAtMillis",
            "not in milliseconds",
        ),
        (schema.NOTES_FILE, note_row(20, tweetId="1.5"), "tweetId", "expected an integer"),
    ],
)
def test_bad_value_names_line_and_field(
    tmp_path: Path, file: str, row: dict, field: str, expect: str
) -> None:
    write_basic(tmp_path)
    good = rating_row(10, "A") if file == schema.RATINGS_FILE else note_row(10)
    tsv(
        tmp_path / file,
        schema.RATING_COLUMNS if file == schema.RATINGS_FILE else schema.NOTE_COLUMNS,
        [good, row],
    )
    err = _error(tmp_path)
    assert err.path.endswith(file)
    assert (err.line, err.field) == (3, field)
    assert expect in err.reason
    assert f"line 3, field {field!r}" in str(err)


def test_bad_enrollment_state(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(
        tmp_path / schema.ENROLLMENT_FILE,
        schema.ENROLLMENT_COLUMNS,
        [
            {"participantId": "A", "enrollmentState": "earnedIn"},
            {"participantId": "B", "enrollmentState": "gone"},
        ],
    )
    err = _error(tmp_path)
    assert (err.line, err.field) == (3, "enrollmentState") and "earnedIn" in err.reason


def test_status_history_timestamp_in_seconds(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(
        tmp_path / schema.STATUS_FILE,
        schema.NOTE_STATUS_HISTORY_COLUMNS,
        [
            {
                "noteId": 10,
                "noteAuthorParticipantId": "X",
                "createdAtMillis": T0,
                "timestampMillisOfStatusLock": 1.7e9,
            }
        ],
    )
    err = _error(tmp_path)
    assert (err.line, err.field) == (2, "timestampMillisOfStatusLock") and "milliseconds" in err.reason


def test_ragged_row(tmp_path: Path) -> None:
    write_basic(tmp_path)
    path = tmp_path / schema.RATINGS_FILE
    lines = path.read_text().splitlines()
    lines[2] = lines[2] + "\textra"
    path.write_text("\n".join(lines) + "\n")
    err = _error(tmp_path)
    assert err.line == 3 and "fields" in err.reason and err.path.endswith(schema.RATINGS_FILE)


def test_line_numbers_count_physical_lines_after_multiline_text(tmp_path: Path) -> None:
    write_basic(tmp_path)
    notes = pd.DataFrame([note_row(10, summary="one\ntwo\nthree"), note_row(20, classification="BAD")])
    write_notes(tmp_path / schema.NOTES_FILE, notes)
    err = _error(tmp_path)
    assert (err.line, err.field) == (5, "classification")


def test_conflicting_duplicate_note_is_fatal(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(tmp_path / schema.NOTES_FILE, schema.NOTE_COLUMNS, [note_row(10), note_row(10, summary="other")])
    err = _error(tmp_path)
    assert (err.line, err.field) == (3, "noteId") and "different values" in err.reason


def test_not_utf8(tmp_path: Path) -> None:
    write_basic(tmp_path)
    path = tmp_path / schema.RATINGS_FILE
    path.write_bytes(path.read_bytes().replace(b"\tA\t", b"\t\xff\xfe\t", 1))
    err = _error(tmp_path)
    assert err.path.endswith(schema.RATINGS_FILE) and err.line == 2


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="no notes file"):
        read_dataset(tmp_path)
    write_basic(tmp_path)
    with pytest.raises(DataFormatError, match="not found"):
        read_dataset(tmp_path, status=tmp_path / "nope.tsv")

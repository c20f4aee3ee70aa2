"""read_dataset tolerances: header names, legacy layouts, compression, quoting, duplicates."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.io import read_dataset
from bridgewatch.io.writers import write_dataset
from test_io_helpers import T0, note_row, rating_row, tsv, write_basic


def test_reads_basic_directory(tmp_path: Path) -> None:
    write_basic(tmp_path)
    ds = read_dataset(tmp_path)
    assert list(ds.notes["noteId"]) == [10, 20]
    assert ds.notes["tweetId"].dtype == np.int64
    m = ds.ratings
    assert m.n_ratings == 3
    # Note index space = union of notes, NSH and ratings note ids, sorted.
    assert list(m.note_ids) == [10, 20, 30]
    assert list(m.rater_ids) == ["A", "B"]
    assert m.value.tolist() == [1.0, 0.5, 0.0]
    assert m.has_tag("helpfulClear").tolist() == [True, False, False]
    assert m.population_sampled.tolist() == [False, True, False]
    assert list(ds.status_history.columns) == list(schema.NOTE_STATUS_HISTORY_COLUMNS)
    assert ds.status_history["timestampMillisOfStatusLock"].isna().all()
    assert list(ds.enrollment.columns) == list(schema.ENROLLMENT_COLUMNS)
    assert ds.enrollment["modelingGroup"].tolist() == [13.0]


def test_ratings_on_unknown_notes_are_kept_with_warning(tmp_path: Path) -> None:
    write_basic(tmp_path)
    ds = read_dataset(tmp_path)
    (w,) = [w for w in ds.warnings if "absent from" in w]
    assert "ratings-00000.tsv line 4" in w and "noteId 30" in w
    assert 2 in ds.ratings.note.tolist()


def test_unknown_columns_ignored_with_one_warning_per_file(tmp_path: Path) -> None:
    write_basic(tmp_path)
    header = [*schema.RATING_COLUMNS, "extraA", "extraB"]
    tsv(tmp_path / schema.RATINGS_FILE, header, [rating_row(10, "A", extraA="x", extraB=7)])
    ds = read_dataset(tmp_path)
    warned = [w for w in ds.warnings if "unknown column" in w]
    assert len(warned) == 1 and "ratings-00000.tsv" in warned[0] and "extraA, extraB" in warned[0]
    assert ds.ratings.n_ratings == 1


def test_missing_optional_columns_get_defaults(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(
        tmp_path / schema.NOTES_FILE,
        ["noteId", "noteAuthorParticipantId", "createdAtMillis", "classification"],
        [note_row(10)],
    )
    tsv(
        tmp_path / schema.RATINGS_FILE,
        ["noteId", "raterParticipantId", "createdAtMillis", "helpfulnessLevel"],
        [rating_row(10, "A")],
    )
    ds = read_dataset(tmp_path)
    assert ds.notes["tweetId"].tolist() == [-1]
    assert ds.notes["summary"].tolist() == [""]
    assert list(ds.notes.columns) == list(schema.NOTE_COLUMNS)
    assert ds.ratings.tags.tolist() == [0] and ds.ratings.population_sampled.tolist() == [False]


def test_reordered_columns_and_public_participant_header(tmp_path: Path) -> None:
    write_basic(tmp_path)
    notes_header = ["classification", "createdAtMillis", "participantId", "noteId", "tweetId"]
    tsv(
        tmp_path / schema.NOTES_FILE,
        notes_header,
        [{**note_row(10), "participantId": "AUTH9"}, {**note_row(20), "participantId": "AUTH8"}],
    )
    r_header = ["helpfulnessLevel", "participantId", "noteId", "createdAtMillis", "notHelpfulOutdated"]
    tsv(
        tmp_path / schema.RATINGS_FILE,
        r_header,
        [{**rating_row(20, "A", schema.NOT_HELPFUL), "participantId": "R1", "notHelpfulOutdated": 1}],
    )
    ds = read_dataset(tmp_path)
    assert ds.notes["noteAuthorParticipantId"].tolist() == ["AUTH9", "AUTH8"]
    assert ds.ratings.rater_ids.tolist() == ["R1"]
    assert ds.ratings.value.tolist() == [0.0]
    assert ds.ratings.has_tag("notHelpfulOutdated").tolist() == [True]


def test_participant_ids_stay_strings(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(tmp_path / schema.RATINGS_FILE, schema.RATING_COLUMNS, [rating_row(10, "007"), rating_row(20, "7")])
    ds = read_dataset(tmp_path)
    assert ds.ratings.rater_ids.tolist() == ["007", "7"]


@pytest.mark.parametrize(
    ("helpful", "not_helpful", "level", "expected"),
    [(1, 0, "", 1.0), (0, 1, "", 0.0), (1, 0, schema.NOT_HELPFUL, 0.0), (0, 1, schema.SOMEWHAT_HELPFUL, 0.5)],
)
def test_legacy_helpful_columns_then_level_wins(
    tmp_path: Path, helpful, not_helpful, level, expected
) -> None:
    write_basic(tmp_path)
    tsv(
        tmp_path / schema.RATINGS_FILE,
        schema.RATING_COLUMNS,
        [rating_row(10, "A", level, helpful=helpful, notHelpful=not_helpful)],
    )
    assert read_dataset(tmp_path).ratings.value.tolist() == [expected]


def test_legacy_ratings_layout_without_helpfulness_level(tmp_path: Path) -> None:
    write_basic(tmp_path)
    header = [c for c in schema.RATING_COLUMNS if c != "helpfulnessLevel"]
    tsv(
        tmp_path / schema.RATINGS_FILE,
        header,
        [rating_row(10, "A", helpful=1), rating_row(20, "A", notHelpful=1), rating_row(20, "B")],
    )
    ds = read_dataset(tmp_path)
    assert ds.ratings.value.tolist() == [1.0, 0.0]
    (w,) = [w for w in ds.warnings if "no helpfulness value" in w]
    assert "dropped 1 rating" in w and "ratings-00000.tsv line 4" in w


@pytest.mark.parametrize("n_cols", [24, 23, 22])
def test_status_history_legacy_widths_and_alias(tmp_path: Path, n_cols: int) -> None:
    write_basic(tmp_path)
    header = [schema.NSH_ALIASES.get(c, c) for c in schema.NOTE_STATUS_HISTORY_COLUMNS][:n_cols]
    header = ["latestNonNMRStatus" if c == "mostRecentNonNMRStatus" else c for c in header]
    row = {c: "" for c in header}
    row.update(
        noteId=10,
        noteAuthorParticipantId="AUTH1",
        createdAtMillis=T0 + 10,
        latestNonNMRStatus=schema.CRH,
        timestampMillisOfNmrDueToMinStableCrhTime=-1,
        timestampMillisOfStatusLock=T0 + 99,
    )
    if n_cols == 24:
        row["abovePcrhThresholdTime"] = T0 + 5
    tsv(tmp_path / schema.STATUS_FILE, header, [row])
    nsh = read_dataset(tmp_path).status_history
    assert list(nsh.columns) == list(schema.NOTE_STATUS_HISTORY_COLUMNS)
    assert nsh["mostRecentNonNMRStatus"].tolist() == [schema.CRH]
    assert nsh["timestampMillisOfNmrDueToMinStableCrhTime"].tolist() == [-1.0]
    assert nsh["timestampMillisOfStatusLock"].tolist() == [float(T0 + 99)]
    late = nsh["abovePcrhThresholdTime"].tolist()
    assert late == ([float(T0 + 5)] if n_cols == 24 else [pytest.approx(np.nan, nan_ok=True)])


def test_gzip_parquet_and_split_ratings(tmp_path: Path) -> None:
    src = write_basic(tmp_path / "src")
    ref = read_dataset(src)
    gz = tmp_path / "gz"
    gz.mkdir()
    for f in src.iterdir():
        with open(f, "rb") as fin, gzip.open(gz / (f.name + ".gz"), "wb") as fout:
            shutil.copyfileobj(fin, fout)
    split = tmp_path / "split"
    shutil.copytree(src, split)
    lines = (split / schema.RATINGS_FILE).read_text().splitlines(keepends=True)
    (split / schema.RATINGS_FILE).write_text("".join(lines[:2]))
    (split / "ratings-00001.tsv").write_text(lines[0] + "".join(lines[2:]))
    pq_dir = tmp_path / "pq"
    write_dataset(ref, pq_dir, fmt="parquet")
    rdir = tmp_path / "rdir"
    shutil.copytree(src, rdir)
    (rdir / "ratings").mkdir()
    (rdir / schema.RATINGS_FILE).rename(rdir / "ratings" / "part.tsv")
    for d in (gz, split, pq_dir, rdir):
        got = read_dataset(d)
        assert got.notes.equals(ref.notes), d
        for f in (
            "note",
            "rater",
            "value",
            "created_at",
            "tags",
            "population_sampled",
            "note_ids",
            "rater_ids",
        ):
            assert np.array_equal(getattr(got.ratings, f), getattr(ref.ratings, f)), (d, f)


def test_quoted_text_with_tabs_quotes_and_newlines(tmp_path: Path) -> None:
    write_basic(tmp_path)
    text = 'has\ta tab, "quotes" and\na newline'
    notes = pd.DataFrame([note_row(10, summary=text), note_row(20, summary="plain")])
    from bridgewatch.io.writers import write_notes, write_ratings

    write_notes(tmp_path / schema.NOTES_FILE, notes)
    ratings = pd.DataFrame([rating_row(10, "A", suggestion='line1\nline2\t"x"'), rating_row(20, "B")])
    write_ratings(tmp_path / schema.RATINGS_FILE, ratings)
    ds = read_dataset(tmp_path)
    assert ds.notes["summary"].tolist() == [text, "plain"]
    assert ds.ratings.n_ratings == 2


def test_exact_duplicate_ratings_dropped(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(
        tmp_path / schema.RATINGS_FILE,
        schema.RATING_COLUMNS,
        [rating_row(10, "A"), rating_row(20, "A"), rating_row(10, "A")],
    )
    ds = read_dataset(tmp_path)
    assert ds.ratings.n_ratings == 2
    (w,) = [w for w in ds.warnings if "exact duplicate" in w]
    assert "dropped 1" in w and "ratings-00000.tsv line 4" in w


def test_conflicting_duplicate_ratings_keep_latest(tmp_path: Path) -> None:
    write_basic(tmp_path)
    rows = [
        rating_row(10, "A", schema.HELPFUL, createdAtMillis=T0 + 500),
        rating_row(10, "A", schema.NOT_HELPFUL, createdAtMillis=T0 + 400),
        rating_row(20, "B", schema.HELPFUL, createdAtMillis=T0 + 7),
        rating_row(20, "B", schema.SOMEWHAT_HELPFUL, createdAtMillis=T0 + 7),  # tie: later row wins
    ]
    tsv(tmp_path / schema.RATINGS_FILE, schema.RATING_COLUMNS, rows)
    ds = read_dataset(tmp_path)
    assert ds.ratings.value.tolist() == [1.0, 0.5]
    assert ds.ratings.created_at.tolist() == [T0 + 500, T0 + 7]
    (w,) = [w for w in ds.warnings if "more than once" in w]
    assert w.startswith("2 (rater, note) pair") and "ratings-00000.tsv line 3" in w


def test_exact_duplicate_notes_dropped(tmp_path: Path) -> None:
    write_basic(tmp_path)
    tsv(tmp_path / schema.NOTES_FILE, schema.NOTE_COLUMNS, [note_row(10), note_row(20), note_row(10)])
    ds = read_dataset(tmp_path)
    assert ds.notes["noteId"].tolist() == [10, 20]
    assert any("exact duplicate" in w and "notes-00000.tsv" in w and "line 4" in w for w in ds.warnings)


def test_explicit_paths_without_directory(tmp_path: Path) -> None:
    write_basic(tmp_path)
    ds = read_dataset(None, notes=tmp_path / schema.NOTES_FILE, ratings=tmp_path / schema.RATINGS_FILE)
    assert ds.ratings.n_ratings == 3
    assert len(ds.status_history) == 0 and list(ds.status_history.columns) == list(
        schema.NOTE_STATUS_HISTORY_COLUMNS
    )
    assert len(ds.enrollment) == 0 and ds.enrollment["modelingGroup"].dtype == np.float64

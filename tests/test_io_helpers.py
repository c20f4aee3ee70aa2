"""Tiny hand-written public-format files for the io tests."""

from __future__ import annotations

from pathlib import Path

from bridgewatch import schema

T0 = 1_700_000_000_000


def tsv(path: Path, header: list[str] | tuple[str, ...], rows: list[dict[str, object]]) -> Path:
    """Write ``rows`` (dicts, missing keys empty) under ``header``, tab separated."""
    lines = ["\t".join(header)]
    lines += ["\t".join(str(r.get(h, "")) for h in header) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def note_row(note_id: int, author: str = "AUTH1", cls: str = schema.MISLEADING, **kw: object) -> dict:
    row: dict[str, object] = {
        "noteId": note_id,
        "noteAuthorParticipantId": author,
        "createdAtMillis": T0 + note_id,
        "tweetId": 1000 + note_id,
        "classification": cls,
        "summary": f"note {note_id}",
        **{c: 0 for c in schema.NOTE_REASON_COLUMNS},
        "trustworthySources": 1,
        "isMediaNote": 0,
        "isCollaborativeNote": 0,
    }
    row.update(kw)
    return row


def rating_row(note_id: int, rater: str, level: str = schema.HELPFUL, **kw: object) -> dict:
    row: dict[str, object] = {
        "noteId": note_id,
        "raterParticipantId": rater,
        "createdAtMillis": T0 + 100 + note_id,
        "version": 2,
        "agree": 0,
        "disagree": 0,
        "helpful": 0,
        "notHelpful": 0,
        "helpfulnessLevel": level,
        **{t: 0 for t in schema.RATING_TAGS},
        "ratedOnTweetId": 1000 + note_id,
        "ratingSourceBucketed": schema.RATING_SOURCE_DEFAULT,
    }
    row.update(kw)
    return row


def write_basic(d: Path) -> Path:
    """Two notes, three ratings (one on a note missing from notes), one NSH row, one enrollment."""
    d.mkdir(parents=True, exist_ok=True)
    tsv(d / schema.NOTES_FILE, schema.NOTE_COLUMNS, [note_row(10), note_row(20, cls=schema.NOT_MISLEADING)])
    tsv(
        d / schema.RATINGS_FILE,
        schema.RATING_COLUMNS,
        [
            rating_row(10, "A", helpfulClear=1),
            rating_row(20, "B", schema.SOMEWHAT_HELPFUL, ratingSourceBucketed="POPULATION_SAMPLED"),
            rating_row(30, "A", schema.NOT_HELPFUL),
        ],
    )
    tsv(
        d / schema.STATUS_FILE,
        schema.NOTE_STATUS_HISTORY_COLUMNS,
        [
            {
                "noteId": 10,
                "noteAuthorParticipantId": "AUTH1",
                "createdAtMillis": T0 + 10,
                "currentStatus": "NEEDS_MORE_RATINGS",
            }
        ],
    )
    tsv(
        d / schema.ENROLLMENT_FILE,
        schema.ENROLLMENT_COLUMNS,
        [
            {
                "participantId": "A",
                "enrollmentState": "earnedIn",
                "successfulRatingNeededToEarnIn": 5,
                "timestampOfLastStateChange": T0,
                "timestampOfLastEarnOut": 1,
                "modelingPopulation": "CORE",
                "modelingGroup": 13,
                "numberOfTimesEarnedOut": 0,
            }
        ],
    )
    return d


def rows_tsv(header: list[str] | tuple[str, ...], rows: list[list[object]]) -> str:
    return "\n".join(["\t".join(header)] + ["\t".join(str(v) for v in r) for r in rows]) + "\n"


# Every array of a RatingMatrix: two matrices are the same when all of these are.
MATRIX_FIELDS = (
    "note",
    "rater",
    "value",
    "created_at",
    "tags",
    "population_sampled",
    "note_ids",
    "rater_ids",
    "note_indptr",
    "by_rater",
    "rater_indptr",
)

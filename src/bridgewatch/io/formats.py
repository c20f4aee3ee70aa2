"""What each public input file must and may contain: column kinds, defaults, aliases.

The reader finds columns by header name (the reference assigns them by position); these specs say,
for every column we know, how to parse and check it and what to fill in when the file lacks it.
One table per file keeps the fast (pyarrow) and the slow (line-by-line diagnostic) paths checking
exactly the same rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from bridgewatch import schema


class Kind(Enum):
    """How a column is parsed and checked."""

    INT = "int"  # int64; empty -> default
    MILLIS = "millis"  # int64 ms since the epoch, within schema.MIN/MAX_PLAUSIBLE_MILLIS
    OPT_MILLIS = "opt_millis"  # float64; empty -> NaN; values <= 0 are sentinels, others plausible ms
    FLOAT = "float"  # float64; empty -> NaN
    BIT = "bit"  # 0/1; empty -> 0
    TEXT = "text"  # str; empty -> "" (free text, never checked)
    ID = "id"  # str; opaque participant id, must not be empty
    STR = "str"  # str; empty -> NA
    ENUM = "enum"  # str from a fixed set; empty -> NA


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    required: bool = False
    default: object = None
    values: tuple[str, ...] = ()  # allowed values for ENUM
    nullable_int: bool = False  # INT with empty cells kept as NA (pandas Int64)


@dataclass(frozen=True)
class FileSpec:
    label: str  # what the file is, for messages ("notes", "ratings", ...)
    columns: tuple[Column, ...]
    order: tuple[str, ...]  # the reference's column order (what writers emit)
    aliases: dict[str, str] = field(default_factory=dict)
    # Alternative groups: at least one column of each group must be present.
    one_of: tuple[tuple[str, ...], ...] = ()

    def column(self, name: str) -> Column:
        return self._by_name[name]

    @property
    def _by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)


def _cols(kind: Kind, names: tuple[str, ...], **kw: object) -> tuple[Column, ...]:
    return tuple(Column(n, kind, **kw) for n in names)  # type: ignore[arg-type]


P = schema.PUBLIC_PARTICIPANT_HEADER

NOTES = FileSpec(
    label="notes",
    columns=(
        Column("noteId", Kind.INT, required=True),
        Column("noteAuthorParticipantId", Kind.ID, required=True),
        Column("createdAtMillis", Kind.MILLIS, required=True),
        Column("tweetId", Kind.INT, default=-1),
        Column("classification", Kind.ENUM, required=True, values=schema.CLASSIFICATIONS),
        *_cols(Kind.STR, ("believable", "harmful", "validationDifficulty")),
        *_cols(Kind.INT, schema.NOTE_REASON_COLUMNS, default=0, nullable_int=True),
        Column("trustworthySources", Kind.INT, default=0, nullable_int=True),
        Column("summary", Kind.TEXT, default=""),
        Column("isMediaNote", Kind.INT, default=0, nullable_int=True),
        Column("isCollaborativeNote", Kind.INT, default=0, nullable_int=True),
    ),
    order=schema.NOTE_COLUMNS,
    aliases={P: "noteAuthorParticipantId"},
)

# The notes columns the batch job reads (``read_dataset(note_columns=...)``): the others (the
# misleading / not-misleading reasons, believable, harmful, ...) are checked but not kept, ~180
# bytes a note (~0.4 GiB at X's 2.5M notes) that nothing in scoring reads.
SCORING_NOTE_COLUMNS = (
    "noteId",
    "noteAuthorParticipantId",
    "createdAtMillis",
    "tweetId",
    "classification",
    "summary",
)

# What contributor scoring reads of the notes (``preprocess.note_table``).
CONTRIBUTOR_NOTE_COLUMNS = ("noteId", "noteAuthorParticipantId", "createdAtMillis", "classification")

# The note status history columns prescoring and contributor scoring read
# (``preprocess.note_table``'s fallbacks and the last non-NMR time): neither writes a status
# history, so they keep 4 of the 24 columns (96 of 371 bytes a row, measured deep at `medium`;
# ~0.64 GiB less at X's 2.5M notes by that ratio).
PRESCORING_STATUS_COLUMNS = (
    "noteId",
    "noteAuthorParticipantId",
    "createdAtMillis",
    "timestampMillisOfLatestNonNMRStatus",
)

# Only the columns scoring uses are parsed; the rest of a ratings row is skipped unread.
RATINGS = FileSpec(
    label="ratings",
    columns=(
        Column("noteId", Kind.INT, required=True),
        Column("raterParticipantId", Kind.ID, required=True),
        Column("createdAtMillis", Kind.MILLIS, required=True),
        Column("helpful", Kind.BIT, default=0),
        Column("notHelpful", Kind.BIT, default=0),
        Column("helpfulnessLevel", Kind.ENUM, values=tuple(schema.HELPFULNESS_LEVELS)),
        *_cols(Kind.BIT, schema.RATING_TAGS, default=0),
        Column(
            "ratingSourceBucketed",
            Kind.ENUM,
            default=schema.RATING_SOURCE_DEFAULT,
            values=schema.RATING_SOURCES,
        ),
    ),
    order=schema.RATING_COLUMNS,
    aliases={P: "raterParticipantId"},
    one_of=(("helpfulnessLevel", "helpful", "notHelpful"),),
)
# Columns of the public ratings file that we know but do not read.
RATINGS_UNUSED = ("version", "agree", "disagree", "ratedOnTweetId", "suggestion", "suggestionId")

_NSH_STATUS = schema.NSH_TEXT_COLUMNS
_NSH_FLOAT = ("currentModelingGroup", "currentModelingMultiGroup", "timestampMinuteOfFinalScoringOutput")


def _nsh_column(name: str) -> Column:
    if name == "noteId":
        return Column(name, Kind.INT, required=True)
    if name == "noteAuthorParticipantId":
        return Column(name, Kind.ID, required=True)
    if name == "createdAtMillis":
        return Column(name, Kind.MILLIS, required=True)
    if name in _NSH_STATUS:
        return Column(name, Kind.STR)
    if name in _NSH_FLOAT:
        return Column(name, Kind.FLOAT)
    return Column(name, Kind.OPT_MILLIS)


STATUS_HISTORY = FileSpec(
    label="note status history",
    columns=tuple(_nsh_column(n) for n in schema.NOTE_STATUS_HISTORY_COLUMNS),
    order=schema.NOTE_STATUS_HISTORY_COLUMNS,
    aliases={P: "noteAuthorParticipantId", **schema.NSH_ALIASES},
)

ENROLLMENT = FileSpec(
    label="user enrollment",
    columns=(
        Column("participantId", Kind.ID, required=True),
        Column("enrollmentState", Kind.ENUM, required=True, values=tuple(schema.ENROLLMENT_STATES)),
        Column("successfulRatingNeededToEarnIn", Kind.INT, default=0, nullable_int=True),
        Column("timestampOfLastStateChange", Kind.INT, default=0, nullable_int=True),
        Column("timestampOfLastEarnOut", Kind.INT, default=1),
        Column("modelingPopulation", Kind.STR),
        Column("modelingGroup", Kind.FLOAT),
        Column("numberOfTimesEarnedOut", Kind.INT, default=0),
    ),
    order=schema.ENROLLMENT_COLUMNS,
)

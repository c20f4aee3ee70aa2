"""``read_dataset``: the four public input files -> one ``Dataset`` (frames + ``RatingMatrix``).

What is fatal and what is a warning (every message names the file and the 1-based line, header =
line 1, and the field):

Fatal (``DataFormatError``, nothing is returned):
  - a file that cannot be read (not UTF-8, bad gzip, broken quoting, ragged rows);
  - a required column missing from the header (notes: noteId, noteAuthorParticipantId or
    participantId, createdAtMillis, classification; ratings: noteId, raterParticipantId or
    participantId, createdAtMillis and at least one of helpfulnessLevel/helpful/notHelpful; NSH:
    noteId, noteAuthorParticipantId, createdAtMillis; enrollment: participantId, enrollmentState),
    or a column named twice;
  - a value that is not a number where one is expected, a tag that is not 0/1, an empty note id,
    participant id or creation time;
  - an unknown enum value (helpfulnessLevel, classification, ratingSourceBucketed, enrollmentState);
  - a timestamp outside ``schema.MIN_PLAUSIBLE_MILLIS..MAX_PLAUSIBLE_MILLIS`` (seconds or
    microseconds instead of milliseconds); NSH timestamps may also be empty or <= 0 (sentinels);
  - the same noteId (notes, NSH) or participantId (enrollment) twice with different values.

Warnings (counted, the first offending line named, the data kept or dropped as said):
  - unknown extra columns (ignored; one warning per file); optional columns missing (defaults);
  - exact duplicate rows (dropped); a (rater, note) pair rated twice with different values (the
    latest by createdAtMillis is kept, ties broken by file order: the later row wins);
  - ratings with no helpfulness value (dropped, as the reference does);
  - ratings on notes absent from the notes file (kept; the scoring layer applies §1.7 step 6).

Line numbers count physical lines, so they stay right when quoted text spans several lines.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from bridgewatch import schema
from bridgewatch.errors import DataFormatError
from bridgewatch.io import cache, formats
from bridgewatch.io.kernels import sort_strings
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.io.ratings import Progress, RawRatings, read_ratings
from bridgewatch.io.segments import recode
from bridgewatch.io.tables import empty_frame, read_enrollment, read_notes, read_status_history

PathLike = str | os.PathLike[str]
_SUFFIXES = (".tsv", ".tsv.gz", ".parquet")


@dataclass(frozen=True, eq=False)
class Dataset:
    """The public input files, read and checked.

    - ``notes``: one row per note, ``schema.NOTE_COLUMNS``; noteId/createdAtMillis/tweetId int64
      (tweetId -1 when missing), participant ids and text as str, classification str or NA.
    - ``ratings``: ``RatingMatrix``; note index space = sorted union of noteIds in notes, NSH and
      ratings; ``rater_ids`` = sorted ids of participants who rated.
    - ``status_history``: the 24 ``schema.NOTE_STATUS_HISTORY_COLUMNS``; timestamps float64 (NaN
      when empty), statuses str or NA.
    - ``enrollment``: the 8 ``schema.ENROLLMENT_COLUMNS``; modelingGroup float64 (NaN missing).
    - ``warnings``: human-readable, each naming its file.
    """

    notes: pd.DataFrame
    ratings: RatingMatrix
    status_history: pd.DataFrame
    enrollment: pd.DataFrame
    warnings: tuple[str, ...]


def _find(directory: Path, stem: str) -> Path | None:
    for suffix in _SUFFIXES:
        p = directory / f"{stem}{suffix}"
        if p.is_file():
            return p
    return None


def _ratings_paths(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    found: list[Path] = []
    if source.is_dir():
        found = [p for p in sorted(source.iterdir()) if p.is_file() and p.name.endswith(_SUFFIXES)]
    return found


def find_input_files(source: PathLike) -> dict[str, object]:
    """Locate the input files in a data directory (keys notes, ratings, status, enrollment)."""
    d = Path(source)
    if not d.is_dir():
        raise DataFormatError("not a directory of public data files", path=str(d))
    ratings = _ratings_paths(d / "ratings")
    if not ratings:
        ratings = sorted(
            p
            for p in d.iterdir()
            if p.is_file() and p.name.startswith("ratings-") and p.name.endswith(_SUFFIXES)
        )
        # A directory may hold both foo.tsv and foo.tsv.gz (or .parquet): read each stem once.
        by_stem: dict[str, Path] = {}
        for p in ratings:
            stem = p.name.split(".")[0]
            by_stem.setdefault(stem, p)
        ratings = [by_stem[s] for s in sorted(by_stem)]
    return {
        "notes": _find(d, "notes-00000"),
        "ratings": ratings,
        "status": _find(d, "noteStatusHistory-00000"),
        "enrollment": _find(d, "userEnrollment-00000"),
    }


def read_dataset(
    source: PathLike | None,
    *,
    notes: PathLike | None = None,
    ratings: PathLike | list[PathLike] | None = None,
    status: PathLike | None = None,
    enrollment: PathLike | None = None,
    progress: Progress | None = None,
    cache_dir: PathLike | None = None,
    num_threads: int | None = None,
    note_columns: tuple[str, ...] | None = None,
    status_columns: tuple[str, ...] | None = None,
) -> Dataset:
    """Read a data directory (or explicit files; explicit paths override the directory's).

    ``ratings`` may be a file, a list of files or a directory of ``*.tsv``/``.tsv.gz``/``.parquet``.
    ``progress(stage, done, total)`` is called as the ratings stream in (bytes of input).
    ``cache_dir``: keep the ratings matrix there after the first read and start from it while
    the ratings, notes and NSH files are unchanged (``io.cache``). ``num_threads``: threads
    parsing the ratings (None: one per core); the result does not depend on it.
    ``note_columns``: keep only these notes columns (every column is still checked), e.g.
    ``formats.SCORING_NOTE_COLUMNS`` for a batch job that only scores; None: all of them.
    ``status_columns``: likewise for the note status history (``formats.PRESCORING_STATUS_COLUMNS``
    for prescoring, which writes no status history).
    Raises ``DataFormatError`` on a bad file (see the module docstring for what is fatal).
    """
    found: dict[str, object] = find_input_files(source) if source is not None else {}
    notes_path = notes if notes is not None else found.get("notes")
    status_path = status if status is not None else found.get("status")
    enroll_path = enrollment if enrollment is not None else found.get("enrollment")
    if ratings is None:
        rating_paths = [Path(p) for p in found.get("ratings", [])]  # type: ignore[union-attr]
    elif isinstance(ratings, list | tuple):
        rating_paths = [Path(p) for p in ratings]
    else:
        rating_paths = _ratings_paths(Path(ratings))
        if not rating_paths:
            raise DataFormatError("no ratings files found", path=str(ratings))
    for label, p in (
        ("notes", notes_path),
        *(("ratings", r) for r in rating_paths),
        ("NSH", status_path),
        ("enrollment", enroll_path),
    ):
        if p is not None and not Path(p).is_file():  # type: ignore[arg-type]
            raise DataFormatError(f"{label} file not found", path=str(p))
    if notes_path is None:
        raise DataFormatError(f"no notes file ({schema.NOTES_FILE}) found", path=str(source))
    if not rating_paths:
        raise DataFormatError(f"no ratings file ({schema.RATINGS_FILE} or ratings/) found", path=str(source))

    warnings: list[str] = []
    notes_frame = read_notes(notes_path, warnings, note_columns)  # type: ignore[arg-type]
    nsh = (
        read_status_history(status_path, warnings)  # type: ignore[arg-type]
        if status_path is not None
        else empty_frame(formats.STATUS_HISTORY)
    )
    if status_columns is not None:  # (after every column was checked and deduplicated)
        nsh = nsh[list(status_columns)]
    enroll = (
        read_enrollment(enroll_path, warnings)  # type: ignore[arg-type]
        if enroll_path is not None
        else empty_frame(formats.ENROLLMENT)
    )
    key = cache.cache_key(rating_paths, notes_path, status_path) if cache_dir is not None else None  # type: ignore[arg-type]
    hit = cache.load(cache_dir, key, warnings) if cache_dir is not None and key is not None else None
    if hit is not None:
        matrix, ratings_warnings = hit
        warnings.extend(ratings_warnings)
    else:
        before = len(warnings)
        raw = read_ratings([str(p) for p in rating_paths], warnings, progress, num_threads)
        matrix = assemble_matrix(
            raw,
            notes_frame["noteId"].to_numpy(np.int64),
            nsh["noteId"].to_numpy(np.int64),
            warnings,
            notes_label=str(notes_path),
        )
        del raw
        if cache_dir is not None and key is not None:
            try:
                cache.store(cache_dir, key, matrix, warnings[before:])
            except OSError as exc:
                warnings.append(f"could not write the ratings cache in {cache_dir} ({exc})")
            else:
                # Score from the entry just written, as a later run would: its rating columns are
                # mapped, and their pages go back as passes finish, where the parsed arrays stay
                # on the heap (at X's scale ~3 GiB more under every fit of the first run).
                mapped = cache.load(cache_dir, key, [])
                if mapped is not None:
                    matrix = mapped[0]
    return Dataset(notes_frame, matrix, nsh, enroll, tuple(warnings))


def assemble_matrix(
    raw: RawRatings,
    notes_ids: np.ndarray,
    nsh_ids: np.ndarray,
    warnings: list[str],
    notes_label: str = "notes",
) -> RatingMatrix:
    """Map codes to the sorted id spaces, resolve duplicates, sort and index the ratings."""
    from bridgewatch.io.build import build_deduplicated

    own = notes_ids is raw.note_ids  # (``read_rating_matrix`` without note ids: all are known)
    note_ids = np.unique(np.concatenate([notes_ids, nsh_ids, *([] if own else [raw.note_ids])]))
    known = None if own else np.isin(raw.note_ids, notes_ids)
    if known is not None and not known.all():
        unknown = ~known[raw.note_code]
        n_unknown = int(unknown.sum())
        first = int(np.argmax(unknown))
        warnings.append(
            f"{n_unknown} rating(s) on {int((~known).sum())} note(s) absent from {notes_label} (kept; "
            f"first at {raw.where(raw.record_of(first))}, noteId {raw.note_ids[raw.note_code[first]]})"
        )
    note_map = np.searchsorted(note_ids, raw.note_ids).astype(np.int32)
    order, rater_ids = _sorted_ids(raw.rater_ids)
    raw.rater_ids = rater_ids  # sorted, as the codes are about to be (frees the arrow buffers)
    rater_map = np.empty(order.shape[0], dtype=np.int32)
    rater_map[order] = np.arange(order.shape[0], dtype=np.int32)
    # Codes become dense indices, in place.
    recode(raw.note_code, 0, raw.note_code.shape[0], note_map)
    recode(raw.rater_code, 0, raw.rater_code.shape[0], rater_map)
    return build_deduplicated(raw, note_ids, rater_ids, warnings)


def _sorted_ids(names: np.ndarray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts participant ids (str objects or arrow strings) by UTF-8 bytes, which
    is code point order, the order of Python str; and the sorted ids as an object array."""
    if isinstance(names, pa.Array):
        ids = np.asarray(names.to_numpy(zero_copy_only=False), dtype=object)
    else:  # (arrow's own pool keeps freed memory for seconds; malloc's is returned by ``heap``)
        ids, names = names, pa.array(names, type=pa.string(), memory_pool=pa.system_memory_pool())
    _, off, data = names.buffers()
    offsets = np.frombuffer(off, np.int64 if pa.types.is_large_string(names.type) else np.int32)
    offsets = offsets[names.offset : names.offset + len(names) + 1]
    order = sort_strings(
        offsets, np.frombuffer(data, np.uint8) if data is not None else np.empty(0, np.uint8)
    )
    return order, ids[order]


def read_rating_matrix(
    ratings: PathLike | list[PathLike],
    *,
    note_ids: np.ndarray | None = None,
    progress: Progress | None = None,
    num_threads: int | None = None,
) -> tuple[RatingMatrix, tuple[str, ...]]:
    """Read ratings files alone into a ``RatingMatrix`` (and the warnings).

    ``note_ids`` (int64[K]) are added to the note index space and count as known notes; without
    them no unknown-note warning is given. ``num_threads`` as in ``read_dataset``.
    """
    paths = [Path(p) for p in ratings] if isinstance(ratings, list | tuple) else _ratings_paths(Path(ratings))
    if not paths:
        raise DataFormatError("no ratings files found", path=str(ratings))
    warnings: list[str] = []
    raw = read_ratings([str(p) for p in paths], warnings, progress, num_threads)
    known = raw.note_ids if note_ids is None else np.asarray(note_ids, dtype=np.int64)
    matrix = assemble_matrix(raw, known, np.empty(0, np.int64), warnings)
    return matrix, tuple(warnings)

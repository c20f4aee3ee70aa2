"""Output frames in the reference's schemas and text formats (spec §1.8).

The reference writes float32 model columns with float32's shortest repr ("-0.012446634"),
float64 columns with Python's repr ("1795305600000.0", integral counts as "13.0"), nullable
integers without ".0", booleans as True/False and missing values as empty cells. Each column's
kind below was read off the reference's own output files, so a byte-level diff of our files
against theirs shows only model differences. Rows are sorted (noteId / participant id) and
columns fixed, so the same results always give byte-identical files.
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from bridgewatch import schema
from bridgewatch.io.atomic import atomic_path
from bridgewatch.io.parquet import BLOCK_ROWS, write_parquet_blocks
from bridgewatch.io.tsv import write_tsv
from bridgewatch.scoring.rules import RuleResult, active_rule_strings

F32, F64, INT, BOOL, STR = "f32", "f64", "int", "bool", "str"

_F64_SCORER_PREFIXES = ("group", "topic", "multiGroup")  # coalesced columns: float64 in the reference


def _scored_notes_kind(col: str) -> str:
    if col in ("noteId", "createdAtMillis", "numRatings"):
        return INT
    if col == "topicNoteConfident":
        return BOOL
    if (
        col.endswith(("RatingStatus", "ActiveRules", "Tag"))
        or col
        in (
            "activeFilterTags",
            "classification",
            "decidedBy",
            "noteTopic",
            "finalRatingStatus",
        )
        or col in schema.SCORED_NOTES_EXTRA_COLUMNS
    ):
        return STR
    if (
        col.startswith(("timestamp", "abovePcrh", "modeling", "pflip"))
        or col.endswith("NumFinalRoundRatings")
        or col.startswith(_F64_SCORER_PREFIXES)
    ):
        return F64
    return F32


def _helpfulness_kind(col: str) -> str:
    if col in ("raterParticipantId", "authorTopNotHelpfulTagValues"):
        return STR
    if col in ("aboveHelpfulnessThreshold", "isEmergingWriter"):
        return BOOL
    if col.endswith(("14d", "90d")):
        return INT
    if col.endswith(("RaterIntercept", "RaterFactor1")) or col == "raterHelpfulnessReputation":
        return F32
    return F64  # counts, ratios, enrollment codes and timestamps are float64 there


def _nsh_kind(col: str) -> str:
    if col in ("noteId", "createdAtMillis"):
        return INT
    if col.startswith(("timestamp", "abovePcrh")) or col.startswith("currentModeling"):
        return F64
    return STR


_AUX_INT = {
    "noteId",
    "createdAtMillis",
    "numRatingsLast28",
    "numPopulationSampledRatings",
    "notHelpfulIncorrect_interval",
    "coreNegFactor_populationSampledRatingCount",
    "corePosFactor_populationSampledRatingCount",
    *schema.RATING_TAGS,
}


def _aux_kind(col: str) -> str:
    if col in _AUX_INT:
        return INT
    if col in ("awaitingBool", "crhBool", "crnhBool", "pcrhRevoked", "pcrhFinalPred"):
        return BOOL
    if col in (
        "noteAuthorParticipantId",
        "currentStatus",
        "unlockedRatingStatus",
        "preStabilizationRatingStatus",
    ):
        return STR
    if col == "tf_idf_incorrect_interval":
        return STR  # the reference writes "nan" for 0/0 here (see ``format_tf_idf``)
    if col.endswith(("Adjusted", "AdjustedRatio")) or col in ("ratingWeight", "lowDiligenceIntercept"):
        return F32
    return F64


SCORED_NOTES_ALL_COLUMNS = schema.SCORED_NOTES_COLUMNS + schema.SCORED_NOTES_EXTRA_COLUMNS
KINDS: dict[str, dict[str, str]] = {
    schema.SCORED_NOTES_FILE: {c: _scored_notes_kind(c) for c in SCORED_NOTES_ALL_COLUMNS},
    schema.HELPFULNESS_SCORES_FILE: {c: _helpfulness_kind(c) for c in schema.HELPFULNESS_SCORES_COLUMNS},
    schema.NOTE_STATUS_HISTORY_FILE: {c: _nsh_kind(c) for c in schema.NOTE_STATUS_HISTORY_COLUMNS},
    schema.AUX_NOTE_INFO_FILE: {c: _aux_kind(c) for c in schema.AUX_NOTE_INFO_COLUMNS},
}
COLUMNS: dict[str, tuple[str, ...]] = {
    schema.SCORED_NOTES_FILE: SCORED_NOTES_ALL_COLUMNS,
    schema.HELPFULNESS_SCORES_FILE: schema.HELPFULNESS_SCORES_COLUMNS,
    schema.NOTE_STATUS_HISTORY_FILE: schema.NOTE_STATUS_HISTORY_COLUMNS,
    schema.AUX_NOTE_INFO_FILE: schema.AUX_NOTE_INFO_COLUMNS,
}
SORT_KEY = {
    schema.SCORED_NOTES_FILE: "noteId",
    schema.HELPFULNESS_SCORES_FILE: "raterParticipantId",
    schema.NOTE_STATUS_HISTORY_FILE: "noteId",
    schema.AUX_NOTE_INFO_FILE: "noteId",
}


# ---------------------------------------------------------------------------------------------
# Value conversions


def status_strings(codes: np.ndarray, *, firm_reject_as_nmr: bool = False) -> np.ndarray:
    """object[N] status names for int8 ``Status`` codes; codes < 0 (not scored) become None.

    Per-scorer columns (``coreRatingStatus``...) keep FIRM_REJECT and NEEDS_YOUR_HELP as the
    reference does; pass ``firm_reject_as_nmr`` for columns it exports as NMR.
    """
    codes = np.asarray(codes)
    table = np.array([schema.STATUS_NAMES[schema.Status(i)] for i in range(len(schema.Status))], dtype=object)
    if firm_reject_as_nmr:
        table[schema.Status.FIRM_REJECT] = schema.NMR
    out = np.full(codes.shape[0], None, dtype=object)
    ok = codes >= 0
    out[ok] = table[codes[ok].astype(np.intp)]
    return out


def format_tf_idf(tf_idf: np.ndarray, present: np.ndarray) -> np.ndarray:
    """object[N]: repr of float64 values, "nan" for a present 0/0, None where absent."""
    out = np.full(np.shape(tf_idf)[0], None, dtype=object)
    for i in np.flatnonzero(np.asarray(present, dtype=bool)):
        out[i] = repr(float(tf_idf[i]))
    return out


def scatter(n: int, index: np.ndarray, values: np.ndarray, fill=np.nan) -> np.ndarray:
    """Values of a scorer's notes (``index`` into the N output rows) spread over N rows."""
    values = np.asarray(values)
    dtype = (
        object if values.dtype == object or fill is None else np.result_type(values.dtype, np.asarray(fill))
    )
    out = np.full(n, fill, dtype=dtype)
    out[np.asarray(index, dtype=np.intp)] = values
    return out


def scorer_columns(
    prefix: str,
    n: int,
    index: np.ndarray,
    result: RuleResult,
    intercept: np.ndarray,
    factor: np.ndarray,
    extra: Mapping[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Scored-notes columns of one scorer (``core``, ``expansion``...) over the N output rows.

    ``index``: int[M] output rows of the scorer's M notes; ``result``/``intercept``/``factor``
    are over those M notes. ``extra`` maps column suffixes (e.g. ``NoteInterceptMin``,
    ``NumFinalRoundRatings``) to float[M] arrays.
    """
    cols = {
        f"{prefix}NoteIntercept": scatter(n, index, intercept),
        f"{prefix}NoteFactor1": scatter(n, index, factor),
        f"{prefix}RatingStatus": scatter(n, index, status_strings(result.status), fill=None),
        f"{prefix}ActiveRules": scatter(n, index, active_rule_strings(result.rule_mask), fill=None),
    }
    for suffix, values in (extra or {}).items():
        cols[f"{prefix}{suffix}"] = scatter(n, index, values)
    return cols


def _convert(values, kind: str) -> pd.Series | np.ndarray:
    if kind in (F32, F64):
        dtype = np.float32 if kind == F32 else np.float64
        if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":  # already numbers
            return pd.Series(values.astype(dtype))
        return pd.to_numeric(pd.Series(values), errors="raise").astype(dtype)
    if isinstance(values, np.ndarray):  # the arrays scoring builds: 3-4x faster than the Series forms
        fast = _convert_array(values, kind)
        if fast is not None:
            return fast
    if kind == INT:
        s = pd.Series(values)
        if s.dtype.kind == "f":
            s = s.round()
        return s.astype("Int64")
    if kind == BOOL:
        s = pd.Series(values, dtype=object)
        return s.where(s.notna(), None).astype("boolean")
    s = pd.Series(values, dtype=object)
    return s.where(s.notna() & (s != ""), None)


def _convert_array(values: np.ndarray, kind: str) -> pd.Series | None:
    """``_convert``'s Series built from the array directly (the same values, dtype and missing
    markers); None where the general form must decide (it raises on what it cannot convert)."""
    if kind == INT:
        if values.dtype.kind in "iu" and values.dtype.itemsize <= 8 and values.dtype != np.uint64:
            return pd.Series(pd.arrays.IntegerArray(values.astype(np.int64), np.zeros(values.shape[0], bool)))
        if values.dtype.kind == "f":
            missing = np.isnan(values)
            whole = np.where(missing, 0.0, np.round(values))
            if np.all(np.abs(whole) < 2.0**63):  # else the general form's error
                return pd.Series(pd.arrays.IntegerArray(whole.astype(np.int64), missing))
        return None
    if kind == BOOL:
        if values.dtype == np.bool_:
            return pd.Series(pd.arrays.BooleanArray(values.copy(), np.zeros(values.shape[0], bool)))
        if values.dtype != object:
            return None
        missing = np.asarray(pd.isna(values), dtype=bool)
        present = values[~missing]
        if not all(isinstance(v, (bool, np.bool_)) for v in present.tolist()):
            return None
        data = np.zeros(values.shape[0], dtype=bool)
        data[~missing] = present.astype(bool)
        return pd.Series(pd.arrays.BooleanArray(data, missing))
    if kind == STR and values.dtype == object:
        out = _shared_text(values)
        if out is None:
            out = values.copy()
            out[np.asarray(pd.isna(out), dtype=bool) | (out == "")] = None
        return pd.Series(out, dtype=object, copy=False)
    return None


def _shared_text(values: np.ndarray) -> np.ndarray | None:
    """object[N] ``values`` (every one a str or missing) with one str object per distinct value,
    None for the missing and empty ones; None when some value is not text (``factorize`` would
    take 1, 1.0 and True for one value).

    Why: an output frame holds its text columns until they are written, and they come from
    per-note conversions (``to_numpy(dtype=object)`` of pandas' text columns) that make a str
    object a note (~50 bytes and its text) though most columns hold a handful of values (the
    statuses, the rules, the classification). Sharing the objects leaves 8 bytes a note."""
    if pd.api.types.infer_dtype(values, skipna=True) not in ("string", "empty"):
        return None
    return shared_text(values, None, empty_missing=True)


def shared_text(
    values: np.ndarray | pd.Series, missing: object, *, empty_missing: bool = False
) -> np.ndarray:
    """object[N] of text ``values`` (each a str or missing; the caller has checked) with one str
    object per distinct value and ``missing`` for the missing ones (and the empty ones, with
    ``empty_missing``).

    Why: a pandas text column's ``to_numpy(dtype=object)`` makes a str object a value (~50 bytes
    and its text: 0.66 GiB of the status history's peak at 1.25M notes, by memray); this makes
    one a distinct value, from the codes the column's own ``factorize`` gives."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    table = np.empty(len(uniques) + 1, dtype=object)
    table[:-1] = np.asarray(uniques, dtype=object)
    table[-1] = missing  # (code -1)
    if empty_missing:
        table[:-1][table[:-1] == ""] = missing
    return table[codes]


def text_objects(column: pd.Series) -> np.ndarray:
    """``column.to_numpy(dtype=object)``: the same values and missing markers, with one str object
    per distinct value where the column is pandas text (``shared_text``)."""
    if isinstance(column.dtype, pd.StringDtype):
        return shared_text(column, column.dtype.na_value)
    return column.to_numpy(dtype=object)


def build_frame(name: str, columns: Mapping[str, np.ndarray], n: int | None = None) -> pd.DataFrame:
    """A frame of output file ``name`` (e.g. ``schema.SCORED_NOTES_FILE``) in its schema.

    ``columns`` maps column names to length-N arrays; missing schema columns are empty, unknown
    names raise ``KeyError``. Values are converted to the reference's kinds and rows sorted by the
    file's key (stable), so the result is deterministic.
    """
    kinds, order = KINDS[name], COLUMNS[name]
    unknown = set(columns) - set(order)
    if unknown:
        raise KeyError(f"{name}: unknown columns {sorted(unknown)}")
    if n is None:
        n = len(next(iter(columns.values()))) if columns else 0
    data = {}
    for col in order:
        values = columns.get(col)
        if values is None:
            values = np.full(n, None, dtype=object)
        elif len(values) != n:
            raise ValueError(f"{name}: column {col} has {len(values)} rows, expected {n}")
        data[col] = _convert(values, kinds[col]).reset_index(drop=True)
    # The converted columns are the frame's own (no consolidating copy), and rows already in key
    # order are not sorted (a copy of every column): both ~doubled the frame at its peak.
    frame = pd.DataFrame(data, columns=list(order), copy=False)
    key = SORT_KEY[name]
    if n and not frame[key].is_monotonic_increasing:
        frame = frame.sort_values(key, kind="stable").reset_index(drop=True)
    return frame


@dataclass(frozen=True, eq=False)
class FrameColumns:
    """Output file ``name``'s ``columns`` (length ``n``, as ``build_frame`` takes them): the frame
    ``build_frame`` makes of them, whole or a block of rows at a time.

    Why: scored_notes and aux_note_info converted whole are ~0.8 and ~0.6 KB a note (~3.2 GiB at
    X's 2.5M notes), held from their build until written, on top of the columns they are built
    from while they are built. A writer that takes blocks holds one block's conversion instead."""

    name: str
    columns: Mapping[str, np.ndarray]
    n: int

    def frame(self) -> pd.DataFrame:
        return build_frame(self.name, self.columns, self.n)

    def blocks(self, rows: int | None = None) -> Iterator[pd.DataFrame]:
        """The rows of ``frame()`` in order, ``rows`` at a time (default ``BLOCK_ROWS``, a
        Parquet row group's: the row groups are then the whole frame's), one empty frame when
        there are none: each block converted from its rows alone, so the values are ``frame()``'s."""
        rows = rows or BLOCK_ROWS
        order = self._order
        if self.n == 0:
            yield self.frame()
        for lo in range(0, self.n, rows):
            at = slice(lo, min(lo + rows, self.n)) if order is None else order[lo : lo + rows]
            yield build_frame(self.name, {c: np.asarray(v)[at] for c, v in self.columns.items()})

    def schema(self) -> pa.Schema:
        """The Arrow schema of ``frame()`` (what a Parquet writer infers from the whole frame),
        from a few of its rows: the first, and each column's first with a value. A block alone
        may have none in a text column, whose type it would take as null."""
        order = self._order
        rows = {0} if self.n else set()
        for values in self.columns.values():
            values = np.asarray(values)
            present = ~np.asarray(pd.isna(values), dtype=bool)
            if values.dtype == object:
                present &= values != ""
            if order is not None:
                present = present[order]
            if present.any():
                rows.add(int(np.argmax(present)))
        at = np.array(sorted(rows), dtype=np.intp)
        if order is not None:
            at = order[at]
        sample = build_frame(self.name, {c: np.asarray(v)[at] for c, v in self.columns.items()}, at.size)
        return pa.Schema.from_pandas(sample, preserve_index=False)

    @functools.cached_property
    def _order(self) -> np.ndarray | None:
        """Row order by the file's key (stable, as ``build_frame`` sorts), None when in order:
        once for the schema and both writers' blocks."""
        key = self.columns.get(SORT_KEY[self.name])
        if key is None or self.n < 2 or pd.Series(key).is_monotonic_increasing:
            return None
        return np.argsort(np.asarray(key), kind="stable")


def write_outputs(
    out_dir: str | os.PathLike[str],
    frames: Mapping[str, pd.DataFrame | None],
    *,
    parquet: bool = True,
    text_files: Mapping[str, Path] | None = None,
    parquet_files: Mapping[str, Path] | None = None,
) -> list[Path]:
    """Write each frame as ``<name>`` TSV (and ``.parquet`` beside it) atomically; returns paths.

    ``text_files`` / ``parquet_files``: TSV / Parquet files already written for some frames the way
    this function writes them (``state.text_path``, ``state.table_path``), copied; a frame that
    is None (written as it was built) must have both.
    """
    out = Path(out_dir)
    written = []
    for name, frame in frames.items():
        path = out / name
        copied = name in (text_files or {}) and (name in (parquet_files or {}) or not parquet)
        if frame is None and not copied:
            raise ValueError(f"{name}: no frame, and no written file to copy")
        text = (text_files or {}).get(name)
        if text is not None:
            with atomic_path(path) as tmp:
                shutil.copyfile(text, tmp)
        else:
            write_tsv(path, frame, COLUMNS.get(name, tuple(frame.columns)))
        written.append(path)
        if parquet:
            pq_path = path.with_suffix(".parquet")
            with atomic_path(pq_path) as tmp:
                source = (parquet_files or {}).get(name)
                if source is not None:
                    shutil.copyfile(source, tmp)
                else:
                    write_parquet_blocks(tmp, frame)
            written.append(pq_path)
    return written

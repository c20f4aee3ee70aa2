"""Phase state on disk: what prescoring hands to final scoring, and what final hands to the next.

A state directory holds Parquet files only (``STATE_FILES``), keyed by noteId / participantId so
they stay valid when the next run's data has more notes and raters:

- ``prescore/``: ``scorers.parquet`` (one row per scorer: μ, round sizes, tag thresholds, the
  diligence model's scalars), ``notes.parquet`` and ``raters.parquet`` (one column per scorer and
  parameter: ``MFCoreScorer|ri``, ``MFCoreScorer|rf0``, ...; ``|scored``: the raters the scorer's
  helpfulness table scored, all final scoring reads of it, with ``scored_extra.parquet``: the ids
  scored outside the raters), ``helpfulness/<scorer>.parquet``,
  ``integrity.parquet`` (PSS clique, coordinated group and correlated flag per participant),
  ``surprise.parquet`` (the (noteId, raterParticipantId) ratings the concerted-surprise defence
  set aside, when it is on) and ``run.parquet``.
- ``final/``: ``notes.parquet`` (per note: final status, core intercept, latest non-NMR time and
  the fingerprints incremental scoring compares), ``fits.parquet`` (every scorer's fitted values
  per note, which partial rescoring reuses), ``raters.parquet``, ``run.parquet`` and the TSV text
  of the three output files (``scored_notes.tsv``...), into which the next run splices its rows.

Floats are stored as float64, so a phase that reads the state computes exactly what one process
computes in memory (``--phase all``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bridgewatch.errors import ConfigError, DataFormatError
from bridgewatch.io.atomic import atomic_path
from bridgewatch.io.parquet import BLOCK_ROWS, write_parquet_blocks
from bridgewatch.scoring.compact import expand, expand_frame, expand_rows
from bridgewatch.scoring.diligence import DiligencePrescoring
from bridgewatch.scoring.mf import MFParams
from bridgewatch.scoring.outputs import FrameColumns
from bridgewatch.scoring.phases import Prescoring, unread_params
from bridgewatch.scoring.scorer import SCORED_RATER_COLUMNS, PrescoreResult
from bridgewatch.scoring.scorer_run import ScorerPrescore, pack_prescore
from bridgewatch.scoring.scorer_specs import ScorerSpec, default_scorers

PRESCORE_DIR = "prescore"
_SCORED_EXTRA = "scored_extra.parquet"
FINAL_DIR = "final"
_NOTE_DIL = ("note_intercept", "note_factor", "note_intercept_round2")
_RATER_DIL = ("rater_intercept", "rater_intercept_round2", "rater_factor", "rater_reputation")
# Bytes of one row group of a wide prescoring table (``_block_frames``; 8 bytes a cell).
WIDE_BLOCK_BYTES = 1 << 24


@dataclass(frozen=True, eq=False)
class IntegrityState:
    """Integrity groups found at prescoring, by id: ``participant_ids`` object[P] with ``clique``
    int32[P] (PSS, 0 = none) and ``coordinated`` int32[P] (coordinated groups, 0 = none; None when
    that defence was off); ``correlated_ids``: object[C] quasi-clique raters; ``surprise_notes``
    int64[S] with ``surprise_raters`` object[S]: the ratings the concerted-surprise defence set
    aside (None when it was off), which final scoring sets aside too."""

    participant_ids: np.ndarray
    clique: np.ndarray
    correlated_ids: np.ndarray
    coordinated: np.ndarray | None = None
    surprise_notes: np.ndarray | None = None
    surprise_raters: np.ndarray | None = None


def _write(
    frame: pd.DataFrame | Iterable[pd.DataFrame] | FrameColumns,
    path: Path,
    *,
    plain: bool = False,
    output: bool = False,
) -> None:
    """``frame``: one frame, chunks of one (``io.parquet``), or an output's columns, converted and
    written a block of rows at a time (``FrameColumns``).

    ``plain``: without dictionary pages and column statistics, a table only this module reads
    back (whole, so it gains nothing from either): ~4x less CPU for the fits table an incremental
    run rewrites, for ~the same size; the same frame when read.

    A table that is not an ``output`` keeps a float column's NaN as NaN values, where pandas
    writes them as nulls: a column without nulls is read as the file's own buffer (no copy, no
    validity bits to decode), and most parameter columns have NaN (raters a scorer did not fit).
    The frame read back is the same. Output tables keep nulls, which other readers take as missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    extra = {"use_dictionary": False, "write_statistics": False} if plain else {}
    schema = None
    if isinstance(frame, FrameColumns):
        schema, frame = frame.schema(), frame.blocks()
    with atomic_path(path) as tmp:
        write_parquet_blocks(tmp, frame, nan_as_null=output, schema=schema, **extra)


def _missing(path: Path) -> DataFormatError:
    return DataFormatError("missing phase state (run the earlier phase first)", path=str(path))


def _arrow(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    """One state table as Arrow (``columns``: None = all). ``ParquetFile.read`` skips the dataset
    layer ``pd.read_parquet`` goes through, half the CPU of a small file (an incremental final run
    reads ~36 of them); on this thread: arrow's pool spent ~40% more CPU than it saved on files
    this small."""
    if not path.is_file():
        raise _missing(path)
    return pq.ParquetFile(path).read(columns=None if columns is None else list(columns), use_threads=False)


def _read(path: Path, columns: Sequence[str] | None = None, objects: Collection[str] = ()) -> pd.DataFrame:
    """One state table as the frame ``pd.read_parquet`` gives (same dtypes, pandas metadata
    applied), but the text columns named in ``objects`` as ``astype(object)`` gives them: str
    objects, NaN where missing (converted from arrow directly: ~3x less CPU than through pandas'
    arrow-backed text column)."""
    table = _arrow(path, columns)
    text = [c for c in table.column_names if c in objects and _is_text(table.column(c).type)]
    if not text:
        return table.to_pandas(use_threads=False)
    rest = table.drop_columns(text).to_pandas(use_threads=False)
    out = {}
    for name in table.column_names:
        if name not in text:
            out[name] = rest[name]
            continue
        column = table.column(name)
        values = np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
        values[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
        out[name] = pd.Series(values, dtype=object, copy=False)
    return pd.DataFrame(out)


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


class _Columns:
    """A wide state table's columns as numpy arrays, read from the file a scorer's columns at a
    time (``scorer``) and handed out once each: the whole table read at once was a second, Arrow
    copy of every scorer's state, and a read a column at a time cost ~30% more CPU (`medium`)."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise _missing(path)
        self._file = pq.ParquetFile(path)
        self._names = self._file.schema_arrow.names
        self._known = set(self._names)
        self._read: dict[str, pa.ChunkedArray] = {}

    def __contains__(self, name: str) -> bool:
        return name in self._known

    def scorer(self, name: str, first_round: bool) -> None:
        """Read ``name``'s columns in one pass (without round 1's unless ``first_round``); the last
        scorer's unused ones are dropped."""
        self._read.clear()
        want = [c for c in self._names if c.startswith(f"{name}|")]
        if not first_round:
            want = [c for c in want if not c.startswith((f"{name}|n1", f"{name}|r1"))]
        table = self._file.read(columns=want, use_threads=False)
        self._read.update(zip(table.column_names, table.columns, strict=True))

    def __getitem__(self, name: str) -> np.ndarray:
        column = self._read.pop(name, None)
        if column is None:
            column = self._file.read(columns=[name], use_threads=False).column(0)
        if _is_text(column.type):
            return column.to_numpy(zero_copy_only=False).astype(object)
        return column.to_numpy(zero_copy_only=False)  # read-only, as a frame's column under copy-on-write


@dataclass(frozen=True, eq=False)
class _Rows:
    """A column of a wide state table, expanded a block of rows at a time (``compact.expand_rows``):
    ``source`` may be packed (``pack_prescore``), ``column`` picks a 2-D one's column."""

    source: object
    dtype: np.dtype | None = None  # None: the source's own
    column: int | None = None

    def rows(self, start: int, stop: int) -> np.ndarray:
        block = expand_rows(self.source, start, stop, self.column)
        return block if self.dtype is None else block.astype(self.dtype, copy=False)


def _block_frames(columns: dict[str, _Rows], n: int) -> Iterator[pd.DataFrame]:
    """The table of ``columns`` (``n`` rows) as frames of ~``WIDE_BLOCK_BYTES`` (one row group
    each): only one block of every column is ever expanded, and encoded, at a time. The raters
    table is ~290 columns, so a block of ``io.parquet.BLOCK_ROWS`` rows would be ~0.6 GB by
    arithmetic, twice over with its Arrow copy (`medium`, one block: the writing's peak +0.23 GiB;
    in ~16 MiB blocks +0.11)."""
    rows = max(1, min(BLOCK_ROWS, WIDE_BLOCK_BYTES // (8 * max(len(columns), 1))))
    for start in range(0, max(n, 1), rows):
        stop = min(n, start + rows)
        yield pd.DataFrame({k: v.rows(start, stop) for k, v in columns.items()}, copy=False)


def _dtype(values: object) -> np.dtype:
    """The dtype ``values`` expands to (a ``Packed`` keeps its array's)."""
    dtype = getattr(values, "dtype", None)
    return np.dtype(dtype if dtype is not None else np.asarray(values).dtype)


def _param_columns(cols: dict, name: str, tag: str, vec: object, mat: object) -> None:
    cols[f"{name}|{tag}i"] = _Rows(vec, np.dtype(np.float64))
    for j in range(mat.shape[1]):  # type: ignore[attr-defined]
        cols[f"{name}|{tag}f{j}"] = _Rows(mat, np.dtype(np.float64), j)


def begin_save(state_dir: Path, phase: str) -> None:
    """Mark ``phase``'s state (``PRESCORE_DIR`` or ``FINAL_DIR``) incomplete before rewriting it.

    Each file is replaced atomically, but a phase writes several. Its ``run.parquet`` says the
    state is whole, so it goes first and comes back last: a run that dies halfway leaves a state
    that reads as absent (the next final run starts from scratch, a final phase without
    prescoring stops with a clear error), never new tables beside an old run's texts."""
    (Path(state_dir) / phase / "run.parquet").unlink(missing_ok=True)


def save_prescoring(pre: Prescoring, state_dir: Path, integrity: IntegrityState | None, seed: int) -> None:
    """Write ``pre`` (and the integrity groups it was computed with) under ``state_dir/prescore``;
    ``run.parquet``, which marks it whole, last (``begin_save``). Its states may be packed
    (``pack_prescore``, as the prescore phase keeps them): the wide tables expand a block at a time."""
    root = Path(state_dir) / PRESCORE_DIR
    begin_save(state_dir, PRESCORE_DIR)
    rater_text = pre.rater_ids.astype(str)
    notes: dict[str, _Rows] = {"noteId": _Rows(pre.note_ids)}
    raters: dict[str, _Rows] = {"raterParticipantId": _Rows(rater_text)}
    if pre.note_topic is not None:
        notes["topic"] = _Rows(pre.note_topic, np.dtype(np.int64))
    rows = []
    rater_index = pd.Index(rater_text)
    extra: dict[str, list[np.ndarray]] = {"scorer": [], "participantId": []}
    f64, i8, flag = np.dtype(np.float64), np.dtype(np.int8), np.dtype(bool)
    for name, s in pre.scorers.items():
        r = s.pre
        helpfulness = expand_frame(r.helpfulness)
        if helpfulness is not None:
            mask, ids = _scored_mask(rater_index, helpfulness)
            raters[f"{name}|scored"] = _Rows(mask, flag)
            extra["scorer"].append(np.full(ids.shape[0], name, dtype=object))
            extra["participantId"].append(ids)
        _param_columns(notes, name, "n", r.params.note_intercept, r.params.note_factor)
        _param_columns(notes, name, "n1", r.first_round.note_intercept, r.first_round.note_factor)
        notes[f"{name}|prov"] = _Rows(r.provisional_status, i8)
        _param_columns(raters, name, "r", r.params.rater_intercept, r.params.rater_factor)
        _param_columns(raters, name, "r1", r.first_round.rater_intercept, r.first_round.rater_factor)
        raters[f"{name}|helpful"] = _Rows(r.helpful_raters, flag)
        raters[f"{name}|incnum"] = _Rows(s.incorrect_num, f64)
        raters[f"{name}|inctotal"] = _Rows(s.incorrect_total, f64)
        row = {
            "scorer": name, "mu": r.params.mu, "mu1": r.first_round.mu,
            "k": r.params.note_factor.shape[1], "numRatings": r.final_round_num_ratings,
            "numNotes": r.final_round_num_notes, "numUsers": r.final_round_num_users,
            "round1Mse": r.round1_mse, "hasHelpfulness": helpfulness is not None,
            "incDtype": str(_dtype(s.incorrect_num)), "hasDiligence": s.diligence is not None,
        }  # fmt: skip
        for j, t in enumerate(np.asarray(expand(s.thresholds))):
            row[f"threshold{j}"] = float(t)
        d = s.diligence
        if d is not None:
            for field in _NOTE_DIL:
                notes[f"{name}|dil_{field}"] = _Rows(getattr(d, field))
            for field in _RATER_DIL:
                raters[f"{name}|dil_{field}"] = _Rows(getattr(d, field))
            row.update({f"dilG{j}": g for j, g in enumerate(expand(d.global_intercepts))})
            row.update(dilRatings=d.n_ratings, dilNotes=d.n_notes, dilRaters=d.n_raters)
        rows.append(row)
        if helpfulness is not None:
            _write(helpfulness.reset_index(drop=True), root / "helpfulness" / f"{name}.parquet")
        del helpfulness
    _write(_block_frames(notes, pre.note_ids.shape[0]), root / "notes.parquet")
    del notes
    _write(_block_frames(raters, rater_text.shape[0]), root / "raters.parquet")
    del raters
    cols = {k: np.concatenate(v) if v else np.zeros(0, dtype=object) for k, v in extra.items()}
    _write(pd.DataFrame({k: pd.Series(v, dtype=str) for k, v in cols.items()}), root / _SCORED_EXTRA)
    _write(pd.DataFrame(rows), root / "scorers.parquet")
    if integrity is not None:
        correlated = pd.Index(integrity.participant_ids).isin(integrity.correlated_ids)
        frame = pd.DataFrame(
            {
                "participantId": integrity.participant_ids.astype(str),
                "pssClique": integrity.clique.astype(np.int32),
                "correlated": correlated,
            }
        )
        if integrity.coordinated is not None:
            frame["coordinatedGroup"] = integrity.coordinated.astype(np.int32)
        _write(frame, root / "integrity.parquet")
        if integrity.surprise_notes is not None and integrity.surprise_raters is not None:
            pairs = {
                "noteId": np.asarray(integrity.surprise_notes, dtype=np.int64),
                "raterParticipantId": pd.Series(integrity.surprise_raters, dtype=str),
            }
            _write(pd.DataFrame(pairs), root / "surprise.parquet")
        else:
            (root / "surprise.parquet").unlink(missing_ok=True)  # a stale one from an earlier run
    run = {
        "seed": [seed], "skipped": [",".join(pre.skipped)], "topicWarning": [pre.topic_warning],
        "hasTopics": [pre.note_topic is not None], "hasIntegrity": [integrity is not None],
        "derived": [",".join(s.name for s in pre.derived)], "order": [",".join(pre.order)],
    }  # fmt: skip
    _write(pd.DataFrame(run), root / "run.parquet")


def _scored_mask(rater_index: pd.Index, table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """What final scoring reads of a helpfulness table (``scorer.scored_raters``): which raters it
    scored, as bool[U] over ``rater_index`` (the prescoring's raters), and the ids it scored
    outside them (object[E]: authors who had not rated yet, who may rate by the final run)."""
    ids = table.loc[table["aboveHelpfulnessThreshold"].notna(), "raterParticipantId"]
    ids = ids.to_numpy(dtype=object).astype(str)
    pos = rater_index.get_indexer(ids)
    mask = np.zeros(rater_index.shape[0], dtype=bool)
    mask[pos[pos >= 0]] = True
    return mask, ids[pos < 0].astype(object)


def _params(frame: _Columns, name: str, tag: str, k: int) -> tuple[np.ndarray, np.ndarray]:
    vec = np.asarray(frame[f"{name}|{tag}i"], dtype=np.float64)
    mat = np.stack([np.asarray(frame[f"{name}|{tag}f{j}"], dtype=np.float64) for j in range(k)], axis=1)
    return vec, mat


def load_prescoring(
    state_dir: Path,
    scorers: Sequence[ScorerSpec] | None = None,
    *,
    helpfulness_columns: Sequence[str] | None = None,
    first_round: bool = True,
    packed: bool = False,
    only: Collection[str] | None = None,
    rater_ids: np.ndarray | None = None,
) -> tuple[Prescoring, IntegrityState | None, int]:
    """Read what ``save_prescoring`` wrote: (prescoring, integrity groups or None, seed).

    ``helpfulness_columns``: the columns of each scorer's helpfulness table to read (None: all;
    final scoring needs ``scorer.SCORED_RATER_COLUMNS`` only, and with those it gets the saved
    ``scored`` masks instead of the tables, as empty stand-ins, where the state holds the masks;
    a state written before them has its tables read); ``first_round``: False leaves the round-1
    parameters unread (empty arrays, ``phases.unread_params``; final scoring does not use them);
    ``packed``: each scorer's state packed as soon as it is read (``pack_prescore``), for final
    and contributor scoring, which expand one scorer's at a time: read in float64, every state was
    held through the phase (`medium`: the final phase started at 0.70 GiB, 0.47 packed; public:
    the contributor phase 12.88, 8.14 packed; docs/memory.md); ``only``: the scorers whose states
    to read (None: all; contributor scoring reads ``assemble.rater_column_scorers``), the others
    left out of ``Prescoring.scorers``; ``rater_ids``: the dataset's rater ids, whose objects
    ``Prescoring.rater_ids`` is where they are the same ids: one set of strings rather than two
    (~110 bytes an id), and ``remap_prescoring`` sees the same object."""
    root = Path(state_dir) / PRESCORE_DIR
    final_only = helpfulness_columns is not None and set(helpfulness_columns) <= set(SCORED_RATER_COLUMNS)
    specs = {s.name: s for s in (scorers if scorers is not None else default_scorers())}
    run = _read(root / "run.parquet").iloc[0]
    table = _read(root / "scorers.parquet")
    notes, raters = _Columns(root / "notes.parquet"), _Columns(root / "raters.parquet")
    extra = None  # the ids scored outside the raters, per scorer (a state that saved the masks)
    if final_only and (root / _SCORED_EXTRA).is_file():
        frame = _read(root / _SCORED_EXTRA)
        ids = frame["participantId"].to_numpy(dtype=object)
        names = frame["scorer"].to_numpy(dtype=object)
        extra = {str(n): ids[names == n] for n in pd.unique(names)}
    states: dict[str, ScorerPrescore] = {}
    n_thr = sum(1 for c in table.columns if c.startswith("threshold"))
    for row in table.to_dict("records"):
        name, k = row["scorer"], int(row["k"])
        if name not in specs:
            raise ConfigError(f"prescoring state names scorer {name!r}, which this run does not know")
        if only is not None and name not in only:
            continue
        notes.scorer(name, first_round)
        raters.scorer(name, first_round)
        ni, nf = _params(notes, name, "n", k)
        ri, rf = _params(raters, name, "r", k)
        if first_round:
            ni1, nf1 = _params(notes, name, "n1", k)
            ri1, rf1 = _params(raters, name, "r1", k)
        else:
            ni1, nf1, ri1, rf1 = unread_params(k)
        helpfulness = scored = scored_extra = None
        if row["hasHelpfulness"] and extra is not None and f"{name}|scored" in raters:
            # final scoring reads only which raters the table scored: the mask saved beside the
            # parameters, not the table (an empty stand-in marks the scorer as using reputation)
            scored = np.asarray(raters[f"{name}|scored"], dtype=bool)
            scored_extra = extra.get(name, np.zeros(0, dtype=object))
            helpfulness = pd.DataFrame({c: pd.Series([], dtype=object) for c in helpfulness_columns or ()})
        elif row["hasHelpfulness"]:
            helpfulness = _read(root / "helpfulness" / f"{name}.parquet", helpfulness_columns)
        pre = PrescoreResult(
            specs[name],
            MFParams(float(row["mu"]), ni, nf, ri, rf),
            MFParams(float(row["mu1"]), ni1, nf1, ri1, rf1),
            helpfulness,
            np.asarray(raters[f"{name}|helpful"], dtype=bool),
            np.asarray(notes[f"{name}|prov"], dtype=np.int8),
            int(row["numRatings"]),
            int(row["numNotes"]),
            int(row["numUsers"]),
            float(row["round1Mse"]),
            scored=scored,
            scored_extra=scored_extra,
        )
        thresholds = np.array([row[f"threshold{j}"] for j in range(n_thr)], dtype=np.float64)
        dil = None
        if row["hasDiligence"]:
            arrays = {f: np.asarray(notes[f"{name}|dil_{f}"], dtype=np.float64) for f in _NOTE_DIL}
            arrays |= {f: np.asarray(raters[f"{name}|dil_{f}"], dtype=np.float64) for f in _RATER_DIL}
            dil = DiligencePrescoring(
                **arrays,
                global_intercepts=(float(row["dilG0"]), float(row["dilG1"]), float(row["dilG2"])),
                n_ratings=int(row["dilRatings"]),
                n_notes=int(row["dilNotes"]),
                n_raters=int(row["dilRaters"]),
            )
        inc_dtype = np.dtype(row["incDtype"])
        state = ScorerPrescore(
            pre,
            thresholds,
            np.asarray(raters[f"{name}|incnum"], dtype=np.float64).astype(inc_dtype),
            np.asarray(raters[f"{name}|inctotal"], dtype=np.float64).astype(inc_dtype),
            dil,
        )
        states[name] = pack_prescore(state) if packed else state
        del state, pre, dil
    topic = np.asarray(notes["topic"], dtype=np.int64) if bool(run["hasTopics"]) else None
    rater_space = raters["raterParticipantId"]
    if rater_ids is not None and np.array_equal(rater_space, rater_ids):  # (False for another length)
        rater_space = rater_ids
    skipped = tuple(s for s in str(run["skipped"]).split(",") if s)
    prescoring = Prescoring(
        np.asarray(notes["noteId"], dtype=np.int64),
        rater_space,
        states,
        skipped,
        topic,
        str(run["topicWarning"]),
        tuple(specs[n] for n in str(run["derived"]).split(",") if n in specs),
        tuple(n for n in str(run["order"]).split(",") if n),
    )
    integrity = None
    if bool(run["hasIntegrity"]):
        frame = _read(root / "integrity.parquet")
        ids = frame["participantId"].to_numpy(dtype=object)
        coordinated = frame["coordinatedGroup"].to_numpy(np.int32) if "coordinatedGroup" in frame else None
        s_notes = s_raters = None
        if (root / "surprise.parquet").is_file():
            pairs = _read(root / "surprise.parquet")
            s_notes = pairs["noteId"].to_numpy(np.int64)
            s_raters = pairs["raterParticipantId"].to_numpy(dtype=object)
        integrity = IntegrityState(
            ids, frame["pssClique"].to_numpy(np.int32), ids[frame["correlated"].to_numpy(bool)], coordinated,
            s_notes, s_raters,
        )  # fmt: skip
    return prescoring, integrity, int(run["seed"])


def prescoring_digest(state_dir: Path) -> str:
    """sha256 over the prescoring files: a final state made with other prescoring is stale."""
    root = Path(state_dir) / PRESCORE_DIR
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.parquet")):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def write_table(
    frame: pd.DataFrame | Iterable[pd.DataFrame] | FrameColumns,
    state_dir: Path,
    name: str,
    *,
    output: bool = False,
) -> None:
    """One Parquet table of the final state (``final/<name>.parquet``); ``output``: the table is
    also an output file (``table_path``), written as the output writer writes one, else in the
    cheaper form only the state reads."""
    _write(frame, Path(state_dir) / FINAL_DIR / f"{name}.parquet", plain=not output, output=output)


def table_path(state_dir: Path, name: str) -> Path:
    """Where ``write_table`` puts table ``name``: with ``output``, written the way the output writer
    writes a frame, so an output Parquet file can be a copy of it."""
    return Path(state_dir) / FINAL_DIR / f"{name}.parquet"


def read_table(state_dir: Path, name: str, *, objects: Collection[str] = ()) -> pd.DataFrame:
    """Table ``name`` of the final state; ``objects``: text columns wanted as object arrays (as
    ``astype(object)`` gives them), for merging with frames that hold them so."""
    return _read(Path(state_dir) / FINAL_DIR / f"{name}.parquet", objects=objects)


def read_output(path: Path, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """An output table ``write_table(..., output=True)`` wrote, as a frame of its columns (or of
    ``columns`` only): text as str objects, NaN where missing (as an incremental run's merged
    frames hold them)."""
    names = pq.ParquetFile(path).schema_arrow.names if columns is None else list(columns)
    return _read(Path(path), columns, objects=names)


def write_text(state_dir: Path, name: str, write: Callable[[IO[bytes]], None]) -> None:
    """One output file's text as the last final run wrote it (``final/<name>``), which the next
    incremental run splices its rescored rows into: ``write`` writes it to the binary stream it
    is given, which replaces the old text only once written (so ``write`` may read the old one)."""
    with atomic_path(text_path(state_dir, name)) as tmp, open(tmp, "wb") as fh:
        write(fh)


def text_path(state_dir: Path, name: str) -> Path:
    """Where ``write_text`` puts the text of output file ``name`` (absent in a state from an
    older version, or one whose final run has not written it)."""
    return Path(state_dir) / FINAL_DIR / name


def has_table(state_dir: Path, name: str) -> bool:
    """Whether the final state holds table ``name`` (states from older versions may lack one)."""
    return (Path(state_dir) / FINAL_DIR / f"{name}.parquet").is_file()


def has_prescoring(state_dir: Path) -> bool:
    return (Path(state_dir) / PRESCORE_DIR / "run.parquet").is_file()


def has_final_state(state_dir: Path) -> bool:
    return (Path(state_dir) / FINAL_DIR / "run.parquet").is_file()


def require_final_state(state_dir: Path) -> None:
    """Raise the missing-state error unless the last final run finished saving (``begin_save``)."""
    if not has_final_state(state_dir):
        raise _missing(Path(state_dir) / FINAL_DIR / "run.parquet")

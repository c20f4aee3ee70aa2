"""The batch job one phase at a time (``bridgewatch score --phase prescore|final|contributor``).

Each phase reads the public files, does its part and leaves its results in a state directory
(``bridgewatch.state``) for the next: prescoring writes every scorer's parameters and the integrity
groups; final scoring reads them, scores notes (all of them, or with ``incremental`` only those
whose inputs changed since the last final run, §6.7) and writes scored_notes, status history and
aux_note_info; contributor scoring writes helpfulness_scores. Running the three in turn on one
dataset gives byte-identical outputs to ``--phase all`` (which alone also writes the integrity views).
"""

from __future__ import annotations

import functools
import hashlib
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.io import Dataset
from bridgewatch.io.formats import SCORING_NOTE_COLUMNS
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.io.tsv import BLOCK_ROWS as TSV_BLOCK_ROWS
from bridgewatch.io.tsv import splice_rows, write_rows
from bridgewatch.scoring import rescore as RS
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.outputs import COLUMNS, FrameColumns
from bridgewatch.scoring.phases import Prescoring
from bridgewatch.scoring.pipeline import Clock, FinalNotes, FinalResult, contributor_frame, final_dataset
from bridgewatch.scoring.pipeline import prescore_dataset as _prescore_dataset
from bridgewatch.scoring.scorer import ScoringInputs
from bridgewatch.scoring.scorer_specs import ScorerSpec
from bridgewatch.scoring.sweeps import SweepEngine
from bridgewatch.state import (
    FINAL_DIR,
    IntegrityState,
    begin_save,
    has_final_state,
    has_table,
    prescoring_digest,
    read_table,
    require_final_state,
    save_prescoring,
    table_path,
    text_path,
    write_table,
    write_text,
)

PHASES = ("all", "prescore", "final", "contributor")
_FRAMES = (schema.SCORED_NOTES_FILE, schema.NOTE_STATUS_HISTORY_FILE, schema.AUX_NOTE_INFO_FILE)
_NSH = schema.NOTE_STATUS_HISTORY_FILE


@dataclass(frozen=True, eq=False)
class PhaseOutput:
    """What one phase produced: output frames by file name, warnings, and (final) how many notes
    were rescored of how many (``rescored`` = -1 for a full run; ``partial`` of them only partially),
    and the TSV / Parquet files of frames already written (``text_files``, ``parquet_files``, by
    output file name: the state's, which the outputs copy). A frame written as it was built, a
    block of rows at a time, is None: its files alone hold it."""

    frames: dict[str, pd.DataFrame | None] = field(default_factory=dict)  # None: only its files
    warnings: tuple[str, ...] = ()
    rescored: int = -1
    notes: int = 0
    partial: int = 0
    text_files: dict[str, Path] = field(default_factory=dict)
    parquet_files: dict[str, Path] = field(default_factory=dict)


def config_digest(config: ScoringConfig) -> str:
    return hashlib.sha256(repr(config).encode()).hexdigest()


def integrity_state(found, rater_ids: np.ndarray, matrix: RatingMatrix | None = None) -> IntegrityState:
    """The by-id form of an ``integrity.adapters.IntegrityResult`` (``rater_ids``: the matrix's
    raters, which ``quasi_clique_value`` follows) that later phases apply to newer data; with
    ``matrix`` (the ratings ``found`` was computed on), the ratings the concerted-surprise defence
    set aside, by (noteId, raterParticipantId)."""
    qc = np.asarray(found.quasi_clique_value)
    correlated = np.asarray(rater_ids, dtype=object)[: qc.shape[0]][qc > 0]
    pss, coordinated = found.post_selection_value, found.coordinated_value
    s_notes = s_raters = None
    if matrix is not None and found.surprise_aside is not None:
        out = found.surprise_aside
        s_notes, s_raters = matrix.note_ids[matrix.note[out]], matrix.rater_ids[matrix.rater[out]]
    return IntegrityState(found.participant_ids, pss, correlated, coordinated, s_notes, s_raters)


def prescore_phase(
    dataset: Dataset,
    state_dir: Path,
    *,
    config: ScoringConfig,
    seed: int,
    integrity: IntegrityState | None,
    rating_keep: np.ndarray | None,
    correlated: np.ndarray | None,
    clock: Clock,
    scorers: Sequence[ScorerSpec] | None = None,
    warm: Prescoring | None = None,
    engine: SweepEngine | None = None,
    pss_member: np.ndarray | None = None,
) -> PhaseOutput:
    pre = _prescore_dataset(
        dataset, config=config, seed=seed, scorers=scorers, rating_keep=rating_keep, correlated=correlated,
        clock=clock, warm=warm, engine=engine, pss_member=pss_member, packed=True,
        keep_summaries=False,
    )  # fmt: skip
    clock.phase("write state", lambda: save_prescoring(pre, state_dir, integrity, seed))
    warnings = [pre.topic_warning] if pre.topic_warning else []
    if pre.skipped:
        warnings.append(f"scorers without enough data (skipped): {', '.join(pre.skipped)}")
    return PhaseOutput(warnings=(*dataset.warnings, *warnings))


def _rater_table(inputs: ScoringInputs) -> pd.DataFrame:
    ids = np.asarray(inputs.matrix.rater_ids, dtype=object)
    if pd.api.types.infer_dtype(ids, skipna=False) != "string":  # (text ids go in as they are)
        ids = ids.astype(str)
    return pd.DataFrame(
        {
            "raterParticipantId": ids,
            "highVolume": inputs.high_volume.astype(bool),
            "group": inputs.rater_group.astype(np.int32),
        }
    )


def _notes_table(final: FinalNotes, fingerprints: pd.DataFrame) -> pd.DataFrame:
    frame = fingerprints.copy()
    frame["finalRatingStatus"] = final.final_status.astype(str)
    frame["coreNoteIntercept"] = final.core_intercept
    frame["latestNonNMRMillis"] = final.latest_non_nmr
    return frame


class _Selector:
    """Picks the notes to rescore once final scoring has preprocessed the whole dataset: fully
    those whose own inputs or raters' groups changed, partially (NoHighVol refits only, the other
    fits from the previous run's ``fits`` table) those touched only by high-volume flips."""

    def __init__(
        self, dataset: Dataset, state: Path, epoch_millis: int, config: ScoringConfig, note_rows: np.ndarray
    ) -> None:
        self.dataset, self.state_dir, self.epoch, self.config = dataset, state, epoch_millis, config
        self.note_rows = note_rows  # the notes' row hashes, taken before the frame was narrowed
        self.fingerprints: pd.DataFrame | None = None
        self.selected: np.ndarray | None = None
        self.partial = 0
        self.previous_fits: pd.DataFrame | None = None  # the last final run's fits table, if kept
        self.raters: pd.DataFrame | None = None  # this run's rater table (the state keeps it)

    def __call__(self, inputs: ScoringInputs) -> RS.RescorePlan:
        m = inputs.matrix
        d = self.dataset
        self.fingerprints = RS.note_fingerprints(
            d.ratings, d.notes, d.status_history, inputs.note_topic, self.note_rows
        )
        self.raters = _rater_table(inputs)
        group, high = RS.rater_changes(read_table(self.state_dir, "raters"), self.raters)
        fits = read_table(self.state_dir, "fits") if has_table(self.state_dir, "fits") else None
        self.previous_fits = fits
        changed = group if fits is not None else group | high
        run = read_table(self.state_dir, "run").iloc[0]
        nsh = self.dataset.status_history.drop_duplicates(subset=["noteId"]).set_index("noteId")
        timer = nsh["timestampMillisOfNmrDueToMinStableCrhTime"].reindex(m.note_ids).to_numpy(np.float64)
        self.selected = RS.notes_to_rescore(
            self.fingerprints, read_table(self.state_dir, "notes"), changed, m,
            inputs.notes["createdAtMillis"].to_numpy(np.float64), timer,
            epoch_millis=self.epoch, previous_epoch_millis=int(run["epochMillis"]),
            lock_millis=self.config.history.lock_millis,
        )  # fmt: skip
        reuse: dict[str, RS.ReusedFits] = {}
        # Only the clock moved these notes' numRatingsLast28: no fit needs redoing.
        aged = RS.ratings_aged_out(m, int(run["epochMillis"]), self.epoch)
        if fits is None:
            self.selected = self.selected | aged
        else:
            partial = (RS.touched_notes(m, high) | aged) & ~self.selected
            self.partial = int(partial.sum())
            if partial.any():
                reuse = RS.reused_fits(fits, m.note_ids, partial, high_flipped=high)
            self.selected = self.selected | partial
        return RS.RescorePlan(self.selected, reuse)


def _can_reuse(state_dir: Path, config: ScoringConfig, digest: str) -> bool:
    if not has_final_state(state_dir):
        return False
    run = read_table(state_dir, "run").iloc[0]
    return str(run["prescoreDigest"]) == digest and str(run["configDigest"]) == config_digest(config)


def narrow_final_notes(notes: pd.DataFrame, note_ids: np.ndarray, known: np.ndarray) -> np.ndarray:
    """The notes' row hashes over whole rows (``rescore.note_row_hashes`` of ``note_ids``, which
    the fingerprints take), then, in place, what final scoring does not read of the notes frame
    dropped: every column but ``formats.SCORING_NOTE_COLUMNS``, and the summaries of the notes
    prescoring knew (``known``: its note ids), whose topics it saved; a newer note's summary gives
    its seed topic (``final_topics``). At X's 2.5M notes the rest was ~360 bytes a note (~0.8 GiB,
    estimated from the columns' sizes) under every fit and the outputs' assembly."""
    rows = RS.note_row_hashes(notes, note_ids)
    for column in [c for c in notes.columns if c not in SCORING_NOTE_COLUMNS]:
        del notes[column]  # (the frame itself: ``drop(inplace=True)`` is deprecated)
    if "summary" in notes.columns:
        newer = ~np.isin(notes["noteId"].to_numpy(np.int64), known)
        notes["summary"] = notes["summary"].where(newer)
    return rows


def final_phase(
    dataset: Dataset,
    state_dir: Path,
    *,
    epoch_millis: int,
    config: ScoringConfig,
    incremental: bool,
    rating_keep: np.ndarray | None,
    correlated: np.ndarray | None,
    prescoring: Prescoring,
    clock: Clock,
    engine: SweepEngine | None = None,
) -> PhaseOutput:
    """Final scoring against the saved prescoring; with ``incremental`` and a usable previous final
    state (same prescoring, same configuration), only notes whose inputs changed are rescored.
    ``dataset.notes`` is narrowed in place (``narrow_final_notes``) once its rows are hashed."""
    digest = prescoring_digest(state_dir)
    note_rows = narrow_final_notes(dataset.notes, dataset.ratings.note_ids, prescoring.note_ids)
    selector = None
    if incremental and _can_reuse(state_dir, config, digest):
        selector = _Selector(dataset, state_dir, epoch_millis, config, note_rows)
    # A full run writes scored_notes and aux_note_info as they are built (``_write_built``),
    # once scoring is done: the state is marked incomplete from the first of them, as below.
    sink = functools.partial(_write_built, state_dir) if selector is None else None
    result: FinalResult = final_dataset(
        dataset, prescoring, epoch_millis=epoch_millis, config=config, rating_keep=rating_keep,
        correlated=correlated, rescore=selector, clock=clock, engine=engine, sink=sink,
    )  # fmt: skip
    frames = {
        schema.SCORED_NOTES_FILE: result.scored_notes,
        schema.NOTE_STATUS_HISTORY_FILE: result.note_status_history,
        schema.AUX_NOTE_INFO_FILE: result.aux_note_info,
    }
    if selector is not None and selector.fingerprints is not None:
        fingerprints = selector.fingerprints
    else:
        fingerprints = RS.note_fingerprints(
            dataset.ratings, dataset.notes, dataset.status_history, result.inputs.note_topic, note_rows
        )
    notes = _notes_table(result.notes, fingerprints)
    # Nothing below reads a rating: the columns' pages (read-only mappings of the columnar cache,
    # every column read by now) go back to the page cache instead of counting in the process
    # through the writing (~29 bytes a rating, ~5.6 GiB at X's scale).
    dataset.ratings.release()
    note_ids = result.inputs.matrix.note_ids
    rescored = -1
    previous_keys: dict[str, np.ndarray] = {}  # the last run's rows, whose texts take the new ones
    ids = note_ids[:0]
    begin_save(state_dir, FINAL_DIR)  # (the selector has read the last run's table)
    if selector is not None and selector.selected is not None:
        ids = note_ids[selector.selected]
        rescored = int(ids.shape[0])
        # A state from before fits were kept has none for the notes not rescored: keep none then
        # (the next incremental run rescores high-volume flips fully, as this one did). The
        # selector read the last fits once; merged, they are written now and dropped.
        if selector.previous_fits is not None:
            new_fits = RS.fits_table(result.runs, ids, np.ones(ids.shape[0], dtype=bool))  # (their space)
            merged = RS.merge_fits(new_fits, selector.previous_fits, ids)
            selector.previous_fits = None
            clock.phase("write fits", functools.partial(write_table, merged, state_dir, "fits"))
            del new_fits, merged
        # scored_notes and aux_note_info hold the rescored notes' rows only; a full run's rows are
        # the notes with a notes or status-history row. The status history covers every note.
        # One of the last run's tables at a time, kept only for its merge (then its row keys).
        listed = note_ids[result.inputs.notes["inStatusHistory"].to_numpy(bool)]

        def merged(name: str, frame: pd.DataFrame) -> pd.DataFrame:
            # text columns read as the new rows hold them (objects), so the merge casts none back
            old = read_table(state_dir, _stem(name), objects=_objects(frame))
            previous_keys[name] = old["noteId"].to_numpy(np.int64)
            return RS.merge_rows(frame, old, ids, universe=None if name == _NSH else listed)

        frames = {
            name: clock.phase(f"merge {name}", functools.partial(merged, name, f))
            for name, f in frames.items()
        }
        notes = RS.merge_rows(notes, read_table(state_dir, "notes"), ids)
    else:  # written now, a scorer at a time as the kept runs give them: never whole
        every = np.ones(note_ids.shape[0], dtype=bool)
        fits_of = functools.partial(RS.fits_frames, result.runs, note_ids, every)
        clock.phase("write fits", lambda: write_table(fits_of(), state_dir, "fits"))

    # The rater flags are the whole dataset's either way: the selector's table is this one.
    raters = selector.raters if selector is not None and selector.raters is not None else None
    if raters is None:
        raters = _rater_table(result.inputs)
    warnings = (*dataset.warnings, *result.warnings)
    # Everything left is written from the frames and tables above: the run's ratings (a subset's
    # copy when integrity filtered some) and every scorer's kept run go before the writing.
    del result

    def tables() -> None:
        for name, frame in frames.items():
            if frame is not None:  # (else written as it was built)
                write_table(frame, state_dir, _stem(name), output=True)
        write_table(notes, state_dir, "notes")
        write_table(raters, state_dir, "raters")

    # The Parquet tables are written on a second thread while this one writes the texts: on two
    # cores the other one is idle here, and Parquet encoding runs without the GIL. Each old text
    # is read before its new one replaces it; the run table, which marks the state complete, is
    # removed first (``begin_save``, before the fits) and written last.
    with ThreadPoolExecutor(1) as pool:
        written = pool.submit(clock.phase, "write state", tables)
        for name, frame in frames.items():
            if frame is None:
                continue
            write = functools.partial(
                _write_text, frame, name, previous_keys.get(name), ids, text_path(state_dir, name)
            )
            clock.phase(f"write {name}", functools.partial(write_text, state_dir, name, write))
        written.result()
    run = {"epochMillis": [epoch_millis], "prescoreDigest": [digest], "configDigest": [config_digest(config)]}
    write_table(pd.DataFrame(run), state_dir, "run")
    partial = selector.partial if selector is not None else 0
    files = {name: table_path(state_dir, _stem(name)) for name in frames}
    texts = {name: text_path(state_dir, name) for name in frames}
    return PhaseOutput(frames, warnings, rescored, len(notes), partial, texts, files)


def _objects(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` held as Python objects."""
    return [c for c, kind in frame.dtypes.items() if kind == np.dtype(object)]


def _stem(name: str) -> str:
    return name.rsplit(".", 1)[0]


def _write_built(state_dir: Path, columns: FrameColumns) -> None:
    """A full final run's output ``columns`` written to the state as ``final_phase`` writes a
    frame (its Parquet table and its text, which the outputs copy), converted a block of rows at
    a time: the table on a second thread (Parquet encoding runs without the GIL) while this one
    writes the text, each converting its own blocks, so neither holds the whole frame."""
    begin_save(state_dir, FINAL_DIR)  # (again for the second: it only removes the run table)
    name = columns.name

    def text(out: IO[bytes]) -> None:
        for i, block in enumerate(columns.blocks(TSV_BLOCK_ROWS)):
            write_rows(out, block, COLUMNS[name], header=i == 0)

    with ThreadPoolExecutor(1) as pool:
        table = pool.submit(write_table, columns, state_dir, _stem(name), output=True)
        write_text(state_dir, name, text)
        table.result()


def _write_text(
    frame: pd.DataFrame,
    name: str,
    old_keys: np.ndarray | None,
    ids: np.ndarray,
    old_text: Path,
    out: IO[bytes],
) -> None:
    """The TSV text of ``frame`` (output file ``name``) to ``out``. With ``old_keys`` (the keys of
    the last run's rows), the last run's text ``old_text`` with the ``ids`` rows reformatted: the
    same bytes as formatting the whole frame, the old text read in bounded chunks. The whole
    frame is formatted when there is no old text or it cannot be spliced."""
    columns = COLUMNS[name]
    if old_keys is not None and old_text.is_file():
        keys = frame["noteId"].to_numpy(np.int64)
        rows = frame[np.isin(keys, ids)]
        with open(old_text, "rb") as old, tempfile.TemporaryFile(dir=old_text.parent) as new:
            write_rows(new, rows, columns)
            if splice_rows(old, old_keys, new, rows["noteId"].to_numpy(np.int64), keys, out):
                return
    write_rows(out, frame, columns)


def load_final_notes(state_dir: Path) -> FinalNotes:
    """What contributor scoring needs from the last final run (which must have finished saving)."""
    require_final_state(state_dir)
    t = read_table(state_dir, "notes")
    return FinalNotes(
        t["noteId"].to_numpy(np.int64),
        t["finalRatingStatus"].to_numpy(dtype=object),
        t["coreNoteIntercept"].to_numpy(np.float64),
        t["latestNonNMRMillis"].to_numpy(np.float64),
    )


def contributor_phase(
    dataset: Dataset,
    state_dir: Path,
    *,
    epoch_millis: int,
    config: ScoringConfig,
    rating_keep: np.ndarray | None,
    prescoring: Prescoring,
    clock: Clock,
) -> PhaseOutput:
    final = load_final_notes(state_dir)
    frame = contributor_frame(
        dataset, prescoring, final, epoch_millis=epoch_millis, config=config, rating_keep=rating_keep,
        clock=clock,
    )  # fmt: skip
    return PhaseOutput({schema.HELPFULNESS_SCORES_FILE: frame}, dataset.warnings)

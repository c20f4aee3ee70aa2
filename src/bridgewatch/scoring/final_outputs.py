"""Final scoring's outputs from its scorers' runs: meta, the status history, the three output
frames and what contributor scoring reads (``FinalNotes``).

Apart from the scorers because this is where final scoring's memory is per note rather than per
rating: each step drops what it read once done (at X's 2.5M notes each intermediate is ~1 KB a
note), and each is a phase of its own, so its time and memory are measured (``bench/phase_memory.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.scoring import assemble as A
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.explanation import apply_explanation, tag_counts
from bridgewatch.scoring.history import rescoring_rules, update_status_history
from bridgewatch.scoring.meta import explanation_flags, meta_score
from bridgewatch.scoring.outputs import FrameColumns
from bridgewatch.scoring.scorer import ScoringInputs
from bridgewatch.scoring.scorer_run import ScorerRun

Phase = Callable[[str, Callable[[], Any]], Any]  # ``pipeline.Clock.phase``
Sink = Callable[[FrameColumns], None]  # writes an output's columns (``phased.final_phase``)


@dataclass(frozen=True, eq=False)
class FinalNotes:
    """Per note of the matrix (N, ``note_ids`` order): what contributor scoring reads from final.

    ``final_status``: object[N] status names; ``core_intercept``: float64[N] (NaN unscored);
    ``latest_non_nmr``: float64[N] updated ``timestampMillisOfLatestNonNMRStatus`` (NaN none).
    """

    note_ids: np.ndarray
    final_status: np.ndarray
    core_intercept: np.ndarray
    latest_non_nmr: np.ndarray


@dataclass(frozen=True, eq=False)
class FinalResult:
    """Final scoring's three output frames, each scorer's run and the per-note ``FinalNotes``;
    scored_notes and aux_note_info are None where a ``Sink`` took them as they were built."""

    scored_notes: pd.DataFrame | None
    note_status_history: pd.DataFrame
    aux_note_info: pd.DataFrame | None
    runs: dict[str, ScorerRun]
    notes: FinalNotes
    warnings: tuple[str, ...]
    inputs: ScoringInputs


def final_outputs(
    inputs: ScoringInputs,
    runs: dict[str, ScorerRun],
    topic_ids: np.ndarray | None,
    notes: pd.DataFrame,
    nsh: pd.DataFrame,
    epoch_millis: int,
    config: ScoringConfig,
    phase: Phase,
    rows: np.ndarray | None,
    warnings: Sequence[str],
    sink: Sink | None = None,
) -> FinalResult:
    """The outputs of final scoring's ``runs`` over ``inputs`` (``notes`` / ``nsh``: the dataset's
    notes and input status history; ``rows``: an incremental run's rescored notes, whose rows
    alone scored_notes and aux_note_info hold; ``phase`` runs and measures each step).

    ``sink``: given, scored_notes' and aux_note_info's columns go to it as each is built, and the
    result holds None for them: converted whole and held until written, they were ~1.4 KB a note
    (~3.2 GiB at X's scale) under everything after them."""
    matrix = inputs.matrix
    # The outputs' assembly reads neither the rating values nor the rater-ordered index, which
    # the fits read last: their pages (read-only mappings of the columnar cache) go back to the
    # page cache instead of counting in the process through it (8 bytes a rating). The columns it
    # does read go back once each step that reads them is done (the notes, raters and
    # population-sampled flags: the output columns; the tags: the tag counts; the times and the
    # flags again: the aux_note_info frame): ~20 bytes a rating, under every later step before.
    matrix.release("value", "by_rater")

    def columns() -> dict[str, np.ndarray]:
        out = A.scored_columns(inputs, runs, topic_ids)
        created = inputs.notes["createdAtMillis"]
        out["rescoringActiveRules"] = rescoring_rules(
            matrix.note_ids, created, nsh, epoch_millis=epoch_millis
        )
        return out

    scored: dict[str, np.ndarray] = phase("output columns", columns)  # type: ignore[assignment]
    counts = tag_counts(matrix.note, matrix.tags, matrix.n_notes, schema.RATING_TAGS)
    matrix.release()
    counts_frame = pd.DataFrame(counts, columns=list(schema.RATING_TAGS))
    counts_frame.insert(0, "noteId", matrix.note_ids)
    meta_in = A.meta_frame(inputs, scored)
    flags = explanation_flags(counts_frame, config)
    meta = phase(
        "meta",
        functools.partial(
            meta_score, meta_in, nsh, epoch_millis=epoch_millis, config=config, explanation=flags
        ),
    )
    final_codes = np.array([schema.STATUS_CODES[s] for s in meta["finalRatingStatus"]], dtype=np.int8)
    ex = config.explanation
    tags = apply_explanation(
        final_codes,
        counts[:, : len(schema.HELPFUL_TAGS)],
        counts[:, len(schema.HELPFUL_TAGS) :],
        min_ratings_to_get_tag=ex.min_ratings_to_get_tag,
        min_tags_needed=ex.min_tags_needed_for_status,
    )
    history_in = pd.concat([meta, meta_in.drop(columns=["noteId"])], axis=1)
    # Each per-note intermediate goes once read: at X's 2.5M notes they are ~1 KB a note each.
    del meta_in, counts_frame
    new_nsh = phase(
        "status history",
        functools.partial(
            update_status_history, nsh, notes, history_in, epoch_millis=epoch_millis, config=config
        ),
    )
    del history_in
    keep_rows = inputs.notes["inStatusHistory"].to_numpy(bool)
    if rows is not None:  # an incremental run: the other notes' rows come from the last run
        keep_rows = keep_rows & rows
    core_intercept = np.asarray(scored.get("coreNoteIntercept", np.full(matrix.n_notes, np.nan)), np.float64)

    def made(build: Callable[[], FrameColumns]) -> pd.DataFrame | None:
        columns = build()
        if sink is None:
            return columns.frame()
        sink(columns)
        return None

    population = {c: scored[c] for c in A.POP_COUNT_COLUMNS if c in scored} or None
    scored_frame = phase(
        "scored_notes frame",
        functools.partial(
            made,
            functools.partial(A.scored_notes_columns, inputs, scored, meta, tags, new_nsh, keep_rows, runs),
        ),
    )
    del scored, tags
    aux = phase(
        "aux_note_info frame",
        functools.partial(
            made,
            functools.partial(
                A.aux_columns, inputs, runs, meta, counts, nsh, keep_rows, epoch_millis, population
            ),
        ),
    )
    latest = new_nsh.set_index("noteId")["timestampMillisOfLatestNonNMRStatus"]
    final_notes = FinalNotes(
        matrix.note_ids,
        meta["finalRatingStatus"].to_numpy(dtype=object),
        core_intercept,
        latest.reindex(matrix.note_ids).to_numpy(np.float64),
    )
    return FinalResult(scored_frame, new_nsh, aux, runs, final_notes, tuple(warnings), inputs)

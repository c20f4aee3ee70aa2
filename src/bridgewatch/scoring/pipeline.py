"""The batch scoring pipeline: every scorer, the meta combination, status history, contributors.

``score_dataset`` takes a ``Dataset`` (and, from the integrity layer above, an optional rating
filter and correlated-rater flags) and returns the four output frames in the reference's schemas.
It orders the work the way the reference's ``--phase all`` does (topics → prescoring and final
scoring per scorer → meta → status history → contributor scoring) and records the wall time of
each phase so the CLI can report it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bridgewatch import schema
from bridgewatch.errors import ScoringError
from bridgewatch.io.dataset import Dataset
from bridgewatch.scoring import assemble as A
from bridgewatch.scoring import helpfulness as H
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.contributor import contributor_scores
from bridgewatch.scoring.explanation import apply_explanation, tag_counts
from bridgewatch.scoring.history import rescoring_rules, update_status_history
from bridgewatch.scoring.meta import explanation_flags, meta_score
from bridgewatch.scoring.rules import NO_STATUS
from bridgewatch.scoring.scorer import ScoringInputs, prepare_inputs
from bridgewatch.scoring.scorer_run import ScorerRun, run_spec
from bridgewatch.scoring.scorer_specs import TOPICS, ScorerSpec, default_scorers
from bridgewatch.scoring.sweeps import SweepEngine

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """The four output frames, each scorer's run, warnings and per-phase wall times (seconds)."""

    scored_notes: pd.DataFrame
    helpfulness_scores: pd.DataFrame
    note_status_history: pd.DataFrame
    aux_note_info: pd.DataFrame
    runs: dict[str, ScorerRun]
    warnings: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)

    def frames(self) -> dict[str, pd.DataFrame]:
        return {
            schema.SCORED_NOTES_FILE: self.scored_notes,
            schema.HELPFULNESS_SCORES_FILE: self.helpfulness_scores,
            schema.NOTE_STATUS_HISTORY_FILE: self.note_status_history,
            schema.AUX_NOTE_INFO_FILE: self.aux_note_info,
        }


class _Clock:
    def __init__(self, progress: Progress | None) -> None:
        self.timings: dict[str, float] = {}
        self._progress = progress

    def phase(self, name: str, fn: Callable[[], object]) -> object:
        if self._progress is not None:
            self._progress(name)
        start = time.perf_counter()
        out = fn()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - start
        return out


def note_topics(dataset: Dataset, n_notes: int, note_index: np.ndarray) -> tuple[np.ndarray | None, str]:
    """int[N] topic id per matrix note (-1 none, ids as ``scorer_specs.TOPICS`` + 1), or None.

    Returns a warning text instead of failing when the classifier cannot be trained (the
    reference aborts; a small self-hosted community simply runs without topic scorers).
    """
    from bridgewatch.scoring.topics import assign_topics

    notes = dataset.notes
    if notes.empty or "summary" not in notes.columns:
        return None, "no note summaries: topic scorers skipped"
    try:
        names = assign_topics(notes).note_topic
    except ScoringError as exc:
        return None, f"topic model skipped: {exc}"
    codes = {name: i + 1 for i, name in enumerate(TOPICS)}
    per_row = np.array([codes.get(t, -1) if t is not None else -1 for t in names], dtype=np.int64)
    out = np.full(n_notes, -1, dtype=np.int64)
    ok = note_index >= 0
    out[note_index[ok]] = per_row[ok]
    return out, ""


def previous_status(nsh: pd.DataFrame, note_ids: np.ndarray) -> np.ndarray:
    """int8[N] published status (NSH ``currentStatus``) per note, ``NO_STATUS`` where none."""
    out = np.full(note_ids.shape[0], NO_STATUS, dtype=np.int8)
    if nsh.empty:
        return out
    pos = pd.Index(note_ids).get_indexer(nsh["noteId"].to_numpy(np.int64))
    ok = pos >= 0
    names = nsh["currentStatus"].to_numpy(dtype=object)[ok]
    codes = np.array(
        [schema.STATUS_CODES.get(s, NO_STATUS) if isinstance(s, str) else NO_STATUS for s in names]
    )
    out[pos[ok]] = codes.astype(np.int8)
    return out


def score_dataset(
    dataset: Dataset,
    *,
    epoch_millis: int,
    config: ScoringConfig | None = None,
    seed: int = 42,
    scorers: Sequence[ScorerSpec] | None = None,
    rating_keep: np.ndarray | None = None,
    correlated: np.ndarray | None = None,
    progress: Progress | None = None,
    engine: SweepEngine | None = None,
) -> PipelineResult:
    """Score a dataset end to end (``--phase all``).

    ``epoch_millis``: the scoring time "now" (rules, locks, history timestamps).
    ``rating_keep``: bool[R] ratings that survive post-selection similarity (None = all);
    ``correlated``: bool[U] quasi-clique raters for the NoCorrelated refits (None = none known);
    ``engine``: where the MF scorers' sweeps run (``bridgewatch.engines``; None = in process).
    """
    config = (config or ScoringConfig()).validate()
    clock = _Clock(progress)
    warnings: list[str] = list(dataset.warnings)
    matrix = dataset.ratings if rating_keep is None else dataset.ratings.subset(rating_keep)
    notes, nsh = dataset.notes, dataset.status_history
    note_index = matrix.note_index(notes["noteId"].to_numpy(np.int64))

    topic_ids, warn = clock.phase("topics", lambda: note_topics(dataset, matrix.n_notes, note_index))
    if warn:
        warnings.append(warn)
    inputs: ScoringInputs = clock.phase(
        "preprocess",
        lambda: prepare_inputs(
            matrix, notes, nsh, dataset.enrollment, config, note_topic=topic_ids, correlated=correlated
        ),
    )
    prev = previous_status(nsh, matrix.note_ids)
    runs: dict[str, ScorerRun] = {}
    skipped: list[str] = []
    for spec in scorers if scorers is not None else default_scorers():
        try:
            runs[spec.name] = clock.phase(
                f"scorer {spec.name}",
                lambda spec=spec: run_spec(inputs, spec, config, prev, runs, seed=seed, engine=engine),
            )
        except ScoringError:
            skipped.append(spec.name)
    if skipped:
        warnings.append(f"scorers without enough data (skipped): {', '.join(skipped)}")

    scored = A.scored_columns(inputs, runs, topic_ids)
    created = inputs.notes["createdAtMillis"]
    scored["rescoringActiveRules"] = rescoring_rules(matrix.note_ids, created, nsh, epoch_millis=epoch_millis)
    counts = tag_counts(matrix.note, matrix.tags, matrix.n_notes, schema.RATING_TAGS)
    counts_frame = pd.DataFrame(counts, columns=list(schema.RATING_TAGS))
    counts_frame.insert(0, "noteId", matrix.note_ids)
    meta_in = A.meta_frame(inputs, scored)
    meta = clock.phase(
        "meta",
        lambda: meta_score(
            meta_in, nsh, epoch_millis=epoch_millis, config=config,
            explanation=explanation_flags(counts_frame, config),
        ),
    )  # fmt: skip
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
    new_nsh = clock.phase(
        "status history",
        lambda: update_status_history(nsh, notes, history_in, epoch_millis=epoch_millis, config=config),
    )

    def contributors() -> pd.DataFrame:
        table = inputs.notes
        latest = new_nsh.set_index("noteId")["timestampMillisOfLatestNonNMRStatus"]
        latest = latest.reindex(matrix.note_ids).to_numpy(np.float64)
        valid = H.valid_ratings(
            matrix, inputs.base_keep, table["createdAtMillis"].to_numpy(np.float64), latest,
            final_codes, config.helpfulness,
        )  # fmt: skip
        rating_counts = A.rating_counts(matrix, valid)
        note_frame = pd.DataFrame(
            {
                "noteId": matrix.note_ids,
                "noteAuthorParticipantId": table["noteAuthorParticipantId"].to_numpy(dtype=object),
                "createdAtMillis": table["createdAtMillis"].to_numpy(np.float64),
                "finalRatingStatus": meta["finalRatingStatus"].to_numpy(dtype=object),
                "coreNoteIntercept": scored.get("coreNoteIntercept", np.full(matrix.n_notes, np.nan)),
            }
        )
        note_frame = note_frame[table["inStatusHistory"].to_numpy(bool)]
        contrib = contributor_scores(
            matrix, note_frame, new_nsh, rating_counts, dataset.enrollment,
            epoch_millis=epoch_millis, config=config,
        )  # fmt: skip
        return A.helpfulness_frame(matrix, contrib, rating_counts, runs)

    helpfulness = clock.phase("contributor scoring", contributors)
    keep_rows = inputs.notes["inStatusHistory"].to_numpy(bool)
    scored_frame = A.scored_notes_frame(inputs, scored, meta, tags, new_nsh, keep_rows, runs)
    aux = A.aux_frame(inputs, runs, meta, counts, nsh, keep_rows)
    return PipelineResult(
        scored_notes=scored_frame,
        helpfulness_scores=helpfulness,
        note_status_history=new_nsh,
        aux_note_info=aux,
        runs=runs,
        warnings=tuple(warnings),
        timings=clock.timings,
    )

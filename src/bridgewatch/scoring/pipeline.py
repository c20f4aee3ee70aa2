"""The batch scoring pipeline: every scorer, the meta combination, status history, contributors.

``score_dataset`` takes a ``Dataset`` (and, from the integrity layer above, an optional rating
filter and correlated-rater flags) and returns the four output frames in the reference's schemas.
It is the reference's ``--phase all``: ``prescore_dataset`` (topics, every scorer's prescoring),
``final_dataset`` (every scorer's final scoring against frozen rater parameters, meta, status
history; optionally only for some notes, §6.7) and ``contributor_frame``, composed in one process.
Each phase records its wall time so the CLI can report it.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from bridgewatch import schema
from bridgewatch.errors import ScoringError
from bridgewatch.io import heap
from bridgewatch.io.aside import RatingsLoan
from bridgewatch.io.dataset import Dataset
from bridgewatch.scoring import assemble as A
from bridgewatch.scoring import helpfulness as H
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.contributor import contributor_scores
from bridgewatch.scoring.final_outputs import FinalNotes, FinalResult, Sink, final_outputs
from bridgewatch.scoring.final_scoring import forget_masks
from bridgewatch.scoring.note_space import on_notes, reuse_on_notes, with_ratings
from bridgewatch.scoring.phases import Prescoring, final_topics, remap_prescoring
from bridgewatch.scoring.rescore import RescorePlan, ReusedFits
from bridgewatch.scoring.rules import NO_STATUS
from bridgewatch.scoring.scope_space import on_scope
from bridgewatch.scoring.scorer import ScoringInputs, forget_scopes, high_volume_flags, prepare_inputs
from bridgewatch.scoring.scorer_run import (
    ScorerPrescore,
    ScorerRun,
    expand_prescore,
    final_scorer,
    pack_prescore,
    prescore_scorer,
    run_derived,
)
from bridgewatch.scoring.scorer_specs import TOPICS, ScorerSpec, default_scorers
from bridgewatch.scoring.sweeps import SweepEngine, in_process
from bridgewatch.scoring.threads import CONCURRENT_BELOW, scorer_pool, serial_blas

Progress = Callable[[str], None]


OUTPUT_FILES = (
    schema.SCORED_NOTES_FILE,
    schema.HELPFULNESS_SCORES_FILE,
    schema.NOTE_STATUS_HISTORY_FILE,
    schema.AUX_NOTE_INFO_FILE,
)


@dataclass(frozen=True, eq=False)
class PipelineResult:
    """The output frames by file name (``OUTPUT_FILES``; a run that wrote one as it built it
    gives a reader of its file instead, called the first time the frame is asked for), each
    scorer's run, warnings and per-phase wall times (seconds)."""

    outputs: Mapping[str, pd.DataFrame | Callable[..., pd.DataFrame]]
    runs: dict[str, ScorerRun]
    warnings: tuple[str, ...]
    timings: dict[str, float] = field(default_factory=dict)
    _read: dict[str, pd.DataFrame] = field(default_factory=dict, init=False, repr=False)

    def column(self, name: str, column: str) -> pd.Series | None:
        """One column of output ``name`` (None where the frame lacks it), read alone from a file
        the run wrote: a summary's status counts need not read the whole frame back (at X's
        scale the CLI's summary did, and that set the final phase's peak: 14.2 GiB)."""
        value = self.outputs.get(name)
        if value is not None and not isinstance(value, pd.DataFrame) and name not in self._read:
            try:
                return value(columns=[column])[column]
            except (KeyError, ValueError, pa.ArrowInvalid):
                return None
        frame = self.frame(name)
        return frame[column] if column in frame.columns else None

    def frame(self, name: str) -> pd.DataFrame:
        """Output ``name``'s frame (empty when the run made none)."""
        value = self.outputs.get(name)
        if value is None:
            return pd.DataFrame()
        if isinstance(value, pd.DataFrame):
            return value
        if name not in self._read:
            self._read[name] = value()
        return self._read[name]

    def frames(self) -> dict[str, pd.DataFrame]:
        return {name: self.frame(name) for name in OUTPUT_FILES}

    scored_notes = property(lambda self: self.frame(schema.SCORED_NOTES_FILE))
    helpfulness_scores = property(lambda self: self.frame(schema.HELPFULNESS_SCORES_FILE))
    note_status_history = property(lambda self: self.frame(schema.NOTE_STATUS_HISTORY_FILE))
    aux_note_info = property(lambda self: self.frame(schema.AUX_NOTE_INFO_FILE))


# Free heap (bytes) above which a phase's end hands memory back to the OS (``heap.release``).
PHASE_TRIM_MIN = 64 << 20


class Clock:
    """Wall time per named phase (seconds), accumulated, with an optional progress callback."""

    def __init__(self, progress: Progress | None) -> None:
        self.timings: dict[str, float] = {}
        self._progress = progress

    def phase(self, name: str, fn: Callable[[], object]) -> object:
        if self._progress is not None:
            self._progress(name)
        start = time.perf_counter()
        out = fn()
        # What the phase freed, before the next one allocates (io.heap says why); only when that
        # is worth it: an incremental run's ~35 phases each free a few MiB, and trimming them all
        # cost ~4% of its CPU (the trims and the page faults after them).
        heap.release(PHASE_TRIM_MIN)
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
    # It reads no rating: the matrix's pages go back first, so its working set does not sit on
    # them (``RatingMatrix.release``; at X's scale ~3 GiB resident after integrity).
    dataset.ratings.release()
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


def _matrix(dataset: Dataset, rating_keep: np.ndarray | None):
    """The ratings ``rating_keep`` selects: the dataset's own matrix when it keeps them all."""
    if rating_keep is None or np.all(rating_keep):
        return dataset.ratings
    return dataset.ratings.subset(rating_keep)


def _same(stage: np.ndarray | None, prescoring: np.ndarray | None) -> bool:
    """Whether a final-scoring mask (None = as prescoring) selects what prescoring's does."""
    return stage is None or (prescoring is not None and np.array_equal(stage, prescoring))


def _inputs(
    dataset: Dataset,
    matrix,
    config: ScoringConfig,
    topic_ids,
    correlated,
    pss_member=None,
    rank=True,
    high_volume=None,
) -> ScoringInputs:
    """``high_volume``: bool[U] computed already over every rating; None counts ``dataset.ratings``."""
    volume = dataset.ratings if high_volume is None else None
    return prepare_inputs(
        matrix, dataset.notes, dataset.status_history, dataset.enrollment, config,
        note_topic=topic_ids, correlated=correlated, volume_matrix=volume, pss_member=pss_member,
        rank=rank, high_volume=high_volume,
    )  # fmt: skip


def _prescore(
    inputs: ScoringInputs,
    topic_ids: np.ndarray | None,
    topic_warning: str,
    config: ScoringConfig,
    seed: int,
    scorers: Sequence[ScorerSpec] | None,
    clock: Clock,
    warm: Prescoring | None = None,
    engine: SweepEngine | None = None,
    packed: bool = False,
) -> Prescoring:
    """Every MF scorer's prescoring; ``packed``: keep each state packed (``pack_prescore``) as
    soon as it is fitted, for a caller that reads them only through final scoring."""
    m = inputs.matrix
    if warm is not None:
        warm = remap_prescoring(warm, m.note_ids, m.rater_ids)
    states: dict[str, ScorerPrescore] = {}
    skipped: list[str] = []
    derived: list[ScorerSpec] = []
    previous = {} if warm is None else warm.scorers
    specs = list(scorers if scorers is not None else default_scorers())
    for spec in specs:
        if spec.kernel != "mf" or spec.prescoring is not None:
            derived.append(spec)  # scored in final on its base scorer's prescoring
            continue
        try:
            state = clock.phase(
                f"prescore {spec.name}",
                lambda spec=spec: prescore_scorer(
                    on_scope(inputs, spec),
                    spec,
                    config,
                    seed=seed,
                    warm=previous.get(spec.name),
                    engine=engine,
                ),
            )
            states[spec.name] = pack_prescore(state) if packed else state
            del state
        except ScoringError:
            skipped.append(spec.name)
        finally:
            forget_scopes(inputs)
    order = tuple(s.name for s in specs)
    return Prescoring(
        m.note_ids, m.rater_ids, states, tuple(skipped), topic_ids, topic_warning, tuple(derived), order
    )


@serial_blas
def prescore_dataset(
    dataset: Dataset,
    *,
    config: ScoringConfig | None = None,
    seed: int = 42,
    scorers: Sequence[ScorerSpec] | None = None,
    rating_keep: np.ndarray | None = None,
    correlated: np.ndarray | None = None,
    clock: Clock | None = None,
    warm: Prescoring | None = None,
    engine: SweepEngine | None = None,
    pss_member: np.ndarray | None = None,
    packed: bool = False,
    keep_summaries: bool = True,
) -> Prescoring:
    """Prescoring (``--phase prescore``): topics, then every scorer's MF rounds and filter inputs.

    ``rating_keep``: bool[R] ratings that survive post-selection similarity (None = all);
    ``correlated``: bool[U] quasi-clique raters (None = none known). Scorers without enough data
    are listed in ``Prescoring.skipped``. ``warm``: an earlier prescoring (any index space) whose
    parameters start this one's MF rounds. ``pss_member``: bool[U] raters in a PSS clique (they
    lead the reference's rating table, which orders the factors cold fits draw). ``packed``: keep
    each scorer's state packed once fitted (``pack_prescore``; ``state.save_prescoring`` writes
    them so): in float64 they were held to the end (`medium`, 24 scorers: 0.293 GiB, 0.086 packed).
    ``keep_summaries``: False drops the notes' ``summary`` column from ``dataset.notes`` (in
    place) once the topic model has read it: nothing after it does, and the texts were ~200
    bytes a note (measured deep at `medium`), held through every fit; for a caller that owns the
    dataset and reads no summary after prescoring (the prescore phase).
    """
    config = (config or ScoringConfig()).validate()
    clock = clock or Clock(None)
    matrix = _matrix(dataset, rating_keep)
    note_index = matrix.note_index(dataset.notes["noteId"].to_numpy(np.int64))
    topic_ids, warn = clock.phase("topics", lambda: note_topics(dataset, matrix.n_notes, note_index))
    if not keep_summaries and "summary" in dataset.notes.columns:
        del dataset.notes["summary"]  # (the frame itself: ``drop(inplace=True)`` is deprecated)
    inputs = clock.phase(
        "preprocess", lambda: _inputs(dataset, matrix, config, topic_ids, correlated, pss_member)
    )
    return _prescore(inputs, topic_ids, warn, config, seed, scorers, clock, warm, engine, packed)


def _final(
    dataset: Dataset,
    inputs: ScoringInputs,
    pre: Prescoring,
    topic_ids: np.ndarray | None,
    epoch_millis: int,
    config: ScoringConfig,
    clock: Clock,
    engine: SweepEngine | None = None,
    reuse: Mapping[str, ReusedFits] | None = None,
    rows: np.ndarray | None = None,
    sink: Sink | None = None,
) -> FinalResult:
    matrix, notes, nsh = inputs.matrix, dataset.notes, dataset.status_history
    reuse = reuse or {}
    warnings = [pre.topic_warning] if pre.topic_warning else []
    prev = previous_status(nsh, matrix.note_ids)
    runs: dict[str, ScorerRun] = {}
    skipped = set(pre.skipped)
    derived = {spec.name: spec for spec in pre.derived}
    futures: dict[str, Future[ScorerRun]] = {}

    def scorer(name: str) -> ScorerRun:
        state = pre.scorers[name]
        # A full run scores a group or topic scorer on its own ratings (``scope_space``); an
        # incremental one's matrix holds its rescored notes' ratings only already.
        own = on_scope(inputs, state.spec) if rows is None else inputs
        run = final_scorer(own, expand_prescore(state), config, prev, engine, reuse.get(name))
        del own
        return A.kept_for_outputs(run, state, matrix.note_ids)

    def derived_scorer(spec: ScorerSpec) -> ScorerRun:
        base = futures.get(spec.prescoring or "")
        done = {} if base is None else {spec.prescoring or "": base.result()}
        own = on_scope(inputs, spec) if rows is None else inputs  # (as ``scorer``'s)
        run = run_derived(own, spec, config, prev, done, engine=engine, reuse=reuse.get(spec.name))
        del own
        return A.kept_for_outputs(run, pre.scorers.get(spec.prescoring or ""), matrix.note_ids)

    def forgetting(task: Callable[[], ScorerRun]) -> ScorerRun:
        """``task``, then its masks dropped (``final_scoring.forget_masks`` says why)."""
        try:
            return task()
        finally:
            forget_masks(inputs)

    # Every scorer's final scoring depends only on the inputs and its prescoring, a Gaussian
    # scorer also on its base scorer's run; small phases run two at a time (``scorer_pool``).
    with scorer_pool(matrix.n_ratings if in_process(engine) else CONCURRENT_BELOW) as pool:
        for name in pre.order or tuple(pre.scorers):
            if name in pre.scorers:
                task = functools.partial(forgetting, functools.partial(scorer, name))
                futures[name] = pool.submit(clock.phase, f"final {name}", task)
            elif name in derived:
                task = functools.partial(forgetting, functools.partial(derived_scorer, derived[name]))
                futures[name] = pool.submit(clock.phase, f"final {name}", task)
        for name, future in futures.items():
            try:
                runs[name] = future.result()
            except ScoringError:
                if name not in derived:
                    raise
                skipped.add(name)
    if skipped:
        names = [n for n in pre.order or sorted(skipped) if n in skipped]
        warnings.append(f"scorers without enough data (skipped): {', '.join(names)}")
    return final_outputs(
        inputs, runs, topic_ids, notes, nsh, epoch_millis, config, clock.phase, rows, warnings, sink
    )


@serial_blas
def final_dataset(
    dataset: Dataset,
    prescoring: Prescoring,
    *,
    epoch_millis: int,
    config: ScoringConfig | None = None,
    rating_keep: np.ndarray | None = None,
    correlated: np.ndarray | None = None,
    rescore: Callable[[ScoringInputs], RescorePlan] | None = None,
    clock: Clock | None = None,
    engine: SweepEngine | None = None,
    sink: Sink | None = None,
) -> FinalResult:
    """Final scoring (``--phase final``) of ``dataset`` against an earlier ``prescoring``.

    The dataset may be newer than the prescoring (more notes, raters, ratings): rater parameters
    stay frozen, new raters are ignored until the next prescoring (§6.8). ``rescore``: given the
    preprocessed inputs of the whole dataset, returns the notes to score and the fits of those
    rescored partially (``rescore.RescorePlan``, §6.7); they are scored in a note space of their
    own (``runs`` hold per-note values of those notes only), scored_notes and aux_note_info then
    hold only those notes' rows, the status history every note's (the others' passed through
    unchanged), ``notes`` every note (the others without a status) and ``inputs`` are the whole
    dataset's; the caller merges them with the previous run's (``rescore.merge_rows``).
    Rater-level inputs (high-volume raters, groups) are always computed over the whole dataset.
    ``sink``: a full run (no ``rescore``) hands scored_notes' and aux_note_info's columns to it as
    they are built, and its result holds None for them (``final_outputs``); an incremental run's
    frames, of its rescored notes only, are the caller's to merge.
    """
    config = (config or ScoringConfig()).validate()
    clock = clock or Clock(None)
    matrix = _matrix(dataset, rating_keep)
    # From the prescoring as it was: a moved one knows every note, and newer notes would get none.
    topic_ids = final_topics(prescoring, dataset.notes, matrix.note_ids)
    # Incremental: every scorer's arrays move once, into the space of the notes rescored (below).
    pre = remap_prescoring(prescoring, matrix.note_ids, matrix.rater_ids) if rescore is None else prescoring
    # An incremental run ranks only the ratings it rescores: a subset's reference rank orders
    # them as the whole dataset's does (a stable sort restricted), and only that order is read.
    inputs = clock.phase(
        "preprocess", lambda: _inputs(dataset, matrix, config, topic_ids, correlated, rank=rescore is None)
    )
    if rescore is None:
        return _final(dataset, inputs, pre, topic_ids, epoch_millis, config, clock, engine, sink=sink)
    plan = rescore(inputs)
    rows = np.asarray(plan.notes, dtype=bool)
    if not rows.any():  # a note space of no notes: score no ratings over every note, keep no row
        sel = np.zeros(matrix.n_ratings, dtype=bool)
        none = with_ratings(inputs, matrix.subset(sel), sel, correlated)
        pre = remap_prescoring(prescoring, matrix.note_ids, matrix.rater_ids)
        return _final(dataset, none, pre, topic_ids, epoch_millis, config, clock, engine, plan.reuse, rows)
    on = on_notes(inputs, rows, correlated)
    topics = None if topic_ids is None else topic_ids[rows]
    pre = remap_prescoring(prescoring, on.matrix.note_ids, on.matrix.rater_ids)
    reuse = reuse_on_notes(plan.reuse, rows)
    result = _final(dataset, on, pre, topics, epoch_millis, config, clock, engine, reuse)
    return dataclasses.replace(result, notes=_spread(result.notes, matrix.note_ids, rows), inputs=inputs)


def _spread(notes: FinalNotes, note_ids: np.ndarray, rows: np.ndarray) -> FinalNotes:
    """``notes`` of the notes ``rows`` selects, over every note of ``note_ids`` (the others: no
    status, NaN; an incremental run takes their values from the previous run)."""

    def spread(values: np.ndarray, fill: object) -> np.ndarray:
        out = np.full(note_ids.shape[0], fill, dtype=values.dtype)
        out[rows] = values
        return out

    return FinalNotes(
        np.asarray(note_ids, dtype=np.int64),
        spread(np.asarray(notes.final_status, dtype=object), None),
        spread(np.asarray(notes.core_intercept, dtype=np.float64), np.nan),
        spread(np.asarray(notes.latest_non_nmr, dtype=np.float64), np.nan),
    )


@serial_blas
def contributor_frame(
    dataset: Dataset,
    prescoring: Prescoring,
    final: FinalNotes,
    *,
    epoch_millis: int,
    config: ScoringConfig | None = None,
    rating_keep: np.ndarray | None = None,
    clock: Clock | None = None,
) -> pd.DataFrame:
    """Contributor scoring (``--phase contributor``): helpfulness_scores from final statuses (§4).

    ``rating_keep``: the ratings it counts (None = all: the reference's contributor scoring reads
    the preprocessed ratings, before any PSS filter)."""
    config = (config or ScoringConfig()).validate()
    return _contributor(
        dataset, _matrix(dataset, rating_keep), prescoring, final, epoch_millis, config, clock
    )


def _contributor(
    dataset: Dataset,
    matrix,
    prescoring: Prescoring,
    final: FinalNotes,
    epoch_millis: int,
    config: ScoringConfig,
    clock: Clock | None,
) -> pd.DataFrame:
    from bridgewatch.scoring import preprocess as P

    clock = clock or Clock(None)
    pre = remap_prescoring(prescoring, matrix.note_ids, matrix.rater_ids)
    pos = pd.Index(final.note_ids).get_indexer(matrix.note_ids)
    if (pos < 0).any():
        raise ScoringError("contributor scoring: final scoring did not cover every note; run final again")
    status = final.final_status[pos]
    codes = np.array([schema.STATUS_CODES[s] for s in status], dtype=np.int8)
    latest = final.latest_non_nmr[pos]

    def run() -> pd.DataFrame:
        table = P.note_table(matrix, dataset.notes, dataset.status_history)
        base_keep = P.classification_mask(matrix, table)
        created = table["createdAtMillis"].to_numpy(np.float64)
        valid = H.valid_ratings(matrix, base_keep, created, latest, codes, config.helpfulness)
        rating_counts = A.rating_counts(matrix, valid)
        # Each pass below reads its own rating columns: those read so far go back to the page
        # cache (``RatingMatrix.release``) rather than stay on top of them (24 bytes a rating).
        del base_keep, valid
        matrix.release()
        note_frame = pd.DataFrame(
            {
                "noteId": matrix.note_ids,
                "noteAuthorParticipantId": table["noteAuthorParticipantId"].to_numpy(dtype=object),
                "createdAtMillis": created,
                "finalRatingStatus": status,
                "coreNoteIntercept": final.core_intercept[pos],
            }
        )
        note_frame = note_frame[table["inStatusHistory"].to_numpy(bool)]
        nsh = pd.DataFrame({"noteId": matrix.note_ids, "timestampMillisOfLatestNonNMRStatus": latest})
        contrib = contributor_scores(
            matrix, note_frame, nsh, rating_counts, dataset.enrollment,
            epoch_millis=epoch_millis, config=config,
        )  # fmt: skip
        return A.helpfulness_frame(matrix, contrib, rating_counts, pre.scorers)  # type: ignore[arg-type]

    return clock.phase("contributor scoring", run)


@serial_blas
def score_dataset(
    dataset: Dataset,
    *,
    epoch_millis: int,
    config: ScoringConfig | None = None,
    seed: int = 42,
    scorers: Sequence[ScorerSpec] | None = None,
    rating_keep: np.ndarray | None = None,
    correlated: np.ndarray | None = None,
    final_keep: np.ndarray | None = None,
    final_correlated: np.ndarray | None = None,
    pss_member: np.ndarray | None = None,
    progress: Progress | None = None,
    engine: SweepEngine | None = None,
) -> PipelineResult:
    """Score a dataset end to end (``--phase all``): prescore, final, contributor in one process.

    ``epoch_millis``: the scoring time "now" (rules, locks, history timestamps).
    ``rating_keep``: bool[R] ratings that survive post-selection similarity (None = all);
    ``correlated``: bool[U] quasi-clique raters for the NoCorrelated refits (None = none known);
    ``final_keep`` / ``final_correlated``: the same for final scoring when it differs (None = as
    prescoring; ``integrity.adapters.final_scoring_filter`` says why it does in the reference).
    Contributor scoring counts every rating, as the reference's does.
    ``pss_member``: bool[U] raters in a PSS clique (they lead the reference's rating table,
    which orders the factors cold fits draw).
    ``engine``: where the MF scorers' sweeps run (``bridgewatch.engines``; None = in process).
    """
    config = (config or ScoringConfig()).validate()
    clock = Clock(progress)
    n_notes = dataset.ratings.n_notes  # subsets keep the id maps whole
    note_index = dataset.ratings.note_index(dataset.notes["noteId"].to_numpy(np.int64))
    topic_ids, warn = clock.phase("topics", lambda: note_topics(dataset, n_notes, note_index))
    # The ratings are lent out (io.aside): while a phase scores a subset, the dataset holds that
    # subset and the dropped ratings' columns instead of the whole matrix, which contributor
    # scoring gets back at the end; high-volume tagging, which counts every rating, runs first.
    high = clock.phase("high-volume tagging", lambda: high_volume_flags(dataset.ratings, None, config))
    loan = RatingsLoan(dataset)
    try:
        inputs = clock.phase(
            "preprocess",
            lambda: _inputs(
                dataset, loan.select(rating_keep), config, topic_ids, correlated, pss_member, high_volume=high
            ),
        )
        pre = _prescore(inputs, topic_ids, warn, config, seed, scorers, clock, engine=engine, packed=True)
        if not (_same(final_keep, rating_keep) and _same(final_correlated, correlated)):
            same_ratings = inputs.matrix if _same(final_keep, rating_keep) else None
            del inputs
            fc = correlated if final_correlated is None else final_correlated

            def final_inputs() -> ScoringInputs:
                fm = same_ratings if same_ratings is not None else loan.select(final_keep)
                return _inputs(dataset, fm, config, topic_ids, fc, high_volume=high)

            inputs = clock.phase("preprocess (final)", final_inputs)
            del same_ratings
        final = _final(dataset, inputs, pre, topic_ids, epoch_millis, config, clock, engine)
        del inputs
        notes, runs, warnings = final.notes, final.runs, final.warnings
        frames = final.scored_notes, final.note_status_history, final.aux_note_info
        del final  # its inputs hold the final subset; contributor scoring counts every rating
        helpfulness = _contributor(dataset, loan.whole(), pre, notes, epoch_millis, config, clock)
    finally:
        loan.close()
    outputs = dict(zip(OUTPUT_FILES, (frames[0], helpfulness, frames[1], frames[2]), strict=True))
    return PipelineResult(
        outputs={name: frame for name, frame in outputs.items() if frame is not None},
        runs=runs,
        warnings=(*dataset.warnings, *warnings),
        timings=clock.timings,
    )

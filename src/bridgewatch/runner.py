"""The batch job: read the public files, run the integrity defences, score, write the outputs.

This module sits above ``scoring`` and ``integrity`` (DESIGN.md layers): the scoring pipeline
knows nothing of how raters were found to act in concert; it only receives which ratings
survive post-selection similarity and which raters are correlated.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable, Sequence
from functools import partial, wraps
from pathlib import Path

import numba
import numpy as np
import pandas as pd

from bridgewatch.errors import ConfigError
from bridgewatch.integrity.adapters import (
    IntegrityResult,
    detect_integrity,
    final_scoring_filter,
    integrity_tables,
)
from bridgewatch.integrity.coordination import CoordinationParams
from bridgewatch.integrity.surprise import SurpriseParams
from bridgewatch.integrity.views import VIEW_FILES
from bridgewatch.io import Dataset, read_dataset
from bridgewatch.io.formats import CONTRIBUTOR_NOTE_COLUMNS, PRESCORING_STATUS_COLUMNS, SCORING_NOTE_COLUMNS
from bridgewatch.io.matrix import RatingMatrix
from bridgewatch.phased import (
    PHASES,
    PhaseOutput,
    contributor_phase,
    final_phase,
    integrity_state,
    prescore_phase,
)
from bridgewatch.scoring.assemble import rater_column_scorers
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.mf import build_problem, fit_mf
from bridgewatch.scoring.outputs import write_outputs
from bridgewatch.scoring.pipeline import Clock, PipelineResult, score_dataset
from bridgewatch.scoring.scorer import SCORED_RATER_COLUMNS
from bridgewatch.scoring.scorer_specs import ScorerSpec, default_scorers
from bridgewatch.scoring.sweeps import SweepEngine
from bridgewatch.state import has_prescoring, load_prescoring, read_output

Progress = Callable[[str], None]


def coordination_params(config: ScoringConfig) -> CoordinationParams | None:
    """The coordinated-group defence's parameters, None when ``config`` switches it off."""
    c = config.integrity
    if not c.coordination:
        return None
    return CoordinationParams(
        min_shared=c.coordination_min_shared,
        min_similarity=c.coordination_min_similarity,
        min_group=c.coordination_min_group,
        keep_earliest=c.coordination_keep_earliest,
    )


def surprise_params(config: ScoringConfig) -> SurpriseParams | None:
    """The concerted-surprise defence's parameters, None when ``config`` switches it off."""
    c = config.integrity
    if not c.surprise:
        return None
    return SurpriseParams(residual=c.surprise_residual, fdr=c.surprise_fdr, min_events=c.surprise_min_events)


def first_rater_model(
    matrix: RatingMatrix, config: ScoringConfig, seed: int = 42
) -> tuple[float, np.ndarray, np.ndarray]:
    """(mu, rater intercept float[U], rater first factor float[U]): one MF fit of ``matrix``'s
    ratings, the viewpoints the concerted-surprise defence measures surprise against (a member's
    few turned ratings barely move its own parameters; the notes are refitted robustly there)."""
    p = fit_mf(build_problem(matrix), config.mf, seed=seed).params
    return float(p.mu), p.rater_intercept, p.rater_factor[:, 0]


def run_integrity(dataset: Dataset, config: ScoringConfig) -> IntegrityResult:
    """Post-selection similarity and quasi-cliques over the whole dataset (§7.1–7.2), on numba's
    threads, after the coordinated-group defence if ``config.integrity.coordination`` is on, and
    the concerted-surprise defence (one extra MF fit) if ``config.integrity.surprise`` is."""
    surprise = surprise_params(config)
    # fitted on the ratings the coordination collapse keeps (detect_integrity calls it)
    model = (
        partial(first_rater_model, config=config)
        if surprise is not None and dataset.ratings.n_ratings
        else None
    )
    return detect_integrity(
        dataset.ratings, dataset.notes, coordination=coordination_params(config), surprise=surprise,
        rater_model=model, num_threads=numba.get_num_threads(),
        surprise_prescoring=config.integrity.surprise_prescoring,
    )  # fmt: skip


def scoring_filters(dataset: Dataset, found: IntegrityResult, config: ScoringConfig) -> dict[str, np.ndarray]:
    """``score_dataset``'s integrity arguments: prescoring's and final scoring's masks (§7.1), both
    collapsing the coordinated groups ``found`` holds (``config`` says how), and the PSS members
    whose ratings lead the reference's rating table (the cold fits' draw order)."""
    final_keep, final_correlated = final_scoring_filter(
        dataset.ratings,
        dataset.notes,
        found.participant_ids,
        found.post_selection_value,
        found.correlated_ids,
        coordinated_value=found.coordinated_value,
        coordination=coordination_params(config),
    )
    if found.surprise_aside is not None:  # the surprising ratings stay out of the final fit too
        final_keep[found.surprise_aside] = False
    return {
        "rating_keep": found.keep,
        "correlated": found.quasi_clique_value > 0,
        "final_keep": final_keep,
        "final_correlated": final_correlated,
        "pss_member": _pss_member(found, dataset.ratings.n_raters),
    }


def set_aside(matrix: RatingMatrix, note_ids: np.ndarray, rater_ids: np.ndarray) -> np.ndarray:
    """bool[R]: ``matrix``'s ratings among the (noteId int64[S], raterParticipantId object[S])
    pairs, e.g. those the concerted-surprise defence set aside at prescoring (pairs of notes or
    raters the matrix lacks match nothing)."""
    if matrix.n_ratings == 0 or len(note_ids) == 0:
        return np.zeros(matrix.n_ratings, dtype=bool)
    n_idx = np.searchsorted(matrix.note_ids, np.asarray(note_ids, dtype=np.int64))
    r_idx = np.searchsorted(matrix.rater_ids, np.asarray(rater_ids, dtype=object))
    n_idx, r_idx = np.minimum(n_idx, matrix.n_notes - 1), np.minimum(r_idx, matrix.n_raters - 1)
    found = (matrix.note_ids[n_idx] == note_ids) & (matrix.rater_ids[r_idx] == rater_ids)
    if not found.any():
        return np.zeros(matrix.n_ratings, dtype=bool)
    wanted = n_idx[found].astype(np.int64) * matrix.n_raters + r_idx[found]
    key = matrix.note.astype(np.int64) * matrix.n_raters + matrix.rater
    return np.isin(key, wanted)


def _pss_member(found: IntegrityResult, n_raters: int) -> np.ndarray:
    """bool[U] matrix raters in a PSS clique (participant space lists the raters first)."""
    return np.asarray(found.post_selection_value)[:n_raters] > 0


def core_rater_factor(result: PipelineResult, rater_ids: np.ndarray) -> np.ndarray:
    """float[U] ``coreRaterFactor1`` per matrix rater (NaN where the core scorer gave none)."""
    hs = result.helpfulness_scores
    factor = pd.Series(hs["coreRaterFactor1"].to_numpy(np.float64), index=hs["raterParticipantId"])
    return factor[~factor.index.duplicated()].reindex(rater_ids).to_numpy(np.float64)


def _older_objects_frozen(fn: Callable[..., PipelineResult]) -> Callable[..., PipelineResult]:
    """``fn`` run with every object that existed before it out of the cyclic collector's reach
    (``gc.freeze``), then put back. A full collection walks every tracked object: the modules,
    numba's dispatchers, whatever the host holds (earlier runs, in a benchmark); one landing in
    a short incremental run cost ~60 ms of its ~1.2 s. Reference counting still frees what the
    run drops; only cycles through those older objects wait for the next full collection after
    it. A host that froze objects itself keeps its own choice."""

    @wraps(fn)
    def run(*args, **kwargs) -> PipelineResult:
        if gc.get_freeze_count():
            return fn(*args, **kwargs)
        gc.freeze()
        try:
            return fn(*args, **kwargs)
        finally:
            gc.unfreeze()

    return run


@_older_objects_frozen
def score_directory(
    source: str | os.PathLike[str],
    out_dir: str | os.PathLike[str] | None,
    *,
    seed: int = 42,
    epoch_millis: int | None = None,
    config: ScoringConfig | None = None,
    integrity: bool = True,
    parquet: bool = True,
    progress: Progress | None = None,
    phase: str = "all",
    state_dir: str | os.PathLike[str] | None = None,
    incremental: bool = False,
    scorers: Sequence[ScorerSpec] | None = None,
    warm_start: bool = False,
    engine: SweepEngine | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PipelineResult:
    """Score the public files in ``source`` and write the outputs to ``out_dir``.

    ``epoch_millis`` is the scoring time "now" (defaults to the wall clock, as the reference).
    ``phase``: "all" (one process, no state) or one of "prescore", "final", "contributor", which
    exchange their results through ``state_dir`` (default ``out_dir/state``); ``incremental``:
    final scoring rescores only notes whose inputs changed since the last final run (§6.7).
    ``scorers``: the MF scorers to run (default: the production inventory); ``warm_start``: the
    prescore phase starts its fits from the prescoring already in the state directory, if any;
    ``engine`` runs the MF sweeps (``bridgewatch.engines``; None = in process);
    ``cache_dir``: where the ratings matrix is cached between runs (None: no cache).
    """
    if phase not in PHASES:
        raise ConfigError(f"unknown phase {phase!r}; known: {', '.join(PHASES)}")
    if incremental and phase != "final":
        raise ConfigError("--incremental applies to --phase final only")
    if warm_start and phase != "prescore":
        raise ConfigError("--warm-start applies to --phase prescore only")
    config = (config or ScoringConfig()).validate()
    now = int(time.time() * 1000) if epoch_millis is None else int(epoch_millis)
    start = time.perf_counter()
    # The one-process job and prescoring keep only the notes columns scoring reads (~0.4 GiB
    # less at X's scale, by the columns' sizes), contributor scoring the notes' authors, times
    # and classes; final scoring reads every column, whose rows its notes' fingerprints hash
    # (``phased.narrow_final_notes`` drops the rest after). Prescoring and contributor scoring
    # read 4 of the 24 status-history columns; final scoring writes the history back whole.
    note_columns = {
        "all": SCORING_NOTE_COLUMNS,
        "prescore": SCORING_NOTE_COLUMNS,
        "contributor": CONTRIBUTOR_NOTE_COLUMNS,
    }.get(phase)
    status_columns = PRESCORING_STATUS_COLUMNS if phase in ("prescore", "contributor") else None
    dataset = read_dataset(
        source, cache_dir=cache_dir, note_columns=note_columns, status_columns=status_columns
    )
    timings = {"read": time.perf_counter() - start}
    found = None
    text_files: dict[str, Path] = {}
    parquet_files: dict[str, Path] = {}
    if phase == "all":
        filters: dict[str, np.ndarray] = {}
        timings["integrity"] = 0.0
        if integrity:
            t0 = time.perf_counter()
            found = run_integrity(dataset, config)
            filters = scoring_filters(dataset, found, config)
            timings["integrity"] = time.perf_counter() - t0
        result = score_dataset(
            dataset, epoch_millis=now, config=config, seed=seed, scorers=scorers, progress=progress,
            engine=engine, **filters,
        )  # fmt: skip
        frames = result.frames()
        runs, warnings = result.runs, result.warnings
        timings.update(result.timings)
    else:
        if state_dir is None and out_dir is None:
            raise ConfigError(f"--phase {phase} needs an output directory or --state")
        state = Path(state_dir) if state_dir is not None else Path(out_dir) / "state"  # type: ignore[arg-type]
        out = _run_phase(
            dataset, phase, state, now, config, seed, integrity, incremental, progress, timings, scorers,
            warm_start, engine,
        )  # fmt: skip
        frames, runs, warnings, text_files = out.frames, {}, out.warnings, out.text_files
        parquet_files = out.parquet_files
        if out.rescored >= 0:
            timings["rescored notes"] = float(out.rescored)
            timings["rescored notes (partially)"] = float(out.partial)
    if out_dir is not None and frames:
        t0 = time.perf_counter()
        write_outputs(
            Path(out_dir), frames, parquet=parquet, text_files=text_files, parquet_files=parquet_files
        )
        timings["write"] = time.perf_counter() - t0
        if found is not None:
            t0 = time.perf_counter()
            factor = core_rater_factor(result, dataset.ratings.rater_ids)
            views = integrity_tables(dataset.ratings, found, factor, num_threads=numba.get_num_threads())
            write_outputs(Path(out_dir), views, parquet=parquet)
            timings["integrity views"] = time.perf_counter() - t0
        else:  # views of an earlier run would sit beside outputs they no longer describe
            for name in VIEW_FILES:
                for path in (Path(out_dir) / name, (Path(out_dir) / name).with_suffix(".parquet")):
                    path.unlink(missing_ok=True)

    # A frame the phase wrote as it built it (None) is read from its Parquet file if asked for.
    outputs = {
        name: partial(read_output, parquet_files[name]) if frame is None else frame
        for name, frame in frames.items()
    }
    return PipelineResult(outputs, runs, warnings, timings)


def _run_phase(
    dataset: Dataset,
    phase: str,
    state: Path,
    now: int,
    config: ScoringConfig,
    seed: int,
    integrity: bool,
    incremental: bool,
    progress: Progress | None,
    timings: dict[str, float],
    scorers: Sequence[ScorerSpec] | None,
    warm_start: bool,
    engine: SweepEngine | None,
) -> PhaseOutput:
    clock = Clock(progress)
    keep = correlated = pss_member = None
    t0 = time.perf_counter()
    if phase == "prescore":
        groups = warm = None
        if warm_start and has_prescoring(state):
            warm = load_prescoring(state, scorers)[0]
        if integrity:
            found = run_integrity(dataset, config)
            keep, correlated = found.keep, found.quasi_clique_value > 0
            pss_member = _pss_member(found, dataset.ratings.n_raters)
            groups = integrity_state(found, dataset.ratings.rater_ids, dataset.ratings)
        timings["integrity"] = time.perf_counter() - t0
        out = prescore_phase(
            dataset, state, config=config, seed=seed, integrity=groups, rating_keep=keep,
            correlated=correlated, clock=clock, scorers=scorers, warm=warm, engine=engine,
            pss_member=pss_member,
        )  # fmt: skip
    else:
        columns = SCORED_RATER_COLUMNS if phase == "final" else None
        # Both phases expand one scorer's state at a time: packed, the contributor phase started
        # at 12.88 GiB at public with every state read dense (docs/memory.md, session 19).
        only = None if phase == "final" else rater_column_scorers(scorers or default_scorers())
        prescoring, groups, _ = load_prescoring(
            state, scorers, helpfulness_columns=columns, first_round=phase != "final", packed=True,
            only=only, rater_ids=dataset.ratings.rater_ids,
        )  # fmt: skip
        if groups is not None and phase == "final":  # contributor scoring counts every rating
            keep, correlated = final_scoring_filter(
                dataset.ratings, dataset.notes, groups.participant_ids, groups.clique, groups.correlated_ids,
                coordinated_value=groups.coordinated, coordination=coordination_params(config),
            )  # fmt: skip
            if groups.surprise_notes is not None and groups.surprise_raters is not None:
                keep &= ~set_aside(dataset.ratings, groups.surprise_notes, groups.surprise_raters)
        timings["load state + integrity"] = time.perf_counter() - t0
        if phase == "final":
            out = final_phase(
                dataset, state, epoch_millis=now, config=config, incremental=incremental, rating_keep=keep,
                correlated=correlated, prescoring=prescoring, clock=clock, engine=engine,
            )  # fmt: skip
        else:
            out = contributor_phase(
                dataset, state, epoch_millis=now, config=config, rating_keep=None, prescoring=prescoring,
                clock=clock,
            )  # fmt: skip
    timings.update(clock.timings)
    return out

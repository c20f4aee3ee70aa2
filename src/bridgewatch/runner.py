"""The batch job: read the public files, run the integrity defences, score, write the outputs.

This module sits above ``scoring`` and ``integrity`` (DESIGN.md layers): the scoring pipeline
knows nothing of how raters were found to act in concert; it only receives which ratings
survive post-selection similarity and which raters are correlated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from bridgewatch.integrity.adapters import IntegrityResult, detect_integrity, integrity_tables
from bridgewatch.io import Dataset, read_dataset
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.outputs import write_outputs
from bridgewatch.scoring.pipeline import PipelineResult, score_dataset
from bridgewatch.scoring.sweeps import SweepEngine

Progress = Callable[[str], None]


def run_integrity(dataset: Dataset, config: ScoringConfig) -> IntegrityResult:
    """Post-selection similarity and quasi-cliques over the whole dataset (§7.1–7.2)."""
    return detect_integrity(dataset.ratings, dataset.notes)


def core_rater_factor(result: PipelineResult, rater_ids: np.ndarray) -> np.ndarray:
    """float[U] ``coreRaterFactor1`` per matrix rater (NaN where the core scorer gave none)."""
    hs = result.helpfulness_scores
    factor = pd.Series(hs["coreRaterFactor1"].to_numpy(np.float64), index=hs["raterParticipantId"])
    return factor[~factor.index.duplicated()].reindex(rater_ids).to_numpy(np.float64)


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
    engine: SweepEngine | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> PipelineResult:
    """Score the public files in ``source`` and write the four outputs to ``out_dir``.

    With ``integrity`` on, the integrity views (``integrity/views.py``: note and rater integrity,
    top-k similar raters, flagged-group activity) are written beside them.

    ``epoch_millis`` is the scoring time "now" (defaults to the wall clock, as the reference);
    ``engine`` runs the MF sweeps (``bridgewatch.engines``; None = in process);
    ``cache_dir``: where the ratings matrix is cached between runs (None: no cache).
    """
    config = (config or ScoringConfig()).validate()
    now = int(time.time() * 1000) if epoch_millis is None else int(epoch_millis)
    start = time.perf_counter()
    dataset = read_dataset(source, cache_dir=cache_dir)
    read_s = time.perf_counter() - start
    keep = correlated = found = None
    integrity_s = 0.0
    if integrity:
        t0 = time.perf_counter()
        found = run_integrity(dataset, config)
        keep, correlated = found.keep, found.quasi_clique_value > 0
        integrity_s = time.perf_counter() - t0
    result = score_dataset(
        dataset, epoch_millis=now, config=config, seed=seed, rating_keep=keep, correlated=correlated,
        progress=progress, engine=engine,
    )  # fmt: skip
    timings = {"read": read_s, "integrity": integrity_s, **result.timings}
    if out_dir is not None:
        t0 = time.perf_counter()
        write_outputs(Path(out_dir), result.frames(), parquet=parquet)
        timings["write"] = time.perf_counter() - t0
        if found is not None:
            t0 = time.perf_counter()
            factor = core_rater_factor(result, dataset.ratings.rater_ids)
            write_outputs(Path(out_dir), integrity_tables(dataset.ratings, found, factor), parquet=parquet)
            timings["integrity views"] = time.perf_counter() - t0
    return PipelineResult(
        result.scored_notes,
        result.helpfulness_scores,
        result.note_status_history,
        result.aux_note_info,
        result.runs,
        result.warnings,
        timings,
    )

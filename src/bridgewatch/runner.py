"""The batch job: read the public files, run the integrity defences, score, write the outputs.

This module sits above ``scoring`` and ``integrity`` (DESIGN.md layers): the scoring pipeline
knows nothing of how raters were found to act in concert; it only receives which ratings
survive post-selection similarity and which raters are correlated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bridgewatch.integrity.pss import apply_pss, participant_space, post_selection_similarity
from bridgewatch.integrity.quasi_clique import correlated_rater, quasi_cliques
from bridgewatch.io import Dataset, read_dataset
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.outputs import write_outputs
from bridgewatch.scoring.pipeline import PipelineResult, score_dataset
from bridgewatch.scoring.preprocess import note_table

Progress = Callable[[str], None]


@dataclass(frozen=True, eq=False)
class IntegrityResult:
    """``keep``: bool[R] ratings surviving PSS; ``correlated``: bool[U] quasi-clique raters;
    ``pss_clique`` / ``quasi_clique``: int32[U] group ids per rater (0 = none)."""

    keep: np.ndarray
    correlated: np.ndarray
    pss_clique: np.ndarray
    quasi_clique: np.ndarray


def run_integrity(dataset: Dataset, config: ScoringConfig) -> IntegrityResult:
    """Post-selection similarity and quasi-cliques over the whole dataset (§7.1–7.2)."""
    m = dataset.ratings
    table = note_table(m, dataset.notes, dataset.status_history)
    tweets = pd.Series(dataset.notes["tweetId"].to_numpy(np.int64), index=dataset.notes["noteId"])
    raw_tweet = tweets[~tweets.index.duplicated()].reindex(m.note_ids).fillna(-1).to_numpy(np.int64)
    # Dense tweet codes (−1 = none) keep packed (rater, tweet) keys inside int64.
    uniq, code = np.unique(raw_tweet, return_inverse=True)
    note_tweet = np.where(raw_tweet < 0, -1, code - int((uniq < 0).sum())).astype(np.int64)
    authors = table["noteAuthorParticipantId"].astype(object).where(lambda s: s.notna(), "")
    ids, author_index = participant_space(m.rater_ids, authors.to_numpy(dtype=object))
    author_index = np.where(authors.to_numpy(dtype=object) == "", -1, author_index).astype(np.int32)
    created = table["createdAtMillis"].fillna(0).to_numpy(np.int64)
    clique = post_selection_similarity(
        m.note_indptr, m.rater, m.created_at, m.value, author_index, created, note_tweet, ids.shape[0]
    )
    n_notes = len(dataset.notes)
    keep = apply_pss(m.note, m.rater, m.created_at, author_index, clique, n_notes)
    misleading = (table["classification"] == "MISINFORMED_OR_POTENTIALLY_MISLEADING").to_numpy(bool)
    qc, _ = quasi_cliques(m.note, m.rater, m.value, note_tweet, created, misleading, m.n_raters)
    correlated = correlated_rater(np.arange(m.n_raters), qc).astype(bool)
    return IntegrityResult(keep, correlated, clique[: m.n_raters], qc)


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
) -> PipelineResult:
    """Score the public files in ``source`` and write the four outputs to ``out_dir``.

    ``epoch_millis`` is the scoring time "now" (defaults to the wall clock, as the reference).
    """
    config = (config or ScoringConfig()).validate()
    now = int(time.time() * 1000) if epoch_millis is None else int(epoch_millis)
    start = time.perf_counter()
    dataset = read_dataset(source)
    read_s = time.perf_counter() - start
    keep = correlated = None
    integrity_s = 0.0
    if integrity:
        t0 = time.perf_counter()
        found = run_integrity(dataset, config)
        keep, correlated = found.keep, found.correlated
        integrity_s = time.perf_counter() - t0
    result = score_dataset(
        dataset, epoch_millis=now, config=config, seed=seed, rating_keep=keep, correlated=correlated,
        progress=progress,
    )  # fmt: skip
    timings = {"read": read_s, "integrity": integrity_s, **result.timings}
    if out_dir is not None:
        t0 = time.perf_counter()
        write_outputs(Path(out_dir), result.frames(), parquet=parquet)
        timings["write"] = time.perf_counter() - t0
    return PipelineResult(
        result.scored_notes,
        result.helpfulness_scores,
        result.note_status_history,
        result.aux_note_info,
        result.runs,
        result.warnings,
        timings,
    )

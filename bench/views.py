"""Benchmark the integrity views (``integrity/views.py``) against the PSS co-selection pass.

Same heavy-tailed synthetic ratings as ``bench/pss.py``. The top-k similarity pair count costs
Σ_notes min(n, m)² (m raters sampled per note), so it is timed at several ``max_raters_per_note``
caps; the baseline is PSS's
co-selection pass (already part of every batch run) on the same ratings, in the same process.

    .venv/bin/python bench/views.py --ratings 2000000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bridgewatch.integrity.polarization import note_rater_diversity, rater_polarization
from bridgewatch.integrity.pss import PSSParams, co_selection_pairs
from bridgewatch.integrity.similarity import note_sample_cap, opinion_groups, top_k_similar
from bridgewatch.integrity.views import ViewParams
from pss import synth


def _time(fn) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratings", type=int, default=2_000_000)
    ap.add_argument("--caps", default="100,200,500")
    args = ap.parse_args()
    d = synth(args.ratings)
    note, rater, n_raters = d["note"], d["rater"], d["n_raters"]
    n_notes = d["indptr"].shape[0] - 1
    rng = np.random.default_rng(0)
    value = rng.choice([0.0, 0.5, 1.0], note.shape[0])
    factor = rng.normal(0, 0.5, n_raters)
    print(f"{note.shape[0]:,} ratings, {n_notes:,} notes, {n_raters:,} raters")
    tiny = synth(20_000, seed=1)  # warm the numba caches so compile time is not counted
    co_selection_pairs(tiny["indptr"], tiny["rater"], tiny["created"], tiny["note_tweet"], tiny["n_raters"])
    top_k_similar(tiny["note"], tiny["rater"], np.ones(tiny["note"].shape[0]), tiny["n_raters"])

    base, _ = _time(
        lambda: co_selection_pairs(d["indptr"], rater, d["created"], d["note_tweet"], n_raters, PSSParams())
    )
    rows = [("PSS co-selection (baseline)", base, "")]
    t, _ = _time(lambda: rater_polarization(note, rater, value, factor, n_notes))
    rows.append(("rater_polarization", t, ""))
    t, _ = _time(lambda: note_rater_diversity(note, rater, value, factor, n_notes))
    rows.append(("note_rater_diversity", t, ""))
    t, _ = _time(lambda: opinion_groups(note, rater, value, n_notes, n_raters))
    rows.append(("opinion_groups (SVD + k-means)", t, ""))
    for cap in [int(c) for c in args.caps.split(",")]:
        sizes = np.bincount(note, minlength=n_notes)
        m = note_sample_cap(sizes, cap, ViewParams().max_similarity_pairs)
        t, top = _time(lambda cap=cap: top_k_similar(note, rater, value, n_raters, max_raters_per_note=cap))
        info = (
            f"{np.minimum(sizes, m).sum() / note.shape[0]:.0%} of ratings (≤ {m} a note), {len(top):,} rows"
        )
        rows.append((f"top_k_similar cap {cap}", t, info))
    print(f"{'step':<32}{'seconds':>9}{'× baseline':>12}  notes")
    for name, seconds, info in rows:
        print(f"{name:<32}{seconds:9.2f}{seconds / base:12.2f}  {info}")


if __name__ == "__main__":
    main()

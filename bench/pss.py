"""Benchmark post-selection similarity on synthetic ratings with realistic per-note shapes.

Ratings per note are log-normal (heavy tail: a few notes get thousands of ratings), rating delays
after note creation are exponential (most ratings arrive in the first hours, which is what fills the
20-minute window), raters' activity is Zipf-like, 1-3 notes per tweet. Prints the time of each step
and the emitted window pairs per rating (E/R), the number that drives the cost.

    .venv/bin/python bench/pss.py --ratings 20000000 --threads 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bridgewatch.integrity import pairs
from bridgewatch.integrity.components import connected_components
from bridgewatch.integrity.pss import PSSParams, apply_pss, author_rater_pairs, co_selection_pairs

DAY = 86_400_000


def synth(
    n_ratings: int,
    seed: int = 0,
    mean_per_note: float = 100.0,
    sigma: float = 1.5,
    delay_hours: float = 6.0,
    raters_per_rating: float = 0.05,
):
    """Arrays in RatingMatrix order (sorted by note, then rater)."""
    rng = np.random.default_rng(seed)
    mu = np.log(mean_per_note) - sigma**2 / 2
    sizes = np.clip(rng.lognormal(mu, sigma, int(n_ratings / mean_per_note * 1.2)), 1, 50_000).astype(
        np.int64
    )
    sizes = sizes[np.cumsum(sizes) <= n_ratings]
    n_notes = sizes.shape[0]
    notes_per_tweet = rng.geometric(0.6, n_notes)
    note_tweet = np.repeat(np.arange(n_notes), notes_per_tweet)[:n_notes].astype(np.int64)
    note_tweet[rng.random(n_notes) < 0.02] = -1
    note_created = rng.integers(0, 365 * DAY, n_notes)
    n_raters = max(100, int(n_ratings * raters_per_rating))
    n_authors = max(10, n_notes // 8)
    note_author = rng.integers(0, n_authors, n_notes).astype(np.int32)  # authors are raters 0..n_authors
    r = int(sizes.sum())
    note = np.repeat(np.arange(n_notes, dtype=np.int32), sizes)
    weights = 1.0 / np.arange(1, n_raters + 1) ** 0.9
    cdf = np.cumsum(weights) / weights.sum()
    rater = np.searchsorted(cdf, rng.random(r)).astype(np.int32)
    rater = rng.permutation(n_raters).astype(np.int32)[rater]
    created = note_created[note] + rng.exponential(delay_hours * 3_600_000, r).astype(np.int64)
    # a planted timing ring: 8 fresh raters rate 40 random notes within 5 minutes of each other
    ring = np.arange(n_raters, n_raters + 8, dtype=np.int32)
    ring_notes = rng.choice(n_notes, 40, replace=False)
    rn = np.repeat(ring_notes, 8).astype(np.int32)
    note = np.r_[note, rn]
    rater = np.r_[rater, np.tile(ring, 40)]
    created = np.r_[created, note_created[rn] + 7_200_000 + rng.integers(0, 300_000, rn.shape[0])]
    n_raters += 8
    order = np.lexsort((rater, note))
    note, rater, created = note[order], rater[order], created[order]
    first = np.r_[True, (note[1:] != note[:-1]) | (rater[1:] != rater[:-1])]  # one rating per (note, rater)
    note, rater, created = note[first], rater[first], created[first]
    r = int(note.shape[0])
    helpful = rng.random(r) < 0.4
    indptr = np.r_[0, np.cumsum(np.bincount(note, minlength=n_notes))].astype(np.int64)
    return dict(
        note=note,
        rater=rater,
        created=created,
        helpful=helpful,
        indptr=indptr,
        note_tweet=note_tweet,
        note_created=note_created,
        note_author=note_author,
        n_raters=n_raters,
        ring=ring,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratings", type=int, default=2_000_000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--chunk-keys", type=int, default=1 << 26)
    ap.add_argument("--delay-hours", type=float, default=6.0)
    args = ap.parse_args()
    t0 = time.perf_counter()
    d = synth(args.ratings, delay_hours=args.delay_hours)
    r = d["rater"].shape[0]
    print(
        f"synth: {r:,} ratings, {d['indptr'].shape[0] - 1:,} notes, {d['n_raters']:,} raters "
        f"({time.perf_counter() - t0:.1f}s)"
    )
    p = PSSParams()
    # warm the numba caches on a tiny input so compile time is not counted
    tiny = synth(20_000, seed=1)
    co_selection_pairs(
        tiny["indptr"], tiny["rater"], tiny["created"], tiny["note_tweet"], tiny["n_raters"], p
    )

    t = time.perf_counter()
    perm, gptr, tptr = pairs.order_notes_by_tweet(
        d["indptr"], d["note_tweet"], d["created"], np.ones(r, bool)
    )
    e = int(pairs.window_pair_bounds(d["created"][perm], gptr, tptr, p.window_millis).sum())
    print(f"layout + window bound: {time.perf_counter() - t:.1f}s; E = {e:,} window pairs, E/R = {e / r:.1f}")

    timings = {}
    t = time.perf_counter()
    a_lo, a_hi = author_rater_pairs(
        d["note_author"],
        d["note_created"],
        d["note"],
        d["rater"],
        d["created"],
        d["helpful"],
        d["n_raters"],
        p,
    )
    timings["author-rater (A)"] = time.perf_counter() - t
    t = time.perf_counter()
    co = co_selection_pairs(
        d["indptr"],
        d["rater"],
        d["created"],
        d["note_tweet"],
        d["n_raters"],
        p,
        chunk_keys=args.chunk_keys,
        num_threads=args.threads,
        progress=print,
    )
    timings["co-selection (B)"] = time.perf_counter() - t
    t = time.perf_counter()
    clique = connected_components(np.r_[a_lo, co["raterA"]], np.r_[a_hi, co["raterB"]], d["n_raters"])
    timings["components"] = time.perf_counter() - t
    t = time.perf_counter()
    keep = apply_pss(d["note"], d["rater"], d["created"], d["note_author"], clique, d["indptr"].shape[0] - 1)
    timings["apply_pss"] = time.perf_counter() - t
    for k, v in timings.items():
        print(f"{k:>18}: {v:7.1f}s")
    print(
        f"total: {sum(timings.values()):.1f}s; suspect pairs A={a_lo.shape[0]:,} "
        f"B={co['raterA'].shape[0]:,}; "
        f"cliques={int(clique.max())}; kept {keep.mean():.4f} of ratings"
    )
    ring_cliques = np.unique(clique[d["ring"]])
    members = np.flatnonzero(clique == ring_cliques[0]) if ring_cliques[0] > 0 else np.zeros(0)
    print(
        f"planted ring of 8: clique ids {ring_cliques.tolist()}, that clique has {members.shape[0]} members"
    )


if __name__ == "__main__":
    main()

"""Per-note and per-rater integrity views: the tables behind ``note_integrity.tsv``,
``rater_integrity.tsv``, ``rater_similarity.tsv`` and ``group_activity.tsv``.

X publishes no such files; they exist so a moderator or researcher can see *who* a note's support
comes from (one side, both sides, one opinion group, a flagged group) next to the scorer's verdict.
Everything is over dense indices (notes 0..N−1, raters 0..U−1); the io adapter maps ids. Scoring
never reads these.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np
import pandas as pd

from bridgewatch.integrity.polarization import note_rater_diversity, note_side_ratings, rater_polarization
from bridgewatch.integrity.similarity import opinion_groups, top_k_similar

NOTE_INTEGRITY_FILE = "note_integrity.tsv"
RATER_INTEGRITY_FILE = "rater_integrity.tsv"
RATER_SIMILARITY_FILE = "rater_similarity.tsv"
GROUP_ACTIVITY_FILE = "group_activity.tsv"
DAY_MS = 86_400_000
VIEW_FILES = (NOTE_INTEGRITY_FILE, RATER_INTEGRITY_FILE, RATER_SIMILARITY_FILE, GROUP_ACTIVITY_FILE)
GROUP_KINDS = ("postSelection", "quasiClique", "coordinated", "surprise")
# the rater_integrity.tsv column holding each kind's group id (0 = none)
GROUP_COLUMNS = {"postSelection": "postSelectionValue", "quasiClique": "quasiCliqueValue",
                 "coordinated": "coordinatedGroup", "surprise": "surpriseGroup"}  # fmt: skip


@dataclass(frozen=True)
class ViewParams:
    """Knobs of the views. Not reference constants: the reference has no such outputs.

    ``max_raters_per_note`` and ``max_similarity_pairs`` bound the top-k pair count (cost
    Σ_notes n²): a note with more raters contributes a fixed sample of them (``top_k_similar``),
    so the views stay linear in ratings at any scale.
    """

    top_k: int = 10
    similarity_shrinkage: float = 5.0
    min_co_rated: int = 3
    max_raters_per_note: int | None = 200
    max_similarity_pairs: int = 200_000_000
    # the pair counter's working memory (``count_pairs``); the rows do not depend on it
    pair_memory_bytes: int = 1 << 30
    n_groups: int = 2
    min_group_ratings: int = 5
    min_side_raters: int = 2
    seed: int = 0
    coordinate_decimals: int = 6  # SVD coordinates rounded so BLAS threading cannot change the files


def group_rating_shares(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    rater_group: np.ndarray,
    n_notes: int,
    n_groups: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Which opinion groups rated each note, and how they rated it.

    ``rater_group`` int[U] (−1 = unplaced, ignored). Returns ``share`` float[N, G] (share of the
    note's placed raters in each group, NaN with none) and ``mean`` float[N, G] (the group's mean
    rating of the note, NaN where the group did not rate it).
    """
    count, total = _group_sums(
        np.asarray(rating_note), np.asarray(rating_rater), np.asarray(rating_value),
        np.asarray(rater_group), n_notes, n_groups,
    )  # fmt: skip
    with np.errstate(invalid="ignore", divide="ignore"):
        share = count / count.sum(axis=1, keepdims=True)
        mean = total / count
    return share, mean


def note_view(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    rater_factor: np.ndarray,
    rater_polarization_value: np.ndarray,
    rater_group: np.ndarray,
    rater_flagged: np.ndarray,
    n_notes: int,
    params: ViewParams = ViewParams(),
) -> pd.DataFrame:
    """One row per note (shape N): diversity of its Helpful raters, how the two factor sides rated
    it, the mean polarization of its raters, opinion-group shares and ratings from flagged raters.

    ``rater_factor`` float[U] (NaN = unknown), ``rater_polarization_value`` float[U],
    ``rater_group`` int[U] (−1 = unplaced), ``rater_flagged`` bool[U] (in a PSS group, a
    quasi-clique or a coordinated group).
    """
    note = np.asarray(rating_note)  # ids keep their dtype: every per-note sum is a one-pass kernel
    rater = np.asarray(rating_rater)
    diversity = note_rater_diversity(note, rater, rating_value, rater_factor, n_notes)
    sides = note_side_ratings(note, rater, rating_value, rater_factor, n_notes)
    pol_n, pol_sum = _known_sums(note, rater, np.asarray(rater_polarization_value, dtype=np.float64), n_notes)
    with np.errstate(invalid="ignore", divide="ignore"):
        pol_mean = pol_sum / pol_n
    share, mean = group_rating_shares(note, rater, rating_value, rater_group, n_notes, params.n_groups)
    out = pd.concat([diversity, sides.drop(columns="note")], axis=1)
    out.insert(1, "numRatings", np.bincount(note, minlength=n_notes))
    out["polarizedRaters"] = pol_n
    out["raterPolarizationMean"] = pol_mean
    for g in range(params.n_groups):
        out[f"opinionGroup{g}Share"] = share[:, g]
        out[f"opinionGroup{g}MeanRating"] = mean[:, g]
    flagged = np.asarray(rater_flagged, dtype=bool)[rater]
    out["flaggedRatings"] = np.bincount(note[flagged], minlength=n_notes)
    return out


def rater_view(
    rating_note: np.ndarray,
    rating_rater: np.ndarray,
    rating_value: np.ndarray,
    rater_factor: np.ndarray,
    post_selection_value: np.ndarray,
    quasi_clique_value: np.ndarray,
    n_notes: int,
    params: ViewParams = ViewParams(),
    coordinated_group: np.ndarray | None = None,
    num_threads: int = 1,
    surprise_group: np.ndarray | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per rater (shape U) and the sparse top-k neighbour list (≤ k rows per rater).

    The rater table holds polarization (``rater_polarization``), opinion group and 2-D map
    coordinates (``opinion_groups``), the PSS, quasi-clique and coordinated group ids (0 = none;
    ``coordinated_group`` int[≥U], None when the coordination defence is off: all 0), the
    concerted-surprise group (``surprise_group`` int[≥U], likewise) and the
    nearest neighbour; the neighbour table is ``top_k_similar``'s frame (counted on
    ``num_threads`` threads; the tables do not depend on them). No U × U matrix is built.
    """
    n_raters = np.asarray(rater_factor).shape[0]
    pol = rater_polarization(
        rating_note, rating_rater, rating_value, rater_factor, n_notes, min_side_raters=params.min_side_raters
    )
    groups = opinion_groups(
        rating_note, rating_rater, rating_value, n_notes, n_raters,
        n_groups=params.n_groups, min_ratings=params.min_group_ratings, seed=params.seed,
    )  # fmt: skip
    top = top_k_similar(
        rating_note, rating_rater, rating_value, n_raters,
        k=params.top_k, shrinkage=params.similarity_shrinkage, min_co_rated=params.min_co_rated,
        max_raters_per_note=params.max_raters_per_note, max_pairs=params.max_similarity_pairs,
        memory_bytes=params.pair_memory_bytes, num_threads=num_threads,
    )  # fmt: skip
    first = top[top["rank"] == 1]
    nearest = np.full(n_raters, -1, dtype=np.int64)
    nearest_sim = np.full(n_raters, np.nan)
    nearest[first.rater.to_numpy()] = first.neighbor.to_numpy()
    nearest_sim[first.rater.to_numpy()] = first.similarity.to_numpy()
    out = pol.copy()
    out.insert(1, "ratings", groups["ratings"].to_numpy())
    out["opinionGroup"] = groups["group"].to_numpy()
    out["mapX"] = np.round(groups["x"].to_numpy(), params.coordinate_decimals)
    out["mapY"] = np.round(groups["y"].to_numpy(), params.coordinate_decimals)
    out["postSelectionValue"] = np.asarray(post_selection_value, dtype=np.int32)[:n_raters]
    out["quasiCliqueValue"] = np.asarray(quasi_clique_value, dtype=np.int32)[:n_raters]
    coordinated = np.zeros(n_raters, np.int32) if coordinated_group is None else coordinated_group[:n_raters]
    out["coordinatedGroup"] = np.asarray(coordinated, dtype=np.int32)
    surprise = np.zeros(n_raters, np.int32) if surprise_group is None else surprise_group[:n_raters]
    out["surpriseGroup"] = np.asarray(surprise, dtype=np.int32)
    out["similarRaters"] = np.bincount(top.rater.to_numpy(), minlength=n_raters)
    out["nearestRater"] = nearest
    out["nearestSimilarity"] = nearest_sim
    return out, top


def group_activity(
    rating_rater: np.ndarray, rating_created: np.ndarray, rater_group: np.ndarray, *, day_millis: int = DAY_MS
) -> pd.DataFrame:
    """Ratings per (group, day) of raters in a flagged group: when a group was active.

    ``rater_group`` int[U] (0 = none). Returns columns group, dayMillis (start of the UTC day),
    ratings, raters (distinct members active that day), sorted by (group, day).
    """
    group = np.asarray(rater_group)[np.asarray(rating_rater)]  # 4 bytes a rating, not 8
    member = group > 0
    rater = np.asarray(rating_rater, dtype=np.int64)[member]
    day = np.asarray(rating_created, dtype=np.int64)[member] // day_millis
    group = group[member].astype(np.int64)
    cells = pd.DataFrame({"group": group, "day": day, "rater": rater})
    by = cells.groupby(["group", "day"], sort=True)
    agg = by.agg(ratings=("rater", "size"), raters=("rater", "nunique"))
    agg = agg.reset_index()
    return pd.DataFrame(
        {
            "group": agg["group"].to_numpy(np.int32),
            "dayMillis": agg["day"].to_numpy(np.int64) * day_millis,
            "ratings": agg["ratings"].to_numpy(np.int64),
            "raters": agg["raters"].to_numpy(np.int64),
        }
    )


@nb.njit(nogil=True, cache=True)
def _group_sums(note, rater, value, rater_group, n_notes, n_groups):
    """Per (note, opinion group): ratings (float64[N, G]) and Σ rating, placed raters only.

    One pass in rating order (the bincount sums bit for bit) without rating-length gathers.
    """
    count = np.zeros((n_notes, n_groups))
    total = np.zeros((n_notes, n_groups))
    for i in range(note.shape[0]):
        g = rater_group[rater[i]]
        if g >= 0:
            count[note[i], g] += 1.0
            total[note[i], g] += np.float64(value[i])
    return count, total


@nb.njit(nogil=True, cache=True)
def _known_sums(note, rater, rater_value, n_notes):
    """Per note: raters with a known (non-NaN) ``rater_value`` (int64[N]) and Σ of those values."""
    n = np.zeros(n_notes, dtype=np.int64)
    total = np.zeros(n_notes)
    for i in range(note.shape[0]):
        v = rater_value[rater[i]]
        if not np.isnan(v):
            n[note[i]] += 1
            total[note[i]] += v
    return n, total

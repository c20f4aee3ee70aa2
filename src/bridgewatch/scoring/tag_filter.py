"""Tag-outlier filter (spec §3.3): is one not-helpful tag unusually common among nearby raters?

Each rating is weighted by how close the rater sits to the note on the (z-normalized) factor
axis, so a tag counts mostly when raters who otherwise agree with the note's audience use it.
Per note and not-helpful tag we sum the weighted tags (``<tag>Adjusted``), the weights
(``ratingWeight``) and their ratio (``<tag>AdjustedRatio``). Prescoring learns, per tag, the 95th
percentile of that ratio over provisionally-CRH notes; final scoring flags notes above it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from bridgewatch.io.matrix import RatingMatrix, streamed
from bridgewatch.schema import NOT_HELPFUL_TAGS, TAG_BIT

EXEMPT_TAGS = frozenset({"notHelpfulHardToUnderstand"})  # never triggers the filter (§3.3)
_NH_BITS = np.array([TAG_BIT[t] for t in NOT_HELPFUL_TAGS], dtype=np.uint32)


@dataclass(frozen=True, eq=False)
class TagAggregates:
    """Per-note weighted not-helpful tag totals; columns in ``schema.NOT_HELPFUL_TAGS`` order.

    - ``adjusted``: float64[N, 13], Σ w·tag (``<tag>Adjusted``).
    - ``rating_weight``: float64[N], Σ w (``ratingWeight``).
    - ``adjusted_ratio``: float64[N, 13], adjusted / rating_weight (``<tag>AdjustedRatio``).
    - ``present``: bool[N], the note had at least one rating with both factors. Rows where it is
      False hold NaN (the reference has no aggregate row for them).
    """

    adjusted: np.ndarray
    rating_weight: np.ndarray
    adjusted_ratio: np.ndarray
    present: np.ndarray


def zscore(values: np.ndarray) -> np.ndarray:
    """(x − mean)/std over the non-NaN entries, population std (ddof 0); NaN stays NaN."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    if finite.size == 0:
        return values.copy()
    with np.errstate(invalid="ignore", divide="ignore"):  # one value: std 0 → NaN, as pandas
        return (values - finite.mean()) / finite.std()


def distance_weights(distance: np.ndarray, percentile: float = 40.0) -> np.ndarray:
    """w = 1 / (1 + (d / P)^5), P the ``percentile`` of the non-NaN distances (float64[R])."""
    distance = np.asarray(distance, dtype=np.float64)
    scale = np.nanpercentile(distance, percentile) if distance.size else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        return 1.0 / (1.0 + (distance / scale) ** 5)


@numba.njit(cache=True, nogil=True)
def _weighted_tags(note, w, tags, bits, n_notes):
    """One pass: per note Σ w (float64[N]), the rating count (int64[N]) and Σ w over the ratings
    carrying each of ``bits`` (float64[N, len(bits)]), added in rating order as ``np.bincount``
    adds them, so the sums are bit for bit its."""
    weight = np.zeros(n_notes, dtype=np.float64)
    count = np.zeros(n_notes, dtype=np.int64)
    adjusted = np.zeros((n_notes, bits.shape[0]), dtype=np.float64)
    _add_weighted_tags(note, w, tags, bits, weight, count, adjusted)
    return weight, count, adjusted


@numba.njit(cache=True, nogil=True)
def _add_weighted_tags(note, w, tags, bits, weight, count, adjusted):
    """``_weighted_tags``' pass, adding into the sums given (a chunk at a time, in rating order)."""
    for i in range(note.shape[0]):
        n = note[i]
        weight[n] += w[i]
        count[n] += 1
        t = tags[i]
        for j in range(bits.shape[0]):
            if (t >> bits[j]) & np.uint32(1):
                adjusted[n, j] += w[i]


@numba.njit(cache=True, nogil=True)
def _kept_distances(keep, note, rater, zn, zu, out, k):
    """|z(rater factor) − z(note factor)| of the kept ratings with both factors, in rating order
    (what ``note_tag_aggregates`` gathers before its percentile), written to ``out`` from
    position ``k`` on; returns the position after the last one written."""
    for i in range(keep.shape[0]):
        if keep[i]:
            fn = zn[note[i]]
            fu = zu[rater[i]]
            if not (np.isnan(fn) or np.isnan(fu)):
                out[k] = abs(fu - fn)
                k += 1
    return k


def note_tag_aggregates(
    note: np.ndarray,
    rater: np.ndarray,
    tags: np.ndarray,
    note_factor: np.ndarray,
    rater_factor: np.ndarray,
    *,
    normalization_percentile: float = 40.0,
) -> TagAggregates:
    """Weighted tag aggregates for N notes (``get_note_tag_aggregates``).

    ``note``: int[R] note index into ``note_factor`` (float[N], NaN = note not fitted);
    ``rater``: int[R] rater index into ``rater_factor`` (float[U], NaN = no parameters);
    ``tags``: uint32[R] tag bits (``schema.TAG_BIT``). Factors are z-normalized over the
    non-NaN notes / raters given, so pass exactly the scorer's fitted notes and raters.
    """
    note = np.asarray(note, dtype=np.intp)
    rater = np.asarray(rater, dtype=np.intp)
    n_notes = int(np.shape(note_factor)[0])
    fn = zscore(note_factor)[note]
    fu = zscore(rater_factor)[rater]
    keep = ~(np.isnan(fn) | np.isnan(fu))
    note_k = note[keep]
    w = distance_weights(np.abs(fu[keep] - fn[keep]), normalization_percentile)
    tags_k = np.asarray(tags, dtype=np.uint32)[keep]
    if note_k.size and (note_k.min() < 0 or note_k.max() >= n_notes):
        raise ValueError("note_tag_aggregates: a note index outside note_factor")
    weight, count, adjusted = _weighted_tags(
        note_k.astype(np.int64, copy=False), np.asarray(w, dtype=np.float64), tags_k, _NH_BITS, n_notes
    )
    return _finish(weight, count, adjusted)


# Ratings per chunk of ``note_tag_aggregates_kept``'s weighting pass: its temporaries (~60 bytes a
# rating) stay ~60 MiB whatever the scale; the result does not depend on it.
CHUNK = 1 << 20


def note_tag_aggregates_kept(
    matrix: RatingMatrix,
    keep: np.ndarray,
    note_factor: np.ndarray,
    rater_factor: np.ndarray,
    *,
    normalization_percentile: float = 40.0,
    chunk: int = CHUNK,
) -> TagAggregates:
    """``note_tag_aggregates`` over the ratings ``keep`` (bool[R]) selects, read from the matrix:
    the same aggregates bit for bit, holding one float64 a kept rating (the distances, which the
    percentile partitions in place) instead of the caller's gathered copies and ~10 per-rating
    temporaries. The weights are then made ``chunk`` ratings at a time by the same numpy
    expressions, element for element, and summed in rating order, as the one-shot form sums them.
    Both passes are ``streamed``: the columns they read go back a chunk at a time, so the
    scorer's later steps do not sit on them (12 bytes a rating, 2.3 GiB at X's scale).
    """
    if np.shape(note_factor)[0] != matrix.n_notes:
        raise ValueError("note_tag_aggregates: note_factor must cover the matrix's notes")
    keep = np.asarray(keep, dtype=np.bool_)
    zn, zu = zscore(note_factor), zscore(rater_factor)
    distance = np.empty(int(np.count_nonzero(keep)), dtype=np.float64)  # (≥ the ones with factors)
    k = 0
    for a, b in streamed([matrix.note, matrix.rater], matrix.n_ratings):
        k = _kept_distances(keep[a:b], matrix.note[a:b], matrix.rater[a:b], zn, zu, distance, k)
    distance = distance[:k]
    scale = np.nan
    if distance.size:  # the distances are not read again: partition them in place
        scale = np.nanpercentile(distance, normalization_percentile, overwrite_input=True)
    del distance
    n_notes = matrix.n_notes
    weight = np.zeros(n_notes, dtype=np.float64)
    count = np.zeros(n_notes, dtype=np.int64)
    adjusted = np.zeros((n_notes, _NH_BITS.shape[0]), dtype=np.float64)
    for a, b in streamed([matrix.note, matrix.rater, matrix.tags], matrix.n_ratings, chunk):
        k = keep[a:b]
        note = matrix.note[a:b][k].astype(np.intp)
        rater = matrix.rater[a:b][k].astype(np.intp)
        fn, fu = zn[note], zu[rater]
        ok = ~(np.isnan(fn) | np.isnan(fu))
        distance = np.abs(fu[ok] - fn[ok])
        with np.errstate(divide="ignore", invalid="ignore"):  # as ``distance_weights``
            w = 1.0 / (1.0 + (distance / scale) ** 5)
        tags = np.asarray(matrix.tags[a:b][k], dtype=np.uint32)[ok]
        _add_weighted_tags(note[ok].astype(np.int64, copy=False), w, tags, _NH_BITS, weight, count, adjusted)
    return _finish(weight, count, adjusted)


def _finish(weight: np.ndarray, count: np.ndarray, adjusted: np.ndarray) -> TagAggregates:
    present = count > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = adjusted / weight[:, None]
    adjusted[~present] = np.nan
    weight[~present] = np.nan
    ratio[~present] = np.nan
    return TagAggregates(adjusted=adjusted, rating_weight=weight, adjusted_ratio=ratio, present=present)


def tag_thresholds(adjusted_ratio_crh: np.ndarray, percentile: int = 95) -> np.ndarray:
    """float64[13]: per-tag threshold from the ratios of provisionally-CRH notes (float[M, 13]).

    Computed exactly as the reference (``np.quantile(v, arange(0, 1, 0.01))[percentile]``), so a
    NaN among the values propagates and disables that tag; no notes gives 0.0.
    """
    adjusted_ratio_crh = np.asarray(adjusted_ratio_crh, dtype=np.float64)
    out = np.zeros(adjusted_ratio_crh.shape[1] if adjusted_ratio_crh.ndim == 2 else len(NOT_HELPFUL_TAGS))
    if adjusted_ratio_crh.shape[0] == 0:
        return out
    qs = np.arange(0, 1, 0.01)
    for j in range(out.shape[0]):
        out[j] = np.quantile(adjusted_ratio_crh[:, j], qs)[percentile]
    return out


def tag_filter_flags(
    aggregates: TagAggregates, thresholds: np.ndarray, *, min_adjusted_total: float = 2.5
) -> tuple[np.ndarray, np.ndarray]:
    """Which notes trip the tag filter, and on which tags.

    A tag trips when ``Adjusted > min_adjusted_total`` and ``AdjustedRatio > threshold``;
    ``notHelpfulHardToUnderstand`` never does. Returns (bool[N] flags, object[N] tag names
    comma-joined in TSV order, "" where none) — the reference's ``activeFilterTags`` text.
    """
    thresholds = np.asarray(thresholds, dtype=np.float64)
    n = aggregates.adjusted.shape[0]
    hits = (aggregates.adjusted > min_adjusted_total) & (aggregates.adjusted_ratio > thresholds[None, :])
    for j, tag in enumerate(NOT_HELPFUL_TAGS):
        if tag in EXEMPT_TAGS:
            hits[:, j] = False
    flags = hits.any(axis=1)
    names = np.full(n, "", dtype=object)
    if flags.any():
        codes = np.packbits(hits[flags], axis=1, bitorder="little")
        keys = codes.view(np.uint8).astype(np.uint32) @ (256 ** np.arange(codes.shape[1], dtype=np.uint32))
        uniq, inv = np.unique(keys, return_inverse=True)
        texts = np.empty(uniq.shape[0], dtype=object)
        for i, key in enumerate(uniq):
            texts[i] = ",".join(t for j, t in enumerate(NOT_HELPFUL_TAGS) if int(key) >> j & 1)
        names[flags] = texts[inv.reshape(-1)]
    return flags, names

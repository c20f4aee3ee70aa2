"""The Gaussian scorer (§6.2): a kernel-smoothed helpfulness curve over the rater-factor axis.

Instead of fitting a model, each note's ratings are spread over fixed evaluation points p on the
rater-factor axis with a Gaussian kernel centred on each rater's (prescoring) factor. At every point
the note gets a smoothed "share of helpful ratings" shrunk towards a prior; the score is the
geometric mean of those shares, so a note only scores high when raters *all along* the axis found
it helpful. Two passes run: a CRH pass (narrow kernel, values = helpfulness) and a CRNH pass (wide
kernel, values flipped); the final intercept is the CRH score unless the CRNH score is larger in
magnitude, in which case it is minus the CRNH score.

Everything here is a pure function over per-rating arrays. The numba kernel walks notes through a
CSR ``indptr`` (blocks of notes in parallel) and keeps memory at O((notes + raters) × points): a
rating's kernel weights depend on its rater's factor only, so they are computed once per rater
(``_kernel_table``) and read per rating. ``_pass_values_np`` is its vectorized numpy twin
(O(ratings × points) memory) and the tests assert the two agree. The scorers run the passes
through ``gaussian_walk``, which reads the rating matrix in place with the same arithmetic; the
per-rating forms here are its reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from bridgewatch.errors import ScoringError
from bridgewatch.scoring.prefetch import prefetch

# The reference's 50 evaluation points ("quantileRange"): roughly equal-population bins of the
# rater-factor distribution, symmetric around 0.
QUANTILE_RANGE = np.array(
    [
        -0.92, -0.65, -0.61, -0.58, -0.55, -0.52, -0.49, -0.46, -0.43, -0.41,
        -0.38, -0.35, -0.33, -0.30, -0.28, -0.25, -0.22, -0.20, -0.17, -0.14,
        -0.12, -0.09, -0.07, -0.04, -0.01, 0.01, 0.04, 0.07, 0.09, 0.12,
        0.14, 0.17, 0.20, 0.22, 0.25, 0.28, 0.30, 0.33, 0.35, 0.38,
        0.41, 0.43, 0.46, 0.49, 0.52, 0.55, 0.58, 0.61, 0.65, 0.92,
    ],
    dtype=np.float64,
)  # fmt: skip
# The CRNH pass uses every other point on each side (26 points).
SMOOTHED_RANGE = np.concatenate([QUANTILE_RANGE[0::2][:13], QUANTILE_RANGE[25::2]])

# Half of the 0.28 window: a negative rating counts as "unexpected" when its rater lies further
# than this from the mean factor of the note's negative raters (soft indicator, slope 200).
_UNEXPECTED_HALF_WINDOW = 0.14
_UNEXPECTED_SLOPE = 200.0
# Notes with fewer than this many raters on either side of 0 get a flat prior of 0.1.
_MIN_RATERS_PER_SIDE = 3
_FEW_SIDED_PRIOR = 0.1


@dataclass(frozen=True)
class GaussianPassParams:
    """Constants of one pass (``GaussianParams`` in the reference, §6.2); defaults = CRH pass."""

    bandwidth: float = 0.1
    prior_weight: float = 0.4  # smoothingWeight
    prior_value: float = 0.35  # smoothingValue: cap of the factor-tilted prior
    adaptive_weight_base: float = 9.0  # prior weight × ln(max(n, base)) / ln(base)
    neg_weight: float = 1.75  # extra weight of "negative" ratings
    unexpected_slope: float = 3.0  # negative weight × min(1 + slope·pct, cap)
    unexpected_cap: float = 2.0
    min_prior: float = 0.2
    weight_limit: float = 1e-9  # a point with less raw kernel weight makes the note insufficient
    somewhat_value: float = 0.7  # value of a SOMEWHAT_HELPFUL rating
    clip_lower: float = 0.05
    clip_upper: float = 0.8
    flip: bool = False  # CRNH pass: value = 1 − helpfulness
    normalize: bool = True  # each rating's kernel weights sum to 1 over the points
    few_sided_prior: bool = True  # notes with < 3 raters on a side get prior 0.1 in this pass


CRH_PARAMS = GaussianPassParams()
CRNH_PARAMS = GaussianPassParams(
    bandwidth=0.2,
    prior_weight=5.0,
    prior_value=0.35,
    neg_weight=1.25,
    unexpected_slope=4.0,
    unexpected_cap=4.0,
    min_prior=0.3,
    weight_limit=5e-4,
    clip_lower=0.25,
    clip_upper=0.65,
    flip=True,
    normalize=False,
)


def _pass_arrays(helpful: np.ndarray, params: GaussianPassParams) -> tuple[np.ndarray, np.ndarray]:
    """Per-rating value in this pass and whether the rating is "negative" (value 0)."""
    value = np.where(helpful == 0.5, params.somewhat_value, helpful).astype(np.float64, copy=False)
    if params.flip:
        value = 1.0 - value
    return value, value == 0.0


@numba.njit(cache=True, nogil=True)
def _kernel_table(key_factor, points, bandwidth, normalize, with_factor=False):
    """float64[K, P]: each rating's kernel weights over the points, per distinct rater factor
    (``with_factor``: [K, P + 1], the factor itself in the last column, read from the same cache
    lines as the weights by ``gaussian_walk``).

    A rating's weights depend on its rater's factor alone, so they are computed once per rater
    instead of once per rating (~50 ``exp`` a rating, most of the pass), with the arithmetic the
    per-rating loop had, so each weight keeps its bits."""
    n_pts = points.shape[0]
    norm = 1.0 / (bandwidth * np.sqrt(2.0 * np.pi))
    table = np.empty((key_factor.shape[0], n_pts + 1 if with_factor else n_pts))
    kern = np.empty(n_pts)
    for i in range(key_factor.shape[0]):
        f = key_factor[i]
        ksum = 0.0
        for p in range(n_pts):
            d = (f - points[p]) / bandwidth
            kern[p] = norm * np.exp(-0.5 * d * d)
            ksum += kern[p]
        for p in range(n_pts):
            table[i, p] = kern[p] / ksum if normalize else kern[p]
        if with_factor:
            table[i, n_pts] = f
    return table


# Ratings between a row's prefetch and its use: each rating's 50-point loop takes ~20 ns, a
# table row from memory ~100 ns.
_AHEAD = 8
# Fixed blocks of notes for the parallel pass (each note's values depend on its ratings only, so
# any thread count gives the same bytes).
_NOTE_BLOCKS = 64


@numba.njit(cache=True, parallel=True, nogil=True)
def _pass_values_nb(
    indptr, factor, key, table, value, negative, orig, points, neg_weight, slope, cap,
    prior_value, min_prior, prior_weight, weight_base, weight_limit, clip_lo, clip_hi, few_sided,
):  # fmt: skip
    """Per note (ratings ``indptr``-grouped, ``key[r]`` the row of ``table`` with the rating's
    kernel weights): the smoothed, clipped values over the points and the note factor."""
    n_notes = indptr.shape[0] - 1
    n_pts = points.shape[0]
    out = np.empty((n_notes, n_pts))
    note_factor = np.full(n_notes, np.nan)
    for blk in numba.prange(_NOTE_BLOCKS):
        base = np.empty(n_pts)
        tw = np.empty(n_pts)
        tv = np.empty(n_pts)
        first, stop = blk * n_notes // _NOTE_BLOCKS, (blk + 1) * n_notes // _NOTE_BLOCKS
        last = max(indptr[stop] - 1, 0)  # the block's last rating: prefetches stay inside it
        for n in range(first, stop):
            a, b = indptr[n], indptr[n + 1]
            count = b - a
            if count == 0:
                out[n, :] = np.nan
                continue
            # Spread of the negative raters: share of "unexpected" negatives (far from their mean).
            neg_sum = 0.0
            neg_cnt = 0
            for r in range(a, b):
                if negative[r]:
                    neg_sum += factor[r]
                    neg_cnt += 1
            mult = 1.0
            if neg_cnt > 0:
                mean = neg_sum / neg_cnt
                soft = 0.0
                for r in range(a, b):
                    if negative[r]:
                        dist = abs(factor[r] - mean)
                        soft += 1.0 / (1.0 + np.exp(-_UNEXPECTED_SLOPE * (dist - _UNEXPECTED_HALF_WINDOW)))
                mult = min(soft / count * slope + 1.0, cap)
            base[:] = 0.0
            tw[:] = 0.0
            tv[:] = 0.0
            fsum = 0.0
            n_neg_side = 0
            n_pos_side = 0
            for r in range(a, b):
                f = factor[r]
                fsum += (orig[r] - 0.5) * 2.0 * f
                if f < 0:
                    n_neg_side += 1
                elif f > 0:
                    n_pos_side += 1
                extra = 1.0
                if negative[r]:
                    extra = mult * neg_weight
                # the weights' row of the rating a few on (~7 cache lines, rows of a table
                # larger than the caches), asked for now so the loop rarely waits for memory
                ahead = np.int64(key[min(r + _AHEAD, last)]) * n_pts
                for q in range(0, n_pts, 8):
                    prefetch(table, ahead + q)
                row = key[r]
                v = value[r]
                add_weights(base, tw, tv, table, row, n_pts, extra, v)
            nf = fsum / count
            note_factor[n] = nf
            flat = few_sided and (n_neg_side < _MIN_RATERS_PER_SIDE or n_pos_side < _MIN_RATERS_PER_SIDE)
            note_values(
                out[n], base, tw, tv, nf, count, points, flat, prior_value, min_prior, prior_weight,
                weight_base, weight_limit, clip_lo, clip_hi,
            )  # fmt: skip
    return out, note_factor


@numba.njit(cache=True, nogil=True, inline="always")
def add_weights(base, tw, tv, table, row, n_pts, extra, v):
    """One rating's kernel weights (``table[row]``) into a note's sums: the weights, the weights
    times ``extra`` (a negative rating's boost) and those times its value ``v``. Shared by this
    module's pass and ``gaussian_walk``'s, as ``note_values`` is."""
    for p in range(n_pts):
        k = table[row, p]
        base[p] += k
        w = k * extra
        tw[p] += w
        tv[p] += w * v


@numba.njit(cache=True, nogil=True, inline="always")
def note_values(
    row, base, tw, tv, nf, count, points, flat, prior_value, min_prior, prior_weight, weight_base,
    weight_limit, clip_lo, clip_hi,
):  # fmt: skip
    """One note's smoothed, clipped values over the points (``row``), from its sums of kernel
    weights (``base``), weights (``tw``) and weighted values (``tv``): -1 everywhere when some
    point has too little weight; the prior pulls by the note's factor ``nf`` unless ``flat``.
    Shared by this module's pass and ``gaussian_walk``'s, so both write the same bits."""
    n_pts = points.shape[0]
    for p in range(n_pts):
        if base[p] < weight_limit:
            row[:] = -1.0
            return
    pw = np.log(max(float(count), weight_base)) / np.log(weight_base) * prior_weight
    for p in range(n_pts):
        if flat:
            prior = _FEW_SIDED_PRIOR
        else:
            prior = max(min(nf * points[p] / 2.0 + prior_value, prior_value), min_prior)
        den = tw[p] + pw
        v = (tv[p] + prior * pw) / den if den != 0 else clip_lo
        row[p] = min(max(v, clip_lo), clip_hi)


def _pass_values_np(
    note: np.ndarray,
    n_notes: int,
    factor: np.ndarray,
    value: np.ndarray,
    negative: np.ndarray,
    orig: np.ndarray,
    points: np.ndarray,
    params: GaussianPassParams,
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorized twin of ``_pass_values_nb`` (R × P memory); same outputs."""
    count = np.bincount(note, minlength=n_notes).astype(np.float64)
    neg_cnt = np.bincount(note, weights=negative.astype(np.float64), minlength=n_notes)
    neg_sum = np.bincount(note, weights=np.where(negative, factor, 0.0), minlength=n_notes)
    with np.errstate(invalid="ignore", divide="ignore"):
        neg_mean = neg_sum / neg_cnt
    dist = np.abs(factor - neg_mean[note])
    soft = np.where(
        negative, 1.0 / (1.0 + np.exp(-_UNEXPECTED_SLOPE * (dist - _UNEXPECTED_HALF_WINDOW))), 0.0
    )
    soft_sum = np.bincount(note, weights=soft, minlength=n_notes)
    with np.errstate(invalid="ignore", divide="ignore"):
        mult = np.minimum(soft_sum / count * params.unexpected_slope + 1.0, params.unexpected_cap)
    norm = 1.0 / (params.bandwidth * np.sqrt(2.0 * np.pi))
    kern = norm * np.exp(-0.5 * ((factor[:, None] - points[None, :]) / params.bandwidth) ** 2)
    if params.normalize:
        kern = kern / kern.sum(axis=1, keepdims=True)
    n_pts = points.shape[0]
    base = np.stack([np.bincount(note, weights=kern[:, p], minlength=n_notes) for p in range(n_pts)], 1)
    extra = np.where(negative, mult[note] * params.neg_weight, 1.0)
    w = kern * extra[:, None]
    tw = np.stack([np.bincount(note, weights=w[:, p], minlength=n_notes) for p in range(n_pts)], 1)
    wv = w * value[:, None]
    tv = np.stack([np.bincount(note, weights=wv[:, p], minlength=n_notes) for p in range(n_pts)], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        nf = np.bincount(note, weights=(orig - 0.5) * 2.0 * factor, minlength=n_notes) / count
    tilted = nf[:, None] * points[None, :] / 2.0 + params.prior_value
    prior = np.maximum(np.minimum(tilted, params.prior_value), params.min_prior)
    if params.few_sided_prior:
        n_neg = np.bincount(note, weights=(factor < 0).astype(np.float64), minlength=n_notes)
        n_pos = np.bincount(note, weights=(factor > 0).astype(np.float64), minlength=n_notes)
        flat = (n_neg < _MIN_RATERS_PER_SIDE) | (n_pos < _MIN_RATERS_PER_SIDE)
        prior[flat] = _FEW_SIDED_PRIOR
    pw = np.log(np.maximum(count, params.adaptive_weight_base)) / np.log(params.adaptive_weight_base)
    pw = pw * params.prior_weight
    den = tw + pw[:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        v = np.where(den != 0, (tv + prior * pw[:, None]) / den, params.clip_lower)
    out = np.clip(v, params.clip_lower, params.clip_upper)
    out[(base < params.weight_limit).any(axis=1)] = -1.0
    out[count == 0] = np.nan
    return out, nf


def pass_values(
    note: np.ndarray,
    n_notes: int,
    factor: np.ndarray,
    helpful: np.ndarray,
    points: np.ndarray,
    params: GaussianPassParams,
    *,
    use_numba: bool = True,
    key: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed, clipped per-point values of one pass.

    Inputs per rating (length R): ``note`` int (index < n_notes), ``factor`` the rater's factor,
    ``helpful`` 0 / 0.5 / 1; ``key`` optional int ≥ 0, the same for ratings with the same factor
    (their raters: the kernel weights are computed once per key; without it, per distinct
    factor value, which costs a sort). Returns ``values`` float64[N, P] (−1 on every point of a note with a
    point below the weight limit, NaN for notes without ratings) and ``note_factor`` float64[N],
    the mean of (2·h − 1)·f_u (h flipped in the CRNH pass).
    """
    note = np.asarray(note)
    if note.dtype.kind not in "iu":
        note = note.astype(np.int64)
    factor = np.asarray(factor, dtype=np.float64)
    helpful = np.asarray(helpful, dtype=np.float64)
    if not (note.shape == factor.shape == helpful.shape):
        raise ScoringError("gaussian: note, factor and helpful must have the same length")
    if np.isnan(factor).any():
        raise ScoringError("gaussian: every rating needs a rater factor (found NaN)")
    if note.size and (note.min() < 0 or note.max() >= n_notes):
        raise ScoringError("gaussian: note index out of range")
    points = np.asarray(points, dtype=np.float64)
    value, negative = _pass_arrays(helpful, params)
    orig = 1.0 - helpful if params.flip else helpful
    if not use_numba:
        return _pass_values_np(note, n_notes, factor, value, negative, orig, points, params)
    indptr = np.zeros(n_notes + 1, dtype=np.int64)
    np.cumsum(np.bincount(note, minlength=n_notes), out=indptr[1:])
    rows, key_factor = _factor_keys(factor, key)
    table = _kernel_table(key_factor, points, params.bandwidth, params.normalize)
    # Ratings already in note order (the matrix's, and ``add_author_ratings``'s for sorted input)
    # go in as they are: the stable sort's permutation and five reordered copies were ~40 bytes
    # a rating, the Gaussian scorers' peak.
    if note.size > 1 and not (note[1:] >= note[:-1]).all():
        order = np.argsort(note, kind="stable")
        factor, rows, value = factor[order], rows[order], value[order]
        negative, orig = negative[order], orig[order]
    p = params
    return _pass_values_nb(
        indptr, factor, rows, table, value, negative, orig, points,
        p.neg_weight, p.unexpected_slope, p.unexpected_cap, p.prior_value, p.min_prior,
        p.prior_weight, p.adaptive_weight_base, p.weight_limit, p.clip_lower, p.clip_upper,
        p.few_sided_prior,
    )  # fmt: skip


def _factor_keys(factor: np.ndarray, key: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(int64[R] row per rating, float64[K] factor per row): one row per distinct ``key`` (the
    ratings' raters), or per distinct factor value without keys."""
    if key is None:
        key_factor, rows = np.unique(factor, return_inverse=True)
        return rows.astype(np.int64).reshape(-1), key_factor
    key = np.asarray(key, dtype=np.int64)
    if key.shape != factor.shape:
        raise ScoringError("gaussian: key must have one entry per rating")
    if key.size == 0:
        return key, np.zeros(0)
    present = np.zeros(int(key.max()) + 1, dtype=bool)
    present[key] = True
    rows = (np.cumsum(present) - 1)[key]
    key_factor = np.empty(int(present.sum()))
    key_factor[rows] = factor
    return rows, key_factor


# Notes per block of ``geometric_mean_score``: its log and sign temporaries stay a few MB instead
# of the values' size (1 GB for the CRH pass at X's 2.5M notes).
_SCORE_ROWS = 1 << 15


def geometric_mean_score(values: np.ndarray) -> np.ndarray:
    """float64[N]: geometric mean over points; a note with any −1 point scores 0, NaN stays NaN.

    Computed in blocks of notes: each note's score reads its own row only (the same bits)."""
    score = np.empty(values.shape[0])
    for i in range(0, values.shape[0], _SCORE_ROWS):
        block = values[i : i + _SCORE_ROWS]
        with np.errstate(invalid="ignore", divide="ignore"):
            logs = np.log(block)
        part = np.exp(logs.mean(axis=1))
        part[(block < 0).any(axis=1)] = 0.0
        score[i : i + _SCORE_ROWS] = part
    return score


def add_author_ratings(
    note: np.ndarray,
    factor: np.ndarray,
    helpful: np.ndarray,
    rater: np.ndarray,
    author: np.ndarray,
    author_factor: np.ndarray,
    key: np.ndarray | None = None,
) -> tuple[np.ndarray, ...]:
    """Append one implicit HELPFUL rating per note from its author (CRH pass, §6.2).

    ``author``: int[N] the author's rater index (−1 if unknown), ``author_factor``: float[N]
    (NaN when the author has no factor). Notes whose author already rated them, has no factor,
    or has no ratings here get nothing. Returns the extended (note, factor, helpful): the implicit
    ratings appended or, when ``note`` is sorted, each right after its note's own ratings (where
    ``pass_values``'s stable sort puts it, so that it need not sort). With ``key`` (int[R], the
    ratings' ``pass_values`` keys: their raters), a fourth array: ``key`` extended the same way
    with each implicit rating's author.
    """
    n_notes = author.shape[0]
    has_ratings = np.bincount(note, minlength=n_notes) > 0
    rated = np.zeros(n_notes, dtype=bool)
    note_author = author[note]
    rated[note[(rater == note_author) & (note_author >= 0)]] = True
    del note_author
    add = has_ratings & ~rated & ~np.isnan(author_factor) & (author >= 0)
    idx = np.flatnonzero(add)
    if note.size < 2 or (note[1:] >= note[:-1]).all():
        at = np.searchsorted(note, idx, side="right")

        def put(arr: np.ndarray, values: np.ndarray) -> np.ndarray:
            return np.insert(arr, at, values)
    else:

        def put(arr: np.ndarray, values: np.ndarray) -> np.ndarray:
            return np.concatenate([arr, values])

    out = (put(note, idx), put(factor, author_factor[idx]), put(helpful, np.ones(idx.shape[0])))
    return out if key is None else (*out, put(np.asarray(key), author[idx]))


def gaussian_scores(
    note: np.ndarray,
    n_notes: int,
    factor: np.ndarray,
    helpful: np.ndarray,
    *,
    crh_params: GaussianPassParams = CRH_PARAMS,
    crnh_params: GaussianPassParams = CRNH_PARAMS,
    crh_points: np.ndarray = QUANTILE_RANGE,
    crnh_points: np.ndarray = SMOOTHED_RANGE,
    author_ratings: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    use_numba: bool = True,
    key: np.ndarray | None = None,
    author_key: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per-note Gaussian intercepts (``gaussianNoteIntercept``).

    ``note``/``factor``/``helpful``: per-rating arrays (length R) of the final-round ratings (notes
    with ≥ 5 ratings, raters with prescoring factors above the helpfulness threshold).
    ``author_ratings``: the CRH pass's ratings extended with author implicit ratings (from
    ``add_author_ratings``), or None to use the same ratings in both passes. ``key`` /
    ``author_key``: the raters of ``note`` / of ``author_ratings`` (``pass_values``'s ``key``),
    optional; they change no value, only how often the kernel weights are computed.

    Returns float64[N] arrays: ``intercept`` (NaN for notes without ratings), ``crh_score``,
    ``crnh_score`` and ``note_factor`` (the CRH pass's kernel note factor).
    """
    crh_note, crh_factor, crh_helpful = (
        author_ratings if author_ratings is not None else (note, factor, helpful)
    )
    crh_key = author_key if author_ratings is not None else key
    crh_vals, nf = pass_values(crh_note, n_notes, crh_factor, crh_helpful, crh_points, crh_params,
                               use_numba=use_numba, key=crh_key)  # fmt: skip
    crnh_vals, _ = pass_values(
        note, n_notes, factor, helpful, crnh_points, crnh_params, use_numba=use_numba, key=key
    )
    crh = geometric_mean_score(crh_vals)
    crnh = geometric_mean_score(crnh_vals)
    intercept = np.where(np.abs(crh) < np.abs(crnh), -crnh, crh)
    empty = np.bincount(np.asarray(note, dtype=np.int64), minlength=n_notes) == 0
    intercept[empty] = np.nan
    return {"intercept": intercept, "crh_score": crh, "crnh_score": crnh, "note_factor": nf}

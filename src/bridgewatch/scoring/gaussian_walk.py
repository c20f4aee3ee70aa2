"""The Gaussian passes over the rating matrix itself: its note order, through a selection mask.

``gaussian.gaussian_scores`` takes per-rating arrays: the fit's note, factor and helpfulness,
author-extended copies of them for the CRH pass, and each pass's value / key arrays (~95 bytes
per fitted rating at ``large``, 10–13 GiB modelled at X's public scale). The kernel here reads the
matrix's note-ordered ``rater`` and ``value`` where ``select`` is true, takes each rating's kernel
weights and factor from its rater's row of ``gaussian._kernel_table`` (the factor in the last
column: one random read a rating, prefetched in the first loop over a note's ratings, so the
later loops find the rows in the cache; reading ``factor[rater]`` apart made the pass 2x slower),
and treats each note's implicit author rating inline, after the note's own ratings (where
``add_author_ratings`` inserts it). Every sum then runs over the same terms in the same order as
``gaussian._pass_values_nb`` on the extended arrays, so the outputs keep their bits; the only
per-rating array is the selection. ``gaussian_scores_np`` is the slow twin: it builds those
arrays and runs ``gaussian.gaussian_scores`` on them.
"""

from __future__ import annotations

import numba
import numpy as np

from bridgewatch.errors import ScoringError
from bridgewatch.io.matrix import release_pages, release_range
from bridgewatch.scoring import gaussian as G
from bridgewatch.scoring.prefetch import prefetch

# The pass's constants, as ``gaussian._pass_values_nb`` has them (module globals: numba freezes
# them at compile time).
_NOTE_BLOCKS = G._NOTE_BLOCKS
_AHEAD = G._AHEAD
_SLOPE, _HALF_WINDOW = G._UNEXPECTED_SLOPE, G._UNEXPECTED_HALF_WINDOW
_MIN_SIDE = G._MIN_RATERS_PER_SIDE


@numba.njit(cache=True, nogil=True)
def _present_raters(indptr, select, rater, author, with_author, factor):
    """bool[U]: the raters of the selected ratings, and with ``with_author`` the authors (finite
    factor) of notes with a selected rating: the raters whose kernel weights a pass reads."""
    present = np.zeros(factor.shape[0], dtype=np.bool_)
    for n in range(indptr.shape[0] - 1):
        rated = False
        for r in range(indptr[n], indptr[n + 1]):
            if select[r]:
                present[rater[r]] = True
                rated = True
        if with_author and rated:
            au = author[n]
            if au >= 0 and not np.isnan(factor[au]):
                present[au] = True
    return present


@numba.njit(cache=True, parallel=True, nogil=True)
def _walk_values_nb(
    indptr, select, rater, rating_value, factor, rows, table, author, with_author, points,
    somewhat, flip, neg_weight, slope, cap, prior_value, min_prior, prior_weight, weight_base,
    weight_limit, clip_lo, clip_hi, few_sided,
):  # fmt: skip
    """Per note: ``gaussian._pass_values_nb``'s values, note factor and rating count (author's
    included) over the note's selected ratings, then (``with_author``) one HELPFUL rating by
    ``author[n]`` when the note has a selected rating, its author none of them, and a factor.

    The first loop gathers the note's selected ratings' table rows and helpfulness (then the
    author's) into per-block buffers, which the later loops read as the old kernel read its
    compacted arrays: the terms in the extended arrays' order."""
    n_notes = indptr.shape[0] - 1
    n_pts = points.shape[0]
    width = table.shape[1]  # the weights, then the rater's factor
    out = np.empty((n_notes, n_pts))
    note_factor = np.full(n_notes, np.nan)
    counts = np.zeros(n_notes, dtype=np.int64)
    # a note's selected ratings (and its author's), gathered by the first loop for the others
    longest = 1
    for n in range(n_notes):
        longest = max(longest, indptr[n + 1] - indptr[n] + 1)
    for blk in numba.prange(_NOTE_BLOCKS):
        base = np.empty(n_pts)
        tw = np.empty(n_pts)
        tv = np.empty(n_pts)
        row_of = np.empty(longest, dtype=np.int64)
        h_of = np.empty(longest)
        first, stop = blk * n_notes // _NOTE_BLOCKS, (blk + 1) * n_notes // _NOTE_BLOCKS
        last = max(indptr[stop] - 1, 0)  # the block's last rating: prefetches stay inside it
        for n in range(first, stop):
            a, b = indptr[n], indptr[n + 1]
            au = author[n] if with_author else -1
            count = 0
            author_rated = False
            neg_sum = 0.0
            neg_cnt = 0
            for r in range(a, b):
                # The table row of the rating a few on, and the row index of the one after
                # (random reads into tables larger than the caches), asked for now: the note's
                # rows are then in the cache for this loop and the next ones. Only for selected
                # ratings: a sparse selection would fetch the others' rows too.
                j = min(r + 2 * _AHEAD, last)
                if select[j]:
                    prefetch(rows, np.int64(rater[j]))
                j = min(r + _AHEAD, last)
                if select[j]:
                    ahead = rows[rater[j]]
                    for q in range(0, width, 8):
                        prefetch(table, ahead * width + q)
                    prefetch(table, ahead * width + width - 1)
                if not select[r]:
                    continue
                u = rater[r]
                if u == au:
                    author_rated = True
                row = rows[u]
                h = np.float64(rating_value[r])
                row_of[count] = row
                h_of[count] = h
                count += 1
                if _pass_value(h, somewhat, flip) == 0.0:
                    neg_sum += table[row, n_pts]
                    neg_cnt += 1
            if count == 0:
                out[n, :] = np.nan
                continue
            if au >= 0 and not author_rated and not np.isnan(factor[au]):
                row_of[count] = rows[au]  # the implicit rating, last
                h_of[count] = 1.0
                count += 1
                if _pass_value(1.0, somewhat, flip) == 0.0:
                    neg_sum += table[rows[au], n_pts]
                    neg_cnt += 1
            counts[n] = count
            mult = 1.0
            if neg_cnt > 0:
                mean = neg_sum / neg_cnt
                soft = 0.0
                for i in range(count):
                    if _pass_value(h_of[i], somewhat, flip) == 0.0:
                        dist = abs(table[row_of[i], n_pts] - mean)
                        soft += 1.0 / (1.0 + np.exp(-_SLOPE * (dist - _HALF_WINDOW)))
                mult = min(soft / count * slope + 1.0, cap)
            base[:] = 0.0
            tw[:] = 0.0
            tv[:] = 0.0
            fsum = 0.0
            n_neg_side = 0
            n_pos_side = 0
            for i in range(count):
                row = row_of[i]
                h = h_of[i]
                f = table[row, n_pts]
                v = _pass_value(h, somewhat, flip)
                orig = 1.0 - h if flip else h
                fsum += (orig - 0.5) * 2.0 * f
                if f < 0:
                    n_neg_side += 1
                elif f > 0:
                    n_pos_side += 1
                extra = 1.0
                if v == 0.0:
                    extra = mult * neg_weight
                G.add_weights(base, tw, tv, table, row, n_pts, extra, v)
            nf = fsum / count
            note_factor[n] = nf
            flat = few_sided and (n_neg_side < _MIN_SIDE or n_pos_side < _MIN_SIDE)
            G.note_values(
                out[n], base, tw, tv, nf, count, points, flat, prior_value, min_prior, prior_weight,
                weight_base, weight_limit, clip_lo, clip_hi,
            )  # fmt: skip
    return out, note_factor, counts


@numba.njit(cache=True, nogil=True)
def _pass_value(h, somewhat, flip):
    """A rating's value in a pass (``gaussian._pass_arrays``): 0 marks a "negative" rating."""
    v = somewhat if h == 0.5 else h
    return 1.0 - v if flip else v


def pass_values(
    indptr: np.ndarray,
    select: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    factor: np.ndarray,
    author: np.ndarray | None,
    points: np.ndarray,
    params: G.GaussianPassParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One pass over the ``select``-ed ratings of a note-ordered matrix.

    ``indptr`` int64[N+1] (note n's ratings ``[indptr[n], indptr[n+1])``), ``select`` bool[R],
    ``rater`` int[R], ``value`` float[R] (0 / 0.5 / 1), ``factor`` float[U] per rater (NaN: none;
    every selected rating's rater needs one), ``author`` int[N] (−1: unknown) or None for no
    implicit author ratings. Returns ``gaussian.pass_values``'s (values float64[N, P],
    note_factor float64[N]) and int64[N] the ratings each note's pass read (0: no values, NaN).
    """
    walk = _pass_walker(indptr, select, rater, value, factor, author, points, params)
    return walk(0, indptr.shape[0] - 1)


def pass_scores(
    indptr: np.ndarray,
    select: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    factor: np.ndarray,
    author: np.ndarray | None,
    points: np.ndarray,
    params: G.GaussianPassParams,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``pass_values`` with each note's values reduced to its ``geometric_mean_score``: (score,
    note_factor, count) float64[N] / int64[N]. Runs in blocks of ``_SCORE_NOTES`` notes, so the
    N × P values (1 GB for the CRH pass at X's 2.5M notes) never exist whole; each note's values
    read its own ratings only, so the blocks change no bit."""
    n_notes = indptr.shape[0] - 1
    walk = _pass_walker(indptr, select, rater, value, factor, author, points, params)
    score, note_factor = np.empty(n_notes), np.empty(n_notes)
    count = np.empty(n_notes, dtype=np.int64)
    for lo in range(0, n_notes, _SCORE_NOTES):
        hi = min(lo + _SCORE_NOTES, n_notes)
        vals, note_factor[lo:hi], count[lo:hi] = walk(lo, hi)
        score[lo:hi] = G.geometric_mean_score(vals)
        # The block's raters and values, when mapped from the cache, go back to the page cache:
        # at X's scale the two columns are ~1.5 GiB, which would otherwise sit whole under the
        # kernel table (~0.5 GiB at 1.4M raters), where the Gaussian scorers' final fits peak.
        for column in (rater, value):
            release_range(column, int(indptr[lo]), int(indptr[hi]))
    for column in (rater, value):  # the pages the blocks straddled
        release_pages(column)
    return score, note_factor, count


# Notes per block of ``pass_scores``: 65,536 × 50 points × 8 bytes = 26 MB of values at a time.
_SCORE_NOTES = 1 << 16


def _pass_walker(indptr, select, rater, value, factor, author, points, params):
    """Checks the inputs, builds the pass's per-rater kernel table once, and returns
    ``walk(lo, hi)``: the kernel's (values, note_factor, count) for notes ``lo:hi``."""
    n_notes = indptr.shape[0] - 1
    if not (select.shape == rater.shape == value.shape) or indptr[-1] != select.shape[0]:
        raise ScoringError("gaussian: indptr, select, rater and value must cover the same ratings")
    factor = np.asarray(factor, dtype=np.float64)
    with_author = author is not None
    author = np.full(n_notes, -1, dtype=np.int64) if author is None else np.asarray(author, dtype=np.int64)
    if author.shape != (n_notes,) or (author >= factor.shape[0]).any():
        raise ScoringError("gaussian: author needs one rater index (or −1) per note")
    present = _present_raters(indptr, select, rater, author, with_author, factor)
    release_pages(rater)  # read whole above; the walk reads it again a block of notes at a time
    if np.isnan(factor[present]).any():  # authors without a factor are never marked
        raise ScoringError("gaussian: every rating needs a rater factor (found NaN)")
    rows = np.where(present, np.cumsum(present) - 1, -1)
    points = np.asarray(points, dtype=np.float64)
    table = G._kernel_table(factor[present], points, params.bandwidth, params.normalize, True)
    p = params

    def walk(lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # ``indptr`` holds absolute rating positions: a slice of it walks those notes alone
        return _walk_values_nb(
            indptr[lo : hi + 1], select, rater, value, factor, rows, table, author[lo:hi], with_author,
            points, p.somewhat_value, p.flip, p.neg_weight, p.unexpected_slope, p.unexpected_cap,
            p.prior_value, p.min_prior, p.prior_weight, p.adaptive_weight_base, p.weight_limit,
            p.clip_lower, p.clip_upper, p.few_sided_prior,
        )  # fmt: skip

    return walk


def gaussian_scores(
    indptr: np.ndarray,
    select: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    factor: np.ndarray,
    author: np.ndarray,
    *,
    crh_params: G.GaussianPassParams = G.CRH_PARAMS,
    crnh_params: G.GaussianPassParams = G.CRNH_PARAMS,
    crh_points: np.ndarray = G.QUANTILE_RANGE,
    crnh_points: np.ndarray = G.SMOOTHED_RANGE,
) -> dict[str, np.ndarray]:
    """``gaussian.gaussian_scores`` of the ``select``-ed ratings (``pass_values``'s arguments),
    each note's author adding its implicit rating to the CRH pass: the same dict, the same bits
    (``pass_scores``: no pass's N × P values exist whole)."""
    args = (indptr, select, rater, value, factor)
    crh, nf, _ = pass_scores(*args, author, crh_points, crh_params)
    crnh, _, count = pass_scores(*args, None, crnh_points, crnh_params)
    intercept = np.where(np.abs(crh) < np.abs(crnh), -crnh, crh)
    intercept[count == 0] = np.nan
    return {"intercept": intercept, "crh_score": crh, "crnh_score": crnh, "note_factor": nf}


def gaussian_scores_np(
    indptr: np.ndarray,
    select: np.ndarray,
    rater: np.ndarray,
    value: np.ndarray,
    factor: np.ndarray,
    author: np.ndarray,
    *,
    use_numba: bool = False,
    **params,
) -> dict[str, np.ndarray]:
    """Slow twin of ``gaussian_scores``: the per-rating arrays (author-extended for the CRH pass)
    through ``gaussian.gaussian_scores`` (its numpy passes, or with ``use_numba`` its kernel,
    which ``gaussian_scores`` matches bit for bit)."""
    n_notes = indptr.shape[0] - 1
    note = np.repeat(np.arange(n_notes), np.diff(indptr))[select]
    who = np.asarray(rater)[select].astype(np.int64)
    factor = np.asarray(factor, dtype=np.float64)
    f, helpful = factor[who], np.asarray(value)[select].astype(np.float64)
    author = np.asarray(author, dtype=np.int64)
    author_factor = np.where(author >= 0, factor[np.maximum(author, 0)], np.nan)
    *ext, ext_key = G.add_author_ratings(note, f, helpful, who, author, author_factor, key=who)
    return G.gaussian_scores(
        note, n_notes, f, helpful, author_ratings=tuple(ext), use_numba=use_numba, key=who,
        author_key=ext_key, **params,
    )  # fmt: skip

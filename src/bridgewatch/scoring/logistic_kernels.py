"""numba kernels of the logistic factor model (``logistic_mf``): one fused pass per epoch, Adam in place.

Why the shape: numba here has no vector math library, so ``exp``/``log1p`` were scalar libm calls
and cost three quarters of every epoch. ``_exp_neg`` and ``_log1p01`` are pure arithmetic
(range reduction, a polynomial, an exponent built from bits), so LLVM vectorizes the loop that
calls them (given ``error_model="numpy"``, which drops the division's exception branch, and a loop
over a slice, which drops negative-index wraparound); both are accurate to about 2 ulp over the
range used (tested against numpy), far inside the float32 the reference computes in.

Every epoch is one parallel pass over ratings grouped by rater, cut into ``CHUNKS`` fixed slices
(each slice whole raters, in sub-blocks of about ``PIECE`` ratings so the three stages of a
sub-block run out of L1/L2: at 4,096 a sub-block's note rows filled L2 and a pass at 200,000 notes
cost ~9% more): gather the logits, turn them into loss derivatives with the vectorized
sigmoid, then add up each rater's gradient and scatter the notes' into the slice's own partial
sums. Sums run in a fixed order (per rater, then raters in order; note partials in slice order),
so results are bit-identical for any thread count. Each slice's note partials are zeroed and
added up every epoch, so the slice count is a trade: 8 keep two (or up to eight) threads busy and
cost 15% less per epoch than 16. The gather loop prefetches the note parameters and partial row
of the rating ``prefetch.AHEAD`` on (1.5–1.8x faster per epoch at 200,000 notes, same bits; the
partial rows are then still in L2 when the sub-block's last loop adds into them).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

from bridgewatch.scoring.prefetch import AHEAD, prefetch

CHUNKS = 8  # fixed slices: sums add up the same way for any thread count (up to 8 run at once)
SUB = 4096  # ratings per block of the grid the slices are cut on (``sub_blocks``)
PIECE = 512  # ratings per cache-resident sub-block (the pass's 3 scratch rows stay in L1)

_LOG2E = 1.4426950408889634
_LN2_HI = 0.6931471803691238  # ln 2 split so that k·_LN2_HI is exact for |k| < 2^20
_LN2_LO = 1.9082149292705877e-10
_EXP_BIAS_SHIFT = 1023.0 + 2.0**52
# exp(r) for |r| ≤ ln2/2: Taylor to degree 12 (remainder < 2e-16 relative)
_EXP_C = tuple(1.0 / float(np.prod(np.arange(1, n + 1))) for n in range(13))
# log1p(y) = 2·atanh(s), s = y / (2 + y) ≤ 1/3 for y ≤ 1: odd series to s^33 (remainder < 2e-17)
_ATANH_C = tuple(1.0 / (2 * n + 1) for n in range(17))


@intrinsic
def _bits_as_f64(typingctx, bits):
    """Reinterpret an int64 as a float64 (a register move LLVM can vectorize)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return sig, codegen


@intrinsic
def _f64_bits(typingctx, x):
    """Reinterpret a float64 as an int64 (a register move LLVM can vectorize)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return sig, codegen


@numba.njit(inline="always")
def _exp_neg(x):
    """exp(x) for x ≤ 0 (clamped at -708, where the result is below 1e-307), no libm call."""
    x = max(x, -708.0)
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _EXP_C[12]
    p = p * r + _EXP_C[11]
    p = p * r + _EXP_C[10]
    p = p * r + _EXP_C[9]
    p = p * r + _EXP_C[8]
    p = p * r + _EXP_C[7]
    p = p * r + _EXP_C[6]
    p = p * r + _EXP_C[5]
    p = p * r + _EXP_C[4]
    p = p * r + _EXP_C[3]
    p = p * r + _EXP_C[2]
    p = p * r + _EXP_C[1]
    p = p * r + _EXP_C[0]
    # 2^k from bits, without a float → int conversion (one scalar instruction per lane without
    # AVX-512): k + 1023 + 2^52 is exact and holds k + 1023 in its low mantissa bits; shifting
    # them up to the exponent field drops the 2^52's own exponent bits off the top.
    return p * _bits_as_f64(_f64_bits(k + _EXP_BIAS_SHIFT) << 52)


@numba.njit(inline="always")
def _log1p01(y):
    """log(1 + y) for 0 ≤ y ≤ 1, no libm call."""
    s = y / (2.0 + y)
    s2 = s * s
    q = _ATANH_C[16]
    q = q * s2 + _ATANH_C[15]
    q = q * s2 + _ATANH_C[14]
    q = q * s2 + _ATANH_C[13]
    q = q * s2 + _ATANH_C[12]
    q = q * s2 + _ATANH_C[11]
    q = q * s2 + _ATANH_C[10]
    q = q * s2 + _ATANH_C[9]
    q = q * s2 + _ATANH_C[8]
    q = q * s2 + _ATANH_C[7]
    q = q * s2 + _ATANH_C[6]
    q = q * s2 + _ATANH_C[5]
    q = q * s2 + _ATANH_C[4]
    q = q * s2 + _ATANH_C[3]
    q = q * s2 + _ATANH_C[2]
    q = q * s2 + _ATANH_C[1]
    q = q * s2 + _ATANH_C[0]
    return 2.0 * s * q


@numba.njit(cache=True, nogil=True)
def exp_neg(x: np.ndarray) -> np.ndarray:
    """``_exp_neg`` over an array (for tests)."""
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = _exp_neg(x[i])
    return out


@numba.njit(cache=True, nogil=True)
def log1p01(y: np.ndarray) -> np.ndarray:
    """``_log1p01`` over an array (for tests)."""
    out = np.empty_like(y)
    for i in range(y.shape[0]):
        out[i] = _log1p01(y[i])
    return out


@numba.njit(cache=True, nogil=True)
def group_order(index: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """int64[R]: positions grouped by ``index`` (CSR ``indptr``), in input order within a group."""
    order = np.empty(index.shape[0], dtype=np.int64)
    pos = indptr[:-1].copy()
    for j in range(index.shape[0]):
        order[pos[index[j]]] = j
        pos[index[j]] += 1
    return order


@numba.njit(cache=True, nogil=True)
def sub_blocks(indptr: np.ndarray, piece: int = PIECE) -> tuple[np.ndarray, np.ndarray]:
    """Rater boundaries of sub-blocks (≈ ``piece`` ratings, whole raters) and of the ``CHUNKS`` slices.

    Returns (sub_ptr int64[S+1]: first rater of each sub-block, chunk_ptr int64[CHUNKS+1]: first
    sub-block of each slice); slices get about the same number of ratings. The slices are cut on a
    grid of ``SUB``-rating blocks whatever ``piece`` is: they fix the order the note partials are
    added in, so the bits; the sub-blocks only fix how much the pass keeps in cache at once.
    """
    n_u = indptr.shape[0] - 1
    total = indptr[n_u]
    sub = [0]
    cuts = [0]  # first rater of each slice
    for u in range(n_u):
        if indptr[u + 1] - indptr[sub[-1]] >= SUB or u + 1 == n_u:
            sub.append(u + 1)
            # close a slice when it holds its share of the ratings
            if indptr[u + 1] * CHUNKS >= total * len(cuts) and len(cuts) < CHUNKS:
                cuts.append(u + 1)
    while len(cuts) < CHUNKS + 1:
        cuts.append(n_u)
    fine = [0]
    chunk = [0]
    for c in range(CHUNKS):
        for u in range(cuts[c], cuts[c + 1]):
            if indptr[u + 1] - indptr[fine[-1]] >= piece or u + 1 == cuts[c + 1]:
                fine.append(u + 1)
        chunk.append(len(fine) - 1)
    return np.array(fine, dtype=np.int64), np.array(chunk, dtype=np.int64)


@numba.njit(inline="always")
def _derivative_loss(x, w):
    """(derivative, loss) of one rating at logit ``x``; ``w`` = weight/R, negated for target 1.

    With z = ±x (the sign of ``w``) the loss is |w|·softplus(z) and the derivative w·sigmoid(z):
    neither subtracts the target from a probability, so nothing cancels when the fit is close.
    """
    z = x if w >= 0.0 else -x
    e = _exp_neg(-abs(z))
    inv = 1.0 / (1.0 + e)
    deriv = w * (inv if z >= 0.0 else e * inv)
    return deriv, abs(w) * (max(z, 0.0) + _log1p01(e))


@numba.njit(inline="always")
def derivatives(dc, lc, wc, positive, sw, w_pos, w_neg, j0, j1, want_loss, t):
    """Ratings ``j0:j1``'s logits in ``dc[: j1 - j0]`` → their loss derivatives; returns ``t`` plus
    their losses in order when ``want_loss`` (``lc`` scratch), else ``t``. Weights as ``epoch_nb``
    takes them (``wc``: scratch for the class constants). Shared by both epoch passes."""
    # slices, not index ranges: a loop over range(len) lets LLVM drop the negative-index
    # wraparound and vectorize the exp/log arithmetic
    ds, ls = dc[: j1 - j0], lc[: j1 - j0]
    if sw.shape[0] == 0:  # class constants into the (L1-resident) weight row
        ss, ps = wc[: j1 - j0], positive[j0:j1]
        for k in range(ss.shape[0]):
            ss[k] = w_pos if ps[k] else w_neg
    else:
        ss = sw[j0:j1]
    if want_loss:
        for k in range(ds.shape[0]):
            ds[k], ls[k] = _derivative_loss(ds[k], ss[k])
        for k in range(ds.shape[0]):
            t += ls[k]
    else:
        for k in range(ds.shape[0]):
            ds[k] = _derivative_loss(ds[k], ss[k])[0]
    return t


@numba.njit(cache=True, nogil=True)
def scratch_width(indptr: np.ndarray, sub_ptr: np.ndarray) -> int:
    """The most ratings in one sub-block: the length of each slice's scratch rows (``epoch_nb``)."""
    width = 0
    for s in range(sub_ptr.shape[0] - 1):
        width = max(width, indptr[sub_ptr[s + 1]] - indptr[sub_ptr[s]])
    return width


@numba.njit(cache=True, parallel=True, fastmath={"contract"}, error_model="numpy", nogil=True)
def epoch_nb(
    indptr, sub_ptr, chunk_ptr, note, positive, sw, w_pos, w_neg, rater_w, divisor, packed, rf, ri, rep, mu,
    want_loss, work, g_rf, g_ri, g_rep, part, loss_c,
):  # fmt: skip
    """One gradient pass over ratings grouped by rater (``indptr``); returns (data loss, Σ derivative).

    Signed weights (weight/R, negated for positive targets), in one of three forms:
    - ``sw[j]`` per rating (float64, 8 bytes a rating streamed every epoch);
    - ``sw`` and ``rater_w`` empty: ``w_pos`` / ``w_neg`` by ``positive[j]`` (bool): a fit whose
      weights are one constant per class streams 1 byte a rating instead of 8;
    - ``rater_w`` [U, 2] not empty: ``(rater_w[u, positive[j]] · packed[n, 2]) / divisor``, a
      rater term per class times a note term (``factored_weights``), formed here from the byte
      and the note's line the gather reads anyway, so the fit holds no float64 per rating.
    ``packed[N, 2 or 4]``: each note's (factor, intercept[, note weight term, unused]) side by
    side, so a rating's gather is one cache line (``pack_notes``).
    Writes the rater blocks ``g_rf/g_ri/g_rep`` [U] and the note partials ``part[CHUNKS, N, 2]``
    (note factor, note intercept), to be added up in slice order. ``work`` is scratch [CHUNKS, 3,
    ``scratch_width``]: per slice, one sub-block's logits then derivatives, losses and signed
    weights, reused sub-block after sub-block so they stay in L1/L2 (R-sized scratch was written
    back to memory and read again every epoch); ``loss_c`` [CHUNKS]. The loss is only computed
    when ``want_loss`` (else 0 is returned for it). Per sub-block: gather the logits, turn them
    into derivatives (a loop of pure arithmetic, which LLVM vectorizes), then add up per rater.
    """
    n_n, width = packed.shape[0], packed.shape[1]
    factored = rater_w.shape[0] > 0
    for c in numba.prange(CHUNKS):
        part[c, :, :] = 0.0
        t = 0.0
        last = indptr[sub_ptr[chunk_ptr[c + 1]]] - 1  # the slice's last rating
        dc, lc, wc = work[c, 0], work[c, 1], work[c, 2]
        for s in range(chunk_ptr[c], chunk_ptr[c + 1]):
            u0, u1 = sub_ptr[s], sub_ptr[s + 1]
            j0, j1 = indptr[u0], indptr[u1]
            for u in range(u0, u1):
                a_rf, a_rep, a_ri = rf[u], rep[u], ri[u]
                if factored:
                    on_neg, on_pos = rater_w[u, 0], rater_w[u, 1]
                for j in range(indptr[u], indptr[u + 1]):
                    ahead = np.int64(note[min(j + AHEAD, last)])
                    prefetch(packed, ahead * width)
                    prefetch(part, (c * n_n + ahead) * 2)
                    n = note[j]
                    dc[j - j0] = packed[n, 0] * a_rf + packed[n, 1] * a_rep + a_ri + mu
                    if factored:  # rater term × note term (the line just gathered)
                        wc[j - j0] = (on_pos if positive[j] else on_neg) * packed[n, 2]
            if factored:  # ÷ R and the sign, in a loop LLVM vectorizes; then wc is the slice's sw
                ws, ps = wc[: j1 - j0], positive[j0:j1]
                for k in range(ws.shape[0]):
                    w = ws[k] / divisor
                    ws[k] = -w if ps[k] else w
                t = derivatives(dc, lc, wc, positive, wc, w_pos, w_neg, 0, j1 - j0, want_loss, t)
            else:
                t = derivatives(dc, lc, wc, positive, sw, w_pos, w_neg, j0, j1, want_loss, t)
            for u in range(u0, u1):
                a = 0.0
                b = 0.0
                q = 0.0
                a_rf, a_rep = rf[u], rep[u]
                for j in range(indptr[u], indptr[u + 1]):
                    dj = dc[j - j0]
                    n = note[j]
                    a += dj * packed[n, 0]
                    b += dj
                    q += dj * packed[n, 1]
                    part[c, n, 0] += dj * a_rf
                    part[c, n, 1] += dj * a_rep
                g_rf[u] = a
                g_ri[u] = b
                g_rep[u] = q
        loss_c[c] = t
    loss = 0.0
    for c in range(CHUNKS):
        loss += loss_c[c]
    dsum = 0.0
    for u in range(g_ri.shape[0]):
        dsum += g_ri[u]
    return loss, dsum


@numba.njit(cache=True, nogil=True)
def pack_notes(nf, ni, packed):
    """packed[n, :2] = (nf[n], ni[n]): the note parameters ``epoch_nb`` gathers, one line per note
    (a note weight term in column 2 is left as it is)."""
    for n in range(nf.shape[0]):
        packed[n, 0] = nf[n]
        packed[n, 1] = ni[n]


@numba.njit(cache=True, nogil=True)
def note_totals_nb(part, g_nf, g_ni):
    """Add the note partials in slice order: g_nf[n] = Σ_c part[c, n, 0], g_ni likewise.

    Serial on purpose: it is a few percent of the epoch, and a second parallel region per epoch
    doubles the barrier waits, which dominate on a machine shared with other work.
    """
    for n in range(part.shape[1]):
        a = 0.0
        b = 0.0
        for c in range(part.shape[0]):
            a += part[c, n, 0]
            b += part[c, n, 1]
        g_nf[n] = a
        g_ni[n] = b


@numba.njit(cache=True, nogil=True)
def add_scaled(g, c, x):
    """g += c·x in place."""
    for i in range(g.shape[0]):
        g[i] += c * x[i]


@numba.njit(cache=True, nogil=True)
def adam_nb(p, g, m, v, scale, b1, b2, lr_bc1, sqrt_bc2, eps):
    """One Adam step in place (torch's update, bias corrections folded into ``lr_bc1``/``sqrt_bc2``);
    ``g`` is scaled by ``scale`` first (gradient clipping; 1.0 when off)."""
    for i in range(p.shape[0]):
        gi = g[i] * scale
        m[i] = b1 * m[i] + (1.0 - b1) * gi
        v[i] = b2 * v[i] + (1.0 - b2) * gi * gi
        denom = np.sqrt(v[i]) / sqrt_bc2 + eps
        p[i] = p[i] - lr_bc1 * m[i] / denom


@numba.njit(cache=True, nogil=True)
def factored_weights(indptr, note, positive, rater_w, note_w, divisor, out):
    """The signed weights ``epoch_nb`` forms from factored ones, into ``out`` (rater order): the same
    operations in the same order, for passes that stream weights (``logistic_notes``) and tests."""
    for u in range(indptr.shape[0] - 1):
        for j in range(indptr[u], indptr[u + 1]):
            w = (rater_w[u, 1] if positive[j] else rater_w[u, 0]) * note_w[note[j]]
            w = w / divisor
            out[j] = -w if positive[j] else w

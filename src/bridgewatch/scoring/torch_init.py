"""Starting factors drawn exactly as the reference's PyTorch model draws them (§2.1, §2.6).

Why this exists: the prescoring fits stop where the reference's Adam trajectory ends (``mf_adam``),
and for the fits that start from random factors — the group, topic and multi-group scorers'
round 1, and the stable-initialization fit of the large scorers — that end point depends on the
start. With another generator a small group's factors can come out with the other sign, and an
intercept moves by several hundredths. The reference seeds torch's CPU generator, a standard
MT19937, and fills its embeddings in a fixed order; replaying those draws, in the reference's
order of raters and notes, gives its starting point and, from there, its fit.

What the reference's model does when it is built (``BiasedMatrixFactorization.__init__``): four
``nn.Embedding`` tables are created — user factors (U×k), note factors (N×k), user intercepts
(U×1), note intercepts (N×1) — each filled by ``normal_``; then, if the model has a seed, the
generator is re-seeded; then ``xavier_uniform_`` fills user factors and note factors (uniform in
±sqrt(6/(rows+k))), and intercepts are zeroed. The main model of a scorer has a seed, so its
factors are the first draws after seeding; the helper model of the stable initialization has
none, so its factors follow the ``normal_`` fills of its own four tables, right after the scorer
seeded the generator at the start of prescoring.

Rows of an embedding are the fit's raters (notes) in order of first appearance in the rating
table the fit receives. That table is ordered by (rater bucket, note, time, rater)
(``preprocess.reference_rating_rank``), so first appearance needs no per-rating rank
(``table_orders``): a note first appears with its lowest-bucket rater, and notes of one bucket
come in note order; a rater first appears on its first note, ordered among the raters of its
bucket by that note, then by the time of its rating there. ``fit_order`` over the rank is the
reference twin the tests pin it to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

if TYPE_CHECKING:  # only the annotation: mf imports this module
    from bridgewatch.scoring.mf import MFProblem

_N, _M = 624, 397
_MATRIX_A, _UPPER, _LOWER = 0x9908B0DF, 0x80000000, 0x7FFFFFFF
_FLOAT_MASK = (1 << 24) - 1  # a float32 uniform uses the low 24 bits of one 32-bit draw


@numba.njit(cache=True, nogil=True)
def mt19937_uint32(seed, count):
    """uint32[count]: the first outputs of MT19937 seeded like ``torch.manual_seed(seed)``
    (``init_genrand``; identical to numpy's legacy ``RandomState(seed)``)."""
    mt = np.zeros(_N, dtype=np.uint32)
    mt[0] = np.uint32(seed & 0xFFFFFFFF)
    for i in range(1, _N):
        prev = np.uint64(mt[i - 1])
        mixed = np.uint64(1812433253) * (prev ^ (prev >> np.uint64(30))) + np.uint64(i)
        mt[i] = np.uint32(mixed & np.uint64(0xFFFFFFFF))
    out = np.empty(count, dtype=np.uint32)
    idx = _N
    for k in range(count):
        if idx >= _N:
            for i in range(_N):
                y = (mt[i] & np.uint32(_UPPER)) | (mt[(i + 1) % _N] & np.uint32(_LOWER))
                v = mt[(i + _M) % _N] ^ (y >> np.uint32(1))
                if y & np.uint32(1):
                    v ^= np.uint32(_MATRIX_A)
                mt[i] = v
            idx = 0
        y = mt[idx]
        idx += 1
        y ^= y >> np.uint32(11)
        y ^= (y << np.uint32(7)) & np.uint32(0x9D2C5680)
        y ^= (y << np.uint32(15)) & np.uint32(0xEFC60000)
        y ^= y >> np.uint32(18)
        out[k] = y
    return out


def mt19937_uint32_numpy(seed: int, count: int) -> np.ndarray:
    """Slow twin of ``mt19937_uint32`` in plain Python integers (tests compare the two)."""
    mt = [seed & 0xFFFFFFFF]
    for i in range(1, _N):
        mt.append((1812433253 * (mt[-1] ^ (mt[-1] >> 30)) + i) & 0xFFFFFFFF)
    out, idx = [], _N
    while len(out) < count:
        if idx >= _N:
            for i in range(_N):
                y = (mt[i] & _UPPER) | (mt[(i + 1) % _N] & _LOWER)
                mt[i] = mt[(i + _M) % _N] ^ (y >> 1) ^ (_MATRIX_A if y & 1 else 0)
            idx = 0
        y = mt[idx]
        idx += 1
        y ^= y >> 11
        y ^= (y << 7) & 0x9D2C5680
        y ^= (y << 15) & 0xEFC60000
        y ^= y >> 18
        out.append(y & 0xFFFFFFFF)
    return np.array(out, dtype=np.uint32)


class TorchGenerator:
    """The state of torch's CPU generator as far as the model's fills need it: how many 32-bit
    draws were used, and whether a spare double normal sample is cached (small ``normal_`` fills
    draw Box-Muller pairs and keep the second value for the next call)."""

    def __init__(self, seed: int) -> None:
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> None:
        self.seed, self.used, self.cached_normal, self.spare = int(seed), 0, False, 0.0

    def _take(self, count: int) -> np.ndarray:
        draws = mt19937_uint32(self.seed, self.used + count)[self.used :]
        self.used += count
        return draws

    def skip(self, count: int) -> None:
        """Advance by ``count`` 32-bit draws (fills whose values are not needed)."""
        self.used += count

    def normal_(self, numel: int) -> np.ndarray:
        """float32[numel] as ``Tensor.normal_()`` (mean 0, std 1) on a contiguous float32 tensor.

        From 16 elements torch fills every element with a float uniform (one draw each), turns
        each block of 16 into normals by Box-Muller (u1 = 1 − x[j], u2 = x[j+8], j < 8, cos into
        j and sin into j+8, float32 maths) and, when the size is not a multiple of 16, redraws
        the last 16 uniforms and transforms them again. Below 16 it draws a double Box-Muller
        pair (two 53-bit uniforms from four draws) for every other element, keeping the spare.
        Values can differ from torch's vectorized log/sin/cos in the last bit."""
        if numel >= 16:
            out = self.uniform_(numel, 0.0, 1.0)
            for start in range(0, numel - 15, 16):
                out[start : start + 16] = _box_muller_16(out[start : start + 16])
            if numel % 16:
                out[numel - 16 :] = _box_muller_16(self.uniform_(16, 0.0, 1.0))
            return out
        out = np.empty(numel, dtype=np.float32)
        for i in range(numel):
            if self.cached_normal:
                out[i], self.cached_normal = self.spare, False
                continue
            w = self._take(4).astype(np.uint64)
            u1, u2 = ((((w[0::2] << np.uint64(32)) | w[1::2]) & np.uint64((1 << 53) - 1)) * 2.0**-53).tolist()
            r = np.sqrt(-2.0 * np.log1p(-u2))
            theta = 2.0 * np.pi * u1
            out[i], self.spare, self.cached_normal = r * np.cos(theta), r * np.sin(theta), True
        return out

    def uniform_(self, numel: int, low: float, high: float) -> np.ndarray:
        """float32[numel] as ``Tensor.uniform_(low, high)`` on a float32 tensor: one draw each,
        its low 24 bits scaled to [0, 1), then ``x·(high − low) + low`` in float32."""
        x = (self._take(numel) & np.uint32(_FLOAT_MASK)).astype(np.float32) * np.float32(2.0**-24)
        lo, hi = np.float32(low), np.float32(high)
        return (x * (hi - lo) + lo).astype(np.float32)

    def xavier_uniform_(self, rows: int, cols: int) -> np.ndarray:
        """float32[rows, cols] as ``nn.init.xavier_uniform_`` on an embedding weight (fan_in =
        cols, fan_out = rows)."""
        bound = float(np.sqrt(3.0) * np.sqrt(2.0 / (rows + cols)))
        return self.uniform_(rows * cols, -bound, bound).reshape(rows, cols)


def _box_muller_16(x: np.ndarray) -> np.ndarray:
    """float32[16] normals from float32[16] uniforms as torch's ``normal_fill_16``."""
    u1 = np.float32(1.0) - x[:8]
    theta = (2.0 * np.pi * x[8:].astype(np.float64)).astype(np.float32)
    radius = np.sqrt(np.float32(-2.0) * np.log(u1))
    return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)]).astype(np.float32)


@dataclass(frozen=True, eq=False)
class TorchInit:
    """How a cold-started fit draws its factors.

    ``seed``: the scorer's seed; ``rater_bucket``: uint8[U_full], each rater's block of the
    reference's rating table (``preprocess.reference_rater_bucket``: PSS members first,
    high-volume raters last), which with note, time and rater orders the table, and first
    appearance there the embedding rows (``table_orders``);
    ``unseeded_model``: True for the stable initialization's helper model, whose factors come
    after its own embeddings' ``normal_`` fills instead of right after a re-seed;
    ``rater_grouped``: the fit's table was regrouped by rater (sorted ids) keeping each rater's rows
    in order — the round-2 and final tables, built by merging the included raters with the ratings.

    Why a byte per rater and not each rating's rank: the rank was 4 bytes a rating (0.77 GiB at
    X's scale) held from preprocessing to the end of final scoring, for a few cold fits.
    """

    seed: int
    rater_bucket: np.ndarray
    unseeded_model: bool = False
    rater_grouped: bool = False


def table_orders(problem: MFProblem, init: TorchInit) -> tuple[np.ndarray, np.ndarray]:
    """(rater_order, note_order): a fit's compact raters and notes in order of first appearance in
    the table ``init`` describes, as ``fit_order`` gives them from the rank, without it.

    ``problem`` is the fit (``mf.MFProblem``, named for type checking only: this module stays below mf):
    the ratings its ``kept`` bits select from its ``matrix`` (``note_indptr``, ``rater``,
    ``created_at``; ratings listed by note, then rater); compact note ``n`` is full note
    ``note_full[n]``, compact rater ``u`` full rater ``rater_full[u]`` (both ascending). One pass
    over the selection, O(R) time and O(N + U) memory; ``created_at`` is read at one rating per
    rater (a rater's ratings of its first note, where it rated it twice).
    """
    m = problem.matrix
    rater_full = problem.rater_full
    n_raters = rater_full.shape[0]
    bucket = np.asarray(init.rater_bucket, dtype=np.uint8)
    args = (m.note_indptr, problem.note_full, problem.kept, m.rater, problem.rater_map(), m.created_at)
    note_bucket, note_rater, first, first_note = _first_seen_nb(
        *args, bucket, n_raters, not init.rater_grouped
    )
    if init.rater_grouped:  # by rater, then each rater's rows in table order
        return np.arange(n_raters, dtype=np.int64), np.argsort(note_rater, kind="stable")
    note_order = np.argsort(note_bucket, kind="stable")
    time = np.asarray(m.created_at[first], dtype=np.int64)
    rater_order = np.lexsort((first, time, first_note, bucket[rater_full]))
    return rater_order, note_order


@numba.njit(cache=True, nogil=True)
def _first_seen_nb(indptr, note_full, kept, rater, rater_map, created_at, bucket, n_raters, timed):
    """Per compact note: the lowest bucket and the lowest compact rater among its kept ratings;
    per compact rater: the position of its first rating in table order on its first note (the
    earliest of them where it rated that note twice, ties to the matrix order) and that note."""
    n_notes = note_full.shape[0]
    note_bucket = np.full(n_notes, 255, dtype=np.uint8)
    note_rater = np.full(n_notes, n_raters, dtype=np.int64)
    first = np.full(n_raters, -1, dtype=np.int64)
    first_note = np.full(n_raters, -1, dtype=np.int64)
    for n in range(n_notes):
        full = note_full[n]
        for i in range(indptr[full], indptr[full + 1]):
            if (kept[i >> 3] >> (7 - (i & 7))) & 1:
                fu = rater[i]
                u = rater_map[fu]
                if bucket[fu] < note_bucket[n]:
                    note_bucket[n] = bucket[fu]
                if u < note_rater[n]:
                    note_rater[n] = u
                if first[u] < 0:
                    first[u] = i
                    first_note[u] = n
                elif timed and first_note[u] == n and created_at[i] < created_at[first[u]]:
                    first[u] = i
    return note_bucket, note_rater, first, first_note


def fit_order(rank: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Distinct values of ``index`` (int[R], a fit's compact rater or note index per rating) in
    order of first appearance when the ratings are read by ascending ``rank`` (int64[R])."""
    seq = np.asarray(index)[np.argsort(rank, kind="stable")]
    values, first = np.unique(seq, return_index=True)
    return values[np.argsort(first, kind="stable")]


def torch_factors(
    rater_order: np.ndarray, note_order: np.ndarray, num_factors: int, init: TorchInit
) -> tuple[np.ndarray, np.ndarray]:
    """(note factors float64[N, k], rater factors float64[U, k]) in compact index space, drawn as
    the reference's model draws them; ``rater_order`` / ``note_order``: compact indices in
    embedding-row order (``fit_order``)."""
    u, n, k = rater_order.shape[0], note_order.shape[0], num_factors
    gen = TorchGenerator(init.seed)
    if init.unseeded_model:
        for numel in (u * k, n * k, u, n):
            gen.normal_(numel)
    rf = np.zeros((u, k))
    nf = np.zeros((n, k))
    rf[rater_order] = gen.xavier_uniform_(u, k)
    nf[note_order] = gen.xavier_uniform_(n, k)
    return nf, rf


def reputation_model_start(
    seed: int, skip_draws: int, n_notes: int, n_raters: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(note factor, note intercept, rater intercept), float32 in embedding-row order, as the
    reference's reputation model (``ReputationMFModel.__init__``) draws them with nDim 1.

    Why: the low-diligence model (§3.5) is built right after the scorer's round-2 model, which
    re-seeded the generator with ``seed`` and used ``skip_draws`` draws for its xavier factors.
    The new model's five ``nn.Embedding`` tables are each filled by ``normal_`` in the order note
    factors, rater factors, note intercepts, rater intercepts, reputation; prescoring then
    overwrites only the rater factors (round-2 helpfulness factors) and the reputation (1), so
    note factors and both intercepts start from these draws. Rows are sorted note / rater ids.
    """
    gen = TorchGenerator(seed)
    gen.skip(skip_draws)
    note_factor = gen.normal_(n_notes)
    gen.normal_(n_raters)
    note_intercept = gen.normal_(n_notes)
    rater_intercept = gen.normal_(n_raters)
    return note_factor, note_intercept, rater_intercept

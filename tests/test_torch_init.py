"""Starting factors drawn as the reference's torch model draws them (torch_init)."""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf import build_problem, initial_params
from bridgewatch.scoring.rating_gather import compact_problem
from bridgewatch.scoring.torch_init import (
    TorchGenerator,
    TorchInit,
    fit_order,
    mt19937_uint32,
    mt19937_uint32_numpy,
    reputation_model_start,
    table_orders,
    torch_factors,
)


def test_mt19937_kernel_matches_its_twin_and_the_standard():
    assert mt19937_uint32(5489, 3).tolist() == [3499211612, 581869302, 3890346734]  # MT19937 reference
    fast = mt19937_uint32(42, 1500)  # crosses a 624-word regeneration twice
    assert np.array_equal(fast, mt19937_uint32_numpy(42, 1500))
    legacy = np.random.RandomState(42).randint(0, 2**32, size=1500, dtype=np.uint64)
    assert np.array_equal(fast.astype(np.uint64), legacy)


def test_uniform_reproduces_torch_rand_after_manual_seed():
    """torch.manual_seed(42); torch.rand(3) == [0.8823, 0.9150, 0.3829] (float32 draws use the
    low 24 bits of one 32-bit output each)."""
    gen = TorchGenerator(42)
    assert np.allclose(gen.uniform_(3, 0.0, 1.0), [0.88226926, 0.91500396, 0.38286376], atol=1e-7)
    assert gen.used == 3


def test_normal_fills_consume_draws_like_torch():
    gen = TorchGenerator(1)
    gen.normal_(32)  # vectorized: one draw per element
    gen.normal_(20)  # not a multiple of 16: the last 16 are drawn again
    assert gen.used == 32 + 36
    gen.normal_(3)  # Box-Muller pairs: 4 draws, spare cached, 4 draws, spare cached
    assert gen.used == 68 + 8 and gen.cached_normal
    gen.normal_(1)  # uses the spare
    assert gen.used == 76 and not gen.cached_normal
    gen.manual_seed(1)
    assert gen.used == 0 and not gen.cached_normal


def test_fit_order_is_first_appearance_by_rank():
    rank = np.array([5, 0, 3, 1, 4, 2])
    index = np.array([2, 1, 1, 0, 2, 1])
    assert fit_order(rank, index).tolist() == [1, 0, 2]


def test_seeded_model_draws_raters_then_notes_right_after_seeding():
    """The main model re-seeds right before xavier: rater rows take the first draws, notes the next;
    the unseeded stable-init helper first burns its four embeddings' normal_ fills."""
    raters, notes = np.array([2, 0, 1]), np.array([1, 0])
    nf, rf = torch_factors(raters, notes, 1, TorchInit(42, np.zeros(0)))
    gen = TorchGenerator(42)
    assert np.array_equal(rf[raters, 0], gen.xavier_uniform_(3, 1)[:, 0])
    assert np.array_equal(nf[notes, 0], gen.xavier_uniform_(2, 1)[:, 0])
    _, helper_rf = torch_factors(raters, notes, 1, TorchInit(42, np.zeros(0), unseeded_model=True))
    gen = TorchGenerator(42)
    for numel in (3, 2, 3, 2):
        gen.normal_(numel)
    assert np.array_equal(helper_rf[raters, 0], gen.xavier_uniform_(3, 1)[:, 0])
    assert not np.array_equal(helper_rf, rf)


@pytest.fixture()
def matrix():
    # ratings: (note, rater, time); rater "c" is high-volume, rater "b" in a PSS clique
    rows = [(0, "a", 30), (0, "c", 10), (1, "b", 40), (1, "a", 20), (2, "c", 5), (2, "d", 50)]
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    return build_rating_matrix(
        note=np.array([r[0] for r in rows]), rater=np.searchsorted(ids, [r[1] for r in rows]),
        value=np.ones(6, np.float32), created_at=np.array([r[2] for r in rows]),
        tags=np.zeros(6, np.uint32), population_sampled=np.zeros(6, bool),
        note_ids=np.array([100, 200, 300]), rater_ids=ids,
    )  # fmt: skip


def test_reference_rank_puts_pss_raters_first_and_high_volume_last(matrix):
    hv = np.array([False, False, True, False])
    pss = np.array([False, True, False, False])
    rank = P.reference_rating_rank(matrix, hv, None, pss)
    order = np.argsort(rank)
    seen = [(int(matrix.note_ids[matrix.note[i]]), matrix.rater_ids[matrix.rater[i]]) for i in order]
    assert seen == [(200, "b"), (100, "a"), (200, "a"), (300, "d"), (100, "c"), (300, "c")]


def test_cold_start_uses_the_reference_order_of_the_fit(matrix):
    """A fit's embedding rows follow first appearance in the reference's table, so a rater's
    starting factor does not depend on our sorted id order."""
    hv = np.zeros(4, bool)
    pss = np.array([False, True, False, False])
    bucket = P.reference_rater_bucket(matrix.n_raters, hv, None, pss)
    problem = build_problem(matrix)
    _, _, nf, _, rf = initial_params(problem, 1, 0, None, TorchInit(42, bucket))
    gen = TorchGenerator(42)
    expect_r = gen.xavier_uniform_(4, 1)[:, 0]  # first appearance: b, c, a, d
    expect_n = gen.xavier_uniform_(3, 1)[:, 0]  # notes 200 (b's), 100, 300
    assert np.array_equal(rf[[1, 2, 0, 3], 0], expect_r)
    assert np.array_equal(nf[[1, 0, 2], 0], expect_n)
    assert MFConfig().num_factors == 1


def test_normal_values_reproduce_torch_randn_after_manual_seed():
    """torch.manual_seed(42); torch.randn(4, 4) starts [1.9269, 1.4873, 0.9007, -2.1055, 0.6784]
    and ends 0.7624 (vectorized Box-Muller over 16 float uniforms); torch.randn(2, 3) is
    [0.3367, 0.1288, 0.2345, 0.2303, -1.1229, -0.1863] (double Box-Muller pairs, spare cached)."""
    big = TorchGenerator(42).normal_(16)
    assert np.allclose(big[[0, 1, 2, 3, 4, 15]], [1.9269, 1.4873, 0.9007, -2.1055, 0.6784, 0.7624], atol=1e-4)
    small = TorchGenerator(42).normal_(6)
    assert np.allclose(small, [0.3367, 0.1288, 0.2345, 0.2303, -1.1229, -0.1863], atol=1e-4)


def test_normal_values_redraw_the_tail_when_not_a_multiple_of_16():
    """A 20-element fill keeps the first 4 of the 16-block and replaces the last 16 with a
    Box-Muller of 16 fresh uniforms."""
    gen = TorchGenerator(7)
    out = gen.normal_(20)
    head = TorchGenerator(7).normal_(16)
    tail_gen = TorchGenerator(7)
    tail_gen.skip(20)
    assert np.array_equal(out[:4], head[:4])
    assert np.array_equal(out[4:], tail_gen.normal_(16))
    assert gen.used == 36


def test_reputation_model_start_draws_after_the_round2_model_in_embedding_order():
    """Note factors, (rater factors), note intercepts, rater intercepts, each a normal_ fill, after
    the round-2 model's xavier draws."""
    skip, n, u = 10, 17, 5
    nf, ni, ri = reputation_model_start(3, skip, n, u)
    gen = TorchGenerator(3)
    gen.skip(skip)
    expect_nf = gen.normal_(n)
    gen.normal_(u)
    expect_ni, expect_ri = gen.normal_(n), gen.normal_(u)
    assert np.array_equal(nf, expect_nf) and np.array_equal(ni, expect_ni) and np.array_equal(ri, expect_ri)
    assert not np.array_equal(nf, TorchGenerator(3).normal_(n))  # the skip matters


def _random_matrix(rng, n_ratings, n_notes, n_raters):
    """Duplicate (note, rater) ratings (raw files have them) and ties in time, both on purpose."""
    return build_rating_matrix(
        note=rng.integers(0, n_notes, n_ratings).astype(np.int32),
        rater=rng.integers(0, n_raters, n_ratings).astype(np.int32),
        value=np.ones(n_ratings, np.float32),
        created_at=rng.integers(0, 40, n_ratings) * 1000,
        tags=np.zeros(n_ratings, np.uint32),
        population_sampled=np.zeros(n_ratings, bool),
        note_ids=np.arange(n_notes, dtype=np.int64) * 3 + 7,
        rater_ids=np.array([f"u{i:04d}" for i in range(n_raters)], dtype=object),
    )


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("grouped", [False, True], ids=["table", "rater-grouped"])
def test_table_orders_are_first_appearance_by_the_reference_rank(seed, grouped):
    """The rank-free orders are ``fit_order`` over ``reference_rating_rank``, the per-rating form
    they replace (and, grouped, over the rank regrouped by rater as the round-2 tables are)."""
    rng = np.random.default_rng(seed)
    m = _random_matrix(rng, 6000, 70, 400)
    high, corr, pss = (rng.random(m.n_raters) < share for share in (0.2, 0.1, 0.1))
    keep = rng.random(m.n_ratings) < 0.7
    problem = build_problem(m, keep)
    init = TorchInit(1, P.reference_rater_bucket(m.n_raters, high, corr, pss), rater_grouped=grouped)
    got = table_orders(problem, init)
    arrays = compact_problem(m, keep)
    rank = P.reference_rating_rank(m, high, corr, pss)[arrays["rating_full"]]
    if grouped:
        order = np.lexsort((rank, arrays["rater"]))
        rank = np.empty_like(order)
        rank[order] = np.arange(order.shape[0])
    want = fit_order(rank, arrays["rater"]), fit_order(rank, arrays["note"])
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_a_duplicate_rating_orders_its_rater_by_the_earlier_time():
    # rater "b" rated note 0 twice: at 50 (listed first) and at 5, so it comes before "a" (at 20)
    ids = np.array(["a", "b"], dtype=object)
    m = build_rating_matrix(
        note=np.array([0, 0, 0]), rater=np.array([0, 1, 1]), value=np.ones(3, np.float32),
        created_at=np.array([20, 50, 5]), tags=np.zeros(3, np.uint32),
        population_sampled=np.zeros(3, bool), note_ids=np.array([9]), rater_ids=ids,
    )  # fmt: skip
    problem = build_problem(m)
    init = TorchInit(1, np.ones(2, np.uint8))
    raters, _ = table_orders(problem, init)
    assert raters.tolist() == [1, 0]

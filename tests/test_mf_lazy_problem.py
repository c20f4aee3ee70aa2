"""A prescoring Adam fit reads its ratings from the matrix instead of the problem's compact copies:
same layout, same squared error, same fitted bits as the old path over ``note``/``rater``/``value``,
and the per-rating arrays are never made."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bridgewatch.io import matrix as M
from bridgewatch.scoring import mf_kernels as K
from bridgewatch.scoring import rating_gather as RG
from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf import build_problem, fit_mf, flip_factors, initial_params, penalties
from bridgewatch.scoring.mf_adam import adam_fit, adam_fit_problem
from bridgewatch.scoring.mf_adam_kernels import adam_layout, data_loss_and_grads, layout_of
from bridgewatch.scoring.torch_init import TorchInit


def _matrix(rng: np.random.Generator, n_ratings: int, n_notes: int, n_raters: int) -> M.RatingMatrix:
    """Values 0 / 0.5 / 1 as in the data; repeated (note, rater) pairs exercise the stable orders."""
    return M.build_rating_matrix(
        note=rng.integers(0, n_notes, n_ratings).astype(np.int32),
        rater=rng.integers(0, n_raters, n_ratings).astype(np.int32),
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), n_ratings),
        created_at=rng.integers(0, 10**12, n_ratings),
        tags=np.zeros(n_ratings, np.uint32),
        population_sampled=np.zeros(n_ratings, bool),
        note_ids=np.arange(n_notes, dtype=np.int64),
        rater_ids=np.array([f"r{i:05d}" for i in range(n_raters)], dtype=object),
    )


def _keep(rng: np.random.Generator, m: M.RatingMatrix, share: float) -> np.ndarray:
    """A random share of the ratings, minus every rating of some notes and raters (so compact and
    full indices differ on both sides)."""
    keep = rng.random(m.n_ratings) < share
    keep &= m.note % 7 != 3
    keep &= m.rater % 11 != 5
    return keep


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("share", [0.05, 0.6, 1.0])
def test_layout_read_from_the_matrix_is_the_compact_arrays_layout(pass_threads, seed: int, share: float):
    rng = np.random.default_rng(seed)
    m = _matrix(rng, 5000, 50, 400)
    keep = _keep(rng, m, share)
    fresh = build_problem(m, keep)
    note, value = RG.kept_by_rater(m, fresh.kept, fresh.note_full, fresh.rater_full, fresh.rater_indptr)
    assert "_arrays" not in fresh.__dict__
    p = build_problem(m, keep)
    old = adam_layout(p.note, p.rater, p.value, p.n_notes, p.n_raters, 1)
    assert note.dtype == np.uint32 and value.dtype == np.float32
    np.testing.assert_array_equal(note, old.note)
    assert np.array_equal(value.astype(np.float64), old.value)
    np.testing.assert_array_equal(p.rater_indptr, old.indptr)


@pytest.mark.parametrize("bits", [1, 0b1010_0000, 1 << 31])
def test_a_gathered_flag_is_the_gathered_tags_bits(pass_threads, bits: int):
    """The diligence and harassment fits gather their targets as flags (1 byte a rating), not as
    the tags they test: the same booleans, in the same order, next to the same notes."""
    rng = np.random.default_rng(5)
    m = _matrix(rng, 5000, 50, 400)
    tags = rng.integers(0, 2**32, m.n_ratings, dtype=np.uint32)
    tags[rng.random(m.n_ratings) < 0.3] = 0
    keep = _keep(rng, m, 0.6)
    s = RG.problem_shape(m, keep)
    packed = np.packbits(keep)
    note, whole = RG.kept_by_rater(m, packed, s["note_full"], s["rater_full"], s["rater_indptr"], tags)
    note_f, flag = RG.kept_by_rater(
        m, packed, s["note_full"], s["rater_full"], s["rater_indptr"], tags, bits=bits
    )
    assert whole.dtype == np.uint32 and flag.dtype == np.bool_
    np.testing.assert_array_equal(note_f, note)
    np.testing.assert_array_equal(flag, (whole & np.uint32(bits)) != 0)
    assert 0 < flag.sum() < flag.shape[0]


@pytest.mark.parametrize("share", [0.05, 1.0])
def test_squared_error_from_the_matrix_is_the_compact_sum_bit_for_bit(share: float):
    rng = np.random.default_rng(7)
    m = _matrix(rng, 6000, 60, 300)
    p = build_problem(m, _keep(rng, m, share))
    ni, nf = rng.normal(0, 0.3, p.n_notes), rng.normal(0, 0.5, (p.n_notes, 2))
    ri, rf = rng.normal(0, 0.3, p.n_raters), rng.normal(0, 0.5, (p.n_raters, 2))
    lazy = p.squared_error(0.17, ni, nf, ri, rf)
    assert "_arrays" not in p.__dict__
    assert lazy == K.squared_error_nb(p.note, p.rater, p.value, 0.17, ni, nf, ri, rf)


def test_float32_layout_values_give_the_float64_layouts_gradients_bit_for_bit():
    rng = np.random.default_rng(2)
    m = _matrix(rng, 4000, 40, 200)
    p = build_problem(m)
    old = adam_layout(p.note, p.rater, p.value, p.n_notes, p.n_raters, 1)
    new = layout_of(old.indptr, old.note, old.value.astype(np.float32), old.weight, p.n_notes, 1)
    args = (0.1, rng.normal(0, 0.3, p.n_notes), rng.normal(0, 0.5, (p.n_notes, 1)))
    args += (rng.normal(0, 0.3, p.n_raters), rng.normal(0, 0.5, (p.n_raters, 1)))
    outs = []
    for lay in (old, new):
        grads = [np.zeros_like(a) for a in args[1:]]
        loss, g_mu = data_loss_and_grads(lay, *args, *grads)
        outs.append((loss, g_mu, b"".join(g.tobytes() for g in grads)))
    assert outs[0] == outs[1]


def _old_fit(p, config: MFConfig, init, torch_init):
    """``fit_mf``'s Adam branch as it was: ``adam_fit`` over the compact arrays, then the
    objective and the train error summed over them."""
    start = initial_params(p, config.num_factors, 0, init, torch_init)
    lr = config.adam_init_learning_rate if init is not None else config.adam_no_init_learning_rate
    (mu, ni, nf, ri, rf), epochs = adam_fit(p.note, p.rater, p.value, start, config, lr)
    nf, rf = flip_factors(nf, rf)
    pen = penalties(p, config)
    sse = K.squared_error_nb(p.note, p.rater, p.value, mu, ni, nf, ri, rf)
    total = (
        sse
        + pen.note_int * K.sum_squares(ni)
        + pen.note_fac * K.sum_squares(nf.ravel())
        + pen.rater_int * K.sum_squares(ri)
        + pen.rater_fac * K.sum_squares(rf.ravel())
        + pen.mu * mu * mu
    )
    return (mu, ni, nf, ri, rf), epochs, total / p.n_ratings, sse / p.n_ratings


@pytest.mark.parametrize("cold", [False, True], ids=["warm", "torch-cold"])
def test_adam_fit_from_the_matrix_pins_the_old_fits_bytes(pass_threads, cold: bool):
    rng = np.random.default_rng(11)
    m = _matrix(rng, 8000, 80, 500)
    keep = _keep(rng, m, 0.8)
    config = dataclasses.replace(MFConfig(), solver="adam", adam_max_epochs=60)
    torch_init = TorchInit(42, rng.integers(0, 8, m.n_raters).astype(np.uint8)) if cold else None
    init = None
    if not cold:
        init = fit_mf(build_problem(m, keep & (m.rater % 2 == 0)), config, seed=0).params
    p = build_problem(m, keep)
    fit = fit_mf(p, config, seed=0, init=init, torch_init=torch_init)
    assert "_arrays" not in p.__dict__  # the fit never made the compact per-rating arrays
    old = build_problem(m, keep)
    (mu, ni, nf, ri, rf), epochs, loss, mse = _old_fit(old, config, init, torch_init)
    q = fit.params
    assert fit.iterations == epochs > 1
    assert (fit.loss, fit.mse, q.mu) == (loss, mse, mu)
    for full, compact, index in (
        (q.note_intercept, ni, p.note_full),
        (q.note_factor, nf, p.note_full),
        (q.rater_intercept, ri, p.rater_full),
        (q.rater_factor, rf, p.rater_full),
    ):
        assert full[index].tobytes() == compact.tobytes()


def test_adam_fit_problem_of_no_ratings_returns_the_start():
    rng = np.random.default_rng(1)
    m = _matrix(rng, 500, 10, 40)
    p = build_problem(m, np.zeros(m.n_ratings, bool))
    start = (0.3, np.ones(0), np.ones((0, 1)), np.ones(0), np.ones((0, 1)))
    (mu, *_), epochs = adam_fit_problem(p, start, MFConfig(), 1.0)
    assert (mu, epochs) == (0.3, 0)


def test_the_problem_keeps_its_own_copy_of_the_selection():
    rng = np.random.default_rng(4)
    m = _matrix(rng, 2000, 30, 100)
    keep = rng.random(m.n_ratings) < 0.5
    p = build_problem(m, keep)
    zeros = (np.zeros(p.n_notes), np.zeros((p.n_notes, 1)), np.zeros(p.n_raters), np.zeros((p.n_raters, 1)))
    before = p.squared_error(0.0, *zeros)
    keep[:] = True  # the caller reuses its mask
    assert p.squared_error(0.0, *zeros) == before
    assert p.n_ratings == p.value.shape[0] < m.n_ratings
    assert before == K.squared_error_nb(p.note, p.rater, p.value, 0.0, *zeros)

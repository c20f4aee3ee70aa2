"""Low-diligence model (§3.5) and the shared logistic factor kernel: gradients, recovery, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch import schema
from bridgewatch.errors import ScoringError
from bridgewatch.scoring import diligence as dl
from bridgewatch.scoring import logistic_mf as lm


def _tiny(seed: int = 0):
    rng = np.random.default_rng(seed)
    n_notes, n_raters, r = 5, 7, 30
    note = rng.integers(0, n_notes, r)
    rater = rng.integers(0, n_raters, r)
    target = (rng.uniform(size=r) < 0.3).astype(float)
    weight = rng.uniform(0.5, 3.0, r)
    p = lm.LogisticMFParams(
        note_factor=rng.normal(size=n_notes),
        note_intercept=rng.normal(size=n_notes),
        rater_factor=rng.normal(size=n_raters),
        rater_intercept=rng.normal(size=n_raters),
        rater_reputation=rng.uniform(0.5, 1.5, n_raters),
        global_intercept=np.array([0.3]),
    )
    pen = lm.Penalty(0.1, 0.2, 0.3, 0.4, 0.5, 0.6)
    return note, rater, target, weight, p, pen


def test_gradient_matches_finite_differences():
    note, rater, target, weight, p, pen = _tiny()
    loss, grads = lm.gradient(note, rater, target, weight, p, pen)
    assert loss == pytest.approx(lm.objective(note, rater, target, weight, p, pen), rel=1e-12)
    h = 1e-6
    for block in lm.BLOCKS:
        values = getattr(p, block)
        for i in range(values.shape[0]):
            up, down = p.copy(), p.copy()
            getattr(up, block)[i] += h
            getattr(down, block)[i] -= h
            f_up = lm.objective(note, rater, target, weight, up, pen)
            f_down = lm.objective(note, rater, target, weight, down, pen)
            fd = (f_up - f_down) / (2 * h)
            assert grads[block][i] == pytest.approx(fd, abs=1e-7), (block, i)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fused_gradient_agrees_with_numpy_twin(seed):
    note, rater, target, weight, p, pen = _tiny(seed)
    loss, grads = lm.gradient(note, rater, target, weight, p, pen)
    loss_np, grads_np = lm.gradient_np(note, rater, target, weight, p, pen)
    assert loss == pytest.approx(loss_np, rel=1e-12)
    for block in lm.BLOCKS:
        np.testing.assert_allclose(grads[block], grads_np[block], rtol=1e-12, atol=1e-15, err_msg=block)


def test_objective_is_stable_for_extreme_logits():
    note, rater, target, weight, p, pen = _tiny()
    p.global_intercept = np.array([800.0])
    loss, grads = lm.gradient(note, rater, target, weight, p, pen)
    assert np.isfinite(loss) and all(np.isfinite(g).all() for g in grads.values())


def test_adam_decreases_loss_and_respects_frozen_blocks():
    note, rater, target, weight, p, pen = _tiny(1)
    before = lm.objective(note, rater, target, weight, p, pen)
    fit, loss, epochs = lm.fit_adam(
        note, rater, target, weight, p, pen, ("note_intercept", "global_intercept")
    )
    assert loss < before
    assert 0 < epochs <= 301
    np.testing.assert_array_equal(fit.rater_factor, p.rater_factor)
    np.testing.assert_array_equal(fit.rater_reputation, p.rater_reputation)
    assert not np.array_equal(fit.note_intercept, p.note_intercept)
    with pytest.raises(ValueError):
        lm.fit_adam(note, rater, target, weight, p, pen, ("bogus",))


def test_penalty_forms():
    mean = lm.penalty(n_ratings=100, n_notes=10, n_raters=20, note_factor=0.03, note_intercept=0.15,
                      rater_factor=0.03, rater_intercept=0.3)  # fmt: skip
    assert mean.note_intercept == pytest.approx(0.015) and mean.rater_intercept == pytest.approx(0.015)
    ratio = lm.penalty(n_ratings=100, n_notes=10, n_raters=20, note_factor=0.03, note_intercept=0.15,
                       rater_factor=0.03, rater_intercept=0.3, note_loss_ratio=5.0)  # fmt: skip
    assert ratio.note_intercept == pytest.approx(0.15 * 5 / 100)


def test_targets_from_tag_bits():
    tags = np.array(
        [
            0,
            1 << schema.TAG_BIT["notHelpfulIncorrect"],
            1 << schema.TAG_BIT["notHelpfulIrrelevantSources"],
            1 << schema.TAG_BIT["notHelpfulSourcesMissingOrUnreliable"],
            1 << schema.TAG_BIT["notHelpfulOther"],
        ],
        dtype=np.uint32,
    )
    assert dl.diligence_targets(tags).tolist() == [0, 1, 1, 1, 0]


def test_third_round_weights():
    note = np.array([0, 0, 1])
    target = np.array([1.0, 0.0, 0.0])
    rep = np.array([4.0, 0.0, 1.0])
    w = dl.rating_weights(note, target, 500.0, reputation=rep, reputation_exp=0.5, alpha=0.1,
                          note_norm_exp=-0.5, n_notes=2)  # fmt: skip
    raw = np.array([500 * 2.1 / 1.1, 0.1 / 1.1, 1.0])
    totals = np.array([raw[0] + raw[1], raw[2]]) + 2.0**-20
    np.testing.assert_allclose(w, raw * totals[note] ** -0.5)


def _planted(seed: int = 0):
    """Notes 0-4 draw 'incorrect' tags from raters of both viewpoints; the rest rarely do."""
    rng = np.random.default_rng(seed)
    n_notes, n_raters = 40, 120
    viewpoint = np.where(np.arange(n_raters) % 2 == 0, -0.5, 0.5)
    notes, raters = [], []
    for n in range(n_notes):
        rs = rng.choice(n_raters, 25, replace=False)
        notes += [n] * 25
        raters += rs.tolist()
    note, rater = np.array(notes), np.array(raters)
    p = np.where(note < 5, 0.6, 0.02)
    # one tag-happy rater flags everything
    p = np.where(rater == 7, 0.9, p)
    target = (rng.uniform(size=note.shape[0]) < p).astype(float)
    return note, rater, target, n_notes, n_raters, viewpoint


def test_planted_low_diligence_notes_get_high_intercepts():
    note, rater, target, n_notes, n_raters, viewpoint = _planted()
    pre = dl.fit_prescoring(note, rater, target, n_notes, n_raters, viewpoint)
    assert np.nanmean(pre.note_intercept[:5]) > np.nanmean(pre.note_intercept[5:]) + 0.2
    assert np.isfinite(pre.global_intercepts).all()
    # the tag-happy rater gets a higher intercept than the median rater
    assert pre.rater_intercept[7] > np.nanmedian(pre.rater_intercept)
    ni, nf = dl.fit_final(note, rater, target, n_notes, n_raters, pre)
    assert ni[:5].min() > ni[5:].max()
    assert np.isfinite(nf).all()
    # reruns are bit-identical
    pre2 = dl.fit_prescoring(note, rater, target, n_notes, n_raters, viewpoint)
    ni2, _ = dl.fit_final(note, rater, target, n_notes, n_raters, pre2)
    assert ni.tobytes() == ni2.tobytes()


def test_final_handles_new_notes_and_raters():
    note, rater, target, n_notes, n_raters, viewpoint = _planted(1)
    old = note < 35
    pre = dl.fit_prescoring(note[old], rater[old], target[old], n_notes, n_raters, viewpoint)
    assert np.isnan(pre.note_intercept[35:]).all()
    ni, _ = dl.fit_final(note, rater, target, n_notes, n_raters, pre)
    assert np.isfinite(ni).all()


def test_bad_input_raises():
    with pytest.raises(ScoringError, match="no ratings"):
        dl.fit_prescoring(np.array([], dtype=int), np.array([], dtype=int), np.array([]), 1, 1, np.zeros(1))
    with pytest.raises(ScoringError, match="out of range"):
        dl.fit_prescoring(np.array([3]), np.array([0]), np.array([1.0]), 2, 1, np.zeros(1))


def test_random_start_rows_follow_sorted_ids_and_skip_round2_draws():
    """Embedding row i is the i-th smallest id among the fit's notes (raters); the draws come after
    the round-2 model's (notes + raters) × k xavier uniforms."""
    from bridgewatch.scoring.torch_init import reputation_model_start

    note_rank = np.array([3, 9, 0, 5])  # map note 2 has the smallest id, then 0, 3, (1 absent)
    rater_rank = np.array([1, 0, 2])
    notes, raters = np.array([0, 2, 3]), np.array([0, 1, 2])
    start = dl.DiligenceStart(seed=5, num_factors=1, note_rank=note_rank, rater_rank=rater_rank)
    nf, ni, ri = dl._random_start(start, notes, raters)
    enf, eni, eri = reputation_model_start(5, 6, 3, 3)
    assert np.array_equal(nf, enf[[1, 0, 2]].astype(np.float64))  # local 0 (rank 3) is row 1
    assert np.array_equal(ni, eni[[1, 0, 2]].astype(np.float64))
    assert np.array_equal(ri, eri[[1, 0, 2]].astype(np.float64))  # rater 1 (rank 0) is row 0


def test_prescoring_with_random_start_is_deterministic_and_uses_it():
    rng = np.random.default_rng(0)
    note, rater = rng.integers(0, 12, 300), rng.integers(0, 20, 300)
    target = (rng.random(300) < 0.2).astype(np.float64)
    start = dl.DiligenceStart(42, 1, np.arange(12), np.arange(20))
    args = (note, rater, target, 12, 20, np.zeros(20))
    a, b = dl.fit_prescoring(*args, start=start), dl.fit_prescoring(*args, start=start)
    assert np.array_equal(a.note_intercept, b.note_intercept, equal_nan=True)
    assert not np.allclose(a.note_factor, dl.fit_prescoring(*args).note_factor, equal_nan=True)


def _rating_matrix(seed: int, n_ratings: int = 4000, n_notes: int = 80, n_raters: int = 300):
    from bridgewatch.io import matrix as M

    rng = np.random.default_rng(seed)
    mask = sum(1 << schema.TAG_BIT[t] for t in dl.DILIGENCE_TAGS)
    tags = np.where(rng.random(n_ratings) < 0.2, mask & rng.integers(1, 2**20, n_ratings), 0)
    tags |= rng.integers(0, 2**20, n_ratings) & ~mask  # other tags never count
    return M.build_rating_matrix(
        note=rng.integers(0, n_notes, n_ratings).astype(np.int32),
        rater=rng.integers(0, n_raters, n_ratings).astype(np.int32),
        value=rng.choice(np.array([0.0, 0.5, 1.0], dtype=np.float32), n_ratings),
        created_at=np.arange(n_ratings, dtype=np.int64),
        tags=tags.astype(np.uint32),
        population_sampled=np.zeros(n_ratings, dtype=bool),
        note_ids=np.arange(n_notes, dtype=np.int64) * 7 + 3,
        rater_ids=np.array([f"r{i:05d}" for i in range(n_raters)], dtype=object),
    )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("with_start", [False, True])
@pytest.mark.parametrize("note_norm_exp", [-0.5, 0.0])
def test_prescoring_from_the_matrix_is_the_gathered_fit_to_the_bit(seed, with_start, note_norm_exp):
    """``fit_prescoring_kept`` (layout and weights read through the selection, in rater order) gives
    the bytes of ``fit_prescoring`` on the gathered ``note[keep]``, ``rater[keep]``, targets."""
    m = _rating_matrix(seed)
    rng = np.random.default_rng(seed + 10)
    keep = rng.random(m.n_ratings) < 0.7
    rf = rng.normal(size=m.n_raters)
    rf[::13] = np.nan
    config = dl.DiligenceConfig(third_round_note_norm_exp=note_norm_exp)
    start = None
    if with_start:
        start = dl.DiligenceStart(42, 1, rng.permutation(m.n_notes), rng.permutation(m.n_raters))
    old = dl.fit_prescoring(
        m.note[keep], m.rater[keep], dl.diligence_targets(m.tags[keep]), m.n_notes, m.n_raters, rf,
        config, start,
    )  # fmt: skip
    new = dl.fit_prescoring_kept(m, keep, rf, config, start)
    for name in ("note_intercept", "note_factor", "note_intercept_round2", "rater_intercept",
                 "rater_intercept_round2", "rater_factor", "rater_reputation"):  # fmt: skip
        assert getattr(new, name).tobytes() == getattr(old, name).tobytes(), name
    assert np.array(new.global_intercepts).tobytes() == np.array(old.global_intercepts).tobytes()
    assert (new.n_ratings, new.n_notes, new.n_raters) == (old.n_ratings, old.n_notes, old.n_raters)
    assert np.isfinite(new.note_intercept[np.isfinite(old.note_intercept)]).all()


def test_prescoring_from_the_matrix_raises_on_an_empty_selection():
    m = _rating_matrix(0, n_ratings=50)
    with pytest.raises(ScoringError, match="no ratings"):
        dl.fit_prescoring_kept(m, np.zeros(m.n_ratings, dtype=bool), np.zeros(m.n_raters))


@pytest.mark.parametrize("seed", range(3))
def test_final_from_the_matrix_is_the_gathered_fit_to_the_bit(seed):
    """``fit_final_kept`` gives the bytes of ``fit_final`` on the gathered ratings, for a final
    selection with notes and raters prescoring never saw (reputation 0, NaN parameters → 0)."""
    m = _rating_matrix(seed)
    rng = np.random.default_rng(seed + 20)
    pre_keep = (rng.random(m.n_ratings) < 0.6) & (m.note < 70) & (m.rater < 280)
    final_keep = rng.random(m.n_ratings) < 0.8
    rf = rng.normal(size=m.n_raters)
    pre = dl.fit_prescoring_kept(m, pre_keep, rf)
    gathered = (m.note[final_keep], m.rater[final_keep], dl.diligence_targets(m.tags[final_keep]))
    old = dl.fit_final(*gathered, m.n_notes, m.n_raters, pre)
    new = dl.fit_final_kept(m, final_keep, pre)
    assert new[0].tobytes() == old[0].tobytes() and new[1].tobytes() == old[1].tobytes()
    assert np.isfinite(new[0][70:]).any()  # notes only the final fit has

"""The logistic factor model's fast paths (``logistic_kernels``) against numpy, across thread counts."""

from __future__ import annotations

import dataclasses

import numba
import numpy as np
import pytest

from bridgewatch.scoring import logistic_kernels as K
from bridgewatch.scoring import logistic_mf as lm


def _problem(seed: int = 0, r: int = 90_000, n_notes: int = 700, n_raters: int = 4_000):
    """Ratings spread over many sub-blocks and all slices, raters of very uneven activity."""
    rng = np.random.default_rng(seed)
    rater = np.minimum(rng.zipf(1.3, r) - 1, n_raters - 1)
    note = rng.integers(0, n_notes, r)
    target = (rng.uniform(size=r) < 0.2).astype(float)
    weight = np.where(target == 1.0, 5.0, 1.0) * rng.uniform(0.5, 1.5, r)
    p = lm.LogisticMFParams(
        note_factor=rng.normal(size=n_notes),
        note_intercept=rng.normal(size=n_notes),
        rater_factor=rng.normal(size=n_raters),
        rater_intercept=rng.normal(size=n_raters),
        rater_reputation=rng.uniform(0.0, 2.0, n_raters),
        global_intercept=np.array([-1.0]),
    )
    pen = lm.Penalty(1e-4, 2e-4, 3e-4, 4e-4, 5e-4, 1e-3)
    return note, rater, target, weight, p, pen


def test_exp_and_log1p_match_numpy_to_a_few_ulps():
    rng = np.random.default_rng(0)
    x = -np.concatenate([np.linspace(0.0, 708.0, 400_001), rng.exponential(3.0, 100_000)])
    x = x[x >= -708.0]
    np.testing.assert_allclose(K.exp_neg(x), np.exp(x), rtol=1e-15, atol=0)
    y = np.concatenate([np.linspace(0.0, 1.0, 400_001), np.exp(-np.linspace(0.0, 700.0, 10_001))])
    np.testing.assert_allclose(K.log1p01(y), np.log1p(y), rtol=1e-15, atol=0)
    assert K.exp_neg(np.array([-1e6]))[0] < 1e-300
    assert np.isnan(K.exp_neg(np.array([np.nan]))[0])


def test_sub_blocks_cover_the_raters_in_whole_balanced_slices():
    rng = np.random.default_rng(3)
    counts = rng.integers(0, 50, 20_000)
    counts[5] = 3 * K.SUB  # one rater larger than a sub-block
    indptr = np.concatenate([[0], np.cumsum(counts)])
    sub, chunk = K.sub_blocks(indptr)
    assert sub[0] == 0 and sub[-1] == counts.shape[0] and np.all(np.diff(sub) > 0)
    assert chunk.shape[0] == K.CHUNKS + 1 and chunk[0] == 0 and chunk[-1] == sub.shape[0] - 1
    assert np.all(np.diff(chunk) >= 0)
    per_chunk = np.diff(indptr[sub[chunk]])
    assert per_chunk.sum() == counts.sum()
    assert per_chunk.max() < counts.sum() / K.CHUNKS + 4 * K.SUB
    empty_sub, empty_chunk = K.sub_blocks(np.zeros(1, dtype=np.int64))
    assert empty_sub.tolist() == [0] and empty_chunk.tolist() == [0] * (K.CHUNKS + 1)
    assert K.scratch_width(indptr, sub) == np.diff(indptr[sub]).max() >= 3 * K.SUB
    assert K.scratch_width(np.zeros(1, dtype=np.int64), empty_sub) == 0


def test_sub_blocks_cut_the_same_slices_whatever_the_piece():
    rng = np.random.default_rng(4)
    counts = rng.integers(0, 60, 30_000)
    counts[7] = 2 * K.SUB
    indptr = np.concatenate([[0], np.cumsum(counts)])
    grid_sub, grid_chunk = K.sub_blocks(indptr, K.SUB)
    for piece in (K.PIECE, 100, 7 * K.SUB):
        sub, chunk = K.sub_blocks(indptr, piece)
        assert np.array_equal(sub[chunk], grid_sub[grid_chunk]), piece  # the same slices
        assert sub[0] == 0 and sub[-1] == counts.shape[0] and np.all(np.diff(sub) > 0)
    sub, _ = K.sub_blocks(indptr)
    sizes = np.diff(indptr[sub])
    assert np.median(sizes) < 2 * K.PIECE < K.SUB and sizes.max() < 2 * K.SUB + K.PIECE


def test_pass_gives_the_same_bytes_in_cache_sized_pieces_as_on_the_slice_grid():
    note, rater, target, weight, p, _ = _problem(5)
    lay = lm.layout(note, rater, p.note_factor.shape[0], p.rater_factor.shape[0])
    sub, chunk = K.sub_blocks(lay.rater_indptr, K.SUB)
    work = np.empty((K.CHUNKS, 3, K.scratch_width(lay.rater_indptr, sub)))
    grid = dataclasses.replace(lay, sub_ptr=sub, chunk_ptr=chunk, work=work)
    assert lay.sub_ptr.shape[0] > 2 * sub.shape[0]  # the default cuts finer
    sw = lay.signed_weights(target, weight)
    runs = []
    for layout in (lay, grid):
        grads = {b: np.empty_like(getattr(p, b)) for b in lm.BLOCKS}
        runs.append((lm.layout_gradient(layout, sw, p, grads, want_loss=True), grads))
    assert runs[0][0] == runs[1][0]
    for b in lm.BLOCKS:
        assert runs[0][1][b].tobytes() == runs[1][1][b].tobytes(), b


@pytest.mark.parametrize("seed", [0, 1])
def test_fused_pass_matches_numpy_twin_and_is_thread_independent(seed):
    note, rater, target, weight, p, pen = _problem(seed)
    loss_np, grads_np = lm.gradient_np(note, rater, target, weight, p, pen)
    before = numba.get_num_threads()
    runs = []
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            runs.append(lm.gradient(note, rater, target, weight, p, pen))
    finally:
        numba.set_num_threads(before)
    loss, grads = runs[0]
    assert loss == pytest.approx(loss_np, rel=1e-12)
    for block in lm.BLOCKS:
        np.testing.assert_allclose(grads[block], grads_np[block], rtol=1e-9, atol=1e-17, err_msg=block)
        for other in runs[1:]:
            assert other[1][block].tobytes() == grads[block].tobytes(), block
    assert all(other[0] == loss for other in runs[1:])


def _fit_adam_np(note, rater, target, weight, init, pen, trainable, s):
    """The optimizer in plain numpy over ``gradient_np`` with the loss every epoch: the twin of
    ``fit_adam`` (which evaluates the loss only when the stopping rule reads it)."""
    p = init.copy()
    m = {b: np.zeros_like(getattr(p, b)) for b in trainable}
    v = {b: np.zeros_like(getattr(p, b)) for b in trainable}
    prior, epoch, loss = None, 0, float("nan")
    while epoch <= s.max_epochs:
        loss, grads = lm.gradient_np(note, rater, target, weight, p, pen)
        if epoch % s.check_every == 0:
            if prior is not None and abs(prior - loss) < s.tolerance:
                break
            prior = loss
        t = epoch + 1
        for b in trainable:
            m[b] = s.beta1 * m[b] + (1 - s.beta1) * grads[b]
            v[b] = s.beta2 * v[b] + (1 - s.beta2) * grads[b] ** 2
            denom = np.sqrt(v[b]) / np.sqrt(1 - s.beta2**t) + s.eps
            setattr(p, b, getattr(p, b) - s.learning_rate / (1 - s.beta1**t) * m[b] / denom)
        epoch += 1
    return p, loss, epoch


def test_fit_adam_follows_its_numpy_twin_and_a_prepared_layout_changes_nothing():
    note, rater, target, weight, p, pen = _problem(2, r=30_000, n_notes=300, n_raters=1_500)
    s = lm.AdamSettings(learning_rate=0.05, max_epochs=200, tolerance=1e-4, check_every=5)
    trainable = ("note_factor", "note_intercept", "rater_intercept", "global_intercept")
    fit, loss, epochs = lm.fit_adam(note, rater, target, weight, p, pen, trainable, s)
    ref, ref_loss, ref_epochs = _fit_adam_np(note, rater, target, weight, p, pen, trainable, s)
    assert epochs == ref_epochs < s.max_epochs  # the stopping rule fired, on the same epoch
    assert loss == pytest.approx(ref_loss, rel=1e-10)
    for block in lm.BLOCKS:
        np.testing.assert_allclose(getattr(fit, block), getattr(ref, block), rtol=1e-8, atol=1e-10)
    lay = lm.layout(note, rater, 300, 1_500)
    again, _, _ = lm.fit_adam(note, rater, target, weight, p, pen, trainable, s, prepared=lay)
    twice, _, _ = lm.fit_adam(note, rater, target, weight, p, pen, trainable, s, prepared=lay)
    for block in lm.BLOCKS:
        same = {getattr(q, block).tobytes() for q in (fit, again, twice)}
        assert len(same) == 1, block


@pytest.mark.parametrize("trainable", [lm.BLOCKS, ("note_intercept", "rater_intercept")])
def test_class_weights_give_the_per_rating_weights_bytes_for_any_thread_count(trainable):
    """Two class constants as a bool (``ClassWeights``) are the float64 signed weights they stand
    for: same fit, same bytes, serial or parallel."""
    note, rater, target, _, p, pen = _problem(6, r=40_000, n_notes=400, n_raters=2_000)
    weight = np.where(target == 1.0, 7.0, 1.0)
    lay = lm.layout(note, rater, 400, 2_000)
    r = lay.n_ratings
    cw = lm.ClassWeights(target[lay.order] == 1.0, -(7.0 / r), 1.0 / r)
    s = lm.AdamSettings(learning_rate=0.05, max_epochs=40, tolerance=1e-6, check_every=5)
    ref = lm.fit_adam_signed(lay, lay.signed_weights(target, weight), p, pen, trainable, s)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            fit = lm.fit_adam_signed(lay, cw, p, pen, trainable, s)
            assert fit[1:] == ref[1:]
            for block in lm.BLOCKS:
                assert getattr(fit[0], block).tobytes() == getattr(ref[0], block).tobytes(), block
    finally:
        numba.set_num_threads(before)
    with pytest.raises(ValueError, match="layout"):
        lm.fit_adam_signed(lay, lm.ClassWeights(cw.positive[:-1], -1.0, 1.0), p, pen, trainable, s)


@pytest.mark.parametrize(
    ("trainable", "by_note"),
    [(lm.BLOCKS, False), (("note_intercept",), False), (("note_intercept",), True)],
)
def test_factored_weights_give_their_materialized_bytes_for_any_thread_count(trainable, by_note):
    """Weights formed in the pass from a rater term per class and a note term
    (``FactoredWeights``) are the float64 weights they stand for: same fit, same bytes, on the
    rater pass and the note pass, serial or parallel."""
    note, rater, target, _, p, pen = _problem(7, r=40_000, n_notes=400, n_raters=2_000)
    lay = lm.layout(note, rater, 400, 2_000)
    rng = np.random.default_rng(7)
    per_rater = rng.uniform(0.1, 2.0, 2_000)
    rater_w = np.stack([per_rater / 1.1, (500.0 * per_rater) / 1.1], axis=1)
    pos = target[lay.order] == 1.0
    fw = lm.FactoredWeights(pos, rater_w, rng.uniform(0.01, 1.0, 400), float(lay.n_ratings))
    sw = fw.materialize(lay)
    # the weights by hand, in rating_weights' order: class × rater term ÷ norm, × note term, ÷ R
    ln, lr = lay.note.astype(np.int64), np.repeat(np.arange(2_000), np.diff(lay.rater_indptr))
    by_hand = np.where(pos, rater_w[lr, 1], rater_w[lr, 0]) * fw.note[ln] / lay.n_ratings
    assert sw.tobytes() == np.where(pos, -by_hand, by_hand).tobytes()
    s = lm.AdamSettings(learning_rate=0.05, max_epochs=40, tolerance=1e-6, check_every=5)
    ref = lm.fit_adam_signed(lay, sw, p, pen, trainable, s, by_note=by_note)
    before = numba.get_num_threads()
    try:
        for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            fit = lm.fit_adam_signed(lay, fw, p, pen, trainable, s, by_note=by_note)
            assert fit[1:] == ref[1:]
            for block in lm.BLOCKS:
                assert getattr(fit[0], block).tobytes() == getattr(ref[0], block).tobytes(), block
    finally:
        numba.set_num_threads(before)
    grads = [{b: np.empty_like(getattr(p, b)) for b in lm.BLOCKS} for _ in range(2)]
    losses = [lm.layout_gradient(lay, w, p, g, want_loss=True) for w, g in zip((sw, fw), grads, strict=True)]
    assert losses[0] == losses[1]
    for b in lm.BLOCKS:
        assert grads[0][b].tobytes() == grads[1][b].tobytes(), b
    with pytest.raises(ValueError, match="factored"):
        lm.fit_adam_signed(lay, dataclasses.replace(fw, note=fw.note[:-1]), p, pen, trainable, s)


def test_fit_adam_rejects_bad_targets_and_mismatched_layouts():
    note, rater, target, weight, p, pen = _problem(4, r=2_000, n_notes=50, n_raters=100)
    with pytest.raises(ValueError, match="0 or 1"):
        lm.fit_adam(note, rater, target * 0.5, weight, p, pen, ("note_intercept",))
    other = lm.layout(note[:-1], rater[:-1], 50, 100)
    with pytest.raises(ValueError, match="layout"):
        lm.fit_adam(note, rater, target, weight, p, pen, ("note_intercept",), prepared=other)


def test_compact_and_layout_order_match_their_sorting_twins():
    rng = np.random.default_rng(5)
    idx = rng.integers(0, 500, 10_000) * 3  # gaps: most indices absent
    present, local = lm.compact(idx, 1_500)
    ref_present, ref_local = np.unique(idx, return_inverse=True)
    assert present.tolist() == ref_present.tolist() and local.tolist() == ref_local.tolist()
    lay = lm.layout(rng.integers(0, 40, idx.shape[0]), idx, 40, 1_500)
    assert lay.order.tolist() == np.argsort(idx, kind="stable").tolist()


def _python_loop(note, rater, target, weight, init, pen, trainable, s):
    """``fit_adam``'s epoch loop as it was written in Python before it moved into numba
    (``logistic_mf._run_nb``), step for step: the jitted loop must give these bytes."""
    from bridgewatch.scoring.mf_kernels import sum_squares

    p = init.copy()
    lay = lm.layout(note, rater, p.note_factor.shape[0], p.rater_factor.shape[0])
    sw = lay.signed_weights(np.asarray(target, dtype=np.float64), weight)
    trainable = tuple(b for b in lm.BLOCKS if b in trainable)
    grads = {b: np.empty_like(getattr(p, b)) for b in lm.BLOCKS}
    m = {b: np.zeros_like(getattr(p, b)) for b in trainable}
    v = {b: np.zeros_like(getattr(p, b)) for b in trainable}
    step = 0

    def evaluate(want_loss):
        data = lm.layout_gradient(lay, sw, p, grads, want_loss=want_loss)
        for b in trainable:
            K.add_scaled(grads[b], 2.0 * getattr(pen, b), getattr(p, b))
        return data + lm.penalty_loss(p, pen) if want_loss else float("nan")

    def adam_step():
        nonlocal step
        step += 1
        scale = 1.0
        if s.clip_norm is not None:
            total = np.sqrt(sum(sum_squares(grads[b]) for b in trainable))
            if total > s.clip_norm:
                scale = s.clip_norm / (total + 1e-6)
        lr_bc1 = s.learning_rate / (1.0 - s.beta1**step)
        sqrt_bc2 = float(np.sqrt(1.0 - s.beta2**step))
        for b in trainable:
            K.adam_nb(getattr(p, b), grads[b], m[b], v[b], scale, s.beta1, s.beta2, lr_bc1, sqrt_bc2, s.eps)

    epoch = 0
    if s.stop == "periodic":
        prior, loss = None, float("nan")
        while epoch <= s.max_epochs:
            check = s.tolerance > 0 and epoch % s.check_every == 0
            loss = evaluate(check or epoch == s.max_epochs)
            if check:
                if prior is not None and abs(prior - loss) < s.tolerance:
                    break
                prior = loss
            adam_step()
            epoch += 1
        return p, loss, epoch
    prev, loss, rising = 1e10, evaluate(True), False
    while abs(loss - prev) > s.tolerance and not rising and epoch < s.max_epochs:
        prev = loss
        adam_step()
        loss = evaluate(True)
        epoch += 1
        rising = epoch > 100 and loss > prev
    return p, loss, epoch


@pytest.mark.parametrize(
    "settings, trainable",
    [
        (
            lm.AdamSettings(learning_rate=0.05, max_epochs=200, tolerance=1e-4, check_every=5),
            ("note_factor",),
        ),
        (lm.AdamSettings(learning_rate=0.2, max_epochs=40, tolerance=0.0), lm.BLOCKS),
        (
            lm.AdamSettings(learning_rate=0.1, max_epochs=300, tolerance=1e-7, stop="mf", clip_norm=1.0),
            ("note_factor", "note_intercept", "rater_intercept", "global_intercept"),
        ),
        (
            lm.AdamSettings(learning_rate=0.3, max_epochs=60, tolerance=1e-6, check_every=3, clip_norm=0.5),
            ("note_intercept", "rater_reputation"),
        ),
    ],
)
def test_jitted_epoch_loop_gives_the_python_loops_bytes(settings, trainable):
    """The rater pass to the loss's bytes; ``fit_adam``'s own choice (the note pass when only
    note blocks train) to the parameters' bytes and the epochs, its loss summed note-major."""
    note, rater, target, weight, p, pen = _problem(3, r=8_000, n_notes=150, n_raters=600)
    lay = lm.layout(note, rater, 150, 600)
    sw = lay.signed_weights(target, weight)
    fit, loss, epochs = lm.fit_adam_signed(lay, sw, p, pen, trainable, settings, by_note=False)
    ref, ref_loss, ref_epochs = _python_loop(note, rater, target, weight, p, pen, trainable, settings)
    assert epochs == ref_epochs > 3
    assert np.float64(loss).tobytes() == np.float64(ref_loss).tobytes()
    chosen, chosen_loss, chosen_epochs = lm.fit_adam(note, rater, target, weight, p, pen, trainable, settings)
    assert chosen_epochs == epochs and chosen_loss == pytest.approx(loss, rel=1e-12)
    for block in lm.BLOCKS:
        assert getattr(fit, block).tobytes() == getattr(ref, block).tobytes(), block
        assert getattr(chosen, block).tobytes() == getattr(ref, block).tobytes(), block

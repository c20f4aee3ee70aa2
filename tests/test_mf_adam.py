"""The reference's optimizer for prescoring fits: gradients, first step, stopping rule, determinism."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from bridgewatch.scoring import mf_adam_notes
from bridgewatch.scoring.config import MFConfig
from bridgewatch.scoring.mf import build_problem, fit_mf, objective, penalties
from bridgewatch.scoring.mf_adam import _loss_and_grads, adam_fit
from bridgewatch.scoring.mf_adam_kernels import adam_layout
from bridgewatch.scoring.mf_adam_notes import fit_notes, fit_problem_notes
from test_mf import planted

CFG = MFConfig()
LAM = np.array([0.03, 0.15, 0.03, 0.15, 0.15, 0.0])
MEAN = np.zeros(2)  # penalties as means over the fit's raters and notes


def loss_and_grads(p, weight, *args):
    """``_loss_and_grads`` over the problem's ratings (``weight`` None: unweighted)."""
    lay = adam_layout(p.note, p.rater, p.value, p.n_notes, p.n_raters, 1, weight)
    return _loss_and_grads(lay, *args)


def start(p, seed=0):
    rng = np.random.default_rng(seed)
    return (
        0.05,
        rng.normal(0, 0.1, p.n_notes),
        rng.normal(0, 0.3, (p.n_notes, 1)),
        rng.normal(0, 0.1, p.n_raters),
        rng.normal(0, 0.3, (p.n_raters, 1)),
    )


def _check_gradients(objective_now, arrays, grads, middle: int, tol: float, h: float = 1e-6) -> None:
    """Central differences of ``objective_now()`` (which reads ``arrays`` in place) against
    ``grads`` at the first, ``middle``-th and last entry of each array."""
    for arr, g in zip(arrays, grads, strict=True):
        flat, gflat = arr.ravel(), g.ravel()
        for j in (0, middle, flat.shape[0] - 1):
            old = flat[j]
            flat[j] = old + h
            up = objective_now()
            flat[j] = old - h
            down = objective_now()
            flat[j] = old
            assert abs((up - down) / (2 * h) - gflat[j]) < tol


def test_loss_is_the_mean_form_objective_and_gradients_match_finite_differences():
    m, _ = planted(n_notes=30, n_raters=60, n_ratings=900)
    p = build_problem(m)
    mu, ni, nf, ri, rf = start(p)
    grads = [np.zeros_like(a) for a in (ni, nf, ri, rf)]
    loss, g_mu = loss_and_grads(p, None, mu, ni, nf, ri, rf, LAM, MEAN, True, *grads)
    assert np.isclose(loss, objective(p, penalties(p, CFG), mu, ni, nf, ri, rf), rtol=1e-12)
    _check_gradients(
        lambda: objective(p, penalties(p, CFG), mu, ni, nf, ri, rf), (ni, nf, ri, rf), grads, 7, 1e-7
    )
    h = 1e-6
    up = objective(p, penalties(p, CFG), mu + h, ni, nf, ri, rf)
    down = objective(p, penalties(p, CFG), mu - h, ni, nf, ri, rf)
    assert abs((up - down) / (2 * h) - g_mu) < 1e-7


def test_first_epoch_is_one_clipped_adam_step():
    """Adam's first step moves each parameter by lr against the sign of its gradient (bias
    correction makes m/√v = g/|g|); clipping rescales g but cannot change that."""
    m, _ = planted(n_notes=30, n_raters=60, n_ratings=900)
    p = build_problem(m)
    s = start(p)
    grads = [np.zeros_like(a) for a in s[1:]]
    _, g_mu = loss_and_grads(p, None, *s, LAM, MEAN, True, *grads)
    cfg = dataclasses.replace(CFG, adam_max_epochs=1)
    (mu, ni, nf, ri, rf), epochs = adam_fit(p.note, p.rater, p.value, s, cfg, 0.2)
    assert epochs == 1
    for new, old, g in zip((ni, nf, ri, rf), s[1:], grads, strict=True):
        big = np.abs(g) > 1e-4  # Adam's ε only matters for vanishing gradients
        assert big.sum() > 5 and np.allclose((new - old)[big], -0.2 * np.sign(g[big]), atol=1e-4)
    assert np.isclose(mu - s[0], -0.2 * np.sign(g_mu), atol=1e-6)


def test_stops_near_but_not_at_the_exact_optimum_and_is_deterministic():
    m, _ = planted()
    p = build_problem(m)
    exact = fit_mf(p, dataclasses.replace(CFG, solver="als", tolerance=1e-12, max_iterations=5000), seed=1)
    a = fit_mf(p, CFG, seed=1)
    b = fit_mf(p, CFG, seed=1)
    assert a.converged and 20 < a.iterations < CFG.adam_max_epochs
    assert exact.loss <= a.loss < exact.loss + 1e-3
    assert a.params.note_intercept.tobytes() == b.params.note_intercept.tobytes()
    ok = np.isfinite(exact.params.note_intercept)
    assert np.corrcoef(a.params.note_intercept[ok], exact.params.note_intercept[ok])[0, 1] > 0.99


def test_warm_start_uses_the_smaller_learning_rate_and_mu_only_when_asked():
    m, _ = planted()
    p = build_problem(m)
    cold = fit_mf(p, CFG, seed=1)
    warm = fit_mf(p, CFG, seed=1, init=cold.params)
    no_mu = fit_mf(p, CFG, seed=1, init=cold.params, init_mu=False)
    # Started at its own end point, the fit barely moves; from μ = 0 it has to travel.
    assert np.nanmax(np.abs(warm.params.note_intercept - cold.params.note_intercept)) < 0.02
    assert no_mu.iterations > warm.iterations


def _weighted_objective(p, w, lam, rows, mu, ni, nf, ri, rf):
    """The loss spelled out: mean(w·err²) + penalties over ``rows`` (≤ 0: means) + diamond."""
    err = mu + ri[p.rater] + ni[p.note] + (rf[p.rater] * nf[p.note]).sum(1) - p.value
    den_u = rows[0] if rows[0] > 0 else ri.size
    den_n = rows[1] if rows[1] > 0 else ni.size
    return (
        np.mean(w * err**2)
        + lam[0] * np.sum(rf**2) / den_u + lam[1] * np.sum(ri**2) / den_u
        + lam[2] * np.sum(nf**2) / den_n + lam[3] * np.sum(ni**2) / den_n
        + lam[4] * mu**2 + lam[5] * np.sum(np.abs(nf[:, 0] * ni)) / den_n
    )  # fmt: skip


def test_weighted_loss_ratio_and_diamond_gradients_match_finite_differences():
    """Group 14's objective (§2.9, §2.2): per-rating weights, note penalties over a simulated note
    count, and λ_diamond·|f_n·i_n|."""
    m, _ = planted(n_notes=30, n_raters=60, n_ratings=900)
    p = build_problem(m)
    mu, ni, nf, ri, rf = start(p, seed=3)
    w = np.random.default_rng(4).uniform(0.2, 2.0, p.n_ratings)
    lam = np.array([0.0075, 0.15, 0.01, 0.9, 0.15, 0.75])
    rows = np.array([0.0, 17.5])
    grads = [np.zeros_like(a) for a in (ni, nf, ri, rf)]
    loss, _ = loss_and_grads(p, w, mu, ni, nf, ri, rf, lam, rows, True, *grads)
    assert np.isclose(loss, _weighted_objective(p, w, lam, rows, mu, ni, nf, ri, rf), rtol=1e-12)
    _check_gradients(
        lambda: _weighted_objective(p, w, lam, rows, mu, ni, nf, ri, rf), (ni, nf, ri, rf), grads, 5, 1e-6
    )


def test_normalized_weights_balance_factor_sides_and_damp_heavy_raters():
    from bridgewatch.scoring.mf_normalized import weights_for

    cfg = dataclasses.replace(CFG, normalized_loss=True)
    rater = np.array([0, 0, 0, 1, 2])  # rater 0: factor > 0; raters 1, 2: ≤ 0
    note = np.array([0, 1, 2, 0, 1])
    w = weights_for(note, rater, np.array([0.3, -0.1, 0.0]), cfg)
    sign = np.array([5 / 6, 5 / 6, 5 / 6, 1.25, 1.25])  # positives ×2/3, then total kept at 5
    np.testing.assert_allclose(w, sign * np.array([2.5, 2.5, 2.5, 1.25, 1.25]) ** -0.25)


def test_normalized_fit_restarts_notes_and_keeps_the_weighted_optimum_close():
    """The second fit of §2.9 starts again from zero intercepts and fresh note factors, then fits
    the weighted loss; with both weights one it lands where a plain fit of the same start lands."""
    m, _ = planted(n_notes=30, n_raters=60, n_ratings=900)
    p = build_problem(m)
    plain = fit_mf(p, CFG, seed=1)
    norm = dataclasses.replace(CFG, normalized_loss=True, norm_global_sign=False, norm_rater_exp=0.0)
    twice = fit_mf(p, norm, seed=1)
    assert twice.iterations > plain.iterations  # two fits ran
    np.testing.assert_allclose(twice.params.note_intercept, plain.params.note_intercept, atol=1e-9)


def python_loop(note, rater, value, start_, config, lr, *, use_mu=True, weights=None, note_rows=None,
                notes_only=False):  # fmt: skip
    """The epoch loop as it was written in Python before it moved into numba (``mf_adam._epochs``),
    step for step: the jitted loop must give these bytes."""
    from bridgewatch.scoring.mf_adam import _adam_update
    from bridgewatch.scoring.mf_kernels import sum_squares

    mu = np.array([float(start_[0]) if use_mu else 0.0])
    blocks = [np.array(a, dtype=np.float64) for a in start_[1:]]
    ni, nf, ri, rf = blocks
    grads = [np.zeros_like(b) for b in blocks]
    g_mu = np.zeros(1)
    first = [np.zeros_like(b) for b in blocks] + [np.zeros(1)]
    second = [np.zeros_like(b) for b in blocks] + [np.zeros(1)]
    c = config
    lam = np.array([c.user_factor_lambda, c.user_intercept_lambda, c.note_factor_lambda,
                    c.note_intercept_lambda, c.global_intercept_lambda, c.diamond_lambda])  # fmt: skip
    rows = np.array([0.0, 0.0 if note_rows is None else float(note_rows)])
    lay = adam_layout(note, rater, value, ni.shape[0], ri.shape[0], nf.shape[1], weights)

    def evaluate() -> float:
        loss, gm = _loss_and_grads(lay, mu[0], ni, nf, ri, rf, lam, rows, use_mu, *grads)
        g_mu[0] = gm
        return loss

    prev, loss, epoch = 1e10, evaluate(), 0
    while abs(loss - prev) > c.adam_convergence and not (epoch > 100 and loss > prev):
        if epoch >= c.adam_max_epochs:
            break
        prev = loss
        trained = grads[:2] if notes_only else grads
        mu_sq = 0.0 if notes_only else float(g_mu[0] ** 2)
        total = np.sqrt(sum(sum_squares(g.ravel()) for g in trained) + mu_sq)
        coef = min(1.0, c.adam_clip_norm / (total + 1e-6))
        t = epoch + 1
        lr_t = lr / (1.0 - 0.9**t)
        bc2_sqrt = np.sqrt(1.0 - 0.999**t)
        for i, (p, g, m_, v_) in enumerate(zip([*blocks, mu], [*grads, g_mu], first, second, strict=True)):
            if (p is mu and not use_mu) or (notes_only and i >= 2):
                continue
            _adam_update(p, g, m_, v_, coef, lr_t, bc2_sqrt)
        loss = evaluate()
        epoch += 1
    return (float(mu[0]), ni, nf, ri, rf), epoch


def test_jitted_epoch_loop_gives_the_python_loops_bytes():
    m, _ = planted(n_notes=40, n_raters=90, n_ratings=1500)
    p = build_problem(m)
    w = np.random.default_rng(3).random(p.n_ratings)
    cases = [
        (CFG, {}),
        (CFG, {"weights": w}),
        (dataclasses.replace(CFG, diamond_lambda=0.03), {"use_global_intercept": False}),
        (dataclasses.replace(CFG, adam_max_epochs=9), {}),
    ]
    for cfg, kw in cases:
        got, n_got = adam_fit(p.note, p.rater, p.value, start(p, 4), cfg, 0.2, **kw)
        ref_kw = {("use_mu" if k == "use_global_intercept" else k): v for k, v in kw.items()}
        want, n_want = python_loop(p.note, p.rater, p.value, start(p, 4), cfg, 0.2, **ref_kw)
        assert n_got == n_want > 5 and got[0] == want[0]
        assert all(a.tobytes() == b.tobytes() for a, b in zip(got[1:], want[1:], strict=True))


def _two_factor_start(p, seed):
    rng = np.random.default_rng(seed)
    mu, ni, _, ri, _ = start(p, seed)
    return mu, ni, rng.normal(0, 0.3, (p.n_notes, 2)), ri, rng.normal(0, 0.3, (p.n_raters, 2))


@pytest.mark.parametrize(
    ("cfg", "kw", "k"),
    [
        (CFG, {"note_rows": 77.0}, 1),
        (CFG, {}, 1),
        (CFG, {"weights": True, "note_rows": 50.0}, 1),
        (dataclasses.replace(CFG, diamond_lambda=0.03), {"use_global_intercept": False}, 1),
        (CFG, {"note_rows": 77.0}, 2),
        (dataclasses.replace(CFG, diamond_lambda=0.03), {"weights": True}, 2),
        (dataclasses.replace(CFG, adam_max_epochs=9), {}, 1),
        (CFG, {"shuffled": True, "weights": True}, 1),
        (CFG, {"shuffled": True, "note_rows": 77.0}, 2),
    ],
)
def test_note_refit_gives_the_python_loops_bytes(cfg, kw, k):
    """Final scoring's refit, ratings grouped by note (``mf_adam_notes``), against the Python loop
    over the rater-grouped pass with only the notes trained: the same epochs and bytes, from
    ratings in a problem's (note, rater) order or shuffled. The problem's raters fall in all of
    the pass's slices, and notes 40-44 have no ratings."""
    m, _ = planted(n_notes=40, n_raters=90, n_ratings=1500)
    p = build_problem(m)
    kw = dict(kw)
    order = np.random.default_rng(5).permutation(p.n_ratings) if kw.pop("shuffled", False) else slice(None)
    note, rater, value = p.note[order], p.rater[order], p.value[order]
    if kw.get("weights") is True:
        kw["weights"] = np.random.default_rng(3).random(p.n_ratings)
    s = start(p, 4) if k == 1 else _two_factor_start(p, 4)
    s = (s[0], np.r_[s[1], np.full(5, 0.2)], np.r_[s[2], np.full((5, k), -0.1)], s[3], s[4])
    got, n_got = fit_notes(note, rater, value, s, cfg, 0.2, **kw)
    ref_kw = {("use_mu" if key == "use_global_intercept" else key): v for key, v in kw.items()}
    want, n_want = python_loop(note, rater, value, s, cfg, 0.2, notes_only=True, **ref_kw)
    assert n_got == n_want > 5 and got[0] == want[0]
    assert all(a.tobytes() == b.tobytes() for a, b in zip(got[1:], want[1:], strict=True))
    assert got[3].tobytes() == np.asarray(s[3]).tobytes()  # the raters stay frozen


@pytest.mark.parametrize("k", [1, 2])
@pytest.mark.parametrize("pseudo", [None, -1.3, 0.0, 2.1])
@pytest.mark.parametrize("dense_share", [0.0, 2.0])
def test_note_refit_through_the_selection_gives_the_compact_arrays_bytes(k, pseudo, dense_share, monkeypatch):
    """``fit_problem_notes`` reads a problem's ratings from the matrix through its selection (in
    place, or gathered first: ``dense_share`` forces either); it gives ``fit_notes``' epochs and
    bytes over the problem's own arrays, and with a pseudo-rater those over the arrays with one
    helpful rating a note appended (§5, the old refit's form). The selection drops ~30% of
    ratings and whole raters (rater indices differ from the compact ones; raters outside the
    fit have NaN parameters), and a fit-sized matrix puts raters in every one of the pass's slices."""
    monkeypatch.setattr(mf_adam_notes, "DENSE_SHARE", dense_share)
    m, _ = planted(n_notes=60, n_raters=120, n_ratings=3000)
    rng = np.random.default_rng(11)
    keep = (rng.random(m.n_ratings) < 0.7) & (m.rater % 7 != 3)
    p = build_problem(m, keep)
    assert p.n_raters < m.n_raters and p.n_ratings < keep.size
    ri_full = rng.normal(0, 0.2, m.n_raters)
    rf_full = rng.normal(0, 0.4, (m.n_raters, k))
    ri_full[m.rater[~keep]] = np.where(np.isin(m.rater[~keep], p.rater_full), ri_full[m.rater[~keep]], np.nan)
    ni0, nf0 = rng.normal(0, 0.1, p.n_notes), rng.normal(0, 0.2, (p.n_notes, k))
    ri, rf = ri_full[p.rater_full], rf_full[p.rater_full]
    note, rater, value = p.note, p.rater, p.value
    extra = None
    if pseudo is not None:
        extra = (-0.4, np.r_[pseudo, np.zeros(k - 1)])
        n = p.n_notes
        note = np.concatenate([note, np.arange(n, dtype=note.dtype)])
        rater = np.concatenate([rater, np.full(n, p.n_raters, dtype=rater.dtype)])
        value = np.concatenate([value, np.ones(n)])
        ri, rf = np.append(ri, extra[0]), np.vstack([rf, extra[1][None, :]])
    want, n_want = fit_notes(note, rater, value, (0.07, ni0, nf0, ri, rf), CFG, 0.2, note_rows=55.0)
    kw = {"note_rows": 55.0, "pseudo": extra}
    ni, nf, n_got = fit_problem_notes(p, 0.07, (ni0, nf0), ri_full, rf_full, CFG, 0.2, **kw)
    assert n_got == n_want > 5
    assert ni.tobytes() == want[1].tobytes() and nf.tobytes() == want[2].tobytes()


def test_jitted_bias_corrections_are_pythons_float_powers():
    """The loop's ``math.pow(β, t)`` in numba and CPython's ``β ** t`` are both libm's pow."""
    import math

    import numba

    @numba.njit
    def powers(base, n):
        out = np.empty(n)
        for t in range(1, n + 1):
            out[t - 1] = math.pow(base, float(t))
        return out

    for base in (0.9, 0.999):
        want = np.array([base**t for t in range(1, 20_001)])
        assert powers(base, 20_000).tobytes() == want.tobytes()

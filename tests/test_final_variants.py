"""Final scoring's robustness variants and counts follow the reference's per-subset rules."""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch.errors import ConfigError
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring.config import ScoringConfig, with_overrides
from bridgewatch.scoring.final_scoring import score_final
from bridgewatch.scoring.scorer import prepare_inputs, prescore, scope_mask, scored_raters
from bridgewatch.scoring.scorer_specs import core
from test_scorer import community


@pytest.fixture(scope="module")
def final():
    m, notes, nsh, enroll = community(seed=2)
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg)
    pre = prescore(inputs, core(), cfg, seed=42)
    return inputs, pre, score_final(inputs, core(), pre, cfg)


def test_population_sampled_intercept_needs_five_sampled_ratings(final):
    inputs, _, fin = final
    m = inputs.matrix
    scope, _ = scope_mask(inputs, core())
    sampled = np.bincount(m.note[scope & m.population_sampled], minlength=m.n_notes)
    pop = fin["coreNoteInterceptPopulationSampled"].to_numpy()
    assert (sampled < 5).any() and (sampled >= 5).any()  # the community has both kinds
    assert np.isnan(pop[sampled < 5]).all()
    has_fit = ~np.isnan(fin["coreNoteIntercept"].to_numpy())
    assert np.isfinite(pop[(sampled >= 10) & has_fit]).any()


def test_final_round_count_is_scope_ratings_of_scored_raters(final):
    inputs, pre, fin = final
    m = inputs.matrix
    scope, _ = scope_mask(inputs, core())
    known = scored_raters(m, pre)
    # Scored raters include those below the helpfulness threshold, so the count can exceed the
    # ratings the final fit used.
    assert (known & ~pre.helpful_raters).any()
    expected = np.bincount(m.note[scope & known[m.rater]], minlength=m.n_notes).astype(float)
    got = fin["coreNumFinalRoundRatings"].to_numpy()
    np.testing.assert_array_equal(np.nan_to_num(got), expected)
    assert np.isnan(got[expected == 0]).all()
    used = P.count_filter(m, scope, 5, 0) & pre.helpful_raters[m.rater]
    assert (np.nan_to_num(got) >= np.bincount(m.note[used], minlength=m.n_notes)).all()


def test_a_refit_on_the_final_fits_ratings_is_not_run_again_and_gives_the_same_bits(final, monkeypatch):
    # A refit whose subset drops no rating of the final fit's (here: no high-volume rater among
    # them) is that fit (``same_fit``); every column equals what running it again gives.
    from bridgewatch.scoring import final_scoring as S

    inputs, pre, _ = final
    cfg = ScoringConfig()
    calls = []
    real = S.same_fit

    def counted(*args):
        out = real(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(S, "same_fit", counted)
    shared = S.final_columns(inputs, core(), pre, cfg)
    assert any(calls)
    monkeypatch.setattr(S, "same_fit", lambda *args: None)
    refitted = S.final_columns(inputs, core(), pre, cfg)
    assert shared.keys() == refitted.keys()
    for name, column in refitted.items():
        assert np.asarray(shared[name]).tobytes() == np.asarray(column).tobytes(), name
    p = core().prefix
    assert all(
        shared[f"{p}NoteIntercept{v}"] is not shared[f"{p}NoteIntercept"]
        for v in ("NoHighVol", "NoCorrelated")
    )


def test_same_fit_only_for_the_same_ratings_and_regularization():
    from bridgewatch.scoring.rescore import same_fit

    mask = np.array([True, False, True])
    fitted = np.array([0.5, np.nan])
    out = same_fit(mask.copy(), 0.2, mask, 0.2, fitted)
    assert out is not None and out is not fitted and out.tobytes() == fitted.tobytes()
    assert same_fit(np.array([True, True, True]), 0.2, mask, 0.2, fitted) is None
    assert same_fit(mask.copy(), 10.0, mask, 0.2, fitted) is None


def test_final_solver_chooses_adam_or_the_closed_form_per_fit(final):
    """``mf.final_solver``: ``exact`` solves every note-only fit in closed form; ``exact_refits``
    keeps the reference's Adam for the fit the rules read and solves only the refits (pseudo-rater
    bounds, population-sampled) exactly, the same values as ``exact``'s."""
    inputs, pre, adam = final
    runs = {}
    for name in ("exact", "exact_refits"):
        cfg = with_overrides(ScoringConfig(), {"mf": {"final_solver": name}})
        runs[name] = score_final(inputs, core(), pre, cfg)
    exact, mixed = runs["exact"], runs["exact_refits"]

    def col(frame, name: str) -> np.ndarray:
        return frame[name].to_numpy(dtype=np.float64)

    main = "coreNoteIntercept"
    np.testing.assert_array_equal(col(mixed, main), col(adam, main))
    fitted = np.isfinite(col(adam, main))
    assert fitted.sum() > 50
    # Adam stops short of the optimum (its 1e-7 loss rule): close to it, never on it for every note.
    gap = np.abs(col(exact, main) - col(adam, main))[fitted]
    assert gap.max() < 0.05 and gap.max() > 0
    for name in ("coreNoteInterceptMin", "coreNoteInterceptMax", "coreNoteInterceptPopulationSampled"):
        np.testing.assert_array_equal(col(mixed, name), col(exact, name), err_msg=name)
        assert np.isfinite(col(exact, name)).any(), name
        assert not np.array_equal(col(exact, name), col(adam, name), equal_nan=True), name


def test_final_solver_takes_only_its_choices() -> None:
    with pytest.raises(ConfigError, match="final_solver"):
        with_overrides(ScoringConfig(), {"mf": {"final_solver": "lbfgs"}})

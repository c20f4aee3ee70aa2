"""Final scoring's robustness variants and counts follow the reference's per-subset rules."""

from __future__ import annotations

import numpy as np
import pytest

from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.scorer import prepare_inputs, prescore, scope_mask, score_final, scored_raters
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

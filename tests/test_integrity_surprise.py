"""Concerted surprise (Bridgewatch's defence against a stealth bloc) on planted and honest worlds."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.integrity.adapters import detect_integrity, integrity_tables
from bridgewatch.integrity.coordination import CoordinationParams
from bridgewatch.integrity.surprise import (
    SurpriseParams,
    benjamini_hochberg,
    note_dispersion,
    note_fits,
    note_pvalues,
    note_pvalues_numpy,
    robust_predictions,
    robust_predictions_numpy,
    surprise_filter,
    surprise_groups,
    surprising,
)
from bridgewatch.integrity.views import RATER_INTEGRITY_FILE
from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.runner import surprise_params
from bridgewatch.scoring.config import ScoringConfig, with_overrides

P = SurpriseParams()


def _world(
    seed=0, n_raters=600, n_notes=400, per_note=60, bloc=0, targets=12, participation=0.3, dissent=0.0
):
    """An honest community under the rank-1 model the detector assumes, sorted by (note, rater).

    Raters have a viewpoint ±1 (factor) and a small leniency; notes a quality and a slant; a
    rating is the logistic-noise ordinal of quality + leniency + slant·viewpoint (NH, SH, H). With
    ``bloc`` > 0 the first ``bloc`` raters of the +1 side are a stealth bloc: they rate what they
    would rate anyway, plus each target with probability ``participation`` (so they share targets,
    as a denser bloc than the evaluation's does), and turn every target rating NOT_HELPFUL. Targets
    are good notes slanted their way. With ``dissent`` > 0 the world is overdispersed: on each
    (note, side) a share of the raters, drawn from a gamma of mean ``dissent`` (shape 2), rates
    NOT_HELPFUL whatever the note (honest notes differ beyond what the rank-1 model expects).
    Returns (note, rater, value, mu, rater intercept, rater factor, members, targets)."""
    rng = np.random.default_rng(seed)
    side = np.where(np.arange(n_raters) % 2 == 0, 1.0, -1.0)
    leniency = rng.normal(0, 0.15, n_raters)
    quality = rng.normal(0.3, 0.8, n_notes)
    slant = rng.normal(0, 0.6, n_notes)
    target = np.sort(rng.choice(n_notes, targets, replace=False)) if bloc else np.zeros(0, np.int64)
    quality[target], slant[target] = 1.2, 0.8
    members = np.flatnonzero(side > 0)[:bloc]
    pairs = {(int(n), int(r)) for n in range(n_notes) for r in rng.choice(n_raters, per_note, replace=False)}
    pairs |= {(int(n), int(r)) for n in target for r in members if rng.random() < participation}
    note, rater = (np.array(x) for x in zip(*sorted(pairs), strict=True))
    z = quality[note] + leniency[rater] + slant[note] * side[rater] + rng.logistic(0, 0.3, note.shape[0])
    value = np.select([z < 0.0, z < 0.7], [0.0, 0.5], 1.0)
    if dissent:  # drawn last: the worlds without it are unchanged
        share = rng.gamma(2.0, dissent / 2.0, (n_notes, 2))
        value[rng.random(note.shape[0]) < share[note, (side[rater] > 0).astype(np.int64)]] = 0.0
    turned = np.isin(note, target) & np.isin(rater, members)
    value[turned] = 0.0
    # the rater model a first fit would give: viewpoint and leniency, on the rating scale
    return note, rater, value, 0.5, leniency / 2, side * 0.3, members, target


def _indptr(note, n_notes):
    return np.r_[0, np.cumsum(np.bincount(note, minlength=n_notes))].astype(np.int64)


def test_planted_stealth_bloc_is_found_and_set_aside():
    note, rater, value, mu, r_int, r_fac, members, target = _world(bloc=40)
    keep, group, flagged = surprise_filter(_indptr(note, 400), rater, value, mu, r_int, r_fac, P)
    assert flagged[target].sum() >= 0.75 * target.shape[0]
    # the bloc's turned ratings on flagged targets leave; few honest ratings go with them
    turned = np.isin(note, target) & np.isin(rater, members) & (value == 0.0)
    assert (~keep & turned).sum() >= 0.7 * turned.sum()
    assert (~keep & ~turned).sum() <= 0.02 * note.shape[0]
    found = np.flatnonzero(group > 0)
    assert np.isin(found, members).all() and found.shape[0] >= 0.8 * members.shape[0]
    assert group.max() == 1  # one group, numbered 1


def test_honest_worlds_flag_next_to_nothing():
    # the test is calibrated on honest disagreement: under Benjamini–Hochberg at fdr 0.1 an honest
    # world flags no note at all in at least 9 of 10 (here: 2 single notes in 6 worlds, 9 ratings each)
    flagged_notes = set_aside = 0
    for seed in range(6):
        note, rater, value, mu, r_int, r_fac, _, _ = _world(seed=seed)
        keep, group, flagged = surprise_filter(_indptr(note, 400), rater, value, mu, r_int, r_fac, P)
        assert not group.any() and flagged.sum() <= 1
        flagged_notes += int(flagged.sum())
        set_aside += int((~keep).sum())
    assert flagged_notes <= 2 and set_aside <= 20


@pytest.mark.parametrize("seed", [0, 1])
def test_an_overdispersed_honest_world_is_left_alone(seed):
    # 300 notes rated 200 times each, a gamma share (mean 10%) of each side dissenting: an honest
    # note's surprising count varies more than a Poisson of its expectation, the more the more
    # ratings it has. The Poisson test (dispersion 0, session 7's) flags dozens of these honest
    # notes; the negative binomial with the estimated dispersion flags none
    world = _world(seed, n_raters=2000, n_notes=300, per_note=200, dissent=0.1)
    note, rater, value, mu, r_int, r_fac, _, _ = world
    indptr = _indptr(note, 300)
    _, _, poisson = surprise_filter(indptr, rater, value, mu, r_int, r_fac, replace(P, dispersion=0.0))
    keep, group, flagged = surprise_filter(indptr, rater, value, mu, r_int, r_fac, P)
    assert poisson.sum() >= 30
    assert not flagged.any() and keep.all() and not group.any()


@pytest.mark.parametrize("seed", [0, 1])
def test_a_bloc_in_an_overdispersed_world_is_still_caught(seed):
    # the same overdispersed world (dissent 5%), 200 of the 1000 raters of the +1 side a bloc
    note, rater, value, mu, r_int, r_fac, members, target = _world(
        seed, n_raters=2000, n_notes=300, per_note=200, dissent=0.05, bloc=200
    )
    honest = ~np.isin(np.arange(300), target)
    indptr = _indptr(note, 300)
    _, _, poisson = surprise_filter(indptr, rater, value, mu, r_int, r_fac, replace(P, dispersion=0.0))
    keep, group, flagged = surprise_filter(indptr, rater, value, mu, r_int, r_fac, P)
    assert flagged[target].all() and (flagged & honest).sum() <= 2
    assert (poisson & honest).sum() >= 8  # what the Poisson test paid for the same targets
    turned = np.isin(note, target) & np.isin(rater, members) & (value == 0.0)
    assert (~keep & turned).sum() >= 0.9 * turned.sum()
    assert np.isin(np.flatnonzero(group > 0), members).all()


def test_dispersion_estimate_is_near_the_truth_and_robust_to_a_bloc():
    # 20,000 notes whose per-side surprise rates are gamma (α = 0.2) around their expectation;
    # side_prior 0 so that the mean is the expectation
    rng = np.random.default_rng(0)
    n = 20_000
    expect = rng.lognormal(0.5, 0.8, (2, n))
    count = rng.poisson(expect * rng.gamma(5.0, 0.2, (2, n))).astype(np.float64)
    per = np.full(n, 50)
    p = replace(P, side_prior=0.0)
    plain = replace(p, dispersion_trim=0.0)  # every note in: the moment estimate
    assert abs(note_dispersion(per, count, expect, plain) - 0.2) < 0.04
    # the 1% trim reads α low (the tail it leaves out carries much of the moment), not to 0
    trimmed = note_dispersion(per, count, expect, p)
    assert 0.12 < trimmed < 0.2
    # a bloc adds ~8 surprising ratings on one side of 2% of the notes: the moment estimate takes
    # it for honest dispersion (and would hide it), the trimmed one barely moves
    bloc = rng.choice(n, n // 50, replace=False)
    count[0, bloc] += rng.poisson(8.0, bloc.shape[0])
    assert note_dispersion(per, count, expect, plain) > 0.25
    assert abs(note_dispersion(per, count, expect, p) - trimmed) < 0.02
    # a Poisson world: no dispersion; a fixed one is returned as given
    assert note_dispersion(per, rng.poisson(expect).astype(np.float64), expect, p) < 0.01
    assert note_dispersion(per, count, expect, replace(p, dispersion=0.3)) == 0.3


def test_kernel_matches_numpy_twin():
    note, rater, value, mu, r_int, r_fac, _, _ = _world(bloc=30, seed=4)
    r_int = r_int.copy()
    r_int[7] = np.nan  # an unfitted rater neither fits nor surprises
    fast = robust_predictions(_indptr(note, 400), rater, value, mu, r_int, r_fac, P)
    slow = robust_predictions_numpy(note, rater, value, 400, mu, r_int, r_fac, P)
    np.testing.assert_allclose(fast, slow, rtol=0, atol=1e-12)
    assert surprising(fast, value, P).any() and np.isnan(fast[rater == 7]).all()
    assert not surprising(fast, value, P)[rater == 7].any()
    # ratings left out of the refit (the suspects' NOT_HELPFUL ones) are still predicted by it
    suspect = np.arange(len(r_int)) % 3 == 0
    exclude = suspect[rater] & (value == 0.0)
    fast_ex = robust_predictions(_indptr(note, 400), rater, value, mu, r_int, r_fac, P, suspect)
    slow_ex = robust_predictions_numpy(note, rater, value, 400, mu, r_int, r_fac, P, exclude)
    np.testing.assert_allclose(fast_ex, slow_ex, rtol=0, atol=1e-12)
    assert surprising(fast_ex, value, P)[exclude].any() and not np.allclose(fast, fast_ex, equal_nan=True)
    # the p-values' kernels (predictions recomputed from the note fits) against the numpy oracle
    indptr = _indptr(note, 400)
    for pred, sus, left_out in ((fast, None, None), (fast_ex, suspect, exclude)):
        fit = note_fits(indptr, rater, value, mu, r_int, r_fac, P, sus)
        for params in (P, replace(P, rater_prior=0.0, side_prior=0.0)):
            one_pass = note_pvalues(indptr, rater, value, mu, r_int, r_fac, fit, params, sus)
            oracle = note_pvalues_numpy(indptr, rater, value, pred, r_fac, params, left_out)
            np.testing.assert_allclose(one_pass, oracle, rtol=1e-9, atol=1e-300)
            assert (one_pass < 1e-3).any() and (one_pass == 1.0).any()


@pytest.mark.parametrize("seed", [0, 1])
def test_later_rounds_find_a_bloc_that_is_its_targets_camp_majority(seed):
    # 80 of the 300 raters of the +1 side, each rating a target with probability 0.3: on most
    # targets the bloc outnumbers its camp's honest raters and the first robust refit adopts it
    note, rater, value, mu, r_int, r_fac, members, target = _world(seed=seed, bloc=80, participation=0.3)
    turned = np.isin(note, target) & np.isin(rater, members) & (value == 0.0)
    indptr = _indptr(note, 400)
    keep1, group1, _ = surprise_filter(indptr, rater, value, mu, r_int, r_fac, replace(P, rounds=1))
    assert P.rounds > 1 and (~keep1 & turned).sum() <= 0.2 * turned.sum()
    # later rounds refit without the NOT_HELPFUL ratings of the raters the first one set aside
    keep, group, flagged = surprise_filter(indptr, rater, value, mu, r_int, r_fac, P)
    assert flagged[target].all() and (~keep & turned).sum() >= 0.9 * turned.sum()
    assert (~keep & ~turned).sum() <= 0.01 * note.shape[0]
    # groups come from the first round's evidence: only members, never an honest rater
    np.testing.assert_array_equal(group, group1)
    assert np.isin(np.flatnonzero(group > 0), members).all()


def test_deterministic():
    note, rater, value, mu, r_int, r_fac, _, _ = _world(bloc=40, seed=2)
    a = surprise_filter(_indptr(note, 400), rater, value, mu, r_int, r_fac, P)
    b = surprise_filter(_indptr(note, 400), rater, value, mu, r_int, r_fac, P)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_bad_input_errors():
    note, rater, value, mu, r_int, r_fac, _, _ = _world(n_notes=50, n_raters=100, per_note=10)
    indptr = _indptr(note, 50)
    with pytest.raises(ValueError, match="rater indices"):
        robust_predictions(indptr, rater + 100, value, mu, r_int, r_fac, P)
    with pytest.raises(ValueError, match="same ratings"):
        robust_predictions(indptr, rater[:-1], value[:-1], mu, r_int, r_fac, P)
    with pytest.raises(ValueError, match="same length"):
        robust_predictions(indptr, rater, value, mu, r_int, r_fac[:-1], P)
    with pytest.raises(ValueError, match="suspect"):
        robust_predictions(indptr, rater, value, mu, r_int, r_fac, P, np.zeros(3, dtype=bool))
    bads = (SurpriseParams(fdr=0.0), SurpriseParams(fdr=1.5), SurpriseParams(residual=0),
            SurpriseParams(min_group=0), SurpriseParams(rounds=0), SurpriseParams(side_prior=-1),
            SurpriseParams(dispersion=-0.1), SurpriseParams(dispersion_trim=1.0))  # fmt: skip
    for bad in bads:
        with pytest.raises(ValueError, match="surprise"):
            robust_predictions(indptr, rater, value, mu, r_int, r_fac, bad)


def test_groups_by_hand():
    # 4 notes and an unrated fifth; note 2 collects surprising ratings from raters 0, 1, 2; note 3
    # from 0, 1, 2, 3
    indptr = np.array([0, 10, 20, 30, 40, 40], dtype=np.int64)
    rater = np.tile(np.arange(10), 4)
    events = np.zeros(40, dtype=bool)
    events[[20, 21, 22, 30, 31, 32, 33]] = True
    flagged = np.array([False, False, True, True, False])
    p = SurpriseParams(min_shared=2, min_group=3)
    group = surprise_groups(indptr, rater, events, flagged, 10, p)
    np.testing.assert_array_equal(group, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])  # rater 3 shares one note only
    assert not surprise_groups(indptr, rater, events, flagged, 10, SurpriseParams(min_group=4)).any()


def test_benjamini_hochberg_by_hand():
    p = np.array([0.001, 0.025, 0.026, 0.5, 0.2, 0.0])
    tested = np.array([True, True, True, True, True, False])
    # step-up over the 5 tested, 0.05·k/5 = 0.01, 0.02, 0.03: the third passes, so the second
    # (0.025 > 0.02) is rejected with it; the untested 0.0 never is
    np.testing.assert_array_equal(benjamini_hochberg(p, tested, 0.05), [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(benjamini_hochberg(p, tested, 0.01), [1, 0, 0, 0, 0, 0])
    assert not benjamini_hochberg(p, np.zeros(6, dtype=bool), 0.5).any()


def test_one_sided_surprise_is_significant_and_a_two_sided_misfit_is_not():
    # 40 honest notes rated by 20 raters each (10 per side) whose robust prediction is 0.9; one
    # rating in 20 is a stray NOT_HELPFUL. Note 0: 8 of its +1 side turn NOT_HELPFUL (a bloc);
    # note 1: 8 surprising ratings too, 4 on each side (the model misfits the note, as a second
    # axis of disagreement would)
    n, per = 40, 20
    indptr = np.arange(n + 1, dtype=np.int64) * per
    rater = np.tile(np.arange(per), n)
    factor = np.where(np.arange(per) < 10, 0.3, -0.3)
    value = np.ones(n * per)
    value[np.arange(n) * per + 19] = 0.0  # one stray NH per note, on the -1 side
    value[0:8] = 0.0
    value[per + np.r_[0:4, 10:14]] = 0.0
    fit = (np.full(n, 0.4), np.zeros(n))  # every prediction 0.5 + 0.4 (mu + note intercept)
    pv = note_pvalues(indptr, rater, value, 0.5, np.zeros(per), factor, fit, replace(P, rater_prior=0.0))
    assert pv[0] < 1e-4 and pv[1] > 0.01 and pv[1] > 100 * pv[0]
    assert (pv[2:] == 1.0).all()  # one surprising rating: below min_events, never tested
    assert benjamini_hochberg(pv, np.ones(n, dtype=bool), 0.1).tolist() == [True] + [False] * (n - 1)


def _notes_and_matrix(note, rater, value, n_raters, n_notes=240):
    """``n_notes`` notes (ids 10.., seven authors) and the matrix of the given ratings, an hour apart."""
    notes = pd.DataFrame(
        {
            "noteId": np.arange(n_notes, dtype=np.int64) + 10,
            "noteAuthorParticipantId": [f"author{i % 7}" for i in range(n_notes)],
            "createdAtMillis": np.zeros(n_notes, dtype=np.int64),
            "tweetId": np.arange(n_notes, dtype=np.int64) + 10_000,
            "classification": schema.MISLEADING,
        }
    )
    matrix = build_rating_matrix(
        note=note, rater=rater, value=value.astype(np.float32),
        created_at=np.arange(note.shape[0], dtype=np.int64) * 3_600_000,
        tags=np.zeros(note.shape[0], np.uint32), population_sampled=np.zeros(note.shape[0], bool),
        note_ids=notes["noteId"].to_numpy(),
        rater_ids=np.array([f"r{i:04d}" for i in range(n_raters)], dtype=object),
    )  # fmt: skip
    return notes, matrix


def test_detect_integrity_carries_the_defence_into_keep_and_views():
    # 12 targets among 400 notes (among 240 they are 5% of the notes, and the overdispersion the
    # test estimates from so few notes is the bloc's: docs/surprise.md)
    note, rater, value, mu, r_int, r_fac, members, _ = _world(bloc=40)
    notes, matrix = _notes_and_matrix(note, rater, value, n_raters=600, n_notes=400)
    off = detect_integrity(matrix, notes)
    on = detect_integrity(matrix, notes, surprise=P, rater_model=(mu, r_int, r_fac))
    assert off.surprise_value is None and on.surprise_keep is not None
    assert not on.surprise_keep.all()
    np.testing.assert_array_equal(on.keep, off.keep & on.surprise_keep)
    # in final scoring only: prescoring's mask is the defence-off one, final's set-aside the same
    model = (mu, r_int, r_fac)
    final = detect_integrity(matrix, notes, surprise=P, rater_model=model, surprise_prescoring=False)
    np.testing.assert_array_equal(final.keep, off.keep)
    np.testing.assert_array_equal(final.surprise_keep, on.surprise_keep)
    grouped = np.flatnonzero(on.surprise_value[: matrix.n_raters] > 0)
    assert grouped.shape[0] and np.isin(grouped, members).all()
    views = integrity_tables(matrix, on, np.full(matrix.n_raters, np.nan))
    r = views[RATER_INTEGRITY_FILE]
    assert set(r.loc[r["surpriseGroup"] > 0, "raterParticipantId"]) == set(matrix.rater_ids[grouped])


def test_config_switches_the_defence():
    # on by default: its test leaves honest communities of every size alone (docs/surprise.md)
    assert surprise_params(ScoringConfig()) == SurpriseParams()
    off = with_overrides(ScoringConfig(), {"integrity": {"surprise": False}})
    assert surprise_params(off) is None
    tuned = with_overrides(ScoringConfig(), {"integrity": {"surprise": True, "surprise_fdr": 0.2}})
    assert surprise_params(tuned) == SurpriseParams(fdr=0.2)


def test_surprise_runs_on_what_the_coordination_collapse_keeps():
    # a coordinated bloc (10 extra raters voting the same 20 notes down, nothing else) is set aside
    # first; the first fit and the refits must not see its ratings
    note, rater, value, mu, r_int, r_fac, _, _ = _world(n_notes=240)
    bloc = np.arange(600, 610)
    voted = np.arange(20)
    note = np.r_[note, np.repeat(voted, bloc.shape[0])]
    rater = np.r_[rater, np.tile(bloc, voted.shape[0])]
    value = np.r_[value, np.zeros(voted.shape[0] * bloc.shape[0])]
    notes, matrix = _notes_and_matrix(note, rater, value, n_raters=610)
    seen = []

    def model(kept):
        seen.append(kept)
        return mu, np.r_[r_int, np.zeros(10)], np.r_[r_fac, np.zeros(10)]

    found = detect_integrity(matrix, notes, coordination=CoordinationParams(), surprise=P, rater_model=model)
    assert (found.coordinated_value[600:610] > 0).all()
    (kept,) = seen
    assert kept.n_ratings == matrix.n_ratings - 200 and not np.isin(kept.rater, bloc).any()
    # the rest is an honest world: nothing left for the concerted-surprise test to flag
    assert found.surprise_keep.shape == (matrix.n_ratings,) and found.surprise_keep.all()

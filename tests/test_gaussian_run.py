"""The Gaussian scorers wired into the pipeline: spec, thresholds, run on Core's prescoring."""

from __future__ import annotations

import dataclasses
from dataclasses import replace

import numpy as np
import pytest

from bridgewatch.errors import ScoringError
from bridgewatch.schema import Status
from bridgewatch.scoring import gaussian as G
from bridgewatch.scoring.assemble import scored_columns
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.gaussian_run import gaussian_intercepts, note_authors
from bridgewatch.scoring.rules import NO_STATUS, Rule, RuleInputs, compute_statuses
from bridgewatch.scoring.scorer import prepare_inputs, scope_mask, scored_raters
from bridgewatch.scoring.scorer_run import rater_factor, run_spec
from bridgewatch.scoring.scorer_specs import (
    COVERAGE_GROUPS,
    GAUSSIAN_RULES,
    core,
    default_scorers,
    gaussian,
)
from test_scorer import community


def _one(intercept, *, factor=0.0, nm=False, no_high=np.nan, prev=NO_STATUS, n=20):
    inputs = RuleInputs(
        intercept=np.array([intercept], dtype=np.float32),
        factor=np.array([factor], dtype=np.float32),
        num_ratings=np.array([n]),
        is_not_misleading=np.array([nm]),
        previous_status=np.array([prev], dtype=np.int8),
        intercept_no_high_vol=np.array([no_high], dtype=np.float32),
    )
    return compute_statuses(inputs, GAUSSIAN_RULES, final_round=True)


@pytest.mark.parametrize(
    ("intercept", "kwargs", "expected", "rule"),
    [
        (0.51, {}, Status.CRH, Rule.GENERAL_CRH),  # CRH from 0.51 (Core: 0.40)
        (0.509, {}, Status.NMR, Rule.INITIAL_NMR),
        (0.45, {}, Status.NMR, Rule.INITIAL_NMR),  # would be CRH under Core's threshold
        (0.501, {"prev": Status.CRH}, Status.CRH, Rule.GENERAL_CRH_INERTIA),  # 0.51 − 0.01
        (0.499, {"prev": Status.CRH}, Status.NMR, Rule.INITIAL_NMR),
        (-0.5, {}, Status.CRNH, Rule.GENERAL_CRNH),
        (-0.49, {"factor": 0.9}, Status.NMR, Rule.INITIAL_NMR),  # no factor term in the CRNH line
        (0.6, {"factor": 0.99}, Status.CRH, Rule.GENERAL_CRH),  # factor limit 1.0, not 0.5
        (0.6, {"factor": -1.01}, Status.NMR, Rule.FILTER_LARGE_FACTOR),
        (0.6, {"no_high": 0.449}, Status.NEEDS_YOUR_HELP, Rule.NO_HIGH_VOL_INTERCEPT),  # 0.45
        (0.6, {"no_high": 0.45}, Status.CRH, Rule.GENERAL_CRH),
        (0.6, {"nm": True}, Status.NMR, Rule.INITIAL_NMR),  # not-misleading notes never CRH
        (-0.61, {"nm": True}, Status.CRNH, Rule.NM_CRNH),
        (0.2, {}, Status.NMR, Rule.INITIAL_NMR),  # no firm reject below 0.3
        (0.7, {"n": 4}, Status.NMR, Rule.INITIAL_NMR),  # still needs 5 ratings
    ],
)
def test_gaussian_thresholds(intercept, kwargs, expected, rule):
    res = _one(intercept, **kwargs)
    assert res.status[0] == expected
    assert res.deciding_rule[0] == rule


def test_gaussian_specs_reuse_core_prescoring():
    specs = {s.name: s for s in default_scorers()}
    plain, topics = specs["GaussianScorer"], specs["GaussianCoreWithTopicsScorer"]
    names = list(specs)
    for s in (plain, topics):
        assert s.kernel == "gaussian" and s.prescoring == "MFCoreScorer"
        assert names.index(s.name) > names.index("MFCoreScorer")
        assert s.included_groups == COVERAGE_GROUPS and 21 not in s.included_groups
        assert s.capture_threshold == 0.5 and s.rules.firm_reject_threshold is None
    assert plain.exclude_topics and not topics.exclude_topics
    assert (plain.prefix, topics.prefix) == ("gaussian", "gaussianCoreWithTopics")


def _core_and_gaussian(m, notes, nsh, enroll):
    """Core then the Gaussian scorer on one community: (inputs, config, runs by name)."""
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg)
    prev = np.full(m.n_notes, NO_STATUS, dtype=np.int8)
    done = {}
    for spec in (core(), gaussian()):
        done[spec.name] = run_spec(inputs, spec, cfg, prev, done)
    return inputs, cfg, done


@pytest.fixture(scope="module")
def runs():
    return _core_and_gaussian(*community(seed=1))


def test_gaussian_run_scores_with_core_factors(runs):
    inputs, cfg, done = runs
    g, base = done["GaussianScorer"], done["MFCoreScorer"]
    assert g.pre is base.pre  # no prescoring of its own
    m = inputs.matrix
    scope, _ = scope_mask(inputs, g.spec)
    rf = rater_factor(base.pre)
    intercept, _, used = gaussian_intercepts(inputs, scope, base.pre.helpful_raters, rf, cfg)
    # Same numbers as the kernel on the final-round ratings plus the authors' implicit ratings.
    note, rater = m.note[used].astype(np.int64), m.rater[used].astype(np.int64)
    author = note_authors(inputs)
    ext = G.add_author_ratings(
        note, rf[rater], m.value[used].astype(np.float64), rater, author,
        np.where(author >= 0, rf[np.maximum(author, 0)], np.nan),
    )  # fmt: skip
    helpful = m.value[used].astype(np.float64)
    direct = G.gaussian_scores(note, m.n_notes, rf[rater], helpful, author_ratings=ext)
    np.testing.assert_array_equal(intercept, direct["intercept"])
    col = g.final["gaussianNoteIntercept"].to_numpy()
    np.testing.assert_array_equal(col[g.scored], intercept[g.scored])
    assert np.isnan(col[~g.scored]).all()
    assert (np.abs(col[g.scored & ~np.isnan(col)]) <= 0.8).all()
    statuses = set(g.result.status[g.scored].tolist())
    assert statuses & {Status.CRH, Status.CRNH}
    # Without high-volume raters in this community, the NoHighVol variant is the same fit.
    if not inputs.high_volume.any():
        np.testing.assert_array_equal(g.final["gaussianNoteInterceptNoHighVol"].to_numpy(), col)


def test_gaussian_columns_and_final_round_count(runs):
    inputs, _, done = runs
    g = done["GaussianScorer"]
    cols = scored_columns(inputs, {"GaussianScorer": g}, None)
    for suffix in ("NoteIntercept", "NoteFactor1", "RatingStatus", "ActiveRules", "NumFinalRoundRatings"):
        assert f"gaussian{suffix}" in cols
    m = inputs.matrix
    scope, _ = scope_mask(inputs, g.spec)
    known = scored_raters(m, g.pre)
    expected = np.bincount(m.note[scope & known[m.rater]], minlength=m.n_notes)
    got = cols["gaussianNumFinalRoundRatings"]
    ok = g.scored & (expected > 0)
    np.testing.assert_array_equal(got[ok], expected[ok])
    assert np.isnan(got[~g.scored]).all()


def test_gaussian_needs_its_base_scorer(runs):
    inputs, cfg, _ = runs
    prev = np.full(inputs.matrix.n_notes, NO_STATUS, dtype=np.int8)
    with pytest.raises(ScoringError, match="MFCoreScorer"):
        run_spec(inputs, gaussian(), cfg, prev, {})
    odd = dataclasses.replace(gaussian(), kernel="bogus")
    with pytest.raises(ScoringError, match="bogus"):
        run_spec(inputs, odd, cfg, prev, runs[2])


def test_gaussian_run_is_deterministic(runs):
    inputs, cfg, done = runs
    prev = np.full(inputs.matrix.n_notes, NO_STATUS, dtype=np.int8)
    again = run_spec(inputs, gaussian(), cfg, prev, done)
    a = done["GaussianScorer"].final.to_numpy(np.float64).tobytes()
    assert again.final.to_numpy(np.float64).tobytes() == a


def test_gaussian_reuses_its_base_scorers_diligence_fit(runs):
    """Reusing Core's reputation prescoring gives the same intercepts as refitting it."""
    inputs, cfg, done = runs
    base = done["MFCoreScorer"]
    assert base.diligence is not None
    prev = np.full(inputs.matrix.n_notes, NO_STATUS, dtype=np.int8)
    refit = run_spec(inputs, gaussian(), cfg, prev, {"MFCoreScorer": replace(base, diligence=None)})
    reused = done["GaussianScorer"].low_diligence
    assert np.isfinite(reused).any()
    np.testing.assert_array_equal(refit.low_diligence, reused)


def test_aux_frame_follows_the_reference(runs):
    import pandas as pd

    from bridgewatch import schema
    from bridgewatch.scoring import assemble as A

    inputs, _, done = runs
    m = inputs.matrix
    n = m.n_notes
    meta = pd.DataFrame(
        {c: [None] * n for c in ("unlockedRatingStatus", "preStabilizationRatingStatus")}
        | {c: [False] * n for c in ("crhBool", "crnhBool", "awaitingBool")}
    )
    before = pd.DataFrame({"noteId": m.note_ids[:1], "currentStatus": [schema.CRH]})
    counts = np.zeros((n, len(schema.RATING_TAGS)), dtype=np.int64)
    epoch = int(m.created_at.max()) + 28 * 86_400_000 - 20 * 3_600_000  # window: the last 20 h
    columns = A.aux_columns(inputs, done, meta, counts, before, np.ones(n, dtype=bool), epoch)
    aux = columns.frame().set_index("noteId")
    # Bug: numRatingsLast28 counted back from the newest rating; the reference counts back from
    # the scoring time.
    recent = np.bincount(m.note[m.created_at > epoch - 28 * 86_400_000], minlength=n)
    np.testing.assert_array_equal(aux["numRatingsLast28"].to_numpy(), recent)
    # currentStatus is the status before this run; notes new to the history have none.
    assert aux["currentStatus"].iloc[0] == schema.CRH and aux["currentStatus"].iloc[1:].isna().all()
    core = done["MFCoreScorer"]
    no_fit = np.isnan(core.final["coreNoteIntercept"].to_numpy())
    low = aux["lowDiligenceIntercept"].to_numpy()
    assert np.isnan(low[no_fit]).all()
    # Bug: a present 0/0 tf-idf was written empty; the reference writes "nan" (format_tf_idf).
    voters = aux["num_voters_interval"].to_numpy(np.float64)
    tf = aux["tf_idf_incorrect_interval"].to_numpy(dtype=object)
    assert all(t is None for t in tf[np.isnan(voters)])
    assert all(isinstance(t, str) and (t == "nan" or float(t) == float(t)) for t in tf[~np.isnan(voters)])
    side = A.population_sampled_counts(m, core)
    for name, values in side.items():
        np.testing.assert_array_equal(aux[name].to_numpy(np.float64), values)
    # Bug: notes Core gives no status were counted; the reference writes 0 for them.
    sampled = core.pre.helpful_raters[m.rater] & m.population_sampled
    per_note = np.bincount(m.note[sampled], minlength=n)
    np.testing.assert_array_equal(sum(side.values())[core.scored], per_note[core.scored])
    unreported = core.scored & (per_note > 0) & (np.arange(n) % 3 == 0)
    assert unreported.any()
    side = A.population_sampled_counts(m, replace(core, scored=core.scored & ~unreported))
    total = sum(side.values())
    assert (total[unreported] == 0).all()
    before = sum(A.population_sampled_counts(m, core).values())
    np.testing.assert_array_equal(total[~unreported], before[~unreported])


def test_in_dimension_two_topic_is_scored_by_a_gaussian_scorer_on_its_mf_prescoring():
    """Bug: InDimensionTwo notes had no topic columns. The reference prescores
    MFTopicScorer_InDimensionTwo (no global intercept, λ_iu 5) and scores the topic's notes with
    GaussianTopicScorer_InDimensionTwo (bandwidth 0.05); confident from one rater per side."""
    from bridgewatch.scoring.gaussian_run import pass_params
    from bridgewatch.scoring.scorer_specs import TOPICS

    specs = {s.name: s for s in default_scorers()}
    mf, gt = specs["MFTopicScorer_InDimensionTwo"], specs["GaussianTopicScorer_InDimensionTwo"]
    assert not mf.report and not mf.mf.global_intercept and mf.mf.user_intercept_lambda == 5.0
    assert gt.prescoring == mf.name and gt.prefix == "topic" and gt.confident_min == 0
    assert pass_params(gt)[0].bandwidth == pass_params(gt)[1].bandwidth == 0.05
    assert list(specs).index(mf.name) < list(specs).index(gt.name)

    m, notes, nsh, enroll = community(seed=1)
    cfg = ScoringConfig()
    note_topic = np.full(m.n_notes, -1)
    note_topic[:40] = len(TOPICS)
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg, note_topic=note_topic)
    prev = np.full(m.n_notes, NO_STATUS, dtype=np.int8)
    done = {}
    for spec in (mf, gt):
        done[spec.name] = run_spec(inputs, spec, cfg, prev, done)
    pre = done[mf.name].pre
    assert pre.params.mu == 0.0 and np.isfinite(pre.params.rater_intercept).any()
    g = done[gt.name]
    assert g.scored[:40].all() and not g.scored[40:].any()
    # The narrow kernel: intercepts differ from the default bandwidth's.
    scope, _ = scope_mask(inputs, gt)
    rf = rater_factor(pre)
    narrow = gaussian_intercepts(inputs, scope, pre.helpful_raters, rf, cfg, pass_params(gt))[0]
    wide = gaussian_intercepts(inputs, scope, pre.helpful_raters, rf, cfg)[0]
    np.testing.assert_array_equal(g.final["topicNoteIntercept"].to_numpy()[:40], narrow[:40])
    assert not np.allclose(narrow[:40], wide[:40], equal_nan=True)
    cols = scored_columns(inputs, {**done}, note_topic)
    assert (cols["noteTopic"][:40] == "InDimensionTwo").all()
    assert "topicRatingStatus" in cols and all(s is not None for s in cols["topicRatingStatus"][:40])
    side = rf[m.rater]
    pos = np.bincount(m.note[side >= 0], minlength=m.n_notes)
    neg = np.bincount(m.note[side < 0], minlength=m.n_notes)
    has = np.isfinite(g.final["topicNoteIntercept"].to_numpy())
    expect = (pos > 0) & (neg > 0) & has
    assert list(cols["topicNoteConfident"][:40]) == list(expect[:40])


def test_gaussian_filters_see_notes_that_fail_the_capture_test():
    """Bug: the Gaussian tag and "incorrect" filters ran after the captured-out notes' factors
    were blanked, so those notes left the factor z-normalization and the weights' distance
    percentile; the reference filters first and drops them afterwards (mini: 4 notes tag-filtered
    that the reference's are not)."""
    m, notes, nsh, enroll = community(seed=1)
    # Half the raters sit outside Core's and the coverage groups: about half the notes then
    # draw under 50% of their ratings from in-scope raters and fail the capture test.
    enroll["modelingGroup"] = np.where(enroll["modelingGroup"] == 13.0, 13.0, 4.0)
    inputs, cfg, done = _core_and_gaussian(m, notes, nsh, enroll)
    g = done["GaussianScorer"]
    scope, _ = scope_mask(inputs, g.spec)
    _, _, used = gaussian_intercepts(inputs, scope, g.pre.helpful_raters, rater_factor(g.pre), cfg)
    rated = np.bincount(m.note[used], minlength=m.n_notes) > 0
    dropped = rated & ~g.scored
    assert dropped.any() and (rated & g.scored).any()
    assert g.tags.present[dropped].all()
    assert np.isnan(g.final["gaussianNoteFactor1"].to_numpy()[dropped]).all()


def test_no_correlated_pass_without_correlated_ratings_in_scope_is_the_fit_itself(runs):
    # No correlated rating in scope: the NoCorrelated pass would run on the scope's own ratings,
    # so it is the main pass (not run again) — the same bits as that pass.
    inputs, cfg, done = runs
    m = inputs.matrix
    scope, _ = scope_mask(inputs, gaussian())
    prev = np.full(m.n_notes, NO_STATUS, dtype=np.int8)
    flagged = replace(inputs, correlated=np.zeros(m.n_raters, dtype=bool))
    g = run_spec(flagged, gaussian(), cfg, prev, done)
    assert g.fits["noCorrelated"].tobytes() == g.fits["intercept"].tobytes()
    base = done["MFCoreScorer"]
    again = gaussian_intercepts(flagged, scope, base.pre.helpful_raters, rater_factor(base.pre), cfg)[0]
    assert g.fits["noCorrelated"].tobytes() == again.tobytes()  # what running the pass gives
    # Flag one in-scope rater: the pass runs on fewer ratings and moves its notes.
    one = np.zeros(m.n_raters, dtype=bool)
    one[m.rater[scope][0]] = True
    moved = run_spec(replace(inputs, correlated=one), gaussian(), cfg, prev, done)
    assert moved.fits["noCorrelated"].tobytes() != moved.fits["intercept"].tobytes()
    np.testing.assert_array_equal(moved.fits["intercept"], g.fits["intercept"])

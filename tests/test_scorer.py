"""One MF scorer end to end on a small synthetic community: prescore, final scoring, specs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from bridgewatch import schema
from bridgewatch.io.matrix import build_rating_matrix
from bridgewatch.scoring import helpfulness as H
from bridgewatch.scoring import preprocess as P
from bridgewatch.scoring import topics
from bridgewatch.scoring.capture import drop_captured_out
from bridgewatch.scoring.config import ScoringConfig
from bridgewatch.scoring.final_scoring import captured_out, final_columns, score_final
from bridgewatch.scoring.rules import NO_STATUS
from bridgewatch.scoring.scorer import harassment_intercepts, prepare_inputs, prescore, scope_mask
from bridgewatch.scoring.scorer_specs import TOPICS, core, default_scorers, group

T0 = 1_750_000_000_000


def community(seed=0, n_notes=80, n_raters=160, enrollment=True):
    rng = np.random.default_rng(seed)
    side = np.where(np.arange(n_raters) % 2 == 0, -1.0, 1.0)
    quality = rng.normal(0, 1, n_notes)
    slant = rng.normal(0, 1, n_notes)
    note, rater = np.meshgrid(np.arange(n_notes), np.arange(n_raters), indexing="ij")
    pick = rng.random(note.shape) < 0.25
    note, rater = note[pick], rater[pick]
    p = 1 / (1 + np.exp(-(1.5 * quality[note] + 1.2 * slant[note] * side[rater])))
    u = rng.random(note.shape[0])
    value = np.where(u < p * 0.8, 1.0, np.where(u < p, 0.5, 0.0))
    r = note.shape[0]
    m = build_rating_matrix(
        note=note,
        rater=rater,
        value=value,
        created_at=T0 + rng.integers(0, 40 * 3_600_000, r),
        tags=np.zeros(r, np.uint32),
        population_sampled=rng.random(r) < 0.3,
        note_ids=np.arange(n_notes, dtype=np.int64) + 1000,
        rater_ids=np.array([f"u{i:04d}" for i in range(n_raters)], dtype=object),
    )
    notes = pd.DataFrame(
        {
            "noteId": m.note_ids,
            "classification": schema.MISLEADING,
            "createdAtMillis": T0,
            "noteAuthorParticipantId": [f"u{i % n_raters:04d}" for i in range(n_notes)],
        }
    )
    nsh = pd.DataFrame(
        {
            "noteId": m.note_ids[:0],
            "createdAtMillis": [],
            "noteAuthorParticipantId": [],
            "timestampMillisOfLatestNonNMRStatus": [],
        }
    )
    enroll = None
    if enrollment:
        enroll = pd.DataFrame({"participantId": m.rater_ids, "modelingGroup": np.where(side < 0, 13.0, 2.0)})
    return m, notes, nsh, enroll


@pytest.fixture(scope="module")
def run():
    m, notes, nsh, enroll = community()
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg)
    pre = prescore(inputs, core(), cfg, seed=42)
    return m, inputs, cfg, pre, score_final(inputs, core(), pre, cfg)


def test_prescore_two_rounds_and_helpfulness(run):
    _, _, _, pre, _ = run
    assert pre.helpfulness is not None and pre.helpfulness["aboveHelpfulnessThreshold"].any()
    assert pre.final_round_num_users == int(pre.helpful_raters.sum())
    assert pre.final_round_num_users < np.count_nonzero(~np.isnan(pre.first_round.rater_intercept))
    f = pre.params.rater_factor[:, 0]
    assert np.mean(f[np.isfinite(f) & (f != 0)] < 0) >= 0.5


def test_final_scores_track_round2_and_have_bounds(run):
    m, _, _, pre, fin = run
    assert list(fin["noteId"]) == list(m.note_ids)
    i = fin["coreNoteIntercept"].to_numpy()
    ok = np.isfinite(i)
    assert ok.sum() > 60
    assert np.corrcoef(i[ok], pre.params.note_intercept[ok])[0, 1] > 0.99
    lo, hi = fin["coreNoteInterceptMin"].to_numpy(), fin["coreNoteInterceptMax"].to_numpy()
    assert np.all(lo[ok] <= hi[ok]) and np.all(hi[ok] > i[ok] - 1e-9)
    assert (fin["coreNumFinalRoundRatings"].fillna(0) <= fin["numRatings"]).all()


def test_deterministic_rerun(run):
    _, inputs, cfg, _, fin = run
    again = score_final(inputs, core(), prescore(inputs, core(), cfg, seed=42), cfg)
    assert fin["coreNoteIntercept"].to_numpy().tobytes() == again["coreNoteIntercept"].to_numpy().tobytes()


def test_without_modeling_groups_stable_init_falls_back():
    m, notes, nsh, _ = community(enrollment=False)
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, None, cfg)
    pre = prescore(inputs, core(), cfg)
    assert np.isfinite(pre.params.note_intercept).sum() > 60


def test_group_scorer_scope_and_inventory():
    m, notes, nsh, enroll = community()
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg)
    pre = prescore(inputs, group(13), cfg)
    in_13 = inputs.rater_group == 13
    fitted = np.isfinite(pre.first_round.rater_intercept)
    assert fitted.any() and not (fitted & ~in_13).any()
    names = [s.name for s in default_scorers()]
    assert names[:4] == [
        "MFCoreScorer",
        "MFCoreWithTopicsScorer",
        "MFExpansionScorer",
        "MFExpansionPlusScorer",
    ]
    assert "MFGroupScorer_33" in names and len(names) == len(set(names))


def test_core_excludes_notes_of_every_assigned_topic():
    """InDimensionTwo has no final MF topic scorer (its MF scorer only prescores), yet its notes
    leave Core's scope like any topic's."""
    assert set(TOPICS) == set(topics.TOPICS) - {"Unassigned"}
    m, notes, nsh, enroll = community()
    note_topic = np.full(m.n_notes, -1)
    note_topic[:10] = TOPICS.index("InDimensionTwo") + 1
    inputs = prepare_inputs(m, notes, nsh, enroll, ScoringConfig(), note_topic=note_topic)
    scope, _ = scope_mask(inputs, core())
    assert not scope[m.note < 10].any() and scope[m.note >= 10].any()
    names = [s.name for s in default_scorers()]
    assert "MFTopicScorer_Scams" in names
    assert not {s.name: s for s in default_scorers()}["MFTopicScorer_InDimensionTwo"].report


def harassed_community():
    """``community()`` with every third NOT_HELPFUL rating tagged spam/harassment/abuse, so the
    tag-consensus (harassment) model has labels to learn."""
    m, notes, nsh, enroll = community()
    tags = m.tags.copy()
    tags[(m.value == 0.0) & (np.arange(m.n_ratings) % 3 == 0)] |= np.uint32(
        1 << schema.TAG_BIT["notHelpfulSpamHarassmentOrAbuse"]
    )
    m = build_rating_matrix(
        note=m.note, rater=m.rater, value=m.value, created_at=m.created_at, tags=tags,
        population_sampled=m.population_sampled, note_ids=m.note_ids, rater_ids=m.rater_ids,
    )  # fmt: skip
    return m, notes, nsh, enroll


def test_prescore_fits_harassment_model_on_prepenalty_raters():
    """§2.7 steps 4–6: the tag-consensus model learns from the ratings of raters who pass before
    any penalty, and its intercepts drive the penalty column."""
    m, notes, nsh, enroll = harassed_community()
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg)
    pre = prescore(inputs, core(), cfg)
    assert np.isfinite(pre.harassment_intercept).sum() > 40
    scope, _ = scope_mask(inputs, core())
    train = P.count_filter(m, scope, 5, 10)
    nt = inputs.notes
    prov = pre.provisional_status
    valid = H.valid_ratings(
        m, scope, nt["createdAtMillis"].to_numpy(float),
        nt["timestampMillisOfLatestNonNMRStatus"].to_numpy(float), prov, cfg.helpfulness,
    )  # fmt: skip
    author = nt["noteAuthorParticipantId"].to_numpy(dtype=object)
    before = H.helpfulness_scores(m, valid, author, pre.first_round.note_intercept, prov, cfg.helpfulness)
    expected = harassment_intercepts(
        m, train & H.helpful_rater_mask(m, before)[m.rater], pre.first_round, ScoringConfig()
    )
    assert np.array_equal(expected, pre.harassment_intercept, equal_nan=True)


def test_harassment_penalty_removes_raters_from_round_two():
    """Raters who rated consensus-abusive notes HELPFUL lose their place in the round-2 fit."""
    m, notes, nsh, enroll = community()
    cfg = ScoringConfig()
    abusive = np.zeros(m.n_notes)
    abusive[:6] = 3.0
    fan = np.zeros(m.n_raters, bool)
    fan[np.unique(m.rater[(m.note < 6) & (m.value == 1.0)])] = True
    plain = prescore(prepare_inputs(m, notes, nsh, enroll, cfg), core(), cfg)
    hit = prescore(prepare_inputs(m, notes, nsh, enroll, cfg, harassment_intercept=abusive), core(), cfg)
    assert (plain.helpful_raters & fan).sum() > 5
    assert not (hit.helpful_raters & fan).any()
    pen = hit.helpfulness.set_index("raterParticipantId")["totalHelpfulHarassmentRatingsPenalty"]
    assert (pen > 0).sum() > 5 and set(pen.index[pen > 0]) <= set(m.rater_ids[fan])


def test_notes_failing_capture_still_shape_the_filters():
    """The reference drops a note that fails the capture test only after its rules ran: the tag
    filter's factor z-normalization includes it, and its output columns are empty (§6.1)."""
    from bridgewatch.scoring.rules import NO_STATUS
    from bridgewatch.scoring.scorer_run import run_scorer
    from bridgewatch.scoring.tag_filter import note_tag_aggregates

    m, _, nsh, enroll = community()
    rng = np.random.default_rng(1)
    extra_notes, outsiders = np.arange(80, 86), np.arange(160, 172)
    note, rater = [m.note], [m.rater]
    for n in extra_notes:  # 6 in-scope raters, 12 out-of-scope ones: fitted, but share 1/3 < 0.5
        note.append(np.full(18, n))
        rater.append(np.r_[rng.choice(160, 6, replace=False), outsiders])
    note, rater = np.concatenate(note), np.concatenate(rater)
    r = note.shape[0]
    value = np.r_[m.value, rng.choice([0.0, 1.0], r - m.n_ratings)]
    ids = np.array([f"u{i:04d}" for i in range(172)], dtype=object)
    m2 = build_rating_matrix(
        note=note, rater=rater, value=value, created_at=np.r_[m.created_at, np.full(r - m.n_ratings, T0)],
        tags=np.zeros(r, np.uint32), population_sampled=np.zeros(r, bool),
        note_ids=np.arange(86, dtype=np.int64) + 1000, rater_ids=ids,
    )  # fmt: skip
    notes2 = pd.DataFrame(
        {"noteId": m2.note_ids, "classification": schema.MISLEADING, "createdAtMillis": T0,
         "noteAuthorParticipantId": [f"u{i % 160:04d}" for i in range(86)]}
    )  # fmt: skip
    groups = np.r_[enroll["modelingGroup"].to_numpy(), np.full(12, 4.0)]
    enroll2 = pd.DataFrame({"participantId": ids, "modelingGroup": groups})
    cfg = ScoringConfig()
    inputs = prepare_inputs(m2, notes2, nsh, enroll2, cfg)
    run = run_scorer(inputs, core(), cfg, np.full(m2.n_notes, NO_STATUS, np.int8))
    dropped = m2.note_index(m2.note_ids[80:])
    assert not run.scored[dropped].any() and run.final["coreNoteIntercept"].iloc[dropped].isna().all()
    raw = score_final(inputs, core(), run.pre, cfg, capture=False)
    factor = raw["coreNoteFactor1"].to_numpy()
    assert np.isfinite(factor[dropped]).all()
    keep = np.isfinite(factor)[m2.note] & run.pre.helpful_raters[m2.rater]
    rf = np.where(run.pre.helpful_raters, run.pre.params.rater_factor[:, 0], np.nan)
    expected = note_tag_aggregates(m2.note[keep], m2.rater[keep], m2.tags[keep], factor, rf)
    ok = expected.present & run.scored
    assert np.allclose(run.tags.rating_weight[ok], expected.rating_weight[ok])


def test_subset_refits_need_five_ratings_in_their_own_subset():
    """The NoHighVol / NoCorrelated / PopulationSampled refits are final scorings of their own: a
    note needs 5 ratings within the subset, not just overall (the reference's final filter)."""
    m, notes, nsh, enroll = community()
    m = build_rating_matrix(
        note=m.note, rater=m.rater, value=m.value, created_at=m.created_at, tags=m.tags,
        population_sampled=(m.note < 20) | (np.arange(m.n_ratings) % 13 == 0),
        note_ids=m.note_ids, rater_ids=m.rater_ids,
    )  # fmt: skip
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg)
    fin = score_final(inputs, core(), prescore(inputs, core(), cfg), cfg)
    scope, _ = scope_mask(inputs, core())
    pop = np.bincount(m.note[scope & m.population_sampled], minlength=m.n_notes)
    value = fin["coreNoteInterceptPopulationSampled"].to_numpy()
    fitted = np.isfinite(fin["coreNoteIntercept"].to_numpy())
    assert (fitted & (pop < 5)).sum() > 5 and np.isnan(value[pop < 5]).all()
    assert np.isfinite(value[fitted & (np.arange(m.n_notes) < 20)]).all()


def test_scorers_without_capture_report_every_note_of_their_history_scope():
    """Bug: notes with no in-scope rating had no ExpansionPlus / topic status, so meta scoring
    left them to MetaInitialNMR. The reference outer-joins its note counts with the status
    history, so a scorer without a capture threshold gives every such note InitialNMR (§6.1)."""
    from bridgewatch.scoring.final_scoring import reported_notes
    from bridgewatch.scoring.rules import NO_STATUS, Rule
    from bridgewatch.scoring.scorer_run import run_scorer
    from bridgewatch.scoring.scorer_specs import expansion_plus, topic

    m, notes, nsh, enroll = community()
    unrated = pd.DataFrame(
        {"noteId": [5000, 5001], "classification": schema.MISLEADING, "createdAtMillis": T0,
         "noteAuthorParticipantId": ["u0001", "u0002"]}
    )  # fmt: skip
    m = build_rating_matrix(
        note=m.note, rater=m.rater, value=m.value, created_at=m.created_at, tags=m.tags,
        population_sampled=m.population_sampled, note_ids=np.r_[m.note_ids, 5000, 5001],
        rater_ids=m.rater_ids,
    )  # fmt: skip
    note_topic = np.full(m.n_notes, -1)
    note_topic[[3, m.n_notes - 1]] = 2
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, pd.concat([notes, unrated]), nsh, enroll, cfg, note_topic=note_topic)
    new = m.note_index(np.array([5000, 5001]))
    assert not reported_notes(inputs, core())[new].any()  # capture 0.5 needs ratings
    assert reported_notes(inputs, expansion_plus())[new].all()
    gaza = reported_notes(inputs, topic(2, "GazaConflict"))
    assert gaza.tolist() == (note_topic == 2).tolist()
    plus = run_scorer(inputs, expansion_plus(), cfg, np.full(m.n_notes, NO_STATUS, np.int8))
    assert plus.scored[new].all() and (plus.result.status[new] == schema.Status.NMR).all()
    assert (plus.result.deciding_rule[new] == Rule.INITIAL_NMR).all()


def test_group_15_prescores_only_and_a_gaussian_scorer_reports_for_it():
    """Bug: group 15 had no scorer. The reference prescores MFGroupScorer_15 (its own λs) and
    scores the group's notes with GaussianGroupScorer_15 on that prescoring (CRH from 0.25)."""
    from bridgewatch.scoring.scorer_specs import gaussian_group

    specs = {s.name: s for s in default_scorers()}
    mf15, g15 = specs["MFGroupScorer_15"], specs["GaussianGroupScorer_15"]
    assert not mf15.report and mf15.mf is not None and mf15.mf.note_intercept_lambda == 0.09
    assert g15 == gaussian_group(15) and g15.prescoring == "MFGroupScorer_15" and g15.prefix == "group"
    assert g15.rules.crh_threshold == 0.25 and g15.rules.min_minority_net_helpful is None
    names = list(specs)
    assert names.index("MFGroupScorer_15") < names.index("GaussianGroupScorer_15")


def test_normalized_loss_scorer_retrains_raters_in_final_scoring():
    """Group 14's final fit is the reference's re-created model, nothing frozen: raters and μ are
    refitted with re-drawn notes, and its filters read those raters (§2.9 quirk)."""
    import dataclasses

    from bridgewatch.scoring.final_scoring import final_note_fit, final_rater_factor, final_rating_mask

    m, notes, nsh, enroll = community()
    cfg = ScoringConfig()
    spec = dataclasses.replace(group(2), mf=group(14).mf, tag_filter=group(14).tag_filter)
    assert spec.mf.normalized_loss and spec.mf.diamond_lambda == 0.75
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg)
    pre = prescore(inputs, spec, cfg, seed=42)
    keep, _ = final_rating_mask(inputs, spec, pre, cfg)
    intercept, factor, rf = final_note_fit(inputs, spec, pre, cfg, keep, pre.rho_note)
    fitted = np.unique(m.rater[keep])
    assert np.isfinite(rf[fitted]).all() and np.isnan(np.delete(rf, fitted)).all()
    assert not np.allclose(rf[fitted], pre.params.rater_factor[fitted, 0], atol=1e-4)
    np.testing.assert_array_equal(final_rater_factor(inputs, spec, pre, cfg), rf)
    plain = dataclasses.replace(group(2))
    pre2 = prescore(inputs, plain, cfg, seed=42)
    rf2 = final_rater_factor(inputs, plain, pre2, cfg)
    np.testing.assert_array_equal(np.isfinite(rf2), pre2.helpful_raters)
    assert np.isfinite(intercept[np.unique(m.note[keep])]).all() and factor.shape[1] == 1


def test_topic_scorers_fit_the_low_diligence_model_on_count_filtered_round_two():
    """Bug: topic scorers (no reputation filter) skipped the low-diligence model, which the
    reference fits for every MF scorer, on round 2's count-filtered ratings (small: 3 topic notes
    lost FilterLowDiligence)."""
    from bridgewatch.scoring.scorer_run import prescore_scorer
    from bridgewatch.scoring.scorer_specs import topic

    m, notes, nsh, enroll = community()
    note_topic = np.where(np.arange(m.n_notes) < 40, 1, -1)
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg, note_topic=note_topic)
    state = prescore_scorer(inputs, topic(1, "UkraineConflict"), cfg)
    assert state.diligence is not None
    scope, _ = scope_mask(inputs, topic(1, "UkraineConflict"))
    train = P.count_filter(m, scope, 5, 10) & state.pre.helpful_raters[m.rater]
    assert state.diligence.n_ratings == int(train.sum()) < int(scope.sum())


def test_first_round_parameters_are_written_only_for_raters_the_reference_lists():
    """Bug: coreFirstRoundRater* was filled for every round-1 rater; the reference writes it only
    for round-2 raters and participants with a helpfulness row (valid rating or scored note)."""
    from bridgewatch.scoring.assemble import first_round_listed

    m, notes, nsh, enroll = community(seed=5)
    late = m.rater % 10 == 9  # these raters rate every note three days after it was written
    m = build_rating_matrix(
        note=m.note, rater=m.rater, value=m.value,
        created_at=np.where(late, T0 + 72 * 3_600_000, m.created_at),
        tags=m.tags, population_sampled=m.population_sampled,
        note_ids=m.note_ids, rater_ids=m.rater_ids,
    )  # fmt: skip
    notes["noteAuthorParticipantId"] = "author-only"
    cfg = ScoringConfig()
    pre = prescore(prepare_inputs(m, notes, nsh, enroll, cfg), core(), cfg, seed=42)
    listed = first_round_listed(m, pre)
    in_round1 = ~np.isnan(pre.first_round.rater_intercept)
    late_raters = np.unique(m.rater[late])
    assert in_round1[late_raters].all()  # they are fitted in round 1 ...
    assert not listed[late_raters].any()  # ... but have no valid rating, so no row
    in_table = np.isin(m.rater_ids, pre.helpfulness["raterParticipantId"].to_numpy())
    assert np.array_equal(listed, in_table | ~np.isnan(pre.params.rater_intercept))
    assert listed[in_round1].sum() > in_round1.sum() // 2


def test_scorers_with_their_own_lambdas_take_the_configured_solver():
    """Groups 15/18 and InDimensionTwo carry their own MFConfig (λs); ``[mf] solver = "als"``
    must still reach them, else a scale run silently keeps Adam there. Group 14's objective
    (diamond penalty, normalized loss) is one ALS cannot minimize: it keeps Adam."""
    import dataclasses

    from bridgewatch.scoring.config import MFConfig
    from bridgewatch.scoring.scorer import scorer_mf

    als = ScoringConfig(mf=MFConfig(solver="als", max_iterations=7))
    own = scorer_mf(group(18), als)
    assert own.solver == "als" and own.max_iterations == 7
    assert own.user_intercept_lambda == group(18).mf.user_intercept_lambda == 0.03
    assert scorer_mf(group(14), als).solver == "adam"
    assert scorer_mf(group(18), ScoringConfig()) == group(18).mf  # defaults untouched

    m, notes, nsh, enroll = community()
    inputs = prepare_inputs(m, notes, nsh, enroll, ScoringConfig())
    spec = dataclasses.replace(group(13), mf=group(18).mf)  # group 13's raters, group 18's λs
    via_config = prescore(inputs, spec, als, seed=42).params
    as_config = ScoringConfig(mf=dataclasses.replace(group(18).mf, solver="als", max_iterations=7))
    direct = prescore(inputs, group(13), as_config, seed=42).params  # the same fits, λs from config
    adam = prescore(inputs, spec, ScoringConfig(), seed=42).params
    assert via_config.note_intercept.tobytes() == direct.note_intercept.tobytes()
    assert via_config.note_intercept.tobytes() != adam.note_intercept.tobytes()


def test_final_scorer_frame_is_score_final_built_from_its_columns():
    """final_scorer reads a scorer's columns and builds its frame once (``final_columns`` then
    ``drop_captured_out``): the same frame ``score_final`` gives, capture test applied, with
    notes both blanked by it and kept (group 13, its capture threshold at half its raters' share)."""

    from bridgewatch.scoring.scorer_run import run_scorer

    m, notes, nsh, enroll = community(seed=3)
    cfg = ScoringConfig()
    inputs = prepare_inputs(m, notes, nsh, enroll, cfg)
    spec = dataclasses.replace(group(13), capture_threshold=0.5)
    run = run_scorer(inputs, spec, cfg, np.full(m.n_notes, NO_STATUS, np.int8))
    drop = captured_out(inputs, spec)
    fitted = run.fits["intercept"]
    assert (drop & np.isfinite(fitted)).any() and (~drop & np.isfinite(fitted)).any()
    want = score_final(inputs, spec, run.pre, cfg)
    pd.testing.assert_frame_equal(run.final, want, check_exact=True)
    raw = final_columns(inputs, spec, run.pre, cfg)
    pd.testing.assert_frame_equal(score_final(inputs, spec, run.pre, cfg, capture=False), pd.DataFrame(raw))
    np.testing.assert_array_equal(fitted, raw[f"{spec.prefix}NoteIntercept"])  # fits: before the blanking
    pd.testing.assert_frame_equal(pd.DataFrame(drop_captured_out(raw, drop, spec)), want, check_exact=True)

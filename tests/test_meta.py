"""Meta scoring (§6.4–6.5): rule precedence, blocking, safeguard bands, demotions, drift guard."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from bridgewatch.errors import ScoringError
from bridgewatch.scoring import meta
from bridgewatch.scoring.config import ScoringConfig

CRH, CRNH, NMR = "CURRENTLY_RATED_HELPFUL", "CURRENTLY_RATED_NOT_HELPFUL", "NEEDS_MORE_RATINGS"
FR, NYH = "FIRM_REJECT", "NEEDS_YOUR_HELP"
NOW = 1_795_305_600_000
MIN = 60_000
CFG = ScoringConfig()


def run(rows: list[dict], nsh_rows: list[dict] | None = None, explanation=None, **kw) -> pd.DataFrame:
    scored = pd.DataFrame(rows)
    scored.insert(0, "noteId", np.arange(1, len(rows) + 1, dtype=np.int64))
    nsh = pd.DataFrame(nsh_rows or [{}] * len(rows))
    nsh.insert(0, "noteId", np.arange(1, len(rows) + 1, dtype=np.int64))
    return meta.meta_score(scored, nsh, epoch_millis=NOW, config=CFG, explanation=explanation, **kw)


def one(row: dict, nsh: dict | None = None, **kw) -> pd.Series:
    # Published CRH notes skip the stabilization delay; use that unless a test sets history.
    return run([row], [nsh if nsh is not None else {"currentStatus": CRH}], **kw).iloc[0]


@pytest.mark.parametrize(
    "row, status, decided",
    [
        ({}, NMR, "MetaInitialNMR (v1.0)"),
        ({"expansionPlusRatingStatus": CRH}, CRH, "ExpansionPlusModel (v1.1)"),
        ({"expansionPlusRatingStatus": CRH, "expansionRatingStatus": NMR}, NMR, "ExpansionModel (v1.1)"),
        (
            {"expansionRatingStatus": CRH, "coreWithTopicsRatingStatus": CRNH},
            CRNH,
            "CoreWithTopicsModel (v1.1)",
        ),
        ({"coreWithTopicsRatingStatus": CRNH, "coreRatingStatus": CRH}, CRH, "CoreModel (v1.1)"),
        ({"expansionRatingStatus": CRH, "coreRatingStatus": FR}, NMR, "CoreModel (v1.1)"),
        ({"expansionRatingStatus": CRH, "coreRatingStatus": np.nan}, CRH, "ExpansionModel (v1.1)"),
    ],
)
def test_base_model_precedence(row, status, decided):
    out = one(row)
    assert out.finalRatingStatus == status
    assert out.decidedBy == decided


def test_active_rules_list_every_emitting_rule_in_order():
    out = one({"expansionPlusRatingStatus": NMR, "expansionRatingStatus": NMR, "coreRatingStatus": CRH})
    assert out.metaScorerActiveRules == (
        "MetaInitialNMR (v1.0),ExpansionPlusModel (v1.1),ExpansionModel (v1.1),CoreModel (v1.1)"
    )


def test_missing_scorer_column_emits_nothing_and_enabled_rules_filter():
    out = one({"coreRatingStatus": CRH}, enabled_rules={"MetaInitialNMR (v1.0)"})
    assert out.finalRatingStatus == NMR
    assert out.metaScorerActiveRules == "MetaInitialNMR (v1.0)"


@pytest.mark.parametrize(
    "core, expansion, multi, expected",
    [
        (NMR, NMR, CRH, CRH),
        (FR, NMR, CRH, NMR),  # blocked by core firm reject
        (CRNH, NMR, NYH, CRNH),  # blocked: core CRNH stays
        (np.nan, FR, CRH, NMR),  # no core: expansion FR blocks
        (np.nan, CRH, NMR, NMR),  # multi-group copies NMR too
        (FR, NMR, CRNH, CRNH),  # blocking only stops CRH/NYH
    ],
)
def test_multi_group_blocking(core, expansion, multi, expected):
    row = {
        "coreRatingStatus": core,
        "expansionRatingStatus": expansion,
        "multiGroupRatingStatus": multi,
        "modelingMultiGroup": 1.0,
    }
    assert one(row).finalRatingStatus == expected


def group_row(group, status, core_i, exp_i=np.nan, core=NMR):
    return {
        "coreRatingStatus": core,
        "coreNoteIntercept": core_i,
        "expansionRatingStatus": NMR,
        "expansionNoteIntercept": exp_i,
        "groupRatingStatus": status,
        "modelingGroup": float(group),
    }


@pytest.mark.parametrize(
    "row, expected, decided",
    [
        (group_row(3, CRH, 0.35), CRH, "GroupModel03 (v1.1)"),
        (group_row(3, CRH, 0.30), NMR, "CoreModel (v1.1)"),  # band is open: > 0.3
        (group_row(3, CRH, 0.40), NMR, "CoreModel (v1.1)"),  # ... and < 0.40
        (group_row(3, CRH, np.nan, exp_i=0.31), CRH, "GroupModel03 (v1.1)"),  # expansion fallback
        (group_row(3, CRH, 0.2, exp_i=0.35), NMR, "CoreModel (v1.1)"),  # core takes priority
        (group_row(3, CRH, np.nan), NMR, "CoreModel (v1.1)"),  # no safeguard intercept
        (group_row(3, CRH, 0.35, core=FR), NMR, "CoreModel (v1.1)"),  # blocked
        # NYH from the group, then a published CRH note keeps CRH (§6.5 shortcut)
        (group_row(3, NYH, 0.35), CRH, "NmrDueToMinStableCrhTime (v1.0)"),
        (group_row(14, CRH, 0.26), CRH, "GroupModel14 (v1.1)"),  # group 14: > 0.25, no cap
        (group_row(14, CRH, 0.25), NMR, "CoreModel (v1.1)"),
        (group_row(33, CRH, 0.26), CRH, "GroupModel33 (v1.1)"),
        (group_row(33, NMR, 0.5, core=CRH), NMR, "GroupModel33NMR (v1.1)"),
        (group_row(18, CRNH, 0.5, core=CRH), NMR, "GroupModel18NMR (v1.1)"),
        (group_row(15, NMR, 0.5, core=CRH), NMR, "GroupModel15NMR (v1.1)"),
        (group_row(15, CRH, 0.5, core=CRH), CRH, "CoreModel (v1.1)"),
        (group_row(16, CRH, 0.35), NMR, "CoreModel (v1.1)"),  # no rule for group 16
    ],
)
def test_group_models(row, expected, decided):
    out = one(row)
    assert (out.finalRatingStatus, out.decidedBy) == (expected, decided)


def test_group_promotion_ignores_nyh_to_nyh_and_crh_notes():
    out = one(group_row(3, NYH, 0.35, core=NYH))
    assert "GroupModel03" not in out.metaScorerActiveRules
    out = one(group_row(3, CRH, 0.35, core=CRH))
    assert "GroupModel03" not in out.metaScorerActiveRules


@pytest.mark.parametrize(
    "core, gauss, expected",
    [
        (NMR, CRH, CRH),
        (FR, CRH, NMR),  # blocked
        (FR, CRNH, CRNH),  # CRNH coverage is never blocked
        (CRH, CRNH, CRH),  # only fills NMR/NYH notes
    ],
)
def test_gaussian_coverage(core, gauss, expected):
    row = {"coreRatingStatus": core, "gaussianRatingStatus": gauss}
    assert one(row).finalRatingStatus == expected


@pytest.mark.parametrize(
    "topic, intercept, factor, confident, expected",
    [
        ("GazaConflict", 0.23, 0.0, True, NMR),
        ("GazaConflict", 0.24, 0.0, True, CRH),
        ("GazaConflict", 0.5, 0.52, True, NMR),
        ("GazaConflict", 0.1, 0.0, False, CRH),  # not confident: no demotion
        ("InDimensionTwo", 0.50, 0.0, True, NMR),
        ("InDimensionTwo", 0.52, 0.9, True, CRH),
    ],
)
def test_topic_demotion(topic, intercept, factor, confident, expected):
    row = {
        "coreRatingStatus": CRH,
        "noteTopic": topic,
        "topicNoteIntercept": intercept,
        "topicNoteFactor1": factor,
        "topicNoteConfident": confident,
    }
    out = one(row)
    assert out.finalRatingStatus == expected
    if expected == NMR:
        idx = meta.TOPICS.index(topic)
        assert out.decidedBy == meta.TOPIC_MODELS[idx]


@pytest.mark.parametrize(
    "neg, pos, ps, core_i, expected",
    [
        (4, 4, 0.29, 0.45, NMR),
        (4, 3, 0.29, 0.45, CRH),  # 7 < 8 sampled ratings
        (7, 1, 0.29, 0.45, CRH),  # < 2 on one side
        (4, 4, 0.30, 0.45, CRH),  # sampled intercept must be < 0.30
        (4, 4, 0.29, 0.43, CRH),  # divergence 0.14 < 0.15
    ],
)
def test_population_sampled_veto(neg, pos, ps, core_i, expected):
    row = {
        "coreRatingStatus": CRH,
        "coreNoteIntercept": core_i,
        "coreNoteInterceptPopulationSampled": ps,
        "coreNegFactor_populationSampledRatingCount": neg,
        "corePosFactor_populationSampledRatingCount": pos,
    }
    assert one(row).finalRatingStatus == expected


@pytest.mark.parametrize(
    "status, timer, first, pflip, topic_conf, expected, new_timer",
    [
        (CRH, np.nan, np.nan, "CRH", None, NMR, NOW),  # enter
        (NYH, np.nan, np.nan, "CRH", None, NMR, NOW),
        (CRH, -1.0, np.nan, "CRH", None, NMR, NOW),  # re-enter
        (NYH, -1.0, np.nan, "CRH", None, NMR, -1.0),  # NYH does not re-enter
        (CRH, NOW - 29 * MIN, np.nan, "CRH", None, NMR, NOW - 29 * MIN),  # < 30 min
        (CRH, NOW - 30 * MIN, np.nan, "CRH", None, CRH, -1.0),  # 30 min reached, no flip
        (CRH, NOW - 45 * MIN, np.nan, np.nan, None, NMR, NOW - 45 * MIN),  # missing pflip = flip
        (CRH, NOW - 45 * MIN, CRH, "CRH", None, NMR, NOW - 45 * MIN),  # was CRH before
        (CRH, NOW - 45 * MIN, np.nan, "CRH", False, NMR, NOW - 45 * MIN),  # topic unconfident
        (CRH, NOW - 60 * MIN, CRH, "FLIP", None, NMR, NOW - 60 * MIN),  # 60 is not > 60
        (CRH, NOW - 61 * MIN, CRH, "FLIP", None, CRH, -1.0),  # max delay exceeded
        (NYH, NOW - 61 * MIN, np.nan, "CRH", None, NMR, NOW - 61 * MIN),
        (NYH, NOW - 361 * MIN, np.nan, "CRH", None, NMR, -1.0),
        (NMR, NOW - 10 * MIN, np.nan, "CRH", None, NMR, -1.0),  # stopped trying: exit
        (NMR, -1.0, np.nan, "CRH", None, NMR, np.nan),  # untouched
        (CRNH, np.nan, np.nan, "CRH", None, CRNH, np.nan),
    ],
)
def test_stabilization_timer(status, timer, first, pflip, topic_conf, expected, new_timer):
    row = {"coreRatingStatus": status, "pflipLabel": pflip}
    if topic_conf is not None:
        row |= {
            "noteTopic": "Scams",
            "topicNoteConfident": topic_conf,
            "topicNoteIntercept": 0.5,
            "topicNoteFactor1": 0.0,
        }
    nsh = {
        "currentStatus": NMR,
        "timestampMillisOfNmrDueToMinStableCrhTime": timer,
        "firstNonNMRStatus": first,
    }
    out = one(row, nsh)
    assert out.finalRatingStatus == expected
    assert out.preStabilizationRatingStatus == status
    got = out[meta.UPDATED_TIMER_COLUMN]
    assert (np.isnan(got) and np.isnan(new_timer)) or got == new_timer
    changed = expected != status
    assert ("NmrDueToMinStableCrhTime" in out.metaScorerActiveRules) == changed


def test_previously_crh_shortcut():
    out = one({"coreRatingStatus": NYH}, {"currentStatus": CRH})
    assert (out.finalRatingStatus, out.decidedBy) == (CRH, "NmrDueToMinStableCrhTime (v1.0)")
    out = one(
        {"coreRatingStatus": CRH}, {"currentStatus": CRH, "timestampMillisOfNmrDueToMinStableCrhTime": np.nan}
    )
    assert (out.finalRatingStatus, out.decidedBy) == (CRH, "CoreModel (v1.1)")
    assert np.isnan(out[meta.UPDATED_TIMER_COLUMN])


def test_drift_guard_restores_locked_status():
    out = one({"coreRatingStatus": NMR}, {"currentStatus": CRH, "lockedStatus": CRH})
    assert (out.finalRatingStatus, out.decidedBy, out.unlockedRatingStatus) == (
        CRH,
        "ScoringDriftGuard (v1.0)",
        NMR,
    )
    out = one({"coreRatingStatus": CRH}, {"currentStatus": CRH, "lockedStatus": CRH})
    assert out.decidedBy == "CoreModel (v1.1)" and pd.isna(out.unlockedRatingStatus)


def test_insufficient_explanation_runs_last_even_over_locks():
    expl = pd.DataFrame(
        {"noteId": [1, 2, 3], "crhExplained": [False, True, True], "crnhExplained": [True, True, False]}
    )
    rows = [{"coreRatingStatus": NMR}, {"coreRatingStatus": CRH}, {"coreRatingStatus": CRNH}]
    nsh = [{"currentStatus": CRH, "lockedStatus": CRH}, {"currentStatus": CRH}, {"currentStatus": CRNH}]
    out = run(rows, nsh, explanation=expl)
    assert out.finalRatingStatus.tolist() == [NMR, CRH, NMR]
    assert out.decidedBy.tolist() == [
        "InsufficientExplanation (v1.0)",
        "CoreModel (v1.1)",
        "InsufficientExplanation (v1.0)",
    ]
    assert out.metaScorerActiveRules[0].endswith("ScoringDriftGuard (v1.0),InsufficientExplanation (v1.0)")


def test_explanation_flags_from_tag_counts():
    counts = pd.DataFrame({"noteId": [1, 2]} | {t: [0, 0] for t in meta.schema.RATING_TAGS})
    counts.loc[0, ["helpfulClear", "helpfulInformative"]] = 2
    counts.loc[1, ["helpfulClear", "helpfulInformative"]] = [2, 1]
    counts.loc[1, ["notHelpfulIncorrect", "notHelpfulOther"]] = 5
    flags = meta.explanation_flags(counts, CFG)
    assert flags.crhExplained.tolist() == [True, False]
    assert flags.crnhExplained.tolist() == [False, True]


def test_unknown_status_and_duplicates_are_errors():
    with pytest.raises(ScoringError, match="unknown note status"):
        one({"coreRatingStatus": "HELPFULISH"})
    scored = pd.DataFrame({"noteId": [1, 1]})
    with pytest.raises(ScoringError, match="duplicate"):
        meta.meta_score(scored, scored, epoch_millis=NOW, config=CFG)


def test_new_notes_absent_from_history_enter_stabilization():
    scored = pd.DataFrame({"noteId": [7], "coreRatingStatus": [CRH]})
    out = meta.meta_score(scored, pd.DataFrame({"noteId": []}), epoch_millis=NOW, config=CFG)
    assert out.finalRatingStatus[0] == NMR and out[meta.UPDATED_TIMER_COLUMN][0] == NOW


def test_status_codes_equal_the_dict_map_they_replaced():
    names = list(meta.schema.STATUS_CODES)
    values = np.array([*names, None, np.nan, pd.NA, names[0]], dtype=object)
    series = pd.Series(values)
    want = series.map({n: int(c) for n, c in meta.schema.STATUS_CODES.items()}).fillna(meta.NONE)
    got = meta.status_codes(values, len(values))
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want.to_numpy(dtype=np.int8))
    np.testing.assert_array_equal(meta.status_codes(None, 3), [meta.NONE] * 3)
    # a text column's values (arrow-backed: NaN for missing), as meta_score reads them
    text = pd.Series([*names, None], dtype="str").to_numpy()
    np.testing.assert_array_equal(meta.status_codes(text, len(text)), got[: len(text)])
    with pytest.raises(ScoringError, match="unknown note status 'HELPFULISH'"):
        meta.status_codes(np.array([names[0], None, "HELPFULISH"], dtype=object), 3)
